//! The generic registry, as upstream's `genericregistry.Store`
//! (k8s.io/apiserver/pkg/registry/generic/registry/store.go): one implementation of
//! create / get / list / update / delete / watch for every resource in the resource
//! table, over any [`Storage`] backend. Objects are JSON values; the registry owns
//! their system metadata (uid, creationTimestamp, resourceVersion, generation,
//! deletionTimestamp) and applies upstream's generic rules: generateName, namespace
//! lifecycle, ObjectMeta validation, optimistic concurrency, finalizers and the
//! spec/status split of resources with a status subresource.
//!
//! Per-resource behaviour lives in [`strategy`]: defaults, name rules and what the
//! main resource and the status subresource may change.

mod admit;
mod binding;
mod deletion;
mod eviction;
pub mod field_validation;
pub mod fields;
pub mod informer;
pub mod legacy_token_tracking;
pub mod meta;
pub(crate) mod ownership;
pub mod service_cidrs;
pub mod services;
pub mod strategy;
pub mod validation;
pub mod workloads;

pub use deletion::DeleteOptions;

use std::sync::Arc;

use apimachinery::errors::{FieldError, StatusError};
use apimachinery::resources::{self, GroupResource, ResourceInfo};
use apimachinery::{fields as field_selectors, labels as label_selectors};
use bytes::Bytes;
use futures::StreamExt;
use serde_json::{Map, Value, json};

use crate::auth::admission::Operation;
use crate::storage::cacher::{CachedEvent, CachedWatchStream, WatchCache};
use crate::storage::{
    ContinueToken, KeyValue, ListOptions, Preconditions, Revision, Storage, StorageError,
    WatchOptions,
};

/// Namespaces every cluster has, created at start as upstream's system namespaces controller does.
pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Which part of an object a write may change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The main resource: everything but status (for resources with a status subresource).
    Main,
    /// The status subresource: status only.
    Status,
    /// A CertificateSigningRequest's approval subresource: its conditions only.
    Approval,
    /// A namespace's finalize subresource: its `spec.finalizers` only.
    Finalize,
}

/// List parameters, as upstream's `metav1.ListOptions`.
#[derive(Clone, Debug, Default)]
pub struct ListParams {
    /// `labelSelector`.
    pub label_selector: Option<String>,
    /// `fieldSelector`.
    pub field_selector: Option<String>,
    /// `limit`.
    pub limit: Option<usize>,
    /// `continue`.
    pub continue_token: Option<String>,
    /// `resourceVersion`.
    pub resource_version: Option<String>,
    /// `resourceVersionMatch`.
    pub resource_version_match: Option<String>,
}

/// Parsed selectors of a list or watch.
pub struct Selectors {
    labels: label_selectors::Selector,
    fields: field_selectors::Selector,
    /// A custom resource's selectable fields (`spec.color`), beside the built-in ones.
    selectable: Vec<String>,
}

impl Selectors {
    /// Parses `labelSelector` and `fieldSelector`, refusing fields the resource cannot
    /// select on, with upstream's messages.
    pub fn parse(resource: &ResourceInfo, params: &ListParams) -> Result<Self, StatusError> {
        Self::parse_with(resource, params, Vec::new())
    }

    /// As [`Selectors::parse`], for a custom resource whose CRD version declares
    /// `selectable` fields.
    pub fn parse_with(
        resource: &ResourceInfo,
        params: &ListParams,
        selectable: Vec<String>,
    ) -> Result<Self, StatusError> {
        let labels = match params.label_selector.as_deref().filter(|s| !s.is_empty()) {
            Some(s) => label_selectors::Selector::parse(s)
                .map_err(|e| StatusError::bad_request(e.to_string()))?,
            None => label_selectors::Selector::everything(),
        };
        let fields = match params.field_selector.as_deref().filter(|s| !s.is_empty()) {
            Some(s) => field_selectors::Selector::parse(s)
                .map_err(|e| StatusError::bad_request(e.to_string()))?,
            None => field_selectors::Selector::everything(),
        };
        for requirement in fields.requirements() {
            if !fields::is_supported(resource, &requirement.field)
                && !selectable.contains(&requirement.field)
            {
                return Err(StatusError::bad_request(format!(
                    "field label not supported: {}",
                    requirement.field
                )));
            }
        }
        Ok(Selectors {
            labels,
            fields,
            selectable,
        })
    }

    /// Whether the selectors select everything.
    pub fn is_everything(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }

    /// Whether `object` is selected.
    pub fn matches(&self, resource: &ResourceInfo, object: &Value) -> bool {
        if !self.labels.matches(&meta::labels(object)) {
            return false;
        }
        let mut set = fields::field_set(resource, object);
        for path in &self.selectable {
            set.insert(
                path.clone(),
                fields::text_at(object, path).unwrap_or_default(),
            );
        }
        self.fields.matches(&set)
    }
}

