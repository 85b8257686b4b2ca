//! CustomResourceDefinitions (apiextensions.k8s.io/v1): what upstream's
//! apiextensions-apiserver adds to kube-apiserver.
//!
//! - The CRD objects are stored by the generic registry; [`strategy`] holds their own
//!   defaults and validation, and the DELETE that starts the cleanup.
//! - [`controller`] follows the CRDs as upstream's naming, establishing and finalizer
//!   controllers do: it accepts names (or reports the conflict), marks a CRD
//!   Established, registers its served versions in the registry's
//!   [`CustomResources`] table, and deletes a deleted CRD's custom resources.
//! - Requests for a custom resource find it in that table and go through the same
//!   generic registry as built-in kinds; [`CustomResources::prepare`] and
//!   [`CustomResources::validate`] add the CRD's schema: defaulting, pruning and
//!   validation ([`schema_validation`]), and its CEL rules ([`cel_rules`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use apimachinery::errors::FieldError;
use apimachinery::resources::{self, ResourceInfo, Subresource};
use serde_json::Value;

pub mod cel_rules;
pub mod controller;
pub(crate) mod conversion;
pub mod schema_validation;
pub mod strategy;

/// The finalizer a CRD carries while its custom resources are deleted.
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

/// Every verb of a custom resource, in upstream's discovery order.
const VERBS: &[&str] = &[
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "create",
    "update",
    "watch",
];

/// One served version of a custom resource.
#[derive(Debug)]
pub struct Served {
    /// The resource as the registry and the HTTP layer see it.
    pub info: &'static ResourceInfo,
    /// The CRD's name (`<plural>.<group>`).
    pub crd: String,
    /// The version that stores objects (upstream converts to it; with one schema
    /// shape per CRD, conversion `None` only rewrites apiVersion).
    pub storage_version: String,
    /// The version's `openAPIV3Schema`.
    pub schema: Option<Value>,
    /// The version's `additionalPrinterColumns`.
    pub printer_columns: Vec<Value>,
    /// The version's `subresources.scale`, if any.
    pub scale: Option<Value>,
    /// Whether the CRD is being deleted (creates are refused).
    pub terminating: bool,
    /// The version's `selectableFields`, as dotted paths (`spec.color`).
    pub selectable_fields: Vec<String>,
    /// The conversion webhook's `clientConfig`, when the CRD converts by webhook.
    pub conversion_webhook: Option<Value>,
    /// The schema compiled for field ownership, on first use.
    shapes: std::sync::OnceLock<(crate::schema::Shapes, crate::schema::NodeId)>,
}

impl Served {
    /// The version's schema as server-side apply reads it.
    pub(crate) fn shapes(&self) -> (&crate::schema::Shapes, crate::schema::NodeId) {
        let (shapes, root) = self
            .shapes
            .get_or_init(|| crate::schema::Shapes::for_custom_resource(self.schema.as_ref()));
        (shapes, *root)
    }

    /// Prunes and defaults `object` by this version's schema.
    pub fn prepare(&self, object: &mut Value) -> Vec<String> {
        let Some(schema) = &self.schema else {
            return Vec::new();
        };
        let pruned = schema_validation::prune(schema, object);
        schema_validation::apply_defaults(schema, object);
        pruned
    }
}

/// The custom resources one registry serves, keyed by group, version and plural.
#[derive(Default)]
pub struct CustomResources {
    served: RwLock<HashMap<(String, String, String), Arc<Served>>>,
    /// Leaked resource entries, one per distinct definition, reused when a CRD is
    /// registered again unchanged (as happens on every resync).
    interned: Mutex<HashMap<String, &'static ResourceInfo>>,
}

impl std::fmt::Debug for CustomResources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CustomResources").finish_non_exhaustive()
    }
}

