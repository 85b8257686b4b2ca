//! Service-account issuer discovery: the OIDC configuration at
//! `/.well-known/openid-configuration` and the verifying keys at `/openid/v1/jwks`, so
//! that other systems can check the cluster's service-account tokens (upstream's
//! ServiceAccountIssuerDiscovery; RBAC lets `system:serviceaccounts` read them).

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{AppState, not_found};

fn document(value: &serde_json::Value, content_type: &'static str) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // upstream lets caches keep these for an hour
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    response
}

/// `GET /.well-known/openid-configuration`.
pub async fn openid_configuration(State(state): State<AppState>) -> Response {
    match &state.security().service_account_keys {
        Some(keys) => document(&keys.openid_configuration(), "application/json"),
        None => not_found(),
    }
}

/// `GET /openid/v1/jwks`.
pub async fn jwks(State(state): State<AppState>) -> Response {
    match &state.security().service_account_keys {
        Some(keys) => document(&keys.jwks(), "application/jwk-set+json"),
        None => not_found(),
    }
}
