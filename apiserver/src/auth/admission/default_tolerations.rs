//! Two small pod and node defaults, as upstream's plugins of the same names:
//!
//! - DefaultTolerationSeconds: a pod that does not tolerate the `not-ready` and
//!   `unreachable` NoExecute taints gets tolerations for them of 300 seconds, so its
//!   node's failure evicts it after five minutes;
//! - TaintNodesByCondition: a new Node starts tainted `node.kubernetes.io/not-ready`
//!   NoSchedule until its kubelet reports Ready.

use apimachinery::errors::StatusError;
use serde_json::{Value, json};

use super::{Attributes, Operation, Plugin};

const NOT_READY: &str = "node.kubernetes.io/not-ready";
const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
const DEFAULT_SECONDS: i64 = 300;

/// `DefaultTolerationSeconds`.
pub struct DefaultTolerationSeconds;

/// Whether `toleration` tolerates the NoExecute taint `key` (any value).
fn tolerates(toleration: &Value, key: &str) -> bool {
    let effect_ok = matches!(
        toleration["effect"].as_str(),
        None | Some("") | Some("NoExecute")
    );
    let key_ok = match toleration["key"].as_str() {
        None | Some("") => toleration["operator"].as_str() == Some("Exists"),
        Some(k) => k == key,
    };
    effect_ok && key_ok
}

#[async_trait::async_trait]
impl Plugin for DefaultTolerationSeconds {
    fn name(&self) -> &'static str {
        "DefaultTolerationSeconds"
    }

    async fn mutate(
        &self,
        attributes: &Attributes<'_>,
        pod: &mut Value,
    ) -> Result<(), StatusError> {
        if attributes.operation != Operation::Create || !attributes.is("", "pods", "") {
            return Ok(());
        }
        let existing: Vec<Value> = pod["spec"]["tolerations"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut tolerations = existing.clone();
        for key in [NOT_READY, UNREACHABLE] {
            if !existing.iter().any(|t| tolerates(t, key)) {
                tolerations.push(json!({
                    "key": key,
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": DEFAULT_SECONDS,
                }));
            }
        }
        if tolerations.len() != existing.len() && pod["spec"].is_object() {
            pod["spec"]["tolerations"] = tolerations.into();
        }
        Ok(())
    }
}

/// `TaintNodesByCondition`.
pub struct TaintNodesByCondition;

#[async_trait::async_trait]
impl Plugin for TaintNodesByCondition {
    fn name(&self) -> &'static str {
        "TaintNodesByCondition"
    }

    async fn mutate(
        &self,
        attributes: &Attributes<'_>,
        node: &mut Value,
    ) -> Result<(), StatusError> {
        if attributes.operation != Operation::Create || !attributes.is("", "nodes", "") {
            return Ok(());
        }
        if !node["spec"].is_object() {
            node["spec"] = json!({});
        }
        let mut taints = node["spec"]["taints"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let present = taints
            .iter()
            .any(|t| t["key"] == NOT_READY && t["effect"] == "NoSchedule");
        if !present {
            taints.push(json!({ "key": NOT_READY, "effect": "NoSchedule" }));
            node["spec"]["taints"] = taints.into();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::UserInfo;
    use apimachinery::resources::find;

    fn attributes<'a>(plural: &str, user: &'a UserInfo) -> Attributes<'a> {
        Attributes {
            operation: Operation::Create,
            resource: find("", "v1", plural).unwrap(),
            subresource: "",
            namespace: "",
            name: "x",
            old: None,
            user,
            dry_run: false,
        }
    }

    #[tokio::test]
    async fn pods_get_five_minute_tolerations_unless_they_have_their_own() {
        let user = UserInfo::new("jane", &[]);
        let mut pod = json!({"spec": {"containers": []}});
        DefaultTolerationSeconds
            .mutate(&attributes("pods", &user), &mut pod)
            .await
            .unwrap();
        assert_eq!(
            pod["spec"]["tolerations"],
            json!([
                {"key": NOT_READY, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
            ])
        );
        let mut tolerant = json!({"spec": {"tolerations": [{"operator": "Exists"}]}});
        DefaultTolerationSeconds
            .mutate(&attributes("pods", &user), &mut tolerant)
            .await
            .unwrap();
        assert_eq!(
            tolerant["spec"]["tolerations"],
            json!([{"operator": "Exists"}])
        );
    }

    #[tokio::test]
    async fn new_nodes_are_not_ready_until_their_kubelet_says_so() {
        let user = UserInfo::new("system:node:n1", &["system:nodes"]);
        let mut node = json!({"metadata": {"name": "n1"}});
        TaintNodesByCondition
            .mutate(&attributes("nodes", &user), &mut node)
            .await
            .unwrap();
        assert_eq!(
            node["spec"]["taints"],
            json!([{"key": NOT_READY, "effect": "NoSchedule"}])
        );
    }
}
