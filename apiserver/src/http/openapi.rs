//! The OpenAPI documents, as upstream's kube-openapi handlers serve them: `/openapi/v2`
//! (one Swagger 2.0 document for every group version) and `/openapi/v3` (a root naming
//! one OpenAPI 3.0 document per group version, each at `/openapi/v3/<api/v1|apis/g/v>`).
//!
//! kubectl needs them: `create`/`apply`/`replace` ask the v3 document whether a kind's
//! PATCH operation takes `fieldValidation` before leaving validation to the server
//! (cli-runtime's `QueryParamVerifierV3`), and `explain` renders the schemas. Schemas
//! come from k8s-openapi (generated from upstream's own OpenAPI, descriptions included),
//! paths from the resource table. Documents are built once, on first use: they are
//! several MiB and never change while the server runs.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex, OnceLock};

use apimachinery::resources::{self, ResourceInfo, Subresource};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_openapi::schemars::generate::{SchemaGenerator, SchemaSettings};
use serde_json::{Map, Value, json};

use super::{AppState, VersionInfo, not_found};
use crate::crd::Served;
use crate::typed;

/// The v2 document's media types, as kube-openapi's handler offers them: JSON, and the
/// gnostic protobuf under its deprecated and current names.
const V2_JSON: &str = "application/json";
const V2_PROTOBUF_DEPRECATED: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
const V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";
/// kube-openapi's v3 media types; protobuf is not served, so clients asking for it
/// alone get 406 as upstream answers any type it cannot produce.
const V3_JSON: &str = "application/json";

/// One serialized document and its entity tag.
struct Document {
    body: Bytes,
    etag: String,
}

impl Document {
    fn new(value: &Value) -> Self {
        // Serializing a `Value` cannot fail (its map keys are strings).
        Self::from_bytes(serde_json::to_vec(value).unwrap_or_default())
    }

    fn from_bytes(body: Vec<u8>) -> Self {
        let body = Bytes::from(body);
        let etag = etag(&body);
        Document { body, etag }
    }
}

/// The v3 documents: the root and one per group version, keyed by `api/v1` or
/// `apis/<group>/<version>`.
struct V3 {
    root: Document,
    group_versions: BTreeMap<String, Document>,
}

/// The v2 document as JSON and as gnostic protobuf.
struct V2 {
    json: Document,
    protobuf: Document,
}

static V2_DOCUMENTS: OnceLock<V2> = OnceLock::new();
static V3_DOCUMENTS: OnceLock<V3> = OnceLock::new();

fn v2_documents() -> &'static V2 {
    V2_DOCUMENTS.get_or_init(|| {
        let document = build(Flavor::V2, None);
        V2 {
            json: Document::new(&document),
            protobuf: Document::from_bytes(super::openapi_protobuf::encode(&document)),
        }
    })
}

/// The v2 media type to answer with: the first of the client's Accept clauses (in
/// order) that names one the server offers; `*` ranges get JSON.
fn v2_media_type(headers: &HeaderMap) -> Option<&'static str> {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Some(V2_JSON);
    };
    if accept.trim().is_empty() {
        return Some(V2_JSON);
    }
    accept.split(',').find_map(|clause| {
        let mut parts = clause.split(';');
        let range = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let refused = parts.any(|p| {
            p.trim()
                .strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        if refused {
            return None;
        }
        match range.as_str() {
            "application/json" | "application/*" | "*/*" => Some(V2_JSON),
            // Both names are answered with the current one, as kube-openapi does.
            V2_PROTOBUF_DEPRECATED | V2_PROTOBUF => Some(V2_PROTOBUF),
            _ => None,
        }
    })
}

fn v3_documents() -> &'static V3 {
    V3_DOCUMENTS.get_or_init(|| {
        let group_versions: BTreeMap<String, Document> = resources::group_versions()
            .map(|(group, version)| {
                (
                    gv_path(group, version),
                    Document::new(&build(Flavor::V3, Some((group, version)))),
                )
            })
            .collect();
        let paths: Map<String, Value> = group_versions
            .iter()
            .map(|(path, doc)| {
                let url = format!("/openapi/v3/{path}?hash={}", doc.etag);
                (path.clone(), json!({ "serverRelativeURL": url }))
            })
            .collect();
        V3 {
            root: Document::new(&json!({ "paths": paths })),
            group_versions,
        }
    })
}

/// The documents that include the custom resources CRDs serve, rebuilt when those
/// change (their definitions' fingerprint differs).
struct CustomDocuments {
    fingerprint: u64,
    /// The v2 document with the custom resources in it.
    v2: Arc<V2>,
    /// The v3 root and one document per custom group version.
    v3: Arc<V3>,
}

static CUSTOM_DOCUMENTS: Mutex<Option<Arc<CustomDocuments>>> = Mutex::new(None);

/// What the documents of `served` depend on, hashed.
fn fingerprint(served: &[Arc<Served>]) -> u64 {
    let mut hasher = DefaultHasher::new();
    for s in served {
        let info = s.info;
        (
            info.group,
            info.version,
            info.kind,
            info.plural,
            info.namespaced,
        )
            .hash(&mut hasher);
        for sub in info.subresources {
            sub.name.hash(&mut hasher);
        }
        s.schema.as_ref().map(Value::to_string).hash(&mut hasher);
    }
    hasher.finish()
}

/// The documents with the custom resources the registry serves now; `None` when no
/// CRD serves any (the built-in documents are the answer).
async fn custom_documents(state: &AppState) -> Result<Option<Arc<CustomDocuments>>, String> {
    let served = state.registry().custom().all();
    if served.is_empty() {
        return Ok(None);
    }
    let fingerprint = fingerprint(&served);
    {
        let cached = CUSTOM_DOCUMENTS.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(docs) = cached.as_ref().filter(|d| d.fingerprint == fingerprint) {
            return Ok(Some(docs.clone()));
        }
    }
    let docs = tokio::task::spawn_blocking(move || {
        let document = build_with(Flavor::V2, None, &served);
        let v2 = V2 {
            json: Document::new(&document),
            protobuf: Document::from_bytes(super::openapi_protobuf::encode(&document)),
        };
        let builtin = v3_documents();
        let mut group_versions: BTreeMap<String, Document> = BTreeMap::new();
        let mut custom_gvs: Vec<(&str, &str)> = served
            .iter()
            .map(|s| (s.info.group, s.info.version))
            .collect();
        custom_gvs.dedup();
        for (group, version) in custom_gvs {
            let of_gv: Vec<Arc<Served>> = served
                .iter()
                .filter(|s| s.info.group == group && s.info.version == version)
                .cloned()
                .collect();
            let only = Some((group, version));
            group_versions.insert(
                gv_path(group, version),
                Document::new(&build_with(Flavor::V3, only, &of_gv)),
            );
        }
        let mut paths: Map<String, Value> = builtin
            .group_versions
            .iter()
            .map(|(path, doc)| (path.clone(), v3_entry(path, doc)))
            .collect();
        for (path, doc) in &group_versions {
            paths.insert(path.clone(), v3_entry(path, doc));
        }
        CustomDocuments {
            fingerprint,
            v2: Arc::new(v2),
            v3: Arc::new(V3 {
                root: Document::new(&json!({ "paths": paths })),
                group_versions,
            }),
        }
    })
    .await
    .map_err(|e| e.to_string())?;
    let docs = Arc::new(docs);
    *CUSTOM_DOCUMENTS.lock().unwrap_or_else(|p| p.into_inner()) = Some(docs.clone());
    Ok(Some(docs))
}