impl CustomResources {
    /// The custom resource a request path names, if a CRD serves it.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<Arc<Served>> {
        let served = self.served.read().unwrap_or_else(|p| p.into_inner());
        served
            .get(&(group.to_owned(), version.to_owned(), plural.to_owned()))
            .cloned()
    }

    /// What the table holds for `info`.
    pub fn of(&self, info: &ResourceInfo) -> Option<Arc<Served>> {
        if !info.custom {
            return None;
        }
        self.find(info.group, info.version, info.plural)
    }

    /// Every served custom resource, sorted by group, version and plural.
    pub fn all(&self) -> Vec<Arc<Served>> {
        let served = self.served.read().unwrap_or_else(|p| p.into_inner());
        let mut all: Vec<_> = served.values().cloned().collect();
        all.sort_by(|a, b| {
            (a.info.group, a.info.version, a.info.plural).cmp(&(
                b.info.group,
                b.info.version,
                b.info.plural,
            ))
        });
        all
    }

    /// Serves exactly `versions` for the CRD named `crd` (none: stops serving it).
    pub fn set(&self, crd: &str, versions: Vec<Served>) {
        let mut served = self.served.write().unwrap_or_else(|p| p.into_inner());
        served.retain(|_, s| s.crd != crd);
        for version in versions {
            let key = (
                version.info.group.to_owned(),
                version.info.version.to_owned(),
                version.info.plural.to_owned(),
            );
            served.insert(key, Arc::new(version));
        }
    }

    /// A `'static` resource entry equal to `info`: an earlier one when there is one,
    /// else `info` leaked. Requests hold `&'static ResourceInfo`; entries live as long
    /// as the process, and there is one per distinct definition, not per resync.
    /// `key` describes every field of the entry `make` builds (and leaks).
    pub(crate) fn intern(
        &self,
        key: String,
        make: impl FnOnce() -> ResourceInfo,
    ) -> &'static ResourceInfo {
        let mut interned = self.interned.lock().unwrap_or_else(|p| p.into_inner());
        interned
            .entry(key)
            .or_insert_with(|| Box::leak(Box::new(make())))
    }

    /// Pruning of what the schema does not declare, then its defaults, in the order
    /// upstream decodes a custom resource; returns the pruned paths.
    pub fn prepare(&self, info: &ResourceInfo, object: &mut Value) -> Vec<String> {
        self.of(info)
            .map_or_else(Vec::new, |served| served.prepare(object))
    }

    /// The fields of a request the CRD's schema would prune (`spec.extra`), for
    /// `fieldValidation`; the request is the caller's to lose: they are found by
    /// pruning it.
    pub fn unknown_fields_in(&self, info: &ResourceInfo, request: &mut Value) -> Vec<String> {
        match self.of(info).as_ref().and_then(|s| s.schema.as_ref()) {
            Some(schema) => schema_validation::prune(schema, request),
            None => Vec::new(),
        }
    }

    /// The schema's errors for a custom resource: its OpenAPI keywords, then, when
    /// those hold, its CEL rules (`old` is the object before an update, for the
    /// transition rules).
    pub fn validate(
        &self,
        info: &ResourceInfo,
        object: &Value,
        old: Option<&Value>,
    ) -> Vec<FieldError> {
        let Some(served) = self.of(info) else {
            return Vec::new();
        };
        let Some(schema) = &served.schema else {
            return Vec::new();
        };
        let errors = schema_validation::validate(schema, object);
        if !errors.is_empty() {
            // upstream runs no rule over values of the wrong shape
            return errors;
        }
        cel_rules::validate(schema, object, old)
    }
}

/// Leaks a string for a `'static` resource entry (see [`CustomResources::intern`]).
fn leak(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

fn leak_list(items: &[String]) -> &'static [&'static str] {
    Box::leak(
        items
            .iter()
            .map(|s| leak(s))
            .collect::<Vec<_>>()
            .into_boxed_slice(),
    )
}

/// The served versions of an accepted CRD, with the names it was accepted under.
pub(crate) fn served_versions(table: &CustomResources, crd: &Value) -> Vec<Served> {
    let spec = &crd["spec"];
    let names = &crd["status"]["acceptedNames"];
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let group = spec["group"].as_str().unwrap_or("");
    let plural = names["plural"].as_str().unwrap_or("");
    let kind = names["kind"].as_str().unwrap_or("");
    if group.is_empty() || plural.is_empty() || kind.is_empty() {
        return Vec::new();
    }
    let singular = names["singular"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| kind.to_ascii_lowercase());
    let namespaced = spec["scope"].as_str() == Some("Namespaced");
    let terminating = crd
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null());
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    let storage_version = versions
        .iter()
        .find(|v| v["storage"] == Value::Bool(true))
        .and_then(|v| v["name"].as_str())
        .unwrap_or("")
        .to_owned();
    let conversion_webhook = (spec.pointer("/conversion/strategy").and_then(Value::as_str)
        == Some("Webhook"))
    .then(|| spec.pointer("/conversion/webhook/clientConfig").cloned())
    .flatten();
    let crd_name = crd
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    versions
        .iter()
        .filter(|v| v["served"] == Value::Bool(true))
        .filter_map(|v| {
            let version = v["name"].as_str()?;
            let status = v.pointer("/subresources/status").is_some_and(Value::is_object);
            let scale = v
                .pointer("/subresources/scale")
                .filter(|s| s.is_object())
                .cloned();
            let short_names = strings(&names["shortNames"]);
            let categories = strings(&names["categories"]);
            let key = format!(
                "{group}|{version}|{kind}|{plural}|{singular}|{namespaced}|{short_names:?}|{categories:?}|{status}|{}",
                scale.is_some()
            );
            let info = table.intern(key, || {
                let kind: &'static str = leak(kind);
                let mut subresources: Vec<Subresource> = Vec::new();
                if status {
                    subresources.push(resources::status(kind));
                }
                if scale.is_some() {
                    subresources.push(resources::SCALE);
                }
                ResourceInfo::custom(
                    leak(group),
                    leak(version),
                    kind,
                    leak(plural),
                    leak(&singular),
                    namespaced,
                    leak_list(&short_names),
                    leak_list(&categories),
                    // every verb stays served while the CRD terminates (creates get
                    // upstream's own refusal from the registry)
                    VERBS,
                    Box::leak(subresources.into_boxed_slice()),
                    leak(&format!("{group}/{plural}")),
                )
            });
            Some(Served {
                info,
                crd: crd_name.clone(),
                storage_version: storage_version.clone(),
                schema: v.pointer("/schema/openAPIV3Schema").cloned(),
                printer_columns: v["additionalPrinterColumns"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default(),
                scale,
                terminating,
                conversion_webhook: conversion_webhook.clone(),
                selectable_fields: v["selectableFields"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|f| f["jsonPath"].as_str())
                    .filter_map(|p| strategy::selectable_path(p).ok())
                    .map(|steps| steps.join("."))
                    .collect(),
                shapes: Default::default(),
            })
        })
        .collect()
}
