//! The DaemonSet's history and rolling updates (upstream's
//! `pkg/controller/daemon/update.go`): a ControllerRevision per template, named
//! `<daemonset>-<hash>` and labelled with the hash that new pods carry; the revision
//! of the current template is the newest; old ones beyond `revisionHistoryLimit` that
//! no pod still uses are deleted. A rolling update either deletes outdated pods while
//! at most maxUnavailable nodes lack an available pod (the manage loop then creates
//! their replacements), or with maxSurge creates the new pod beside the old one and
//! deletes the old one once the new one is available.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};

use super::util::{self, REVISION_HASH_LABEL};
use super::{Controller, Error, min_ready_seconds, selector_of};
use crate::controller_utils::{self, Claim, controller_ref, is_pod_available, status_code};

/// What one rolling-update pass does: pods to delete, nodes to create a pod on.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Plan {
    pub delete: Vec<String>,
    pub create: Vec<String>,
}

/// A node's new pod and old pod, either missing.
type NewAndOld<'a> = (Option<&'a Arc<Pod>>, Option<&'a Arc<Pod>>);

/// The one new and one old pod (not being deleted) on a node (upstream's
/// `findUpdatedPodsOnNode`); `None` when there are more, which the manage loop prunes.
fn updated_pods_on_node<'a>(pods: &'a [Arc<Pod>], hash: &str) -> Option<NewAndOld<'a>> {
    let mut new = None;
    let mut old = None;
    for pod in pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
    {
        let slot = if util::is_pod_updated(pod, hash) {
            &mut new
        } else {
            &mut old
        };
        if slot.is_some() {
            return None;
        }
        *slot = Some(pod);
    }
    Some((new, old))
}

/// Upstream's `rollingUpdate` decision, over every node that has daemon pods or
/// should have one (`node_to_pods`), given whether each node should run the pod
/// (`should_run`, `None` for a node that no longer exists).
#[allow(clippy::too_many_arguments)]
pub(super) fn plan_rolling_update(
    node_to_pods: &BTreeMap<String, Vec<Arc<Pod>>>,
    should_run: &dyn Fn(&str) -> Option<bool>,
    desired: i32,
    max_surge: i32,
    max_unavailable: i32,
    min_ready: i32,
    hash: &str,
    now: jiff::Timestamp,
) -> Result<Plan, String> {
    let available = |p: &Pod| is_pod_available(p, min_ready, now);
    if max_surge == 0 {
        // delete just enough old pods to stay within maxUnavailable; the manage loop
        // creates their replacements
        let mut unavailable = 0i32;
        let mut replacements = Vec::new();
        let mut candidates = Vec::new();
        for pods in node_to_pods.values() {
            let Some((new, old)) = updated_pods_on_node(pods, hash) else {
                unavailable = unavailable.saturating_add(1);
                continue;
            };
            match (new, old) {
                (None, None) | (Some(_), Some(_)) => unavailable = unavailable.saturating_add(1),
                (Some(new), None) => {
                    if !available(new) {
                        unavailable = unavailable.saturating_add(1);
                    }
                }
                (None, Some(old)) => {
                    if !available(old) {
                        // an old pod that is down anyway is replaced at once
                        replacements.push(old.name_any());
                        unavailable = unavailable.saturating_add(1);
                    } else if unavailable < max_unavailable {
                        candidates.push(old.name_any());
                    }
                }
            }
        }
        let remaining = usize::try_from(max_unavailable.saturating_sub(unavailable))
            .unwrap_or(0)
            .min(candidates.len());
        replacements.extend(candidates.into_iter().take(remaining));
        return Ok(Plan {
            delete: replacements,
            create: Vec::new(),
        });
    }

    // surging: a new pod is created beside an old one (at once where the old one is
    // unavailable, else within maxSurge), and the old one goes once the new one is
    // available
    let mut delete = Vec::new();
    let mut should_not_run = Vec::new();
    let mut candidates = Vec::new();
    let mut allowed = Vec::new();
    let mut surge = 0i32;
    let mut available_count = 0i32;
    for (node, pods) in node_to_pods {
        let Some((new, old)) = updated_pods_on_node(pods, hash) else {
            surge = surge.saturating_add(1);
            continue;
        };
        if let Some(p) = old.or(new) {
            if available(p) {
                available_count = available_count.saturating_add(1);
            }
        }
        let node_runs =
            || should_run(node).ok_or_else(|| format!("couldn't get node for nodeName {node:?}"));
        match (new, old) {
            (_, None) => {}
            (None, Some(old)) => {
                if !available(old) {
                    if !node_runs()? {
                        delete.push(old.name_any());
                        continue;
                    }
                    allowed.push(node.clone());
                } else {
                    if !node_runs()? {
                        should_not_run.push(old.name_any());
                        continue;
                    }
                    if surge >= max_surge {
                        continue;
                    }
                    candidates.push(node.clone());
                }
            }
            (Some(new), Some(old)) => {
                if !available(new) {
                    surge = surge.saturating_add(1);
                    continue;
                }
                delete.push(old.name_any());
            }
        }
    }
    // with maxSurge the owner expects full availability: a pod on a node that should
    // no longer run it goes only once enough pods are available elsewhere
    let deletable = usize::try_from(available_count.saturating_sub(desired))
        .unwrap_or(0)
        .min(should_not_run.len());
    delete.extend(should_not_run.into_iter().take(deletable));
    let remaining = usize::try_from(max_surge.saturating_sub(surge))
        .unwrap_or(0)
        .min(candidates.len());
    allowed.extend(candidates.into_iter().take(remaining));
    Ok(Plan {
        delete,
        create: allowed,
    })
}