/// A v3 root entry: where a group version's document is, with its hash.
fn v3_entry(path: &str, doc: &Document) -> Value {
    json!({ "serverRelativeURL": format!("/openapi/v3/{path}?hash={}", doc.etag) })
}

/// `GET /openapi/v2`: the Swagger 2.0 document, as JSON or in gnostic's protobuf
/// (what client-go's discovery and kubectl up to 1.28 ask for alone).
pub(super) async fn v2(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(media_type) = v2_media_type(&headers) else {
        return not_acceptable();
    };
    let custom = match custom_documents(&state).await {
        Ok(custom) => custom,
        Err(e) => return internal(&e),
    };
    let docs: &V2 = match &custom {
        Some(custom) => &custom.v2,
        None => match tokio::task::spawn_blocking(v2_documents).await {
            Ok(docs) => docs,
            Err(e) => return internal(&e),
        },
    };
    if media_type == V2_JSON {
        serve(&headers, &docs.json, "no-cache, private")
    } else {
        serve_as(&headers, &docs.protobuf, media_type, "no-cache, private")
    }
}

/// `GET /openapi/v3`: which group versions have a document, and where (with its hash).
pub(super) async fn v3_root(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match custom_documents(&state).await {
        Ok(Some(custom)) => return serve(&headers, &custom.v3.root, "no-cache, private"),
        Ok(None) => {}
        Err(e) => return internal(&e),
    }
    match tokio::task::spawn_blocking(v3_documents).await {
        Ok(docs) => serve(&headers, &docs.root, "no-cache, private"),
        Err(e) => internal(&e),
    }
}

/// `GET /openapi/v3/<api/v1 | apis/group/version>[?hash=]`: one group version's document.
/// With the current hash it may be cached forever; with a stale one the client is sent to
/// the current URL, as kube-openapi's handler3 does.
pub(super) async fn v3_group_version(
    State(state): State<AppState>,
    Path(path): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let docs = match tokio::task::spawn_blocking(v3_documents).await {
        Ok(docs) => docs,
        Err(e) => return internal(&e),
    };
    let custom = match custom_documents(&state).await {
        Ok(custom) => custom,
        Err(e) => return internal(&e),
    };
    let Some(doc) = docs
        .group_versions
        .get(&path)
        .or_else(|| custom.as_ref().and_then(|c| c.v3.group_versions.get(&path)))
    else {
        return not_found();
    };
    if !accepts(&headers, V3_JSON) {
        return not_acceptable();
    }
    let hash = query.as_deref().unwrap_or("").split('&').find_map(|pair| {
        pair.strip_prefix("hash=")
            .filter(|h| !h.is_empty())
            .map(str::to_owned)
    });
    match hash {
        Some(hash) if hash != doc.etag => {
            let location = format!("/openapi/v3/{path}?hash={}", doc.etag);
            let mut response = StatusCode::MOVED_PERMANENTLY.into_response();
            if let Ok(value) = HeaderValue::from_str(&location) {
                response.headers_mut().insert(header::LOCATION, value);
            }
            response
        }
        Some(_) => {
            let mut response = serve(&headers, doc, "public, immutable");
            // a year ahead, in HTTP's date format (RFC 1123, GMT)
            let expires = jiff::Timestamp::now()
                .checked_add(jiff::SignedDuration::from_hours(24 * 365))
                .unwrap_or_else(|_| jiff::Timestamp::now())
                .strftime("%a, %d %b %Y %H:%M:%S GMT")
                .to_string();
            if let Ok(value) = HeaderValue::from_str(&expires) {
                response.headers_mut().insert(header::EXPIRES, value);
            }
            response
        }
        None => serve(&headers, doc, "no-cache, private"),
    }
}

/// A document with its entity tag; 304 when the client already has it
/// (`If-None-Match`, as Go's `http.ServeContent`).
fn serve(request: &HeaderMap, doc: &Document, cache_control: &'static str) -> Response {
    serve_as(request, doc, "application/json", cache_control)
}

/// Serves `doc` as `content_type`, honouring If-None-Match against its ETag.
fn serve_as(
    request: &HeaderMap,
    doc: &Document,
    content_type: &'static str,
    cache_control: &'static str,
) -> Response {
    let quoted = format!("\"{}\"", doc.etag);
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == quoted || t.trim() == "*"));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (StatusCode::OK, doc.body.clone()).into_response()
    };
    let headers = response.headers_mut();
    if !fresh {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    if let Ok(value) = HeaderValue::from_str(&quoted) {
        headers.insert(header::ETAG, value);
    }
    headers.insert(header::VARY, HeaderValue::from_static("Accept"));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    response
}

/// kube-openapi's answer when no offered type is acceptable: 406 with an empty body.
fn not_acceptable() -> Response {
    let mut response = StatusCode::NOT_ACCEPTABLE.into_response();
    response
        .headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Accept"));
    response
}

fn internal(e: &dyn std::fmt::Display) -> Response {
    tracing::error!(error = %e, "cannot build the OpenAPI documents");
    super::failure(
        StatusCode::INTERNAL_SERVER_ERROR,
        apimachinery::errors::StatusReason::InternalError,
        "cannot build the OpenAPI documents",
    )
}

