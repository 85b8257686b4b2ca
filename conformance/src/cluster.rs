//! The cluster under test, reached through stock kubectl and a kubeconfig.

use std::path::PathBuf;
use std::process::Command;

/// Errors talking to the cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// kubectl could not be started (not on PATH?).
    #[error("running {kubectl}: {source}")]
    Kubectl {
        /// The kubectl binary tried.
        kubectl: String,
        /// Why it failed to start.
        source: std::io::Error,
    },
    /// kubectl ran and failed.
    #[error("kubectl {args}: {stderr}")]
    Failed {
        /// The arguments given.
        args: String,
        /// What kubectl printed on stderr.
        stderr: String,
    },
    /// The answer was not the JSON expected.
    #[error("kubectl {args}: not JSON: {source}")]
    NotJson {
        /// The arguments given.
        args: String,
        /// The decoding error.
        source: serde_json::Error,
    },
    /// A request through `kubectl proxy` could not be made or answered.
    #[error("{method} {path} through kubectl proxy: {why}")]
    Proxy {
        /// The request's method.
        method: String,
        /// The request's path.
        path: String,
        /// What went wrong.
        why: String,
    },
}

/// The server's answer to a request sent as written ([`Cluster::request`]).
#[derive(Clone, Debug)]
pub struct Response {
    /// The HTTP status code.
    pub status: u16,
    /// The body, as text.
    pub body: String,
}

impl Response {
    /// The body decoded as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// A `kubectl proxy` serving on a private unix socket; stopped and removed on drop.
struct Proxy {
    child: std::process::Child,
    socket: PathBuf,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// Undoes `Transfer-Encoding: chunked`.
fn dechunk(mut body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&body[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(body.get(..size)?);
        body = body.get(size + 2..)?;
    }
}

/// A cluster and the kubectl used to reach it.
#[derive(Clone, Debug)]
pub struct Cluster {
    kubeconfig: PathBuf,
    kubectl: String,
}

impl Cluster {
    /// A cluster reached with `kubectl --kubeconfig <kubeconfig>`.
    pub fn new(kubeconfig: impl Into<PathBuf>) -> Self {
        Cluster {
            kubeconfig: kubeconfig.into(),
            kubectl: "kubectl".into(),
        }
    }

    /// Uses another kubectl binary (e.g. `kubectl.1.27` for version skew).
    pub fn with_kubectl(mut self, kubectl: impl Into<String>) -> Self {
        self.kubectl = kubectl.into();
        self
    }

