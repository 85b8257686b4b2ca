//! The conformance scenarios (crate `conformance`) against `rkube up`, driven by the
//! stock kubectl and by the oldest, a middle and the newest kubectl shipped beside it
//! (1.27, 1.31, 1.33), so version skew shows up here first.

mod common;

use std::path::PathBuf;

use common::RkubeUp;

/// `kubectl` itself, then `kubectl.1.NN` beside the real binary for each skew we test.
fn kubectls() -> Vec<String> {
    let real = std::process::Command::new("sh")
        .args(["-c", "readlink -f \"$(command -v kubectl)\""])
        .output()
        .expect("sh");
    let real = PathBuf::from(String::from_utf8_lossy(&real.stdout).trim());
    assert!(
        real.is_file(),
        "kubectl must be on PATH to run the conformance scenarios"
    );
    let mut all = vec!["kubectl".to_owned()];
    for minor in [27, 31, 33] {
        let versioned = real.with_file_name(format!("kubectl.1.{minor}"));
        assert!(versioned.is_file(), "{} is missing", versioned.display());
        all.push(versioned.display().to_string());
    }
    all
}

#[test]
fn conformance_scenarios_pass_against_rkube_up() {
    let up = RkubeUp::start();
    // a schedulable Node object (no kubelet): scheduling scenarios need a node for the
    // scheduler to weigh, as any real cluster has
    let node = up.dir.path().join("node.json");
    std::fs::write(
        &node,
        r#"{"apiVersion": "v1", "kind": "Node", "metadata": {"name": "conformance-node"},
            "status": {"capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"}}}"#,
    )
    .unwrap();
    common::stdout_of(&up.kubeconfig, &["create", "-f", node.to_str().unwrap()]);
    common::stdout_of(
        &up.kubeconfig,
        &[
            "taint",
            "nodes",
            "conformance-node",
            "node.kubernetes.io/not-ready:NoSchedule-",
        ],
    );
    let mut failures = Vec::new();
    for kubectl in kubectls() {
        let cluster = conformance::Cluster::new(&up.kubeconfig).with_kubectl(&kubectl);
        for outcome in conformance::run(&cluster, None) {
            if let Err(why) = outcome.result {
                failures.push(format!("{kubectl}: {}: {why}", outcome.codename));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(!conformance::SCENARIOS.is_empty());
}