/// Whether the request's `Accept` admits `offered` (no header means anything, as
/// kube-openapi reads it); ranges with `q=0` refuse.
fn accepts(headers: &HeaderMap, offered: &str) -> bool {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    if accept.trim().is_empty() {
        return true;
    }
    let (offered_type, offered_subtype) = offered.split_once('/').unwrap_or((offered, ""));
    accept.split(',').any(|clause| {
        let mut parts = clause.split(';');
        let range = parts.next().unwrap_or("").trim();
        let refused = parts.any(|p| {
            p.trim()
                .strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        let (t, s) = range.split_once('/').unwrap_or((range, ""));
        !refused
            && (t == "*" || t.eq_ignore_ascii_case(offered_type))
            && (s == "*" || s.eq_ignore_ascii_case(offered_subtype))
    })
}

/// A 128-bit content hash in upper-case hex. Upstream uses SHA-512; clients treat the
/// tag as opaque, and std's SipHash (two keys) is enough to tell documents apart.
fn etag(body: &[u8]) -> String {
    let mut out = String::with_capacity(32);
    for key in [0x6b75_6265u64, 0x006f_7065_6e61_7069] {
        let mut hasher = DefaultHasher::new();
        key.hash(&mut hasher);
        body.hash(&mut hasher);
        let _ = write!(out, "{:016X}", hasher.finish());
    }
    out
}

/// `api/v1` or `apis/<group>/<version>`, as the v3 root and request paths name a group
/// version.
fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// Which document is being built: their paths and references differ in shape.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flavor {
    /// Swagger 2.0: `#/definitions/`, parameters typed inline, `consumes`/`produces`.
    V2,
    /// OpenAPI 3.0: `#/components/schemas/`, `requestBody`, `content` per media type.
    V3,
}

impl Flavor {
    fn reference(self, name: &str) -> Value {
        match self {
            Flavor::V2 => json!({ "$ref": format!("#/definitions/{name}") }),
            Flavor::V3 => json!({ "$ref": format!("#/components/schemas/{name}") }),
        }
    }
}

/// The query parameters upstream documents, with (shortened) upstream descriptions.
const PARAMETERS: &[(&str, &str, &str)] = &[
    (
        "allowWatchBookmarks",
        "boolean",
        "allowWatchBookmarks requests watch events with type \"BOOKMARK\". Servers that do not implement bookmarks may ignore this flag and bookmarks are sent at the server's discretion. Clients should not assume bookmarks are returned at any specific interval, nor may they assume the server will send any BOOKMARK event during a session. If this is not a watch, this field is ignored.",
    ),
    (
        "continue",
        "string",
        "The continue option should be set when retrieving more results from the server. Since this value is server defined, clients may only use the continue value from a previous query result with identical query parameters (except for the value of continue) and the server may reject a continue value it does not recognize.",
    ),
    (
        "dryRun",
        "string",
        "When present, indicates that modifications should not be persisted. An invalid or unrecognized dryRun directive will result in an error response and no further processing of the request. Valid values are: - All: all dry run stages will be processed",
    ),
    (
        "fieldManager",
        "string",
        "fieldManager is a name associated with the actor or entity that is making these changes. The value must be less than or 128 characters long, and only contain printable characters, as defined by https://golang.org/pkg/unicode/#IsPrint.",
    ),
    (
        "fieldSelector",
        "string",
        "A selector to restrict the list of returned objects by their fields. Defaults to everything.",
    ),
    (
        "fieldValidation",
        "string",
        "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore: This will ignore any unknown fields that are silently dropped from the object, and will ignore all but the last duplicate field that the decoder encounters. This is the default behavior prior to v1.23. - Warn: This will send a warning via the standard warning response header for each unknown field that is dropped from the object, and for each duplicate field that is encountered. The request will still succeed if there are no other errors, and will only persist the last of any duplicate fields. This is the default in v1.23+ - Strict: This will fail the request with a BadRequest error if any unknown fields would be dropped from the object, or if any duplicate fields are present. The error returned from the server will contain all unknown and duplicate fields encountered.",
    ),
    (
        "force",
        "boolean",
        "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by other people. Force flag must be unset for non-apply patch requests.",
    ),
    (
        "gracePeriodSeconds",
        "integer",
        "The duration in seconds before the object should be deleted. Value must be non-negative integer. The value zero indicates delete immediately. If this value is nil, the default grace period for the specified type will be used. Defaults to a per object value if not specified. zero means delete immediately.",
    ),
    (
        "ignoreStoreReadErrorWithClusterBreakingPotential",
        "boolean",
        "if set to true, it will trigger an unsafe deletion of the resource in case the normal deletion flow fails with a corrupt object error. A resource is considered corrupt if it can not be retrieved from the underlying storage successfully because of a) its data can not be transformed e.g. decryption failure, or b) it fails to decode into an object. NOTE: unsafe deletion ignores finalizer constraints, skips precondition checks, and removes the object from the storage. WARNING: This may potentially break the cluster if the workload associated with the resource being unsafe-deleted relies on normal deletion flow. Use only if you REALLY know what you are doing. The default value is false, and the user must opt in to enable it",
    ),
    (
        "labelSelector",
        "string",
        "A selector to restrict the list of returned objects by their labels. Defaults to everything.",
    ),
    (
        "limit",
        "integer",
        "limit is a maximum number of responses to return for a list call. If more items exist, the server will set the `continue` field on the list metadata to a value that can be used with the same initial query to retrieve the next set of results.",
    ),
    (
        "orphanDependents",
        "boolean",
        "Deprecated: please use the PropagationPolicy, this field will be deprecated in 1.7. Should the dependent objects be orphaned. If true/false, the \"orphan\" finalizer will be added to/removed from the object's finalizers list. Either this field or PropagationPolicy may be set, but not both.",
    ),
    (
        "propagationPolicy",
        "string",
        "Whether and how garbage collection will be performed. Either this field or OrphanDependents may be set, but not both. The default policy is decided by the existing finalizer set in the metadata.finalizers and the resource-specific default policy. Acceptable values are: 'Orphan' - orphan the dependents; 'Background' - allow the garbage collector to delete the dependents in the background; 'Foreground' - a cascading policy that deletes all dependents in the foreground.",
    ),
    (
        "resourceVersion",
        "string",
        "resourceVersion sets a constraint on what resource versions a request may be served from. See https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions for details.\n\nDefaults to unset",
    ),
    (
        "resourceVersionMatch",
        "string",
        "resourceVersionMatch determines how resourceVersion is applied to list calls. It is highly recommended that resourceVersionMatch be set for list calls where resourceVersion is set See https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions for details.\n\nDefaults to unset",
    ),
    (
        "sendInitialEvents",
        "boolean",
        "`sendInitialEvents=true` may be set together with `watch=true`. In that case, the watch stream will begin with synthetic events to produce the current state of objects in the collection. Once all such events have been sent, a synthetic \"Bookmark\" event will be sent.",
    ),
    (
        "timeoutSeconds",
        "integer",
        "Timeout for the list/watch call. This limits the duration of the call, regardless of any activity or inactivity.",
    ),
    (
        "watch",
        "boolean",
        "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications. Specify resourceVersion.",
    ),
];

const LIST_PARAMS: &[&str] = &[
    "allowWatchBookmarks",
    "continue",
    "fieldSelector",
    "labelSelector",
    "limit",
    "resourceVersion",
    "resourceVersionMatch",
    "sendInitialEvents",
    "timeoutSeconds",
    "watch",
];
const WRITE_PARAMS: &[&str] = &["dryRun", "fieldManager", "fieldValidation"];
const PATCH_PARAMS: &[&str] = &["dryRun", "fieldManager", "fieldValidation", "force"];
const DELETE_PARAMS: &[&str] = &[
    "dryRun",
    "gracePeriodSeconds",
    "ignoreStoreReadErrorWithClusterBreakingPotential",
    "orphanDependents",
    "propagationPolicy",
];
const DELETE_COLLECTION_PARAMS: &[&str] = &[
    "continue",
    "dryRun",
    "fieldSelector",
    "gracePeriodSeconds",
    "ignoreStoreReadErrorWithClusterBreakingPotential",
    "labelSelector",
    "limit",
    "orphanDependents",
    "propagationPolicy",
    "resourceVersion",
    "resourceVersionMatch",
    "sendInitialEvents",
    "timeoutSeconds",
];

/// The subresources that stream or proxy rather than read or write an object: upstream
/// marks their operations `connect`.
const CONNECT_SUBRESOURCES: &[&str] = &["attach", "exec", "portforward", "proxy"];

const DELETE_OPTIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
const PATCH: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";
const WATCH_EVENT: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent";
const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";
const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// Builds one document: every group version (v2) or one (v3).
fn build(flavor: Flavor, only: Option<(&str, &str)>) -> Value {
    build_with(flavor, only, &[])
}

/// The document of the built-in resources (in `only`'s group version, or all) and the
/// custom resources in `custom`.
fn build_with(flavor: Flavor, only: Option<(&str, &str)>, custom: &[Arc<Served>]) -> Value {
    let mut settings = match flavor {
        // k8s-openapi's `$ref` siblings (descriptions) stay as they are in upstream's v2
        Flavor::V2 => {
            let mut s = SchemaSettings::draft07();
            s.transforms.clear();
            s
        }
        // upstream's v3 wraps a described reference in `allOf`, as this transform does
        Flavor::V3 => SchemaSettings::openapi3(),
    };
    settings.meta_schema = None;
    let mut builder = Builder {
        flavor,
        generator: settings.into_generator(),
        paths: Map::new(),
        extra: Map::new(),
        kinds: BTreeMap::new(),
        custom: custom
            .iter()
            .map(|served| {
                let info = served.info;
                let key = (
                    info.group.to_owned(),
                    info.version.to_owned(),
                    info.kind.to_owned(),
                );
                (
                    key,
                    served
                        .schema
                        .clone()
                        .unwrap_or_else(|| json!({"type": "object"})),
                )
            })
            .collect(),
    };
    // the meta types every group version's operations refer to
    builder.generator.subschema_for::<meta::DeleteOptions>();
    builder.generator.subschema_for::<meta::Status>();
    builder.generator.subschema_for::<meta::APIResourceList>();
    builder.generator.subschema_for::<meta::ListMeta>();
    builder.extra.insert(
        PATCH.into(),
        json!({
            "description": "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body.",
            "type": "object",
        }),
    );
    builder.extra.insert(
        WATCH_EVENT.into(),
        json!({
            "description": "Event represents a single event to a watched resource.",
            "type": "object",
            "required": ["type", "object"],
            "properties": {
                "object": {
                    "description": "Object is:\n * If Type is Added or Modified: the new state of the object.\n * If Type is Deleted: the state of the object immediately before deletion.\n * If Type is Error: *Status is recommended; other types may make sense\n   depending on context.",
                    "type": "object",
                },
                "type": { "type": "string", "default": "" },
            },
        }),
    );
    builder.kinds.insert(
        STATUS.into(),
        vec![json!({ "group": "", "kind": "Status", "version": "v1" })],
    );
    for resource in resources::RESOURCES {
        if only.is_none_or(|(g, v)| resource.group == g && resource.version == v) {
            builder.resource(resource);
        }
    }
    for served in custom {
        if only.is_none_or(|(g, v)| served.info.group == g && served.info.version == v) {
            builder.resource(served.info);
        }
    }
    let mut schemas = builder.generator.take_definitions(true);
    schemas.extend(builder.extra);
    for (name, schema) in schemas.iter_mut() {
        tidy(name, schema, builder.kinds.get(name));
    }
    let version = VersionInfo::current().git_version;
    let security = json!([{ "BearerToken": [] }]);
    let bearer = json!({
        "description": "Bearer Token authentication",
        "in": "header",
        "name": "authorization",
        "type": "apiKey",
    });
    match flavor {
        Flavor::V2 => json!({
            "swagger": "2.0",
            "info": { "title": "Kubernetes", "version": version },
            "paths": builder.paths,
            "definitions": schemas,
            "security": security,
            "securityDefinitions": { "BearerToken": bearer },
        }),
        Flavor::V3 => json!({
            "openapi": "3.0.0",
            "info": { "title": "Kubernetes", "version": version },
            "paths": builder.paths,
            "components": {
                "schemas": schemas,
                "securitySchemes": { "BearerToken": bearer },
            },
            "security": security,
        }),
    }
}

/// Brings a k8s-openapi schema back to upstream's shape where they differ.
fn tidy(name: &str, schema: &mut Value, kinds: Option<&Vec<Value>>) {
    let Some(object) = schema.as_object_mut() else {
        return;
    };
    if let Some(kinds) = kinds {
        object.insert(
            "x-kubernetes-group-version-kind".into(),
            Value::Array(kinds.clone()),
        );
        // k8s-openapi makes `metadata` required (its field is not an Option); upstream's
        // kinds do not require it
        if let Some(Value::Array(required)) = object.get_mut("required") {
            required.retain(|r| r != "metadata");
            if required.is_empty() {
                object.remove("required");
            }
        }
    }
    match name {
        // upstream documents these as strings with a format; k8s-openapi as an extension
        "io.k8s.apimachinery.pkg.util.intstr.IntOrString" => {
            object.remove("x-kubernetes-int-or-string");
            object.insert("type".into(), json!("string"));
            object.insert("format".into(), json!("int-or-string"));
        }
        "io.k8s.apimachinery.pkg.api.resource.Quantity" => {
            object.remove("x-kubernetes-int-or-string");
            object.insert("type".into(), json!("string"));
        }
        _ => {}
    }
}

struct Builder {
    flavor: Flavor,
    generator: SchemaGenerator,
    paths: Map<String, Value>,
    /// Schemas k8s-openapi has no type for (lists, Patch, WatchEvent).
    extra: Map<String, Value>,
    /// The `x-kubernetes-group-version-kind` entries of each top-level schema.
    kinds: BTreeMap<String, Vec<Value>>,
    /// The schemas of custom resources by (group, version, kind), from their CRDs.
    custom: HashMap<(String, String, String), Value>,
}

/// The group-version-kind an operation acts on.
#[derive(Clone, Copy)]
struct Gvk<'a> {
    group: &'a str,
    version: &'a str,
    kind: &'a str,
}

