//! The shared registry tester for per-kind validation: each kind's tests hand it one
//! valid object and several invalid ones with the message upstream answers, and it
//! drives them through a real [`Registry`] over the in-memory store, checking the 422
//! `Invalid` Status (reason, message) and that nothing was stored.

use std::sync::Arc;

use apimachinery::errors::{StatusError, StatusReason};
use apimachinery::resources::{ResourceInfo, find};
use serde_json::Value;

use crate::registry::{Part, Registry, meta};
use crate::storage::memory::MemoryStore;

/// A registry over a fresh in-memory store, with the system namespaces.
pub async fn registry() -> Registry {
    let registry = Registry::new(Arc::new(MemoryStore::new()));
    registry
        .ensure_system_namespaces()
        .await
        .expect("system namespaces");
    registry
}

/// The table entry for `group`/`version`/`plural`.
pub fn resource(group: &str, version: &str, plural: &str) -> &'static ResourceInfo {
    find(group, version, plural)
        .unwrap_or_else(|| panic!("{group}/{version}/{plural} in the table"))
}

/// One kind under test.
pub struct Tester {
    pub registry: Registry,
    pub resource: &'static ResourceInfo,
    /// The namespace objects are created in (`None` for cluster-scoped kinds).
    pub namespace: Option<&'static str>,
}

impl Tester {
    pub async fn new(group: &str, version: &str, plural: &str) -> Self {
        let resource = resource(group, version, plural);
        Tester {
            registry: registry().await,
            resource,
            namespace: resource.namespaced.then_some("default"),
        }
    }

    /// Creates `object`, which must be valid; returns it as stored.
    pub async fn create_valid(&self, object: Value) -> Value {
        let name = meta::name(&object).to_owned();
        self.registry
            .create(self.resource, self.namespace, object, false)
            .await
            .unwrap_or_else(|e| panic!("{} {name} should be valid: {e:?}", self.resource.kind))
    }

    /// Creates `object`, which must be refused with a 422 whose message is `message`;
    /// checks nothing was stored.
    pub async fn create_invalid(&self, object: Value, message: &str) {
        let name = meta::name(&object).to_owned();
        let err = self
            .registry
            .create(self.resource, self.namespace, object, false)
            .await
            .expect_err("the object should be invalid");
        assert_invalid(&err, message);
        if !name.is_empty() {
            let missing = self
                .registry
                .get(self.resource, self.namespace, &name)
                .await;
            assert!(
                missing.is_err_and(|e| e.is_not_found()),
                "an invalid {} was stored",
                self.resource.kind
            );
        }
    }

    /// Replaces the stored object with `object` (built from a stored one, so it carries
    /// its resourceVersion), which must be refused with `message`.
    pub async fn update_invalid(&self, object: Value, message: &str) {
        let name = meta::name(&object).to_owned();
        let err = self
            .registry
            .update(
                self.resource,
                self.namespace,
                &name,
                object,
                Part::Main,
                false,
            )
            .await
            .expect_err("the update should be invalid");
        assert_invalid(&err, message);
    }

    /// Replaces the stored object with `object`, which must be accepted.
    pub async fn update_valid(&self, object: Value) -> Value {
        let name = meta::name(&object).to_owned();
        self.registry
            .update(
                self.resource,
                self.namespace,
                &name,
                object,
                Part::Main,
                false,
            )
            .await
            .unwrap_or_else(|e| panic!("update of {name} should be valid: {e:?}"))
    }
}

/// Asserts `err` is upstream's 422 Invalid with exactly `message`.
pub fn assert_invalid(err: &StatusError, message: &str) {
    assert_eq!(err.http_status(), 422, "{err:?}");
    assert_eq!(err.reason(), StatusReason::Invalid, "{err:?}");
    assert_eq!(err.status().message, message);
}
