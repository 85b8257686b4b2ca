//! The serving loop: opens the storage named by the flags, loads or generates the
//! certificates, and serves the router over TLS (HTTP/1.1 and HTTP/2 by ALPN), asking
//! for optional client certificates verified against the client CA, whose subject
//! becomes the request's user. Shutdown stops accepting, fails `/readyz`, and drains
//! open connections for a bounded time.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::auth::UserInfo;
use crate::auth::authn::Authenticator;
use crate::auth::authn::service_account::ServiceAccountKeys;
use crate::auth::authn::token_file::TokenFile;
use crate::auth::authz::bootstrap_policy;
use crate::auth::authz::node::NodeAuthorizer;
use crate::auth::authz::rbac::{Rbac, RbacAuthorizer};
use crate::auth::authz::{AlwaysAllow, AlwaysDeny, Authorize, Authorizer};
use crate::auth::filter::{CertificateUser, Security};
use crate::certs::{self, CertError, Pki};
use crate::http::{self, AppState};
use crate::options::{DEFAULT_STORAGE_URL, ServerOptions};
use crate::registry::Registry;
use crate::registry::informer::Informer;
use crate::storage::{self, DEFAULT_COMPACTION_INTERVAL, OpenError, Storage, etcd};

/// Concurrent streams a client may open on one HTTP/2 connection.
const HTTP2_MAX_STREAMS: u32 = 250;
/// How long a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown waits for open connections to finish their requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Errors from starting or running the apiserver.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The storage backend could not be opened.
    #[error("cannot open the storage: {0}")]
    Storage(#[from] OpenError),
    /// A directory for the embedded store could not be created.
    #[error("cannot create {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Certificates could not be loaded or generated.
    #[error(transparent)]
    Certs(#[from] CertError),
    /// A certificate or key file could not be used.
    #[error("invalid TLS material in {path}: {reason}")]
    TlsFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The system namespaces or the kubernetes Service could not be created.
    #[error("cannot create the system namespaces and services: {0}")]
    Bootstrap(String),
    /// The authentication or authorization configuration is unusable.
    #[error("{0}")]
    Security(String),
    /// rustls refused the configuration.
    #[error("invalid TLS configuration: {0}")]
    Tls(String),
    /// The listening socket could not be opened.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

/// An apiserver that is listening but not yet serving: its address and certificates
/// are known, so a caller can write kubeconfigs before calling [`Server::serve`].
pub struct Server {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    state: AppState,
    local_addr: SocketAddr,
    pki: Option<Pki>,
    compactor: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Opens the storage, prepares TLS and binds the listening socket.
    pub async fn bind(options: &ServerOptions) -> Result<Server, ServerError> {
        let storage = open_storage(options).await?;
        let (tls, pki) = tls_config(options)?;
        let address = SocketAddr::new(options.bind_address, options.secure_port);
        let bind_err = |source| ServerError::Bind { address, source };
        let listener = TcpListener::bind(address).await.map_err(bind_err)?;
        let local_addr = listener.local_addr().map_err(bind_err)?;
        let advertised = SocketAddr::new(options.advertised_address(), local_addr.port());
        // Lists and watches are served from the watch cache, one store watch for all.
        let cache = crate::storage::cacher::WatchCache::start(storage.clone());
        // Serve once the cache is filled, as upstream's readiness waits for its caches;
        // until then (a huge store) lists and watches simply go to the store.
        if !cache.wait_until_ready(Duration::from_secs(30)).await {
            tracing::warn!("the watch cache is still filling; serving from the store meanwhile");
        }
        let registry =
            Registry::with_network(storage.clone(), options.service_network()).with_cache(cache);
        let security = security(options, &registry, pki.as_ref()).await?;
        let admission = crate::auth::admission::Chain::from_flags(
            &options.enable_admission_plugins,
            &options.disable_admission_plugins,
            crate::auth::admission::Context {
                registry: registry.clone(),
                authorizer: security.authorizer.clone(),
                rbac: security.rbac.clone(),
            },
        )
        .map_err(ServerError::Security)?;
        let registry = registry.with_admission(admission);
        let state = AppState::with_security(registry, storage.clone(), advertised, security);
        state
            .registry()
            .ensure_system_namespaces()
            .await
            .map_err(|e| ServerError::Bootstrap(e.to_string()))?;
        state
            .registry()
            .ensure_system_priority_classes()
            .await
            .map_err(|e| ServerError::Bootstrap(e.to_string()))?;
        state
            .registry()
            .ensure_kubernetes_service(advertised.ip(), advertised.port())
            .await
            .map_err(|e| ServerError::Bootstrap(e.to_string()))?;
        // upstream's legacy-token-tracking-controller: since when token use is recorded
        crate::registry::legacy_token_tracking::start(state.registry().clone()).await;
        // upstream's kubernetes-service-cidr-controller: the `kubernetes` ServiceCIDR
        crate::registry::service_cidrs::start(state.registry().clone()).await;
        if options.authorization_mode.iter().any(|m| m == "RBAC") {
            bootstrap_policy::reconcile(state.registry())
                .await
                .map_err(|e| ServerError::Bootstrap(e.to_string()))?;
        }
        // CRDs become served custom resources once their names are accepted
        crate::crd::controller::start(state.registry().clone());
        let compactor = storage::spawn_compactor(storage, DEFAULT_COMPACTION_INTERVAL);
        Ok(Server {
            listener,
            acceptor: TlsAcceptor::from(Arc::new(tls)),
            state,
            local_addr,
            pki,
            compactor,
        })
    }

    /// The address the server listens on (with the actual port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The URL a client on this machine uses: loopback when listening on every address.
    pub fn client_url(&self) -> String {
        let ip = match self.local_addr.ip() {
            ip if ip.is_unspecified() && ip.is_ipv6() => "::1".parse().unwrap_or(ip),
            ip if ip.is_unspecified() => std::net::IpAddr::from([127, 0, 0, 1]),
            ip => ip,
        };
        format!("https://{}", SocketAddr::new(ip, self.local_addr.port()))
    }

    /// The generated certificates, when no serving certificate was given.
    pub fn pki(&self) -> Option<&Pki> {
        self.pki.as_ref()
    }

    /// The admin kubeconfig for this server, when its certificates were generated.
    pub fn admin_kubeconfig(&self) -> Option<String> {
        self.pki
            .as_ref()
            .map(|pki| pki.admin_kubeconfig(&self.client_url()))
    }

    /// Serves until `shutdown` completes, then drains connections and returns.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), ServerError> {
        let Server {
            listener,
            acceptor,
            state,
            local_addr,
            compactor,
            ..
        } = self;
        let router = http::router(state.clone());
        let graceful = GracefulShutdown::new();
        let mut builder = auto::Builder::new(TokioExecutor::new());
        // upstream's default streams per HTTP/2 connection (`--http2-max-streams-per-connection`
        // 0: golang's 250, made explicit in its secure serving); a client multiplexes its
        // watches and requests over one connection, so hyper's 200 would be tighter
        builder.http2().max_concurrent_streams(HTTP2_MAX_STREAMS);
        tracing::info!(address = %local_addr, "serving securely");
        tokio::pin!(shutdown);
        loop {
            let (tcp, peer) = tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // out of file descriptors and the like: wait instead of spinning
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            // as Go's listeners: an HTTP/2 response goes out in several frames, and
            // Nagle's algorithm would hold the later ones for the client's delayed ACK
            let _ = tcp.set_nodelay(true);
            let (acceptor, router, builder, watcher) = (
                acceptor.clone(),
                router.clone(),
                builder.clone(),
                graceful.watcher(),
            );
            tokio::spawn(async move {
                let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
                {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
                let user = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .and_then(|leaf| UserInfo::from_client_certificate(leaf))
                    .map(CertificateUser);
                let service =
                    hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                        if let Some(user) = &user {
                            request.extensions_mut().insert(user.clone());
                        }
                        router.clone().oneshot(request)
                    });
                let connection = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
                if let Err(e) = watcher.watch(connection).await {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
            });
        }
        tracing::info!("shutting down: no new connections, draining open ones");
        state.begin_shutdown();
        drop(listener);
        if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("connections still open after {DRAIN_TIMEOUT:?}; closing them");
        }
        compactor.abort();
        Ok(())
    }
}

