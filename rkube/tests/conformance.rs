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
    // a schedulable node, as any real cluster has: a Node object played by the
    // fake-kubelet test helper (it heartbeats, so the node-lifecycle controller keeps
    // it Ready, and bound pods become Running and Ready)
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _entered = runtime.enter();
    let admin = runtime.block_on(common::client_of(&up.kubeconfig));
    runtime
        .block_on(fake_kubelet::create_node(
            &admin,
            "conformance-node",
            "4",
            "8Gi",
            serde_json::json!({}),
        ))
        .unwrap();
    let _kubelet = fake_kubelet::FakeKubelet::start(admin, &["conformance-node"]);
    common::wait_for_untainted(&up.kubeconfig, "conformance-node");
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
