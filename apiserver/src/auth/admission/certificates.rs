//! The certificate and claim-resize admission plugins, as upstream's of the same names:
//!
//! - CertificateApproval: approving or denying a CertificateSigningRequest needs the
//!   `approve` verb on `certificates.k8s.io` `signers` named by its signerName (or
//!   `<domain>/*`);
//! - CertificateSigning: writing a certificate into its status needs `sign` likewise;
//! - CertificateSubjectRestriction: no request to the `kube-apiserver-client` signer
//!   may ask for the `system:masters` group;
//! - PersistentVolumeClaimResize: a claim may only grow when its StorageClass allows
//!   volume expansion.

use apimachinery::errors::{StatusError, go_quote};
use apimachinery::quantity::Quantity;
use apimachinery::resources;
use base64::Engine;
use serde_json::Value;

use super::{Attributes, Context, Operation, Plugin};
use crate::auth::request_info::RequestInfo;

/// The signer whose certificates authenticate to the apiserver.
const APISERVER_CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client";

/// Whether `attributes.user` has `verb` on the signer `signer_name`, exactly or through
/// its domain's wildcard (upstream's `IsAuthorizedForSignerName`).
async fn authorized_for_signer(
    context: &Context,
    attributes: &Attributes<'_>,
    verb: &str,
    signer_name: &str,
) -> bool {
    let ask =
        |name: &str| RequestInfo::resource(verb, "certificates.k8s.io", "signers", "", "", name);
    if context
        .authorizer
        .allows(attributes.user, &ask(signer_name))
        .await
    {
        return true;
    }
    match signer_name.split_once('/') {
        Some((domain, _)) => {
            context
                .authorizer
                .allows(attributes.user, &ask(&format!("{domain}/*")))
                .await
        }
        None => false,
    }
}

fn signer(csr: &Value) -> &str {
    csr["spec"]["signerName"].as_str().unwrap_or_default()
}

/// `CertificateApproval`.
pub struct CertificateApproval {
    /// The authorizer to ask.
    pub context: Context,
}

#[async_trait::async_trait]
impl Plugin for CertificateApproval {
    fn name(&self) -> &'static str {
        "CertificateApproval"
    }

    async fn validate(&self, attributes: &Attributes<'_>, csr: &Value) -> Result<(), StatusError> {
        if attributes.operation != Operation::Update
            || !attributes.is(
                "certificates.k8s.io",
                "certificatesigningrequests",
                "approval",
            )
        {
            return Ok(());
        }
        let name = signer(csr);
        if !authorized_for_signer(&self.context, attributes, "approve", name).await {
            return Err(attributes.forbidden(format!(
                "user not permitted to approve requests with signerName {}",
                go_quote(name)
            )));
        }
        Ok(())
    }
}

/// `CertificateSigning`.
pub struct CertificateSigning {
    /// The authorizer to ask.
    pub context: Context,
}

#[async_trait::async_trait]
impl Plugin for CertificateSigning {
    fn name(&self) -> &'static str {
        "CertificateSigning"
    }

    async fn validate(&self, attributes: &Attributes<'_>, csr: &Value) -> Result<(), StatusError> {
        if attributes.operation != Operation::Update
            || !attributes.is(
                "certificates.k8s.io",
                "certificatesigningrequests",
                "status",
            )
        {
            return Ok(());
        }
        let old = attributes.old.map(|o| &o["status"]["certificate"]);
        if old == Some(&csr["status"]["certificate"]) {
            return Ok(());
        }
        let name = signer(csr);
        if !authorized_for_signer(&self.context, attributes, "sign", name).await {
            return Err(attributes.forbidden(format!(
                "user not permitted to sign requests with signerName {}",
                go_quote(name)
            )));
        }
        Ok(())
    }
}

/// The organizations a CSR's PEM (base64 in `spec.request`) asks for.
fn requested_organizations(csr: &Value) -> Vec<String> {
    let Some(pem) = csr["spec"]["request"]
        .as_str()
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
    else {
        return Vec::new();
    };
    let Ok((_, pem)) = x509_parser::pem::parse_x509_pem(&pem) else {
        return Vec::new();
    };
    let Ok((_, request)) =
        <x509_parser::certification_request::X509CertificationRequest<'_> as x509_parser::prelude::FromDer<
            '_,
            x509_parser::error::X509Error,
        >>::from_der(&pem.contents)
    else {
        return Vec::new();
    };
    request
        .certification_request_info
        .subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok())
        .map(str::to_owned)
        .collect()
}

/// `CertificateSubjectRestriction`.
pub struct CertificateSubjectRestriction;

#[async_trait::async_trait]
impl Plugin for CertificateSubjectRestriction {
    fn name(&self) -> &'static str {
        "CertificateSubjectRestriction"
    }

    async fn validate(&self, attributes: &Attributes<'_>, csr: &Value) -> Result<(), StatusError> {
        if attributes.operation != Operation::Create
            || !attributes.is("certificates.k8s.io", "certificatesigningrequests", "")
            || signer(csr) != APISERVER_CLIENT_SIGNER
        {
            return Ok(());
        }
        if requested_organizations(csr)
            .iter()
            .any(|o| o == crate::auth::MASTERS_GROUP)
        {
            return Err(attributes.forbidden(format!(
                "use of {APISERVER_CLIENT_SIGNER} signer with system:masters group is not allowed"
            )));
        }
        Ok(())
    }
}

/// `PersistentVolumeClaimResize`.
pub struct PersistentVolumeClaimResize {
    /// Where StorageClasses are read.
    pub context: Context,
}

