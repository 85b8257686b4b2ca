//! The API client the components share: kube-rs's client over a transport that speaks
//! HTTP/2 when the server offers it (ALPN `h2`), as client-go's does.
//!
//! `kube::Client::try_from` only speaks HTTP/1.1, so every request in flight is a
//! connection of its own with its own TLS handshake: a controller manager creating a
//! thousand pods at once opened about 400, and the handshakes cost both sides CPU the
//! burst needed. client-go multiplexes all of a client's requests over one HTTP/2
//! connection, with a 4 MiB window per stream and a 1 GiB window per connection (so
//! one slow watch cannot stall the others), and pings it after 30 s without a frame
//! to find a dead one (`ReadIdleTimeout` 30 s, `PingTimeout` 15 s). This transport does the same;
//! against a server without HTTP/2 it falls back to HTTP/1.1.
//!
//! The middleware (base URI, credentials, impersonation headers) is kube-rs's own,
//! from [`ConfigExt`], so a client built here authenticates as one from
//! `Client::try_from` does.

use std::time::Duration;

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use kube::client::{ClientBuilder, ConfigExt};
use tower::ServiceBuilder;

/// client-go's HTTP/2 flow-control windows (golang.org/x/net/http2 transport defaults).
const STREAM_WINDOW: u32 = 4 << 20;
const CONNECTION_WINDOW: u32 = 1 << 30;
/// client-go pings a connection that has been silent this long...
const PING_AFTER: Duration = Duration::from_secs(30);
/// ...and closes it when the ping is not answered within this.
const PING_TIMEOUT: Duration = Duration::from_secs(15);

/// TCP keep-alive probes after this long idle, as Go's dialer sends them.
const TCP_KEEPALIVE: Duration = Duration::from_secs(30);

/// A client for `config` that multiplexes its requests over HTTP/2 where it can.
///
/// A kubeconfig naming a proxy or an exec credential plugin gets kube-rs's own
/// client instead: its proxy tunnels and its expiry of exec-issued certificates are
/// not ours to redo, and such kubeconfigs belong to people, not components.
pub fn client(config: kube::Config) -> Result<kube::Client, kube::Error> {
    if config.proxy_url.is_some() || config.auth_info.exec.is_some() {
        return kube::Client::try_from(config);
    }
    let mut tcp = HttpConnector::new();
    tcp.enforce_http(false);
    tcp.set_connect_timeout(config.connect_timeout);
    tcp.set_keepalive(Some(TCP_KEEPALIVE));
    tcp.set_nodelay(true);
    let tls = config.rustls_client_config()?;
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    let https = match &config.tls_server_name {
        Some(name) => {
            let name = rustls::pki_types::ServerName::try_from(name.clone()).map_err(|e| {
                kube::Error::RustlsTls(kube::client::RustlsTlsError::InvalidServerName(e))
            })?;
            https.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name))
        }
        None => https,
    };
    let connector = https.enable_all_versions().wrap_connector(tcp);
    let transport = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .http2_initial_stream_window_size(STREAM_WINDOW)
        .http2_initial_connection_window_size(CONNECTION_WINDOW)
        .http2_keep_alive_interval(PING_AFTER)
        .http2_keep_alive_timeout(PING_TIMEOUT)
        .http2_keep_alive_while_idle(true)
        .build::<_, kube::client::Body>(connector);
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(tower::BoxError::from)
        .service(transport);
    Ok(ClientBuilder::new(service, config.default_namespace).build())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A static token (`--token-auth-file`) of a cluster admin.
    const ADMIN_TOKEN: &str = "exec-issued-token";

    /// An apiserver on the embedded store in `dir`, serving until the test ends, and a
    /// kube config for its admin.
    async fn apiserver(dir: &std::path::Path) -> kube::Config {
        let tokens = dir.join("tokens.csv");
        std::fs::write(
            &tokens,
            format!("{ADMIN_TOKEN},exec-admin,1,system:masters\n"),
        )
        .unwrap();
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut options = apiserver::ServerOptions::defaults();
        options.secure_port = 0;
        options.bind_address = [127, 0, 0, 1].into();
        options.storage_url = Some(format!("sqlite://{}", dir.join("store.db").display()));
        options.cert_dir = dir.join("pki");
        options.token_auth_file = Some(tokens);
        let server = apiserver::Server::bind(&options).await.unwrap();
        let kubeconfig = server.admin_kubeconfig().unwrap();
        tokio::spawn(server.serve(std::future::pending()));
        let kubeconfig = kube::config::Kubeconfig::from_yaml(&kubeconfig).unwrap();
        kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .unwrap()
    }

    /// The version of HTTP a GET of `path` was answered in.
    async fn version_of(client: &kube::Client, path: &str) -> http::Version {
        let request = http::Request::get(path)
            .body(kube::client::Body::empty())
            .unwrap();
        let response = client.send(request).await.unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.version()
    }

    #[tokio::test]
    async fn requests_ride_http2_when_the_server_offers_it() {
        let dir = tempfile::tempdir().unwrap();
        let config = apiserver(dir.path()).await;
        let ours = client(config.clone()).unwrap();
        // a burst in flight at once shares the connection: all answered over HTTP/2
        let burst = (0..20).map(|_| version_of(&ours, "/api/v1/namespaces"));
        for version in futures::future::join_all(burst).await {
            assert_eq!(version, http::Version::HTTP_2);
        }
        // kube-rs's own client, the one this replaces, speaks HTTP/1.1 only
        let theirs = kube::Client::try_from(config).unwrap();
        assert_eq!(
            version_of(&theirs, "/api/v1/namespaces").await,
            http::Version::HTTP_11
        );
    }

    /// A kubeconfig with an exec credential plugin keeps kube-rs's own client, which
    /// runs the plugin (and so speaks HTTP/1.1).
    #[tokio::test]
    async fn exec_plugin_kubeconfigs_keep_kube_rs_client() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = apiserver(dir.path()).await;
        let credential = serde_json::json!({
            "apiVersion": "client.authentication.k8s.io/v1",
            "kind": "ExecCredential",
            "status": {"token": ADMIN_TOKEN},
        });
        let exec = serde_json::json!({
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": "echo",
            "args": [credential.to_string()],
            "interactiveMode": "Never",
        });
        config.auth_info = kube::config::AuthInfo {
            exec: Some(serde_json::from_value(exec).unwrap()),
            ..Default::default()
        };
        let client = client(config).unwrap();
        assert_eq!(
            version_of(&client, "/api/v1/namespaces").await,
            http::Version::HTTP_11
        );
    }

    /// Typed calls (credentials from the kubeconfig, JSON bodies) work over it.
    #[tokio::test]
    async fn typed_calls_authenticate_and_round_trip() {
        use k8s_openapi::api::core::v1::Namespace;
        use kube::ResourceExt;
        use kube::api::{Api, PostParams};
        let dir = tempfile::tempdir().unwrap();
        let client = client(apiserver(dir.path()).await).unwrap();
        let namespaces: Api<Namespace> = Api::all(client);
        let mut namespace = Namespace::default();
        namespace.metadata.name = Some("over-h2".into());
        namespace.metadata.labels = Some([("k".to_owned(), "v".to_owned())].into());
        namespaces
            .create(&PostParams::default(), &namespace)
            .await
            .unwrap();
        let read = namespaces.get("over-h2").await.unwrap();
        assert_eq!(read.labels().get("k").map(String::as_str), Some("v"));
    }
}
