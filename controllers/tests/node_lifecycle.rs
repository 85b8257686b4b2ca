//! The node lifecycle and taint eviction controllers against a real in-process
//! apiserver: condition taints follow node conditions, a node that stops heartbeating
//! goes Unknown and is tainted unreachable, and its pods are evicted when their
//! tolerations run out (upstream's `test/integration/node` and taint eviction tests).

mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Event, Node, Pod, Taint};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use support::{Spec, cluster, wait_for};

const NODE_LIFECYCLE: &str = "node-lifecycle-controller";
const TAINT_EVICTION: &str = "taint-eviction-controller";

fn taints(node: &Node) -> Vec<Taint> {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default()
}

fn has_taint(node: &Node, key: &str, effect: &str) -> bool {
    taints(node)
        .iter()
        .any(|t| t.key == key && t.effect == effect)
}

/// Waits for an event about `name` with `reason` and `message` in `default`.
async fn wait_for_event(admin: &kube::Client, name: &str, reason: &str, message: &str) {
    let events: Api<Event> = Api::namespaced(admin.clone(), "default");
    let what = format!("event {reason} {message:?} about {name}");
    wait_for(&what, || {
        let events = events.clone();
        async move {
            let list = events.list(&ListParams::default()).await.ok()?;
            list.items
                .into_iter()
                .find(|e| {
                    e.involved_object.name.as_deref() == Some(name)
                        && e.reason.as_deref() == Some(reason)
                        && e.message.as_deref() == Some(message)
                })
                .map(|_| ())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn condition_taints_follow_the_node() {
    let c = cluster(Spec {
        scheduler: false,
        ..Spec::new(&[NODE_LIFECYCLE])
    })
    .await;
    let names = c.add_nodes("node", 1).await;
    let name = names[0].clone();
    let nodes: Api<Node> = Api::all(c.admin.clone());
    // TaintNodesByCondition put not-ready on the new node; it reports Ready
    wait_for("the not-ready taint removed", || {
        let nodes = nodes.clone();
        let name = name.clone();
        async move {
            let node = nodes.get(&name).await.ok()?;
            (!has_taint(&node, "node.kubernetes.io/not-ready", "NoSchedule")).then_some(())
        }
    })
    .await;
    wait_for_event(
        &c.admin,
        &name,
        "RegisteredNode",
        &format!("Node {name} event: Registered Node {name} in Controller"),
    )
    .await;
    // cordoned: the unschedulable taint comes, and goes with the cordon
    for (unschedulable, wanted) in [(true, true), (false, false)] {
        nodes
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"unschedulable": unschedulable}})),
            )
            .await
            .unwrap();
        wait_for("the unschedulable taint in step", || {
            let nodes = nodes.clone();
            let name = name.clone();
            async move {
                let node = nodes.get(&name).await.ok()?;
                (has_taint(&node, "node.kubernetes.io/unschedulable", "NoSchedule") == wanted)
                    .then_some(())
            }
        })
        .await;
    }
    let node = nodes.get(&name).await.unwrap();
    assert!(taints(&node).is_empty(), "taints left: {:?}", taints(&node));
}

fn pod(name: &str, node: &str, toleration_seconds: Option<i64>) -> Pod {
    let mut toleration = json!({
        "key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
    });
    if let Some(seconds) = toleration_seconds {
        toleration["tolerationSeconds"] = seconds.into();
    }
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "nodeName": node,
            "containers": [{"name": "c", "image": "nginx"}],
            "tolerations": [toleration],
        }
    }))
    .unwrap()
}

