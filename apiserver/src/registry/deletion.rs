//! Deletion, as upstream's `genericregistry.Store.Delete` with `rest.BeforeDelete` and
//! the pod strategy's `CheckGracefulDelete`:
//!
//! - an object with finalizers, or one whose DeleteOptions ask the garbage collector
//!   to orphan its dependents or delete them first (`propagationPolicy` Orphan or
//!   Foreground, which add the `orphan` / `foregroundDeletion` finalizers), is only
//!   marked: `deletionTimestamp` set, removal left to whoever holds the finalizers;
//! - a pod bound to a node is deleted gracefully: marked with a deletionTimestamp
//!   `gracePeriodSeconds` ahead (the request's, else the pod's
//!   terminationGracePeriodSeconds) for its kubelet to stop it; an unbound or finished
//!   pod, or a grace period of 0 (`kubectl delete --force --grace-period=0`), goes at
//!   once;
//! - a second delete may only shorten a pending grace period;
//! - a namespace is marked Terminating for the namespace controller to empty;
//! - everything else is removed from storage at once.

use apimachinery::errors::{FieldError, StatusError};
use apimachinery::resources::{GroupKind, ResourceInfo};
use serde_json::{Value, json};

use super::{ListParams, Registry, decode, key, meta, services, storage_error};
use crate::auth::admission::Operation;
use crate::storage::{Preconditions, StorageError};

/// What upstream's `metav1.DeleteOptions` can ask of a delete.
#[derive(Clone, Debug, Default)]
pub struct DeleteOptions {
    /// `preconditions` (uid, resourceVersion).
    pub preconditions: Preconditions,
    /// `gracePeriodSeconds`.
    pub grace_period_seconds: Option<i64>,
    /// `propagationPolicy` (or the deprecated `orphanDependents`): Orphan, Background
    /// or Foreground.
    pub propagation_policy: Option<String>,
}

impl DeleteOptions {
    /// Reads DeleteOptions from their JSON form, validated as upstream's
    /// `ValidateDeleteOptions` (422 for `DeleteOptions.meta.k8s.io`).
    pub fn from_json(options: &Value) -> Result<Self, StatusError> {
        let preconditions = &options["preconditions"];
        let resource_version = match preconditions["resourceVersion"].as_str() {
            Some(rv) => Some(super::parse_resource_version(rv)?),
            None => None,
        };
        let mut errors = Vec::new();
        let orphan = options["orphanDependents"].as_bool();
        let mut policy = options["propagationPolicy"].as_str().map(str::to_owned);
        if let Some(p) = &policy {
            if orphan.is_some() {
                errors.push(FieldError::invalid(
                    "propagationPolicy",
                    p.as_str(),
                    "orphanDependents and deletionPropagation cannot be both set",
                ));
            }
            if !["Orphan", "Background", "Foreground"].contains(&p.as_str()) {
                errors.push(FieldError::not_supported(
                    "propagationPolicy",
                    p.as_str(),
                    &["Foreground", "Background", "Orphan"],
                ));
            }
        }
        for (i, value) in options["dryRun"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            if value.as_str() != Some("All") {
                errors.push(FieldError::not_supported(
                    format!("dryRun[{i}]"),
                    value.as_str().unwrap_or(""),
                    &["All"],
                ));
            }
        }
        if !errors.is_empty() {
            return Err(StatusError::invalid(
                &GroupKind::new("meta.k8s.io", "DeleteOptions"),
                "",
                &errors,
            ));
        }
        if policy.is_none() {
            policy = match orphan {
                Some(true) => Some("Orphan".into()),
                Some(false) => Some("Background".into()),
                None => None,
            };
        }
        Ok(DeleteOptions {
            preconditions: Preconditions {
                uid: preconditions["uid"].as_str().map(str::to_owned),
                resource_version,
            },
            grace_period_seconds: options["gracePeriodSeconds"].as_i64(),
            propagation_policy: policy,
        })
    }

    /// The finalizer the garbage collector acts on for this propagation policy.
    fn gc_finalizer(&self) -> Option<&'static str> {
        match self.propagation_policy.as_deref() {
            Some("Orphan") => Some("orphan"),
            Some("Foreground") => Some("foregroundDeletion"),
            _ => None,
        }
    }
}

