//! kube-controller-manager: one module per controller, each reconciling over watches
//! of the objects it follows (kube-runtime's `Controller`).
//!
//! As upstream with `--use-service-account-credentials`, the manager reads with its
//! own identity (`system:kube-controller-manager` may list and watch everything) and
//! each controller writes as its own service account in kube-system, bound by the
//! bootstrap policy to its `system:controller:<name>` role ([`credentials`]).
//!
//! Built so far: the service-account controller (every namespace gets its `default`
//! ServiceAccount) and the root CA publisher (every namespace gets the
//! `kube-root-ca.crt` ConfigMap). The rest belongs to the kube-controller-manager issue.

pub mod credentials;
pub mod root_ca_publisher;
pub mod service_accounts;

use std::path::PathBuf;

use futures::FutureExt;

/// Errors from running the controllers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request to the apiserver failed.
    #[error("{0}")]
    Kube(#[from] kube::Error),
    /// A credential file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// What the controllers need.
pub struct Options {
    /// The manager's own client configuration (its kubeconfig).
    pub config: kube::Config,
    /// Where the controllers' service-account tokens are kept (0600 files).
    pub token_dir: PathBuf,
    /// The cluster CA bundle (PEM) the root CA publisher publishes.
    pub root_ca_pem: String,
}

/// Retries `attempt` every second until it succeeds (the apiserver may still be
/// starting).
async fn with_retries<T, F, Fut>(mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Error>>,
{
    loop {
        match attempt().await {
            Ok(value) => return value,
            Err(e) => {
                tracing::info!(error = %e, "controller credentials not ready; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    }
}

/// Runs every controller until `shutdown` completes.
pub async fn run(
    options: Options,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), Error> {
    let manager = kube::Client::try_from(options.config.clone())?;
    let credentials =
        credentials::Credentials::new(options.config, manager.clone(), options.token_dir);
    let accounts_client = with_retries(|| credentials.client_for(service_accounts::NAME)).await;
    let publisher_client = with_retries(|| credentials.client_for(root_ca_publisher::NAME)).await;
    let refresher = tokio::spawn(credentials.keep_fresh());
    let controllers = futures::future::join(
        service_accounts::run(manager.clone(), accounts_client),
        root_ca_publisher::run(manager, publisher_client, options.root_ca_pem),
    );
    tokio::select! {
        _ = controllers.fuse() => {}
        () = shutdown => {}
    }
    refresher.abort();
    Ok(())
}
