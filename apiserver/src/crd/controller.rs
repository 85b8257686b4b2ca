//! The controllers upstream's apiextensions-apiserver runs over CRDs, folded into one
//! loop over an in-process informer:
//!
//! - naming: each CRD's requested names are accepted unless another CRD of the group
//!   already holds them (`"foos" is already in use`), into `status.acceptedNames` and
//!   the `NamesAccepted` condition;
//! - establishing: a CRD whose names are accepted becomes `Established`
//!   (`InitialNamesAccepted`), and its served versions join the registry's
//!   [`CustomResources`](super::CustomResources) table, so requests find them;
//! - finalizing: a deleted CRD's custom resources are deleted, then its cleanup
//!   finalizer is removed, which lets the store remove the CRD.
//!
//! Status writes go through the registry without a request, so without admission, as
//! upstream's controllers write with the loopback client's privileges.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use apimachinery::resources::{self, ResourceInfo};
use serde_json::{Value, json};

use super::strategy::{condition, set_condition};
use super::{CLEANUP_FINALIZER, served_versions};
use crate::registry::informer::Informer;
use crate::registry::{DeleteOptions, ListParams, Registry};

/// How often the loop looks for changes in the informer.
const POLL: Duration = Duration::from_millis(50);
/// How often a CRD's cleanup that could not finish is tried again.
const CLEANUP_RETRY: Duration = Duration::from_secs(5);

fn crds() -> &'static ResourceInfo {
    resources::find("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        .expect("CRDs are a built-in resource")
}

/// Starts the loop; it ends with the runtime.
pub fn start(registry: Registry) {
    let informer = Informer::start(registry.clone(), crds());
    tokio::spawn(async move {
        let mut seen = u64::MAX;
        let mut last_round = tokio::time::Instant::now();
        loop {
            let generation = informer.generation();
            // a cleanup held up (by the custom resources' own finalizers) is retried
            // every few seconds, as upstream's finalizer controller polls
            let retry_cleanup = last_round.elapsed() >= CLEANUP_RETRY && needs_cleanup(&informer);
            if generation != seen || retry_cleanup {
                seen = generation;
                last_round = tokio::time::Instant::now();
                reconcile(&registry, &informer).await;
            }
            tokio::time::sleep(POLL).await;
        }
    });
}

/// Whether a deleted CRD still waits for its cleanup (retried until it is done).
fn needs_cleanup(informer: &Informer) -> bool {
    informer.list().iter().any(|crd| deleting(crd))
}

fn deleting(crd: &Value) -> bool {
    crd.pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
        && crd
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| f.iter().any(|f| f == CLEANUP_FINALIZER))
}

