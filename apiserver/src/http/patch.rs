//! PATCH (upstream's k8s.io/apiserver/pkg/endpoints/handlers/patch.go): the patch is
//! applied to the current object inside the registry's compare-and-swap loop, so a
//! concurrent writer makes it re-apply to the newer object rather than lose either
//! change; the result then goes through the same update rules as a PUT.
//!
//! Server-side apply (`application/apply-patch+yaml`) is a PATCH too: the body is a
//! partial object merged in by the kind's schema, under field ownership
//! (`crate::managed_fields`); applying to a missing object creates it (201).

use std::collections::HashMap;

use apimachinery::errors::{FieldError, StatusError};
use apimachinery::patch::{PatchType, apply_patch};
use apimachinery::resources::ResourceInfo;
use axum::http::{HeaderMap, StatusCode, header};
use serde_json::Value;

use crate::managed_fields::{self, Writer};
use crate::registry::ownership::{self, KindSchema};
use crate::registry::{self, Part, Registry, meta};

/// Applies the request's patch to the stored object and writes the result, answering
/// with the status code (201 when an apply created the object) and the object.
#[allow(clippy::too_many_arguments)]
pub async fn patch(
    registry: &Registry,
    resource: &'static ResourceInfo,
    namespace: Option<&str>,
    name: &str,
    part: Part,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
    body: &[u8],
    dry_run: bool,
) -> Result<(StatusCode, Value), StatusError> {
    if body.len() > super::resources::MAX_REQUEST_BODY_BYTES {
        return Err(StatusError::request_entity_too_large(&format!(
            "limit is {}",
            super::resources::MAX_REQUEST_BODY_BYTES
        )));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|c| c.to_str().ok())
        .unwrap_or("");
    let patch_type = PatchType::from_content_type(content_type).map_err(|e| e.to_status_error())?;
    let apply = patch_type == PatchType::Apply;
    // upstream's ValidatePatchOptions
    let mut errors = Vec::new();
    if apply && params.get("fieldManager").is_none_or(|m| m.is_empty()) {
        errors.push(FieldError::required(
            "fieldManager",
            "is required for apply patch",
        ));
    }
    if !apply && params.contains_key("force") {
        errors.push(FieldError::forbidden(
            "force",
            "may not be specified for non-apply patch",
        ));
    }
    if !errors.is_empty() {
        return Err(ownership::options_invalid("PatchOptions", &errors));
    }
    let subresource = match part {
        Part::Main => "",
        Part::Status => "status",
        Part::Approval => "approval",
        Part::Finalize => "finalize",
    };
    let writer = ownership::writer(resource, "patch", subresource, params, headers)?;
    let schema = registry.kind_schema(resource);
    let reset = ownership::reset_fields(resource, part);
    if apply {
        let Some(schema) = schema else {
            return Err(StatusError::internal_error(format!(
                "no schema for {} to apply with",
                resource.group_kind()
            )));
        };
        let force = params.get("force").is_some_and(|f| f == "true");
        let request = ApplyRequest {
            registry,
            resource,
            namespace,
            name,
            part,
            writer: &writer,
            schema: &schema,
            reset: &reset,
            force,
            dry_run,
        };
        return request.run(body).await;
    }
    let kind = resource.group_kind();
    registry
        .write(resource, namespace, name, dry_run, |current| {
            let patched =
                apply_patch(patch_type, current, body, &kind).map_err(|e| e.to_status_error())?;
            // A patch may not rename or move the object.
            if meta::name(&patched) != name {
                return Err(StatusError::bad_request(format!(
                    "the name of the object ({}) does not match the name on the URL ({name})",
                    meta::name(&patched)
                )));
            }
            // A resourceVersion in the patch is a precondition, as upstream.
            let mut updated = registry::prepare_update(resource, name, current, &patched, part)?;
            ownership::track(
                schema.as_ref(),
                Some(&writer),
                &reset,
                Some(current),
                &patched,
                &mut updated,
            );
            Ok(updated)
        })
        .await
        .map(|object| (StatusCode::OK, object))
}

/// One server-side apply.
struct ApplyRequest<'a> {
    registry: &'a Registry,
    resource: &'static ResourceInfo,
    namespace: Option<&'a str>,
    name: &'a str,
    part: Part,
    writer: &'a Writer,
    schema: &'a KindSchema,
    reset: &'a managed_fields::fieldpath::Set,
    force: bool,
    dry_run: bool,
}

