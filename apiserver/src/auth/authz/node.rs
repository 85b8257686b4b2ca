//! The Node authorizer: a kubelet (user `system:node:<name>` in `system:nodes`) may
//! read the secrets, configmaps, persistent volume claims and volumes of the pods bound
//! to its node, and request tokens for their service accounts, and nothing of other
//! nodes' pods. Everything else a kubelet does is checked against the `system:node`
//! role's rules, as upstream's authorizer does. Other users get no opinion.
//!
//! Upstream keeps a graph of these relations; here they are found by walking the
//! node's pods in the pods informer when a request needs them.

use std::sync::Arc;

use serde_json::Value;

use super::rbac::PolicyRule;
use super::{Authorize, Decision, RulesAnswer};
use crate::auth::UserInfo;
use crate::auth::request_info::RequestInfo;
use crate::registry::informer::Informer;
use crate::registry::meta;

/// The group every kubelet's user is in.
pub const NODES_GROUP: &str = "system:nodes";
/// The prefix of a kubelet's user name.
pub const NODE_USER_PREFIX: &str = "system:node:";

/// The node a user is the kubelet of, when it is one.
pub fn node_name(user: &UserInfo) -> Option<&str> {
    if !user.in_group(NODES_GROUP) {
        return None;
    }
    user.name
        .strip_prefix(NODE_USER_PREFIX)
        .filter(|n| !n.is_empty())
}

/// `--authorization-mode=Node`.
pub struct NodeAuthorizer {
    pods: Arc<Informer>,
    claims: Arc<Informer>,
    rules: Vec<PolicyRule>,
}

impl NodeAuthorizer {
    /// An authorizer over the pods and claims informers.
    pub fn new(pods: Arc<Informer>, claims: Arc<Informer>) -> Self {
        NodeAuthorizer {
            pods,
            claims,
            rules: super::bootstrap_policy::cluster_role_rules("system:node"),
        }
    }

    /// Whether a pod bound to `node` refers to the `resource` object `namespace/name`.
    fn related(&self, node: &str, resource: &str, namespace: &str, name: &str) -> bool {
        let pods = self.pods.list_namespace(namespace);
        let on_node = pods
            .iter()
            .filter(|p| p["spec"]["nodeName"].as_str() == Some(node));
        match resource {
            "secrets" => on_node
                .into_iter()
                .any(|p| references(p, "secret").iter().any(|n| n == name)),
            "configmaps" => on_node
                .into_iter()
                .any(|p| references(p, "configmap").iter().any(|n| n == name)),
            "persistentvolumeclaims" => on_node
                .into_iter()
                .any(|p| references(p, "claim").iter().any(|n| n == name)),
            "serviceaccounts" => on_node.into_iter().any(|p| {
                p["spec"]["serviceAccountName"]
                    .as_str()
                    .unwrap_or("default")
                    == name
            }),
            _ => false,
        }
    }

    /// Whether a claim used by a pod on `node` is bound to the volume `name`.
    fn related_volume(&self, node: &str, name: &str) -> bool {
        self.claims.list().iter().any(|claim| {
            claim["spec"]["volumeName"].as_str() == Some(name)
                && self.related(
                    node,
                    "persistentvolumeclaims",
                    meta::namespace(claim),
                    meta::name(claim),
                )
        })
    }
}

/// The names of the objects of one kind (`secret`, `configmap`, `claim`) a pod uses:
/// volumes (projected ones too), environment references and image pull secrets.
fn references(pod: &Value, kind: &str) -> Vec<String> {
    let spec = &pod["spec"];
    let mut names = Vec::new();
    let mut push = |v: &Value| {
        if let Some(n) = v.as_str() {
            names.push(n.to_owned());
        }
    };
    for volume in spec["volumes"].as_array().into_iter().flatten() {
        match kind {
            "secret" => push(&volume["secret"]["secretName"]),
            "configmap" => push(&volume["configMap"]["name"]),
            "claim" => push(&volume["persistentVolumeClaim"]["claimName"]),
            _ => {}
        }
        for source in volume["projected"]["sources"]
            .as_array()
            .into_iter()
            .flatten()
        {
            match kind {
                "secret" => push(&source["secret"]["name"]),
                "configmap" => push(&source["configMap"]["name"]),
                _ => {}
            }
        }
        if kind == "secret" {
            for driver in [
                "azureFile",
                "cephfs",
                "cinder",
                "flexVolume",
                "iscsi",
                "rbd",
                "scaleIO",
                "storageos",
                "csi",
            ] {
                push(&volume[driver]["secretRef"]["name"]);
                push(&volume[driver]["nodePublishSecretRef"]["name"]);
            }
        }
    }
    if kind == "secret" {
        for secret in spec["imagePullSecrets"].as_array().into_iter().flatten() {
            push(&secret["name"]);
        }
    }
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        for container in spec[list].as_array().into_iter().flatten() {
            for env in container["env"].as_array().into_iter().flatten() {
                match kind {
                    "secret" => push(&env["valueFrom"]["secretKeyRef"]["name"]),
                    "configmap" => push(&env["valueFrom"]["configMapKeyRef"]["name"]),
                    _ => {}
                }
            }
            for from in container["envFrom"].as_array().into_iter().flatten() {
                match kind {
                    "secret" => push(&from["secretRef"]["name"]),
                    "configmap" => push(&from["configMapRef"]["name"]),
                    _ => {}
                }
            }
        }
    }
    names
}

