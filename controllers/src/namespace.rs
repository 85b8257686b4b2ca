//! The namespace controller: empties a namespace being deleted, then lets it go.
//!
//! As upstream's `NamespacedResourcesDeleter`: once a namespace has a deletion
//! timestamp and still holds the `kubernetes` finalizer, every namespaced resource the
//! apiserver serves (found through discovery, custom resources included) is deleted in
//! it, by `deletecollection` where the resource allows it, else one object at a time.
//! What remains is counted, with the finalizers still held, into the namespace's
//! `NamespaceDeletion*`, `NamespaceContentRemaining` and `NamespaceFinalizersRemaining`
//! conditions, and the namespace is looked at again shortly; once nothing remains, the
//! `kubernetes` finalizer is removed through `namespaces/<name>/finalize`, after which
//! the apiserver removes the namespace.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, NamespaceCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::core::GroupVersion;
use kube::discovery::{ApiCapabilities, ApiResource, Scope, verbs};

use crate::Context;
use crate::informers::{Change, Informer};
use crate::workqueue::WorkQueue;

/// The controller's name (its service account's is `namespace-controller` too).
pub const NAME: &str = "namespace-controller";
/// The finalizer this controller owns in `spec.finalizers`.
pub const FINALIZER: &str = "kubernetes";

/// What went wrong in one pass.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request failed.
    #[error(transparent)]
    Kube(#[from] kube::Error),
    /// Some resource could not be discovered or emptied.
    #[error(
        "deleting the content of namespace {namespace} failed for {failures} resources or groups"
    )]
    Incomplete {
        /// The namespace.
        namespace: String,
        /// How many failed.
        failures: usize,
    },
    /// Content remains; look again after the estimate.
    #[error("content remains in namespace {namespace}; checking again in {after:?}")]
    Remaining {
        /// The namespace.
        namespace: String,
        /// When to look again.
        after: Duration,
    },
}

/// One namespaced resource's leftovers.
#[derive(Debug, Default, PartialEq, Eq)]
struct Leftovers {
    /// Objects remaining, by `resource.group`.
    resources: BTreeMap<String, usize>,
    /// Objects holding each finalizer.
    finalizers: BTreeMap<String, usize>,
    /// Resources whose deletion failed, with why.
    failures: Vec<String>,
    /// Groups discovery failed for.
    discovery_failures: Vec<String>,
    /// Seconds until what remains is expected gone (upstream's estimate: the longest
    /// grace period of pods still terminating, 15 s for objects held by finalizers).
    estimate_seconds: u64,
}

/// Upstream's `finalizerEstimateSeconds`.
const FINALIZER_ESTIMATE_SECONDS: u64 = 15;
/// The longest wait between passes, whatever the estimate.
const MAX_ESTIMATE_SECONDS: u64 = 3600;

fn condition(type_: &str, status: bool, reason: &str, message: String) -> NamespaceCondition {
    NamespaceCondition {
        type_: type_.to_owned(),
        status: if status { "True" } else { "False" }.to_owned(),
        reason: Some(reason.to_owned()),
        message: Some(message),
        last_transition_time: Some(Time(jiff::Timestamp::now())),
    }
}

