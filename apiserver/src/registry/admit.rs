//! Where writes meet admission: the registry asks the admission chain about every
//! create, update and delete made for a request (the server's own writes, made outside
//! any request, are not admitted). Updates are admitted outside the storage's
//! compare-and-swap loop, because plugins may wait (webhooks, lookups): the object is
//! read, transformed and admitted, then written only if nobody wrote in between;
//! otherwise the whole round runs again on the newer state.

use std::sync::Arc;

use apimachinery::errors::StatusError;
use apimachinery::resources::ResourceInfo;
use serde_json::Value;

use super::{Registry, decode, invalid, key, meta, storage_error};
use crate::auth::admission::{Attributes, Chain, Operation};
use crate::auth::filter::{RequestContext, current_request};
use crate::storage::{Preconditions, StorageError};

/// How many times an admitted update is retried when other writers keep winning.
const MAX_ATTEMPTS: usize = 16;

/// The admission chain bound to one request and resource.
pub(super) struct Admitter {
    chain: Arc<Chain>,
    request: RequestContext,
    resource: &'static ResourceInfo,
}

impl Admitter {
    fn attributes<'a>(
        &'a self,
        operation: Operation,
        object: &'a Value,
        old: Option<&'a Value>,
        dry_run: bool,
    ) -> Attributes<'a> {
        let info = &self.request.info;
        // the request's subresource, when it is this resource's (a pod binding writes
        // the pod; an eviction's disruption budget write is the budget's main resource)
        let subresource =
            if info.resource == self.resource.plural && info.api_group == self.resource.group {
                info.subresource.as_str()
            } else {
                ""
            };
        let name = match meta::name(object) {
            "" => old.map(meta::name).unwrap_or(""),
            name => name,
        };
        let namespace = match meta::namespace(object) {
            "" => info.namespace.as_str(),
            namespace => namespace,
        };
        Attributes {
            operation,
            resource: self.resource,
            subresource,
            namespace: if self.resource.namespaced {
                namespace
            } else {
                ""
            },
            name,
            old,
            user: &self.request.user,
            dry_run,
        }
    }

    /// Runs the mutating plugins over `object`.
    pub(super) async fn mutate(
        &self,
        operation: Operation,
        object: &mut Value,
        old: Option<&Value>,
        dry_run: bool,
    ) -> Result<(), StatusError> {
        // the plugins see a snapshot of the object while they change a copy
        let snapshot = object.clone();
        let attributes = self.attributes(operation, &snapshot, old, dry_run);
        self.chain.mutate(&attributes, object).await
    }

    /// Runs the validating plugins that come before the object's own validation.
    pub(super) async fn validate_early(
        &self,
        operation: Operation,
        object: &Value,
        old: Option<&Value>,
        dry_run: bool,
    ) -> Result<(), StatusError> {
        let attributes = self.attributes(operation, object, old, dry_run);
        self.chain.validate_early(&attributes, object).await
    }

    /// Runs the other validating plugins over `object`.
    pub(super) async fn validate(
        &self,
        operation: Operation,
        object: &Value,
        old: Option<&Value>,
        dry_run: bool,
    ) -> Result<(), StatusError> {
        let attributes = self.attributes(operation, object, old, dry_run);
        self.chain.validate(&attributes, object).await
    }
}

impl Registry {
    /// The admission a write of `resource` passes, when it is made for a request.
    pub(super) fn admission_for(&self, resource: &'static ResourceInfo) -> Option<Admitter> {
        let chain = self.admission.clone()?;
        let request = current_request()?;
        Some(Admitter {
            chain,
            request,
            resource,
        })
    }

    /// [`Registry::write`] with admission: read, transform, admit, then store only if
    /// the object did not change meanwhile (else again on the newer state).
    pub(super) async fn write_admitted<F>(
        &self,
        resource: &'static ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        dry_run: bool,
        transform: F,
        admission: Admitter,
    ) -> Result<Value, StatusError>
    where
        F: Fn(&Value) -> Result<Value, StatusError> + Send + Sync,
    {
        let gr = resource.group_resource();
        let key = key(resource, namespace, name)?;
        for _ in 0..MAX_ATTEMPTS {
            let kv = self
                .storage
                .get(&key, None)
                .await
                .map_err(|e| storage_error(e, &gr, name))?;
            let current = self.in_requested_version(resource, decode(&kv)?)?;
            let mut updated = transform(&current)?;
            admission
                .mutate(Operation::Update, &mut updated, Some(&current), dry_run)
                .await?;
            admission
                .validate_early(Operation::Update, &updated, Some(&current), dry_run)
                .await?;
            let errors = self.validate_changed(resource, &mut updated, &current);
            if !errors.is_empty() {
                return Err(invalid(resource, name, &errors));
            }
            admission
                .validate(Operation::Update, &updated, Some(&current), dry_run)
                .await?;
            if dry_run {
                meta::set_meta(&mut updated, "resourceVersion", kv.mod_revision.to_string());
                return Ok(updated);
            }
            let bytes = self.encode_stored(resource, &updated)?;
            let preconditions = Preconditions {
                uid: None,
                resource_version: Some(kv.mod_revision),
            };
            let update = |_: Option<&crate::storage::KeyValue>| Ok(bytes.clone());
            match self
                .storage
                .guaranteed_update(&key, &preconditions, false, &update)
                .await
            {
                Ok(stored) => return self.finish_write(resource, &key, name, stored).await,
                Err(StorageError::PreconditionFailed { .. }) => continue,
                Err(e) => return Err(storage_error(e, &gr, name)),
            }
        }
        Err(StatusError::conflict(
            &gr,
            name,
            apimachinery::errors::OPTIMISTIC_LOCK_ERROR_MSG,
        ))
    }
}
