//! The root CA publisher: every namespace that is not terminating has the ConfigMap
//! `kube-root-ca.crt` holding the cluster CA (`ca.crt`), which the projected
//! service-account volume mounts so pods can verify the apiserver. A changed or
//! deleted ConfigMap is put back.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{ObjectMeta, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Controller, watcher};
use kube::{Api, Client};

use crate::service_accounts::terminating;

/// The controller's name (and its service account's).
pub const NAME: &str = "root-ca-cert-publisher";
/// The ConfigMap's name.
pub const CONFIGMAP: &str = "kube-root-ca.crt";
/// Its key.
pub const KEY: &str = "ca.crt";
const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

struct Context {
    reader: Client,
    writer: Client,
    ca_pem: String,
}

fn wanted(ca_pem: &str, existing: Option<ConfigMap>) -> ConfigMap {
    let mut map = existing.unwrap_or_else(|| ConfigMap {
        metadata: ObjectMeta {
            name: Some(CONFIGMAP.to_owned()),
            ..Default::default()
        },
        ..Default::default()
    });
    map.metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(
            "kubernetes.io/description".to_owned(),
            DESCRIPTION.to_owned(),
        );
    map.data = Some(BTreeMap::from([(KEY.to_owned(), ca_pem.to_owned())]));
    map.binary_data = None;
    map
}

async fn reconcile(
    namespace: Arc<Namespace>,
    context: Arc<Context>,
) -> Result<Action, kube::Error> {
    let Some(name) = namespace.metadata.name.as_deref() else {
        return Ok(Action::await_change());
    };
    if terminating(&namespace) {
        return Ok(Action::await_change());
    }
    let reader: Api<ConfigMap> = Api::namespaced(context.reader.clone(), name);
    let writer: Api<ConfigMap> = Api::namespaced(context.writer.clone(), name);
    let existing = reader.get_opt(CONFIGMAP).await?;
    let result = match existing {
        None => writer
            .create(&PostParams::default(), &wanted(&context.ca_pem, None))
            .await
            .map(|_| ()),
        Some(map) => {
            let current = map.data.as_ref().and_then(|d| d.get(KEY));
            if current == Some(&context.ca_pem) && map.binary_data.is_none() {
                return Ok(Action::await_change());
            }
            writer
                .replace(
                    CONFIGMAP,
                    &PostParams::default(),
                    &wanted(&context.ca_pem, Some(map)),
                )
                .await
                .map(|_| ())
        }
    };
    match result {
        Ok(()) => Ok(Action::await_change()),
        Err(kube::Error::Api(e)) if e.code == 403 && terminating(&namespace) => {
            Ok(Action::await_change())
        }
        Err(e) => Err(e),
    }
}

fn retry(_: Arc<Namespace>, error: &kube::Error, _: Arc<Context>) -> Action {
    tracing::warn!(%error, "root CA publisher: retrying");
    Action::requeue(Duration::from_secs(2))
}

/// Runs the controller: reads through `reader`, writes through `writer`.
pub async fn run(reader: Client, writer: Client, ca_pem: String) {
    let namespaces: Api<Namespace> = Api::all(reader.clone());
    let maps: Api<ConfigMap> = Api::all(reader.clone());
    Controller::new(namespaces, watcher::Config::default())
        .watches(
            maps,
            watcher::Config::default().fields(&format!("metadata.name={CONFIGMAP}")),
            |map| {
                map.metadata
                    .namespace
                    .map(|ns| ObjectRef::<Namespace>::new(&ns))
            },
        )
        .run(
            reconcile,
            retry,
            Arc::new(Context {
                reader,
                writer,
                ca_pem,
            }),
        )
        .for_each(|_| async {})
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configmap_holds_the_ca_and_keeps_other_metadata() {
        let mut existing = wanted("old", None);
        existing.metadata.labels = Some(BTreeMap::from([("a".to_owned(), "b".to_owned())]));
        let map = wanted("new", Some(existing));
        assert_eq!(map.data.unwrap()[KEY], "new");
        assert_eq!(map.metadata.labels.unwrap()["a"], "b");
        assert!(
            map.metadata
                .annotations
                .unwrap()
                .contains_key("kubernetes.io/description")
        );
    }
}
