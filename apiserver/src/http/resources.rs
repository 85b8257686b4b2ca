//! The REST surface of every resource: path parsing (upstream's `RequestInfoFactory`),
//! verb dispatch, body decoding (JSON, and client-go's protobuf) with upstream's limits
//! and messages, content negotiation (JSON, Table) and watch streaming, over the
//! generic [`Registry`].

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use apimachinery::errors::{FieldError, StatusError};
use apimachinery::protobuf;
use apimachinery::resources::{GroupKind, GroupResource, ResourceInfo};
use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::{Value, json};

use super::negotiation::{self, Form, Output};
use super::{AppState, json as json_response, not_found, status_response, table};
use crate::crd::Served;
use crate::registry::{self, DeleteOptions, ListParams, Part, Registry, Selectors, ownership};
use crate::storage::cacher::CachedEvent;
use crate::storage::{self, WatchEvent};

/// Upstream's limit on a request body (3 MiB).
pub const MAX_REQUEST_BODY_BYTES: usize = 3 * 1024 * 1024;

/// What a resource path names (upstream's `RequestInfo` for resource requests).
#[derive(Debug, PartialEq)]
pub(super) struct Target<'a> {
    pub(super) namespace: Option<&'a str>,
    pub(super) resource: &'a str,
    pub(super) name: Option<&'a str>,
    pub(super) subresource: Option<&'a str>,
    pub(super) legacy_watch: bool,
}

/// Splits the path after `/api/v1/` or `/apis/<group>/<version>/`.
pub(super) fn parse_target(rest: &str) -> Option<Target<'_>> {
    let mut parts: Vec<&str> = rest.split('/').collect();
    if parts.last() == Some(&"") {
        parts.pop();
    }
    let mut legacy_watch = false;
    if parts.first() == Some(&"watch") {
        legacy_watch = true;
        parts.remove(0);
    }
    if parts.iter().any(|p| p.is_empty()) || parts.is_empty() {
        return None;
    }
    // `namespaces/<ns>/<resource>...`, except the namespace's own subresources.
    let namespaced = parts[0] == "namespaces"
        && parts.len() >= 3
        && !(parts.len() == 3 && ["status", "finalize"].contains(&parts[2]));
    let (namespace, rest) = if namespaced {
        (Some(parts[1]), &parts[2..])
    } else {
        (None, &parts[..])
    };
    if rest.len() > 3 {
        return None;
    }
    Some(Target {
        namespace,
        resource: rest[0],
        name: rest.get(1).copied(),
        subresource: rest.get(2).copied(),
        legacy_watch,
    })
}

/// `/api/v1/...`
pub async fn core(
    State(state): State<AppState>,
    rest: Result<Path<String>, PathRejection>,
    method: Method,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Ok(body) = body else { return too_large() };
    // A path that is not valid UTF-8 once decoded names nothing: upstream's 404.
    let Ok(Path(rest)) = rest else {
        return not_found();
    };
    handle(&state, "", "v1", &rest, method, query, &headers, body).await
}

/// `/apis/<group>/<version>/...`
pub async fn grouped(
    State(state): State<AppState>,
    path: Result<Path<(String, String, String)>, PathRejection>,
    method: Method,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Ok(body) = body else { return too_large() };
    let Ok(Path((group, version, rest))) = path else {
        return not_found();
    };
    handle(
        &state, &group, &version, &rest, method, query, &headers, body,
    )
    .await
}

/// A body over the limit (the only way reading it fails here): upstream's 413.
fn too_large() -> Response {
    error(StatusError::request_entity_too_large(&format!(
        "limit is {MAX_REQUEST_BODY_BYTES}"
    )))
}

fn error(e: StatusError) -> Response {
    status_response(e.0)
}

