//! Real etcd members for tests and benchmarks: Debian's `etcd` binary started on
//! random loopback ports with data in a temporary directory, killed on drop.
//!
//! A missing `etcd` binary is an error, never a reason to skip: run
//! `hack/install-deps.sh` (the test command does).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions};

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
    tls: Option<TlsFiles>,
    _dir: tempfile::TempDir,
}

/// Certificates of a TLS cluster: members serve HTTPS and require client certificates.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// The CA that signed every certificate here.
    pub ca: PathBuf,
    /// The members' serving certificate (127.0.0.1 and localhost).
    pub server_cert: PathBuf,
    /// Its key.
    pub server_key: PathBuf,
    /// A client certificate, as kube-apiserver's `--etcd-certfile`.
    pub client_cert: PathBuf,
    /// Its key (`--etcd-keyfile`).
    pub client_key: PathBuf,
}

/// Makes a CA, a serving and a client certificate with the `openssl` command.
fn generate_tls(dir: &std::path::Path) -> Result<TlsFiles, EtcdClusterError> {
    let run = |args: &[&str]| -> Result<(), EtcdClusterError> {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => EtcdClusterError::Missing(format!("openssl: {e}")),
                _ => EtcdClusterError::Other(format!("running openssl: {e}")),
            })?;
        if output.status.success() {
            Ok(())
        } else {
            Err(EtcdClusterError::Other(format!(
                "openssl {args:?} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            )))
        }
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(&[
        &["req", "-x509"][..],
        &ec,
        &[
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=etcd-ca",
        ],
    ]
    .concat())?;
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n",
    )
    .map_err(|e| EtcdClusterError::Other(e.to_string()))?;
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n")
        .map_err(|e| EtcdClusterError::Other(e.to_string()))?;
    for (name, cn) in [("server", "etcd"), ("client", "kube-apiserver-etcd-client")] {
        let (key, csr, crt, ext) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
            format!("{name}.ext"),
        );
        run(&[
            &["req"][..],
            &ec,
            &["-keyout", &key, "-out", &csr, "-subj", &format!("/CN={cn}")],
        ]
        .concat())?;
        run(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &crt,
            "-days",
            "2",
            "-extfile",
            &ext,
        ])?;
    }
    Ok(TlsFiles {
        ca: dir.join("ca.crt"),
        server_cert: dir.join("server.crt"),
        server_key: dir.join("server.key"),
        client_cert: dir.join("client.crt"),
        client_key: dir.join("client.key"),
    })
}

/// Errors starting or driving the cluster.
#[derive(Debug, thiserror::Error)]
pub enum EtcdClusterError {
    /// The etcd binary is not installed.
    #[error(
        "the etcd binary was not found on PATH ({0}); run hack/install-deps.sh to install Debian's etcd-server"
    )]
    Missing(String),
    /// Something else failed.
    #[error("etcd cluster: {0}")]
    Other(String),
}

fn free_port() -> Result<u16, EtcdClusterError> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| EtcdClusterError::Other(e.to_string()))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| EtcdClusterError::Other(e.to_string()))
}

impl EtcdCluster {
    /// Starts `size` members and waits until the cluster serves requests.
    pub async fn start(size: usize) -> Result<Self, EtcdClusterError> {
        Self::start_with(size, &[]).await
    }

    /// Starts `size` members with extra etcd flags (e.g. `--unsafe-no-fsync`).
    pub async fn start_with(size: usize, extra_flags: &[&str]) -> Result<Self, EtcdClusterError> {
        Self::start_inner(size, extra_flags, false).await
    }

    /// Starts `size` members serving HTTPS that require client certificates.
    pub async fn start_tls(size: usize) -> Result<Self, EtcdClusterError> {
        Self::start_inner(size, &[], true).await
    }

    /// The certificates of a cluster started with [`EtcdCluster::start_tls`].
    pub fn tls(&self) -> Option<&TlsFiles> {
        self.tls.as_ref()
    }

    async fn start_inner(
        size: usize,
        extra_flags: &[&str],
        tls: bool,
    ) -> Result<Self, EtcdClusterError> {
        let dir = tempfile::tempdir().map_err(|e| EtcdClusterError::Other(e.to_string()))?;
        let tls = if tls {
            Some(generate_tls(dir.path())?)
        } else {
            None
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let mut members = Vec::new();
        for i in 0..size {
            members.push(Member {
                name: format!("m{i}"),
                client_url: format!("{scheme}://127.0.0.1:{}", free_port()?),
                peer_url: format!("http://127.0.0.1:{}", free_port()?),
                data_dir: dir.path().join(format!("m{i}")),
                process: None,
            });
        }
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = EtcdCluster {
            members,
            initial_cluster,
            tls,
            _dir: dir,
        };
        for i in 0..size {
            cluster.spawn(i, "new", extra_flags)?;
        }
        cluster.wait_healthy(Duration::from_secs(30)).await?;
        Ok(cluster)
    }

    fn spawn(
        &mut self,
        index: usize,
        state: &str,
        extra_flags: &[&str],
    ) -> Result<(), EtcdClusterError> {
        let initial_cluster = self.initial_cluster.clone();
        let tls = self.tls.clone();
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
            .args(tls.iter().flat_map(|tls| {
                [
                    "--client-cert-auth".into(),
                    "--trusted-ca-file".into(),
                    tls.ca.clone().into_os_string(),
                    "--cert-file".into(),
                    tls.server_cert.clone().into_os_string(),
                    "--key-file".into(),
                    tls.server_key.clone().into_os_string(),
                ]
            }))
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

    /// A client of one member, with the cluster's client certificate if it has one.
    async fn connect_member(&self, url: &str) -> Option<Client> {
        let mut options = ConnectOptions::new().with_connect_timeout(Duration::from_secs(2));
        if let Some(tls) = &self.tls {
            let ca = std::fs::read(&tls.ca).ok()?;
            let (cert, key) = (
                std::fs::read(&tls.client_cert).ok()?,
                std::fs::read(&tls.client_key).ok()?,
            );
            options = options.with_tls(
                etcd_client::TlsOptions::new()
                    .ca_certificate(etcd_client::Certificate::from_pem(ca))
                    .identity(etcd_client::Identity::from_pem(cert, key)),
            );
        }
        Client::connect([url], Some(options)).await.ok()
    }

    /// Waits until every running member answers a read.
    pub async fn wait_healthy(&self, timeout: Duration) -> Result<(), EtcdClusterError> {
        let deadline = Instant::now() + timeout;
        for member in self.members.iter().filter(|m| m.process.is_some()) {
            loop {
                let ok = match self.connect_member(&member.client_url).await {
                    Some(mut client) => client.get("health", None).await.is_ok(),
                    None => false,
                };
                if ok {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(EtcdClusterError::Other(format!(
                        "{} did not become healthy",
                        member.client_url
                    )));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    /// The index of the current leader, asking the running members.
    pub async fn leader(&self) -> Result<usize, EtcdClusterError> {
        for (i, member) in self
            .members
            .iter()
            .enumerate()
            .filter(|(_, m)| m.process.is_some())
        {
            let Some(mut client) = self.connect_member(&member.client_url).await else {
                continue;
            };
            let Ok(status) = client.status().await else {
                continue;
            };
            let Some(header) = status.header() else {
                continue;
            };
            if status.leader() == header.member_id() && status.leader() != 0 {
                return Ok(i);
            }
        }
        Err(EtcdClusterError::Other(
            "no member reports itself leader".into(),
        ))
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
