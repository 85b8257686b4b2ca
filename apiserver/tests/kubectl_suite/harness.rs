//! What the kubectl suite runs against and with: the real `kube-apiserver` binary on
//! the embedded store or on a real etcd, and one stock kubectl binary (the `kubectl`
//! on PATH or a `kubectl.1.NN` shipped beside the real binary). A missing etcd or
//! kubectl fails the test; nothing here skips.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use apiserver::storage::testing::etcd_cluster::EtcdCluster;

/// Which store the apiserver under test keeps its objects in.
#[derive(Clone, Copy, Debug)]
pub enum Store {
    /// rkube's embedded SQLite store (`--storage-url sqlite://...`).
    Embedded,
    /// A real one-member etcd (`--etcd-servers`).
    Etcd,
}

/// Kills the child process however the test ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running `kube-apiserver` and the kubeconfig it generated.
pub struct Server {
    _process: Killed,
    /// The etcd it stores into, for [`Store::Etcd`].
    pub etcd: Option<EtcdCluster>,
    pub kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts `kube-apiserver` on `store` and waits until kubectl sees `/readyz` ok.
    pub async fn start(store: Store) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_kube-apiserver"));
        command
            .args(["--secure-port", &port.to_string()])
            .args(["--bind-address", "127.0.0.1"])
            .arg("--cert-dir")
            .arg(dir.path())
            // as a kubeadm cluster; the admin's certificate is system:masters
            .arg("--authorization-mode=Node,RBAC")
            // no controller manager here creates the namespaces' default service
            // accounts, so pods could not be created with the plugin on (upstream's
            // integration tests turn it off too)
            .arg("--disable-admission-plugins=ServiceAccount");
        let etcd = match store {
            Store::Embedded => {
                command.arg("--storage-url").arg(format!(
                    "sqlite://{}",
                    dir.path().join("store.db").display()
                ));
                None
            }
            Store::Etcd => {
                let cluster = EtcdCluster::start(1)
                    .await
                    .expect("etcd must be installed (hack/install-deps.sh)");
                command
                    .arg("--etcd-servers")
                    .arg(cluster.endpoints().join(","));
                Some(cluster)
            }
        };
        let process = command
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start kube-apiserver");
        let server = Server {
            _process: Killed(process),
            etcd,
            kubeconfig: dir.path().join("admin.kubeconfig"),
            _dir: dir,
        };
        let probe = Kubectl::new("kubectl", &server.kubeconfig);
        let deadline = Instant::now() + Duration::from_secs(60);
        while !(server.kubeconfig.exists()
            && probe.run(&["get", "--raw", "/readyz"]).status.success())
        {
            assert!(
                Instant::now() < deadline,
                "kube-apiserver on {store:?} did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        server
    }
}

/// The directory of the real kubectl binary, where `kubectl.1.NN` ship beside it.
fn kubectl_directory() -> PathBuf {
    let path = std::env::var_os("PATH").expect("PATH is set");
    let on_path = std::env::split_paths(&path)
        .map(|dir| dir.join("kubectl"))
        .find(|candidate| candidate.is_file())
        .expect("kubectl must be on PATH to run the kubectl suite");
    std::fs::canonicalize(&on_path)
        .unwrap()
        .parent()
        .unwrap()
        .to_owned()
}

/// One kubectl binary pointed at one kubeconfig.
#[derive(Clone)]
pub struct Kubectl {
    binary: PathBuf,
    kubeconfig: PathBuf,
}

impl Kubectl {
    /// `name` is `kubectl` (the one on PATH) or `kubectl.1.NN` (beside the real binary).
    pub fn new(name: &str, kubeconfig: &Path) -> Kubectl {
        let binary = if name == "kubectl" {
            PathBuf::from("kubectl")
        } else {
            let beside = kubectl_directory().join(name);
            assert!(
                beside.is_file(),
                "{} is missing: stock kubectl ships it beside the real binary",
                beside.display()
            );
            beside
        };
        Kubectl {
            binary,
            kubeconfig: kubeconfig.to_owned(),
        }
    }

    /// Runs kubectl with `args`, `stdin` and extra environment; never asserts.
    pub fn run_with<A: AsRef<str> + std::fmt::Debug>(
        &self,
        args: &[A],
        stdin: &str,
        envs: &[(&str, &str)],
    ) -> Output {
        let mut child = Command::new(&self.binary)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args.iter().map(AsRef::as_ref))
            .env_remove("KUBECONFIG")
            .envs(envs.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("run {}: {e}", self.binary.display()));
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.as_bytes()).unwrap();
        drop(input);
        child.wait_with_output().unwrap()
    }

    pub fn run<A: AsRef<str> + std::fmt::Debug>(&self, args: &[A]) -> Output {
        self.run_with(args, "", &[])
    }

    /// stdout of a command that must succeed.
    pub fn ok<A: AsRef<str> + std::fmt::Debug>(&self, args: &[A]) -> String {
        self.ok_with(args, "")
    }

    /// stdout of a command fed `stdin` that must succeed.
    pub fn ok_with<A: AsRef<str> + std::fmt::Debug>(&self, args: &[A], stdin: &str) -> String {
        let output = self.run_with(args, stdin, &[]);
        assert!(
            output.status.success(),
            "{} {args:?} failed: {}{}",
            self.binary.display(),
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// stderr of a command that must fail.
    pub fn fails<A: AsRef<str> + std::fmt::Debug>(&self, args: &[A], stdin: &str) -> String {
        let output = self.run_with(args, stdin, &[]);
        assert!(
            !output.status.success(),
            "{} {args:?} should have failed: {}",
            self.binary.display(),
            String::from_utf8_lossy(&output.stdout)
        );
        String::from_utf8(output.stderr).unwrap()
    }

    /// Waits (up to 30 s) until CRD `name` is Established.
    pub fn wait_established(&self, name: &str) {
        self.ok(&[
            "wait",
            "--for=condition=Established",
            &format!("crd/{name}"),
            "--timeout=30s",
        ]);
    }

    /// `kubectl get ... -o jsonpath=TEMPLATE`.
    pub fn jsonpath(&self, target: &[&str], template: &str) -> String {
        let output = format!("jsonpath={template}");
        let mut args = vec!["get"];
        args.extend_from_slice(target);
        args.extend_from_slice(&["-o", &output]);
        self.ok(&args)
    }

    /// Starts a long-running kubectl (such as `get -w`) whose stdout the caller reads.
    pub fn spawn(&self, args: &[&str]) -> Child {
        Command::new(&self.binary)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .env_remove("KUBECONFIG")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }
}
