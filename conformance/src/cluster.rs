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

    /// `kubectl get --raw <path>`, decoded as JSON.
    pub fn get_json(&self, path: &str) -> Result<serde_json::Value, ClusterError> {
        let body = self.kubectl(&["get", "--raw", path])?;
        serde_json::from_str(&body).map_err(|source| ClusterError::NotJson {
            args: format!("get --raw {path}"),
            source,
        })
    }
}
