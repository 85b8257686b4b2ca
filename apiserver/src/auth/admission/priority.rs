//! The Priority admission plugin: a new pod's `priority` (and `preemptionPolicy`) come
//! from its PriorityClass, or the global default class, or 0; a class that does not
//! exist, or a priority the pod sets itself that disagrees, is refused with upstream's
//! messages. It also keeps a single PriorityClass marked `globalDefault`.

use std::sync::Arc;

use apimachinery::errors::StatusError;
use apimachinery::resources;
use serde_json::Value;

use super::{Attributes, Operation, Plugin};
use crate::registry::informer::Informer;
use crate::registry::{Registry, meta};

const DEFAULT_PREEMPTION: &str = "PreemptLowerPriority";

/// `Priority`.
pub struct Priority {
    classes: Arc<Informer>,
}

impl Priority {
    /// Follows the PriorityClasses through `registry`.
    pub fn new(registry: Registry) -> Self {
        let classes = resources::find("scheduling.k8s.io", "v1", "priorityclasses")
            .expect("PriorityClasses are served");
        Priority {
            classes: Informer::start(registry, classes),
        }
    }

    fn global_default(&self) -> Option<Arc<Value>> {
        let mut defaults: Vec<Arc<Value>> = self
            .classes
            .list()
            .into_iter()
            .filter(|c| c["globalDefault"] == true)
            .collect();
        // several can exist after a race; upstream takes the lowest value
        defaults.sort_by_key(|c| c["value"].as_i64().unwrap_or(0));
        defaults.into_iter().next()
    }
}

#[async_trait::async_trait]
impl Plugin for Priority {
    fn name(&self) -> &'static str {
        "Priority"
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
        let requested = pod["spec"]["priorityClassName"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        let (class_name, priority, preemption) = if requested.is_empty() {
            match self.global_default() {
                Some(class) => (
                    meta::name(&class).to_owned(),
                    class["value"].as_i64().unwrap_or(0),
                    class["preemptionPolicy"]
                        .as_str()
                        .unwrap_or(DEFAULT_PREEMPTION)
                        .to_owned(),
                ),
                None => (String::new(), 0, DEFAULT_PREEMPTION.to_owned()),
            }
        } else {
            let Some(class) = self.classes.get("", &requested) else {
                return Err(attributes
                    .forbidden(format!("no PriorityClass with name {requested} was found")));
            };
            (
                requested,
                class["value"].as_i64().unwrap_or(0),
                class["preemptionPolicy"]
                    .as_str()
                    .unwrap_or(DEFAULT_PREEMPTION)
                    .to_owned(),
            )
        };
        if let Some(given) = pod["spec"]["priority"].as_i64()
            && given != priority
        {
            return Err(attributes.forbidden(format!(
                "the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {priority} from the given PriorityClass name"
            )));
        }
        if let Some(given) = pod["spec"]["preemptionPolicy"].as_str()
            && given != preemption
        {
            return Err(attributes.forbidden(format!(
                "the string value of PreemptionPolicy ({given}) must not be provided in pod spec; priority admission controller computed {preemption} from the given PriorityClass name"
            )));
        }
        if !class_name.is_empty() {
            pod["spec"]["priorityClassName"] = class_name.into();
        }
        pod["spec"]["priority"] = priority.into();
        pod["spec"]["preemptionPolicy"] = preemption.into();
        Ok(())
    }

    async fn validate(
        &self,
        attributes: &Attributes<'_>,
        class: &Value,
    ) -> Result<(), StatusError> {
        if attributes.operation == Operation::Delete
            || !attributes.is("scheduling.k8s.io", "priorityclasses", "")
            || class["globalDefault"] != true
        {
            return Ok(());
        }
        if let Some(existing) = self.global_default()
            && meta::name(&existing) != meta::name(class)
        {
            return Err(attributes.forbidden(format!(
                "PriorityClass {} is already marked as default. Only one default can exist",
                meta::name(&existing)
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::UserInfo;
    use crate::registry::validation::tester::registry;
    use serde_json::json;
    use std::time::Duration;

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
    async fn priority_comes_from_the_class() {
        let registry = registry().await;
        let classes = resources::find("scheduling.k8s.io", "v1", "priorityclasses").unwrap();
        registry
            .create(
                classes,
                None,
                json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                    "metadata": {"name": "high"}, "value": 1000}),
                false,
            )
            .await
            .unwrap();
        let plugin = Priority::new(registry);
        assert!(plugin.classes.wait_synced(Duration::from_secs(5)).await);
        let user = UserInfo::new("jane", &[]);

        let mut pod = json!({"spec": {"priorityClassName": "high", "containers": []}});
        plugin.mutate(&attributes(&user), &mut pod).await.unwrap();
        assert_eq!(pod["spec"]["priority"], 1000);
        assert_eq!(pod["spec"]["preemptionPolicy"], "PreemptLowerPriority");

        let mut plain = json!({"spec": {"containers": []}});
        plugin.mutate(&attributes(&user), &mut plain).await.unwrap();
        assert_eq!(plain["spec"]["priority"], 0);

        let mut missing = json!({"spec": {"priorityClassName": "nope"}});
        let err = plugin
            .mutate(&attributes(&user), &mut missing)
            .await
            .unwrap_err();
        assert_eq!(
            err.status().message,
            r#"pods "web" is forbidden: no PriorityClass with name nope was found"#
        );
        let mut lying = json!({"spec": {"priorityClassName": "high", "priority": 5}});
        let err = plugin
            .mutate(&attributes(&user), &mut lying)
            .await
            .unwrap_err();
        assert_eq!(
            err.status().message,
            r#"pods "web" is forbidden: the integer value of priority (5) must not be provided in pod spec; priority admission controller computed 1000 from the given PriorityClass name"#
        );
    }
}