/// Upstream's five deletion conditions for what a pass left.
fn conditions(left: &Leftovers) -> Vec<NamespaceCondition> {
    let mut out = Vec::new();
    out.push(if left.discovery_failures.is_empty() {
        condition(
            "NamespaceDeletionDiscoveryFailure",
            false,
            "ResourcesDiscovered",
            "All resources successfully discovered".to_owned(),
        )
    } else {
        condition(
            "NamespaceDeletionDiscoveryFailure",
            true,
            "DiscoveryFailed",
            format!(
                "Discovery failed for some groups, {} failing: {}",
                left.discovery_failures.len(),
                left.discovery_failures.join(", ")
            ),
        )
    });
    out.push(condition(
        "NamespaceDeletionGroupVersionParsingFailure",
        false,
        "ParsedGroupVersions",
        "All legacy kube types successfully parsed".to_owned(),
    ));
    out.push(if left.failures.is_empty() {
        condition(
            "NamespaceDeletionContentFailure",
            false,
            "ContentDeleted",
            "All content successfully deleted, may be waiting on finalization".to_owned(),
        )
    } else {
        condition(
            "NamespaceDeletionContentFailure",
            true,
            "ContentDeletionFailed",
            format!(
                "Failed to delete all resource types, {} remaining: {}",
                left.failures.len(),
                left.failures.join(", ")
            ),
        )
    });
    out.push(if left.resources.is_empty() {
        condition(
            "NamespaceContentRemaining",
            false,
            "ContentRemoved",
            "All content successfully removed".to_owned(),
        )
    } else {
        let parts: Vec<String> = left
            .resources
            .iter()
            .map(|(r, n)| format!("{r} has {n} resource instances"))
            .collect();
        condition(
            "NamespaceContentRemaining",
            true,
            "SomeResourcesRemain",
            format!("Some resources are remaining: {}", parts.join(", ")),
        )
    });
    out.push(if left.finalizers.is_empty() {
        condition(
            "NamespaceFinalizersRemaining",
            false,
            "ContentHasNoFinalizers",
            "All content-preserving finalizers finished".to_owned(),
        )
    } else {
        let parts: Vec<String> = left
            .finalizers
            .iter()
            .map(|(f, n)| format!("{f} in {n} resource instances"))
            .collect();
        condition(
            "NamespaceFinalizersRemaining",
            true,
            "SomeFinalizersRemain",
            format!(
                "Some content in the namespace has finalizers remaining: {}",
                parts.join(", ")
            ),
        )
    });
    out
}

/// Keeps each condition's transition time when its status did not change.
fn merge_conditions(
    old: &[NamespaceCondition],
    new: Vec<NamespaceCondition>,
) -> Vec<NamespaceCondition> {
    let mut merged: Vec<NamespaceCondition> = old
        .iter()
        .filter(|c| !new.iter().any(|n| n.type_ == c.type_))
        .cloned()
        .collect();
    for mut c in new {
        if let Some(before) = old.iter().find(|o| o.type_ == c.type_) {
            if before.status == c.status {
                c.last_transition_time = before.last_transition_time.clone();
            }
        }
        merged.push(c);
    }
    merged
}

/// Whether conditions say the same (ignoring transition times).
fn same_conditions(a: &[NamespaceCondition], b: &[NamespaceCondition]) -> bool {
    let key = |c: &NamespaceCondition| {
        (
            c.type_.clone(),
            c.status.clone(),
            c.reason.clone(),
            c.message.clone(),
        )
    };
    let mut a: Vec<_> = a.iter().map(key).collect();
    let mut b: Vec<_> = b.iter().map(key).collect();
    a.sort();
    b.sort();
    a == b
}

/// `resource.group`, as upstream names a resource in its messages (`pods.` for core).
fn resource_name(ar: &ApiResource) -> String {
    format!("{}.{}", ar.plural, ar.group)
}

/// Whether the namespace deleter empties a resource: namespaced, listable, deletable.
fn deletable(caps: &ApiCapabilities) -> bool {
    caps.scope == Scope::Namespaced
        && caps.supports_operation(verbs::LIST)
        && (caps.supports_operation(verbs::DELETE)
            || caps.supports_operation(verbs::DELETE_COLLECTION))
}

/// The namespaced resources to empty at each group's preferred version, discovered
/// group by group as upstream's `ServerPreferredNamespacedResources`: a group whose
/// discovery fails (an aggregated API that is down) is recorded in `failures`, and the
/// others are still emptied.
async fn discover(
    client: &kube::Client,
    failures: &mut Vec<String>,
) -> Vec<(ApiResource, ApiCapabilities)> {
    let mut versions = vec![GroupVersion::gv("", "v1")];
    match client.list_api_groups().await {
        Ok(list) => {
            for group in list.groups {
                let preferred = group
                    .preferred_version
                    .map(|v| v.version)
                    .or_else(|| group.versions.first().map(|v| v.version.clone()));
                if let Some(version) = preferred {
                    versions.push(GroupVersion::gv(&group.name, &version));
                }
            }
        }
        Err(e) => failures.push(format!("/apis: {e}")),
    }
    let mut resources = Vec::new();
    for version in versions {
        match kube::discovery::pinned_group(client, &version).await {
            Ok(group) => resources.extend(
                group
                    .recommended_resources()
                    .into_iter()
                    .filter(|(_, caps)| deletable(caps)),
            ),
            Err(e) => failures.push(format!("{}: {e}", version.api_version())),
        }
    }
    resources
}