impl ApplyRequest<'_> {
    async fn run(&self, body: &[u8]) -> Result<(StatusCode, Value), StatusError> {
        let config = self.decode(body)?;
        // `ns/name` and `group/version, Kind=Kind`, as schema errors name the object
        let object_name = format!("{}/{}", self.namespace.unwrap_or(""), self.name);
        let gvk = go_gvk(&self.resource.api_version(), self.resource.kind);
        let schema = self.schema.get();
        // an object created between our read and our create is applied to instead
        for _ in 0..3 {
            let written = self
                .registry
                .write(
                    self.resource,
                    self.namespace,
                    self.name,
                    self.dry_run,
                    |current| {
                        let applied = managed_fields::apply(
                            schema,
                            Some(current),
                            &config,
                            self.writer,
                            self.reset,
                            self.force,
                        )
                        .map_err(|e| e.to_status_error(&object_name, &gvk))?;
                        // a resourceVersion in the configuration is a precondition
                        let mut updated = registry::prepare_update(
                            self.resource,
                            self.name,
                            current,
                            &applied,
                            self.part,
                        )?;
                        if let Some(fields) = applied.pointer("/metadata/managedFields") {
                            meta::set_meta(&mut updated, "managedFields", fields.clone());
                        }
                        Ok(updated)
                    },
                )
                .await;
            match written {
                Ok(object) => return Ok((StatusCode::OK, object)),
                Err(e) if e.is_not_found() && self.part == Part::Main => {}
                Err(e) => return Err(e),
            }
            if meta::name(&config).is_empty() {
                return Err(StatusError::bad_request(format!(
                    "the name of the object ({} based on URL) was undeterminable: name must be provided",
                    self.name
                )));
            }
            let created =
                managed_fields::apply(schema, None, &config, self.writer, self.reset, self.force)
                    .map_err(|e| e.to_status_error(&object_name, &gvk))?;
            match self
                .registry
                .create_as(self.resource, self.namespace, created, self.dry_run, None)
                .await
            {
                Ok(object) => return Ok((StatusCode::CREATED, object)),
                Err(e) if e.is_already_exists() => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StatusError::internal_error(
            "the object kept appearing and disappearing while it was applied",
        ))
    }

    /// The applied configuration, checked as upstream checks it before merging.
    fn decode(&self, body: &[u8]) -> Result<Value, StatusError> {
        let config: Value = serde_yaml_ng::from_slice(body)
            .map_err(|e| StatusError::bad_request(format!("error decoding YAML: {e}")))?;
        if !config.is_object() {
            return Err(StatusError::bad_request(format!(
                "error decoding YAML: json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
                go_json_type(&config)
            )));
        }
        let text = |key: &str| config.get(key).and_then(Value::as_str).unwrap_or("");
        if text("apiVersion") != self.resource.api_version() || text("kind") != self.resource.kind {
            return Err(StatusError::bad_request(format!(
                "invalid object type: {}",
                go_gvk(text("apiVersion"), text("kind"))
            )));
        }
        if config
            .get("metadata")
            .is_some_and(|m| m.get("managedFields").is_some())
        {
            return Err(StatusError::bad_request(
                "metadata.managedFields must be nil",
            ));
        }
        let namespace = meta::namespace(&config);
        if !namespace.is_empty() && Some(namespace) != self.namespace {
            return Err(StatusError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let name = meta::name(&config);
        if !name.is_empty() && name != self.name {
            return Err(StatusError::bad_request(format!(
                "the name of the object ({name}) does not match the name on the URL ({})",
                self.name
            )));
        }
        Ok(config)
    }
}

/// Go's `GroupVersionKind.String()`: `apps/v1, Kind=Deployment`, `/v1, Kind=Pod`.
fn go_gvk(api_version: &str, kind: &str) -> String {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    format!("{group}/{version}, Kind={kind}")
}

/// encoding/json's name for a value's type in unmarshal errors.
fn go_json_type(value: &Value) -> &'static str {
    match value {
        Value::Array(_) => "array",
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "bool",
        _ => "value",
    }
}