#[allow(clippy::too_many_arguments)]
async fn handle(
    state: &AppState,
    group: &str,
    version: &str,
    rest: &str,
    method: Method,
    query: Option<String>,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let Some(target) = parse_target(rest) else {
        return not_found();
    };
    let Some(resource) = state
        .registry()
        .find_resource(group, version, target.resource)
    else {
        return not_found();
    };
    // A namespaced resource is reached inside a namespace (or listed across all of
    // them); a cluster-scoped one never is.
    if (target.namespace.is_some() && !resource.namespaced)
        || (target.namespace.is_none() && resource.namespaced && target.name.is_some())
    {
        return not_found();
    }
    if crate::auth::reviews::handles(resource, target.subresource) {
        return review(state, resource, &target, &method, headers, &body).await;
    }
    if target.subresource == Some("scale")
        && resource.subresource("scale").is_some()
        && let Some(name) = target.name
    {
        let params: HashMap<String, String> = query
            .as_deref()
            .map(|q| form_urlencoded_pairs(q).into_iter().collect())
            .unwrap_or_default();
        let dry_run = params.get("dryRun").is_some_and(|d| d == "All");
        return match super::scale::handle(
            state.registry(),
            resource,
            target.namespace,
            name,
            &method,
            headers,
            &params,
            &body,
            dry_run,
        )
        .await
        {
            Ok(scale) => json_response(StatusCode::OK, &scale),
            Err(e) => error(e),
        };
    }
    if let Some(response) = bind(
        state,
        resource,
        &target,
        &method,
        query.as_deref(),
        headers,
        &body,
    )
    .await
    {
        return response;
    }
    if resource.group.is_empty()
        && resource.plural == "pods"
        && target.subresource == Some("eviction")
    {
        return evict(state, &target, &method, query.as_deref(), headers, &body).await;
    }
    let part = match target.subresource {
        None => Part::Main,
        Some("status") if resource.subresource("status").is_some() => Part::Status,
        Some("approval") if resource.subresource("approval").is_some() => Part::Approval,
        Some("finalize") if resource.subresource("finalize").is_some() => Part::Finalize,
        Some(_) => return not_found(),
    };
    let params: HashMap<String, String> = query
        .as_deref()
        .map(|q| form_urlencoded_pairs(q).into_iter().collect())
        .unwrap_or_default();
    let watching =
        target.legacy_watch || params.get("watch").is_some_and(|w| w == "true" || w == "1");
    let verb = match (&method, target.name, watching) {
        (&Method::GET, None, true) => "watch",
        (&Method::GET, None, false) => "list",
        (&Method::GET, Some(_), true) => "watch",
        (&Method::GET, Some(_), false) => "get",
        (&Method::POST, None, _) => "create",
        (&Method::PUT, Some(_), _) => "update",
        (&Method::PATCH, Some(_), _) => "patch",
        (&Method::DELETE, Some(_), _) => "delete",
        (&Method::DELETE, None, _) => "deletecollection",
        _ => "",
    };
    let allowed = match part {
        Part::Main => resource.has_verb(verb),
        Part::Status => resource
            .subresource("status")
            .is_some_and(|s| s.has_verb(verb)),
        Part::Approval => resource
            .subresource("approval")
            .is_some_and(|s| s.has_verb(verb)),
        Part::Finalize => resource
            .subresource("finalize")
            .is_some_and(|s| s.has_verb(verb)),
    };
    if verb.is_empty() || !allowed {
        let action = if verb.is_empty() {
            method.as_str().to_ascii_lowercase()
        } else {
            verb.to_owned()
        };
        return error(StatusError::method_not_supported(
            &resource.group_resource(),
            &action,
        ));
    }
    if matches!(verb, "create" | "update") && body_format(headers).is_none() {
        return error(StatusError::unsupported_media_type(&[
            "application/json",
            "application/yaml",
            protobuf::MEDIA_TYPE,
        ]));
    }
    // The answer's form and encoding are settled before anything changes: a request
    // whose Accept the server cannot meet gets its 406 and stores nothing.
    let request_kind = match verb {
        "list" | "deletecollection" => negotiation::Request::List,
        "watch" => negotiation::Request::Watch,
        _ => negotiation::Request::Object,
    };
    let output = match negotiation::negotiate(headers, request_kind) {
        Ok(output) => output,
        Err(e) => return error(e),
    };
    // YAML bodies are read as the JSON they stand for, field validation included.
    let body = match body_format(headers) {
        Some(BodyFormat::Yaml) if matches!(verb, "create" | "update") => {
            match yaml_to_json(&body) {
                Ok(json) => json,
                Err(e) => return error(e),
            }
        }
        _ => body,
    };
    // the kind a protobuf envelope without a type is decoded as (upstream's defaultGVK)
    let defaults = protobuf::Defaults {
        group: resource.group,
        version: resource.version,
        kind: resource.kind,
    };
    // fieldValidation=Strict refuses unknown fields, Warn (the default) reports them
    let applying = verb == "patch"
        && headers
            .get(header::CONTENT_TYPE)
            .and_then(|c| c.to_str().ok())
            .is_some_and(|c| c.starts_with(apimachinery::patch::APPLY_PATCH_MEDIA_TYPE));
    let checked = if applying {
        crate::registry::field_validation::check_apply(&params, &body)
    } else {
        crate::registry::field_validation::check(
            resource,
            state.registry().custom(),
            verb,
            &params,
            &body,
        )
    };
    let warnings = match checked {
        Ok(warnings) => warnings,
        Err(e) => return error(e),
    };
    let registry = state.registry();
    // a custom resource prints its CRD version's columns
    let served = resource
        .custom
        .then(|| registry.custom().of(resource))
        .flatten();
    let custom = served.as_deref();
    let dry_run = params.get("dryRun").is_some_and(|d| d == "All");
    let result = match verb {
        "get" => registry
            .get(resource, target.namespace, target.name.unwrap_or(""))
            .await
            .map(|o| (StatusCode::OK, o)),
        "list" => {
            if let Err(e) = validate_list_options(&params, false) {
                return error(e);
            }
            let list_params = list_params(&params);
            // (custom resources are shown in the version asked for, so always decoded)
            if output == Output::JSON && !resource.custom {
                // From the watch cache, straight to bytes, when nothing needs decoding.
                match registry
                    .list_json_bytes(resource, target.namespace, &list_params)
                    .await
                {
                    Ok(Some(bytes)) => return raw_json_response(bytes),
                    Ok(None) => {}
                    Err(e) => return error(e),
                }
            }
            match registry
                .list(resource, target.namespace, &list_params)
                .await
            {
                Ok(list) => return respond_list(registry, resource, custom, list, &params, output),
                Err(e) => Err(e),
            }
        }
        "watch" => {
            return watch(registry, resource, served.clone(), &target, &params, output).await;
        }
        "create" => match decode_request(headers, &body, defaults).and_then(|object| {
            ownership::writer(resource, verb, "", &params, headers).map(|w| (object, w))
        }) {
            Ok((object, writer)) => registry
                .create_as(resource, target.namespace, object, dry_run, Some(&writer))
                .await
                .map(|o| (StatusCode::CREATED, o)),
            Err(e) => Err(e),
        },
        "update" => match decode_request(headers, &body, defaults).and_then(|object| {
            let subresource = match part {
                Part::Main => "",
                Part::Status => "status",
                Part::Approval => "approval",
                Part::Finalize => "finalize",
            };
            ownership::writer(resource, verb, subresource, &params, headers).map(|w| (object, w))
        }) {
            Ok((object, writer)) => registry
                .update_as(
                    resource,
                    target.namespace,
                    target.name.unwrap_or(""),
                    object,
                    part,
                    dry_run,
                    Some(&writer),
                )
                .await
                .map(|o| (StatusCode::OK, o)),
            Err(e) => Err(e),
        },
        "patch" => {
            super::patch::patch(
                registry,
                resource,
                target.namespace,
                target.name.unwrap_or(""),
                part,
                headers,
                &params,
                &body,
                dry_run,
            )
            .await
        }
        "delete" => {
            let options = match delete_options(headers, &params, &body) {
                Ok(options) => options,
                Err(e) => return error(e),
            };
            registry
                .delete(
                    resource,
                    target.namespace,
                    target.name.unwrap_or(""),
                    &options,
                    dry_run,
                )
                .await
                .map(|o| (StatusCode::OK, o))
        }
        "deletecollection" => {
            let options = match delete_options(headers, &params, &body) {
                Ok(options) => options,
                Err(e) => return error(e),
            };
            match registry
                .delete_collection(
                    resource,
                    target.namespace,
                    &list_params(&params),
                    &options,
                    dry_run,
                )
                .await
            {
                Ok(list) => return respond_list(registry, resource, custom, list, &params, output),
                Err(e) => Err(e),
            }
        }
        _ => Err(StatusError::method_not_supported(
            &resource.group_resource(),
            verb,
        )),
    };
    let mut response = match result {
        Ok((code, object)) => {
            let written = matches!(verb, "create" | "update" | "patch");
            respond_object(
                registry, resource, custom, code, object, written, &params, output,
            )
        }
        Err(e) => error(e),
    };
    crate::registry::field_validation::add_warnings(response.headers_mut(), &warnings);
    response
}