impl Gvk<'_> {
    fn to_json(self) -> Value {
        json!({ "group": self.group, "kind": self.kind, "version": self.version })
    }
}

impl Builder {
    /// Registers a kind's schema (noting its GVK) and returns its name, if k8s-openapi
    /// has the type.
    fn kind_schema(&mut self, gvk: Gvk<'_>) -> Option<String> {
        if let Some(name) = self.custom_schema(gvk) {
            return Some(name);
        }
        let kind = typed::find(gvk.group, gvk.version, gvk.kind)?;
        (kind.schema)(&mut self.generator);
        let name = (kind.schema_name)().into_owned();
        let entry = self.kinds.entry(name.clone()).or_default();
        if !entry.contains(&gvk.to_json()) {
            entry.push(gvk.to_json());
        }
        Some(name)
    }

    /// Registers `<Kind>List` beside its kind and returns its name.
    fn list_schema(&mut self, gvk: Gvk<'_>, item: &str) -> Option<String> {
        let custom_list = self
            .custom
            .contains_key(&(gvk.group.into(), gvk.version.into(), gvk.kind.into()))
            .then(|| format!("{}List", gvk.kind));
        let list_kind: &str = match &custom_list {
            Some(list_kind) => list_kind,
            None => typed::find(gvk.group, gvk.version, gvk.kind)?.list_kind?,
        };
        let name = match item.rsplit_once('.') {
            Some((prefix, _)) => format!("{prefix}.{list_kind}"),
            None => list_kind.to_owned(),
        };
        let list_gvk = Gvk {
            kind: list_kind,
            ..gvk
        };
        self.kinds.insert(name.clone(), vec![list_gvk.to_json()]);
        let item_ref = self.flavor.reference(item);
        let meta_ref = self.flavor.reference(LIST_META);
        let described = |reference: Value, description: &str| match self.flavor {
            Flavor::V2 => {
                let mut r = reference;
                if let Some(o) = r.as_object_mut() {
                    o.insert("description".into(), json!(description));
                }
                r
            }
            Flavor::V3 => {
                json!({ "allOf": [reference], "default": {}, "description": description })
            }
        };
        let schema = json!({
            "description": format!("{list_kind} is a list of {}.", gvk.kind),
            "type": "object",
            "required": ["items"],
            "properties": {
                "apiVersion": {
                    "description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources",
                    "type": "string",
                },
                "items": {
                    "description": format!("Items is a list of {} objects.", gvk.kind),
                    "type": "array",
                    "items": match self.flavor {
                        Flavor::V2 => item_ref,
                        Flavor::V3 => json!({ "allOf": [item_ref], "default": {} }),
                    },
                },
                "kind": {
                    "description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds",
                    "type": "string",
                },
                "metadata": described(meta_ref, "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"),
            },
        });
        self.extra.insert(name.clone(), schema);
        Some(name)
    }

