//! The CertificateSigningRequest controllers, as upstream's `pkg/controller/certificates`:
//! the approver of kubelet client requests ([`approver`]), the signers of the built-in
//! `kubernetes.io/*` signer names ([`signer`]) and the cleaner of old requests
//! ([`cleaner`]). The approver and the signers share upstream's `CertificateController`
//! shape ([`run_csr_controller`]): every added or updated request is queued, one
//! already holding a certificate is skipped, the rest go to the controller's handler.

pub mod approver;
pub mod cleaner;
pub mod signer;

use std::collections::BTreeSet;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::ResourceExt;

use crate::Context;
use crate::informers::Change;
use crate::workqueue::WorkQueue;

/// The service account the CSR controllers act as.
pub const SERVICE_ACCOUNT: &str = "certificate-controller";
/// Kubelet client certificates (`kubernetes.io/kube-apiserver-client-kubelet`).
pub const KUBELET_CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
/// Kubelet serving certificates.
pub const KUBELET_SERVING_SIGNER: &str = "kubernetes.io/kubelet-serving";
/// Client certificates the apiserver honours.
pub const APISERVER_CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client";
/// The certificates.k8s.io/v1beta1 default signer (the v1 API refuses it at creation).
pub const LEGACY_UNKNOWN_SIGNER: &str = "kubernetes.io/legacy-unknown";

/// Why a request could not be handled; the key is retried.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request to the apiserver failed.
    #[error(transparent)]
    Kube(#[from] kube::Error),
    /// `spec.request` is not a PEM certificate request.
    #[error("unable to parse csr {name:?}: {reason}")]
    Parse {
        /// The CSR.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The request was recognized but no SubjectAccessReview allowed it (upstream's
    /// ignorable error: retried with backoff, logged quietly).
    #[error("recognized csr {name:?} as {tried:?} but subject access review was not approved")]
    NotAuthorized {
        /// The CSR.
        name: String,
        /// The permissions asked for (`selfnodeclient`, `nodeclient`).
        tried: Vec<&'static str>,
    },
    /// The certificate could not be made.
    #[error("error auto signing csr: {0}")]
    Sign(String),
}

/// What the checks of a request read from its PKCS#10 body (Go's
/// `x509.CertificateRequest` fields).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// The subject's CommonName (the last one, as Go's `pkix.Name`).
    pub common_name: String,
    /// The subject's Organization values, in order.
    pub organizations: Vec<String>,
    /// DNS subjectAltNames.
    pub dns_names: Vec<String>,
    /// IP subjectAltNames.
    pub ip_addresses: Vec<IpAddr>,
    /// Email subjectAltNames.
    pub email_addresses: Vec<String>,
    /// URI subjectAltNames.
    pub uris: Vec<String>,
    /// The request's DER (CertificationRequest).
    pub der: Vec<u8>,
}

