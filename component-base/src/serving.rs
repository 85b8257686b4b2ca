//! The secure port of kube-scheduler and kube-controller-manager (10259, 10257): HTTPS
//! with a self-signed certificate made at start-up, as upstream does without
//! `--tls-cert-file`, serving an axum router.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tower::ServiceExt;

/// The secure port could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ServingError {
    /// Binding the address failed.
    #[error("failed to listen on {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The self-signed certificate could not be made.
    #[error("self-signed certificate: {0}")]
    Certificate(String),
}

/// A bound secure port.
pub struct SecurePort {
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl SecurePort {
    /// Binds `address` with a certificate self-signed for `name` (e.g.
    /// `kube-scheduler`), localhost and 127.0.0.1.
    pub async fn bind(address: SocketAddr, name: &str) -> Result<SecurePort, ServingError> {
        let cert = rcgen::generate_simple_self_signed(vec![
            name.to_owned(),
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
        ])
        .map_err(|e| ServingError::Certificate(e.to_string()))?;
        let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der())
            .map_err(|e| ServingError::Certificate(e.to_string()))?;
        let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| ServingError::Certificate(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .map_err(|e| ServingError::Certificate(e.to_string()))?;
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let listener = TcpListener::bind(address)
            .await
            .map_err(|source| ServingError::Bind { address, source })?;
        Ok(SecurePort {
            listener,
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(tls)),
        })
    }

    /// The bound address (port 0 picks one).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves `router` until the task is dropped.
    pub async fn serve(self, router: axum::Router) {
        let builder = auto::Builder::new(TokioExecutor::new());
        loop {
            let (tcp, _) = match self.listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            // as Go's listeners (HTTP/2 frames must not wait for delayed ACKs)
            let _ = tcp.set_nodelay(true);
            let (acceptor, router, builder) =
                (self.acceptor.clone(), router.clone(), builder.clone());
            tokio::spawn(async move {
                let Ok(Ok(tls)) =
                    tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
                else {
                    return;
                };
                let service =
                    hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                        router.clone().oneshot(request)
                    });
                let _ = builder.serve_connection(TokioIo::new(tls), service).await;
            });
        }
    }
}
