//! `/healthz`, `/livez` and `/readyz`, as upstream's healthz package
//! (k8s.io/apiserver/pkg/server/healthz): each endpoint runs a list of named checks;
//! plain requests get `ok` or a 500 listing what failed, `?verbose` lists every check,
//! `?exclude=<name>` skips one, and `/<endpoint>/<check>` runs a single check.

use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;

/// How long the storage check waits for an answer.
const STORAGE_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// One of the three endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Endpoint {
    Healthz,
    Livez,
    Readyz,
}

impl Endpoint {
    fn name(self) -> &'static str {
        match self {
            Endpoint::Healthz => "healthz",
            Endpoint::Livez => "livez",
            Endpoint::Readyz => "readyz",
        }
    }

    /// The checks this endpoint runs, in order. Upstream's `etcd` check is in all three;
    /// `shutdown` only in readyz, so load balancers stop sending traffic first.
    fn checks(self) -> &'static [Check] {
        match self {
            Endpoint::Healthz | Endpoint::Livez => &[Check::Ping, Check::Etcd],
            Endpoint::Readyz => &[Check::Ping, Check::Etcd, Check::Shutdown],
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Check {
    Ping,
    Etcd,
    Shutdown,
}

impl Check {
    fn name(self) -> &'static str {
        match self {
            Check::Ping => "ping",
            Check::Etcd => "etcd",
            Check::Shutdown => "shutdown",
        }
    }

    async fn run(self, state: &AppState) -> Result<(), String> {
        match self {
            Check::Ping => Ok(()),
            Check::Etcd => match tokio::time::timeout(
                STORAGE_CHECK_TIMEOUT,
                state.storage().current_revision(),
            )
            .await
            {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("the storage did not answer in time".to_owned()),
            },
            Check::Shutdown => {
                if state.is_shutting_down() {
                    Err("process is shutting down".to_owned())
                } else {
                    Ok(())
                }
            }
        }
    }
}

fn text(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// Runs every check of `endpoint` not excluded, upstream's `handleRootHealth`.
pub(super) async fn all(
    endpoint: Endpoint,
    state: &AppState,
    query: &[(String, String)],
) -> Response {
    let verbose = query.iter().any(|(k, _)| k == "verbose");
    let excluded: Vec<&str> = query
        .iter()
        .filter(|(k, _)| k == "exclude")
        .map(|(_, v)| v.as_str())
        .collect();
    let mut report = String::new();
    let mut failed = false;
    for check in endpoint.checks() {
        if excluded.contains(&check.name()) {
            report.push_str(&format!("[+]{} excluded: ok\n", check.name()));
            continue;
        }
        match check.run(state).await {
            Ok(()) => report.push_str(&format!("[+]{} ok\n", check.name())),
            Err(reason) => {
                tracing::warn!(check = check.name(), endpoint = endpoint.name(), %reason, "health check failed");
                failed = true;
                // upstream never tells unauthenticated callers why a check failed
                report.push_str(&format!("[-]{} failed: reason withheld\n", check.name()));
            }
        }
    }
    for name in excluded
        .iter()
        .filter(|name| !endpoint.checks().iter().any(|c| c.name() == **name))
    {
        report.push_str(&format!(
            "warn: some health checks cannot be excluded: no matches for \"{name}\"\n"
        ));
    }
    if failed {
        report.push_str(&format!("{} check failed\n", endpoint.name()));
        return text(StatusCode::INTERNAL_SERVER_ERROR, report);
    }
    if verbose {
        report.push_str(&format!("{} check passed\n", endpoint.name()));
        return text(StatusCode::OK, report);
    }
    text(StatusCode::OK, "ok".to_owned())
}

/// Runs one named check, upstream's `/healthz/<name>` handlers.
pub(super) async fn one(endpoint: Endpoint, state: &AppState, name: &str) -> Response {
    let Some(check) = endpoint.checks().iter().find(|c| c.name() == name) else {
        return super::not_found();
    };
    match check.run(state).await {
        Ok(()) => text(StatusCode::OK, "ok".to_owned()),
        Err(reason) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("internal server error: {reason}\n"),
        ),
    }
}

macro_rules! endpoint_handlers {
    ($all:ident, $one:ident, $endpoint:expr) => {
        pub(super) async fn $all(
            State(state): State<AppState>,
            Query(query): Query<Vec<(String, String)>>,
        ) -> Response {
            all($endpoint, &state, &query).await
        }

        pub(super) async fn $one(
            State(state): State<AppState>,
            Path(name): Path<String>,
        ) -> Response {
            one($endpoint, &state, &name).await
        }
    };
}

endpoint_handlers!(healthz, healthz_check, Endpoint::Healthz);
endpoint_handlers!(livez, livez_check, Endpoint::Livez);
endpoint_handlers!(readyz, readyz_check, Endpoint::Readyz);