    /// Registers a custom resource's schema from its CRD under upstream's name for it
    /// (the group reversed: `com.example.stable.v1.CronTab`), with the `apiVersion`,
    /// `kind` and `metadata` every object has.
    fn custom_schema(&mut self, gvk: Gvk<'_>) -> Option<String> {
        let key = (
            gvk.group.to_owned(),
            gvk.version.to_owned(),
            gvk.kind.to_owned(),
        );
        let mut schema = self.custom.get(&key)?.clone();
        let reversed: Vec<&str> = gvk.group.split('.').rev().collect();
        let name = format!("{}.{}.{}", reversed.join("."), gvk.version, gvk.kind);
        self.generator.subschema_for::<meta::ObjectMeta>();
        // Swagger 2.0 cannot say "and any other field": upstream publishes a schema
        // that keeps unknown fields at its root as a bare object, so that clients'
        // own validation lets every field through
        let open_root = schema.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true));
        let bare = !schema.is_object() || (open_root && self.flavor == Flavor::V2);
        if bare {
            schema = json!({"type": "object"});
        }
        let properties = schema
            .as_object_mut()
            .filter(|_| !bare)
            .map(|o| o.entry("properties").or_insert_with(|| json!({})));
        if let Some(Value::Object(properties)) = properties {
            properties.insert(
                "apiVersion".into(),
                json!({"description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources", "type": "string"}),
            );
            properties.insert(
                "kind".into(),
                json!({"description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds", "type": "string"}),
            );
            let reference = self.flavor.reference(OBJECT_META);
            let description = "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";
            let metadata = match self.flavor {
                Flavor::V2 => {
                    let mut r = reference;
                    r["description"] = description.into();
                    r
                }
                Flavor::V3 => json!({"allOf": [reference], "description": description}),
            };
            properties.insert("metadata".into(), metadata);
        }
        let entry = self.kinds.entry(name.clone()).or_default();
        if !entry.contains(&gvk.to_json()) {
            entry.push(gvk.to_json());
        }
        self.extra.insert(name.clone(), schema);
        Some(name)
    }

    /// Every path of one resource: the collection, the item, the all-namespaces list
    /// and the subresources, with the operations its verbs allow.
    fn resource(&mut self, r: &ResourceInfo) {
        let gvk = Gvk {
            group: r.group,
            version: r.version,
            kind: r.kind,
        };
        let schema = self.kind_schema(gvk);
        let list = schema
            .as_deref()
            .and_then(|item| self.list_schema(gvk, item));
        let prefix = if r.group.is_empty() {
            format!("/api/{}", r.version)
        } else {
            format!("/apis/{}/{}", r.group, r.version)
        };
        let scope = if r.namespaced {
            "/namespaces/{namespace}"
        } else {
            ""
        };
        let ns = if r.namespaced { "Namespaced" } else { "" };
        let id = OperationIds::new(r.group, r.version);
        let collection = format!("{prefix}{scope}/{}", r.plural);
        let item = format!("{collection}/{{name}}");

        let mut ops = Map::new();
        if r.has_verb("list") {
            let op = self.operation(
                gvk,
                "list",
                &format!("list or watch objects of kind {}", r.kind),
                &id.op("list", &format!("{ns}{}", r.kind)),
                LIST_PARAMS,
                None,
                &[("200", "OK", list.as_deref())],
            );
            ops.insert("get".into(), op);
        }
        if r.has_verb("create") {
            let op = self.operation(
                gvk,
                "post",
                &format!("create {}", article(r.kind)),
                &id.op("create", &format!("{ns}{}", r.kind)),
                WRITE_PARAMS,
                schema.as_deref().map(|s| (s, false)),
                &created_responses(schema.as_deref()),
            );
            ops.insert("post".into(), op);
        }
        if r.has_verb("deletecollection") {
            let op = self.operation(
                gvk,
                "deletecollection",
                &format!("delete collection of {}", r.kind),
                &format!("delete{}Collection{ns}{}", id.prefix, r.kind),
                DELETE_COLLECTION_PARAMS,
                Some((DELETE_OPTIONS, false)),
                &[("200", "OK", Some(STATUS))],
            );
            ops.insert("delete".into(), op);
        }
        self.add_path(&collection, ops, r.namespaced, None);

        let mut ops = Map::new();
        if r.has_verb("get") {
            let op = self.operation(
                gvk,
                "get",
                &format!("read the specified {}", r.kind),
                &id.op("read", &format!("{ns}{}", r.kind)),
                &[],
                None,
                &[("200", "OK", schema.as_deref())],
            );
            ops.insert("get".into(), op);
        }
        if r.has_verb("update") {
            let op = self.operation(
                gvk,
                "put",
                &format!("replace the specified {}", r.kind),
                &id.op("replace", &format!("{ns}{}", r.kind)),
                WRITE_PARAMS,
                schema.as_deref().map(|s| (s, false)),
                &updated_responses(schema.as_deref()),
            );
            ops.insert("put".into(), op);
        }
        if r.has_verb("patch") {
            let op = self.operation(
                gvk,
                "patch",
                &format!("partially update the specified {}", r.kind),
                &id.op("patch", &format!("{ns}{}", r.kind)),
                PATCH_PARAMS,
                Some((PATCH, true)),
                &updated_responses(schema.as_deref()),
            );
            ops.insert("patch".into(), op);
        }
        if r.has_verb("delete") {
            let op = self.operation(
                gvk,
                "delete",
                &format!("delete {}", article(r.kind)),
                &id.op("delete", &format!("{ns}{}", r.kind)),
                DELETE_PARAMS,
                Some((DELETE_OPTIONS, false)),
                &[
                    ("200", "OK", Some(STATUS)),
                    ("202", "Accepted", Some(STATUS)),
                ],
            );
            ops.insert("delete".into(), op);
        }
        self.add_path(&item, ops, r.namespaced, Some(r.kind));

        if r.namespaced && r.has_verb("list") {
            let op = self.operation(
                gvk,
                "list",
                &format!("list or watch objects of kind {}", r.kind),
                &id.op("list", &format!("{}ForAllNamespaces", r.kind)),
                LIST_PARAMS,
                None,
                &[("200", "OK", list.as_deref())],
            );
            let mut ops = Map::new();
            ops.insert("get".into(), op);
            self.add_path(&format!("{prefix}/{}", r.plural), ops, false, None);
        }

        for sub in r.subresources {
            self.subresource(r, sub, &item, &id, ns);
        }
    }

    fn subresource(
        &mut self,
        r: &ResourceInfo,
        sub: &Subresource,
        item: &str,
        id: &OperationIds,
        ns: &str,
    ) {
        let (group, version) = sub.kind_group_version.unwrap_or((r.group, r.version));
        let gvk = Gvk {
            group,
            version,
            kind: sub.kind,
        };
        let schema = self.kind_schema(gvk);
        let suffix = format!("{ns}{}{}", r.kind, capitalize(sub.name));
        let mut ops = Map::new();
        if CONNECT_SUBRESOURCES.contains(&sub.name) {
            for (verb, method, word) in [
                ("get", "get", "Get"),
                ("create", "post", "Post"),
                ("update", "put", "Put"),
                ("patch", "patch", "Patch"),
                ("delete", "delete", "Delete"),
            ] {
                if sub.has_verb(verb) {
                    let op = self.operation(
                        gvk,
                        "connect",
                        &format!(
                            "connect {} requests to {} of {}",
                            word.to_uppercase(),
                            sub.name,
                            r.kind
                        ),
                        &format!("connect{}{word}{suffix}", id.prefix),
                        &[],
                        None,
                        &[("200", "OK", None)],
                    );
                    ops.insert(method.into(), op);
                }
            }
        } else {
            if sub.has_verb("get") {
                let op = self.operation(
                    gvk,
                    "get",
                    &format!("read {} of the specified {}", sub.name, r.kind),
                    &id.op("read", &suffix),
                    &[],
                    None,
                    &[("200", "OK", schema.as_deref())],
                );
                ops.insert("get".into(), op);
            }
            if sub.has_verb("create") {
                let op = self.operation(
                    gvk,
                    "post",
                    &format!("create {} of {}", sub.name, article(r.kind)),
                    &id.op("create", &suffix),
                    WRITE_PARAMS,
                    schema.as_deref().map(|s| (s, false)),
                    &created_responses(schema.as_deref()),
                );
                ops.insert("post".into(), op);
            }
            if sub.has_verb("update") {
                let op = self.operation(
                    gvk,
                    "put",
                    &format!("replace {} of the specified {}", sub.name, r.kind),
                    &id.op("replace", &suffix),
                    WRITE_PARAMS,
                    schema.as_deref().map(|s| (s, false)),
                    &updated_responses(schema.as_deref()),
                );
                ops.insert("put".into(), op);
            }
            if sub.has_verb("patch") {
                let op = self.operation(
                    gvk,
                    "patch",
                    &format!("partially update {} of the specified {}", sub.name, r.kind),
                    &id.op("patch", &suffix),
                    PATCH_PARAMS,
                    Some((PATCH, true)),
                    &updated_responses(schema.as_deref()),
                );
                ops.insert("patch".into(), op);
            }
        }
        let what = format!("the {}", capitalize(sub.name));
        self.add_path(
            &format!("{item}/{}", sub.name),
            ops,
            r.namespaced,
            Some(&what),
        );
    }

    /// Adds a path item with upstream's path-level parameters: `name` (for items),
    /// `namespace` (when namespaced) and `pretty`.
    fn add_path(
        &mut self,
        path: &str,
        mut ops: Map<String, Value>,
        namespaced: bool,
        named: Option<&str>,
    ) {
        if ops.is_empty() {
            return;
        }
        let mut parameters = Vec::new();
        if let Some(kind) = named {
            parameters.push(self.path_parameter("name", &format!("name of {kind}")));
        }
        if namespaced {
            parameters.push(self.path_parameter(
                "namespace",
                "object name and auth scope, such as for teams and projects",
            ));
        }
        parameters.push(self.query_parameter(
            "pretty",
            "string",
            "If 'true', then the output is pretty printed. Defaults to 'false' unless the user-agent indicates a browser or command-line HTTP tool (curl and wget).",
        ));
        ops.insert("parameters".into(), Value::Array(parameters));
        self.paths.insert(path.to_owned(), Value::Object(ops));
    }

    fn path_parameter(&self, name: &str, description: &str) -> Value {
        match self.flavor {
            Flavor::V2 => json!({
                "name": name, "in": "path", "description": description,
                "required": true, "type": "string", "uniqueItems": true,
            }),
            Flavor::V3 => json!({
                "name": name, "in": "path", "description": description,
                "required": true, "schema": { "type": "string", "uniqueItems": true },
            }),
        }
    }

    fn query_parameter(&self, name: &str, ty: &str, description: &str) -> Value {
        match self.flavor {
            Flavor::V2 => json!({
                "name": name, "in": "query", "description": description,
                "type": ty, "uniqueItems": true,
            }),
            Flavor::V3 => json!({
                "name": name, "in": "query", "description": description,
                "schema": { "type": ty, "uniqueItems": true },
            }),
        }
    }

    /// One operation. `body` is the request body's schema and whether it is a patch
    /// (which lists the patch media types); `responses` are (code, description, schema).
    #[allow(clippy::too_many_arguments)]
    fn operation(
        &self,
        gvk: Gvk<'_>,
        action: &str,
        description: &str,
        operation_id: &str,
        params: &[&str],
        body: Option<(&str, bool)>,
        responses: &[(&str, &str, Option<&str>)],
    ) -> Value {
        let parameters: Vec<Value> = params
            .iter()
            .filter_map(|p| PARAMETERS.iter().find(|(name, _, _)| name == p))
            .map(|(name, ty, description)| self.query_parameter(name, ty, description))
            .collect();
        let tag = if gvk.group.is_empty() {
            format!("core_{}", gvk.version)
        } else {
            format!("{}_{}", lower_camel(gvk.group), gvk.version)
        };
        let is_list = action == "list";
        // Server-side apply, JSON patch and merge patch. Strategic merge patch is left
        // out on purpose: k8s-openapi's schemas lack upstream's patch strategies and
        // merge keys, and kubectl computes strategic patches from the v3 schema only when
        // the PATCH operation lists that media type; otherwise it uses its compiled-in
        // Go types, which carry the right merge keys.
        let patch_types = [
            "application/apply-patch+yaml",
            "application/json-patch+json",
            "application/merge-patch+json",
        ];
        let produces: &[&str] = if is_list {
            &[
                "application/json",
                "application/yaml",
                "application/vnd.kubernetes.protobuf",
                "application/json;stream=watch",
                "application/vnd.kubernetes.protobuf;stream=watch",
            ]
        } else {
            &[
                "application/json",
                "application/yaml",
                "application/vnd.kubernetes.protobuf",
            ]
        };
        let mut op = Map::new();
        op.insert("tags".into(), json!([tag]));
        op.insert("description".into(), json!(description));
        op.insert("operationId".into(), json!(operation_id));
        op.insert("parameters".into(), Value::Array(parameters));
        let mut response_map = Map::new();
        for (code, text, schema) in responses {
            let mut response = Map::new();
            response.insert("description".into(), json!(text));
            if let Some(schema) = schema {
                let reference = self.flavor.reference(schema);
                match self.flavor {
                    Flavor::V2 => {
                        response.insert("schema".into(), reference);
                    }
                    Flavor::V3 => {
                        let content: Map<String, Value> = produces
                            .iter()
                            .map(|t| ((*t).to_owned(), json!({ "schema": reference })))
                            .collect();
                        response.insert("content".into(), Value::Object(content));
                    }
                }
            }
            response_map.insert((*code).to_owned(), Value::Object(response));
        }
        response_map.insert("401".into(), json!({ "description": "Unauthorized" }));
        op.insert("responses".into(), Value::Object(response_map));
        match self.flavor {
            Flavor::V2 => {
                let consumes: Vec<&str> = match body {
                    Some((_, true)) => patch_types.to_vec(),
                    _ => vec!["*/*"],
                };
                op.insert("consumes".into(), json!(consumes));
                op.insert("produces".into(), json!(produces));
                op.insert("schemes".into(), json!(["https"]));
                if let Some((schema, _)) = body {
                    let mut parameters = op
                        .remove("parameters")
                        .and_then(|p| p.as_array().cloned())
                        .unwrap_or_default();
                    parameters.insert(
                        0,
                        json!({
                            "name": "body", "in": "body", "required": true,
                            "schema": self.flavor.reference(schema),
                        }),
                    );
                    op.insert("parameters".into(), Value::Array(parameters));
                }
            }
            Flavor::V3 => {
                if let Some((schema, is_patch)) = body {
                    let reference = self.flavor.reference(schema);
                    let content: Map<String, Value> = if is_patch {
                        patch_types
                            .iter()
                            .map(|t| ((*t).to_owned(), json!({ "schema": reference })))
                            .collect()
                    } else {
                        std::iter::once(("*/*".to_owned(), json!({ "schema": reference })))
                            .collect()
                    };
                    op.insert(
                        "requestBody".into(),
                        json!({ "content": content, "required": is_patch || action != "delete" && action != "deletecollection" }),
                    );
                }
            }
        }
        op.insert("x-kubernetes-action".into(), json!(action));
        op.insert("x-kubernetes-group-version-kind".into(), gvk.to_json());
        Value::Object(op)
    }
}