/// A create of a kind that is answered, not stored (TokenReview, the access reviews,
/// TokenRequest).
async fn review(
    state: &AppState,
    resource: &'static ResourceInfo,
    target: &Target<'_>,
    method: &Method,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    if method != Method::POST {
        let verb = method.as_str().to_ascii_lowercase();
        return error(StatusError::method_not_supported(
            &resource.group_resource(),
            &verb,
        ));
    }
    let body = match body_format(headers) {
        Some(BodyFormat::Yaml) => match yaml_to_json(body) {
            Ok(json) => json,
            Err(e) => return error(e),
        },
        Some(_) => body.clone(),
        None => {
            return error(StatusError::unsupported_media_type(&[
                "application/json",
                "application/yaml",
                protobuf::MEDIA_TYPE,
            ]));
        }
    };
    let (group, version, kind) = match target.subresource {
        Some("token") => ("authentication.k8s.io", "v1", "TokenRequest"),
        _ => (resource.group, resource.version, resource.kind),
    };
    let defaults = protobuf::Defaults {
        group,
        version,
        kind,
    };
    let object = match decode_request(headers, &body, defaults) {
        Ok(object) => object,
        Err(e) => return error(e),
    };
    match crate::auth::reviews::create(
        state.security(),
        state.registry(),
        resource,
        target.namespace,
        target.name,
        object,
    )
    .await
    {
        Ok(answer) => json_response(StatusCode::CREATED, &answer),
        Err(e) => error(e),
    }
}

