//! The ServiceAccount admission plugin: a new pod runs as a service account (`default`
//! unless it names one), which must exist, and unless the pod or the account opts out
//! (`automountServiceAccountToken: false`) it gets upstream's projected API-access
//! volume `kube-api-access-<suffix>`: a bound token (3607 s, refreshed by the kubelet),
//! the cluster CA from the `kube-root-ca.crt` ConfigMap and the namespace, mounted
//! read-only at `/var/run/secrets/kubernetes.io/serviceaccount` in every container.

use std::sync::Arc;

use apimachinery::errors::{StatusError, go_quote};
use apimachinery::resources;
use serde_json::{Value, json};

use super::{Attributes, Operation, Plugin};
use crate::registry::informer::Informer;
use crate::registry::{Registry, meta};

/// Where the token, CA and namespace are mounted.
pub const MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The ConfigMap every namespace gets with the cluster CA.
pub const ROOT_CA_CONFIGMAP: &str = "kube-root-ca.crt";
/// The projected token's lifetime: upstream's 1 hour plus 7 seconds, which marks it
/// as a kubelet-refreshed token.
const TOKEN_SECONDS: i64 = 3607;
const VOLUME_PREFIX: &str = "kube-api-access-";

/// `ServiceAccount`.
pub struct ServiceAccount {
    registry: Registry,
    accounts: Arc<Informer>,
}

impl ServiceAccount {
    /// Looks service accounts up in an informer, and through `registry` for one the
    /// informer does not hold yet (just created).
    pub fn new(registry: Registry) -> Self {
        let resource = resources::find("", "v1", "serviceaccounts").expect("served");
        ServiceAccount {
            accounts: Informer::start(registry.clone(), resource),
            registry,
        }
    }
}

/// The projected volume, as upstream builds it.
fn api_access_volume(name: &str) -> Value {
    json!({
        "name": name,
        "projected": {
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": TOKEN_SECONDS, "path": "token"}},
                {"configMap": {"name": ROOT_CA_CONFIGMAP, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace",
                    "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
            ]
        }
    })
}

/// Five characters from upstream's name-suffix alphabet.
fn suffix() -> String {
    meta::generate_name("")
}

fn mounts_token(container: &Value) -> bool {
    container["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|m| m["mountPath"].as_str() == Some(MOUNT_PATH))
}

#[async_trait::async_trait]
impl Plugin for ServiceAccount {
    fn name(&self) -> &'static str {
        "ServiceAccount"
    }

    async fn mutate(
        &self,
        attributes: &Attributes<'_>,
        pod: &mut Value,
    ) -> Result<(), StatusError> {
        if attributes.operation != Operation::Create
            || !attributes.is("", "pods", "")
            || !pod["spec"].is_object()
        {
            return Ok(());
        }
        // mirror pods come from a kubelet's static manifests and may not use accounts
        if meta::annotation(pod, "kubernetes.io/config.mirror").is_some() {
            return Ok(());
        }
        let name = match pod["spec"]["serviceAccountName"].as_str() {
            Some(n) if !n.is_empty() => n.to_owned(),
            _ => match pod["spec"]["serviceAccount"].as_str() {
                Some(n) if !n.is_empty() => n.to_owned(),
                _ => "default".to_owned(),
            },
        };
        let accounts = resources::find("", "v1", "serviceaccounts").expect("served");
        let cached = self.accounts.get(attributes.namespace, &name);
        let found = match cached {
            Some(account) => Ok((*account).clone()),
            None => {
                self.registry
                    .get(accounts, Some(attributes.namespace), &name)
                    .await
            }
        };
        let account = match found {
            Ok(account) => account,
            Err(e) if e.is_not_found() => {
                return Err(attributes.forbidden(format!(
                    "error looking up service account {}/{name}: serviceaccount {} not found",
                    attributes.namespace,
                    go_quote(&name)
                )));
            }
            Err(e) => return Err(e),
        };
        pod["spec"]["serviceAccountName"] = name.clone().into();
        pod["spec"]["serviceAccount"] = name.into();

        let automount = pod["spec"]["automountServiceAccountToken"]
            .as_bool()
            .or_else(|| account["automountServiceAccountToken"].as_bool())
            .unwrap_or(true);
        if !automount {
            return Ok(());
        }
        let mut volumes = pod["spec"]["volumes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let volume_name = match volumes
            .iter()
            .filter_map(|v| v["name"].as_str())
            .find(|n| n.starts_with(VOLUME_PREFIX))
        {
            Some(existing) => existing.to_owned(),
            None => {
                let name = format!("{VOLUME_PREFIX}{}", suffix());
                volumes.push(api_access_volume(&name));
                name
            }
        };
        pod["spec"]["volumes"] = volumes.into();
        for list in ["initContainers", "containers"] {
            let Some(containers) = pod["spec"][list].as_array_mut() else {
                continue;
            };
            for container in containers {
                if mounts_token(container) || !container.is_object() {
                    continue;
                }
                let mut mounts = container["volumeMounts"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                mounts
                    .push(json!({"name": volume_name, "readOnly": true, "mountPath": MOUNT_PATH}));
                container["volumeMounts"] = mounts.into();
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::UserInfo;
    use crate::registry::validation::tester::registry;

    fn attributes<'a>(user: &'a UserInfo) -> Attributes<'a> {
        Attributes {
            operation: Operation::Create,
            resource: resources::find("", "v1", "pods").unwrap(),
            subresource: "",
            namespace: "default",
            name: "web",
            old: None,
            user,
            dry_run: false,
        }
    }

    #[tokio::test]
    async fn pods_get_the_default_account_and_its_token_volume() {
        let registry = registry().await;
        let plugin = ServiceAccount::new(registry.clone());
        let user = UserInfo::new("jane", &[]);
        let mut pod = json!({"spec": {"containers": [{"name": "c", "image": "nginx"}]}});
        let err = plugin
            .mutate(&attributes(&user), &mut pod)
            .await
            .unwrap_err();
        assert_eq!(err.http_status(), 403);
        assert_eq!(
            err.status().message,
            r#"pods "web" is forbidden: error looking up service account default/default: serviceaccount "default" not found"#
        );

        let accounts = resources::find("", "v1", "serviceaccounts").unwrap();
        registry
            .create(
                accounts,
                Some("default"),
                json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}),
                false,
            )
            .await
            .unwrap();
        plugin.mutate(&attributes(&user), &mut pod).await.unwrap();
        assert_eq!(pod["spec"]["serviceAccountName"], "default");
        let volume = &pod["spec"]["volumes"][0];
        let name = volume["name"].as_str().unwrap();
        assert!(
            name.starts_with(VOLUME_PREFIX) && name.len() == VOLUME_PREFIX.len() + 5,
            "{name}"
        );
        assert_eq!(
            volume["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"],
            3607
        );
        assert_eq!(
            pod["spec"]["containers"][0]["volumeMounts"][0],
            json!({"name": name, "readOnly": true, "mountPath": MOUNT_PATH})
        );

        let mut opted_out = json!({"spec": {"automountServiceAccountToken": false,
            "containers": [{"name": "c", "image": "nginx"}]}});
        plugin
            .mutate(&attributes(&user), &mut opted_out)
            .await
            .unwrap();
        assert!(opted_out["spec"].get("volumes").is_none());
    }
}