/// Upstream's operation ids: `<verb><Group><Version><Namespaced?><Kind>[<Sub>]`, e.g.
/// `createCoreV1NamespacedConfigMap`, `patchAppsV1NamespacedDeploymentScale`.
struct OperationIds {
    /// `CoreV1`, `AppsV1`, `RbacAuthorizationV1`...
    prefix: String,
}

impl OperationIds {
    fn new(group: &str, version: &str) -> Self {
        let group = if group.is_empty() {
            "Core".to_owned()
        } else {
            capitalize(&lower_camel(group))
        };
        OperationIds {
            prefix: format!("{group}{}", capitalize(version)),
        }
    }

    fn op(&self, verb: &str, rest: &str) -> String {
        format!("{verb}{}{rest}", self.prefix)
    }
}

/// `rbac.authorization.k8s.io` → `rbacAuthorization`, as upstream's tags and ids spell a
/// group (the `.k8s.io` suffix dropped).
fn lower_camel(group: &str) -> String {
    let trimmed = group.strip_suffix(".k8s.io").unwrap_or(group);
    let mut out = String::new();
    for (i, part) in trimmed.split('.').enumerate() {
        if i == 0 {
            out.push_str(part);
        } else {
            out.push_str(&capitalize(part));
        }
    }
    out
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// "a ConfigMap", "an Ingress", as upstream's operation descriptions read.
fn article(kind: &str) -> String {
    match kind.chars().next() {
        Some('A' | 'E' | 'I' | 'O' | 'U') => format!("an {kind}"),
        _ => format!("a {kind}"),
    }
}

/// The responses upstream documents for a create: the object, as 200, 201 or 202.
fn created_responses(schema: Option<&str>) -> [(&'static str, &'static str, Option<&str>); 3] {
    [
        ("200", "OK", schema),
        ("201", "Created", schema),
        ("202", "Accepted", schema),
    ]
}

/// The responses upstream documents for a replace or patch: the object, as 200 or 201.
fn updated_responses(schema: Option<&str>) -> [(&'static str, &'static str, Option<&str>); 2] {
    [("200", "OK", schema), ("201", "Created", schema)]
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use crate::auth::UserInfo;
    use crate::http::{AppState, router};
    use crate::storage::memory::MemoryStore;

    async fn get(path: &str, accept: Option<&str>) -> (StatusCode, HeaderMap, Bytes) {
        let state = AppState::new(
            Arc::new(MemoryStore::new()),
            "127.0.0.1:6443".parse().unwrap(),
        );
        let mut request = Request::builder().uri(path);
        if let Some(accept) = accept {
            request = request.header(header::ACCEPT, accept);
        }
        let mut request = request.body(Body::empty()).unwrap();
        request.extensions_mut().insert(UserInfo::new(
            "kubernetes-admin",
            &["system:masters", "system:authenticated"],
        ));
        let response = router(state).oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, headers, body)
    }

    async fn get_json(path: &str) -> (HeaderMap, Value) {
        let (status, headers, body) = get(path, Some("application/json")).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(headers[header::CONTENT_TYPE], "application/json", "{path}");
        (headers, serde_json::from_slice(&body).unwrap())
    }

    fn has_param(op: &Value, name: &str) -> bool {
        op["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == name)
    }

    #[tokio::test]
    async fn v3_root_names_every_group_version_with_its_hash() {
        let (headers, root) = get_json("/openapi/v3").await;
        assert!(headers.contains_key(header::ETAG));
        let paths = root["paths"].as_object().unwrap();
        for (group, version) in resources::group_versions() {
            let key = gv_path(group, version);
            let url = paths[&key]["serverRelativeURL"].as_str().unwrap();
            assert!(
                url.starts_with(&format!("/openapi/v3/{key}?hash=")),
                "{url}"
            );
        }
        assert!(paths.contains_key("api/v1"));
        assert!(paths.contains_key("apis/apps/v1"));
    }

    // cli-runtime's QueryParamVerifierV3 looks for the kind's PATCH operation (by its
    // x-kubernetes-group-version-kind) and a fieldValidation parameter on it.
    #[tokio::test]
    async fn core_v1_operations_carry_field_validation_and_their_kind() {
        let (_, doc) = get_json("/openapi/v3/api/v1").await;
        assert_eq!(doc["openapi"], "3.0.0");
        let collection = &doc["paths"]["/api/v1/namespaces/{namespace}/configmaps"];
        let post = &collection["post"];
        assert_eq!(post["operationId"], "createCoreV1NamespacedConfigMap");
        assert_eq!(post["x-kubernetes-action"], "post");
        assert_eq!(
            post["x-kubernetes-group-version-kind"],
            json!({"group": "", "version": "v1", "kind": "ConfigMap"})
        );
        for param in ["fieldValidation", "dryRun", "fieldManager"] {
            assert!(has_param(post, param), "{param}");
        }
        let item = &doc["paths"]["/api/v1/namespaces/{namespace}/configmaps/{name}"];
        assert!(has_param(&item["patch"], "fieldValidation"));
        assert!(has_param(&item["put"], "fieldValidation"));
        assert_eq!(item["patch"]["x-kubernetes-action"], "patch");
        assert!(has_param(&collection["get"], "labelSelector"));

        let schemas = &doc["components"]["schemas"];
        let configmap = &schemas["io.k8s.api.core.v1.ConfigMap"];
        assert_eq!(
            configmap["x-kubernetes-group-version-kind"],
            json!([{"group": "", "version": "v1", "kind": "ConfigMap"}])
        );
        assert!(
            configmap["properties"]["data"]["description"]
                .as_str()
                .unwrap()
                .starts_with("Data contains the configuration data")
        );
        assert_eq!(
            configmap["properties"]["metadata"]["allOf"][0]["$ref"],
            "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
        );
        assert!(configmap.get("required").is_none());
        assert!(schemas["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"].is_object());
        assert!(schemas["io.k8s.api.core.v1.ConfigMapList"].is_object());
        assert!(schemas["io.k8s.api.core.v1.PodSpec"].is_object());
        assert_eq!(
            schemas["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["format"],
            "int-or-string"
        );
    }

    #[tokio::test]
    async fn apps_v1_has_deployments_and_scale() {
        let (_, doc) = get_json("/openapi/v3/apis/apps/v1").await;
        let schemas = &doc["components"]["schemas"];
        let replicas = &schemas["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["replicas"];
        assert!(
            replicas["description"]
                .as_str()
                .unwrap()
                .contains("desired pods")
        );
        assert!(schemas["io.k8s.api.autoscaling.v1.Scale"].is_object());
        let scale = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"];
        assert_eq!(
            scale["patch"]["operationId"],
            "patchAppsV1NamespacedDeploymentScale"
        );
        assert_eq!(
            scale["patch"]["x-kubernetes-group-version-kind"],
            json!({"group": "autoscaling", "version": "v1", "kind": "Scale"})
        );
    }

    #[tokio::test]
    async fn v3_hash_makes_documents_immutable_and_stale_hashes_redirect() {
        let (_, root) = get_json("/openapi/v3").await;
        let url = root["paths"]["apis/batch/v1"]["serverRelativeURL"]
            .as_str()
            .unwrap()
            .to_owned();
        let (headers, _) = get_json(&url).await;
        assert_eq!(headers[header::CACHE_CONTROL], "public, immutable");
        assert!(headers.contains_key(header::EXPIRES));
        let etag = headers[header::ETAG].to_str().unwrap().to_owned();
        assert_eq!(format!("\"{}\"", url.rsplit('=').next().unwrap()), etag);

        let (status, headers, _) = get("/openapi/v3/apis/batch/v1?hash=0000", None).await;
        assert_eq!(status, StatusCode::MOVED_PERMANENTLY);
        assert_eq!(headers[header::LOCATION], url.as_str());

        let (headers, _) = get_json("/openapi/v3/apis/batch/v1").await;
        assert_eq!(headers[header::CACHE_CONTROL], "no-cache, private");

        let (status, _, _) = get("/openapi/v3/apis/nope/v1", None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn v2_is_one_swagger_document_in_json_or_gnostic_protobuf() {
        let (_, doc) = get_json("/openapi/v2").await;
        assert_eq!(doc["swagger"], "2.0");
        let post = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments"]["post"];
        assert!(has_param(post, "fieldValidation"));
        assert_eq!(
            post["parameters"][0]["schema"]["$ref"],
            "#/definitions/io.k8s.api.apps.v1.Deployment"
        );
        assert!(doc["paths"]["/api/v1/namespaces/{namespace}/pods"].is_object());
        assert_eq!(
            doc["definitions"]["io.k8s.api.core.v1.ConfigMap"]["properties"]["metadata"]["$ref"],
            "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
        );
        // client-go's discovery asks for protobuf alone, under either name.
        for media_type in [V2_PROTOBUF_DEPRECATED, V2_PROTOBUF] {
            let (status, headers, body) = get("/openapi/v2", Some(media_type)).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(headers[header::CONTENT_TYPE], V2_PROTOBUF);
            assert_eq!(
                &body[..],
                &super::super::openapi_protobuf::encode(&build(Flavor::V2, None))[..]
            );
        }
        let (status, _, _) = get("/openapi/v2", Some("text/html")).await;
        assert_eq!(status, StatusCode::NOT_ACCEPTABLE);
    }

    #[test]
    fn operation_ids_follow_upstream() {
        assert_eq!(
            OperationIds::new("", "v1").op("create", "NamespacedConfigMap"),
            "createCoreV1NamespacedConfigMap"
        );
        assert_eq!(
            OperationIds::new("rbac.authorization.k8s.io", "v1").op("list", "ClusterRole"),
            "listRbacAuthorizationV1ClusterRole"
        );
        assert_eq!(
            lower_camel("flowcontrol.apiserver.k8s.io"),
            "flowcontrolApiserver"
        );
    }

    #[test]
    fn accept_negotiation_like_kube_openapi() {
        let mut headers = HeaderMap::new();
        assert!(accepts(&headers, "application/json"));
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/com.github.proto-openapi.spec.v2@v1.0+protobuf"),
        );
        assert!(!accepts(&headers, "application/json"));
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json;q=0.9, */*;q=0.1"),
        );
        assert!(accepts(&headers, "application/json"));
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json;q=0"),
        );
        assert!(!accepts(&headers, "application/json"));
    }
}