#[async_trait::async_trait]
impl Authorize for NodeAuthorizer {
    async fn authorize(&self, user: &UserInfo, request: &RequestInfo) -> (Decision, String) {
        let Some(node) = node_name(user) else {
            return (Decision::NoOpinion, String::new());
        };
        let no_relation = || {
            (
                Decision::NoOpinion,
                format!("no relationship found between node '{node}' and this object"),
            )
        };
        if request.is_resource_request && request.api_group.is_empty() {
            let graph_checked = matches!(
                (request.resource.as_str(), request.subresource.as_str()),
                (
                    "secrets" | "configmaps" | "persistentvolumeclaims" | "persistentvolumes",
                    ""
                ) | ("serviceaccounts", "token")
            );
            if graph_checked {
                let verb_ok = if request.subresource == "token" {
                    request.verb == "create"
                } else {
                    matches!(request.verb.as_str(), "get" | "list" | "watch")
                };
                if !verb_ok || request.name.is_empty() {
                    return (
                        Decision::NoOpinion,
                        "can only get individual resources of this type".into(),
                    );
                }
                let related = if request.resource == "persistentvolumes" {
                    self.related_volume(node, &request.name)
                } else {
                    self.related(node, &request.resource, &request.namespace, &request.name)
                };
                return if related {
                    (Decision::Allow, String::new())
                } else {
                    no_relation()
                };
            }
        }
        if self.rules.iter().any(|r| r.allows(request)) {
            (Decision::Allow, String::new())
        } else {
            (Decision::NoOpinion, String::new())
        }
    }

    async fn rules_for(&self, user: &UserInfo, _: &str) -> RulesAnswer {
        if node_name(user).is_none() {
            return RulesAnswer::default();
        }
        RulesAnswer {
            resource_rules: self
                .rules
                .iter()
                .filter(|r| r.non_resource_urls.is_empty())
                .cloned()
                .collect(),
            incomplete: true,
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_pod_refers_to_its_volumes_env_and_pull_secrets() {
        let pod = json!({"spec": {
            "volumes": [
                {"name": "a", "secret": {"secretName": "s1"}},
                {"name": "b", "configMap": {"name": "c1"}},
                {"name": "c", "persistentVolumeClaim": {"claimName": "data"}},
                {"name": "d", "projected": {"sources": [{"secret": {"name": "s2"}}, {"configMap": {"name": "c2"}}]}}
            ],
            "imagePullSecrets": [{"name": "pull"}],
            "containers": [{"name": "x",
                "env": [{"name": "E", "valueFrom": {"secretKeyRef": {"name": "s3", "key": "k"}}}],
                "envFrom": [{"configMapRef": {"name": "c3"}}]}]
        }});
        assert_eq!(references(&pod, "secret"), ["s1", "s2", "pull", "s3"]);
        assert_eq!(references(&pod, "configmap"), ["c1", "c2", "c3"]);
        assert_eq!(references(&pod, "claim"), ["data"]);
    }

    #[test]
    fn only_kubelets_have_a_node_name() {
        assert_eq!(
            node_name(&UserInfo::new("system:node:n1", &[NODES_GROUP])),
            Some("n1")
        );
        assert_eq!(node_name(&UserInfo::new("system:node:n1", &[])), None);
        assert_eq!(node_name(&UserInfo::new("jane", &[NODES_GROUP])), None);
    }
}