/// The registry over one storage backend.
#[derive(Clone)]
pub struct Registry {
    storage: Arc<dyn Storage>,
    network: services::ServiceNetwork,
    /// Serves lists and watches from memory when present (see [`WatchCache`]).
    cache: Option<Arc<WatchCache>>,
    /// The admission chain writes made for a request pass (see [`admit`]).
    admission: Option<Arc<crate::auth::admission::Chain>>,
    /// The custom resources CRDs define, served beside the built-in table.
    custom: Arc<crate::crd::CustomResources>,
}

/// The storage key prefix of `resource`, optionally within one namespace (ending in `/`).
fn prefix(resource: &ResourceInfo, namespace: Option<&str>) -> Result<String, StatusError> {
    let base = resource
        .etcd_key_prefix()
        .ok_or_else(|| StatusError::method_not_supported(&resource.group_resource(), "list"))?;
    Ok(match namespace.filter(|_| resource.namespaced) {
        Some(ns) => format!("{base}/{ns}/"),
        None => format!("{base}/"),
    })
}

fn key(
    resource: &ResourceInfo,
    namespace: Option<&str>,
    name: &str,
) -> Result<String, StatusError> {
    Ok(format!("{}{name}", prefix(resource, namespace)?))
}

/// Decodes a stored object and stamps its resourceVersion, as upstream's versioner.
fn decode(kv: &KeyValue) -> Result<Value, StatusError> {
    let mut object: Value = serde_json::from_slice(&kv.value).map_err(|e| {
        StatusError::internal_error(format!("stored object {} is not JSON: {e}", kv.key))
    })?;
    meta::set_meta(&mut object, "resourceVersion", kv.mod_revision.to_string());
    Ok(object)
}

/// A `<Kind>List` of `items` (which lose apiVersion/kind, as upstream serializes typed
/// list items) read at `revision`, with the next page's token when there is one.
fn list_object(
    resource: &ResourceInfo,
    revision: Revision,
    next: Option<String>,
    remaining: Option<i64>,
    mut items: Vec<Value>,
) -> Value {
    let mut metadata = Map::new();
    metadata.insert(
        "resourceVersion".into(),
        Value::String(revision.to_string()),
    );
    if let Some(next) = next {
        metadata.insert("continue".into(), Value::String(next));
        if let Some(remaining) = remaining.filter(|r| *r > 0) {
            metadata.insert("remainingItemCount".into(), Value::from(remaining));
        }
    }
    for item in &mut items {
        if let Some(map) = item.as_object_mut() {
            map.remove("apiVersion");
            map.remove("kind");
        }
    }
    json!({
        "kind": format!("{}List", resource.kind),
        "apiVersion": resource.api_version(),
        "metadata": metadata,
        "items": items,
    })
}

/// Writes a stored object as served, `metadata.resourceVersion` stamped, without
/// decoding more than its metadata: the other top-level fields are copied as raw JSON.
/// `with_type_meta` false drops apiVersion/kind (a typed list's items).
pub fn write_versioned(
    kv: &KeyValue,
    with_type_meta: bool,
    out: &mut Vec<u8>,
) -> Result<(), StatusError> {
    let corrupt = |e: serde_json::Error| {
        StatusError::internal_error(format!("stored object {} is not JSON: {e}", kv.key))
    };
    let fields: std::collections::BTreeMap<String, &serde_json::value::RawValue> =
        serde_json::from_slice(&kv.value).map_err(corrupt)?;
    out.push(b'{');
    let mut first = true;
    let mut separator = |out: &mut Vec<u8>| {
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
    };
    let mut wrote_metadata = false;
    for (name, raw) in &fields {
        if !with_type_meta && (name == "apiVersion" || name == "kind") {
            continue;
        }
        separator(out);
        serde_json::to_writer(&mut *out, name).map_err(corrupt)?;
        out.push(b':');
        if name == "metadata" {
            let mut metadata: Map<String, Value> =
                serde_json::from_str(raw.get()).map_err(corrupt)?;
            metadata.insert(
                "resourceVersion".into(),
                Value::String(kv.mod_revision.to_string()),
            );
            serde_json::to_writer(&mut *out, &metadata).map_err(corrupt)?;
            wrote_metadata = true;
        } else {
            out.extend_from_slice(raw.get().as_bytes());
        }
    }
    if !wrote_metadata {
        separator(out);
        out.extend_from_slice(
            format!(
                "\"metadata\":{{\"resourceVersion\":\"{}\"}}",
                kv.mod_revision
            )
            .as_bytes(),
        );
    }
    out.push(b'}');
    Ok(())
}

/// Encodes an object for storage: without resourceVersion, which is the store's revision.
fn encode(object: &Value) -> Result<Bytes, StatusError> {
    serde_json::to_vec(&Stored(object))
        .map(Bytes::from)
        .map_err(StatusError::internal_error)
}

/// An object as stored: without `metadata.resourceVersion` (the store's revision says
/// it) and `metadata.selfLink`; serialized in place, as cloning the object to drop two
/// fields would cost a copy of every field.
struct Stored<'a>(&'a Value);

