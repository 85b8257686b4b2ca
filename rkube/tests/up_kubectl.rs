//! `rkube up` as a person runs it, driven by stock kubectl: the built binary on a random
//! loopback port with a temporary data dir, then `kubectl version`, `kubectl
//! api-resources` and `kubectl get --raw /readyz` through the kubeconfig it wrote.
//! kubectl must be on PATH: without it this test fails, it never skips.

mod common;

use common::{RkubeUp, kubectl, stdout_of};

#[test]
fn rkube_up_serves_stock_kubectl() {
    let up = RkubeUp::start();
    let (port, banner, data_dir, kubeconfig, dir) =
        (up.port, &up.banner, &up.data_dir, &up.kubeconfig, &up.dir);
    let mut running = up.running;

    assert!(
        banner
            .iter()
            .any(|l| l.contains(&format!("https://127.0.0.1:{port}"))),
        "{banner:?}"
    );
    assert!(data_dir.join("admin.kubeconfig").exists());
    assert!(
        !dir.path().join(".kube/config").exists(),
        "--write-kubeconfig replaces the ~/.kube/config default"
    );

    let version: serde_json::Value =
        serde_json::from_str(&stdout_of(kubeconfig, &["version", "-o", "json"])).unwrap();
    assert_eq!(version["serverVersion"]["major"], "1", "{version}");
    assert_eq!(version["serverVersion"]["minor"], "33", "{version}");
    assert_eq!(
        version["serverVersion"]["gitVersion"], "v1.33.0-rkube",
        "{version}"
    );

    // NAME SHORTNAMES APIVERSION NAMESPACED KIND
    let resources = stdout_of(kubeconfig, &["api-resources"]);
    let rows: Vec<Vec<&str>> = resources
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.first().map(|r| r[0]), Some("NAME"), "{resources}");
    assert!(
        rows.contains(&vec!["pods", "po", "v1", "true", "Pod"]),
        "{resources}"
    );
    assert!(
        rows.contains(&vec![
            "deployments",
            "deploy",
            "apps/v1",
            "true",
            "Deployment"
        ]),
        "{resources}"
    );
    assert!(
        rows.contains(&vec!["namespaces", "ns", "v1", "false", "Namespace"]),
        "{resources}"
    );
    assert!(
        !resources.contains("pods/status"),
        "subresources are not listed: {resources}"
    );
    let apps = stdout_of(
        kubeconfig,
        &["api-resources", "--api-group=apps", "-o", "name"],
    );
    assert!(apps.lines().any(|l| l == "deployments.apps"), "{apps}");

    // a resource path the apiserver does not serve yet answers upstream's 404 Status
    let missing = kubectl(kubeconfig, &["get", "--raw", "/no/such/path"]);
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr)
            .contains("the server could not find the requested resource")
    );

    assert!(running.stop(), "rkube up exits cleanly on SIGTERM");
}