fn name_of(crd: &Value) -> &str {
    crd.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

async fn reconcile(registry: &Registry, informer: &Informer) {
    let mut all: Vec<Arc<Value>> = informer.list();
    // older CRDs keep their names when a newer one asks for the same
    all.sort_by(|a, b| {
        let created = |o: &Value| {
            o.pointer("/metadata/creationTimestamp")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        (created(a), name_of(a).to_owned()).cmp(&(created(b), name_of(b).to_owned()))
    });
    let table = registry.custom();
    let present: HashSet<&str> = all.iter().map(|c| name_of(c)).collect();
    for served in table.all() {
        if !present.contains(served.crd.as_str()) {
            table.set(&served.crd.clone(), Vec::new());
        }
    }
    for i in 0..all.len() {
        let crd = all[i].clone();
        let desired = desired_status(&crd, &all);
        let current = if crd["status"] != desired["status"] {
            match write_status(registry, &crd, &desired["status"]).await {
                Some(updated) => Arc::new(updated),
                None => continue,
            }
        } else {
            crd
        };
        // the CRDs after this one see the names it now holds, so two CRDs created
        // together cannot both take the same name
        all[i] = current.clone();
        let established = condition(&current, "Established") == Some("True");
        let accepted = condition(&current, "NamesAccepted") == Some("True");
        if established || accepted {
            table.set(name_of(&current), served_versions(table, &current));
        } else {
            table.set(name_of(&current), Vec::new());
        }
        if deleting(&current) {
            clean_up(registry, &current).await;
        }
    }
}

/// The CRD with the status the naming and establishing controllers want for it.
fn desired_status(crd: &Value, all: &[Arc<Value>]) -> Value {
    let mut desired = crd.clone();
    let group = crd["spec"]["group"].as_str().unwrap_or("");
    // names held by the other CRDs of the group
    let mut resources_in_use = HashSet::new();
    let mut kinds_in_use = HashSet::new();
    for other in all {
        if name_of(other) == name_of(crd) || other["spec"]["group"].as_str() != Some(group) {
            continue;
        }
        let names = &other["status"]["acceptedNames"];
        for field in ["plural", "singular"] {
            if let Some(n) = names[field].as_str().filter(|n| !n.is_empty()) {
                resources_in_use.insert(n.to_owned());
            }
        }
        for short in names["shortNames"].as_array().into_iter().flatten() {
            if let Some(n) = short.as_str() {
                resources_in_use.insert(n.to_owned());
            }
        }
        for field in ["kind", "listKind"] {
            if let Some(n) = names[field].as_str().filter(|n| !n.is_empty()) {
                kinds_in_use.insert(n.to_owned());
            }
        }
    }
    let requested = &crd["spec"]["names"];
    let accepted_before = &crd["status"]["acceptedNames"];
    let mut accepted = serde_json::Map::new();
    let mut conflict: Option<(&str, String)> = None;
    for (field, in_use, reason) in [
        ("plural", &resources_in_use, "PluralConflict"),
        ("singular", &resources_in_use, "SingularConflict"),
        ("kind", &kinds_in_use, "KindConflict"),
        ("listKind", &kinds_in_use, "ListKindConflict"),
    ] {
        let Some(name) = requested[field].as_str() else {
            continue;
        };
        if accepted_before[field].as_str() == Some(name) || !in_use.contains(name) {
            accepted.insert(field.into(), json!(name));
        } else {
            if let Some(old) = accepted_before[field].as_str() {
                accepted.insert(field.into(), json!(old));
            }
            conflict = Some((reason, format!("{name:?} is already in use")));
        }
    }
    let mut shorts = Vec::new();
    let mut short_errors = Vec::new();
    let before: Vec<&str> = accepted_before["shortNames"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    for short in requested["shortNames"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if before.contains(&short) || !resources_in_use.contains(short) {
            shorts.push(json!(short));
        } else {
            short_errors.push(format!("{short:?} is already in use"));
        }
    }
    if !short_errors.is_empty() {
        // a conflicting short name keeps the accepted ones as they were
        shorts = before.iter().map(|s| json!(s)).collect();
        let message = if short_errors.len() == 1 {
            short_errors.remove(0)
        } else {
            format!("[{}]", short_errors.join(", "))
        };
        // upstream checks short names between singular and kind: a later conflict wins
        if !matches!(
            conflict,
            Some(("KindConflict", _)) | Some(("ListKindConflict", _))
        ) {
            conflict = Some(("ShortNamesConflict", message));
        }
    }
    if !shorts.is_empty() {
        accepted.insert("shortNames".into(), Value::Array(shorts));
    }
    if let Some(categories) = requested.get("categories").filter(|c| c.is_array()) {
        accepted.insert("categories".into(), categories.clone());
    }
    if !desired["status"].is_object() {
        desired["status"] = json!({});
    }
    desired["status"]["acceptedNames"] = Value::Object(accepted);
    match &conflict {
        Some((reason, message)) => {
            set_condition(&mut desired, "NamesAccepted", "False", reason, message);
        }
        None => set_condition(
            &mut desired,
            "NamesAccepted",
            "True",
            "NoConflicts",
            "no conflicts found",
        ),
    }
    match (conflict.is_none(), condition(crd, "Established")) {
        (true, _) => set_condition(
            &mut desired,
            "Established",
            "True",
            "InitialNamesAccepted",
            "the initial names have been accepted",
        ),
        (false, None) => set_condition(
            &mut desired,
            "Established",
            "False",
            "NotAccepted",
            "not all names are accepted",
        ),
        // an established CRD stays established when a later name change conflicts
        (false, Some(_)) => {}
    }
    // the conditions' times are kept unless their status changed
    desired
}

/// Writes `status` to the CRD, unless it changed meanwhile (the next round sees it).
async fn write_status(registry: &Registry, crd: &Value, status: &Value) -> Option<Value> {
    let name = name_of(crd).to_owned();
    let expected = crd.pointer("/metadata/resourceVersion").cloned();
    let status = status.clone();
    registry
        .write(crds(), None, &name, false, move |current| {
            if current.pointer("/metadata/resourceVersion").cloned() != expected {
                return Err(apimachinery::errors::StatusError::conflict(
                    &crds().group_resource(),
                    name_of(current),
                    "changed while its status was computed",
                ));
            }
            let mut updated = current.clone();
            updated["status"] = status.clone();
            Ok(updated)
        })
        .await
        .ok()
}

/// Deletes a deleted CRD's custom resources, then lets the CRD go.
async fn clean_up(registry: &Registry, crd: &Value) {
    let name = name_of(crd).to_owned();
    let established = condition(crd, "Established") == Some("True");
    let info = registry
        .custom()
        .all()
        .into_iter()
        .find(|s| s.crd == name)
        .map(|s| s.info);
    let mut remaining = 0;
    if established && let Some(info) = info {
        let everything = ListParams::default();
        let options = DeleteOptions::default();
        if let Err(e) = registry
            .delete_collection(info, None, &everything, &options, false)
            .await
        {
            tracing::warn!(crd = %name, error = %e.0.message, "custom resource cleanup failed");
            return;
        }
        remaining = match registry.list(info, None, &everything).await {
            Ok(list) => list["items"].as_array().map_or(0, Vec::len),
            Err(_) => 1,
        };
    }
    if remaining > 0 {
        // finalizers of the custom resources hold them; the loop comes back
        return;
    }
    let (reason, message) = if established {
        ("InstanceDeletionCompleted", "removed all instances")
    } else {
        ("NeverEstablished", "resource was never established")
    };
    let _ = registry
        .write(crds(), None, &name, false, move |current| {
            let mut updated = current.clone();
            set_condition(&mut updated, "Terminating", "False", reason, message);
            let finalizers: Vec<Value> = current
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .map(|f| {
                    f.iter()
                        .filter(|f| *f != CLEANUP_FINALIZER)
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            updated["metadata"]["finalizers"] = Value::Array(finalizers);
            Ok(updated)
        })
        .await;
    registry.custom().set(&name, Vec::new());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd(name: &str, plural: &str, kind: &str, created: &str, accepted: bool) -> Arc<Value> {
        let mut crd = json!({
            "metadata": {"name": name, "creationTimestamp": created},
            "spec": {"group": "stable.example.com", "scope": "Namespaced",
                     "names": {"plural": plural, "singular": plural.trim_end_matches('s'),
                               "kind": kind, "listKind": format!("{kind}List"),
                               "shortNames": ["ct"]}},
            "status": {},
        });
        if accepted {
            crd["status"]["acceptedNames"] = crd["spec"]["names"].clone();
        }
        Arc::new(crd)
    }

    #[test]
    fn names_are_accepted_and_the_crd_established() {
        let first = crd(
            "crontabs.stable.example.com",
            "crontabs",
            "CronTab",
            "1",
            false,
        );
        let desired = desired_status(&first, std::slice::from_ref(&first));
        assert_eq!(desired["status"]["acceptedNames"], first["spec"]["names"]);
        assert_eq!(condition(&desired, "NamesAccepted"), Some("True"));
        assert_eq!(condition(&desired, "Established"), Some("True"));
        let established = desired["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Established")
            .unwrap();
        assert_eq!(established["reason"], "InitialNamesAccepted");
        assert_eq!(
            established["message"],
            "the initial names have been accepted"
        );
        // nothing changes the second time round
        let again = Arc::new(desired.clone());
        assert_eq!(desired_status(&again, &[again.clone()]), desired);
    }

    #[tokio::test]
    async fn two_crds_created_together_cannot_both_take_a_name() {
        let registry = crate::registry::validation::tester::registry().await;
        let definition = |plural: &str| {
            json!({
                "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                "metadata": {"name": format!("{plural}.stable.example.com")},
                "spec": {"group": "stable.example.com", "scope": "Namespaced",
                         "names": {"plural": plural, "kind": "CronTab"},
                         "versions": [{"name": "v1", "served": true, "storage": true,
                                       "schema": {"openAPIV3Schema": {"type": "object"}}}]},
            })
        };
        for plural in ["crontabs", "crontabz"] {
            registry
                .create(crds(), None, definition(plural), false)
                .await
                .unwrap();
        }
        let informer = Informer::start(registry.clone(), crds());
        assert!(informer.wait_synced(Duration::from_secs(5)).await);
        // one round, with both CRDs new in it
        reconcile(&registry, &informer).await;
        let status = |name: &'static str| {
            let registry = registry.clone();
            async move {
                let crd = registry.get(crds(), None, name).await.unwrap();
                condition(&crd, "NamesAccepted").map(str::to_owned)
            }
        };
        assert_eq!(
            status("crontabs.stable.example.com").await.as_deref(),
            Some("True")
        );
        assert_eq!(
            status("crontabz.stable.example.com").await.as_deref(),
            Some("False")
        );
        assert!(
            registry
                .custom()
                .find("stable.example.com", "v1", "crontabs")
                .is_some()
        );
        assert!(
            registry
                .custom()
                .find("stable.example.com", "v1", "crontabz")
                .is_none()
        );
    }

    #[test]
    fn a_name_in_use_by_another_crd_of_the_group_is_refused() {
        let holder = crd(
            "crontabs.stable.example.com",
            "crontabs",
            "CronTab",
            "1",
            true,
        );
        let late = crd(
            "crontabz.stable.example.com",
            "crontabz",
            "CronTab",
            "2",
            false,
        );
        let desired = desired_status(&late, &[holder, late.clone()]);
        assert_eq!(condition(&desired, "NamesAccepted"), Some("False"));
        assert_eq!(condition(&desired, "Established"), Some("False"));
        let names_accepted = desired["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "NamesAccepted")
            .unwrap();
        // the kinds conflict (checked after the short names, so it is the one reported)
        assert_eq!(names_accepted["reason"], "ListKindConflict");
        assert_eq!(
            names_accepted["message"],
            "\"CronTabList\" is already in use"
        );
        assert!(desired["status"]["acceptedNames"].get("kind").is_none());
    }
}