/// Query pairs, percent-decoded.
pub(crate) fn form_urlencoded_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Upstream's boolean query parameter spellings (`strconv.ParseBool`).
fn query_flag(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Upstream's `ValidateListOptions` for a list (`watch` false) or a watch: how
/// `resourceVersionMatch`, `sendInitialEvents` and `continue` may combine; a 422 for
/// `ListOptions.meta.k8s.io` otherwise.
fn validate_list_options(params: &HashMap<String, String>, watch: bool) -> Result<(), StatusError> {
    let get = |k: &str| params.get(k).map_or("", String::as_str);
    let rv = get("resourceVersion");
    let matched = get("resourceVersionMatch");
    let send_initial = params.get("sendInitialEvents").and_then(|v| query_flag(v));
    let field = "resourceVersionMatch";
    let mut errors = Vec::new();
    if watch {
        if send_initial.is_some() && matched != "NotOlderThan" {
            errors.push(FieldError::forbidden(
                field,
                "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            ));
        }
        if !matched.is_empty() {
            if send_initial.is_none() {
                errors.push(FieldError::forbidden(
                    field,
                    "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
                ));
            }
            if matched != "NotOlderThan" {
                errors.push(FieldError::not_supported(field, matched, &["NotOlderThan"]));
            }
            if !get("continue").is_empty() {
                errors.push(FieldError::forbidden(
                    field,
                    "resourceVersionMatch is forbidden when continue is provided",
                ));
            }
        }
    } else {
        if !matched.is_empty() {
            if rv.is_empty() {
                errors.push(FieldError::forbidden(
                    field,
                    "resourceVersionMatch is forbidden unless resourceVersion is provided",
                ));
            }
            if !get("continue").is_empty() {
                errors.push(FieldError::forbidden(
                    field,
                    "resourceVersionMatch is forbidden when continue is provided",
                ));
            }
            if !["Exact", "NotOlderThan"].contains(&matched) {
                errors.push(FieldError::not_supported(
                    field,
                    matched,
                    &["Exact", "NotOlderThan", ""],
                ));
            }
            if matched == "Exact" && rv == "0" {
                errors.push(FieldError::forbidden(
                    field,
                    "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
                ));
            }
        }
        if params.contains_key("sendInitialEvents") {
            errors.push(FieldError::forbidden(
                "sendInitialEvents",
                "sendInitialEvents is forbidden for list",
            ));
        }
    }
    if errors.is_empty() {
        return Ok(());
    }
    Err(StatusError::invalid(
        &GroupKind::new("meta.k8s.io", "ListOptions"),
        "",
        &errors,
    ))
}

fn list_params(params: &HashMap<String, String>) -> ListParams {
    ListParams {
        label_selector: params.get("labelSelector").cloned(),
        field_selector: params.get("fieldSelector").cloned(),
        limit: params.get("limit").and_then(|l| l.parse().ok()),
        continue_token: params.get("continue").cloned(),
        resource_version: params.get("resourceVersion").cloned(),
        resource_version_match: params.get("resourceVersionMatch").cloned(),
    }
}

/// Decodes a JSON request body with upstream's limit and messages.
pub fn decode_body(body: &[u8]) -> Result<Value, StatusError> {
    if body.len() > MAX_REQUEST_BODY_BYTES {
        return Err(StatusError::request_entity_too_large(&format!(
            "limit is {MAX_REQUEST_BODY_BYTES}"
        )));
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        StatusError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
    })?;
    if !value.is_object() {
        return Err(StatusError::bad_request(
            "couldn't get version/kind; json parse error: json: cannot unmarshal into Go value of type struct",
        ));
    }
    Ok(value)
}

/// `POST .../pods/{name}/binding` and the legacy `POST .../bindings` (the pod named by
/// the Binding), as upstream's BindingREST; `None` for every other request.
async fn bind(
    state: &AppState,
    resource: &ResourceInfo,
    target: &Target<'_>,
    method: &Method,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Option<Response> {
    let subresource = resource.plural == "pods" && target.subresource == Some("binding");
    let legacy = resource.plural == "bindings" && target.name.is_none();
    if resource.group != "" || !(subresource || legacy) {
        return None;
    }
    let namespace = target.namespace?;
    if method != Method::POST {
        let action = method.as_str().to_ascii_lowercase();
        return Some(error(StatusError::method_not_supported(
            &resource.group_resource(),
            &action,
        )));
    }
    if body_format(headers).is_none() {
        return Some(error(StatusError::unsupported_media_type(&[
            "application/json",
            "application/yaml",
            protobuf::MEDIA_TYPE,
        ])));
    }
    let defaults = protobuf::Defaults {
        group: "",
        version: "v1",
        kind: "Binding",
    };
    let binding = match decode_request(headers, body, defaults) {
        Ok(binding) => binding,
        Err(e) => return Some(error(e)),
    };
    let name = match target.name {
        Some(name) => name.to_owned(),
        None => registry::meta::name(&binding).to_owned(),
    };
    let dry_run = query.is_some_and(|q| {
        form_urlencoded_pairs(q)
            .iter()
            .any(|(k, v)| k == "dryRun" && v == "All")
    });
    Some(
        match state
            .registry()
            .bind_pod(namespace, &name, &binding, dry_run)
            .await
        {
            Ok(status) => json_response(StatusCode::CREATED, &status),
            Err(e) => error(e),
        },
    )
}

/// `POST .../pods/{name}/eviction`, as upstream's EvictionREST: 201 with a Success
/// Status once the pod's deletion has begun, 429 when its disruption budget says no.
async fn evict(
    state: &AppState,
    target: &Target<'_>,
    method: &Method,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let evictions = GroupResource::new("policy", "evictions");
    let (Some(namespace), Some(name)) = (target.namespace, target.name) else {
        return not_found();
    };
    if method != Method::POST {
        let action = method.as_str().to_ascii_lowercase();
        return error(StatusError::method_not_supported(&evictions, &action));
    }
    if body_format(headers).is_none() {
        return error(StatusError::unsupported_media_type(&[
            "application/json",
            "application/yaml",
            protobuf::MEDIA_TYPE,
        ]));
    }
    let defaults = protobuf::Defaults {
        group: "policy",
        version: "v1",
        kind: "Eviction",
    };
    let eviction = match decode_request(headers, body, defaults) {
        Ok(eviction) => eviction,
        Err(e) => return error(e),
    };
    let dry_run = query.is_some_and(|q| {
        form_urlencoded_pairs(q)
            .iter()
            .any(|(k, v)| k == "dryRun" && v == "All")
    });
    match state
        .registry()
        .evict_pod(namespace, name, &eviction, dry_run)
        .await
    {
        Ok(status) => json_response(StatusCode::CREATED, &status),
        Err(e) => error(e),
    }
}

/// Decodes a request body in its `Content-Type`: Kubernetes protobuf (what client-go's
/// typed clients send) becomes the JSON object a JSON client would have sent, decoded as
/// `defaults` where its envelope names no kind; anything else is read as JSON.
pub fn decode_request(
    headers: &HeaderMap,
    body: &[u8],
    defaults: protobuf::Defaults<'_>,
) -> Result<Value, StatusError> {
    match body_format(headers) {
        Some(BodyFormat::Protobuf) => {}
        Some(BodyFormat::Yaml) => return decode_body(&yaml_to_json(body)?),
        _ => return decode_body(body),
    }
    if body.len() > MAX_REQUEST_BODY_BYTES {
        return Err(StatusError::request_entity_too_large(&format!(
            "limit is {MAX_REQUEST_BODY_BYTES}"
        )));
    }
    protobuf::decode(body, defaults).map_err(|e| e.to_status_error(defaults.kind))
}

/// The request's DeleteOptions: its body when it has one, else its query parameters
/// (as upstream, never both).
fn delete_options(
    headers: &HeaderMap,
    params: &HashMap<String, String>,
    body: &[u8],
) -> Result<DeleteOptions, StatusError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        let mut options = serde_json::Map::new();
        if let Some(grace) = params.get("gracePeriodSeconds") {
            let grace: i64 = grace.parse().map_err(|_| {
                StatusError::bad_request(format!(
                    "strconv.ParseInt: parsing {}: invalid syntax",
                    apimachinery::errors::go_quote(grace)
                ))
            })?;
            options.insert("gracePeriodSeconds".into(), grace.into());
        }
        if let Some(policy) = params.get("propagationPolicy") {
            options.insert("propagationPolicy".into(), policy.as_str().into());
        }
        if let Some(orphan) = params.get("orphanDependents") {
            options.insert("orphanDependents".into(), (orphan == "true").into());
        }
        return DeleteOptions::from_json(&Value::Object(options));
    }
    // client-go's typed clients send DeleteOptions in protobuf too, typed with the
    // resource's group version; the kind itself is meta.k8s.io's
    let defaults = protobuf::Defaults {
        group: "meta.k8s.io",
        version: "v1",
        kind: "DeleteOptions",
    };
    DeleteOptions::from_json(&decode_request(headers, body, defaults)?)
}

/// The media types a create or update body may be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyFormat {
    Json,
    Yaml,
    Protobuf,
}