impl serde::Serialize for Stored<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let Value::Object(object) = self.0 else {
            return self.0.serialize(serializer);
        };
        let mut map = serializer.serialize_map(Some(object.len()))?;
        for (key, value) in object {
            match (key.as_str(), value) {
                ("metadata", Value::Object(metadata)) => {
                    map.serialize_key(key)?;
                    map.serialize_value(&StoredMetadata(metadata))?;
                }
                _ => map.serialize_entry(key, value)?,
            }
        }
        map.end()
    }
}

struct StoredMetadata<'a>(&'a serde_json::Map<String, Value>);

impl serde::Serialize for StoredMetadata<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        for (key, value) in self.0 {
            if key != "resourceVersion" && key != "selfLink" {
                map.serialize_entry(key, value)?;
            }
        }
        map.end()
    }
}

/// Upstream's storage-error interpretation (`storeerr.Interpret*Error`).
pub fn storage_error(error: StorageError, resource: &GroupResource, name: &str) -> StatusError {
    match error {
        StorageError::NotFound { .. } => StatusError::not_found(resource, name),
        StorageError::AlreadyExists { .. } => StatusError::already_exists(resource, name),
        StorageError::Conflict { .. } => StatusError::conflict(
            resource,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        ),
        StorageError::PreconditionFailed { message, .. } => {
            StatusError::conflict(resource, name, format!("Precondition failed: {message}"))
        }
        StorageError::Compacted {
            requested,
            compacted,
        } => {
            StatusError::too_old_resource_version(requested.max(0) as u64, compacted.max(0) as u64)
        }
        StorageError::FutureRevision { requested, current } => {
            StatusError::too_large_resource_version(
                requested.max(0) as u64,
                current.max(0) as u64,
                1,
            )
        }
        StorageError::ContinueExpired => StatusError::continue_expired(None),
        StorageError::InvalidContinue(why) => {
            StatusError::bad_request(format!("continue key is not valid: {why}"))
        }
        StorageError::Aborted(inner) => match inner.downcast::<StatusError>() {
            Ok(status) => *status,
            Err(other) => StatusError::internal_error(other),
        },
        other => StatusError::internal_error(other),
    }
}

/// Checks `apiVersion` and `kind` of a request body against the URL's resource and
/// fills them in when absent, as upstream's decoder defaulting.
fn check_type(resource: &ResourceInfo, object: &mut Value) -> Result<(), StatusError> {
    let expected_version = resource.api_version();
    let map = object
        .as_object_mut()
        .ok_or_else(|| StatusError::bad_request("the body of the request must be a JSON object"))?;
    match map.get("apiVersion").and_then(Value::as_str) {
        Some(v) if !v.is_empty() && v != expected_version => {
            return Err(StatusError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({expected_version})"
            )));
        }
        _ => {}
    }
    match map.get("kind").and_then(Value::as_str) {
        Some(k) if !k.is_empty() && k != resource.kind => {
            return Err(StatusError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                resource.kind
            )));
        }
        _ => {}
    }
    map.insert("apiVersion".into(), Value::String(expected_version));
    map.insert("kind".into(), Value::String(resource.kind.to_owned()));
    Ok(())
}