/// The grace period a delete gives `object`: `Some` for kinds deleted gracefully
/// (pods), as the pod strategy's `CheckGracefulDelete`; `None` for the rest.
fn grace_period(resource: &ResourceInfo, object: &Value, requested: Option<i64>) -> Option<i64> {
    if resource.group != "" || resource.plural != "pods" {
        return None;
    }
    let mut period = requested.unwrap_or_else(|| {
        object
            .pointer("/spec/terminationGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(0)
    });
    let unscheduled = object
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty);
    let finished = matches!(
        object.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    );
    if unscheduled || finished {
        period = 0;
    }
    // Upstream treats a negative grace period as one second.
    Some(if period < 0 { 1 } else { period })
}

/// What a delete does to the object it found.
enum Plan {
    /// Remove it from storage now.
    Remove,
    /// Store it marked (or re-marked) as being deleted; storage removes it when
    /// nothing holds it any more.
    Mark,
    /// A deletion is pending and this request changes nothing: answer the object.
    Pending,
}

/// Marks `object` as being deleted with `grace` seconds (0 for kinds without graceful
/// deletion), adds the garbage collector's finalizer, and a namespace's Terminating phase.
fn mark(resource: &ResourceInfo, object: &mut Value, grace: i64, options: &DeleteOptions) {
    let pending = meta::meta_str(object, "deletionTimestamp").map(str::to_owned);
    let previous_grace = object
        .pointer("/metadata/deletionGracePeriodSeconds")
        .and_then(Value::as_i64);
    match (pending, previous_grace) {
        // A shorter grace period moves the deadline earlier by the difference.
        (Some(at), Some(previous)) if grace < previous => {
            let shifted = meta::shift_rfc3339(&at, grace - previous)
                .unwrap_or_else(|| meta::rfc3339_in(grace));
            meta::set_meta(object, "deletionTimestamp", shifted);
            meta::set_meta(object, "deletionGracePeriodSeconds", grace);
        }
        (Some(_), _) => {}
        (None, _) => {
            meta::set_meta(object, "deletionTimestamp", meta::rfc3339_in(grace));
            meta::set_meta(object, "deletionGracePeriodSeconds", grace);
        }
    }
    if let Some(finalizer) = options.gc_finalizer() {
        let mut finalizers = meta::finalizers(object);
        if !finalizers.iter().any(|f| f == finalizer) {
            finalizers.push(finalizer.to_owned());
            meta::set_meta(object, "finalizers", json!(finalizers));
        }
    }
    if resource.group.is_empty()
        && resource.plural == "namespaces"
        && let Some(map) = object.as_object_mut()
    {
        map.insert("status".into(), json!({"phase": "Terminating"}));
    }
    if is_crd(resource) {
        crate::crd::strategy::mark_for_deletion(object);
    }
}

/// CustomResourceDefinitions: their first DELETE only starts the cleanup of their
/// custom resources (upstream's CRD REST `Delete`).
fn is_crd(resource: &ResourceInfo) -> bool {
    resource.group == "apiextensions.k8s.io" && resource.plural == "customresourcedefinitions"
}

/// Decides what deleting `current` does, as `rest.BeforeDelete`; `grace` is what the
/// object is marked with.
fn plan(resource: &ResourceInfo, current: &Value, options: &DeleteOptions) -> (Plan, i64) {
    let has_finalizers = !meta::finalizers(current).is_empty();
    let adds_finalizer = options
        .gc_finalizer()
        .is_some_and(|f| !meta::finalizers(current).iter().any(|g| g == f));
    let is_namespace = resource.group.is_empty() && resource.plural == "namespaces";
    if meta::meta_str(current, "deletionTimestamp").is_some() {
        let pending_grace = current
            .pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        // Only a shorter grace period changes a pending deletion; one whose grace
        // period is already over is finished now (a retry after a failed removal).
        return match options.grace_period_seconds {
            Some(grace) if grace < pending_grace => (Plan::Mark, grace.max(0)),
            _ if pending_grace == 0 && !has_finalizers && !is_namespace => (Plan::Remove, 0),
            _ => (Plan::Pending, pending_grace),
        };
    }
    let grace = grace_period(resource, current, options.grace_period_seconds);
    let graceful = grace.is_some_and(|g| g > 0);
    if graceful || has_finalizers || adds_finalizer || is_namespace || is_crd(resource) {
        (Plan::Mark, grace.unwrap_or(0))
    } else {
        (Plan::Remove, 0)
    }
}