/// The request body's format, `None` for one the server does not decode (no
/// Content-Type is taken as JSON, as upstream).
fn body_format(headers: &HeaderMap) -> Option<BodyFormat> {
    let Some(content_type) = headers.get(header::CONTENT_TYPE) else {
        return Some(BodyFormat::Json);
    };
    let content_type = content_type.to_str().ok()?;
    if protobuf::is_media_type(content_type) {
        return Some(BodyFormat::Protobuf);
    }
    match content_type.split(';').next().unwrap_or("").trim() {
        "" | "application/json" | "*/*" => Some(BodyFormat::Json),
        "application/yaml" => Some(BodyFormat::Yaml),
        _ => None,
    }
}

/// A YAML request body as the JSON it stands for, as upstream's YAML serializer
/// (`sigs.k8s.io/yaml`) converts it before decoding; size checked first.
fn yaml_to_json(body: &[u8]) -> Result<Bytes, StatusError> {
    if body.len() > MAX_REQUEST_BODY_BYTES {
        return Err(StatusError::request_entity_too_large(&format!(
            "limit is {MAX_REQUEST_BODY_BYTES}"
        )));
    }
    let value: Value = serde_yaml_ng::from_slice(body)
        .map_err(|e| StatusError::bad_request(format!("error converting YAML to JSON: {e}")))?;
    serde_json::to_vec(&value)
        .map(Bytes::from)
        .map_err(StatusError::internal_error)
}