/// Reconciles the body's namespace with the URL's, as upstream's `EnsureObjectNamespaceMatchesRequestNamespace`.
fn check_namespace(
    resource: &ResourceInfo,
    namespace: Option<&str>,
    object: &mut Value,
) -> Result<(), StatusError> {
    if !resource.namespaced {
        meta::remove_meta(object, "namespace");
        return Ok(());
    }
    let url = namespace.unwrap_or("");
    match meta::meta_str(object, "namespace").unwrap_or("") {
        "" => meta::set_meta(object, "namespace", url),
        body if body == url => {}
        _ => {
            return Err(StatusError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
    }
    Ok(())
}

fn invalid(resource: &ResourceInfo, name: &str, errors: &[FieldError]) -> StatusError {
    StatusError::invalid(&resource.group_kind(), name, errors)
}

impl Registry {
    /// A registry over `storage` with the default service network.
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        Self::with_network(storage, services::ServiceNetwork::default())
    }

    /// A registry over `storage` allocating Service IPs and node ports from `network`.
    pub fn with_network(storage: Arc<dyn Storage>, network: services::ServiceNetwork) -> Self {
        Registry {
            storage,
            network,
            cache: None,
            admission: None,
            custom: Arc::default(),
        }
    }

    /// The custom resources this registry serves (filled by [`crate::crd::controller`]).
    pub fn custom(&self) -> &crate::crd::CustomResources {
        &self.custom
    }

    /// The resource a request path names: a built-in one, else a custom resource a CRD
    /// serves.
    pub fn find_resource(
        &self,
        group: &str,
        version: &str,
        plural: &str,
    ) -> Option<&'static ResourceInfo> {
        resources::find(group, version, plural)
            .or_else(|| self.custom.find(group, version, plural).map(|s| s.info))
    }

    /// The selectors of a list or watch of `resource`, with the selectable fields its
    /// CRD version declares.
    pub fn selectors(
        &self,
        resource: &ResourceInfo,
        params: &ListParams,
    ) -> Result<Selectors, StatusError> {
        let selectable = match resource.custom {
            true => self
                .custom
                .of(resource)
                .map(|s| s.selectable_fields.clone())
                .unwrap_or_default(),
            false => Vec::new(),
        };
        Selectors::parse_with(resource, params, selectable)
    }

    /// A custom resource in another version of its CRD (conversion `None` changes only
    /// `apiVersion`, as upstream's nop converter; `Webhook` asks the CRD's webhook).
    pub(crate) fn convert_custom(
        &self,
        resource: &ResourceInfo,
        objects: &mut [&mut Value],
        version: &str,
    ) -> Result<(), StatusError> {
        if !resource.custom {
            return Ok(());
        }
        let Some(served) = self.custom.of(resource) else {
            return Ok(());
        };
        let desired = resources::api_version(resource.group, version);
        crate::crd::conversion::convert(self, &served, objects, &desired)
    }

    /// A stored object as the request's version shows it (custom resources are stored
    /// in their CRD's storage version).
    pub(crate) fn in_requested_version(
        &self,
        resource: &ResourceInfo,
        mut object: Value,
    ) -> Result<Value, StatusError> {
        self.convert_custom(resource, &mut [&mut object], resource.version)?;
        Ok(object)
    }

    /// The bytes stored for `object`: a custom resource in its storage version.
    pub(super) fn encode_stored(
        &self,
        resource: &ResourceInfo,
        object: &Value,
    ) -> Result<Bytes, StatusError> {
        if !resource.custom {
            return encode(object);
        }
        let Some(served) = self.custom.of(resource) else {
            return encode(object);
        };
        let storage_api_version = resources::api_version(resource.group, &served.storage_version);
        if object.get("apiVersion").and_then(Value::as_str) == Some(storage_api_version.as_str()) {
            return encode(object);
        }
        let mut stored = object.clone();
        self.convert_custom(resource, &mut [&mut stored], &served.storage_version)?;
        encode(&stored)
    }

    /// Validation of a new object: the kind's rules, and a custom resource's schema.
    fn validate_new(&self, resource: &ResourceInfo, object: &Value) -> Vec<FieldError> {
        let mut errors = strategy::validate(resource, object);
        if resource.custom {
            errors.extend(self.custom.validate(resource, object, None));
        }
        errors
    }

    /// Validation of an update, after a custom resource's schema defaults and pruning.
    pub(crate) fn validate_changed(
        &self,
        resource: &ResourceInfo,
        updated: &mut Value,
        current: &Value,
    ) -> Vec<FieldError> {
        if resource.custom {
            self.custom.prepare(resource, updated);
        }
        let mut errors = strategy::validate_update(resource, updated, current);
        if resource.custom {
            errors.extend(self.custom.validate(resource, updated, Some(current)));
        }
        errors
    }

    /// The same registry passing writes made for requests through `chain`.
    pub fn with_admission(mut self, chain: crate::auth::admission::Chain) -> Self {
        self.admission = Some(Arc::new(chain));
        self
    }

    /// The same registry serving lists and watches from `cache` (over the same store).
    pub fn with_cache(mut self, cache: Arc<WatchCache>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// The objects a list reads, from the watch cache when it can answer: a full list
    /// (no limit, no continue) that is not at an exact resourceVersion. `None`: read
    /// the store.
    async fn list_from_cache(
        &self,
        prefix: &str,
        params: &ListParams,
    ) -> Result<Option<(Revision, Vec<KeyValue>)>, StatusError> {
        let Some(cache) = &self.cache else {
            return Ok(None);
        };
        let paged = params.limit.is_some_and(|l| l > 0)
            || params
                .continue_token
                .as_deref()
                .is_some_and(|t| !t.is_empty());
        if paged || params.resource_version_match.as_deref() == Some("Exact") {
            return Ok(None);
        }
        let min_revision = match params
            .resource_version
            .as_deref()
            .filter(|rv| !rv.is_empty())
        {
            None => None,
            Some(rv) => Some(parse_resource_version(rv)?),
        };
        Ok(cache.list(prefix, min_revision).await)
    }

    /// A full list as upstream's JSON bytes, built without decoding the objects, when
    /// the watch cache can answer and nothing needs filtering; `None` otherwise.
    pub async fn list_json_bytes(
        &self,
        resource: &ResourceInfo,
        namespace: Option<&str>,
        params: &ListParams,
    ) -> Result<Option<Bytes>, StatusError> {
        if !self.selectors(resource, params)?.is_everything() {
            return Ok(None);
        }
        let prefix = prefix(resource, namespace)?;
        let Some((revision, items)) = self.list_from_cache(&prefix, params).await? else {
            return Ok(None);
        };
        let mut out =
            Vec::with_capacity(items.iter().map(|kv| kv.value.len() + 32).sum::<usize>() + 128);
        out.extend_from_slice(b"{\"kind\":");
        serde_json::to_writer(&mut out, &format!("{}List", resource.kind))
            .map_err(StatusError::internal_error)?;
        out.extend_from_slice(b",\"apiVersion\":");
        serde_json::to_writer(&mut out, &resource.api_version())
            .map_err(StatusError::internal_error)?;
        out.extend_from_slice(
            format!(",\"metadata\":{{\"resourceVersion\":\"{revision}\"}},\"items\":[").as_bytes(),
        );
        for (i, kv) in items.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_versioned(kv, false, &mut out)?;
        }
        out.extend_from_slice(b"]}");
        Ok(Some(Bytes::from(out)))
    }

    /// Creates (or leaves be) the `kubernetes` Service and Endpoints in `default`,
    /// pointing at the apiserver, as upstream's controlplane reconciler.
    pub async fn ensure_kubernetes_service(
        &self,
        address: std::net::IpAddr,
        port: u16,
    ) -> Result<(), StatusError> {
        let find = |plural| {
            resources::find("", "v1", plural)
                .ok_or_else(|| StatusError::internal_error("the resource table lacks core/v1"))
        };
        let service = json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {
                "clusterIP": self.network.first_ip().to_string(),
                "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}],
                "sessionAffinity": "None",
                "type": "ClusterIP",
            },
        });
        let endpoints = json!({
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
            "subsets": [{"addresses": [{"ip": address.to_string()}], "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}],
        });
        for (plural, object) in [("services", service), ("endpoints", endpoints)] {
            match self
                .create(find(plural)?, Some("default"), object, false)
                .await
            {
                Ok(_) => {}
                Err(e) if e.is_already_exists() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Creates the system namespaces that do not exist yet.
    pub async fn ensure_system_namespaces(&self) -> Result<(), StatusError> {
        let namespaces = resources::find("", "v1", "namespaces")
            .ok_or_else(|| StatusError::internal_error("the resource table has no namespaces"))?;
        for name in SYSTEM_NAMESPACES {
            let object =
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
            match self.create(namespaces, None, object, false).await {
                Ok(_) => {}
                Err(e) if e.is_already_exists() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Creates the system PriorityClasses that do not exist yet, as upstream's
    /// `scheduling/bootstrap-system-priority-classes` post-start hook.
    pub async fn ensure_system_priority_classes(&self) -> Result<(), StatusError> {
        let classes =
            resources::find("scheduling.k8s.io", "v1", "priorityclasses").ok_or_else(|| {
                StatusError::internal_error("the resource table lacks priorityclasses")
            })?;
        for (name, value, description) in validation::scheduling::SYSTEM_PRIORITY_CLASSES {
            let object = json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                "metadata": {"name": name}, "value": value, "description": description,
                "preemptionPolicy": "PreemptLowerPriority"});
            match self.create(classes, None, object, false).await {
                Ok(_) => {}
                Err(e) if e.is_already_exists() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Refuses new content in a missing or terminating namespace, as upstream's
    /// NamespaceLifecycle admission.
    async fn check_namespace_lifecycle(
        &self,
        resource: &ResourceInfo,
        namespace: &str,
    ) -> Result<(), StatusError> {
        if !resource.namespaced {
            return Ok(());
        }
        let namespaces = GroupResource::core("namespaces");
        let key = format!("/registry/namespaces/{namespace}");
        let terminating = |object: &Value| {
            meta::meta_str(object, "deletionTimestamp").is_some()
                || object.pointer("/status/phase").and_then(Value::as_str) == Some("Terminating")
        };
        // As upstream's admission plugin: the cached namespace answers when it is active;
        // a missing or terminating one is confirmed against the store, since the cache
        // may be a moment behind a namespace just created (or just re-created).
        if let Some(kv) = self.cache.as_ref().and_then(|c| c.get_stale(&key))
            && !terminating(&decode(&kv)?)
        {
            return Ok(());
        }
        let kv = self
            .storage
            .get(&key, None)
            .await
            .map_err(|e| storage_error(e, &namespaces, namespace))?;
        let object = decode(&kv)?;
        if terminating(&object) {
            return Err(StatusError::forbidden(
                &resource.group_resource(),
                "",
                format!(
                    "unable to create new content in namespace {namespace} because it is being terminated"
                ),
            ));
        }
        Ok(())
    }

    /// Creates an object (POST), returning it as stored.
    pub async fn create(
        &self,
        resource: &'static ResourceInfo,
        namespace: Option<&str>,
        object: Value,
        dry_run: bool,
    ) -> Result<Value, StatusError> {
        self.create_as(resource, namespace, object, dry_run, None)
            .await
    }

    /// Creates an object as `writer`, who then owns its fields in managedFields
    /// (`None`: the object's managedFields are kept as they are).
    pub(crate) async fn create_as(
        &self,
        resource: &'static ResourceInfo,
        namespace: Option<&str>,
        mut object: Value,
        dry_run: bool,
        writer: Option<&crate::managed_fields::Writer>,
    ) -> Result<Value, StatusError> {
        check_type(resource, &mut object)?;
        check_namespace(resource, namespace, &mut object)?;
        // System fields are the registry's, whatever the client sent.
        for field in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
        ] {
            meta::remove_meta(&mut object, field);
        }
        let generate = meta::meta_str(&object, "generateName")
            .unwrap_or("")
            .to_owned();
        let generated = meta::name(&object).is_empty() && !generate.is_empty();
        // The uid first: some defaults derive from it (a Job's generated selector).
        meta::set_meta(&mut object, "uid", meta::new_uid());
        meta::set_meta(&mut object, "creationTimestamp", meta::now_rfc3339());
        strategy::prepare_for_create(resource, &mut object);
        if resource.group == "certificates.k8s.io"
            && resource.plural == "certificatesigningrequests"
        {
            strategy::stamp_csr_requester(
                &mut object,
                crate::auth::filter::current_request()
                    .map(|r| r.user)
                    .as_ref(),
            );
        }
        if resource.custom {
            if self.custom.of(resource).is_some_and(|s| s.terminating) {
                return Err(StatusError::method_not_supported_message(
                    &resource.group_resource(),
                    "create not allowed while custom resource definition is terminating",
                ));
            }
            self.custom.prepare(resource, &mut object);
        }
        // upstream records the creator's fields before admission: what admission adds
        // is nobody's
        if let (Some(writer), Some(schema)) = (writer, self.kind_schema(resource)) {
            let reset = ownership::reset_fields(resource, Part::Main);
            crate::managed_fields::track_update(schema.get(), None, &mut object, writer, &reset);
        }
        let admission = self.admission_for(resource);
        if let Some(admission) = &admission {
            admission
                .mutate(Operation::Create, &mut object, None, dry_run)
                .await?;
        }

        let ns = meta::namespace(&object).to_owned();
        let attempts = if generated { 5 } else { 1 };
        for attempt in 1..=attempts {
            if generated {
                meta::set_meta(&mut object, "name", meta::generate_name(&generate));
            }
            strategy::prepare_named(resource, &mut object);
            if let Some(admission) = &admission {
                admission
                    .validate_early(Operation::Create, &object, None, dry_run)
                    .await?;
            }
            let errors = self.validate_new(resource, &object);
            let name = meta::name(&object).to_owned();
            if !errors.is_empty() {
                return Err(invalid(resource, &name, &errors));
            }
            if let Some(admission) = &admission {
                admission
                    .validate(Operation::Create, &object, None, dry_run)
                    .await?;
            }
            self.check_namespace_lifecycle(resource, &ns).await?;
            if dry_run {
                return Ok(object);
            }
            let claims =
                services::allocate(self.storage.as_ref(), &self.network, resource, &mut object)
                    .await?;
            let key = key(resource, Some(&ns), &name)?;
            let stored = self
                .storage
                .create(&key, self.encode_stored(resource, &object)?)
                .await;
            if stored.is_err() {
                services::release(self.storage.as_ref(), &self.network, &claims).await;
            }
            match stored {
                // the object is what was stored, at the store's revision: no need to
                // parse the stored bytes back
                Ok(kv) => {
                    meta::remove_meta(&mut object, "selfLink");
                    meta::set_meta(&mut object, "resourceVersion", kv.mod_revision.to_string());
                    return Ok(object);
                }
                Err(StorageError::AlreadyExists { .. }) if generated && attempt < attempts => {
                    continue;
                }
                Err(StorageError::AlreadyExists { .. }) if generated => {
                    return Err(StatusError::generate_name_conflict(
                        &resource.group_resource(),
                        &name,
                        1,
                    ));
                }
                Err(e) => return Err(storage_error(e, &resource.group_resource(), &name)),
            }
        }
        Err(StatusError::internal_error("name generation gave up"))
    }

    /// Reads one object (GET).
    pub async fn get(
        &self,
        resource: &ResourceInfo,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, StatusError> {
        let kv = self
            .storage
            .get(&key(resource, namespace, name)?, None)
            .await
            .map_err(|e| storage_error(e, &resource.group_resource(), name))?;
        decode(&kv)
    }

    /// Lists objects (GET on a collection), returning the `<Kind>List`.
    pub async fn list(
        &self,
        resource: &ResourceInfo,
        namespace: Option<&str>,
        params: &ListParams,
    ) -> Result<Value, StatusError> {
        let selectors = self.selectors(resource, params)?;
        let prefix = prefix(resource, namespace)?;
        let exact = params.resource_version_match.as_deref() == Some("Exact");
        let mut revision = match (&params.resource_version, exact) {
            (Some(rv), true) => Some(parse_resource_version(rv)?),
            _ => None,
        };
        let limit = params.limit.filter(|l| *l > 0);
        let mut token = params.continue_token.clone().filter(|t| !t.is_empty());
        if token.is_some()
            && params
                .resource_version
                .as_deref()
                .is_some_and(|rv| !rv.is_empty() && rv != "0")
        {
            return Err(StatusError::bad_request(
                "specifying resource version is not allowed when using continue",
            ));
        }
        let gr = resource.group_resource();
        let mut items = Vec::new();
        if let Some((revision, cached)) = self.list_from_cache(&prefix, params).await? {
            for kv in &cached {
                let object = decode(kv)?;
                if selectors.matches(resource, &object) {
                    items.push(object);
                }
            }
            return Ok(list_object(resource, revision, None, None, items));
        }
        let (list_revision, next, remaining) = loop {
            let page = self
                .storage
                .list(
                    &prefix,
                    &ListOptions {
                        revision,
                        limit,
                        continue_token: token.clone(),
                    },
                )
                .await
                .map_err(|e| storage_error(e, &gr, ""))?;
            revision = Some(page.revision);
            let mut cut = None;
            let count = page.items.len();
            for (i, kv) in page.items.iter().enumerate() {
                let object = decode(kv)?;
                if selectors.matches(resource, &object) {
                    items.push(object);
                    if limit.is_some_and(|l| items.len() >= l)
                        && (i + 1 < count || page.continue_token.is_some())
                    {
                        let start = format!("{}\u{0}", &kv.key[prefix.len().min(kv.key.len())..]);
                        cut = Some(
                            ContinueToken {
                                revision: page.revision,
                                start,
                            }
                            .encode(),
                        );
                        break;
                    }
                }
            }
            if cut.is_some() {
                let remaining = if selectors.is_everything() {
                    page.remaining
                        .map(|r| r + (count as i64 - items.len() as i64).max(0))
                } else {
                    None
                };
                break (page.revision, cut, remaining);
            }
            match page.continue_token {
                Some(next) => token = Some(next),
                None => break (page.revision, None, None),
            }
        };
        Ok(list_object(resource, list_revision, next, remaining, items))
    }

    /// Replaces an object (PUT), or its status (PUT on `/status`).
    pub async fn update(
        &self,
        resource: &'static ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        object: Value,
        part: Part,
        dry_run: bool,
    ) -> Result<Value, StatusError> {
        self.update_as(resource, namespace, name, object, part, dry_run, None)
            .await
    }

    /// Replaces an object as `writer`, who then owns what it changed.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn update_as(
        &self,
        resource: &'static ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        mut object: Value,
        part: Part,
        dry_run: bool,
        writer: Option<&crate::managed_fields::Writer>,
    ) -> Result<Value, StatusError> {
        check_type(resource, &mut object)?;
        check_namespace(resource, namespace, &mut object)?;
        if meta::name(&object) != name {
            return Err(StatusError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                meta::name(&object)
            )));
        }
        let body = object;
        let schema = writer.and(self.kind_schema(resource));
        let reset = ownership::reset_fields(resource, part);
        self.write(resource, namespace, name, dry_run, move |current| {
            let mut updated = prepare_update(resource, name, current, &body, part)?;
            ownership::track(
                schema.as_ref(),
                writer,
                &reset,
                Some(current),
                &body,
                &mut updated,
            );
            Ok(updated)
        })
        .await
    }

    /// Reads, transforms and writes one object with optimistic concurrency, then
    /// finishes a deletion whose last finalizer the write removed.
    pub async fn write<F>(
        &self,
        resource: &'static ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        dry_run: bool,
        transform: F,
    ) -> Result<Value, StatusError>
    where
        F: Fn(&Value) -> Result<Value, StatusError> + Send + Sync,
    {
        if let Some(admission) = self.admission_for(resource) {
            return self
                .write_admitted(resource, namespace, name, dry_run, transform, admission)
                .await;
        }
        let gr = resource.group_resource();
        let key = key(resource, namespace, name)?;
        let compute = |kv: &KeyValue| -> Result<Value, StatusError> {
            let current = self.in_requested_version(resource, decode(kv)?)?;
            let mut updated = transform(&current)?;
            let errors = self.validate_changed(resource, &mut updated, &current);
            if !errors.is_empty() {
                return Err(invalid(resource, name, &errors));
            }
            Ok(updated)
        };
        if dry_run {
            let kv = self
                .storage
                .get(&key, None)
                .await
                .map_err(|e| storage_error(e, &gr, name))?;
            let mut updated = compute(&kv)?;
            meta::set_meta(&mut updated, "resourceVersion", kv.mod_revision.to_string());
            return Ok(updated);
        }
        let update = |current: Option<&KeyValue>| -> Result<Bytes, StorageError> {
            let kv = current.ok_or_else(|| StorageError::NotFound { key: key.clone() })?;
            let updated = compute(kv).map_err(|e| StorageError::Aborted(Box::new(e)))?;
            self.encode_stored(resource, &updated)
                .map_err(|e| StorageError::Aborted(Box::new(e)))
        };
        let kv = self
            .storage
            .guaranteed_update(&key, &Preconditions::default(), false, &update)
            .await
            .map_err(|e| storage_error(e, &gr, name))?;
        self.finish_write(resource, &key, name, kv).await
    }

    /// The stored object after a write, once a deletion whose last finalizer the write
    /// removed is finished.
    async fn finish_write(
        &self,
        resource: &'static ResourceInfo,
        key: &str,
        name: &str,
        kv: KeyValue,
    ) -> Result<Value, StatusError> {
        let object = decode(&kv)?;
        if strategy::ready_to_delete(resource, &object) {
            let preconditions = Preconditions {
                uid: None,
                resource_version: Some(kv.mod_revision),
            };
            match self.storage.delete(key, &preconditions).await {
                Ok(_) | Err(StorageError::NotFound { .. }) => {}
                Err(e) => return Err(storage_error(e, &resource.group_resource(), name)),
            }
        }
        Ok(object)
    }

    /// Watches a collection from `resource_version` (`None` or "0": the current state as
    /// ADDED events first, as upstream's watch without a resourceVersion).
    pub async fn watch(
        &self,
        resource: &ResourceInfo,
        namespace: Option<&str>,
        resource_version: Option<&str>,
        bookmarks: bool,
    ) -> Result<CachedWatchStream, StatusError> {
        let prefix = prefix(resource, namespace)?;
        let after = match resource_version.filter(|rv| !rv.is_empty()) {
            None => 0,
            Some(rv) => parse_resource_version(rv)?,
        };
        let options = WatchOptions {
            progress_notify: bookmarks.then(|| std::time::Duration::from_secs(60)),
        };
        let stream = match &self.cache {
            Some(cache) => cache.watch(&prefix, after, options).await,
            None => self
                .storage
                .watch(&prefix, after, options)
                .await
                .map(|s| -> CachedWatchStream { Box::pin(s.map(|e| e.map(CachedEvent::new))) }),
        };
        stream.map_err(|e| storage_error(e, &resource.group_resource(), ""))
    }

    /// A watch that starts with the collection's state as ADDED events and a bookmark
    /// marking their end, as upstream's `sendInitialEvents=true` (the watch-list
    /// protocol): the state is read not older than `resource_version` ("" for the
    /// store's current revision, "0" for any), then changes after it follow.
    pub async fn watch_with_initial_events(
        &self,
        resource: &ResourceInfo,
        namespace: Option<&str>,
        resource_version: Option<&str>,
        bookmarks: bool,
    ) -> Result<CachedWatchStream, StatusError> {
        let prefix = prefix(resource, namespace)?;
        let params = ListParams {
            resource_version: resource_version.map(str::to_owned),
            ..ListParams::default()
        };
        let gr = resource.group_resource();
        let (revision, items) = match self.list_from_cache(&prefix, &params).await? {
            Some(found) => found,
            None => {
                // No cache (or it is behind): the store's pages, read at one revision.
                let mut items = Vec::new();
                let mut options = ListOptions::default();
                loop {
                    let page = self
                        .storage
                        .list(&prefix, &options)
                        .await
                        .map_err(|e| storage_error(e, &gr, ""))?;
                    items.extend(page.items);
                    match page.continue_token {
                        Some(token) => {
                            options = ListOptions {
                                revision: Some(page.revision),
                                limit: None,
                                continue_token: Some(token),
                            };
                        }
                        None => break (page.revision, items),
                    }
                }
            }
        };
        let mut initial: Vec<Result<Arc<CachedEvent>, StorageError>> = items
            .into_iter()
            .map(|kv| Ok(CachedEvent::new(crate::storage::WatchEvent::Added(kv))))
            .collect();
        // The end is marked by a bookmark, which only watchers allowing them get.
        if bookmarks {
            initial.push(Ok(CachedEvent::initial_events_end(revision)));
        }
        let live = self
            .watch(resource, namespace, Some(&revision.to_string()), bookmarks)
            .await?;
        Ok(Box::pin(futures::stream::iter(initial).chain(live)))
    }

    /// The store's current revision (what a watch "from now" starts after).
    pub async fn current_revision(&self) -> Result<Revision, StatusError> {
        self.storage
            .current_revision()
            .await
            .map_err(|e| storage_error(e, &GroupResource::core(""), ""))
    }

    /// Decodes a stored object for the watch stream.
    pub fn decode_object(kv: &KeyValue) -> Result<Value, StatusError> {
        decode(kv)
    }
}

/// The object an update (PUT or PATCH) stores, from the current object and the
/// requested one: the part the request may change, upstream's defaults, Service
/// allocations kept, and the request's resourceVersion as a precondition.
pub fn prepare_update(
    resource: &'static ResourceInfo,
    name: &str,
    current: &Value,
    requested: &Value,
    part: Part,
) -> Result<Value, StatusError> {
    let wanted_rv = meta::meta_str(requested, "resourceVersion").unwrap_or("");
    let current_rv = meta::meta_str(current, "resourceVersion").unwrap_or("");
    if !wanted_rv.is_empty() && wanted_rv != current_rv {
        return Err(StatusError::conflict(
            &resource.group_resource(),
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        ));
    }
    let mut updated = strategy::merge_update(resource, current, requested, part);
    strategy::set_defaults(resource, &mut updated);
    let errors = strategy::validate_part(resource, &updated, current, part);
    if !errors.is_empty() {
        return Err(invalid(resource, name, &errors));
    }
    let errors = services::keep_allocations(resource, current, &mut updated);
    if !errors.is_empty() {
        return Err(invalid(resource, name, &errors));
    }
    meta::remove_meta(&mut updated, "resourceVersion");
    Ok(updated)
}

/// Parses a resourceVersion parameter, with upstream's message for bad ones.
pub fn parse_resource_version(rv: &str) -> Result<i64, StatusError> {
    rv.parse::<i64>()
        .ok()
        .filter(|r| *r >= 0)
        .ok_or_else(|| StatusError::bad_request(format!("invalid resource version: {rv:?}")))
}

#[cfg(test)]
mod tests;
