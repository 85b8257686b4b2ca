//! PATCH: not served yet; the patch types arrive with apimachinery's patch module.

use apimachinery::errors::StatusError;
use apimachinery::resources::ResourceInfo;
use axum::http::HeaderMap;
use serde_json::Value;

use crate::registry::{Part, Registry};

/// Answers PATCH with 405 until patch application lands.
#[allow(clippy::too_many_arguments)]
pub async fn patch(
    _registry: &Registry,
    resource: &'static ResourceInfo,
    _namespace: Option<&str>,
    _name: &str,
    _part: Part,
    _headers: &HeaderMap,
    _body: &[u8],
    _dry_run: bool,
) -> Result<Value, StatusError> {
    Err(StatusError::method_not_supported(
        &resource.group_resource(),
        "patch",
    ))
}
