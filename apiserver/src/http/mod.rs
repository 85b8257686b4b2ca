//! The HTTP edge of kube-apiserver: an axum router built by [`router`] serving version,
//! health and discovery; everything else answers upstream's 404 `metav1.Status`.
//! Errors become `metav1.Status` bodies here and only here.

mod discovery;
mod health;
mod metrics;
mod negotiation;
mod openapi;
mod openapi_protobuf;
mod patch;
mod resources;
mod scale;
mod service_account_issuer;
mod table;
mod version;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use apimachinery::errors::{Status, StatusDetails, StatusReason};
use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};

use crate::auth::filter::Security;
use crate::registry::Registry;
use crate::storage::Storage;

pub(crate) use resources::{form_urlencoded_pairs, percent_decode};
pub use version::VersionInfo;

/// What every handler shares: the storage, the address clients are told to use, and
/// whether the server is shutting down.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    storage: Arc<dyn Storage>,
    registry: Registry,
    advertised: SocketAddr,
    shutting_down: AtomicBool,
    metrics: metrics::Metrics,
    security: Arc<Security>,
}

impl AppState {
    /// State over `storage`, advertising `advertised` in discovery's
    /// `serverAddressByClientCIDRs`.
    pub fn new(storage: Arc<dyn Storage>, advertised: SocketAddr) -> Self {
        Self::with_registry(Registry::new(storage.clone()), storage, advertised)
    }

    /// State with a registry configured by the caller (e.g. its service network),
    /// authenticating client certificates and letting every request through
    /// (`--authorization-mode=AlwaysAllow`).
    pub fn with_registry(
        registry: Registry,
        storage: Arc<dyn Storage>,
        advertised: SocketAddr,
    ) -> Self {
        let security = Security {
            authenticator: crate::auth::authn::Authenticator::new(registry.clone()),
            authorizer: crate::auth::authz::Authorizer::always_allow(),
            rbac: None,
            service_account_keys: None,
        };
        Self::with_security(registry, storage, advertised, security)
    }

    /// State with its security configuration.
    pub fn with_security(
        registry: Registry,
        storage: Arc<dyn Storage>,
        advertised: SocketAddr,
        security: Security,
    ) -> Self {
        AppState {
            inner: Arc::new(Inner {
                registry,
                storage,
                advertised,
                shutting_down: AtomicBool::new(false),
                metrics: metrics::Metrics::new(),
                security: Arc::new(security),
            }),
        }
    }

    /// The storage backend.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.inner.storage
    }

    /// The generic registry serving every resource.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// The address advertised to clients.
    pub fn advertised(&self) -> SocketAddr {
        self.inner.advertised
    }

    /// Authentication and authorization.
    pub fn security(&self) -> &Security {
        &self.inner.security
    }

    /// The request metrics served at `/metrics`.
    pub(crate) fn metrics(&self) -> &metrics::Metrics {
        &self.inner.metrics
    }

    /// Marks the server as shutting down: `/readyz` fails from now on.
    pub fn begin_shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::SeqCst);
    }

    /// Whether [`AppState::begin_shutdown`] was called.
    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::SeqCst)
    }
}

/// The apiserver's routes. Requests carry the caller as a [`UserInfo`] extension (set
/// by the TLS layer from the client certificate); without one they are anonymous.
pub fn router(state: AppState) -> Router {
    // Resource requests are counted and timed (`/metrics`); the rest are not, as upstream.
    let resources = Router::new()
        .route("/api/v1/{*rest}", any(resources::core))
        .route("/apis/{group}/{version}/{*rest}", any(resources::grouped))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::instrument,
        ));
    Router::new()
        .route("/version", get(version))
        .route("/version/", get(version))
        .route("/healthz", get(health::healthz))
        .route("/healthz/{check}", get(health::healthz_check))
        .route("/livez", get(health::livez))
        .route("/livez/{check}", get(health::livez_check))
        .route("/readyz", get(health::readyz))
        .route("/readyz/{check}", get(health::readyz_check))
        .route("/api", get(discovery::api_versions))
        .route("/api/", get(discovery::api_versions))
        .route("/api/v1", get(discovery::core_resources))
        .route("/api/v1/", get(discovery::core_resources))
        .route("/apis", get(discovery::group_list))
        .route("/apis/", get(discovery::group_list))
        .route("/apis/{group}", get(discovery::group))
        .route("/apis/{group}/", get(discovery::group))
        .route("/apis/{group}/{version}", get(discovery::group_resources))
        .route("/apis/{group}/{version}/", get(discovery::group_resources))
        .route("/openapi/v2", get(openapi::v2))
        .route("/openapi/v3", get(openapi::v3_root))
        .route("/openapi/v3/{*gv}", get(openapi::v3_group_version))
        .route("/metrics", get(metrics::serve))
        .route(
            "/.well-known/openid-configuration",
            get(service_account_issuer::openid_configuration),
        )
        .route("/openid/v1/jwks", get(service_account_issuer::jwks))
        .merge(resources)
        // Bodies are checked against upstream's 3 MiB limit (413) by the handlers.
        .layer(axum::extract::DefaultBodyLimit::max(
            resources::MAX_REQUEST_BODY_BYTES + 1,
        ))
        .fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.inner.security.clone(),
            crate::auth::filter::authenticate_and_authorize,
        ))
        .layer(
            tower_http::compression::CompressionLayer::new()
                .gzip(true)
                .compress_when(LargeResponses),
        )
        .with_state(state)
}

/// Upstream compresses responses of 128 KiB and more for clients that accept gzip
/// (its `APIResponseCompression`); a watch, whose length is unknown, streams as is.
#[derive(Clone, Copy)]
struct LargeResponses;

impl tower_http::compression::Predicate for LargeResponses {
    fn should_compress<B: axum::body::HttpBody>(&self, response: &axum::http::Response<B>) -> bool {
        response
            .body()
            .size_hint()
            .exact()
            .is_some_and(|size| size >= 128 * 1024)
    }
}

async fn version() -> Response {
    json(StatusCode::OK, &VersionInfo::current())
}

async fn fallback() -> Response {
    not_found()
}

async fn method_not_allowed() -> Response {
    failure(
        StatusCode::METHOD_NOT_ALLOWED,
        StatusReason::MethodNotAllowed,
        "the server does not allow this method on the requested resource",
    )
}

/// Upstream's answer for a path nothing serves (its `NotFoundHandler`).
pub(crate) fn not_found() -> Response {
    failure(
        StatusCode::NOT_FOUND,
        StatusReason::NotFound,
        "the server could not find the requested resource",
    )
}

/// A `metav1.Status` failure with empty details (`{}`), as upstream writes for errors
/// that concern no object.
fn failure(code: StatusCode, reason: StatusReason, message: &str) -> Response {
    let mut status = Status::failure(code.as_u16(), reason, message);
    status.details = Some(StatusDetails::default());
    status_response(status)
}

/// A `metav1.Status` body with its own code as the HTTP status.
pub(crate) fn status_response(status: Status) -> Response {
    let code =
        StatusCode::from_u16(status.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json(code, &status)
}

/// A JSON response with upstream's content type.
fn json<T: serde::Serialize>(code: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => {
            let mut response = (code, body).into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot serialize a response");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

#[cfg(test)]
mod tests;
