//! Each controller's own credentials (upstream's `--use-service-account-credentials`):
//! the manager makes sure the service account `kube-system/<controller>` exists, asks
//! the TokenRequest API for a token of it, and keeps that token in a file the
//! controller's client reads (kube-rs re-reads a token file every minute), renewing it
//! well before it expires.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client, Config};

use crate::Error;

/// The namespace of the controllers' service accounts.
const NAMESPACE: &str = "kube-system";
/// A token's lifetime.
const TOKEN_SECONDS: i64 = 3600;
/// How often tokens are renewed (well inside their lifetime).
const RENEW_EVERY: Duration = Duration::from_secs(20 * 60);

/// The manager's client and the controllers it hands credentials to.
pub struct Credentials {
    config: Config,
    manager: Client,
    token_dir: PathBuf,
    issued: std::sync::Mutex<Vec<String>>,
}

impl Credentials {
    /// Credentials issued through `manager` (configured by `config`), tokens kept in
    /// `token_dir`.
    pub fn new(config: Config, manager: Client, token_dir: PathBuf) -> Self {
        Credentials {
            config,
            manager,
            token_dir,
            issued: std::sync::Mutex::new(Vec::new()),
        }
    }

    fn token_path(&self, controller: &str) -> PathBuf {
        self.token_dir.join(format!("{controller}.token"))
    }

    /// Makes sure `kube-system/<controller>` exists and writes a fresh token for it.
    async fn renew(&self, controller: &str) -> Result<(), Error> {
        let accounts: Api<ServiceAccount> = Api::namespaced(self.manager.clone(), NAMESPACE);
        if accounts.get_opt(controller).await?.is_none() {
            let account = ServiceAccount {
                metadata: ObjectMeta {
                    name: Some(controller.to_owned()),
                    ..Default::default()
                },
                ..Default::default()
            };
            match accounts.create(&PostParams::default(), &account).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(e) => return Err(e.into()),
            }
        }
        let request = TokenRequest {
            spec: TokenRequestSpec {
                expiration_seconds: Some(TOKEN_SECONDS),
                ..Default::default()
            },
            ..Default::default()
        };
        let answer = accounts
            .create_token_request(controller, &PostParams::default(), &request)
            .await?;
        let token = answer.status.map(|s| s.token).unwrap_or_default();
        write_private(&self.token_path(controller), token.as_bytes())
    }

    /// A client that acts as `controller`'s service account.
    pub async fn client_for(&self, controller: &str) -> Result<Client, Error> {
        self.renew(controller).await?;
        self.issued
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(controller.to_owned());
        let mut config = self.config.clone();
        config.auth_info = kube::config::AuthInfo {
            token_file: Some(self.token_path(controller).display().to_string()),
            ..Default::default()
        };
        Ok(component_base::client::client(config)?)
    }

    /// Renews every issued token periodically, forever.
    pub async fn keep_fresh(self) {
        loop {
            tokio::time::sleep(RENEW_EVERY).await;
            let controllers = self
                .issued
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            for controller in controllers {
                if let Err(e) = self.renew(&controller).await {
                    tracing::warn!(%controller, error = %e, "cannot renew the controller's token");
                }
            }
        }
    }
}

fn write_private(path: &std::path::Path, contents: &[u8]) -> Result<(), Error> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |source| Error::Write {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(err)?;
    }
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(err)?;
    file.write_all(contents).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}
