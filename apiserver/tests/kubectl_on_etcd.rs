//! The real `kube-apiserver` binary on a real etcd (upstream's flags), driven by stock
//! kubectl: the same resource paths as on the embedded store, end to end through etcd.
//! etcd and kubectl must be installed: without them this test fails, it never skips.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use apiserver::storage::testing::etcd_cluster::EtcdCluster;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn kubectl(kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .env_remove("KUBECONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl must be on PATH");
    if let Some(input) = stdin {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn ok(kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let output = kubectl(kubeconfig, args, stdin);
    assert!(
        output.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_apiserver_on_etcd_serves_kubectl() {
    let cluster = EtcdCluster::start(1).await.expect("start etcd");
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = Command::new(env!("CARGO_BIN_EXE_kube-apiserver"))
        .args([
            "--secure-port",
            &port.to_string(),
            "--bind-address",
            "127.0.0.1",
        ])
        .arg("--etcd-servers")
        .arg(cluster.endpoints().join(","))
        .arg("--cert-dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start kube-apiserver");
    let _server = Killed(server);
    let kubeconfig = dir.path().join("admin.kubeconfig");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if kubeconfig.exists()
            && kubectl(&kubeconfig, &["get", "--raw", "/readyz"], None)
                .status
                .success()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "kube-apiserver did not become ready on etcd"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: on-etcd\ndata:\n  k: v\n";
    assert_eq!(
        ok(
            &kubeconfig,
            &["create", "--validate=false", "-f", "-"],
            Some(manifest)
        )
        .trim(),
        "configmap/on-etcd created"
    );
    assert_eq!(
        ok(
            &kubeconfig,
            &["get", "cm", "on-etcd", "-o", "jsonpath={.data.k}"],
            None
        ),
        "v"
    );
    let services = ok(
        &kubeconfig,
        &[
            "get",
            "svc",
            "kubernetes",
            "-o",
            "jsonpath={.spec.clusterIP}",
        ],
        None,
    );
    assert_eq!(services, "10.96.0.1");

    // The object is really in etcd, under upstream's key, without a resourceVersion.
    let mut client = etcd_client::Client::connect(cluster.endpoints(), None)
        .await
        .unwrap();
    let stored = client
        .get("/registry/configmaps/default/on-etcd", None)
        .await
        .unwrap();
    let value: serde_json::Value = serde_json::from_slice(stored.kvs()[0].value()).unwrap();
    assert_eq!(value["data"]["k"], "v");
    assert!(value["metadata"].get("resourceVersion").is_none());

    assert_eq!(
        ok(&kubeconfig, &["delete", "cm", "on-etcd"], None).trim(),
        r#"configmap "on-etcd" deleted"#
    );
    assert!(
        client
            .get("/registry/configmaps/default/on-etcd", None)
            .await
            .unwrap()
            .kvs()
            .is_empty()
    );
}
