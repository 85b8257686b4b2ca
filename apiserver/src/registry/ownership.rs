//! Field ownership around the registry's writes: the schema a resource's
//! managedFields are computed with (a built-in kind's compiled shape, or the custom
//! resource's structural schema), the fields an endpoint may not write (upstream's
//! reset fields), and the field manager a request writes as (`?fieldManager=`, else
//! the User-Agent's product name), checked as upstream checks it.

use std::collections::HashMap;
use std::sync::Arc;

use apimachinery::errors::{FieldError, StatusError};
use apimachinery::resources::{GroupKind, ResourceInfo};
use axum::http::{HeaderMap, header};
use serde_json::Value;

use super::{Part, Registry, strategy};
use crate::crd::Served;
use crate::managed_fields::fieldpath::{PathElement, Set};
use crate::managed_fields::typed::Schema;
use crate::managed_fields::{self, Writer};
use crate::schema::Shapes;

/// A resource's schema for field ownership, holding on to the custom resource's
/// definition it came from.
pub(crate) enum KindSchema {
    BuiltIn(Schema<'static>),
    Custom(Arc<Served>),
}

impl KindSchema {
    pub(crate) fn get(&self) -> Schema<'_> {
        match self {
            KindSchema::BuiltIn(schema) => *schema,
            KindSchema::Custom(served) => {
                let (shapes, root) = served.shapes();
                Schema { shapes, root }
            }
        }
    }
}

impl Registry {
    /// The schema managedFields of `resource` are computed with; `None` for a kind
    /// with no compiled shape (nothing is tracked for it).
    pub(crate) fn kind_schema(&self, resource: &ResourceInfo) -> Option<KindSchema> {
        if resource.custom {
            return self.custom().of(resource).map(KindSchema::Custom);
        }
        let shapes = Shapes::get();
        shapes
            .kind(resource.group, resource.version, resource.kind)
            .map(|root| KindSchema::BuiltIn(Schema { shapes, root }))
    }
}

/// The fields an endpoint may not write, which nobody gains through it: a main
/// endpoint leaves `status` to the status subresource, which leaves `spec` alone.
pub(crate) fn reset_fields(resource: &ResourceInfo, part: Part) -> Set {
    let mut reset = Set::new();
    match part {
        Part::Main if strategy::has_status(resource) => {
            reset.insert(&[PathElement::field("status")]);
        }
        Part::Status | Part::Approval => reset.insert(&[PathElement::field("spec")]),
        // upstream's finalize strategy resets nothing
        Part::Finalize => {}
        Part::Main => {}
    }
    reset
}

/// The longest field manager name upstream accepts, in bytes.
const MAX_FIELD_MANAGER_LENGTH: usize = 128;

/// Who a create, update or patch writes as. The `fieldManager` parameter, when given,
/// must be at most 128 bytes of printable characters (422 on the request's options
/// kind, `PatchOptions.meta.k8s.io "" is invalid: ...`); otherwise the User-Agent up
/// to its first `/` names the manager (`kubectl/v1.33.0 ...` is `kubectl`).
pub(crate) fn writer(
    resource: &ResourceInfo,
    verb: &str,
    subresource: &'static str,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<Writer, StatusError> {
    let options = match verb {
        "create" => "CreateOptions",
        "update" => "UpdateOptions",
        _ => "PatchOptions",
    };
    let given = params.get("fieldManager").filter(|m| !m.is_empty());
    if let Some(manager) = given {
        let mut errors = Vec::new();
        if manager.len() > MAX_FIELD_MANAGER_LENGTH {
            errors.push(FieldError::too_long(
                "fieldManager",
                MAX_FIELD_MANAGER_LENGTH as i64,
            ));
        }
        if let Some((at, c)) = manager.chars().enumerate().find(|(_, c)| !is_printable(*c)) {
            errors.push(FieldError::invalid(
                "fieldManager",
                manager.as_str(),
                format!("invalid character {} (at position {at})", go_unicode(c)),
            ));
        }
        if !errors.is_empty() {
            return Err(options_invalid(options, &errors));
        }
    }
    let manager = match given {
        Some(manager) => manager.clone(),
        None => {
            let agent = headers
                .get(header::USER_AGENT)
                .and_then(|a| a.to_str().ok())
                .unwrap_or("");
            let product: String = agent
                .split('/')
                .next()
                .unwrap_or("")
                .chars()
                .filter(|c| is_printable(*c))
                .collect();
            let mut end = product.len().min(MAX_FIELD_MANAGER_LENGTH);
            while !product.is_char_boundary(end) {
                end -= 1;
            }
            product[..end].to_owned()
        }
    };
    Ok(Writer {
        manager: if manager.is_empty() {
            "unknown".into()
        } else {
            manager
        },
        api_version: resource.api_version(),
        subresource,
    })
}

/// `<Options>.meta.k8s.io "" is invalid: ...`.
pub(crate) fn options_invalid(options: &str, errors: &[FieldError]) -> StatusError {
    StatusError::invalid(
        &GroupKind {
            group: "meta.k8s.io".into(),
            kind: options.into(),
        },
        "",
        errors,
    )
}

/// Go's `unicode.IsPrint` for the characters a manager name may hold.
fn is_printable(c: char) -> bool {
    !c.is_control() && (c == ' ' || !c.is_whitespace())
}

/// Go's `%#U`: `U+0007`.
fn go_unicode(c: char) -> String {
    format!("U+{:04X}", c as u32)
}

/// Records the write of `updated` (from `current`, `None` on create) in its
/// managedFields. `requested` is the object the client sent (its managedFields, if
/// any, are where ownership starts from).
pub(crate) fn track(
    schema: Option<&KindSchema>,
    writer: Option<&Writer>,
    reset: &Set,
    current: Option<&Value>,
    requested: &Value,
    updated: &mut Value,
) {
    let (Some(schema), Some(writer)) = (schema, writer) else {
        return;
    };
    match requested
        .get("metadata")
        .and_then(|m| m.get("managedFields"))
    {
        Some(fields) => super::meta::set_meta(updated, "managedFields", fields.clone()),
        None => super::meta::remove_meta(updated, "managedFields"),
    }
    managed_fields::track_update(schema.get(), current, updated, writer, reset);
}
