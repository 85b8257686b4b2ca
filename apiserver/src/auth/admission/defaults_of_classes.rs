//! Admission plugins that fill in or check a class an object refers to, as upstream's
//! plugins of the same names:
//!
//! - DefaultStorageClass: a claim without a class gets the default StorageClass
//!   (annotated `storageclass.kubernetes.io/is-default-class: "true"`; the newest when
//!   several are);
//! - DefaultIngressClass: the same for Ingresses and IngressClasses
//!   (`ingressclass.kubernetes.io/is-default-class`);
//! - StorageObjectInUseProtection: new claims and volumes get the protection
//!   finalizers, so one in use is not removed under a pod;
//! - RuntimeClass: a pod's RuntimeClass must exist; its overhead, node selector and
//!   tolerations are applied to the pod.

use std::sync::Arc;

use apimachinery::errors::StatusError;
use apimachinery::resources::{self, ResourceInfo};
use serde_json::{Value, json};

use super::{Attributes, Operation, Plugin};
use crate::registry::informer::Informer;
use crate::registry::{Registry, meta};

fn resource(group: &str, version: &str, plural: &str) -> &'static ResourceInfo {
    resources::find(group, version, plural).expect("served resource")
}

/// The name of the default class among `classes` marked by one of `annotations` (the
/// newest when several are).
fn default_class(classes: &Informer, annotations: &[&str]) -> Option<String> {
    let mut defaults: Vec<Arc<Value>> = classes
        .list()
        .into_iter()
        .filter(|c| {
            annotations
                .iter()
                .any(|a| meta::annotation(c, a) == Some("true"))
        })
        .collect();
    defaults.sort_by(|a, b| {
        let created = |o: &Value| {
            meta::meta_str(o, "creationTimestamp")
                .unwrap_or("")
                .to_owned()
        };
        created(b)
            .cmp(&created(a))
            .then_with(|| meta::name(a).cmp(meta::name(b)))
    });
    defaults.first().map(|c| meta::name(c).to_owned())
}

/// `DefaultStorageClass`.
pub struct DefaultStorageClass {
    classes: Arc<Informer>,
}

impl DefaultStorageClass {
    /// Follows the StorageClasses through `registry`.
    pub fn new(registry: &Registry) -> Self {
        DefaultStorageClass {
            classes: Informer::start(
                registry.clone(),
                resource("storage.k8s.io", "v1", "storageclasses"),
            ),
        }
    }
}

#[async_trait::async_trait]
impl Plugin for DefaultStorageClass {
    fn name(&self) -> &'static str {
        "DefaultStorageClass"
    }

    async fn mutate(
        &self,
        attributes: &Attributes<'_>,
        claim: &mut Value,
    ) -> Result<(), StatusError> {
        if attributes.operation != Operation::Create
            || !attributes.is("", "persistentvolumeclaims", "")
        {
            return Ok(());
        }
        let has_class = !claim["spec"]["storageClassName"].is_null()
            || meta::annotation(claim, "volume.beta.kubernetes.io/storage-class").is_some();
        if has_class || !claim["spec"].is_object() {
            return Ok(());
        }
        if let Some(class) = default_class(
            &self.classes,
            // upstream's IsDefaultAnnotation: the GA or the beta annotation
            &[
                "storageclass.kubernetes.io/is-default-class",
                "storageclass.beta.kubernetes.io/is-default-class",
            ],
        ) {
            claim["spec"]["storageClassName"] = class.into();
        }
        Ok(())
    }
}

/// `DefaultIngressClass`.
pub struct DefaultIngressClass {
    classes: Arc<Informer>,
}

impl DefaultIngressClass {
    /// Follows the IngressClasses through `registry`.
    pub fn new(registry: &Registry) -> Self {
        DefaultIngressClass {
            classes: Informer::start(
                registry.clone(),
                resource("networking.k8s.io", "v1", "ingressclasses"),
            ),
        }
    }
}