fn raw_json_response(bytes: Bytes) -> Response {
    let mut response = (StatusCode::OK, bytes).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// `value` encoded as negotiated, with its Content-Type.
fn encoded_response(code: StatusCode, value: &Value, output: Output, list: bool) -> Response {
    match negotiation::encode(value, output.encoding) {
        Ok(bytes) => {
            let mut response = (code, bytes).into_response();
            if let Ok(content_type) = HeaderValue::from_str(&output.content_type(list)) {
                response
                    .headers_mut()
                    .insert(header::CONTENT_TYPE, content_type);
            }
            response
        }
        Err(e) => error(e),
    }
}

/// A stored custom resource as the version the request names shows it: converted
/// (by the CRD's webhook, if it has one), then pruned and defaulted by that version's
/// schema, with its apiVersion and kind. Built-in objects are left as they are.
fn in_requested_version(
    registry: &Registry,
    custom: Option<&Served>,
    resource: &ResourceInfo,
    objects: &mut [&mut Value],
) -> Result<(), StatusError> {
    in_requested_version_of(registry, custom, resource, objects, false)
}

/// As [`in_requested_version`]; `written` objects were just pruned and defaulted by the
/// write that returns them, so unless a conversion touched them they are shown as is.
fn in_requested_version_of(
    registry: &Registry,
    custom: Option<&Served>,
    resource: &ResourceInfo,
    objects: &mut [&mut Value],
    written: bool,
) -> Result<(), StatusError> {
    let Some(custom) = custom else {
        return Ok(());
    };
    let requested = resource.api_version();
    let already: Vec<bool> = objects
        .iter()
        .map(|o| written && o.get("apiVersion").and_then(Value::as_str) == Some(requested.as_str()))
        .collect();
    registry.convert_custom(resource, objects, resource.version)?;
    for (object, already) in objects.iter_mut().zip(already) {
        // what the schema prunes and defaults now applies to objects stored before it
        if !already {
            custom.prepare(object);
        }
        if let Some(map) = object.as_object_mut() {
            map.insert("apiVersion".into(), Value::String(resource.api_version()));
            map.insert("kind".into(), Value::String(resource.kind.to_owned()));
        }
    }
    Ok(())
}

/// A Table of built-in objects, or of custom resources with their CRD version's
/// printer `columns`.
fn any_table(
    resource: &ResourceInfo,
    custom: Option<&Served>,
    objects: &[Value],
    metadata: Value,
    include: &str,
    headers: bool,
) -> Value {
    match custom {
        Some(custom) => table::custom::table(
            resource,
            &custom.printer_columns,
            objects,
            metadata,
            include,
            headers,
        ),
        None => table::table(resource, objects, metadata, include, headers),
    }
}

/// A Table of `objects`, in the meta.k8s.io version the client asked for.
fn table_of(
    resource: &ResourceInfo,
    custom: Option<&Served>,
    objects: &[Value],
    metadata: Value,
    params: &HashMap<String, String>,
    output: Output,
) -> Value {
    let include = params
        .get("includeObject")
        .map_or("Metadata", String::as_str);
    let mut table = any_table(resource, custom, objects, metadata, include, true);
    table["apiVersion"] = Value::String(output.meta_api_version());
    table
}

#[allow(clippy::too_many_arguments)]
fn respond_object(
    registry: &Registry,
    resource: &ResourceInfo,
    custom: Option<&Served>,
    code: StatusCode,
    object: Value,
    written: bool,
    params: &HashMap<String, String>,
    output: Output,
) -> Response {
    let mut object = object;
    if let Err(e) = in_requested_version_of(registry, custom, resource, &mut [&mut object], written)
    {
        return error(e);
    }
    let shaped = match output.form {
        Form::Object => object,
        Form::Metadata => negotiation::partial_metadata(&object, &output.meta_api_version()),
        Form::Table => {
            let metadata = json!({"resourceVersion": object.pointer("/metadata/resourceVersion").cloned().unwrap_or(json!(""))});
            table_of(
                resource,
                custom,
                std::slice::from_ref(&object),
                metadata,
                params,
                output,
            )
        }
    };
    encoded_response(code, &shaped, output, false)
}

fn respond_list(
    registry: &Registry,
    resource: &ResourceInfo,
    custom: Option<&Served>,
    mut list: Value,
    params: &HashMap<String, String>,
    output: Output,
) -> Response {
    if custom.is_some()
        && let Some(items) = list["items"].as_array_mut()
    {
        let mut items: Vec<&mut Value> = items.iter_mut().collect();
        if let Err(e) = in_requested_version(registry, custom, resource, &mut items) {
            return error(e);
        }
    }
    let shaped = match output.form {
        Form::Object => list,
        Form::Metadata => negotiation::partial_metadata_list(&list, &output.meta_api_version()),
        Form::Table => {
            let items = list["items"].take();
            let items = items.as_array().map(Vec::as_slice).unwrap_or(&[]);
            table_of(
                resource,
                custom,
                items,
                list["metadata"].take(),
                params,
                output,
            )
        }
    };
    encoded_response(StatusCode::OK, &shaped, output, true)
}

/// Streams watch events as JSON lines, as upstream's `WatchServer`.
async fn watch(
    registry: &Registry,
    resource: &'static ResourceInfo,
    served: Option<Arc<Served>>,
    target: &Target<'_>,
    params: &HashMap<String, String>,
    output: Output,
) -> Response {
    let mut list_params = list_params(params);
    if let Some(name) = target.name {
        // Watching one object is a watch with a metadata.name field selector.
        let by_name = format!("metadata.name={name}");
        list_params.field_selector =
            Some(match list_params.field_selector.filter(|f| !f.is_empty()) {
                Some(f) => format!("{f},{by_name}"),
                None => by_name,
            });
    }
    let selectors = match registry.selectors(resource, &list_params) {
        Ok(s) => s,
        Err(e) => return error(e),
    };
    if let Err(e) = validate_list_options(params, true) {
        return error(e);
    }
    let bookmarks = params
        .get("allowWatchBookmarks")
        .and_then(|b| query_flag(b))
        .unwrap_or(false);
    let rv = list_params
        .resource_version
        .as_deref()
        .filter(|rv| !rv.is_empty());
    let stream = match params.get("sendInitialEvents").and_then(|v| query_flag(v)) {
        // The watch-list protocol: the state, a bookmark ending it, then changes.
        Some(true) => {
            registry
                .watch_with_initial_events(resource, target.namespace, rv, bookmarks)
                .await
        }
        // Changes only, from the given revision or else from now.
        Some(false) if rv.is_none_or(|rv| rv == "0") => match registry.current_revision().await {
            Ok(now) => {
                registry
                    .watch(
                        resource,
                        target.namespace,
                        Some(&now.to_string()),
                        bookmarks,
                    )
                    .await
            }
            Err(e) => Err(e),
        },
        _ => {
            registry
                .watch(resource, target.namespace, rv, bookmarks)
                .await
        }
    };
    let stream = match stream {
        Ok(stream) => stream,
        Err(e) => return error(e),
    };
    let form = output.form;
    let meta_api_version = output.meta_api_version();
    let include = params
        .get("includeObject")
        .cloned()
        .unwrap_or_else(|| "Metadata".into());
    let timeout = params
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(1800);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(timeout);
    let mut first = true;
    let registry = registry.clone();
    let lines = stream
        .take_until(tokio::time::sleep_until(deadline))
        .filter_map(move |event| {
            let line = event_line(
                &registry,
                resource,
                served.as_deref(),
                &selectors,
                event,
                form,
                &meta_api_version,
                &include,
                first,
            );
            if line.is_some() {
                first = false;
            }
            futures::future::ready(line)
        })
        .map(Ok::<Bytes, Infallible>);
    let mut response = Response::new(Body::from_stream(lines));
    if let Ok(content_type) = HeaderValue::from_str(&output.content_type(false)) {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type);
    }
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    response.into_response()
}

