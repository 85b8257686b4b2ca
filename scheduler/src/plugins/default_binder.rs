//! DefaultBinder: binds a pod by POSTing a Binding to `pods/{name}/binding`, as
//! upstream's `defaultbinder` plugin; the apiserver sets `spec.nodeName` and the
//! PodScheduled condition.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use kube::api::PostParams;

use crate::framework::registry::Handle;
use crate::framework::{BindPlugin, CycleState, Plugin, PodInfo, Status};

/// The plugin's name.
pub const NAME: &str = "DefaultBinder";

/// The plugin.
pub struct DefaultBinder {
    client: Option<kube::Client>,
}

impl Plugin for DefaultBinder {
    fn name(&self) -> &'static str {
        NAME
    }
    fn as_bind(&self) -> Option<&dyn BindPlugin> {
        Some(self)
    }
}

/// The Binding object upstream's binder sends (with the pod's uid, so a pod recreated
/// under the same name is not bound by mistake).
pub fn binding_for(pod: &PodInfo, node: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": pod.name(), "namespace": pod.namespace(), "uid": pod.uid()},
        "target": {"kind": "Node", "name": node},
    })
}

#[async_trait::async_trait]
impl BindPlugin for DefaultBinder {
    async fn bind(&self, _state: &CycleState, pod: &PodInfo, node: &str) -> Status {
        let Some(client) = self.client.clone() else {
            return Status::error("no client to bind with");
        };
        let api: kube::Api<Pod> = kube::Api::namespaced(client, pod.namespace());
        let body = binding_for(pod, node);
        match api
            .create_subresource::<_, serde_json::Value>(
                "binding",
                pod.name(),
                &PostParams::default(),
                &body,
            )
            .await
        {
            Ok(_) => Status::success(),
            Err(kube::Error::Api(status)) => Status::error(status.message.clone()),
            Err(e) => Status::error(e.to_string()),
        }
    }
}

/// The constructor.
pub fn new(_args: Option<&serde_json::Value>, handle: &Handle) -> Result<Arc<dyn Plugin>, String> {
    Ok(Arc::new(DefaultBinder {
        client: handle.client.clone(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_binding_names_the_pod_its_uid_and_the_node() {
        let pod = PodInfo::new(
            serde_json::from_value(
                serde_json::json!({"metadata": {"name": "web", "namespace": "shop", "uid": "u-1"}}),
            )
            .unwrap(),
        );
        let b = binding_for(&pod, "node-a");
        assert_eq!(b["metadata"]["uid"], "u-1");
        assert_eq!(b["metadata"]["namespace"], "shop");
        assert_eq!(
            b["target"],
            serde_json::json!({"kind": "Node", "name": "node-a"})
        );
    }
}