/// Authentication and authorization as the flags configure them.
async fn security(
    options: &ServerOptions,
    registry: &Registry,
    pki: Option<&Pki>,
) -> Result<Security, ServerError> {
    let mut authenticator = Authenticator::new(registry.clone());
    authenticator.anonymous = options.anonymous_auth;
    authenticator.bootstrap_tokens = options.enable_bootstrap_token_auth;
    if let Some(path) = &options.token_auth_file {
        let file = TokenFile::load(path).map_err(ServerError::Security)?;
        authenticator.token_file = Some(Arc::new(file));
    }
    let issuer = &options.service_account_issuer;
    let extra: Vec<&std::path::Path> = options
        .service_account_key_file
        .iter()
        .map(PathBuf::as_path)
        .collect();
    let keys = match (&options.service_account_signing_key_file, pki) {
        (Some(path), _) => Some(ServiceAccountKeys::load(issuer, path, &extra)),
        (None, Some(pki)) => {
            let mut public = String::new();
            for path in &extra {
                public.push_str(&std::fs::read_to_string(path).map_err(|e| {
                    ServerError::Security(format!("cannot read {}: {e}", path.display()))
                })?);
            }
            Some(ServiceAccountKeys::new(
                issuer,
                &pki.service_account_key_pem,
                (!public.is_empty()).then_some(public.as_str()),
            ))
        }
        (None, None) => None,
    };
    authenticator.service_accounts = keys
        .transpose()
        .map_err(|e| ServerError::Security(format!("service-account keys: {e}")))?
        .map(Arc::new);
    authenticator.api_audiences = if options.api_audiences.is_empty() {
        vec![issuer.clone()]
    } else {
        options.api_audiences.clone()
    };

    let mut modes: Vec<Arc<dyn Authorize>> = Vec::new();
    let mut rbac = None;
    for mode in &options.authorization_mode {
        match mode.as_str() {
            "AlwaysAllow" => modes.push(Arc::new(AlwaysAllow)),
            "AlwaysDeny" => modes.push(Arc::new(AlwaysDeny)),
            "RBAC" => {
                let started = Rbac::start(registry);
                if !started.wait_synced(Duration::from_secs(30)).await {
                    return Err(ServerError::Security(
                        "the RBAC objects could not be read within 30s".into(),
                    ));
                }
                modes.push(Arc::new(RbacAuthorizer::new(started.clone())));
                rbac = Some(started);
            }
            "Node" => {
                let find = |plural| {
                    apimachinery::resources::find("", "v1", plural).expect("core resources")
                };
                let pods = Informer::start(registry.clone(), find("pods"));
                let claims = Informer::start(registry.clone(), find("persistentvolumeclaims"));
                pods.wait_synced(Duration::from_secs(30)).await;
                claims.wait_synced(Duration::from_secs(30)).await;
                modes.push(Arc::new(NodeAuthorizer::new(pods, claims)));
            }
            other => {
                return Err(ServerError::Security(format!(
                    "authorization-mode {other:?} is not a valid mode"
                )));
            }
        }
    }
    Ok(Security {
        service_account_keys: authenticator.service_accounts.clone(),
        authenticator,
        authorizer: Authorizer::new(modes),
        rbac,
    })
}