fn storage(claim: &Value) -> Option<Quantity> {
    claim["spec"]["resources"]["requests"]["storage"]
        .as_str()
        .and_then(|s| Quantity::parse(s).ok())
}

#[async_trait::async_trait]
impl Plugin for PersistentVolumeClaimResize {
    fn name(&self) -> &'static str {
        "PersistentVolumeClaimResize"
    }

    async fn validate(
        &self,
        attributes: &Attributes<'_>,
        claim: &Value,
    ) -> Result<(), StatusError> {
        if attributes.operation != Operation::Update
            || !attributes.is("", "persistentvolumeclaims", "")
        {
            return Ok(());
        }
        let (Some(new), Some(old)) = (storage(claim), attributes.old.and_then(storage)) else {
            return Ok(());
        };
        if new <= old {
            return Ok(());
        }
        let classes = resources::find("storage.k8s.io", "v1", "storageclasses").expect("served");
        let allowed = match claim["spec"]["storageClassName"]
            .as_str()
            .filter(|c| !c.is_empty())
        {
            Some(class) => self
                .context
                .registry
                .get(classes, None, class)
                .await
                .ok()
                .is_some_and(|c| c["allowVolumeExpansion"] == true),
            None => false,
        };
        if !allowed {
            return Err(attributes.forbidden(
                "only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::UserInfo;
    use crate::auth::authz::{AlwaysDeny, Authorizer};
    use crate::registry::validation::tester::registry;
    use serde_json::json;
    use std::sync::Arc;

    fn csr_pem(organization: &str) -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "jane");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, organization);
        let pem = params.serialize_request(&key).unwrap().pem().unwrap();
        base64::engine::general_purpose::STANDARD.encode(pem)
    }

    #[tokio::test]
    async fn signers_need_their_verbs_and_masters_cannot_be_requested() {
        let registry = registry().await;
        let denying = Context {
            registry: registry.clone(),
            authorizer: Authorizer::new(vec![Arc::new(AlwaysDeny)]),
            rbac: None,
        };
        let user = UserInfo::new("jane", &[]);
        let csrs =
            resources::find("certificates.k8s.io", "v1", "certificatesigningrequests").unwrap();
        let at = |operation, subresource| Attributes {
            operation,
            resource: csrs,
            subresource,
            namespace: "",
            name: "req",
            old: None,
            user: &user,
            dry_run: false,
        };
        let csr = json!({"spec": {"signerName": "example.com/signer", "request": csr_pem("dev")},
            "status": {"certificate": "Y2VydA=="}});
        let err = CertificateApproval {
            context: denying.clone(),
        }
        .validate(&at(Operation::Update, "approval"), &csr)
        .await
        .unwrap_err();
        assert_eq!(
            err.status().message,
            r#"certificatesigningrequests.certificates.k8s.io "req" is forbidden: user not permitted to approve requests with signerName "example.com/signer""#
        );
        let err = CertificateSigning {
            context: denying.clone(),
        }
        .validate(&at(Operation::Update, "status"), &csr)
        .await
        .unwrap_err();
        assert!(err.status().message.ends_with(
            r#"user not permitted to sign requests with signerName "example.com/signer""#
        ));
        let allowing = Context {
            authorizer: Authorizer::always_allow(),
            ..denying
        };
        CertificateApproval { context: allowing }
            .validate(&at(Operation::Update, "approval"), &csr)
            .await
            .unwrap();

        let masters = json!({"spec": {"signerName": APISERVER_CLIENT_SIGNER, "request": csr_pem("system:masters")}});
        let err = CertificateSubjectRestriction
            .validate(&at(Operation::Create, ""), &masters)
            .await
            .unwrap_err();
        assert!(err.status().message.ends_with(
            "use of kubernetes.io/kube-apiserver-client signer with system:masters group is not allowed"
        ));
        let dev =
            json!({"spec": {"signerName": APISERVER_CLIENT_SIGNER, "request": csr_pem("dev")}});
        CertificateSubjectRestriction
            .validate(&at(Operation::Create, ""), &dev)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn claims_grow_only_with_an_expandable_class() {
        let registry = registry().await;
        let classes = resources::find("storage.k8s.io", "v1", "storageclasses").unwrap();
        registry
            .create(
                classes,
                None,
                json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "grow"},
                    "provisioner": "example.com/p", "allowVolumeExpansion": true}),
                false,
            )
            .await
            .unwrap();
        let plugin = PersistentVolumeClaimResize {
            context: Context {
                registry,
                authorizer: Authorizer::always_allow(),
                rbac: None,
            },
        };
        let user = UserInfo::new("jane", &[]);
        let claim = |class: &str, size: &str| json!({"spec": {"storageClassName": class, "resources": {"requests": {"storage": size}}}});
        for (class, allowed) in [("grow", true), ("fixed", false)] {
            let old = claim(class, "1Gi");
            let attributes = Attributes {
                operation: Operation::Update,
                resource: resources::find("", "v1", "persistentvolumeclaims").unwrap(),
                subresource: "",
                namespace: "default",
                name: "data",
                old: Some(&old),
                user: &user,
                dry_run: false,
            };
            let result = plugin.validate(&attributes, &claim(class, "2Gi")).await;
            assert_eq!(result.is_ok(), allowed, "{class}: {result:?}");
            // shrinking or keeping the size is not this plugin's concern
            plugin
                .validate(&attributes, &claim(class, "1Gi"))
                .await
                .unwrap();
        }
    }
}
