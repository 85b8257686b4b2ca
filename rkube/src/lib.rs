//! The all-in-one `rkube` command as a library: `rkube up` runs every component built
//! so far in one process (k3s's model) on the embedded store and writes an admin
//! kubeconfig; `rkube server` runs the control plane only. `main.rs` parses and calls.

use std::io::ErrorKind;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use apiserver::certs::{self, CertError};
use apiserver::{Server, ServerError, ServerOptions};
use clap::{Args, Parser, Subcommand};

/// Where `rkube up` keeps its store, certificates and kubeconfig by default.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/rkube";

/// The `rkube` command line.
#[derive(Debug, Parser)]
#[command(
    name = "rkube",
    version,
    about = "A Kubernetes control plane and node agents in one binary"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// `rkube`'s subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Bring up a single-node cluster: every component built so far, in the foreground
    /// until SIGINT or SIGTERM.
    Up(UpOptions),
    /// Run the control plane only (kube-apiserver, kube-scheduler and the controllers),
    /// with the same flags as `up`.
    Server(UpOptions),
}

/// Flags of `rkube up` and `rkube server`.
#[derive(Clone, Debug, PartialEq, Eq, Args)]
pub struct UpOptions {
    /// Directory for the embedded store (`store.db`), certificates (`pki/`) and the
    /// admin kubeconfig (`admin.kubeconfig`).
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,

    /// The apiserver's HTTPS port (0 picks a free one).
    #[arg(long, default_value_t = 6443)]
    pub port: u16,

    /// The address the apiserver listens on.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind_address: IpAddr,

    /// Also write the admin kubeconfig here (replacing the file). Without it,
    /// ~/.kube/config is written only if it does not exist yet.
    #[arg(long, value_name = "PATH")]
    pub write_kubeconfig: Option<PathBuf>,
}

impl UpOptions {
    /// The apiserver options these flags stand for: the embedded store and generated
    /// certificates under the data dir.
    pub fn server_options(&self) -> ServerOptions {
        ServerOptions {
            secure_port: self.port,
            bind_address: self.bind_address,
            storage_url: Some(format!(
                "sqlite://{}",
                self.data_dir.join("store.db").display()
            )),
            cert_dir: self.data_dir.join("pki"),
            // as kubeadm sets them up
            authorization_mode: vec!["Node".to_owned(), "RBAC".to_owned()],
            enable_bootstrap_token_auth: true,
            ..ServerOptions::defaults()
        }
    }
}

