//! `rkube up` schedules: a fake Node object (no kubelet) registered through stock
//! kubectl, a pod created with `kubectl run`, and the pod bound to the node with
//! upstream's `Scheduled` event, as `kubectl get events` shows it. A pod that fits
//! nowhere gets upstream's `FailedScheduling` message. The scheduler holds its Lease.

mod common;

use std::time::{Duration, Instant};

use common::{RkubeUp, stdout_of};

fn wait_for(
    kubeconfig: &std::path::Path,
    args: &[&str],
    what: &str,
    ok: impl Fn(&str) -> bool,
) -> String {
    let start = Instant::now();
    loop {
        let out = stdout_of(kubeconfig, args);
        if ok(&out) {
            return out;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{what}: {out}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn rkube_up_binds_pods_to_nodes_with_upstreams_events() {
    let up = RkubeUp::start();
    let kubeconfig = &up.kubeconfig;
    let node = up.dir.path().join("node.json");
    std::fs::write(
        &node,
        serde_json::json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "fake-1", "labels": {"kubernetes.io/hostname": "fake-1"}},
            "status": {"capacity": {"cpu": "2", "memory": "4Gi", "pods": "110"}}
        })
        .to_string(),
    )
    .unwrap();
    stdout_of(kubeconfig, &["create", "-f", node.to_str().unwrap()]);
    // new nodes are tainted not-ready until the node-lifecycle controller sees their
    // conditions (none here: no kubelet posts any within this test)
    common::wait_for_untainted(kubeconfig, "fake-1");

    stdout_of(
        kubeconfig,
        &[
            "run",
            "web",
            "--image=registry.k8s.io/pause:3.10",
            "--restart=Never",
        ],
    );
    wait_for(
        kubeconfig,
        &["get", "pod", "web", "-o", "jsonpath={.spec.nodeName}"],
        "web not bound",
        |out| out == "fake-1",
    );
    let events = wait_for(
        kubeconfig,
        &[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=web",
            "-o",
            "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}",
        ],
        "no Scheduled event",
        |out| out.contains("Scheduled"),
    );
    assert!(
        events.contains("Scheduled: Successfully assigned default/web to fake-1"),
        "{events}"
    );

    stdout_of(
        kubeconfig,
        &[
            "run",
            "huge",
            "--image=registry.k8s.io/pause:3.10",
            "--restart=Never",
            "--overrides",
            r#"{"spec": {"containers": [{"name": "huge", "image": "registry.k8s.io/pause:3.10", "resources": {"requests": {"cpu": "64"}}}]}}"#,
        ],
    );
    let events = wait_for(
        kubeconfig,
        &[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=huge",
            "-o",
            "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}",
        ],
        "no FailedScheduling event",
        |out| out.contains("FailedScheduling"),
    );
    assert!(
        events.contains("FailedScheduling: 0/1 nodes are available: 1 Insufficient cpu."),
        "{events}"
    );
    let condition = stdout_of(
        kubeconfig,
        &[
            "get",
            "pod",
            "huge",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"PodScheduled\")].reason}",
        ],
    );
    assert_eq!(condition, "Unschedulable");

    let holder = stdout_of(
        kubeconfig,
        &[
            "get",
            "lease",
            "-n",
            "kube-system",
            "kube-scheduler",
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ],
    );
    assert!(!holder.is_empty());
}