/// One watch event as a JSON line, or `None` when the selectors filter it out. A
/// modification that moves an object in or out of the selection is sent as ADDED or
/// DELETED, as upstream's cacher does. What every watcher would compute alike (the
/// decoded objects, the plain JSON line) is computed once per event and shared.
#[allow(clippy::too_many_arguments)]
fn event_line(
    registry: &Registry,
    resource: &ResourceInfo,
    custom: Option<&Served>,
    selectors: &Selectors,
    event: Result<Arc<CachedEvent>, crate::storage::StorageError>,
    form: Form,
    meta_api_version: &str,
    include: &str,
    headers: bool,
) -> Option<Bytes> {
    let event = match event {
        Ok(event) => event,
        Err(e) => {
            let status = registry::storage_error(e, &resource.group_resource(), "");
            return line("ERROR", &serde_json::to_value(status.0).ok()?);
        }
    };
    let natural_kind = match &event.event {
        WatchEvent::Added(_) => "ADDED",
        WatchEvent::Modified { .. } => "MODIFIED",
        WatchEvent::Deleted(_) => "DELETED",
        WatchEvent::Bookmark(revision) => {
            let mut object = json!({"kind": resource.kind, "apiVersion": resource.api_version(), "metadata": {"resourceVersion": revision.to_string()}});
            if event.initial_events_end {
                object["metadata"]["annotations"] = json!({"k8s.io/initial-events-end": "true"});
            }
            return line("BOOKMARK", &object);
        }
    };
    if form == Form::Object && selectors.is_everything() && !resource.custom {
        return event.memo("json-line", |e| {
            plain_json_line(natural_kind, e.key_value()?)
        });
    }
    let object: Arc<Value> = event.memo("object", |e| {
        Registry::decode_object(e.key_value()?).ok().map(Arc::new)
    })?;
    let matches_now = selectors.matches(resource, &object);
    // as upstream's cacheWatcher: a watcher sees an object's events while the object
    // matches its selectors, ADDED when it comes to match, DELETED with the object as
    // it last matched when it stops; a deletion only when the object matched
    let sent = match &event.event {
        WatchEvent::Modified { prev_value, .. } => {
            let previous = event.memo("previous", |_| {
                prev_value
                    .as_ref()
                    .and_then(|p| serde_json::from_slice::<Value>(p).ok())
                    .map(Arc::new)
            });
            let matched = previous.as_ref().map(|p| selectors.matches(resource, p));
            match (matched, matches_now) {
                (Some(false), true) => Sent::Arrived,
                (Some(true), false) => Sent::Departed(previous),
                (_, true) => Sent::AsIs,
                _ => return None,
            }
        }
        _ if matches_now => Sent::AsIs,
        _ => return None,
    };
    let kind = match sent {
        Sent::AsIs => natural_kind,
        Sent::Arrived => "ADDED",
        Sent::Departed(_) => "DELETED",
    };
    if form == Form::Object && !resource.custom {
        // the stored bytes, not a re-encoding of the decoded object, shared by every
        // watcher sending the event alike (a watcher without selectors included)
        return match sent {
            Sent::AsIs => event.memo("json-line", |e| plain_json_line(kind, e.key_value()?)),
            Sent::Arrived => event.memo("json-line-as-added", |e| {
                plain_json_line(kind, e.key_value()?)
            }),
            Sent::Departed(_) => event.memo("json-line-as-deleted", |e| {
                let WatchEvent::Modified { kv, prev_value } = e else {
                    return None;
                };
                let before = storage::KeyValue {
                    value: prev_value.clone()?,
                    ..kv.clone()
                };
                plain_json_line(kind, &before)
            }),
        };
    }
    let left = match sent {
        Sent::Departed(previous) => previous,
        Sent::AsIs | Sent::Arrived => None,
    };
    let mut object = match left {
        // the object before the event, at the event's revision
        Some(previous) => {
            let mut before = (*previous).clone();
            if let Some(metadata) = before.get_mut("metadata").and_then(Value::as_object_mut) {
                let revision = event.event.revision().to_string();
                metadata.insert("resourceVersion".into(), Value::String(revision));
            }
            Arc::new(before)
        }
        None => object,
    };
    if custom.is_some() {
        // the decoded object is shared by every watcher: each version gets its copy
        let mut copy = (*object).clone();
        if let Err(e) = in_requested_version(registry, custom, resource, &mut [&mut copy]) {
            return line("ERROR", &serde_json::to_value(e.0).ok()?);
        }
        object = Arc::new(copy);
    }
    if form == Form::Metadata {
        return line(
            kind,
            &negotiation::partial_metadata(&object, meta_api_version),
        );
    }
    if form == Form::Table {
        let metadata = json!({"resourceVersion": object.pointer("/metadata/resourceVersion").cloned().unwrap_or(json!(""))});
        let mut table = any_table(
            resource,
            custom,
            std::slice::from_ref(&*object),
            metadata,
            include,
            headers,
        );
        table["apiVersion"] = Value::String(meta_api_version.to_owned());
        return line(kind, &table);
    }
    line(kind, &object)
}

