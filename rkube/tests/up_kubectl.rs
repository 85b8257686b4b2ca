//! `rkube up` as a person runs it, driven by stock kubectl: the built binary on a random
//! loopback port with a temporary data dir, then `kubectl version`, `kubectl
//! api-resources` and `kubectl get --raw /readyz` through the kubeconfig it wrote.
//! kubectl must be on PATH: without it this test fails, it never skips.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Stops the child with SIGTERM (then SIGKILL) however the test ends.
struct Running {
    child: Child,
}

impl Running {
    /// Sends SIGTERM and waits; true when the process exited on its own, successfully.
    fn stop(&mut self) -> bool {
        let Ok(pid) = i32::try_from(self.child.id()) else {
            return false;
        };
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn kubectl(kubeconfig: &Path, args: &[&str]) -> Output {
    Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .env_remove("KUBECONFIG")
        .output()
        .unwrap_or_else(|e| panic!("kubectl must be on PATH to run this test: {e}"))
}

fn stdout_of(kubeconfig: &Path, args: &[&str]) -> String {
    let output = kubectl(kubeconfig, args);
    assert!(
        output.status.success(),
        "kubectl {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn rkube_up_serves_stock_kubectl() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let kubeconfig = dir.path().join("kubeconfig");
    let port = free_port();

    let child = Command::new(env!("CARGO_BIN_EXE_rkube"))
        .args([
            "up",
            "--bind-address",
            "127.0.0.1",
            "--port",
            &port.to_string(),
        ])
        .arg("--data-dir")
        .arg(&data_dir)
        .arg("--write-kubeconfig")
        .arg(&kubeconfig)
        .env("HOME", dir.path()) // never touch the real ~/.kube/config
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut running = Running { child };

    // wait for the banner that follows a successful bind
    let stdout = running.child.stdout.take().unwrap();
    let (lines_tx, lines_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("rkube: {line}");
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut banner = Vec::new();
    while !banner.iter().any(|l: &String| l.starts_with("stop with")) {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines_rx.recv_timeout(left) {
            Ok(line) => banner.push(line),
            Err(_) => panic!("rkube up did not come up within 60s; said {banner:?}"),
        }
    }
    assert!(
        banner
            .iter()
            .any(|l| l.contains(&format!("https://127.0.0.1:{port}"))),
        "{banner:?}"
    );
    let address: SocketAddr = ([127, 0, 0, 1], port).into();
    TcpStream::connect_timeout(&address, Duration::from_secs(5))
        .expect("the apiserver port accepts connections");
    assert!(data_dir.join("admin.kubeconfig").exists());
    assert!(
        !dir.path().join(".kube/config").exists(),
        "--write-kubeconfig replaces the ~/.kube/config default"
    );

    // readiness, as a load balancer would poll it
    let mut ready = String::new();
    for _ in 0..50 {
        let output = kubectl(&kubeconfig, &["get", "--raw", "/readyz"]);
        ready = String::from_utf8_lossy(&output.stdout).into_owned();
        if output.status.success() && ready == "ok" {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(ready, "ok");

    let version: serde_json::Value =
        serde_json::from_str(&stdout_of(&kubeconfig, &["version", "-o", "json"])).unwrap();
    assert_eq!(version["serverVersion"]["major"], "1", "{version}");
    assert_eq!(version["serverVersion"]["minor"], "33", "{version}");
    assert_eq!(
        version["serverVersion"]["gitVersion"], "v1.33.0-rkube",
        "{version}"
    );

    // NAME SHORTNAMES APIVERSION NAMESPACED KIND
    let resources = stdout_of(&kubeconfig, &["api-resources"]);
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
        &kubeconfig,
        &["api-resources", "--api-group=apps", "-o", "name"],
    );
    assert!(apps.lines().any(|l| l == "deployments.apps"), "{apps}");

    // a resource path the apiserver does not serve yet answers upstream's 404 Status
    let missing = kubectl(&kubeconfig, &["get", "--raw", "/no/such/path"]);
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr)
            .contains("the server could not find the requested resource")
    );

    assert!(running.stop(), "rkube up exits cleanly on SIGTERM");
}