/// Errors from `rkube up` and `rkube server`.
#[derive(Debug, thiserror::Error)]
pub enum UpError {
    /// The apiserver could not start or failed while running.
    #[error("kube-apiserver: {0}")]
    Server(#[from] ServerError),
    /// A kubeconfig could not be written.
    #[error(transparent)]
    Kubeconfig(#[from] CertError),
    /// The apiserver's certificates were not generated, so there is no admin kubeconfig.
    #[error("no admin credentials were generated")]
    NoCredentials,
    /// A component's kubeconfig could not be read back.
    #[error("kubeconfig of {component}: {reason}")]
    ComponentConfig {
        /// The component.
        component: &'static str,
        /// What went wrong.
        reason: String,
    },
}

/// Runs a subcommand until SIGINT or SIGTERM.
pub async fn run(cli: Cli) -> Result<(), UpError> {
    match cli.command {
        Command::Up(options) => up(&options, "rkube", apiserver::shutdown_signal()).await,
        Command::Server(options) => {
            up(&options, "rkube server", apiserver::shutdown_signal()).await
        }
    }
}

/// Starts the components, writes the admin kubeconfig, prints how to use it and serves
/// until `shutdown` completes.
pub async fn up(
    options: &UpOptions,
    what: &str,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), UpError> {
    let server = Server::bind(&options.server_options()).await?;
    let kubeconfig = server.admin_kubeconfig().ok_or(UpError::NoCredentials)?;

    let admin = options.data_dir.join("admin.kubeconfig");
    certs::write_private_file(&admin, kubeconfig.as_bytes())?;
    let mut written = vec![admin.clone()];
    let mut notes = Vec::new();
    match &options.write_kubeconfig {
        Some(path) => {
            certs::write_private_file(path, kubeconfig.as_bytes())?;
            written.push(path.clone());
        }
        None => match home_kubeconfig() {
            Some(path) => match write_if_absent(&path, kubeconfig.as_bytes()) {
                Ok(true) => written.push(path),
                Ok(false) => notes.push(format!(
                    "{} exists and was left as it is; use --kubeconfig {} or export KUBECONFIG={}",
                    path.display(),
                    admin.display(),
                    admin.display()
                )),
                Err(e) => notes.push(format!("could not write {}: {e}", path.display())),
            },
            None => notes.push("HOME is not set: ~/.kube/config was not written".to_owned()),
        },
    }

    let url = server.client_url();
    // each component's kubeconfig, with its own client certificate (0600)
    let pki = server.pki().ok_or(UpError::NoCredentials)?;
    for component in ["scheduler", "controller-manager", "kubelet"] {
        if let Some(config) = pki.client_kubeconfig(component, &url) {
            let path = options.data_dir.join(format!("{component}.kubeconfig"));
            certs::write_private_file(&path, config.as_bytes())?;
        }
    }
    // the components stop (releasing their leases) before the apiserver does
    let (stop_components, stopping) = tokio::sync::watch::channel(false);
    let controllers = start_controllers(options, pki, &url, stopping.clone()).await?;
    let scheduler = start_scheduler(pki, &url, stopping).await?;
    println!(
        "{what} is up: kube-apiserver on {url} (listening on {})",
        server.local_addr()
    );
    println!(
        "storage: {}",
        options.server_options().storage_url.unwrap_or_default()
    );
    for path in &written {
        println!("admin kubeconfig written to {}", path.display());
    }
    for note in notes {
        println!("note: {note}");
    }
    println!(
        "try:   kubectl --kubeconfig {} version",
        written.last().unwrap_or(&admin).display()
    );
    println!(
        "       kubectl --kubeconfig {} api-resources",
        written.last().unwrap_or(&admin).display()
    );
    println!("stop with Ctrl-C (SIGINT) or SIGTERM");

    server
        .serve(async move {
            shutdown.await;
            let _ = stop_components.send(true);
            let stopped = futures::future::join(controllers, scheduler);
            if tokio::time::timeout(std::time::Duration::from_secs(5), stopped)
                .await
                .is_err()
            {
                tracing::warn!("the scheduler or controller manager did not stop within 5 s");
            }
        })
        .await?;
    println!("{what} stopped");
    Ok(())
}

/// A component's client from its kubeconfig (its own client certificate).
async fn component_client_config(
    pki: &certs::Pki,
    url: &str,
    kubeconfig_name: &str,
    component: &'static str,
) -> Result<kube::Config, UpError> {
    let component_error = |reason: String| UpError::ComponentConfig { component, reason };
    let text = pki
        .client_kubeconfig(kubeconfig_name, url)
        .ok_or_else(|| component_error("no client certificate".into()))?;
    let kubeconfig =
        kube::config::Kubeconfig::from_yaml(&text).map_err(|e| component_error(e.to_string()))?;
    kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .map_err(|e| component_error(e.to_string()))
}

/// Starts kube-scheduler with its own kubeconfig, the default profile and leader
/// election (as kubeadm runs it), without its secure port: one process serves here.
async fn start_scheduler(
    pki: &certs::Pki,
    url: &str,
    stopping: tokio::sync::watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, UpError> {
    let config = component_client_config(pki, url, "scheduler", "kube-scheduler").await?;
    let client = component_base::client::client(config).map_err(|e| UpError::ComponentConfig {
        component: "kube-scheduler",
        reason: e.to_string(),
    })?;
    let mut scheduler_config = scheduler::config::KubeSchedulerConfiguration::default();
    scheduler_config.set_defaults(&scheduler::registered);
    Ok(tokio::spawn(async move {
        // a standalone kube-scheduler exits when it loses its lease and is restarted by
        // its supervisor; in this process it campaigns again instead
        loop {
            match scheduler::run_with_client(
                client.clone(),
                scheduler_config.clone(),
                None,
                stopped(stopping.clone()),
            )
            .await
            {
                Ok(()) => return,
                Err(scheduler::Error::Lost(_)) => {
                    tracing::warn!("kube-scheduler lost its lease; campaigning again")
                }
                Err(e) => {
                    tracing::error!(error = %e, "kube-scheduler stopped");
                    return;
                }
            }
        }
    }))
}

/// Starts the controllers built so far with the controller manager's kubeconfig.
async fn start_controllers(
    options: &UpOptions,
    pki: &certs::Pki,
    url: &str,
    stopping: tokio::sync::watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, UpError> {
    let config =
        component_client_config(pki, url, "controller-manager", "kube-controller-manager").await?;
    let token_dir = options.data_dir.join("controller-tokens");
    let ca = pki.ca_cert_pem.clone();
    // the apiserver's service-account signing key (`sa.key`) signs legacy tokens too, as
    // kubeadm passes it as --service-account-private-key-file
    let service_account_key = pki.service_account_key_pem.clone();
    // the cluster CA signs approved CSRs (kubelet client and serving certificates), as
    // kubeadm passes --cluster-signing-{cert,key}-file
    let signing = controllers::certificates::signer::SigningFiles {
        cert_file: Some(pki.path(certs::CA_CERT)),
        key_file: Some(pki.path(certs::CA_KEY)),
    };
    Ok(tokio::spawn(async move {
        // a standalone kube-controller-manager exits when it loses its lease and is
        // restarted by its supervisor; in this process it campaigns again instead
        loop {
            let mut controller_options =
                controllers::Options::new(config.clone(), token_dir.clone(), ca.clone());
            controller_options.settings.csr_signing.cluster = signing.clone();
            controller_options.settings.service_account_private_key_pem =
                service_account_key.clone();
            match controllers::run(controller_options, stopped(stopping.clone())).await {
                Ok(()) => return,
                Err(controllers::Error::Lost(_)) => {
                    tracing::warn!("kube-controller-manager lost its lease; campaigning again")
                }
                Err(e) => {
                    tracing::error!(error = %e, "kube-controller-manager stopped");
                    return;
                }
            }
        }
    }))
}

/// Completes once `rkube up` is stopping.
async fn stopped(mut stopping: tokio::sync::watch::Receiver<bool>) {
    // an error means the sender is gone: stopping too
    let _ = stopping.wait_for(|stop| *stop).await;
}

/// `$HOME/.kube/config`.
fn home_kubeconfig() -> Option<PathBuf> {
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty())?;
    Some(Path::new(&home).join(".kube").join("config"))
}

/// Writes `contents` to `path` unless the file exists; true when written.
fn write_if_absent(path: &Path, contents: &[u8]) -> Result<bool, CertError> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => Ok(false),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            certs::write_private_file(path, contents).map(|()| true)
        }
        Err(source) => Err(CertError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn up_defaults_to_the_embedded_store_under_var_lib_rkube() {
        let cli = Cli::try_parse_from(["rkube", "up"]).unwrap();
        let Command::Up(options) = cli.command else {
            panic!("not up")
        };
        assert_eq!(options.port, 6443);
        let server = options.server_options();
        assert_eq!(
            server.storage_url.as_deref(),
            Some("sqlite:///var/lib/rkube/store.db")
        );
        assert_eq!(server.cert_dir, PathBuf::from("/var/lib/rkube/pki"));
        assert_eq!(server.secure_port, 6443);
    }

    #[test]
    fn unknown_subcommands_and_flags_are_usage_errors() {
        assert!(Cli::try_parse_from(["rkube", "down"]).is_err());
        assert!(Cli::try_parse_from(["rkube", "up", "--no-such-flag"]).is_err());
        assert!(Cli::try_parse_from(["rkube", "up", "--port", "http"]).is_err());
    }

    #[test]
    fn an_existing_kubeconfig_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".kube/config");
        assert!(write_if_absent(&path, b"first").unwrap());
        assert!(!write_if_absent(&path, b"second").unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
    }
}
