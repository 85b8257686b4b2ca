//! Real etcd members for tests and benchmarks: Debian's `etcd` binary started on
//! random loopback ports with data in a temporary directory, killed on drop.
//!
//! A missing `etcd` binary is an error, never a reason to skip: run
//! `hack/install-deps.sh` (the test command does).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use etcd_client::Client;

/// One member's addresses and process.
struct Member {
    name: String,
    client_url: String,
    peer_url: String,
    data_dir: PathBuf,
    process: Option<Child>,
}

/// A running etcd cluster of one or more members.
pub struct EtcdCluster {
    members: Vec<Member>,
    initial_cluster: String,
    _dir: tempfile::TempDir,
}

/// Errors starting or driving the cluster.
#[derive(Debug, thiserror::Error)]
pub enum EtcdClusterError {
    /// The etcd binary is not installed.
    #[error("the etcd binary was not found on PATH ({0}); run hack/install-deps.sh to install Debian's etcd-server")]
    Missing(String),
    /// Something else failed.
    #[error("etcd cluster: {0}")]
    Other(String),
}

fn free_port() -> Result<u16, EtcdClusterError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| EtcdClusterError::Other(e.to_string()))?;
    listener.local_addr().map(|a| a.port()).map_err(|e| EtcdClusterError::Other(e.to_string()))
}

impl EtcdCluster {
    /// Starts `size` members and waits until the cluster serves requests.
    pub async fn start(size: usize) -> Result<Self, EtcdClusterError> {
        Self::start_with(size, &[]).await
    }

    /// Starts `size` members with extra etcd flags (e.g. `--unsafe-no-fsync`).
    pub async fn start_with(size: usize, extra_flags: &[&str]) -> Result<Self, EtcdClusterError> {
        let dir = tempfile::tempdir().map_err(|e| EtcdClusterError::Other(e.to_string()))?;
        let mut members = Vec::new();
        for i in 0..size {
            members.push(Member {
                name: format!("m{i}"),
                client_url: format!("http://127.0.0.1:{}", free_port()?),
                peer_url: format!("http://127.0.0.1:{}", free_port()?),
                data_dir: dir.path().join(format!("m{i}")),
                process: None,
            });
        }
        let initial_cluster =
            members.iter().map(|m| format!("{}={}", m.name, m.peer_url)).collect::<Vec<_>>().join(",");
        let mut cluster = EtcdCluster { members, initial_cluster, _dir: dir };
        for i in 0..size {
            cluster.spawn(i, "new", extra_flags)?;
        }
        cluster.wait_healthy(Duration::from_secs(30)).await?;
        Ok(cluster)
    }

    fn spawn(&mut self, index: usize, state: &str, extra_flags: &[&str]) -> Result<(), EtcdClusterError> {
        let initial_cluster = self.initial_cluster.clone();
        let member = &mut self.members[index];
        let mut command = Command::new("etcd");
        command
            .arg("--name")
            .arg(&member.name)
            .arg("--data-dir")
            .arg(&member.data_dir)
            .arg("--listen-client-urls")
            .arg(&member.client_url)
            .arg("--advertise-client-urls")
            .arg(&member.client_url)
            .arg("--listen-peer-urls")
            .arg(&member.peer_url)
            .arg("--initial-advertise-peer-urls")
            .arg(&member.peer_url)
            .arg("--initial-cluster")
            .arg(&initial_cluster)
            .arg("--initial-cluster-state")
            .arg(state)
            .arg("--initial-cluster-token")
            .arg("rkube-test")
            .arg("--logger")
            .arg("zap")
            .arg("--log-level")
            .arg("error")
            .args(extra_flags)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = command.spawn().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => EtcdClusterError::Missing(e.to_string()),
            _ => EtcdClusterError::Other(format!("starting etcd: {e}")),
        })?;
        member.process = Some(child);
        Ok(())
    }

    /// Client URLs of every member, for `--etcd-servers`.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client_url.clone()).collect()
    }

    /// Waits until every running member answers a read.
    pub async fn wait_healthy(&self, timeout: Duration) -> Result<(), EtcdClusterError> {
        let deadline = Instant::now() + timeout;
        for member in self.members.iter().filter(|m| m.process.is_some()) {
            loop {
                let ok = match Client::connect([&member.client_url], None).await {
                    Ok(mut client) => client.get("health", None).await.is_ok(),
                    Err(_) => false,
                };
                if ok {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(EtcdClusterError::Other(format!("{} did not become healthy", member.client_url)));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    /// The index of the current leader, asking the running members.
    pub async fn leader(&self) -> Result<usize, EtcdClusterError> {
        for (i, member) in self.members.iter().enumerate().filter(|(_, m)| m.process.is_some()) {
            let Ok(mut client) = Client::connect([&member.client_url], None).await else { continue };
            let Ok(status) = client.status().await else { continue };
            let Some(header) = status.header() else { continue };
            if status.leader() == header.member_id() && status.leader() != 0 {
                return Ok(i);
            }
        }
        Err(EtcdClusterError::Other("no member reports itself leader".into()))
    }

    /// SIGKILLs member `index`, as a crash would.
    pub fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.members[index].process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Restarts a killed member on its old data directory.
    pub async fn restart(&mut self, index: usize) -> Result<(), EtcdClusterError> {
        self.spawn(index, "existing", &[])?;
        self.wait_healthy(Duration::from_secs(30)).await
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}
