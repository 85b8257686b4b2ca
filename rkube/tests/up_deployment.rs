//! `rkube up` runs Deployments end to end with stock kubectl: `kubectl create
//! deployment` pods are bound with upstream's `Scheduled` events and PodScheduled
//! condition, `kubectl rollout status/history/undo` follow a rolling update and its
//! rollback, and `kubectl drain` moves the pods off a node. No kubelet exists yet:
//! fake Node objects are played by the `fake-kubelet` test helper (bound pods become
//! Running and Ready), and the node-lifecycle controller clears the not-ready taint
//! new nodes get once they report Ready.

mod common;

use std::time::{Duration, Instant};

use common::{RkubeUp, kubectl, stdout_of};

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
        assert!(start.elapsed() < Duration::from_secs(90), "{what}: {out}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn rollout_status(kubeconfig: &std::path::Path) -> String {
    stdout_of(
        kubeconfig,
        &["rollout", "status", "deployment/web", "--timeout=90s"],
    )
}

fn web_pods(kubeconfig: &std::path::Path) -> String {
    stdout_of(
        kubeconfig,
        &[
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName} {.spec.containers[0].image} {.metadata.deletionTimestamp}{\"\\n\"}{end}",
        ],
    )
}

#[test]
fn kubectl_create_deployment_rollout_undo_and_drain_on_rkube_up() {
    let up = RkubeUp::start();
    let kubeconfig = &up.kubeconfig;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _entered = runtime.enter();
    let admin = runtime.block_on(common::client_of(kubeconfig));
    for node in ["fake-a", "fake-b"] {
        runtime
            .block_on(fake_kubelet::create_node(
                &admin,
                node,
                "4",
                "8Gi",
                serde_json::json!({}),
            ))
            .unwrap();
    }
    let kubelet = fake_kubelet::FakeKubelet::start(admin.clone(), &["fake-a", "fake-b"]);
    // the node-lifecycle controller lifts the not-ready taint of nodes reporting Ready
    for node in ["fake-a", "fake-b"] {
        common::wait_for_untainted(kubeconfig, node);
    }

    stdout_of(
        kubeconfig,
        &[
            "create",
            "deployment",
            "web",
            "--image=registry.k8s.io/pause:3.10",
            "--replicas=3",
        ],
    );
    let out = rollout_status(kubeconfig);
    assert!(
        out.contains("deployment \"web\" successfully rolled out"),
        "{out}"
    );
    let pods = web_pods(kubeconfig);
    let names: Vec<&str> = pods.lines().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(names.len(), 3, "{pods}");
    for line in pods.lines() {
        let node = line.split(' ').nth(1).unwrap();
        assert!(node == "fake-a" || node == "fake-b", "{pods}");
    }
    // upstream's events and condition for each pod
    for name in &names {
        let events = wait_for(
            kubeconfig,
            &[
                "get",
                "events",
                "--field-selector",
                &format!("involvedObject.name={name}"),
                "-o",
                "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}",
            ],
            "no Scheduled event",
            |out| out.contains("Scheduled"),
        );
        assert!(
            events.contains(&format!(
                "Scheduled: Successfully assigned default/{name} to fake-"
            )),
            "{events}"
        );
        let scheduled = stdout_of(
            kubeconfig,
            &[
                "get",
                "pod",
                name,
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"PodScheduled\")].status}",
            ],
        );
        assert_eq!(scheduled, "True");
    }
    let rs_events = stdout_of(
        kubeconfig,
        &[
            "get",
            "events",
            "-o",
            "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}",
        ],
    );
    assert!(
        rs_events.contains("ScalingReplicaSet: Scaled up replica set web-"),
        "{rs_events}"
    );
    assert!(
        rs_events.contains("SuccessfulCreate: Created pod: web-"),
        "{rs_events}"
    );

    // a rolling update, its history, and the rollback
    stdout_of(
        kubeconfig,
        &[
            "set",
            "image",
            "deployment/web",
            "pause=registry.k8s.io/pause:3.9",
        ],
    );
    rollout_status(kubeconfig);
    wait_for(
        kubeconfig,
        &[
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={.items[*].spec.containers[0].image}",
        ],
        "old pods remain",
        |out| out.split(' ').filter(|i| !i.is_empty()).count() == 3 && !out.contains("pause:3.10"),
    );
    let history = stdout_of(kubeconfig, &["rollout", "history", "deployment/web"]);
    assert!(history.contains("REVISION"), "{history}");
    let revisions: Vec<&str> = history
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.chars().all(|c| c.is_ascii_digit()))
        .collect();
    assert_eq!(revisions, ["1", "2"], "{history}");
    stdout_of(kubeconfig, &["rollout", "undo", "deployment/web"]);
    rollout_status(kubeconfig);
    wait_for(
        kubeconfig,
        &[
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={.items[*].spec.containers[0].image}",
        ],
        "the rollback's pods",
        |out| out.split(' ').filter(|i| !i.is_empty()).count() == 3 && !out.contains("pause:3.9"),
    );
    let revision = stdout_of(
        kubeconfig,
        &[
            "get",
            "deployment",
            "web",
            "-o",
            "jsonpath={.metadata.annotations.deployment\\.kubernetes\\.io/revision}",
        ],
    );
    assert_eq!(revision, "3");

    // drain a node: its pods are evicted and the ReplicaSet recreates them elsewhere
    let drained = kubectl(
        kubeconfig,
        &["drain", "fake-a", "--ignore-daemonsets", "--timeout=90s"],
    );
    assert!(
        drained.status.success(),
        "{}",
        String::from_utf8_lossy(&drained.stderr)
    );
    assert!(String::from_utf8_lossy(&drained.stdout).contains("node/fake-a drained"));
    assert_eq!(
        stdout_of(
            kubeconfig,
            &[
                "get",
                "node",
                "fake-a",
                "-o",
                "jsonpath={.spec.unschedulable}"
            ]
        ),
        "true"
    );
    wait_for(
        kubeconfig,
        &[
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={.items[*].spec.nodeName}",
        ],
        "pods left on the drained node",
        |out| out.split(' ').filter(|n| *n == "fake-b").count() == 3 && !out.contains("fake-a"),
    );
    rollout_status(kubeconfig);
    assert!(kubelet.pods_started() >= 9);
}