impl Registry {
    /// Deletes an object (DELETE), returning it: as marked for a deletion that is
    /// pending, or its last state when it was removed.
    pub async fn delete(
        &self,
        resource: &'static ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        options: &DeleteOptions,
        dry_run: bool,
    ) -> Result<Value, StatusError> {
        let gr = resource.group_resource();
        let key = key(resource, namespace, name)?;
        let kv = self
            .storage
            .get(&key, None)
            .await
            .map_err(|e| storage_error(e, &gr, name))?;
        let current = decode(&kv)?;
        crate::storage::check_preconditions(&key, &options.preconditions, &kv)
            .map_err(|e| storage_error(e, &gr, name))?;
        if let Some(admission) = self.admission_for(resource) {
            admission
                .validate(Operation::Delete, &current, Some(&current), dry_run)
                .await?;
        }
        match plan(resource, &current, options).0 {
            Plan::Pending => return Ok(current),
            Plan::Mark => {
                let options = options.clone();
                return self
                    .write(resource, namespace, name, dry_run, move |current| {
                        if let Some(uid) = &options.preconditions.uid
                            && meta::meta_str(current, "uid") != Some(uid.as_str())
                        {
                            return Err(StatusError::conflict(
                                &gr,
                                name,
                                format!(
                                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                                    meta::meta_str(current, "uid").unwrap_or("")
                                ),
                            ));
                        }
                        // Planned again on the object the write actually sees.
                        let (_, grace) = plan(resource, current, &options);
                        let mut marked = current.clone();
                        mark(resource, &mut marked, grace, &options);
                        Ok(marked)
                    })
                    .await;
            }
            Plan::Remove => {}
        }
        if dry_run {
            return Ok(current);
        }
        let preconditions = Preconditions {
            uid: options.preconditions.uid.clone(),
            // Removing what was judged, not a newer version of it.
            resource_version: Some(kv.mod_revision),
        };
        let deleted = match self.storage.delete(&key, &preconditions).await {
            Ok(deleted) => deleted,
            Err(StorageError::PreconditionFailed { .. })
                if options.preconditions.resource_version.is_none() =>
            {
                // Changed since it was read: judge the newer version.
                return Box::pin(self.delete(resource, namespace, name, options, dry_run)).await;
            }
            Err(e) => return Err(storage_error(e, &gr, name)),
        };
        let claims = services::claims_of(resource, &current);
        services::release(self.storage.as_ref(), &self.network, &claims).await;
        let mut object = decode(&deleted)?;
        meta::set_meta(&mut object, "resourceVersion", kv.mod_revision.to_string());
        Ok(object)
    }