/// Decodes a PEM `CERTIFICATE REQUEST` as upstream's `ParseCSR`.
pub fn parse_request(pem: &[u8]) -> Result<Request, String> {
    let der = match x509_parser::pem::parse_x509_pem(pem) {
        Ok((_, block)) if block.label == "CERTIFICATE REQUEST" => block.contents,
        _ => return Err("PEM block type must be CERTIFICATE REQUEST".to_owned()),
    };
    use x509_parser::prelude::FromDer;
    let (_, csr) = x509_parser::certification_request::X509CertificationRequest::from_der(&der)
        .map_err(|e| format!("asn1: {e}"))?;
    let subject = &csr.certification_request_info.subject;
    let mut request = Request {
        common_name: subject
            .iter_common_name()
            .filter_map(|a| a.as_str().ok())
            .last()
            .unwrap_or_default()
            .to_owned(),
        organizations: subject
            .iter_organization()
            .filter_map(|a| a.as_str().ok().map(str::to_owned))
            .collect(),
        ..Request::default()
    };
    if let Some(extensions) = csr.requested_extensions() {
        for extension in extensions {
            let x509_parser::extensions::ParsedExtension::SubjectAlternativeName(san) = extension
            else {
                continue;
            };
            for name in &san.general_names {
                use x509_parser::extensions::GeneralName;
                match name {
                    GeneralName::DNSName(n) => request.dns_names.push((*n).to_owned()),
                    GeneralName::RFC822Name(n) => request.email_addresses.push((*n).to_owned()),
                    GeneralName::URI(n) => request.uris.push((*n).to_owned()),
                    GeneralName::IPAddress(bytes) => {
                        if let Some(ip) = ip_from_bytes(bytes) {
                            request.ip_addresses.push(ip);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    request.der = der.clone();
    Ok(request)
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

/// The request's `spec.usages` as a set.
pub fn usages_of(csr: &CertificateSigningRequest) -> BTreeSet<String> {
    csr.spec.usages.iter().flatten().cloned().collect()
}

/// Upstream's `GetCertApprovalCondition`: whether any condition approves or denies.
pub fn approval(csr: &CertificateSigningRequest) -> (bool, bool) {
    let conditions = csr.status.as_ref().and_then(|s| s.conditions.as_ref());
    let has = |t: &str| conditions.is_some_and(|cs| cs.iter().any(|c| c.type_ == t));
    (has("Approved"), has("Denied"))
}

/// Upstream's `IsCertificateRequestApproved`: approved and not denied.
pub fn is_approved(csr: &CertificateSigningRequest) -> bool {
    let (approved, denied) = approval(csr);
    approved && !denied
}

/// Upstream's `HasTrueCondition` (an empty status counts as true).
pub fn has_true_condition(csr: &CertificateSigningRequest, condition: &str) -> bool {
    csr.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c.type_ == condition && (c.status.is_empty() || c.status == "True"))
        })
}

/// Whether the request holds a certificate (kubectl's `Issued`).
pub fn is_issued(csr: &CertificateSigningRequest) -> bool {
    csr.status
        .as_ref()
        .and_then(|s| s.certificate.as_ref())
        .is_some_and(|c| !c.0.is_empty())
}

/// Runs one CSR controller over the shared informer: `handle` is called for each
/// queued request without a certificate, with `workers` at once (upstream's
/// `CertificateController`).
pub fn run_csr_controller<H, Fut>(
    cx: &Context,
    name: &'static str,
    workers: usize,
    handle: H,
) -> futures::future::BoxFuture<'static, ()>
where
    H: Fn(Arc<CertificateSigningRequest>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), Error>> + Send + 'static,
{
    let requests = cx.informers.informer::<CertificateSigningRequest>();
    let queue = WorkQueue::<String>::new();
    let q = queue.clone();
    requests.add_handler(move |change| {
        let (Change::Added(csr) | Change::Updated { new: csr, .. } | Change::Deleted(csr)) = change;
        q.add(csr.name_any());
    });
    let handle = Arc::new(handle);
    Box::pin(async move {
        requests.wait_synced().await;
        queue
            .run(workers, None, name, move |key: String| {
                let (requests, handle) = (requests.clone(), handle.clone());
                async move {
                    let Some(csr) = requests.get("", &key) else {
                        return Ok(());
                    };
                    if is_issued(&csr) {
                        return Ok(());
                    }
                    let result = handle(csr).await;
                    if let Err(e @ Error::NotAuthorized { .. }) = &result {
                        tracing::debug!(controller = name, error = %e, "csr not approved");
                    }
                    result
                }
            })
            .await;
    })
}

/// Now as a `metav1.Time`.
pub(crate) fn now() -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A PEM CSR for `cn`/`orgs` with `sans` (DNS names or IPs), and its key.
    pub(crate) fn csr_pem(cn: &str, orgs: &[&str], sans: &[&str]) -> String {
        let mut params = rcgen::CertificateParams::default();
        let mut dn = rcgen::DistinguishedName::new();
        // rcgen keeps one value per type: a second O goes under the same OID spelled
        // as a custom type
        for (i, o) in orgs.iter().enumerate() {
            let ty = match i {
                0 => rcgen::DnType::OrganizationName,
                _ => rcgen::DnType::CustomDnType(vec![2, 5, 4, 10]),
            };
            dn.push(ty, *o);
        }
        dn.push(rcgen::DnType::CommonName, cn);
        params.distinguished_name = dn;
        for san in sans {
            params.subject_alt_names.push(match san.parse::<IpAddr>() {
                Ok(ip) => rcgen::SanType::IpAddress(ip),
                Err(_) => rcgen::SanType::DnsName((*san).try_into().unwrap()),
            });
        }
        let key = rcgen::KeyPair::generate().unwrap();
        params.serialize_request(&key).unwrap().pem().unwrap()
    }

    #[test]
    fn a_request_is_parsed_from_its_pem() {
        let pem = csr_pem(
            "system:node:n1",
            &["system:nodes"],
            &["n1.example", "10.0.0.1"],
        );
        let r = parse_request(pem.as_bytes()).unwrap();
        assert_eq!(r.common_name, "system:node:n1");
        assert_eq!(r.organizations, ["system:nodes"]);
        assert_eq!(r.dns_names, ["n1.example"]);
        assert_eq!(r.ip_addresses, ["10.0.0.1".parse::<IpAddr>().unwrap()]);
        assert!(r.email_addresses.is_empty() && r.uris.is_empty());
    }

    #[test]
    fn only_a_certificate_request_block_parses() {
        assert_eq!(
            parse_request(b"not pem").unwrap_err(),
            "PEM block type must be CERTIFICATE REQUEST"
        );
        let cert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert_eq!(
            parse_request(cert.as_bytes()).unwrap_err(),
            "PEM block type must be CERTIFICATE REQUEST"
        );
    }

    #[test]
    fn approval_follows_the_conditions() {
        let mut csr: CertificateSigningRequest = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "x"},
            "spec": {"request": "", "signerName": "s"},
            "status": {"conditions": [{"type": "Approved", "status": "True"}]}
        }))
        .unwrap();
        assert!(is_approved(&csr));
        assert!(!has_true_condition(&csr, "Failed"));
        csr.status
            .as_mut()
            .unwrap()
            .conditions
            .as_mut()
            .unwrap()
            .push(
                serde_json::from_value(serde_json::json!({"type": "Denied", "status": "True"}))
                    .unwrap(),
            );
        assert!(!is_approved(&csr));
        assert_eq!(approval(&csr), (true, true));
    }
}