impl Controller {
    /// Upstream's `rollingUpdate`.
    pub(super) async fn rolling_update(
        &self,
        ds: &Arc<DaemonSet>,
        nodes: &[Arc<Node>],
        hash: &str,
    ) -> Result<(), Error> {
        let mut node_to_pods = self.nodes_to_daemon_pods(ds, false).await.map_err(|e| {
            Error::Invalid(format!(
                "couldn't get node to daemon pod mapping for daemon set {:?}: {e}",
                ds.name_any()
            ))
        })?;
        // upstream's updatedDesiredNodeCounts: every node that should run the pod
        // takes part, with or without pods
        let mut desired = 0i32;
        let mut runs = BTreeMap::new();
        for node in nodes {
            let name = node.metadata.name.clone().unwrap_or_default();
            let (should_run, _) = util::node_should_run(node, ds);
            runs.insert(name.clone(), should_run);
            if should_run {
                desired = desired.saturating_add(1);
                node_to_pods.entry(name).or_default();
            }
        }
        let counts = || -> Result<(i32, i32), String> {
            let unavailable = util::unavailable_count(ds, desired)
                .map_err(|e| format!("invalid value for MaxUnavailable: {e}"))?;
            let surge = util::surge_count(ds, desired)
                .map_err(|e| format!("invalid value for MaxSurge: {e}"))?;
            Ok((surge, unavailable))
        };
        let (max_surge, mut max_unavailable) = counts()
            .map_err(|e| Error::Invalid(format!("couldn't get unavailable numbers: {e}")))?;
        // an impossible configuration falls back to one unavailable pod
        if desired > 0 && max_unavailable == 0 && max_surge == 0 {
            max_unavailable = 1;
        }
        let plan = plan_rolling_update(
            &node_to_pods,
            &|node| runs.get(node).copied(),
            desired,
            max_surge,
            max_unavailable,
            min_ready_seconds(ds),
            hash,
            jiff::Timestamp::now(),
        )
        .map_err(Error::Invalid)?;
        self.sync_nodes(ds, &plan.delete, &plan.create, hash).await
    }