    /// Deletes every selected object in the collection (DELETE on a collection).
    pub async fn delete_collection(
        &self,
        resource: &'static ResourceInfo,
        namespace: Option<&str>,
        params: &ListParams,
        options: &DeleteOptions,
        dry_run: bool,
    ) -> Result<Value, StatusError> {
        let list = self.list(resource, namespace, params).await?;
        let mut deleted = Vec::new();
        // Preconditions name one object; for a collection they do not apply.
        let options = DeleteOptions {
            preconditions: Preconditions::default(),
            ..options.clone()
        };
        for item in list["items"].as_array().into_iter().flatten() {
            let ns = Some(meta::namespace(item)).filter(|n| !n.is_empty());
            match self
                .delete(resource, ns, meta::name(item), &options, dry_run)
                .await
            {
                Ok(object) => deleted.push(object),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(json!({
            "kind": format!("{}List", resource.kind),
            "apiVersion": resource.api_version(),
            "metadata": {"resourceVersion": list["metadata"]["resourceVersion"].clone()},
            "items": deleted,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::strategy;
    use apimachinery::resources::find;

    fn pod(node: &str, phase: &str) -> Value {
        json!({"metadata": {"name": "p"}, "spec": {"nodeName": node, "terminationGracePeriodSeconds": 30}, "status": {"phase": phase}})
    }

    #[test]
    fn pods_are_deleted_gracefully_only_when_bound_and_running() {
        let pods = find("", "v1", "pods").unwrap();
        let none = DeleteOptions::default();
        assert!(matches!(
            plan(pods, &pod("n1", "Running"), &none),
            (Plan::Mark, 30)
        ));
        assert!(matches!(
            plan(pods, &pod("", "Pending"), &none),
            (Plan::Remove, 0)
        ));
        assert!(matches!(
            plan(pods, &pod("n1", "Succeeded"), &none),
            (Plan::Remove, 0)
        ));
        let force = DeleteOptions {
            grace_period_seconds: Some(0),
            ..Default::default()
        };
        assert!(matches!(
            plan(pods, &pod("n1", "Running"), &force),
            (Plan::Remove, 0)
        ));
        let short = DeleteOptions {
            grace_period_seconds: Some(5),
            ..Default::default()
        };
        assert!(matches!(
            plan(pods, &pod("n1", "Running"), &short),
            (Plan::Mark, 5)
        ));
    }

    #[test]
    fn a_pending_deletion_may_only_be_shortened() {
        let pods = find("", "v1", "pods").unwrap();
        let mut marked = pod("n1", "Running");
        mark(pods, &mut marked, 30, &DeleteOptions::default());
        assert_eq!(marked["metadata"]["deletionGracePeriodSeconds"], 30);
        let longer = DeleteOptions {
            grace_period_seconds: Some(60),
            ..Default::default()
        };
        assert!(matches!(plan(pods, &marked, &longer).0, Plan::Pending));
        let force = DeleteOptions {
            grace_period_seconds: Some(0),
            ..Default::default()
        };
        assert!(matches!(plan(pods, &marked, &force), (Plan::Mark, 0)));
        let before = marked["metadata"]["deletionTimestamp"]
            .as_str()
            .unwrap()
            .to_owned();
        mark(pods, &mut marked, 0, &force);
        assert_eq!(marked["metadata"]["deletionGracePeriodSeconds"], 0);
        let after = marked["metadata"]["deletionTimestamp"].as_str().unwrap();
        assert!(
            after < before.as_str(),
            "{after} should be 30s before {before}"
        );
        assert!(strategy::ready_to_delete(pods, &marked));
    }

    #[test]
    fn propagation_policies_add_the_garbage_collectors_finalizers() {
        let cms = find("", "v1", "configmaps").unwrap();
        let cm = json!({"metadata": {"name": "c"}});
        assert!(matches!(
            plan(cms, &cm, &DeleteOptions::default()).0,
            Plan::Remove
        ));
        let orphan = DeleteOptions::from_json(&json!({"propagationPolicy": "Orphan"})).unwrap();
        assert!(matches!(plan(cms, &cm, &orphan).0, Plan::Mark));
        let mut marked = cm.clone();
        mark(cms, &mut marked, 0, &orphan);
        assert_eq!(marked["metadata"]["finalizers"], json!(["orphan"]));
        let foreground = DeleteOptions::from_json(
            &json!({"orphanDependents": false, "propagationPolicy": "Foreground"}),
        )
        .unwrap_err();
        assert_eq!(
            foreground.status().message,
            r#"DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Invalid value: "Foreground": orphanDependents and deletionPropagation cannot be both set"#
        );
        let unknown = DeleteOptions::from_json(&json!({"propagationPolicy": "Later"})).unwrap_err();
        assert_eq!(
            unknown.status().message,
            r#"DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: "Later": supported values: "Foreground", "Background", "Orphan""#
        );
        let legacy = DeleteOptions::from_json(&json!({"orphanDependents": true})).unwrap();
        assert_eq!(legacy.propagation_policy.as_deref(), Some("Orphan"));
    }
}
