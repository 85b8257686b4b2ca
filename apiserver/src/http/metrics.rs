//! Request metrics, as upstream's `k8s.io/apiserver/pkg/endpoints/metrics`: every
//! resource request counts in `apiserver_request_total` and is timed in
//! `apiserver_request_duration_seconds`, with upstream's label names and values (verbs
//! as upstream's `CleanVerb` reports them: GET/LIST/WATCH/POST/PUT/PATCH/APPLY/DELETE;
//! scope resource/namespace/cluster), served in the Prometheus text format at
//! `/metrics`. A watch is timed until its response starts streaming: its length is
//! the client's choice, not the server's latency.

use std::time::Instant;

use apimachinery::resources;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus::{CounterVec, Encoder, HistogramOpts, HistogramVec, Opts, TextEncoder};

use super::AppState;

/// Upstream's buckets for `apiserver_request_duration_seconds`.
const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0,
    10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
];

const LABELS: &[&str] = &[
    "component",
    "dry_run",
    "group",
    "resource",
    "scope",
    "subresource",
    "verb",
    "version",
];

/// The apiserver's metric registry.
pub struct Metrics {
    registry: prometheus::Registry,
    requests: CounterVec,
    durations: HistogramVec,
}

impl Metrics {
    /// The metrics with nothing counted yet.
    pub fn new() -> Self {
        let registry = prometheus::Registry::new();
        let mut counter_labels = LABELS.to_vec();
        counter_labels.insert(0, "code");
        let requests = CounterVec::new(
            Opts::new(
                "apiserver_request_total",
                "Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, scope, component, and HTTP response code.",
            ),
            &counter_labels,
        )
        .expect("valid metric definition");
        let durations = HistogramVec::new(
            HistogramOpts::new(
                "apiserver_request_duration_seconds",
                "Response latency distribution in seconds for each verb, dry run value, group, version, resource, subresource, scope and component.",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            LABELS,
        )
        .expect("valid metric definition");
        registry
            .register(Box::new(requests.clone()))
            .expect("registered once");
        registry
            .register(Box::new(durations.clone()))
            .expect("registered once");
        Metrics {
            registry,
            requests,
            durations,
        }
    }

    fn record(&self, labels: &RequestLabels, code: u16, seconds: f64) {
        let values = labels.values();
        let mut with_code = vec![code.to_string()];
        with_code.extend(values.iter().map(|v| (*v).to_owned()));
        let with_code: Vec<&str> = with_code.iter().map(String::as_str).collect();
        self.requests.with_label_values(&with_code).inc();
        self.durations.with_label_values(&values).observe(seconds);
    }

    /// Everything in the Prometheus text exposition format.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Writing to a Vec cannot fail; a metric that cannot encode is left out.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The labels of one resource request, from its method, path and query, as upstream's
/// RequestInfo and `CleanVerb` compute them.
#[derive(Debug, PartialEq, Eq)]
pub struct RequestLabels {
    dry_run: String,
    group: String,
    resource: String,
    scope: &'static str,
    subresource: String,
    verb: &'static str,
    version: String,
}

impl RequestLabels {
    fn values(&self) -> [&str; 8] {
        [
            "apiserver",
            &self.dry_run,
            &self.group,
            &self.resource,
            self.scope,
            &self.subresource,
            self.verb,
            &self.version,
        ]
    }

    /// `None` for a path that is not a resource request of a served resource.
    pub fn of(
        method: &Method,
        path: &str,
        query: Option<&str>,
        content_type: &str,
    ) -> Option<Self> {
        let (group, version, rest) = if let Some(rest) = path.strip_prefix("/api/v1/") {
            ("", "v1", rest)
        } else {
            let rest = path.strip_prefix("/apis/")?;
            let mut parts = rest.splitn(3, '/');
            let group = parts.next()?;
            let version = parts.next()?;
            (group, version, parts.next()?)
        };
        let target = super::resources::parse_target(rest)?;
        let resource = resources::find(group, version, target.resource)?;
        let pairs = super::resources::form_urlencoded_pairs(query.unwrap_or(""));
        let param = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let watching = target.legacy_watch || matches!(param("watch"), Some("true" | "1"));
        let scope = match (target.name, target.namespace) {
            (Some(_), _) => "resource",
            (None, Some(_)) => "namespace",
            (None, None) => "cluster",
        };
        let verb = match *method {
            Method::GET if watching => "WATCH",
            Method::GET if scope != "resource" => "LIST",
            Method::GET => "GET",
            Method::POST => "POST",
            Method::PUT => "PUT",
            Method::PATCH if content_type.starts_with("application/apply-patch+yaml") => "APPLY",
            Method::PATCH => "PATCH",
            Method::DELETE => "DELETE",
            _ => "CONNECT",
        };
        Some(RequestLabels {
            dry_run: param("dryRun").unwrap_or("").to_owned(),
            group: group.to_owned(),
            resource: resource.plural.to_owned(),
            scope,
            subresource: target.subresource.unwrap_or("").to_owned(),
            verb,
            version: version.to_owned(),
        })
    }
}

/// Middleware counting and timing each resource request.
pub(super) async fn instrument(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|c| c.to_str().ok())
        .unwrap_or("");
    let labels = RequestLabels::of(
        request.method(),
        request.uri().path(),
        request.uri().query(),
        content_type,
    );
    let started = Instant::now();
    let response = next.run(request).await;
    if let Some(labels) = labels {
        state.metrics().record(
            &labels,
            response.status().as_u16(),
            started.elapsed().as_secs_f64(),
        );
    }
    response
}

/// `GET /metrics`.
pub(super) async fn serve(State(state): State<AppState>) -> Response {
    let mut response = (StatusCode::OK, state.metrics().render()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(method: Method, path: &str, query: Option<&str>) -> RequestLabels {
        RequestLabels::of(&method, path, query, "application/json").expect("a resource request")
    }

    #[test]
    fn labels_follow_upstreams_request_info() {
        let list = labels(Method::GET, "/api/v1/namespaces/default/pods", None);
        assert_eq!((list.verb, list.scope), ("LIST", "namespace"));
        let watch = labels(Method::GET, "/apis/apps/v1/deployments", Some("watch=true"));
        assert_eq!((watch.verb, watch.scope), ("WATCH", "cluster"));
        assert_eq!(watch.group, "apps");
        let status = labels(
            Method::PUT,
            "/apis/apps/v1/namespaces/a/deployments/web/status",
            Some("dryRun=All"),
        );
        assert_eq!(
            (status.verb, status.scope, status.subresource.as_str()),
            ("PUT", "resource", "status")
        );
        assert_eq!(status.dry_run, "All");
        let apply = RequestLabels::of(
            &Method::PATCH,
            "/api/v1/namespaces/a/configmaps/c",
            None,
            "application/apply-patch+yaml",
        )
        .unwrap();
        assert_eq!(apply.verb, "APPLY");
        assert!(RequestLabels::of(&Method::GET, "/api/v1/widgets", None, "").is_none());
        assert!(RequestLabels::of(&Method::GET, "/healthz", None, "").is_none());
    }

    #[test]
    fn recorded_requests_render_with_upstreams_names() {
        let metrics = Metrics::new();
        let get = labels(Method::GET, "/api/v1/namespaces/default/pods/p", None);
        metrics.record(&get, 404, 0.003);
        metrics.record(&get, 404, 0.03);
        let text = String::from_utf8(metrics.render()).unwrap();
        assert!(text.contains(r#"apiserver_request_total{code="404",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="",verb="GET",version="v1"} 2"#), "{text}");
        assert!(text.contains(r#"apiserver_request_duration_seconds_bucket{component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="",verb="GET",version="v1",le="0.005"} 1"#), "{text}");
        assert!(text.contains(r#"apiserver_request_duration_seconds_count{component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="",verb="GET",version="v1"} 2"#), "{text}");
    }
}