/// Deletes what `ar` holds in `namespace` and counts what remains.
async fn empty_resource(
    client: &kube::Client,
    namespace: &str,
    ar: &ApiResource,
    caps: &ApiCapabilities,
    left: &mut Leftovers,
) {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, ar);
    let deleted = if caps.supports_operation(verbs::DELETE_COLLECTION) {
        match api
            .delete_collection(&DeleteParams::background(), &ListParams::default())
            .await
        {
            // discovery said it could; the server says not: one at a time, as upstream
            Err(kube::Error::Api(s)) if s.code == 405 => delete_each(&api).await,
            other => other.map(|_| ()),
        }
    } else {
        delete_each(&api).await
    };
    if let Err(e) = deleted {
        if !is_gone(&e) {
            left.failures.push(format!("{}: {e}", resource_name(ar)));
        }
    }
    match api.list_metadata(&ListParams::default()).await {
        Ok(list) => {
            if !list.items.is_empty() {
                left.resources.insert(resource_name(ar), list.items.len());
            }
            for item in &list.items {
                for f in item.metadata.finalizers.iter().flatten() {
                    *left.finalizers.entry(f.clone()).or_default() += 1;
                    left.estimate_seconds = left.estimate_seconds.max(FINALIZER_ESTIMATE_SECONDS);
                }
                // a terminating pod goes within its grace period
                if ar.group.is_empty() && ar.plural == "pods" {
                    let grace = item.metadata.deletion_grace_period_seconds.unwrap_or(0);
                    left.estimate_seconds =
                        left.estimate_seconds.max(u64::try_from(grace).unwrap_or(0));
                }
            }
        }
        Err(e) if is_gone(&e) => {}
        Err(e) => left.failures.push(format!("{}: {e}", resource_name(ar))),
    }
}