/// How a watcher with selectors is sent an event it is shown.
enum Sent {
    /// as it happened
    AsIs,
    /// a modification that brought the object into the selection: ADDED
    Arrived,
    /// a modification that took it out: DELETED, with the object as it last matched
    Departed(Option<Arc<Value>>),
}

/// `{"type":KIND,"object":OBJECT}` and a newline, the object copied from its stored
/// bytes with the resourceVersion stamped, without decoding it.
fn plain_json_line(kind: &str, kv: &storage::KeyValue) -> Option<Bytes> {
    let mut bytes = Vec::with_capacity(kv.value.len() + 64);
    bytes.extend_from_slice(format!("{{\"type\":\"{kind}\",\"object\":").as_bytes());
    registry::write_versioned(kv, true, &mut bytes).ok()?;
    bytes.extend_from_slice(b"}\n");
    Some(Bytes::from(bytes))
}

/// `{"type":KIND,"object":OBJECT}` and a newline, the object encoded where it lies
/// (a `json!` wrapper would first copy it whole).
fn line(kind: &str, object: &Value) -> Option<Bytes> {
    #[derive(serde::Serialize)]
    struct Line<'a> {
        #[serde(rename = "type")]
        kind: &'a str,
        object: &'a Value,
    }
    let mut bytes = serde_json::to_vec(&Line { kind, object }).ok()?;
    bytes.push(b'\n');
    Some(Bytes::from(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_like_upstream_request_info() {
        let t = parse_target("namespaces/default/pods/web/status").unwrap();
        assert_eq!(
            (t.namespace, t.resource, t.name, t.subresource),
            (Some("default"), "pods", Some("web"), Some("status"))
        );
        let t = parse_target("namespaces/default").unwrap();
        assert_eq!(
            (t.namespace, t.resource, t.name),
            (None, "namespaces", Some("default"))
        );
        let t = parse_target("namespaces/kube-system/finalize").unwrap();
        assert_eq!(
            (t.namespace, t.resource, t.name, t.subresource),
            (None, "namespaces", Some("kube-system"), Some("finalize"))
        );
        let t = parse_target("nodes/n1/status").unwrap();
        assert_eq!(
            (t.resource, t.name, t.subresource),
            ("nodes", Some("n1"), Some("status"))
        );
        let t = parse_target("watch/namespaces/d/configmaps").unwrap();
        assert!(t.legacy_watch);
        assert_eq!((t.namespace, t.resource), (Some("d"), "configmaps"));
        assert!(parse_target("namespaces/d/pods/a/b/c").is_none());
        assert!(parse_target("pods//x").is_none());
    }

    #[test]
    fn query_values_are_percent_decoded() {
        let pairs = form_urlencoded_pairs("labelSelector=app%3Dweb%2Ctier+in+%28a%29&limit=500");
        assert_eq!(
            pairs[0],
            ("labelSelector".into(), "app=web,tier in (a)".into())
        );
        assert_eq!(pairs[1], ("limit".into(), "500".into()));
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }

    #[test]
    fn bodies_are_checked() {
        assert!(
            decode_body(b"{")
                .unwrap_err()
                .0
                .message
                .starts_with("couldn't get version/kind; json parse error")
        );
        assert_eq!(
            decode_body(&vec![b' '; MAX_REQUEST_BODY_BYTES + 1])
                .unwrap_err()
                .http_status(),
            413
        );
        assert!(decode_body(b"[1]").is_err());
    }
}
