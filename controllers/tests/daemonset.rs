//! The DaemonSet controller against a real in-process apiserver, with the scheduler
//! and fake kubelets: one pod per eligible node (bound through a node-name affinity
//! the scheduler honours), new nodes getting theirs, node selectors excluding nodes,
//! a rolling update replacing every pod, and failed pods replaced.

mod support;

use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use support::{Cluster, Spec, cluster, controlled_by, events_about, ready_cluster, wait_for};

const HASH_LABEL: &str = "controller-revision-hash";

/// A cluster running the DaemonSet controller with `nodes` fake nodes, ready for pods
/// in `default`; the nodes keep the not-ready taint they are created with.
async fn tainted_cluster(nodes: usize) -> (Cluster, Vec<String>) {
    let c = cluster(Spec::new(&["daemonset"])).await;
    let names = c.add_nodes("node", nodes).await;
    c.wait_default_account("default").await;
    (c, names)
}

fn daemon_set(name: &str, image: &str, pod_spec: serde_json::Value) -> DaemonSet {
    let mut spec = json!({"containers": [{"name": "c", "image": image}]});
    if let (Some(s), Some(extra)) = (spec.as_object_mut(), pod_spec.as_object()) {
        for (k, v) in extra {
            s.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": spec}
        }
    }))
    .unwrap()
}

/// The active pods controlled by the object with `uid`.
async fn owned_pods(c: &Cluster, uid: &str) -> Vec<Pod> {
    let pods: Api<Pod> = Api::namespaced(c.admin.clone(), "default");
    controlled_by(&pods, uid)
        .await
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect()
}

fn node_of(pod: &Pod) -> Option<&str> {
    pod.spec.as_ref()?.node_name.as_deref()
}

fn running(pod: &Pod) -> bool {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
}

fn hash_of(pod: &Pod) -> Option<&str> {
    pod.metadata
        .labels
        .as_ref()?
        .get(HASH_LABEL)
        .map(String::as_str)
}

/// Waits until the DaemonSet's pods run on exactly `nodes` (one each), returning them
/// sorted by node.
async fn wait_running_on(c: &Cluster, uid: &str, nodes: &[&str], what: &str) -> Vec<Pod> {
    let mut want: Vec<String> = nodes.iter().map(|n| (*n).to_owned()).collect();
    want.sort();
    wait_for(what, || {
        let want = want.clone();
        async move {
            let mut pods = owned_pods(c, uid).await;
            pods.sort_by(|a, b| node_of(a).cmp(&node_of(b)));
            let on: Vec<String> = pods
                .iter()
                .filter_map(|p| node_of(p).map(str::to_owned))
                .collect();
            (on == want && pods.iter().all(running)).then_some(pods)
        }
    })
    .await
}

/// Waits until the DaemonSet's status, for its current generation, passes `check`.
async fn wait_status(
    api: &Api<DaemonSet>,
    name: &str,
    what: &str,
    check: impl Fn(&DaemonSetStatus) -> bool,
) -> DaemonSetStatus {
    let check = &check;
    wait_for(what, || async move {
        let ds = api.get(name).await.unwrap();
        let status = ds.status?;
        (status.observed_generation? >= ds.metadata.generation? && check(&status)).then_some(status)
    })
    .await
}

/// The counts of a status as (desired, current, ready, updated, available,
/// unavailable, misscheduled).
fn counts(s: &DaemonSetStatus) -> (i32, i32, i32, i32, i32, i32, i32) {
    (
        s.desired_number_scheduled,
        s.current_number_scheduled,
        s.number_ready,
        s.updated_number_scheduled.unwrap_or(0),
        s.number_available.unwrap_or(0),
        s.number_unavailable.unwrap_or(0),
        s.number_misscheduled,
    )
}