fn pod_condition(pod: &Pod, type_: &str) -> Option<(String, Option<String>)> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_node_is_tainted_unreachable_and_its_pods_evicted() {
    let mut spec = Spec {
        scheduler: false,
        ..Spec::new(&[NODE_LIFECYCLE, TAINT_EVICTION])
    };
    spec.settings.node_monitor_period = Duration::from_millis(500);
    spec.settings.node_monitor_grace_period = Duration::from_secs(3);
    spec.settings.node_startup_grace_period = Duration::from_secs(3);
    let c = cluster(spec).await;
    // a Ready node that keeps heartbeating: with every node down the controller would
    // suspect itself (full disruption) and taint nothing, as upstream's
    c.add_nodes("healthy", 1).await;
    c.wait_default_account("default").await;
    // pods bound to the node before it exists, Running and Ready as its kubelet said
    let pods: Api<Pod> = Api::namespaced(c.admin.clone(), "default");
    for (name, seconds) in [("short", Some(2)), ("forever", None)] {
        pods.create(&PostParams::default(), &pod(name, "silent", seconds))
            .await
            .unwrap();
        pods.patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": "True"},
            ]}})),
        )
        .await
        .unwrap();
    }
    // a node no kubelet plays: Ready once, then silent
    fake_kubelet::create_node(&c.admin, "silent", "4", "16Gi", json!({}))
        .await
        .unwrap();
    let nodes: Api<Node> = Api::all(c.admin.clone());
    let node = wait_for("the silent node Ready=Unknown", || {
        let nodes = nodes.clone();
        async move {
            let node = nodes.get("silent").await.ok()?;
            let ready = node
                .status
                .as_ref()?
                .conditions
                .as_ref()?
                .iter()
                .find(|c| c.type_ == "Ready")?
                .clone();
            (ready.status == "Unknown").then_some((node, ready))
        }
    })
    .await;
    assert_eq!(node.1.reason.as_deref(), Some("NodeStatusUnknown"));
    assert_eq!(
        node.1.message.as_deref(),
        Some("Kubelet stopped posting node status.")
    );
    let tainted = wait_for("the unreachable NoExecute taint", || {
        let nodes = nodes.clone();
        async move {
            let node = nodes.get("silent").await.ok()?;
            taints(&node)
                .into_iter()
                .find(|t| t.key == "node.kubernetes.io/unreachable" && t.effect == "NoExecute")
        }
    })
    .await;
    let seen_at = Instant::now();
    assert!(tainted.time_added.is_some(), "{tainted:?}");
    // the Ready node keeps no health taint
    let healthy = nodes.get("healthy-0").await.unwrap();
    assert!(taints(&healthy).is_empty(), "{:?}", taints(&healthy));
    // pods on the node were marked not Ready
    wait_for("the pods marked not Ready", || {
        let pods = pods.clone();
        async move {
            let pod = pods.get("forever").await.ok()?;
            (pod_condition(&pod, "Ready")?.0 == "False").then_some(())
        }
    })
    .await;
    wait_for_event(&c.admin, "forever", "NodeNotReady", "Node is not ready").await;
    wait_for_event(
        &c.admin,
        "silent",
        "NodeNotReady",
        "Node silent status is now: NodeNotReady",
    )
    .await;
    // the pod tolerating 2 s is deleted (no kubelet finishes its graceful deletion)
    let short = wait_for("the short-tolerating pod deleted", || {
        let pods = pods.clone();
        async move {
            match pods.get_opt("short").await.ok()? {
                None => Some(None),
                Some(p) => p.metadata.deletion_timestamp.is_some().then_some(Some(p)),
            }
        }
    })
    .await;
    let waited = seen_at.elapsed();
    assert!(
        waited >= Duration::from_millis(1500) && waited < Duration::from_secs(15),
        "deleted {waited:?} after the taint"
    );
    if let Some(short) = short {
        assert_eq!(
            pod_condition(&short, "DisruptionTarget"),
            Some(("True".to_owned(), Some("DeletionByTaintManager".to_owned())))
        );
    }
    wait_for_event(
        &c.admin,
        "short",
        "TaintManagerEviction",
        "Marking for deletion Pod default/short",
    )
    .await;
    // the pod tolerating forever stays
    tokio::time::sleep(Duration::from_secs(2)).await;
    let forever = pods.get("forever").await.unwrap();
    assert!(forever.metadata.deletion_timestamp.is_none());
    assert_eq!(pod_condition(&forever, "DisruptionTarget"), None);
}

fn custom_pod(name: &str, node: &str, toleration_seconds: Option<i64>) -> Pod {
    let tolerations = match toleration_seconds {
        Some(seconds) => json!([{
            "key": "example.com/evict", "operator": "Exists", "effect": "NoExecute",
            "tolerationSeconds": seconds,
        }]),
        None => json!([]),
    };
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "nodeName": node,
            "containers": [{"name": "c", "image": "nginx"}],
            "tolerations": tolerations,
        }
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_the_taint_cancels_a_pending_eviction() {
    let c = cluster(Spec {
        scheduler: false,
        ..Spec::new(&[TAINT_EVICTION])
    })
    .await;
    let node = c.add_nodes("node", 1).await.remove(0);
    c.wait_default_account("default").await;
    let pods: Api<Pod> = Api::namespaced(c.admin.clone(), "default");
    pods.create(
        &PostParams::default(),
        &custom_pod("intolerant", &node, None),
    )
    .await
    .unwrap();
    pods.create(
        &PostParams::default(),
        &custom_pod("patient", &node, Some(3)),
    )
    .await
    .unwrap();
    let nodes: Api<Node> = Api::all(c.admin.clone());
    let set_taints = |taints: serde_json::Value| {
        let nodes = nodes.clone();
        let node = node.clone();
        async move {
            nodes
                .patch(
                    &node,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"taints": taints}})),
                )
                .await
                .unwrap();
        }
    };
    set_taints(json!([{"key": "example.com/evict", "effect": "NoExecute"}])).await;
    let tainted = Instant::now();
    // not tolerated: deleted at once (the fake kubelet finishes the deletion)
    wait_for("the intolerant pod deleted", || {
        let pods = pods.clone();
        async move {
            match pods.get_opt("intolerant").await.ok()? {
                None => Some(()),
                Some(p) => p.metadata.deletion_timestamp.map(|_| ()),
            }
        }
    })
    .await;
    assert!(tainted.elapsed() < Duration::from_secs(3));
    wait_for_event(
        &c.admin,
        "intolerant",
        "TaintManagerEviction",
        "Marking for deletion Pod default/intolerant",
    )
    .await;
    // the taint goes before the patient pod's 3 s are up
    set_taints(serde_json::Value::Null).await;
    assert!(
        tainted.elapsed() < Duration::from_secs(3),
        "too slow to test cancelling"
    );
    wait_for_event(
        &c.admin,
        "patient",
        "TaintManagerEviction",
        "Cancelling deletion of Pod default/patient",
    )
    .await;
    tokio::time::sleep(Duration::from_secs(4).saturating_sub(tainted.elapsed())).await;
    let patient = pods.get("patient").await.unwrap();
    assert!(patient.metadata.deletion_timestamp.is_none());
}
