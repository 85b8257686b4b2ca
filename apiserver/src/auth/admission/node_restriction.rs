//! The NodeRestriction admission plugin: a kubelet (`system:node:<name>`) may only
//! write its own Node (not its taints, nor `node-restriction.kubernetes.io/` labels),
//! its own Lease, mirror pods bound to itself, and the status and deletion of pods
//! bound to itself, with upstream's messages.

use apimachinery::errors::StatusError;
use serde_json::Value;

use super::{Attributes, Operation, Plugin};
use crate::auth::authz::node::node_name;
use crate::registry::meta;

const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";
const RESTRICTED_LABEL_PREFIX: &str = "node-restriction.kubernetes.io/";

/// `NodeRestriction`.
pub struct NodeRestriction;

fn bound_to(pod: Option<&Value>, node: &str) -> bool {
    pod.is_some_and(|p| p["spec"]["nodeName"].as_str() == Some(node))
}

fn restricted_labels(object: &Value) -> Vec<String> {
    let mut labels: Vec<String> = meta::labels(object)
        .into_keys()
        .filter(|k| {
            k.split_once('/').is_some_and(|(prefix, _)| {
                prefix == "node-restriction.kubernetes.io"
                    || prefix.ends_with(".node-restriction.kubernetes.io")
            }) || k.starts_with(RESTRICTED_LABEL_PREFIX)
        })
        .collect();
    labels.sort();
    labels
}

#[async_trait::async_trait]
impl Plugin for NodeRestriction {
    fn name(&self) -> &'static str {
        "NodeRestriction"
    }

    async fn validate(
        &self,
        attributes: &Attributes<'_>,
        object: &Value,
    ) -> Result<(), StatusError> {
        let Some(node) = node_name(attributes.user) else {
            return Ok(());
        };
        let resource = attributes.resource;
        if !resource.group.is_empty() && resource.group != "coordination.k8s.io" {
            return Ok(());
        }
        match (
            resource.plural,
            attributes.subresource,
            attributes.operation,
        ) {
            ("pods", "", Operation::Create) => {
                if meta::annotation(object, MIRROR_ANNOTATION).is_none() {
                    return Err(attributes.forbidden(format!(
                        "pod does not have \"{MIRROR_ANNOTATION}\" annotation, node \"{node}\" can only create mirror pods"
                    )));
                }
                if !bound_to(Some(object), node) {
                    return Err(attributes.forbidden(format!(
                        "node \"{node}\" can only create pods with spec.nodeName set to itself"
                    )));
                }
            }
            ("pods", "", Operation::Delete) if !bound_to(attributes.old, node) => {
                return Err(attributes.forbidden(format!(
                    "node \"{node}\" can only delete pods with spec.nodeName set to itself"
                )));
            }
            ("pods", "status", _) if !bound_to(attributes.old, node) => {
                return Err(attributes.forbidden(format!(
                    "node \"{node}\" can only update pod status for pods with spec.nodeName set to itself"
                )));
            }
            ("pods", "", Operation::Update) => {
                return Err(
                    attributes.forbidden(format!("node \"{node}\" can only update pod status"))
                );
            }
            ("nodes", _, Operation::Create | Operation::Update) => {
                let name = meta::name(object);
                if name != node {
                    return Err(attributes.forbidden(format!(
                        "node \"{node}\" is not allowed to modify node \"{name}\""
                    )));
                }
                let old_labels = attributes.old.map(restricted_labels).unwrap_or_default();
                let new_labels = restricted_labels(object);
                if attributes.operation == Operation::Create && !new_labels.is_empty()
                    || attributes.operation == Operation::Update && new_labels != old_labels
                {
                    return Err(attributes.forbidden(format!(
                        "is not allowed to modify labels: {}",
                        new_labels.join(", ")
                    )));
                }
                if attributes.operation == Operation::Update
                    && let Some(old) = attributes.old
                    && attributes.subresource.is_empty()
                    && old["spec"]["taints"] != object["spec"]["taints"]
                {
                    return Err(attributes
                        .forbidden(format!("node \"{node}\" is not allowed to modify taints")));
                }
            }
            ("nodes", _, Operation::Delete) if attributes.name != node => {
                return Err(attributes.forbidden(format!(
                    "node \"{node}\" is not allowed to modify node \"{}\"",
                    attributes.name
                )));
            }
            ("leases", _, _) if resource.group == "coordination.k8s.io" => {
                if attributes.namespace == "kube-node-lease" && attributes.name != node {
                    return Err(attributes.forbidden(
                        "can only access node lease with the same name as the requesting node",
                    ));
                }
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::UserInfo;
    use apimachinery::resources::find;
    use serde_json::json;

    #[tokio::test]
    async fn a_kubelet_writes_only_its_own_objects() {
        let kubelet = UserInfo::new("system:node:n1", &["system:nodes"]);
        let at = |plural: &str, subresource: &'static str, operation, name: &'static str, old| {
            Attributes {
                operation,
                resource: find("", "v1", plural).unwrap(),
                subresource,
                namespace: if plural == "pods" { "default" } else { "" },
                name,
                old,
                user: &kubelet,
                dry_run: false,
            }
        };
        let other_node = json!({"metadata": {"name": "n2"}});
        let err = NodeRestriction
            .validate(
                &at("nodes", "", Operation::Update, "n2", Some(&other_node)),
                &other_node,
            )
            .await
            .unwrap_err();
        assert_eq!(
            err.status().message,
            r#"nodes "n2" is forbidden: node "n1" is not allowed to modify node "n2""#
        );
        let own = json!({"metadata": {"name": "n1"}});
        NodeRestriction
            .validate(
                &at("nodes", "status", Operation::Update, "n1", Some(&own)),
                &own,
            )
            .await
            .unwrap();

        let pod = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1"}});
        let err = NodeRestriction
            .validate(&at("pods", "", Operation::Create, "p", None), &pod)
            .await
            .unwrap_err();
        assert!(
            err.status().message.contains("can only create mirror pods"),
            "{err:?}"
        );
        let foreign = json!({"metadata": {"name": "q"}, "spec": {"nodeName": "n2"}});
        let err = NodeRestriction
            .validate(
                &at("pods", "status", Operation::Update, "q", Some(&foreign)),
                &foreign,
            )
            .await
            .unwrap_err();
        assert_eq!(
            err.status().message,
            r#"pods "q" is forbidden: node "n1" can only update pod status for pods with spec.nodeName set to itself"#
        );
        // other users are not this plugin's concern
        let jane = UserInfo::new("jane", &[]);
        let mut attributes = at("nodes", "", Operation::Update, "n2", Some(&other_node));
        attributes.user = &jane;
        NodeRestriction
            .validate(&attributes, &other_node)
            .await
            .unwrap();
    }
}