    /// Runs kubectl with `args` and returns its stdout.
    pub fn kubectl(&self, args: &[&str]) -> Result<String, ClusterError> {
        let output = Command::new(&self.kubectl)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .env_remove("KUBECONFIG")
            .output()
            .map_err(|source| ClusterError::Kubectl {
                kubectl: self.kubectl.clone(),
                source,
            })?;
        if !output.status.success() {
            return Err(ClusterError::Failed {
                args: args.join(" "),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Runs kubectl with `args`, feeding `stdin`, and returns its stdout.
    pub fn kubectl_stdin(&self, args: &[&str], stdin: &str) -> Result<String, ClusterError> {
        use std::io::Write;
        use std::process::Stdio;
        let mut child = Command::new(&self.kubectl)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| ClusterError::Kubectl {
                kubectl: self.kubectl.clone(),
                source,
            })?;
        if let Some(mut input) = child.stdin.take() {
            // A kubectl that exits early closes its stdin; its own error says why.
            let _ = input.write_all(stdin.as_bytes());
        }
        let output = child
            .wait_with_output()
            .map_err(|source| ClusterError::Kubectl {
                kubectl: self.kubectl.clone(),
                source,
            })?;
        if !output.status.success() {
            return Err(ClusterError::Failed {
                args: args.join(" "),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Creates the objects of a JSON document (`kubectl create -f -`). Client-side
    /// schema validation is off: the scenarios test the server's own validation.
    pub fn create(
        &self,
        namespace: &str,
        manifest: &serde_json::Value,
    ) -> Result<String, ClusterError> {
        self.kubectl_stdin(
            &[
                "create",
                "--validate=false",
                "-n",
                namespace,
                "-f",
                "-",
                "-o",
                "json",
            ],
            &manifest.to_string(),
        )
    }

    /// A name no other run uses, for the namespace a scenario works in.
    pub fn unique_name(prefix: &str) -> String {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        format!(
            "{prefix}-{}-{:x}{}",
            std::process::id(),
            nanos,
            NEXT.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// A fresh namespace for one scenario.
    pub fn namespace(&self, prefix: &str) -> Result<String, ClusterError> {
        let name = Self::unique_name(prefix);
        self.kubectl(&[
            "create",
            "namespace",
            &name,
            "--dry-run=client",
            "-o",
            "json",
        ])
        .and_then(|ns| self.kubectl_stdin(&["create", "--validate=false", "-f", "-"], &ns))?;
        Ok(name)
    }

    /// Sends one HTTP request with `body` exactly as written (kubectl has no verb for
    /// e.g. a server-side apply PATCH of a hand-written YAML body), through a
    /// `kubectl proxy` on a private unix socket, so the kubeconfig's credentials apply.
    /// Any answer the server gives, error statuses included, is `Ok`.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: &str,
    ) -> Result<Response, ClusterError> {
        use std::io::{Read, Write};
        use std::os::unix::net::UnixStream;
        use std::process::Stdio;
        let failed = |why: String| ClusterError::Proxy {
            method: method.to_owned(),
            path: path.to_owned(),
            why,
        };
        let socket = std::env::temp_dir().join(format!("{}.sock", Self::unique_name("kproxy")));
        let child = Command::new(&self.kubectl)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("proxy")
            .arg(format!("--unix-socket={}", socket.display()))
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| ClusterError::Kubectl {
                kubectl: self.kubectl.clone(),
                source,
            })?;
        let mut proxy = Proxy { child, socket };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        let mut stream = loop {
            match UnixStream::connect(&proxy.socket) {
                Ok(stream) => break stream,
                Err(e) => {
                    if let Ok(Some(status)) = proxy.child.try_wait() {
                        return Err(failed(format!("kubectl proxy exited: {status}")));
                    }
                    if std::time::Instant::now() > deadline {
                        return Err(failed(format!("kubectl proxy never listened: {e}")));
                    }
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
            }
        };
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
             Accept: application/json\r\nContent-Type: {content_type}\r\n\
             Content-Length: {}\r\n\r\n",
            body.len()
        );
        stream
            .write_all(head.as_bytes())
            .and_then(|()| stream.write_all(body.as_bytes()))
            .map_err(|e| failed(format!("writing the request: {e}")))?;
        let mut answer = Vec::new();
        stream
            .read_to_end(&mut answer)
            .map_err(|e| failed(format!("reading the answer: {e}")))?;
        drop(proxy);
        let split = answer
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(|| failed("no HTTP header in the answer".into()))?;
        let head = String::from_utf8_lossy(&answer[..split]).into_owned();
        let mut raw_body = answer[split + 4..].to_vec();
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| failed(format!("no status in {head:?}")))?;
        let chunked = head.lines().any(|line| {
            let line = line.to_ascii_lowercase();
            line.starts_with("transfer-encoding:") && line.contains("chunked")
        });
        if chunked {
            raw_body = dechunk(&raw_body).ok_or_else(|| failed("bad chunked body".into()))?;
        }
        Ok(Response {
            status,
            body: String::from_utf8_lossy(&raw_body).into_owned(),
        })
    }

    /// `kubectl get --raw <path>`, decoded as JSON.
    pub fn get_json(&self, path: &str) -> Result<serde_json::Value, ClusterError> {
        let body = self.kubectl(&["get", "--raw", path])?;
        serde_json::from_str(&body).map_err(|source| ClusterError::NotJson {
            args: format!("get --raw {path}"),
            source,
        })
    }
}