/// One delete per object, for resources without `deletecollection`.
async fn delete_each(api: &Api<DynamicObject>) -> Result<(), kube::Error> {
    for item in api.list_metadata(&ListParams::default()).await?.items {
        if item.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let Some(name) = item.metadata.name.as_deref() else {
            continue;
        };
        match api.delete(name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(e) if is_gone(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Not found, or a resource that stopped being served: nothing to delete.
fn is_gone(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404 || s.code == 405)
}

/// One pass over the namespace `name`.
async fn sync(cx: &Context, namespaces: &Informer<Namespace>, name: &str) -> Result<(), Error> {
    let Some(namespace) = namespaces.get("", name) else {
        return Ok(());
    };
    if namespace.metadata.deletion_timestamp.is_none() {
        return Ok(());
    }
    let finalizers = namespace
        .spec
        .as_ref()
        .and_then(|s| s.finalizers.clone())
        .unwrap_or_default();
    if !finalizers.iter().any(|f| f == FINALIZER) {
        return Ok(());
    }
    let mut left = Leftovers::default();
    for (ar, caps) in discover(&cx.client, &mut left.discovery_failures).await {
        empty_resource(&cx.client, name, &ar, &caps, &mut left).await;
    }
    let api: Api<Namespace> = Api::all(cx.client.clone());
    let old = namespace
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let merged = merge_conditions(&old, conditions(&left));
    if !same_conditions(&old, &merged) {
        let mut updated = (*namespace).clone();
        updated
            .status
            .get_or_insert_with(Default::default)
            .conditions = Some(merged);
        match api
            .replace_status(name, &PostParams::default(), &updated)
            .await
        {
            Ok(_) => {}
            // a newer namespace: the next pass uses it
            Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    if !left.failures.is_empty() || !left.discovery_failures.is_empty() {
        // real failures back off through the queue's rate limiter
        return Err(Error::Incomplete {
            namespace: name.to_owned(),
            failures: left.failures.len() + left.discovery_failures.len(),
        });
    }
    if !left.resources.is_empty() {
        // upstream looks again after half the estimated time to go, plus a second
        return Err(Error::Remaining {
            namespace: name.to_owned(),
            // (capped: a pod may ask for any grace period, an instant may not be that far)
            after: Duration::from_secs(left.estimate_seconds.min(MAX_ESTIMATE_SECONDS) / 2 + 1),
        });
    }
    // nothing left: give up our finalizer
    let mut finalized = api.get(name).await?;
    if let Some(spec) = finalized.spec.as_mut() {
        spec.finalizers = spec
            .finalizers
            .take()
            .map(|f| f.into_iter().filter(|f| f != FINALIZER).collect());
    }
    match api
        .replace_subresource("finalize", name, &PostParams::default(), &finalized)
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Starts the controller.
pub fn start(cx: Context) -> futures::future::BoxFuture<'static, ()> {
    let worker_count = cx.settings.concurrent_namespace_syncs;
    let namespaces = cx.informers.informer::<Namespace>();
    let queue = WorkQueue::<String>::new();
    let enqueue = queue.clone();
    namespaces.add_handler(move |change| {
        let namespace = match change {
            Change::Added(n) | Change::Updated { new: n, .. } => n,
            Change::Deleted(_) => return,
        };
        if namespace.metadata.deletion_timestamp.is_some() {
            if let Some(name) = &namespace.metadata.name {
                enqueue.add(name.clone());
            }
        }
    });
    Box::pin(async move {
        namespaces.wait_synced().await;
        let cx = Arc::new(cx);
        let retry = queue.clone();
        queue
            .run(worker_count, None, NAME, move |name: String| {
                let (cx, namespaces, retry) = (cx.clone(), namespaces.clone(), retry.clone());
                async move {
                    match sync(&cx, &namespaces, &name).await {
                        // remaining content is expected: look again soon, not as a failure
                        Err(Error::Remaining { after, .. }) => {
                            retry.add_after(name, after);
                            Ok(())
                        }
                        other => other,
                    }
                }
            })
            .await;
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find<'a>(c: &'a [NamespaceCondition], t: &str) -> &'a NamespaceCondition {
        c.iter().find(|c| c.type_ == t).unwrap()
    }

    #[test]
    fn remaining_content_and_finalizers_read_as_upstreams() {
        let mut left = Leftovers::default();
        left.resources.insert("pods.".into(), 2);
        left.resources.insert("widgets.example.com".into(), 1);
        left.finalizers.insert("example.com/keep".into(), 1);
        let c = conditions(&left);
        assert_eq!(c.len(), 5);
        let content = find(&c, "NamespaceContentRemaining");
        assert_eq!(content.status, "True");
        assert_eq!(content.reason.as_deref(), Some("SomeResourcesRemain"));
        assert_eq!(
            content.message.as_deref(),
            Some(
                "Some resources are remaining: pods. has 2 resource instances, widgets.example.com has 1 resource instances"
            )
        );
        let finalizers = find(&c, "NamespaceFinalizersRemaining");
        assert_eq!(
            finalizers.message.as_deref(),
            Some(
                "Some content in the namespace has finalizers remaining: example.com/keep in 1 resource instances"
            )
        );
        assert_eq!(find(&c, "NamespaceDeletionContentFailure").status, "False");
    }

    #[test]
    fn an_empty_namespace_reports_everything_removed() {
        let c = conditions(&Leftovers::default());
        let content = find(&c, "NamespaceContentRemaining");
        assert_eq!(content.status, "False");
        assert_eq!(content.reason.as_deref(), Some("ContentRemoved"));
        assert_eq!(
            find(&c, "NamespaceFinalizersRemaining").reason.as_deref(),
            Some("ContentHasNoFinalizers")
        );
        assert_eq!(
            find(&c, "NamespaceDeletionDiscoveryFailure")
                .message
                .as_deref(),
            Some("All resources successfully discovered")
        );
    }

    #[test]
    fn unchanged_conditions_keep_their_transition_time() {
        let mut left = Leftovers::default();
        left.resources.insert("pods.".into(), 1);
        let mut first = conditions(&left);
        for c in &mut first {
            c.last_transition_time = Some(Time(jiff::Timestamp::UNIX_EPOCH));
        }
        let second = merge_conditions(&first, conditions(&left));
        assert!(same_conditions(&first, &second));
        assert!(
            second
                .iter()
                .all(|c| c.last_transition_time == Some(Time(jiff::Timestamp::UNIX_EPOCH)))
        );
        let emptied = merge_conditions(&first, conditions(&Leftovers::default()));
        assert!(!same_conditions(&first, &emptied));
        assert_ne!(
            find(&emptied, "NamespaceContentRemaining").last_transition_time,
            Some(Time(jiff::Timestamp::UNIX_EPOCH))
        );
    }
}