/// The backend named by the flags: etcd when `--etcd-servers` is given, otherwise
/// `--storage-url` (the embedded store by default).
async fn open_storage(options: &ServerOptions) -> Result<Arc<dyn Storage>, ServerError> {
    if !options.etcd_servers.is_empty() {
        let endpoints = options
            .etcd_servers
            .iter()
            .map(|s| {
                if s.contains("://") {
                    s.clone()
                } else {
                    format!("http://{s}")
                }
            })
            .collect();
        let config = etcd::EtcdConfig {
            endpoints,
            ca_file: options.etcd_cafile.clone(),
            cert_file: options.etcd_certfile.clone(),
            key_file: options.etcd_keyfile.clone(),
            ..Default::default()
        };
        let store = etcd::EtcdStore::connect(config)
            .await
            .map_err(OpenError::from)?;
        return Ok(Arc::new(store));
    }
    let url = options
        .storage_url
        .as_deref()
        .unwrap_or(DEFAULT_STORAGE_URL);
    if let Some(parent) = url
        .strip_prefix("sqlite://")
        .and_then(|p| std::path::Path::new(p).parent())
    {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent).map_err(|source| ServerError::DataDir {
                path: parent.to_owned(),
                source,
            })?;
        }
    }
    Ok(storage::open(url).await?)
}

