//! PATCH (upstream's k8s.io/apiserver/pkg/endpoints/handlers/patch.go): the patch is
//! applied to the current object inside the registry's compare-and-swap loop, so a
//! concurrent writer makes it re-apply to the newer object rather than lose either
//! change; the result then goes through the same update rules as a PUT.
//! Server-side apply (`application/apply-patch+yaml`) arrives with its own issue.

use apimachinery::errors::StatusError;
use apimachinery::patch::{PatchType, apply_patch};
use apimachinery::resources::ResourceInfo;
use axum::http::{HeaderMap, header};
use serde_json::Value;

use crate::registry::{self, Part, Registry, meta};

/// Applies the request's patch to the stored object and writes the result.
#[allow(clippy::too_many_arguments)]
pub async fn patch(
    registry: &Registry,
    resource: &'static ResourceInfo,
    namespace: Option<&str>,
    name: &str,
    part: Part,
    headers: &HeaderMap,
    body: &[u8],
    dry_run: bool,
) -> Result<Value, StatusError> {
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
    if patch_type == PatchType::Apply {
        return Err(StatusError::unsupported_media_type(&[
            "application/json-patch+json",
            "application/merge-patch+json",
            "application/strategic-merge-patch+json",
        ]));
    }
    let kind = resource.group_kind();
    registry
        .write(resource, namespace, name, dry_run, |current| {
            // a custom resource is patched as the version the request names shows it
            let mut shown;
            let current = if resource.custom {
                shown = current.clone();
                if let Some(map) = shown.as_object_mut() {
                    map.insert("apiVersion".into(), resource.api_version().into());
                }
                &shown
            } else {
                current
            };
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
            registry::prepare_update(resource, name, current, &patched, part)
        })
        .await
}