#[async_trait::async_trait]
impl Plugin for DefaultIngressClass {
    fn name(&self) -> &'static str {
        "DefaultIngressClass"
    }

    async fn mutate(
        &self,
        attributes: &Attributes<'_>,
        ingress: &mut Value,
    ) -> Result<(), StatusError> {
        if attributes.operation != Operation::Create
            || !attributes.is("networking.k8s.io", "ingresses", "")
        {
            return Ok(());
        }
        let has_class = !ingress["spec"]["ingressClassName"].is_null()
            || meta::annotation(ingress, "kubernetes.io/ingress.class").is_some();
        if has_class || !ingress["spec"].is_object() {
            return Ok(());
        }
        if let Some(class) = default_class(
            &self.classes,
            &["ingressclass.kubernetes.io/is-default-class"],
        ) {
            ingress["spec"]["ingressClassName"] = class.into();
        }
        Ok(())
    }
}

/// `StorageObjectInUseProtection`.
pub struct StorageObjectInUseProtection;

#[async_trait::async_trait]
impl Plugin for StorageObjectInUseProtection {
    fn name(&self) -> &'static str {
        "StorageObjectInUseProtection"
    }

    async fn mutate(
        &self,
        attributes: &Attributes<'_>,
        object: &mut Value,
    ) -> Result<(), StatusError> {
        if attributes.operation != Operation::Create || !attributes.subresource.is_empty() {
            return Ok(());
        }
        let finalizer = match (attributes.resource.group, attributes.resource.plural) {
            ("", "persistentvolumeclaims") => "kubernetes.io/pvc-protection",
            ("", "persistentvolumes") => "kubernetes.io/pv-protection",
            _ => return Ok(()),
        };
        let mut finalizers = meta::finalizers(object);
        if !finalizers.iter().any(|f| f == finalizer) {
            finalizers.push(finalizer.to_owned());
            meta::set_meta(object, "finalizers", json!(finalizers));
        }
        Ok(())
    }
}

/// `RuntimeClass`.
pub struct RuntimeClass {
    registry: Registry,
}

impl RuntimeClass {
    /// Looks RuntimeClasses up through `registry`.
    pub fn new(registry: Registry) -> Self {
        RuntimeClass { registry }
    }
}