async fn revisions(c: &Cluster, uid: &str) -> Vec<ControllerRevision> {
    let api: Api<ControllerRevision> = Api::namespaced(c.admin.clone(), "default");
    let mut revs: Vec<ControllerRevision> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|r| {
            r.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.uid == uid)
        })
        .collect();
    revs.sort_by_key(|r| r.revision);
    revs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_set_runs_one_pod_per_node_and_follows_new_nodes() {
    let (c, nodes) = tainted_cluster(2).await;
    let api: Api<DaemonSet> = Api::namespaced(c.admin.clone(), "default");
    let ds = api
        .create(
            &PostParams::default(),
            &daemon_set("agent", "busybox:1", json!({})),
        )
        .await
        .unwrap();
    let uid = ds.metadata.uid.clone().unwrap();

    // nodes that have not become ready carry node.kubernetes.io/not-ready:NoSchedule,
    // which daemon pods do not tolerate (upstream tolerates only its NoExecute form):
    // no node should run the pod yet
    let status = wait_status(&api, "agent", "the status of the tainted nodes", |_| true).await;
    assert_eq!(counts(&status), (0, 0, 0, 0, 0, 0, 0));
    assert!(owned_pods(&c, &uid).await.is_empty());
    // the template is recorded as revision 1, named after its hash
    let revs = wait_for("the first revision", || async {
        let revs = revisions(&c, &uid).await;
        (!revs.is_empty()).then_some(revs)
    })
    .await;
    assert_eq!(revs.len(), 1);
    assert_eq!(revs[0].revision, 1);
    let hash = revs[0].metadata.labels.as_ref().unwrap()[HASH_LABEL].clone();
    assert_eq!(
        revs[0].metadata.name.as_deref(),
        Some(format!("agent-{hash}").as_str())
    );
    let data = &revs[0].data.as_ref().unwrap().0;
    assert_eq!(data["spec"]["template"]["$patch"], "replace");
    assert_eq!(
        data["spec"]["template"]["spec"]["containers"][0]["image"],
        "busybox:1"
    );

    for n in &nodes {
        c.untaint(n).await;
    }
    let pods = wait_running_on(
        &c,
        &uid,
        &["node-0", "node-1"],
        "a running pod on each node",
    )
    .await;
    for pod in &pods {
        let node = node_of(pod).unwrap();
        assert_eq!(hash_of(pod), Some(hash.as_str()));
        assert!(pod.metadata.name.as_deref().unwrap().starts_with("agent-"));
        // bound through a required node affinity on the node's name, which the
        // scheduler honoured
        let spec = pod.spec.as_ref().unwrap();
        let terms = &spec
            .affinity
            .as_ref()
            .unwrap()
            .node_affinity
            .as_ref()
            .unwrap()
            .required_during_scheduling_ignored_during_execution
            .as_ref()
            .unwrap()
            .node_selector_terms;
        let field = &terms[0].match_fields.as_ref().unwrap()[0];
        assert_eq!(
            (field.key.as_str(), field.operator.as_str()),
            ("metadata.name", "In")
        );
        assert_eq!(field.values, Some(vec![node.to_owned()]));
        // the daemon tolerations: surviving not-ready and unreachable nodes forever
        let tolerations = spec.tolerations.as_ref().unwrap();
        for (key, effect) in [
            ("node.kubernetes.io/not-ready", "NoExecute"),
            ("node.kubernetes.io/unreachable", "NoExecute"),
            ("node.kubernetes.io/disk-pressure", "NoSchedule"),
            ("node.kubernetes.io/memory-pressure", "NoSchedule"),
            ("node.kubernetes.io/pid-pressure", "NoSchedule"),
            ("node.kubernetes.io/unschedulable", "NoSchedule"),
        ] {
            let t = tolerations
                .iter()
                .find(|t| t.key.as_deref() == Some(key) && t.effect.as_deref() == Some(effect))
                .unwrap_or_else(|| panic!("no {key}:{effect} toleration in {tolerations:?}"));
            assert_eq!(t.operator.as_deref(), Some("Exists"));
            assert_eq!(t.toleration_seconds, None, "{key}");
        }
    }
    let status = wait_status(&api, "agent", "two pods counted", |s| {
        counts(s) == (2, 2, 2, 2, 2, 0, 0)
    })
    .await;
    assert_eq!(status.number_misscheduled, 0);

    // a new node gets its pod once it is schedulable
    let extra = c.add_nodes("extra", 1).await;
    c.untaint(&extra[0]).await;
    wait_running_on(
        &c,
        &uid,
        &["extra-0", "node-0", "node-1"],
        "a pod on the new node",
    )
    .await;
    wait_status(&api, "agent", "three pods counted", |s| {
        counts(s) == (3, 3, 3, 3, 3, 0, 0)
    })
    .await;
    let created = wait_for("three SuccessfulCreate events", || async {
        let found = events_about(&c.admin, &uid, "SuccessfulCreate").await;
        (found.len() >= 3).then_some(found)
    })
    .await;
    for e in created {
        let message = e.message.unwrap_or_default();
        assert!(message.starts_with("Created pod: agent-"), "{message}");
        assert_eq!(
            e.source.and_then(|s| s.component).as_deref(),
            Some("daemonset-controller")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_selector_picks_nodes_and_follows_their_labels() {
    let c = ready_cluster(&["daemonset"], 2).await;
    let nodes: Api<Node> = Api::all(c.admin.clone());
    let label = |node: &'static str, value: Option<&'static str>| {
        let nodes = nodes.clone();
        async move {
            nodes
                .patch(
                    node,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"metadata": {"labels": {"disk": value}}})),
                )
                .await
                .unwrap();
        }
    };
    label("node-0", Some("ssd")).await;
    let api: Api<DaemonSet> = Api::namespaced(c.admin.clone(), "default");
    let ds = api
        .create(
            &PostParams::default(),
            &daemon_set(
                "fast",
                "busybox:1",
                json!({"nodeSelector": {"disk": "ssd"}}),
            ),
        )
        .await
        .unwrap();
    let uid = ds.metadata.uid.clone().unwrap();
    wait_running_on(&c, &uid, &["node-0"], "a pod on the ssd node only").await;
    wait_status(&api, "fast", "one pod desired", |s| {
        counts(s) == (1, 1, 1, 1, 1, 0, 0)
    })
    .await;

    // the label moves: the pod follows it
    label("node-1", Some("ssd")).await;
    label("node-0", None).await;
    wait_running_on(
        &c,
        &uid,
        &["node-1"],
        "the pod moved to the newly labelled node",
    )
    .await;
    wait_status(&api, "fast", "one pod desired on the other node", |s| {
        counts(s) == (1, 1, 1, 1, 1, 0, 0)
    })
    .await;
    let deleted = wait_for("a SuccessfulDelete event", || async {
        let found = events_about(&c.admin, &uid, "SuccessfulDelete").await;
        (!found.is_empty()).then_some(found)
    })
    .await;
    assert!(
        deleted[0]
            .message
            .as_deref()
            .unwrap_or_default()
            .starts_with("Deleted pod: fast-")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_update_replaces_every_pod() {
    let c = ready_cluster(&["daemonset"], 3).await;
    let api: Api<DaemonSet> = Api::namespaced(c.admin.clone(), "default");
    let ds = api
        .create(
            &PostParams::default(),
            &daemon_set("agent", "busybox:1", json!({})),
        )
        .await
        .unwrap();
    let uid = ds.metadata.uid.clone().unwrap();
    let all = ["node-0", "node-1", "node-2"];
    let before = wait_running_on(&c, &uid, &all, "three pods").await;
    wait_status(&api, "agent", "three pods counted", |s| {
        counts(s) == (3, 3, 3, 3, 3, 0, 0)
    })
    .await;
    let old_hash = hash_of(&before[0]).unwrap().to_owned();
    // the apiserver counts template generations; the pods carry theirs
    let generation =
        |p: &Pod| p.metadata.labels.as_ref().unwrap()["pod-template-generation"].clone();
    assert!(before.iter().all(|p| generation(p) == "1"));

    // the default strategy: RollingUpdate, maxUnavailable 1
    let stored = api.get("agent").await.unwrap();
    let strategy = stored.spec.unwrap().update_strategy.unwrap();
    assert_eq!(strategy.type_.as_deref(), Some("RollingUpdate"));
    api.patch(
        "agent",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox:2"}]}}}})),
    )
    .await
    .unwrap();

    let revs = wait_for("the second revision", || async {
        let revs = revisions(&c, &uid).await;
        (revs.len() == 2).then_some(revs)
    })
    .await;
    assert_eq!(revs.iter().map(|r| r.revision).collect::<Vec<_>>(), [1, 2]);
    let new_hash = revs[1].metadata.labels.as_ref().unwrap()[HASH_LABEL].clone();
    assert_ne!(new_hash, old_hash);
    assert_eq!(
        revs[0].metadata.labels.as_ref().unwrap()[HASH_LABEL],
        old_hash
    );

    let after = wait_for("every pod replaced", || {
        let new_hash = new_hash.clone();
        let c = &c;
        let uid = &uid;
        async move {
            let pods = owned_pods(c, uid).await;
            let updated = pods.len() == 3
                && pods.iter().all(|p| {
                    running(p)
                        && hash_of(p) == Some(new_hash.as_str())
                        && p.spec.as_ref().unwrap().containers[0].image.as_deref()
                            == Some("busybox:2")
                });
            updated.then_some(pods)
        }
    })
    .await;
    assert!(after.iter().all(|p| generation(p) == "2"));
    let stored = api.get("agent").await.unwrap();
    assert_eq!(
        stored.metadata.annotations.unwrap()["deprecated.daemonset.template.generation"],
        "2"
    );
    let mut on: Vec<&str> = after.iter().filter_map(node_of).collect();
    on.sort();
    assert_eq!(on, all);
    for old in &before {
        assert!(
            after.iter().all(|p| p.metadata.uid != old.metadata.uid),
            "old pod {:?} survived",
            old.metadata.name
        );
    }
    wait_status(&api, "agent", "the update to converge", |s| {
        counts(s) == (3, 3, 3, 3, 3, 0, 0)
    })
    .await;
    let deleted = events_about(&c.admin, &uid, "SuccessfulDelete").await;
    assert!(deleted.len() >= 3, "{deleted:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_daemon_pods_are_deleted_and_replaced() {
    let c = ready_cluster(&["daemonset"], 1).await;
    let api: Api<DaemonSet> = Api::namespaced(c.admin.clone(), "default");
    let ds = api
        .create(
            &PostParams::default(),
            &daemon_set("agent", "busybox:1", json!({})),
        )
        .await
        .unwrap();
    let uid = ds.metadata.uid.clone().unwrap();
    let pods = wait_running_on(&c, &uid, &["node-0"], "the pod").await;
    let failed = pods[0].metadata.name.clone().unwrap();
    // as a kubelet rejecting the pod would report it
    let pods_api: Api<Pod> = Api::namespaced(c.admin.clone(), "default");
    pods_api
        .patch_status(
            &failed,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Failed", "reason": "NodeAffinity"}})),
        )
        .await
        .unwrap();
    let event = wait_for("a FailedDaemonPod event", || async {
        events_about(&c.admin, &uid, "FailedDaemonPod")
            .await
            .into_iter()
            .next()
    })
    .await;
    assert_eq!(
        event.message.as_deref(),
        Some(
            format!("Found failed daemon pod default/{failed} on node node-0, will try to kill it")
                .as_str()
        )
    );
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    let replaced = wait_for("a replacement pod", || async {
        let pods = owned_pods(&c, &uid).await;
        pods.into_iter()
            .find(|p| p.metadata.name.as_deref() != Some(failed.as_str()) && running(p))
    })
    .await;
    assert_eq!(node_of(&replaced), Some("node-0"));
    wait_for("the failed pod gone", || async {
        pods_api
            .get_opt(&failed)
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    wait_status(&api, "agent", "the replacement counted", |s| {
        counts(s) == (1, 1, 1, 1, 1, 0, 0)
    })
    .await;
}
