//! Shared by rkube's integration tests: `rkube up` started as a person runs it (the
//! built binary, a random loopback port, a temporary data dir and HOME) and stock
//! kubectl pointed at the kubeconfig it wrote. kubectl must be on PATH: without it
//! these tests fail, they never skip.

#![allow(dead_code)] // each test binary uses its own part of this module

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Stops the child with SIGTERM (then SIGKILL) however the test ends.
pub struct Running {
    pub child: Child,
}

impl Running {
    /// Sends SIGTERM and waits; true when the process exited on its own, successfully.
    pub fn stop(&mut self) -> bool {
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

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn kubectl(kubeconfig: &Path, args: &[&str]) -> Output {
    Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .env_remove("KUBECONFIG")
        .output()
        .unwrap_or_else(|e| panic!("kubectl must be on PATH to run this test: {e}"))
}

pub fn stdout_of(kubeconfig: &Path, args: &[&str]) -> String {
    let output = kubectl(kubeconfig, args);
    assert!(
        output.status.success(),
        "kubectl {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// A running `rkube up` and where to reach it.
pub struct RkubeUp {
    /// The process.
    pub running: Running,
    /// The port it serves on.
    pub port: u16,
    /// Its data dir.
    pub data_dir: PathBuf,
    /// The kubeconfig written with --write-kubeconfig.
    pub kubeconfig: PathBuf,
    /// The banner lines it printed at start.
    pub banner: Vec<String>,
    /// The temporary directory holding all of it (also HOME).
    pub dir: tempfile::TempDir,
}

impl RkubeUp {
    /// Starts `rkube up` and waits until `/readyz` says ok.
    pub fn start() -> Self {
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
        let address: SocketAddr = ([127, 0, 0, 1], port).into();
        TcpStream::connect_timeout(&address, Duration::from_secs(5))
            .expect("the apiserver port accepts connections");

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
        assert_eq!(ready, "ok", "rkube up never became ready");
        RkubeUp {
            running,
            port,
            data_dir,
            kubeconfig,
            banner,
            dir,
        }
    }
}

/// A kube-rs client of the cluster `kubeconfig` names.
pub async fn client_of(kubeconfig: &Path) -> kube::Client {
    let text = std::fs::read_to_string(kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::from_yaml(&text).unwrap(),
        &Default::default(),
    )
    .await
    .unwrap();
    kube::Client::try_from(config).unwrap()
}

/// Waits until the node-lifecycle controller has lifted the not-ready taint new nodes
/// get from the TaintNodesByCondition admission plugin.
pub fn wait_for_untainted(kubeconfig: &Path, node: &str) {
    let start = Instant::now();
    loop {
        let taints = stdout_of(
            kubeconfig,
            &["get", "node", node, "-o", "jsonpath={.spec.taints}"],
        );
        if !taints.contains("node.kubernetes.io/not-ready") {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{node} keeps its not-ready taint: {taints}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