    /// The revisions the DaemonSet controls, adopting orphans it selects and
    /// releasing those it no longer selects (upstream's `controlledHistories`).
    async fn controlled_histories(
        &self,
        ds: &Arc<DaemonSet>,
    ) -> Result<Vec<ControllerRevision>, Error> {
        let selector = selector_of(ds)?;
        let namespace = ds.namespace().unwrap_or_default();
        let api: Api<ControllerRevision> = Api::namespaced(self.cx.client.clone(), &namespace);
        let mut claimed = Vec::new();
        let mut errors = Vec::new();
        let mut can_adopt: Option<Result<(), String>> = None;
        for rev in self.revisions.list_namespace(&namespace) {
            // the claim rules only read metadata: judge the revision as a pod would be
            let as_pod = Pod {
                metadata: rev.metadata.clone(),
                ..Pod::default()
            };
            let uid = rev.metadata.uid.clone().unwrap_or_default();
            match controller_utils::claim(ds.as_ref(), &selector, &as_pod) {
                Claim::Keep => claimed.push(rev.as_ref().clone()),
                Claim::Ignore => {}
                Claim::Release => {
                    let patch = controller_utils::release_patch(
                        ds.metadata.uid.as_deref().unwrap_or_default(),
                        &uid,
                    );
                    match api
                        .patch(
                            &rev.name_any(),
                            &PatchParams::default(),
                            &Patch::Strategic(patch),
                        )
                        .await
                    {
                        Ok(_) => {}
                        Err(e) if matches!(status_code(&e), Some(404 | 422)) => {}
                        Err(e) => errors.push(Error::request(
                            format!("release ControllerRevision {}", rev.name_any()),
                            &e,
                        )),
                    }
                }
                Claim::Adopt => {
                    if can_adopt.is_none() {
                        can_adopt = Some(self.recheck_not_deleted(ds).await);
                    }
                    if let Some(Err(message)) = &can_adopt {
                        errors.push(Error::Request {
                            context: format!("can't adopt ControllerRevision {}", rev.name_any()),
                            message: message.clone(),
                        });
                        continue;
                    }
                    let patch = controller_utils::adopt_patch(&controller_ref(ds.as_ref()), &uid);
                    match api
                        .patch(
                            &rev.name_any(),
                            &PatchParams::default(),
                            &Patch::Strategic(patch),
                        )
                        .await
                    {
                        Ok(adopted) => claimed.push(adopted),
                        Err(e) if status_code(&e) == Some(404) => {}
                        Err(e) => errors.push(Error::request(
                            format!("adopt ControllerRevision {}", rev.name_any()),
                            &e,
                        )),
                    }
                }
            }
        }
        super::aggregate(errors).map(|()| claimed)
    }

    /// The current revision (made if missing, deduplicated, renumbered to be the
    /// newest) and the old ones (upstream's `constructHistory`).
    pub(super) async fn construct_history(
        &self,
        ds: &Arc<DaemonSet>,
    ) -> Result<(ControllerRevision, Vec<ControllerRevision>), Error> {
        let namespace = ds.namespace().unwrap_or_default();
        let api: Api<ControllerRevision> = Api::namespaced(self.cx.client.clone(), &namespace);
        let mut current = Vec::new();
        let mut old = Vec::new();
        for mut rev in self.controlled_histories(ds).await? {
            let labelled = rev
                .metadata
                .labels
                .as_ref()
                .is_some_and(|l| l.contains_key(REVISION_HASH_LABEL));
            if !labelled {
                // the name stands in for the hash, which may have collided
                let name = rev.name_any();
                rev.metadata
                    .labels
                    .get_or_insert_with(Default::default)
                    .insert(REVISION_HASH_LABEL.to_owned(), name.clone());
                rev = api
                    .replace(&name, &PostParams::default(), &rev)
                    .await
                    .map_err(|e| Error::request(format!("update ControllerRevision {name}"), &e))?;
            }
            if util::revision_matches(ds, rev.data.as_ref().map(|d| &d.0)) {
                current.push(rev);
            } else {
                old.push(rev);
            }
        }
        let next_revision = old
            .iter()
            .map(|r| r.revision)
            .max()
            .unwrap_or(0)
            .saturating_add(1);
        let cur = if current.is_empty() {
            self.snapshot(ds, next_revision).await?
        } else {
            let cur = self.dedup_current(ds, current).await?;
            if cur.revision < next_revision {
                let mut renumbered = cur.clone();
                renumbered.revision = next_revision;
                api.replace(&cur.name_any(), &PostParams::default(), &renumbered)
                    .await
                    .map_err(|e| {
                        Error::request(format!("update ControllerRevision {}", cur.name_any()), &e)
                    })?;
            }
            cur
        };
        Ok((cur, old))
    }