/// The rustls configuration: the given serving certificate and client CA, or ones
/// generated under `--cert-dir` (then also returned).
fn tls_config(options: &ServerOptions) -> Result<(rustls::ServerConfig, Option<Pki>), ServerError> {
    let (cert_pem, key_pem, client_ca_pem, pki) =
        match (&options.tls_cert_file, &options.tls_private_key_file) {
            (Some(cert), Some(key)) => {
                let client_ca = options.client_ca_file.as_ref().map(read).transpose()?;
                (read(cert)?, read(key)?, client_ca, None)
            }
            _ => {
                let hosts =
                    certs::serving_hosts(&[options.bind_address, options.advertised_address()]);
                let pki = certs::ensure(&options.cert_dir, &hosts)?;
                let client_ca = match &options.client_ca_file {
                    Some(path) => read(path)?,
                    None => pki.ca_cert_pem.clone().into_bytes(),
                };
                (
                    pki.serving_cert_pem.clone().into_bytes(),
                    pki.serving_key_pem.clone().into_bytes(),
                    Some(client_ca),
                    Some(pki),
                )
            }
        };
    let cert_path = || {
        options
            .tls_cert_file
            .clone()
            .unwrap_or_else(|| options.cert_dir.join(certs::SERVING_CERT))
    };
    let key_path = || {
        options
            .tls_private_key_file
            .clone()
            .unwrap_or_else(|| options.cert_dir.join(certs::SERVING_KEY))
    };
    let ca_path = || {
        options
            .client_ca_file
            .clone()
            .unwrap_or_else(|| options.cert_dir.join(certs::CA_CERT))
    };

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let (cert_file, key_file) = (cert_path(), key_path());
    let initial = certified_key(&cert_pem, &key_pem, &provider, &cert_file, &key_file)?;
    let resolver = ReloadingCertificate {
        cert_file,
        key_file,
        provider: provider.clone(),
        state: std::sync::Mutex::new(ReloadState {
            checked: std::time::Instant::now(),
            stamps: (modified(&cert_path()), modified(&key_path())),
            key: Arc::new(initial),
        }),
    };
    let verifier = match client_ca_pem {
        Some(pem) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| ServerError::TlsFile {
                    path: ca_path(),
                    reason: e.to_string(),
                })?;
                roots.add(cert).map_err(|e| ServerError::TlsFile {
                    path: ca_path(),
                    reason: e.to_string(),
                })?;
            }
            // optional: health checks and anonymous callers connect without a certificate
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .allow_unauthenticated()
                .build()
                .map_err(|e| ServerError::TlsFile {
                    path: ca_path(),
                    reason: e.to_string(),
                })?
        }
        None => WebPkiClientVerifier::no_client_auth(),
    };
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServerError::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((config, pki))
}

/// A serving certificate and key in PEM, checked and paired for rustls.
fn certified_key(
    cert_pem: &[u8],
    key_pem: &[u8],
    provider: &rustls::crypto::CryptoProvider,
    cert_path: &std::path::Path,
    key_path: &std::path::Path,
) -> Result<rustls::sign::CertifiedKey, ServerError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| ServerError::TlsFile {
            path: cert_path.to_owned(),
            reason: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(ServerError::TlsFile {
            path: cert_path.to_owned(),
            reason: "no certificate found".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| ServerError::TlsFile {
        path: key_path.to_owned(),
        reason: e.to_string(),
    })?;
    rustls::sign::CertifiedKey::from_der(chain, key, provider).map_err(|e| ServerError::TlsFile {
        path: key_path.to_owned(),
        reason: e.to_string(),
    })
}

/// How often the serving certificate's files are looked at for a replacement.
const CERT_CHECK_INTERVAL: Duration = Duration::from_secs(1);

fn modified(path: &std::path::Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

struct ReloadState {
    checked: std::time::Instant,
    stamps: (Option<std::time::SystemTime>, Option<std::time::SystemTime>),
    key: Arc<rustls::sign::CertifiedKey>,
}

/// The serving certificate, read again from its files when they change, so that it
/// can be rotated by replacing them (as upstream's dynamic serving certificate): new
/// connections get the new certificate, and a half-written pair keeps the old one.
struct ReloadingCertificate {
    cert_file: PathBuf,
    key_file: PathBuf,
    provider: Arc<rustls::crypto::CryptoProvider>,
    state: std::sync::Mutex<ReloadState>,
}

impl std::fmt::Debug for ReloadingCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingCertificate")
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .finish_non_exhaustive()
    }
}