#[async_trait::async_trait]
impl Plugin for RuntimeClass {
    fn name(&self) -> &'static str {
        "RuntimeClass"
    }

    async fn mutate(
        &self,
        attributes: &Attributes<'_>,
        pod: &mut Value,
    ) -> Result<(), StatusError> {
        if attributes.operation != Operation::Create || !attributes.is("", "pods", "") {
            return Ok(());
        }
        let Some(name) = pod["spec"]["runtimeClassName"]
            .as_str()
            .filter(|n| !n.is_empty())
        else {
            return Ok(());
        };
        let name = name.to_owned();
        let class = match self
            .registry
            .get(resource("node.k8s.io", "v1", "runtimeclasses"), None, &name)
            .await
        {
            Ok(class) => class,
            Err(e) if e.is_not_found() => {
                return Err(attributes.forbidden(format!(
                    "pod rejected: RuntimeClass {} not found",
                    apimachinery::errors::go_quote(&name)
                )));
            }
            Err(e) => return Err(e),
        };
        let overhead = &class["overhead"]["podFixed"];
        if overhead.is_object() {
            match &pod["spec"]["overhead"] {
                Value::Null => pod["spec"]["overhead"] = overhead.clone(),
                existing if existing != overhead => {
                    return Err(attributes.forbidden(
                        "pod rejected: Pod's Overhead doesn't match RuntimeClass's defined Overhead",
                    ));
                }
                _ => {}
            }
        }
        if let Some(selector) = class["scheduling"]["nodeSelector"].as_object() {
            for (key, value) in selector {
                match pod["spec"]["nodeSelector"].get(key) {
                    Some(existing) if existing != value => {
                        return Err(attributes.forbidden(
                            "pod rejected: conflict between pod and RuntimeClass node selectors",
                        ));
                    }
                    Some(_) => {}
                    None => {
                        if !pod["spec"]["nodeSelector"].is_object() {
                            pod["spec"]["nodeSelector"] = json!({});
                        }
                        pod["spec"]["nodeSelector"][key] = value.clone();
                    }
                }
            }
        }
        if let Some(extra) = class["scheduling"]["tolerations"].as_array() {
            let mut tolerations = pod["spec"]["tolerations"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for toleration in extra {
                if !tolerations.contains(toleration) {
                    tolerations.push(toleration.clone());
                }
            }
            pod["spec"]["tolerations"] = tolerations.into();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::UserInfo;
    use crate::registry::validation::tester::registry;
    use std::time::Duration;

    fn attributes<'a>(resource: &'static ResourceInfo, user: &'a UserInfo) -> Attributes<'a> {
        Attributes {
            operation: Operation::Create,
            resource,
            subresource: "",
            namespace: "default",
            name: "x",
            old: None,
            user,
            dry_run: false,
        }
    }

    #[tokio::test]
    async fn claims_get_the_newest_default_class_and_a_finalizer() {
        let registry = registry().await;
        let classes = resource("storage.k8s.io", "v1", "storageclasses");
        for name in ["fast", "slow"] {
            let class = json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                "metadata": {"name": name, "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
                "provisioner": "example.com/p"});
            registry.create(classes, None, class, false).await.unwrap();
            tokio::time::sleep(Duration::from_millis(1100)).await;
        }
        let plugin = DefaultStorageClass::new(&registry);
        assert!(plugin.classes.wait_synced(Duration::from_secs(5)).await);
        let user = UserInfo::new("jane", &[]);
        let claims = resource("", "v1", "persistentvolumeclaims");
        let mut claim = json!({"metadata": {"name": "x"}, "spec": {}});
        plugin
            .mutate(&attributes(claims, &user), &mut claim)
            .await
            .unwrap();
        assert_eq!(claim["spec"]["storageClassName"], "slow");
        let mut explicit = json!({"metadata": {"name": "x"}, "spec": {"storageClassName": ""}});
        plugin
            .mutate(&attributes(claims, &user), &mut explicit)
            .await
            .unwrap();
        assert_eq!(explicit["spec"]["storageClassName"], "");

        StorageObjectInUseProtection
            .mutate(&attributes(claims, &user), &mut claim)
            .await
            .unwrap();
        assert_eq!(
            claim["metadata"]["finalizers"],
            json!(["kubernetes.io/pvc-protection"])
        );
    }

    #[tokio::test]
    async fn a_missing_runtime_class_refuses_the_pod_and_a_present_one_applies() {
        let registry = registry().await;
        let plugin = RuntimeClass::new(registry.clone());
        let user = UserInfo::new("jane", &[]);
        let pods = resource("", "v1", "pods");
        let mut pod = json!({"metadata": {"name": "x"}, "spec": {"runtimeClassName": "gvisor", "containers": []}});
        let err = plugin
            .mutate(&attributes(pods, &user), &mut pod)
            .await
            .unwrap_err();
        assert_eq!(err.http_status(), 403);
        assert_eq!(
            err.status().message,
            r#"pods "x" is forbidden: pod rejected: RuntimeClass "gvisor" not found"#
        );
        let class = json!({"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass",
            "metadata": {"name": "gvisor"}, "handler": "runsc",
            "overhead": {"podFixed": {"cpu": "250m"}},
            "scheduling": {"nodeSelector": {"sandbox": "true"}}});
        registry
            .create(
                resource("node.k8s.io", "v1", "runtimeclasses"),
                None,
                class,
                false,
            )
            .await
            .unwrap();
        plugin
            .mutate(&attributes(pods, &user), &mut pod)
            .await
            .unwrap();
        assert_eq!(pod["spec"]["overhead"], json!({"cpu": "250m"}));
        assert_eq!(pod["spec"]["nodeSelector"], json!({"sandbox": "true"}));
    }
}