    /// Keeps the newest of several revisions of the current template, relabelling
    /// pods of the others to it (upstream's `dedupCurHistories`).
    async fn dedup_current(
        &self,
        ds: &Arc<DaemonSet>,
        mut current: Vec<ControllerRevision>,
    ) -> Result<ControllerRevision, Error> {
        if current.len() == 1 {
            return Ok(current.remove(0));
        }
        let keep_index = current
            .iter()
            .enumerate()
            .max_by_key(|(i, r)| (r.revision, *i))
            .map(|(i, _)| i)
            .unwrap_or(0);
        let keep = current.remove(keep_index);
        let keep_hash = keep
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(REVISION_HASH_LABEL))
            .cloned()
            .unwrap_or_default();
        let namespace = ds.namespace().unwrap_or_default();
        let pods_api: Api<Pod> = Api::namespaced(self.cx.client.clone(), &namespace);
        for pod in self.daemon_pods(ds).await? {
            let hash = pod
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(REVISION_HASH_LABEL));
            if hash != Some(&keep_hash) {
                let patch =
                    serde_json::json!({"metadata": {"labels": {REVISION_HASH_LABEL: keep_hash}}});
                pods_api
                    .patch(
                        &pod.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(patch),
                    )
                    .await
                    .map_err(|e| Error::request(format!("relabel Pod {}", pod.name_any()), &e))?;
            }
        }
        let api: Api<ControllerRevision> = Api::namespaced(self.cx.client.clone(), &namespace);
        for duplicate in current {
            match api
                .delete(&duplicate.name_any(), &DeleteParams::default())
                .await
            {
                Ok(_) => {}
                Err(e) if status_code(&e) == Some(404) => {}
                Err(e) => {
                    return Err(Error::request(
                        format!("delete ControllerRevision {}", duplicate.name_any()),
                        &e,
                    ));
                }
            }
        }
        Ok(keep)
    }

    /// Records the current template as revision `revision` (upstream's `snapshot`);
    /// a name taken by a different template bumps `status.collisionCount`, so the
    /// next sync hashes differently.
    async fn snapshot(
        &self,
        ds: &Arc<DaemonSet>,
        revision: i64,
    ) -> Result<ControllerRevision, Error> {
        let namespace = ds.namespace().unwrap_or_default();
        let collision_count = ds.status.as_ref().and_then(|s| s.collision_count);
        let hash = util::compute_hash(&util::template(ds), collision_count);
        let name = format!("{}-{hash}", ds.name_any());
        let mut labels = util::template(ds)
            .metadata
            .and_then(|m| m.labels)
            .unwrap_or_default();
        labels.insert(REVISION_HASH_LABEL.to_owned(), hash);
        let history = ControllerRevision {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.clone()),
                labels: Some(labels),
                annotations: ds.metadata.annotations.clone(),
                owner_references: Some(vec![controller_ref(ds.as_ref())]),
                ..ObjectMeta::default()
            },
            data: Some(RawExtension(util::revision_patch(ds))),
            revision,
        };
        let api: Api<ControllerRevision> = Api::namespaced(self.cx.client.clone(), &namespace);
        let create_error = match api.create(&PostParams::default(), &history).await {
            Ok(created) => return Ok(created),
            Err(e) if status_code(&e) == Some(409) => e,
            Err(e) => {
                return Err(Error::request(
                    format!("create ControllerRevision {name}"),
                    &e,
                ));
            }
        };
        let existing = api
            .get(&name)
            .await
            .map_err(|e| Error::request(format!("get ControllerRevision {name}"), &e))?;
        if util::revision_matches(ds, existing.data.as_ref().map(|d| &d.0)) {
            return Ok(existing);
        }
        // a hash collision between different templates
        let ds_api: Api<DaemonSet> = Api::namespaced(self.cx.client.clone(), &namespace);
        let mut fresh = ds_api
            .get(&ds.name_any())
            .await
            .map_err(|e| Error::request(format!("get DaemonSet {}", ds.name_any()), &e))?;
        let fresh_count = fresh.status.as_ref().and_then(|s| s.collision_count);
        if fresh_count != collision_count {
            return Err(Error::Invalid(format!(
                "found a stale collision count ({collision_count:?}, expected {fresh_count:?}) of DaemonSet {:?} while processing; will retry until it is updated",
                ds.name_any()
            )));
        }
        let status = fresh.status.get_or_insert_with(Default::default);
        let bumped = status.collision_count.unwrap_or(0).saturating_add(1);
        status.collision_count = Some(bumped);
        ds_api
            .replace_status(&ds.name_any(), &PostParams::default(), &fresh)
            .await
            .map_err(|e| {
                Error::request(format!("update DaemonSet {} status", ds.name_any()), &e)
            })?;
        tracing::info!(daemonset = %ds.name_any(), collision_count = bumped, "found a hash collision for DaemonSet - bumping collisionCount to resolve it");
        Err(Error::request(
            format!("create ControllerRevision {name}"),
            &create_error,
        ))
    }

    /// Deletes the oldest old revisions beyond `revisionHistoryLimit` that no pod
    /// still carries the hash of (upstream's `cleanupHistory`).
    pub(super) async fn cleanup_history(
        &self,
        ds: &Arc<DaemonSet>,
        old: &[ControllerRevision],
    ) -> Result<(), Error> {
        let node_to_pods = self.nodes_to_daemon_pods(ds, true).await?;
        let keep = ds
            .spec
            .as_ref()
            .and_then(|s| s.revision_history_limit)
            .unwrap_or(10);
        let keep = usize::try_from(keep).unwrap_or(0);
        let mut to_kill = old.len().saturating_sub(keep);
        if to_kill == 0 {
            return Ok(());
        }
        let live: HashSet<&str> = node_to_pods
            .values()
            .flatten()
            .filter_map(|p| p.metadata.labels.as_ref()?.get(REVISION_HASH_LABEL))
            .map(String::as_str)
            .filter(|h| !h.is_empty())
            .collect();
        let mut old: Vec<&ControllerRevision> = old.iter().collect();
        old.sort_by_key(|r| r.revision);
        let api: Api<ControllerRevision> =
            Api::namespaced(self.cx.client.clone(), &ds.namespace().unwrap_or_default());
        for rev in old {
            if to_kill == 0 {
                break;
            }
            let hash = rev
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(REVISION_HASH_LABEL))
                .map(String::as_str)
                .unwrap_or_default();
            if live.contains(hash) {
                continue;
            }
            match api.delete(&rev.name_any(), &DeleteParams::default()).await {
                Ok(_) => {}
                Err(e) if status_code(&e) == Some(404) => {}
                Err(e) => {
                    return Err(Error::request(
                        format!("delete ControllerRevision {}", rev.name_any()),
                        &e,
                    ));
                }
            }
            to_kill -= 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, hash: &str, available: bool) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "labels": {REVISION_HASH_LABEL: hash}},
                "spec": {"containers": []},
                "status": {"phase": "Running", "conditions": [
                    {"type": "Ready", "status": if available { "True" } else { "False" },
                     "lastTransitionTime": "2020-01-01T00:00:00Z"}]}
            }))
            .unwrap(),
        )
    }

    fn nodes(entries: Vec<(&str, Vec<Arc<Pod>>)>) -> BTreeMap<String, Vec<Arc<Pod>>> {
        entries
            .into_iter()
            .map(|(n, p)| (n.to_owned(), p))
            .collect()
    }

    fn plan(
        by_node: &BTreeMap<String, Vec<Arc<Pod>>>,
        surge: i32,
        unavailable: i32,
        runs: &dyn Fn(&str) -> Option<bool>,
    ) -> Plan {
        let desired = by_node.keys().filter(|n| runs(n) == Some(true)).count() as i32;
        plan_rolling_update(
            by_node,
            runs,
            desired,
            surge,
            unavailable,
            0,
            "new",
            jiff::Timestamp::now(),
        )
        .unwrap()
    }

    #[test]
    fn without_surge_old_pods_go_within_max_unavailable() {
        let all = |_: &str| Some(true);
        let by_node = nodes(vec![
            ("a", vec![pod("a-old", "old", true)]),
            ("b", vec![pod("b-old", "old", true)]),
            ("c", vec![pod("c-old", "old", true)]),
        ]);
        assert_eq!(plan(&by_node, 0, 1, &all).delete, ["a-old"]);
        assert_eq!(plan(&by_node, 0, 2, &all).delete, ["a-old", "b-old"]);

        // a new pod not yet available uses up the budget
        let by_node = nodes(vec![
            ("a", vec![pod("a-new", "new", false)]),
            ("b", vec![pod("b-old", "old", true)]),
        ]);
        assert!(plan(&by_node, 0, 1, &all).delete.is_empty());
        // a node waiting for its pod counts as unavailable too
        let by_node = nodes(vec![("a", vec![]), ("b", vec![pod("b-old", "old", true)])]);
        assert!(plan(&by_node, 0, 1, &all).delete.is_empty());
        // an unavailable old pod is replaced whatever the budget
        let by_node = nodes(vec![
            ("a", vec![pod("a-new", "new", false)]),
            ("b", vec![pod("b-old", "old", false)]),
            ("c", vec![pod("c-old", "old", true)]),
        ]);
        let p = plan(&by_node, 0, 1, &all);
        assert_eq!(p.delete, ["b-old"]);
        assert!(p.create.is_empty());
        // everything updated and available: nothing to do
        let by_node = nodes(vec![("a", vec![pod("a-new", "new", true)])]);
        assert_eq!(plan(&by_node, 0, 1, &all), Plan::default());
    }

    #[test]
    fn with_surge_new_pods_come_first_and_old_ones_go_once_replaced() {
        let all = |_: &str| Some(true);
        let by_node = nodes(vec![
            ("a", vec![pod("a-old", "old", true)]),
            ("b", vec![pod("b-old", "old", true)]),
            ("c", vec![pod("c-old", "old", false)]),
        ]);
        let p = plan(&by_node, 1, 0, &all);
        // the unavailable node gets its new pod at once, one more within the surge
        assert_eq!(p.create, ["c", "a"]);
        assert!(p.delete.is_empty());

        let by_node = nodes(vec![
            (
                "a",
                vec![pod("a-old", "old", true), pod("a-new", "new", true)],
            ),
            (
                "b",
                vec![pod("b-old", "old", true), pod("b-new", "new", false)],
            ),
            ("c", vec![pod("c-old", "old", true)]),
        ]);
        let p = plan(&by_node, 1, 0, &all);
        // a's new pod is available: its old one goes; b still surges, so c waits
        assert_eq!(p.delete, ["a-old"]);
        assert!(p.create.is_empty());

        // a node that should no longer run the pod keeps it until enough are
        // available elsewhere
        let runs = |n: &str| Some(n != "gone");
        let by_node = nodes(vec![
            ("a", vec![pod("a-new", "new", false)]),
            ("gone", vec![pod("gone-old", "old", true)]),
        ]);
        // desired 1, available 1 (the old pod itself): it stays
        assert!(plan(&by_node, 1, 0, &runs).delete.is_empty());
        let by_node = nodes(vec![
            ("a", vec![pod("a-new", "new", true)]),
            ("b", vec![pod("b-new", "new", true)]),
            ("gone", vec![pod("gone-old", "old", true)]),
        ]);
        // desired 2, available 3: one may go
        assert_eq!(plan(&by_node, 1, 0, &runs).delete, ["gone-old"]);
        // a node that no longer exists is an error, as upstream's lister miss
        let missing = |n: &str| (n != "c").then_some(true);
        let by_node = nodes(vec![("c", vec![pod("c-old", "old", true)])]);
        assert!(
            plan_rolling_update(
                &by_node,
                &missing,
                0,
                1,
                0,
                0,
                "new",
                jiff::Timestamp::now()
            )
            .is_err()
        );
    }

    #[test]
    fn nodes_with_extra_pods_are_left_to_the_manage_loop() {
        let all = |_: &str| Some(true);
        let by_node = nodes(vec![
            (
                "a",
                vec![pod("a-old", "old", true), pod("a-old2", "old", true)],
            ),
            ("b", vec![pod("b-old", "old", true)]),
        ]);
        // a counts as unavailable, using up maxUnavailable 1
        assert!(plan(&by_node, 0, 1, &all).delete.is_empty());
        assert_eq!(plan(&by_node, 0, 2, &all).delete, ["b-old"]);
    }
}