impl rustls::server::ResolvesServerCert for ReloadingCertificate {
    fn resolve(
        &self,
        _: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.checked.elapsed() >= CERT_CHECK_INTERVAL {
            state.checked = std::time::Instant::now();
            let stamps = (modified(&self.cert_file), modified(&self.key_file));
            if stamps != state.stamps {
                let loaded = std::fs::read(&self.cert_file)
                    .ok()
                    .zip(std::fs::read(&self.key_file).ok())
                    .and_then(|(cert, key)| {
                        certified_key(&cert, &key, &self.provider, &self.cert_file, &self.key_file)
                            .ok()
                    });
                match loaded {
                    Some(key) => {
                        tracing::info!(cert = %self.cert_file.display(), "serving certificate reloaded");
                        state.key = Arc::new(key);
                        state.stamps = stamps;
                    }
                    None => tracing::warn!(
                        cert = %self.cert_file.display(),
                        "the serving certificate files changed but do not form a pair yet; keeping the current one"
                    ),
                }
            }
        }
        Some(state.key.clone())
    }
}

fn read(path: &PathBuf) -> Result<Vec<u8>, ServerError> {
    std::fs::read(path).map_err(|e| ServerError::TlsFile {
        path: path.clone(),
        reason: e.to_string(),
    })
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; only SIGINT stops the server");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Runs kube-apiserver with `options` until SIGINT or SIGTERM. When certificates are
/// generated, the admin kubeconfig is written to `<cert-dir>/admin.kubeconfig`.
pub async fn run(options: ServerOptions) -> Result<(), ServerError> {
    let server = Server::bind(&options).await?;
    if let Some(kubeconfig) = server.admin_kubeconfig() {
        let path = options.cert_dir.join("admin.kubeconfig");
        certs::write_private_file(&path, kubeconfig.as_bytes())?;
        tracing::info!(path = %path.display(), "wrote the admin kubeconfig");
    }
    server.serve(shutdown_signal()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The serving certificate a fresh TLS connection to `address` is shown.
    async fn served_certificate(address: SocketAddr, ca_pem: &str) -> Vec<u8> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let tls = connector.connect(name, tcp).await.unwrap();
        tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
    }

    #[tokio::test]
    async fn replacing_the_certificate_files_rotates_the_serving_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let mut options = ServerOptions::defaults();
        options.secure_port = 0;
        options.bind_address = [127, 0, 0, 1].into();
        options.storage_url = Some("memory://".into());
        options.cert_dir = dir.path().to_owned();
        let server = Server::bind(&options).await.unwrap();
        let address = server.local_addr();
        let ca = server.pki().unwrap().ca_cert_pem.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(server.serve(async move {
            let _ = stopped.await;
        }));
        let first = served_certificate(address, &ca).await;

        // a new certificate for one more address, written over the files
        let extra: std::net::IpAddr = "192.0.2.77".parse().unwrap();
        let mut hosts = certs::serving_hosts(&[options.bind_address]);
        hosts.push(extra.to_string());
        // (existing files are never overwritten: remove them, then generate anew)
        std::fs::remove_file(dir.path().join(certs::SERVING_CERT)).unwrap();
        std::fs::remove_file(dir.path().join(certs::SERVING_KEY)).unwrap();
        let renewed = certs::ensure(dir.path(), &hosts).unwrap();
        assert_eq!(renewed.ca_cert_pem, ca, "same CA");
        assert_ne!(
            renewed.serving_cert_pem,
            std::str::from_utf8(&first).unwrap_or_default()
        );
        tokio::time::sleep(CERT_CHECK_INTERVAL + Duration::from_millis(200)).await;
        let second = served_certificate(address, &ca).await;
        assert_ne!(first, second, "new connections get the new certificate");
        let (_, cert) = x509_parser::parse_x509_certificate(&second).unwrap();
        let san = cert.subject_alternative_name().unwrap().unwrap();
        assert!(
            san.value.general_names.iter().any(|n| matches!(
                n,
                x509_parser::extensions::GeneralName::IPAddress(b) if *b == [192, 0, 2, 77]
            )),
            "the new certificate covers the new address"
        );
        let _ = stop.send(());
        serving.await.unwrap().unwrap();
    }
}
