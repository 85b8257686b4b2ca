//! Request bodies in Kubernetes protobuf (`application/vnd.kubernetes.protobuf`), which
//! every client-go typed client sends, decoded into the JSON upstream would have received
//! for the same object, so that the server handles them exactly like JSON bodies.
//!
//! - `envelope`: the `k8s\x00` magic and `runtime.Unknown` wrapper, and the lookup of the
//!   kind's message in the v1.33 `generated.proto` descriptors (built by `build.rs` from
//!   the `.proto` files the k8s-rs-pb package ships);
//! - `json`: the reflection walk from a decoded message to JSON;
//! - `fields`: the tables the walk needs where a proto says less than the Go struct tags
//!   (inlined structs, renamed fields, special types, pointer fields whose zero counts).

mod envelope;
mod fields;
mod json;
#[cfg(test)]
mod tests;

use crate::errors::StatusError;

pub use envelope::{Defaults, decode};

/// The media type of Kubernetes protobuf.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// Why a protobuf body could not be decoded; [`DecodeError::to_status_error`] gives
/// upstream's 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The body is not a protobuf object at all (no magic, a broken envelope, no kind).
    #[error("{message}")]
    Unrecognized {
        /// What the decoder said.
        message: String,
        /// The start of the body, as upstream's `summarizeData` shows it.
        summary: String,
    },
    /// The envelope names a kind, but the object cannot be decoded as it.
    #[error("{message}")]
    Object {
        /// The kind the envelope names.
        kind: String,
        /// The version the envelope names.
        version: String,
        /// What the decoder said.
        message: String,
    },
}

impl DecodeError {
    /// Upstream's 400 for a body that cannot be decoded into `into_kind`, as its
    /// handlers' `transformDecodeError` words it.
    pub fn to_status_error(&self, into_kind: &str) -> StatusError {
        StatusError::bad_request(match self {
            Self::Unrecognized { message, summary } => format!(
                "the object provided is unrecognized (must be of type {into_kind}): {message} ({summary})"
            ),
            Self::Object {
                kind,
                version,
                message,
            } => format!(
                "{kind} in version {version:?} cannot be handled as a {into_kind}: {message}"
            ),
        })
    }
}

/// Whether a `Content-Type` (parameters and all) is Kubernetes protobuf.
pub fn is_media_type(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|media| media.trim().eq_ignore_ascii_case(MEDIA_TYPE))
}

/// The JSON property names the message `full_name` (a proto full name such as
/// `api.core.v1.PodSpec`) decodes to, embedded structs flattened; `None` for an unknown
/// message or one with a special JSON form. For checking the tables against the OpenAPI
/// schemas of the same types.
pub fn json_properties(full_name: &str) -> Option<Vec<String>> {
    json::property_names(&envelope::message_by_full_name(full_name)?)
}
