//! `metav1.Status` errors: the wire shape every API failure takes, the reasons and causes,
//! and constructors that produce upstream's exact messages.
//!
//! Mirrors `k8s.io/apimachinery/pkg/api/errors` (the `New*` constructors and `Is*`
//! predicates), `k8s.io/apimachinery/pkg/apis/meta/v1` (`Status`, `StatusDetails`,
//! `StatusCause`, `StatusReason`) and `k8s.io/apimachinery/pkg/util/validation/field`
//! (`field.Error`, `field.Path`, `ErrorList.ToAggregate`). Clients such as kubectl and
//! client-go match on `reason`, `code` and sometimes on message text, so the messages are
//! reproduced byte for byte, Go's `%q` quoting included.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::resources::{GroupKind, GroupResource};

/// `Status.status` of a failed operation.
pub const STATUS_FAILURE: &str = "Failure";
/// `Status.status` of a successful operation (e.g. a delete answered with a Status).
pub const STATUS_SUCCESS: &str = "Success";

/// The reason text of an optimistic-concurrency conflict, as upstream's generic registry
/// store words it (`OptimisticLockErrorMsg`); pass it to [`StatusError::conflict`].
pub const OPTIMISTIC_LOCK_ERROR_MSG: &str =
    "the object has been modified; please apply your changes to the latest version and try again";

/// The message of a watch whose resourceVersion etcd has compacted away (upstream's etcd3
/// store, `interpretWatchError`); pass it to [`StatusError::resource_expired`].
pub const WATCH_TOO_OLD_MSG: &str = "The resourceVersion for the provided watch is too old.";

/// The message of a list at a resourceVersion etcd has compacted away (upstream's etcd3
/// store, `interpretListError`); pass it to [`StatusError::resource_expired`].
pub const LIST_TOO_OLD_MSG: &str = "The resourceVersion for the provided list is too old.";

/// The message of a paginated list whose continue token etcd has compacted away.
pub const CONTINUE_TOO_OLD_MSG: &str = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.";

/// The message upstream's authentication filter answers a failed login with.
pub const UNAUTHORIZED_MSG: &str = "Unauthorized";

/// Machine-readable cause types (`StatusCause.reason`), upstream's `metav1.CauseType`.
pub mod cause_type {
    /// A referenced value could not be found.
    pub const FIELD_VALUE_NOT_FOUND: &str = "FieldValueNotFound";
    /// A required value is missing.
    pub const FIELD_VALUE_REQUIRED: &str = "FieldValueRequired";
    /// A value that must be unique is repeated.
    pub const FIELD_VALUE_DUPLICATE: &str = "FieldValueDuplicate";
    /// A value is malformed.
    pub const FIELD_VALUE_INVALID: &str = "FieldValueInvalid";
    /// A value is not one of an enumeration.
    pub const FIELD_VALUE_NOT_SUPPORTED: &str = "FieldValueNotSupported";
    /// A value is valid but not allowed here.
    pub const FIELD_VALUE_FORBIDDEN: &str = "FieldValueForbidden";
    /// A value is too long.
    pub const FIELD_VALUE_TOO_LONG: &str = "FieldValueTooLong";
    /// A list has too many items.
    pub const FIELD_VALUE_TOO_MANY: &str = "FieldValueTooMany";
    /// An error unrelated to the user's input.
    pub const INTERNAL: &str = "InternalError";
    /// A value has the wrong type for its schema.
    pub const FIELD_VALUE_TYPE_INVALID: &str = "FieldValueTypeInvalid";
    /// The server answered without the expected return type.
    pub const UNEXPECTED_SERVER_RESPONSE: &str = "UnexpectedServerResponse";
    /// Another field manager owns a field a server-side apply tried to set.
    pub const FIELD_MANAGER_CONFLICT: &str = "FieldManagerConflict";
    /// The requested resourceVersion is newer than the server has observed.
    pub const RESOURCE_VERSION_TOO_LARGE: &str = "ResourceVersionTooLarge";
}

/// Why an operation failed (`Status.reason`), upstream's `metav1.StatusReason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum StatusReason {
    /// 401: credentials are missing or wrong.
    Unauthorized,
    /// 403: the request is understood and refused.
    Forbidden,
    /// 404: a resource does not exist.
    NotFound,
    /// 409: the object to create exists already.
    AlreadyExists,
    /// 409: the operation conflicts with the current state (stale resourceVersion...).
    Conflict,
    /// 410: the item is gone for good.
    Gone,
    /// 422: the object fails validation; the causes say where.
    Invalid,
    /// 500: the server could not finish in time; retry.
    ServerTimeout,
    /// 500: reading from the store failed (on the wire `StorageReadError`).
    #[serde(rename = "StorageReadError")]
    StoreReadError,
    /// 504: the request did not complete in the time given.
    Timeout,
    /// 429: too many requests; wait `retryAfterSeconds`.
    TooManyRequests,
    /// 400: the request can never succeed as sent.
    BadRequest,
    /// 405: the verb is not supported on the resource.
    MethodNotAllowed,
    /// 406: none of the accepted media types can be served.
    NotAcceptable,
    /// 413: the request body is too large.
    RequestEntityTooLarge,
    /// 415: the request body's media type is not understood.
    UnsupportedMediaType,
    /// 500: something unexpected broke.
    InternalError,
    /// 410: the requested content (an old resourceVersion) has expired.
    Expired,
    /// 503: the service is unavailable for now.
    ServiceUnavailable,
    /// No reason given (the empty string); also what an unrecognised reason reads as, so
    /// a Status from a newer server still decodes (serde wants this catch-all last).
    #[default]
    #[serde(rename = "", other)]
    Unknown,
}

impl StatusReason {
    /// The reason as it appears on the wire.
    pub fn as_str(&self) -> &'static str {
        match self {
            StatusReason::Unknown => "",
            StatusReason::Unauthorized => "Unauthorized",
            StatusReason::Forbidden => "Forbidden",
            StatusReason::NotFound => "NotFound",
            StatusReason::AlreadyExists => "AlreadyExists",
            StatusReason::Conflict => "Conflict",
            StatusReason::Gone => "Gone",
            StatusReason::Invalid => "Invalid",
            StatusReason::ServerTimeout => "ServerTimeout",
            StatusReason::StoreReadError => "StorageReadError",
            StatusReason::Timeout => "Timeout",
            StatusReason::TooManyRequests => "TooManyRequests",
            StatusReason::BadRequest => "BadRequest",
            StatusReason::MethodNotAllowed => "MethodNotAllowed",
            StatusReason::NotAcceptable => "NotAcceptable",
            StatusReason::RequestEntityTooLarge => "RequestEntityTooLarge",
            StatusReason::UnsupportedMediaType => "UnsupportedMediaType",
            StatusReason::InternalError => "InternalError",
            StatusReason::Expired => "Expired",
            StatusReason::ServiceUnavailable => "ServiceUnavailable",
        }
    }

    /// The HTTP status code upstream documents for the reason.
    pub fn http_code(&self) -> u16 {
        match self {
            StatusReason::Unknown
            | StatusReason::ServerTimeout
            | StatusReason::StoreReadError
            | StatusReason::InternalError => 500,
            StatusReason::Unauthorized => 401,
            StatusReason::Forbidden => 403,
            StatusReason::NotFound => 404,
            StatusReason::AlreadyExists | StatusReason::Conflict => 409,
            StatusReason::Gone | StatusReason::Expired => 410,
            StatusReason::Invalid => 422,
            StatusReason::Timeout => 504,
            StatusReason::TooManyRequests => 429,
            StatusReason::BadRequest => 400,
            StatusReason::MethodNotAllowed => 405,
            StatusReason::NotAcceptable => 406,
            StatusReason::RequestEntityTooLarge => 413,
            StatusReason::UnsupportedMediaType => 415,
            StatusReason::ServiceUnavailable => 503,
        }
    }

    /// Whether the reason is one upstream's predicates trust over the HTTP code
    /// (`knownReasons`): every reason but `Unknown`.
    pub fn is_known(&self) -> bool {
        *self != StatusReason::Unknown
    }
}

impl fmt::Display for StatusReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

fn is_unknown(r: &StatusReason) -> bool {
    *r == StatusReason::Unknown
}

/// List metadata, `metav1.ListMeta`. A Status always carries it, usually empty (`{}`);
/// an expired continue token comes back in `continue`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListMeta {
    /// Deprecated, never set by current servers.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub self_link: String,
    /// The resourceVersion the list was served at.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resource_version: String,
    /// The token to fetch the next chunk of a paginated list.
    #[serde(default, rename = "continue", skip_serializing_if = "String::is_empty")]
    pub continue_token: String,
    /// How many items remain after this chunk, when the server knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_item_count: Option<i64>,
}

/// One cause of a failure, `metav1.StatusCause`; field validation errors become these.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StatusCause {
    /// The machine-readable cause type (see [`cause_type`]); `reason` on the wire.
    #[serde(default, rename = "reason", skip_serializing_if = "String::is_empty")]
    pub cause_type: String,
    /// A human-readable description.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The JSON path of the offending field (`spec.containers[0].image`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub field: String,
}

/// Extra facts about a failure, `metav1.StatusDetails`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusDetails {
    /// The name of the object concerned.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The group of the object concerned.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// The resource (for most errors) or kind (for Invalid) concerned.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// The UID of the object concerned.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// The individual causes, e.g. one per invalid field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<StatusCause>,
    /// How long the client should wait before retrying.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retry_after_seconds: i32,
}

/// `metav1.Status`, serialised exactly as upstream writes it: fields in Go's struct order
/// (`kind`, `apiVersion`, `metadata`, `status`, `message`, `reason`, `details`, `code`),
/// empty ones left out except `metadata`, which Go always writes (`{}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// Always `Status` on objects this crate builds.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// Always `v1` on objects this crate builds.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    /// List metadata, usually empty.
    #[serde(default)]
    pub metadata: ListMeta,
    /// `Success` or `Failure`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status: String,
    /// The human-readable message.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The machine-readable reason.
    #[serde(default, skip_serializing_if = "is_unknown")]
    pub reason: StatusReason,
    /// Extra facts; `Some` with every field empty serialises as `{}` as in Go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<StatusDetails>,
    /// The suggested HTTP status code.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub code: i32,
}

impl Default for Status {
    fn default() -> Self {
        Self {
            kind: "Status".to_string(),
            api_version: "v1".to_string(),
            metadata: ListMeta::default(),
            status: String::new(),
            message: String::new(),
            reason: StatusReason::Unknown,
            details: None,
            code: 0,
        }
    }
}

impl Status {
    /// A failure with the given code, reason and message.
    pub fn failure(code: u16, reason: StatusReason, message: impl Into<String>) -> Self {
        Self {
            status: STATUS_FAILURE.to_string(),
            message: message.into(),
            reason,
            code: i32::from(code),
            ..Self::default()
        }
    }

    /// A success, as a delete answers when it has no object to return.
    pub fn success(details: Option<StatusDetails>) -> Self {
        Self {
            status: STATUS_SUCCESS.to_string(),
            details,
            code: 200,
            ..Self::default()
        }
    }

    fn with_details(mut self, details: StatusDetails) -> Self {
        self.details = Some(details);
        self
    }

    /// The HTTP status to answer with: `code` when set, otherwise 200 for a success and
    /// 500 for anything else (as upstream's `ErrorToAPIStatus` fills it in).
    pub fn http_status(&self) -> u16 {
        match u16::try_from(self.code) {
            Ok(code) if (100..=599).contains(&code) => code,
            _ if self.status == STATUS_SUCCESS => 200,
            _ => 500,
        }
    }

    /// Whether the status has `reason`, or has no known reason and `code`; upstream's
    /// predicates fall back to the code so that statuses from old servers still match.
    fn is(&self, reason: StatusReason, code: i32) -> bool {
        self.reason == reason || (!self.reason.is_known() && self.code == code)
    }

    /// The `retryAfterSeconds` the status suggests, if any.
    pub fn retry_after_seconds(&self) -> Option<i32> {
        self.details
            .as_ref()
            .map(|d| d.retry_after_seconds)
            .filter(|s| *s > 0)
    }
}

fn details(gr: &GroupResource, name: &str) -> StatusDetails {
    StatusDetails {
        name: name.to_string(),
        group: gr.group.clone(),
        kind: gr.resource.clone(),
        ..StatusDetails::default()
    }
}

/// An API error carrying the `metav1.Status` to send, upstream's `StatusError`. Its
/// `Display` is the status message, as Go's `Error()`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.message)]
pub struct StatusError(pub Status);

impl From<StatusError> for Status {
    fn from(err: StatusError) -> Self {
        err.0
    }
}

impl From<Status> for StatusError {
    fn from(status: Status) -> Self {
        StatusError(status)
    }
}

impl StatusError {
    /// The status to write on the wire.
    pub fn status(&self) -> &Status {
        &self.0
    }

    /// The reason.
    pub fn reason(&self) -> StatusReason {
        self.0.reason
    }

    /// The HTTP status to answer with.
    pub fn http_status(&self) -> u16 {
        self.0.http_status()
    }

    /// 404 `pods "web" not found` / `deployments.apps "web" not found`.
    pub fn not_found(gr: &GroupResource, name: &str) -> Self {
        let message = format!("{gr} {} not found", go_quote(name));
        Self(Status::failure(404, StatusReason::NotFound, message).with_details(details(gr, name)))
    }

    /// 409 `pods "web" already exists`.
    pub fn already_exists(gr: &GroupResource, name: &str) -> Self {
        let message = format!("{gr} {} already exists", go_quote(name));
        Self(
            Status::failure(409, StatusReason::AlreadyExists, message)
                .with_details(details(gr, name)),
        )
    }

    /// 409 when `generateName` produced a name that exists already; the client may retry.
    pub fn generate_name_conflict(
        gr: &GroupResource,
        name: &str,
        retry_after_seconds: i32,
    ) -> Self {
        let message = format!(
            "{gr} {} already exists, the server was not able to generate a unique name for the object",
            go_quote(name)
        );
        let mut d = details(gr, name);
        d.retry_after_seconds = retry_after_seconds;
        Self(Status::failure(409, StatusReason::AlreadyExists, message).with_details(d))
    }

    /// 401 with `reason` as the message, or `not authorized` when it is empty.
    pub fn unauthorized(reason: &str) -> Self {
        let message = if reason.is_empty() {
            "not authorized"
        } else {
            reason
        };
        Self(Status::failure(401, StatusReason::Unauthorized, message))
    }

    /// 403 `pods "web" is forbidden: <why>`; without a name `pods is forbidden: <why>`;
    /// without a resource `forbidden: <why>`.
    pub fn forbidden(gr: &GroupResource, name: &str, why: impl fmt::Display) -> Self {
        let message = if gr.is_empty() {
            format!("forbidden: {why}")
        } else if name.is_empty() {
            format!("{gr} is forbidden: {why}")
        } else {
            format!("{gr} {} is forbidden: {why}", go_quote(name))
        };
        Self(Status::failure(403, StatusReason::Forbidden, message).with_details(details(gr, name)))
    }

    /// 409 `Operation cannot be fulfilled on pods "web": <why>`; for a stale
    /// resourceVersion pass [`OPTIMISTIC_LOCK_ERROR_MSG`].
    pub fn conflict(gr: &GroupResource, name: &str, why: impl fmt::Display) -> Self {
        let message = format!(
            "Operation cannot be fulfilled on {gr} {}: {why}",
            go_quote(name)
        );
        Self(Status::failure(409, StatusReason::Conflict, message).with_details(details(gr, name)))
    }

    /// 409 from server-side apply, one cause per conflicting field.
    pub fn apply_conflict(causes: Vec<StatusCause>, message: impl Into<String>) -> Self {
        Self(
            Status::failure(409, StatusReason::Conflict, message).with_details(StatusDetails {
                causes,
                ..StatusDetails::default()
            }),
        )
    }

    /// 410 Gone.
    pub fn gone(message: impl Into<String>) -> Self {
        Self(Status::failure(410, StatusReason::Gone, message))
    }

    /// 410 Expired: a resourceVersion is no longer available (watch and list restarts).
    pub fn resource_expired(message: impl Into<String>) -> Self {
        Self(Status::failure(410, StatusReason::Expired, message))
    }

    /// 410 Expired `too old resource version: <requested> (<oldest>)`, as upstream's watch
    /// cache answers a watch from before the oldest event it holds.
    pub fn too_old_resource_version(requested: u64, oldest: u64) -> Self {
        Self::resource_expired(format!("too old resource version: {requested} ({oldest})"))
    }

    /// 410 Expired for a paginated list whose continue token was compacted away, carrying a
    /// fresh token (when there is one) that continues inconsistently.
    pub fn continue_expired(new_continue: Option<String>) -> Self {
        let mut err = Self::resource_expired(CONTINUE_TOO_OLD_MSG);
        err.0.metadata.continue_token = new_continue.unwrap_or_default();
        err
    }

    /// 504 Timeout `Too large resource version: <min>, current: <current>`, as upstream
    /// answers a read at a resourceVersion it has not caught up with.
    pub fn too_large_resource_version(
        minimum: u64,
        current: u64,
        retry_after_seconds: i32,
    ) -> Self {
        let mut err = Self::timeout(
            &format!("Too large resource version: {minimum}, current: {current}"),
            retry_after_seconds,
        );
        if let Some(d) = err.0.details.as_mut() {
            d.causes = vec![StatusCause {
                cause_type: cause_type::RESOURCE_VERSION_TOO_LARGE.to_string(),
                message: "Too large resource version".to_string(),
                field: String::new(),
            }];
        }
        err
    }

    /// 422 `Deployment.apps "web" is invalid: spec.selector: Required value`, one cause per
    /// field error; several distinct errors read `[a, b]`.
    pub fn invalid(gk: &GroupKind, name: &str, errors: &[FieldError]) -> Self {
        let message = match aggregate_message(errors) {
            None => format!("{gk} {} is invalid", go_quote(name)),
            Some(agg) => format!("{gk} {} is invalid: {agg}", go_quote(name)),
        };
        let d = StatusDetails {
            name: name.to_string(),
            group: gk.group.clone(),
            kind: gk.kind.clone(),
            causes: errors.iter().map(FieldError::to_cause).collect(),
            ..StatusDetails::default()
        };
        Self(Status::failure(422, StatusReason::Invalid, message).with_details(d))
    }

    /// 400 with `reason` as the message.
    pub fn bad_request(reason: impl Into<String>) -> Self {
        Self(Status::failure(400, StatusReason::BadRequest, reason))
    }

    /// 405 `<action> is not supported on resources of kind "<resource>"`.
    pub fn method_not_supported(gr: &GroupResource, action: &str) -> Self {
        let message = format!(
            "{action} is not supported on resources of kind {}",
            go_quote(&gr.to_string())
        );
        Self(
            Status::failure(405, StatusReason::MethodNotAllowed, message)
                .with_details(details(gr, "")),
        )
    }

    /// 405 MethodNotAllowed with a message of the caller's (a CRD that is terminating
    /// refuses creates of its custom resources this way).
    pub fn method_not_supported_message(gr: &GroupResource, message: &str) -> Self {
        Self(
            Status::failure(405, StatusReason::MethodNotAllowed, message)
                .with_details(details(gr, "")),
        )
    }

    /// 406 `only the following media types are accepted: a, b`, as upstream's content
    /// negotiation answers an unservable `Accept`.
    pub fn not_acceptable(accepted: &[&str]) -> Self {
        let message = format!(
            "only the following media types are accepted: {}",
            accepted.join(", ")
        );
        Self(Status::failure(406, StatusReason::NotAcceptable, message))
    }

    /// 415 for a request body in a media type the server does not decode.
    pub fn unsupported_media_type(accepted: &[&str]) -> Self {
        let message = format!(
            "the body of the request was in an unknown format - accepted media types include: {}",
            accepted.join(", ")
        );
        Self(Status::failure(
            415,
            StatusReason::UnsupportedMediaType,
            message,
        ))
    }

    /// 413 `Request entity too large: <message>`.
    pub fn request_entity_too_large(message: &str) -> Self {
        Self(Status::failure(
            413,
            StatusReason::RequestEntityTooLarge,
            format!("Request entity too large: {message}"),
        ))
    }

    /// 429 with `message` as is and `retryAfterSeconds` (upstream's `NewTooManyRequests`).
    pub fn too_many_requests(message: impl Into<String>, retry_after_seconds: i32) -> Self {
        Self(
            Status::failure(429, StatusReason::TooManyRequests, message).with_details(
                StatusDetails {
                    retry_after_seconds,
                    ..StatusDetails::default()
                },
            ),
        )
    }

    /// 429 `Too many requests: <message>` without details (upstream's
    /// `NewTooManyRequestsError`).
    pub fn too_many_requests_error(message: &str) -> Self {
        Self(Status::failure(
            429,
            StatusReason::TooManyRequests,
            format!("Too many requests: {message}"),
        ))
    }

    /// 500 `Internal error occurred: <err>`, the error also as the single cause.
    pub fn internal_error(err: impl fmt::Display) -> Self {
        let text = err.to_string();
        let d = StatusDetails {
            causes: vec![StatusCause {
                message: text.clone(),
                ..StatusCause::default()
            }],
            ..StatusDetails::default()
        };
        Self(
            Status::failure(
                500,
                StatusReason::InternalError,
                format!("Internal error occurred: {text}"),
            )
            .with_details(d),
        )
    }

    /// 503 with `reason` as the message.
    pub fn service_unavailable(reason: impl Into<String>) -> Self {
        Self(Status::failure(
            503,
            StatusReason::ServiceUnavailable,
            reason,
        ))
    }

    /// 504 `Timeout: <message>`; details always present, as upstream's `NewTimeoutError`.
    pub fn timeout(message: &str, retry_after_seconds: i32) -> Self {
        Self(
            Status::failure(504, StatusReason::Timeout, format!("Timeout: {message}"))
                .with_details(StatusDetails {
                    retry_after_seconds,
                    ..StatusDetails::default()
                }),
        )
    }

    /// 500 ServerTimeout `The <op> operation against <resource> could not be completed at
    /// this time, please try again.`; upstream puts the operation in `details.name`.
    pub fn server_timeout(gr: &GroupResource, operation: &str, retry_after_seconds: i32) -> Self {
        let message = format!(
            "The {operation} operation against {gr} could not be completed at this time, please try again."
        );
        let mut d = details(gr, operation);
        d.retry_after_seconds = retry_after_seconds;
        Self(Status::failure(500, StatusReason::ServerTimeout, message).with_details(d))
    }

    /// The status a client builds from a response that carried no Status (upstream's
    /// `NewGenericServerResponse`): a reason and a stock message from the HTTP code,
    /// suffixed with `(<verb> <resource> <name>)`.
    pub fn generic_server_response(
        code: u16,
        verb: &str,
        gr: &GroupResource,
        name: &str,
        server_message: &str,
        retry_after_seconds: i32,
        unexpected_response: bool,
    ) -> Self {
        let (reason, message) = generic_reason_and_message(code, verb, server_message);
        let message = if !gr.is_empty() && !name.is_empty() {
            format!("{message} ({} {gr} {name})", verb.to_lowercase())
        } else if !gr.is_empty() {
            format!("{message} ({} {gr})", verb.to_lowercase())
        } else {
            message
        };
        let causes = if unexpected_response {
            vec![StatusCause {
                cause_type: cause_type::UNEXPECTED_SERVER_RESPONSE.to_string(),
                message: server_message.to_string(),
                field: String::new(),
            }]
        } else {
            Vec::new()
        };
        let d = StatusDetails {
            causes,
            retry_after_seconds,
            ..details(gr, name)
        };
        Self(Status::failure(code, reason, message).with_details(d))
    }

    /// Whether this is a NotFound (or an unknown reason with code 404).
    pub fn is_not_found(&self) -> bool {
        self.0.is(StatusReason::NotFound, 404)
    }

    /// Whether this is an AlreadyExists.
    pub fn is_already_exists(&self) -> bool {
        self.0.reason == StatusReason::AlreadyExists
    }

    /// Whether this is a Conflict (or an unknown reason with code 409).
    pub fn is_conflict(&self) -> bool {
        self.0.is(StatusReason::Conflict, 409)
    }

    /// Whether this is an Invalid (or an unknown reason with code 422).
    pub fn is_invalid(&self) -> bool {
        self.0.is(StatusReason::Invalid, 422)
    }

    /// Whether this is a Gone (or an unknown reason with code 410).
    pub fn is_gone(&self) -> bool {
        self.0.is(StatusReason::Gone, 410)
    }

    /// Whether this is an Expired resourceVersion.
    pub fn is_resource_expired(&self) -> bool {
        self.0.reason == StatusReason::Expired
    }

    /// Whether this is a Forbidden (or an unknown reason with code 403).
    pub fn is_forbidden(&self) -> bool {
        self.0.is(StatusReason::Forbidden, 403)
    }

    /// Whether this is an Unauthorized (or an unknown reason with code 401).
    pub fn is_unauthorized(&self) -> bool {
        self.0.is(StatusReason::Unauthorized, 401)
    }

    /// Whether this is a BadRequest (or an unknown reason with code 400).
    pub fn is_bad_request(&self) -> bool {
        self.0.is(StatusReason::BadRequest, 400)
    }

    /// Whether this is a Timeout (or an unknown reason with code 504).
    pub fn is_timeout(&self) -> bool {
        self.0.is(StatusReason::Timeout, 504)
    }

    /// Whether this is a TooManyRequests (or an unknown reason with code 429).
    pub fn is_too_many_requests(&self) -> bool {
        self.0.is(StatusReason::TooManyRequests, 429)
    }

    /// Whether this is an InternalError (or an unknown reason with code 500).
    pub fn is_internal_error(&self) -> bool {
        self.0.is(StatusReason::InternalError, 500)
    }
}

fn generic_reason_and_message(
    code: u16,
    verb: &str,
    server_message: &str,
) -> (StatusReason, String) {
    let stock = |reason, text: &str| (reason, text.to_string());
    match code {
        409 => {
            let reason = if verb == "POST" {
                StatusReason::AlreadyExists
            } else {
                StatusReason::Conflict
            };
            stock(reason, "the server reported a conflict")
        }
        404 => stock(
            StatusReason::NotFound,
            "the server could not find the requested resource",
        ),
        400 => stock(
            StatusReason::BadRequest,
            "the server rejected our request for an unknown reason",
        ),
        401 => stock(
            StatusReason::Unauthorized,
            "the server has asked for the client to provide credentials",
        ),
        403 => stock(StatusReason::Forbidden, server_message),
        406 => {
            if server_message.is_empty() || server_message == "unknown" {
                stock(
                    StatusReason::NotAcceptable,
                    "the server was unable to respond with a content type that the client supports",
                )
            } else {
                stock(StatusReason::NotAcceptable, server_message)
            }
        }
        415 => stock(StatusReason::UnsupportedMediaType, server_message),
        405 => stock(
            StatusReason::MethodNotAllowed,
            "the server does not allow this method on the requested resource",
        ),
        422 => stock(
            StatusReason::Invalid,
            "the server rejected our request due to an error in our request",
        ),
        503 => stock(
            StatusReason::ServiceUnavailable,
            "the server is currently unable to handle the request",
        ),
        504 => stock(
            StatusReason::Timeout,
            "the server was unable to return a response in the time allotted, but may still be processing the request",
        ),
        429 => stock(
            StatusReason::TooManyRequests,
            "the server has received too many requests and has asked us to try again later",
        ),
        c if c >= 500 => (
            StatusReason::InternalError,
            format!(
                "an error on the server ({}) has prevented the request from succeeding",
                go_quote(server_message)
            ),
        ),
        c => (
            StatusReason::Unknown,
            format!(
                "the server responded with the status code {c} but did not return more information"
            ),
        ),
    }
}

/// The reason text of an authorization denial of a resource request, as upstream's
/// `forbiddenMessage`: `User "u" cannot list resource "pods" in API group "" in the
/// namespace "default"` (or `... at the cluster scope`). `resource` includes the
/// subresource (`pods/log`). HTML-special characters are escaped, as upstream sanitises them.
/// Pass the result to [`StatusError::forbidden`] with the resource (without subresource).
pub fn forbidden_resource_message(
    user: &str,
    verb: &str,
    resource: &str,
    group: &str,
    namespace: Option<&str>,
) -> String {
    let scope = match namespace {
        Some(ns) if !ns.is_empty() => format!("in the namespace {}", go_quote(ns)),
        _ => "at the cluster scope".to_string(),
    };
    sanitize_html(&format!(
        "User {} cannot {verb} resource {} in API group {} {scope}",
        go_quote(user),
        go_quote(resource),
        go_quote(group)
    ))
}

/// The reason text of an authorization denial of a non-resource request: `User "u" cannot
/// get path "/metrics"`.
pub fn forbidden_path_message(user: &str, verb: &str, path: &str) -> String {
    sanitize_html(&format!(
        "User {} cannot {verb} path {}",
        go_quote(user),
        go_quote(path)
    ))
}

fn sanitize_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The kind of a field validation error, upstream's `field.ErrorType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldErrorType {
    /// A referenced value was not found.
    NotFound,
    /// A required value is missing.
    Required,
    /// A value that must be unique is repeated.
    Duplicate,
    /// A value is malformed.
    Invalid,
    /// A value is not one of the supported ones.
    NotSupported,
    /// A value is not permitted here.
    Forbidden,
    /// A value is too long.
    TooLong,
    /// A list has too many items.
    TooMany,
    /// An internal error while validating.
    Internal,
    /// A value has the wrong type.
    TypeInvalid,
}

impl FieldErrorType {
    /// The cause type a Status carries for this error (`FieldValueRequired`...).
    pub fn cause_type(&self) -> &'static str {
        match self {
            FieldErrorType::NotFound => cause_type::FIELD_VALUE_NOT_FOUND,
            FieldErrorType::Required => cause_type::FIELD_VALUE_REQUIRED,
            FieldErrorType::Duplicate => cause_type::FIELD_VALUE_DUPLICATE,
            FieldErrorType::Invalid => cause_type::FIELD_VALUE_INVALID,
            FieldErrorType::NotSupported => cause_type::FIELD_VALUE_NOT_SUPPORTED,
            FieldErrorType::Forbidden => cause_type::FIELD_VALUE_FORBIDDEN,
            FieldErrorType::TooLong => cause_type::FIELD_VALUE_TOO_LONG,
            FieldErrorType::TooMany => cause_type::FIELD_VALUE_TOO_MANY,
            FieldErrorType::Internal => cause_type::INTERNAL,
            FieldErrorType::TypeInvalid => cause_type::FIELD_VALUE_TYPE_INVALID,
        }
    }

    /// The canonical text (`Required value`, `Invalid value`...), upstream's `String()`.
    pub fn message(&self) -> &'static str {
        match self {
            FieldErrorType::NotFound => "Not found",
            FieldErrorType::Required => "Required value",
            FieldErrorType::Duplicate => "Duplicate value",
            FieldErrorType::Invalid | FieldErrorType::TypeInvalid => "Invalid value",
            FieldErrorType::NotSupported => "Unsupported value",
            FieldErrorType::Forbidden => "Forbidden",
            FieldErrorType::TooLong => "Too long",
            FieldErrorType::TooMany => "Too many",
            FieldErrorType::Internal => "Internal error",
        }
    }
}

impl fmt::Display for FieldErrorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

/// The offending value of a field error, printed as Go's `ErrorBody` prints it.
#[derive(Debug, Clone, PartialEq)]
pub enum BadValue {
    /// No value is shown (upstream's `omitValue`).
    Omitted,
    /// A nil value, printed `null`.
    Null,
    /// A string, printed Go-quoted: `"x"`.
    String(String),
    /// An integer, printed bare.
    Int(i64),
    /// A float, printed as Go's `%v`.
    Float(f64),
    /// A boolean, printed bare.
    Bool(bool),
    /// Anything else, printed as given (Go prints a `Stringer` this way).
    Display(String),
}

impl fmt::Display for BadValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadValue::Omitted => Ok(()),
            BadValue::Null => f.write_str("null"),
            BadValue::String(s) => f.write_str(&go_quote(s)),
            BadValue::Int(i) => write!(f, "{i}"),
            BadValue::Float(x) => f.write_str(&go_float(*x)),
            BadValue::Bool(b) => write!(f, "{b}"),
            BadValue::Display(s) => f.write_str(s),
        }
    }
}

impl From<&str> for BadValue {
    fn from(s: &str) -> Self {
        BadValue::String(s.to_string())
    }
}

impl From<String> for BadValue {
    fn from(s: String) -> Self {
        BadValue::String(s)
    }
}

impl From<&String> for BadValue {
    fn from(s: &String) -> Self {
        BadValue::String(s.clone())
    }
}

impl From<i64> for BadValue {
    fn from(i: i64) -> Self {
        BadValue::Int(i)
    }
}

impl From<i32> for BadValue {
    fn from(i: i32) -> Self {
        BadValue::Int(i64::from(i))
    }
}

impl From<bool> for BadValue {
    fn from(b: bool) -> Self {
        BadValue::Bool(b)
    }
}

impl From<f64> for BadValue {
    fn from(x: f64) -> Self {
        BadValue::Float(x)
    }
}

impl<T: Into<BadValue>> From<Option<T>> for BadValue {
    fn from(v: Option<T>) -> Self {
        v.map_or(BadValue::Null, Into::into)
    }
}

/// A field path such as `spec.containers[0].image`, upstream's `field.Path`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct FieldPath(String);

impl FieldPath {
    /// A path starting at `root` (`metadata`, `spec`...).
    pub fn new(root: &str) -> Self {
        Self(root.to_string())
    }

    /// The path of a named child: `spec` → `spec.replicas`.
    pub fn child(&self, name: &str) -> Self {
        if self.0.is_empty() {
            Self(name.to_string())
        } else {
            Self(format!("{}.{name}", self.0))
        }
    }

    /// The path of a list element: `containers` → `containers[0]`.
    pub fn index(&self, i: usize) -> Self {
        Self(format!("{}[{i}]", self.0))
    }

    /// The path of a map entry: `labels` → `labels[app]` (unquoted, as upstream).
    pub fn key(&self, key: &str) -> Self {
        Self(format!("{}[{key}]", self.0))
    }

    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<FieldPath> for String {
    fn from(p: FieldPath) -> Self {
        p.0
    }
}

impl From<&FieldPath> for String {
    fn from(p: &FieldPath) -> Self {
        p.0.clone()
    }
}

/// One field validation error, upstream's `field.Error`. `Display` gives
/// `<field>: <body>`, e.g. `spec.replicas: Invalid value: -1: must be greater than or equal to 0`.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    /// What is wrong.
    pub error_type: FieldErrorType,
    /// The path of the field.
    pub field: String,
    /// The offending value.
    pub bad_value: BadValue,
    /// More detail, appended after `: `.
    pub detail: String,
}

impl FieldError {
    fn new(
        error_type: FieldErrorType,
        field: impl Into<String>,
        bad_value: BadValue,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            error_type,
            field: field.into(),
            bad_value,
            detail: detail.into(),
        }
    }

    /// `Not found: <value>`.
    pub fn not_found(field: impl Into<String>, value: impl Into<BadValue>) -> Self {
        Self::new(FieldErrorType::NotFound, field, value.into(), "")
    }

    /// `Required value[: detail]`.
    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(FieldErrorType::Required, field, BadValue::from(""), detail)
    }

    /// `Duplicate value: <value>`.
    pub fn duplicate(field: impl Into<String>, value: impl Into<BadValue>) -> Self {
        Self::new(FieldErrorType::Duplicate, field, value.into(), "")
    }

    /// `Invalid value: <value>[: detail]`.
    pub fn invalid(
        field: impl Into<String>,
        value: impl Into<BadValue>,
        detail: impl Into<String>,
    ) -> Self {
        Self::new(FieldErrorType::Invalid, field, value.into(), detail)
    }

    /// `Unsupported value: <value>: supported values: "a", "b"`.
    pub fn not_supported(
        field: impl Into<String>,
        value: impl Into<BadValue>,
        supported: &[&str],
    ) -> Self {
        let detail = if supported.is_empty() {
            String::new()
        } else {
            let quoted: Vec<String> = supported.iter().map(|s| go_quote(s)).collect();
            format!("supported values: {}", quoted.join(", "))
        };
        Self::new(FieldErrorType::NotSupported, field, value.into(), detail)
    }

    /// `Forbidden[: detail]`.
    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(FieldErrorType::Forbidden, field, BadValue::from(""), detail)
    }

    /// `Too long: may not be more than <max> bytes`; a negative `max_length` gives
    /// `Too long: value is too long`. The value itself is never shown.
    pub fn too_long(field: impl Into<String>, max_length: i64) -> Self {
        let detail = if max_length >= 0 {
            format!("may not be more than {max_length} bytes")
        } else {
            "value is too long".to_string()
        };
        Self::new(
            FieldErrorType::TooLong,
            field,
            BadValue::from("<value omitted>"),
            detail,
        )
    }

    /// `Too many: <actual>: must have at most <max> items`; a negative `actual` is left out
    /// and a negative `max` gives `has too many items`.
    pub fn too_many(field: impl Into<String>, actual: i64, max: i64) -> Self {
        let detail = if max >= 0 {
            format!("must have at most {max} items")
        } else {
            "has too many items".to_string()
        };
        let value = if actual >= 0 {
            BadValue::Int(actual)
        } else {
            BadValue::Omitted
        };
        Self::new(FieldErrorType::TooMany, field, value, detail)
    }

    /// `Internal error: <err>`.
    pub fn internal(field: impl Into<String>, err: impl fmt::Display) -> Self {
        Self::new(
            FieldErrorType::Internal,
            field,
            BadValue::Null,
            err.to_string(),
        )
    }

    /// `Invalid value: <value>[: detail]` with the TypeInvalid cause type.
    pub fn type_invalid(
        field: impl Into<String>,
        value: impl Into<BadValue>,
        detail: impl Into<String>,
    ) -> Self {
        Self::new(FieldErrorType::TypeInvalid, field, value.into(), detail)
    }

    /// The message without the field, upstream's `ErrorBody`; it is what a Status cause's
    /// `message` carries.
    pub fn body(&self) -> String {
        let mut s = match (self.error_type, &self.bad_value) {
            (
                FieldErrorType::Required
                | FieldErrorType::Forbidden
                | FieldErrorType::TooLong
                | FieldErrorType::Internal,
                _,
            )
            | (_, BadValue::Omitted) => self.error_type.message().to_string(),
            (t, v) => format!("{}: {v}", t.message()),
        };
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }

    /// The Status cause for this error.
    pub fn to_cause(&self) -> StatusCause {
        StatusCause {
            cause_type: self.error_type.cause_type().to_string(),
            message: self.body(),
            field: self.field.clone(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}

impl std::error::Error for FieldError {}

/// The combined message of a list of field errors, upstream's `ErrorList.ToAggregate()`
/// printed: `None` for no errors, the message itself for one distinct error, and
/// `[a, b]` for several. Repeated messages count once.
pub fn aggregate_message(errors: &[FieldError]) -> Option<String> {
    let mut seen: Vec<String> = Vec::new();
    for e in errors {
        let msg = e.to_string();
        if !seen.contains(&msg) {
            seen.push(msg);
        }
    }
    match seen.len() {
        0 => None,
        1 => seen.pop(),
        _ => Some(format!("[{}]", seen.join(", "))),
    }
}

/// Quotes a string as Go's `%q` (`strconv.Quote`) does: double quotes, backslash escapes
/// for quotes, backslashes and control characters, printable Unicode kept as is.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            // Go keeps printable runes; Rust's notion of control characters is close to
            // the complement of unicode.IsPrint for the characters names actually contain
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() || (c.is_whitespace() && c != ' ') => {
                if (c as u32) < 0x10000 {
                    out.push_str(&format!("\\u{:04x}", c as u32));
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Formats a float as Go's `%v`: shortest representation, exponent form (`1e+21`,
/// `1e-05`) when the exponent is below -4 or at least 21.
fn go_float(x: f64) -> String {
    if x.is_nan() {
        return "NaN".to_string();
    }
    if x.is_infinite() {
        return if x > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    // Rust's `{:e}` is the shortest round-trip mantissa with a bare exponent: `1.5e-7`
    let sci = format!("{x:e}");
    let (mantissa, exp) = match sci.split_once('e') {
        Some((m, e)) => (m.to_string(), e.parse::<i32>().unwrap_or(0)),
        None => return sci,
    };
    if !(-4..21).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        format!("{x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pods() -> GroupResource {
        GroupResource::core("pods")
    }

    fn deployments() -> GroupResource {
        GroupResource::new("apps", "deployments")
    }

    fn wire(err: &StatusError) -> String {
        serde_json::to_string(err.status()).unwrap()
    }

    #[test]
    fn not_found_matches_upstream_wire_json() {
        let err = StatusError::not_found(&pods(), "web");
        assert_eq!(
            wire(&err),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"pods \"web\" not found","reason":"NotFound","details":{"name":"web","kind":"pods"},"code":404}"#
        );
        assert_eq!(err.to_string(), r#"pods "web" not found"#);
        assert!(err.is_not_found());
        assert_eq!(err.http_status(), 404);

        let err = StatusError::not_found(&deployments(), "web");
        assert_eq!(err.to_string(), r#"deployments.apps "web" not found"#);
        assert_eq!(
            wire(&err),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"deployments.apps \"web\" not found","reason":"NotFound","details":{"name":"web","group":"apps","kind":"deployments"},"code":404}"#
        );
    }

    #[test]
    fn already_exists_and_generate_name_conflict() {
        let err = StatusError::already_exists(&pods(), "web");
        assert_eq!(
            wire(&err),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"pods \"web\" already exists","reason":"AlreadyExists","details":{"name":"web","kind":"pods"},"code":409}"#
        );
        assert!(err.is_already_exists());
        assert!(!err.is_conflict());
        let err = StatusError::generate_name_conflict(&pods(), "web-x7k2p", 1);
        assert_eq!(
            err.to_string(),
            r#"pods "web-x7k2p" already exists, the server was not able to generate a unique name for the object"#
        );
        assert_eq!(err.status().retry_after_seconds(), Some(1));
    }

    #[test]
    fn conflict_uses_the_optimistic_lock_message() {
        let err = StatusError::conflict(&pods(), "web", OPTIMISTIC_LOCK_ERROR_MSG);
        assert_eq!(
            wire(&err),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Operation cannot be fulfilled on pods \"web\": the object has been modified; please apply your changes to the latest version and try again","reason":"Conflict","details":{"name":"web","kind":"pods"},"code":409}"#
        );
        assert!(err.is_conflict());
        let err = StatusError::conflict(
            &deployments(),
            "web",
            "Precondition failed: UID in precondition: a, UID in object meta: b",
        );
        assert_eq!(
            err.to_string(),
            r#"Operation cannot be fulfilled on deployments.apps "web": Precondition failed: UID in precondition: a, UID in object meta: b"#
        );
    }

    #[test]
    fn invalid_with_one_field_error() {
        let errs = [FieldError::required(
            FieldPath::new("spec").child("selector"),
            "",
        )];
        let err = StatusError::invalid(&GroupKind::new("apps", "Deployment"), "web", &errs);
        assert_eq!(
            wire(&err),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Deployment.apps \"web\" is invalid: spec.selector: Required value","reason":"Invalid","details":{"name":"web","group":"apps","kind":"Deployment","causes":[{"reason":"FieldValueRequired","message":"Required value","field":"spec.selector"}]},"code":422}"#
        );
        assert!(err.is_invalid());
        assert_eq!(err.http_status(), 422);
    }

    #[test]
    fn invalid_with_several_field_errors_uses_brackets_and_dedups() {
        let image = FieldPath::new("spec")
            .child("containers")
            .index(0)
            .child("image");
        let errs = [
            FieldError::required(&image, ""),
            FieldError::invalid(
                FieldPath::new("metadata").child("name"),
                "Web",
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters",
            ),
            FieldError::required(&image, ""),
        ];
        let err = StatusError::invalid(&GroupKind::core("Pod"), "Web", &errs);
        assert_eq!(
            err.to_string(),
            r#"Pod "Web" is invalid: [spec.containers[0].image: Required value, metadata.name: Invalid value: "Web": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters]"#
        );
        // every error still becomes a cause, duplicates included, as upstream
        assert_eq!(err.status().details.as_ref().unwrap().causes.len(), 3);
        let err = StatusError::invalid(&GroupKind::core("Pod"), "web", &[]);
        assert_eq!(err.to_string(), r#"Pod "web" is invalid"#);
        assert_eq!(
            aggregate_message(&errs[..1]).unwrap(),
            "spec.containers[0].image: Required value"
        );
        assert_eq!(
            aggregate_message(&[errs[0].clone(), errs[2].clone()]).unwrap(),
            "spec.containers[0].image: Required value"
        );
    }

    #[test]
    fn field_error_messages_match_upstream() {
        let f = "spec.x";
        let cases: Vec<(FieldError, &str, &str)> = vec![
            (
                FieldError::required(f, ""),
                "spec.x: Required value",
                cause_type::FIELD_VALUE_REQUIRED,
            ),
            (
                FieldError::required(f, "must be set"),
                "spec.x: Required value: must be set",
                cause_type::FIELD_VALUE_REQUIRED,
            ),
            (
                FieldError::invalid(f, "x", "msg"),
                r#"spec.x: Invalid value: "x": msg"#,
                cause_type::FIELD_VALUE_INVALID,
            ),
            (
                FieldError::invalid(f, -1i64, "must be greater than or equal to 0"),
                "spec.x: Invalid value: -1: must be greater than or equal to 0",
                cause_type::FIELD_VALUE_INVALID,
            ),
            (
                FieldError::invalid(f, true, ""),
                "spec.x: Invalid value: true",
                cause_type::FIELD_VALUE_INVALID,
            ),
            (
                FieldError::invalid(f, None::<&str>, "x"),
                "spec.x: Invalid value: null: x",
                cause_type::FIELD_VALUE_INVALID,
            ),
            (
                FieldError::invalid(f, 0.5, ""),
                "spec.x: Invalid value: 0.5",
                cause_type::FIELD_VALUE_INVALID,
            ),
            (
                FieldError::not_supported(f, "x", &["a", "b"]),
                r#"spec.x: Unsupported value: "x": supported values: "a", "b""#,
                cause_type::FIELD_VALUE_NOT_SUPPORTED,
            ),
            (
                FieldError::not_supported(f, "x", &[]),
                r#"spec.x: Unsupported value: "x""#,
                cause_type::FIELD_VALUE_NOT_SUPPORTED,
            ),
            (
                FieldError::forbidden(f, "may not be changed"),
                "spec.x: Forbidden: may not be changed",
                cause_type::FIELD_VALUE_FORBIDDEN,
            ),
            (
                FieldError::duplicate(f, "a"),
                r#"spec.x: Duplicate value: "a""#,
                cause_type::FIELD_VALUE_DUPLICATE,
            ),
            (
                FieldError::not_found(f, "a"),
                r#"spec.x: Not found: "a""#,
                cause_type::FIELD_VALUE_NOT_FOUND,
            ),
            (
                FieldError::too_long(f, 63),
                "spec.x: Too long: may not be more than 63 bytes",
                cause_type::FIELD_VALUE_TOO_LONG,
            ),
            (
                FieldError::too_long(f, -1),
                "spec.x: Too long: value is too long",
                cause_type::FIELD_VALUE_TOO_LONG,
            ),
            (
                FieldError::too_many(f, 5, 3),
                "spec.x: Too many: 5: must have at most 3 items",
                cause_type::FIELD_VALUE_TOO_MANY,
            ),
            (
                FieldError::too_many(f, -1, 3),
                "spec.x: Too many: must have at most 3 items",
                cause_type::FIELD_VALUE_TOO_MANY,
            ),
            (
                FieldError::too_many(f, 5, -1),
                "spec.x: Too many: 5: has too many items",
                cause_type::FIELD_VALUE_TOO_MANY,
            ),
            (
                FieldError::type_invalid(f, "x", "must be integer"),
                r#"spec.x: Invalid value: "x": must be integer"#,
                cause_type::FIELD_VALUE_TYPE_INVALID,
            ),
            (
                FieldError::internal(f, "boom"),
                "spec.x: Internal error: boom",
                cause_type::INTERNAL,
            ),
        ];
        for (err, text, cause) in cases {
            assert_eq!(err.to_string(), text);
            let c = err.to_cause();
            assert_eq!(c.cause_type, cause);
            assert_eq!(c.field, "spec.x");
            assert_eq!(format!("spec.x: {}", c.message), text);
        }
    }

    #[test]
    fn field_paths_print_as_upstream() {
        let p = FieldPath::new("spec")
            .child("template")
            .child("spec")
            .child("containers")
            .index(2)
            .child("env");
        assert_eq!(p.to_string(), "spec.template.spec.containers[2].env");
        assert_eq!(
            FieldPath::new("metadata")
                .child("labels")
                .key("app")
                .as_str(),
            "metadata.labels[app]"
        );
        assert_eq!(FieldPath::default().child("spec").as_str(), "spec");
        assert_eq!(FieldPath::default().index(0).as_str(), "[0]");
    }

    #[test]
    fn go_quoting_and_floats() {
        assert_eq!(go_quote("web"), r#""web""#);
        assert_eq!(go_quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(go_quote("a\nb\tc"), r#""a\nb\tc""#);
        assert_eq!(go_quote("\u{1}"), r#""\x01""#);
        assert_eq!(go_quote("héllo ✓"), "\"héllo ✓\"");
        assert_eq!(go_quote("\u{85}"), r#""\u0085""#);
        assert_eq!(go_float(1.5), "1.5");
        assert_eq!(go_float(100.0), "100");
        assert_eq!(go_float(1e20), "100000000000000000000");
        assert_eq!(go_float(1e21), "1e+21");
        assert_eq!(go_float(1.5e-7), "1.5e-07");
        assert_eq!(go_float(0.0001), "0.0001");
        assert_eq!(go_float(0.00001), "1e-05");
        assert_eq!(go_float(-2.25), "-2.25");
        assert_eq!(go_float(f64::INFINITY), "+Inf");
    }

    #[test]
    fn forbidden_variants() {
        let why = forbidden_resource_message(
            "system:serviceaccount:default:default",
            "list",
            "pods",
            "",
            Some("default"),
        );
        let err = StatusError::forbidden(&pods(), "", &why);
        // the exact body a v1.33 apiserver sends when a service account may not list pods
        assert_eq!(
            wire(&err),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"pods is forbidden: User \"system:serviceaccount:default:default\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\"","reason":"Forbidden","details":{"kind":"pods"},"code":403}"#
        );
        assert!(err.is_forbidden());
        let why = forbidden_resource_message("bob", "get", "nodes/proxy", "", None);
        let err = StatusError::forbidden(&GroupResource::core("nodes"), "n1", why);
        assert_eq!(
            err.to_string(),
            r#"nodes "n1" is forbidden: User "bob" cannot get resource "nodes/proxy" in API group "" at the cluster scope"#
        );
        let err = StatusError::forbidden(
            &GroupResource::default(),
            "",
            forbidden_path_message("bob", "get", "/metrics"),
        );
        assert_eq!(
            err.to_string(),
            r#"forbidden: User "bob" cannot get path "/metrics""#
        );
        assert_eq!(
            forbidden_path_message("<b>", "get", "/"),
            r#"User "&lt;b&gt;" cannot get path "/""#
        );
    }

    #[test]
    fn unauthorized_messages() {
        let err = StatusError::unauthorized(UNAUTHORIZED_MSG);
        assert_eq!(
            wire(&err),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}"#
        );
        assert_eq!(StatusError::unauthorized("").to_string(), "not authorized");
        assert!(err.is_unauthorized());
    }

    #[test]
    fn gone_and_expired() {
        let err = StatusError::too_old_resource_version(5, 10);
        assert_eq!(
            wire(&err),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 5 (10)","reason":"Expired","code":410}"#
        );
        assert!(err.is_resource_expired());
        assert!(!err.is_gone());
        let err = StatusError::gone("gone for good");
        assert!(err.is_gone());
        assert_eq!(err.http_status(), 410);
        let err = StatusError::continue_expired(Some("tok".to_string()));
        let v = serde_json::to_value(err.status()).unwrap();
        assert_eq!(v["metadata"], json!({"continue": "tok"}));
        assert_eq!(v["code"], 410);
        assert_eq!(
            StatusError::resource_expired(WATCH_TOO_OLD_MSG).reason(),
            StatusReason::Expired
        );
    }

    #[test]
    fn request_errors() {
        assert_eq!(
            wire(&StatusError::bad_request(
                "the name of the object (a) does not match the name on the URL (b)"
            )),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"the name of the object (a) does not match the name on the URL (b)","reason":"BadRequest","code":400}"#
        );
        let err =
            StatusError::method_not_supported(&GroupResource::core("componentstatuses"), "create");
        assert_eq!(
            wire(&err),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"create is not supported on resources of kind \"componentstatuses\"","reason":"MethodNotAllowed","details":{"kind":"componentstatuses"},"code":405}"#
        );
        let err = StatusError::not_acceptable(&[
            "application/json",
            "application/yaml",
            "application/vnd.kubernetes.protobuf",
        ]);
        assert_eq!(
            err.to_string(),
            "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf"
        );
        assert_eq!(err.http_status(), 406);
        let err = StatusError::unsupported_media_type(&["application/json", "application/yaml"]);
        assert_eq!(
            err.to_string(),
            "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml"
        );
        assert_eq!(err.reason(), StatusReason::UnsupportedMediaType);
        assert_eq!(err.http_status(), 415);
        let err = StatusError::request_entity_too_large("limit is 3145728");
        assert_eq!(
            wire(&err),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Request entity too large: limit is 3145728","reason":"RequestEntityTooLarge","code":413}"#
        );
    }

    #[test]
    fn throttling_and_timeouts_carry_retry_after() {
        assert_eq!(
            wire(&StatusError::too_many_requests("slow down", 3)),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"slow down","reason":"TooManyRequests","details":{"retryAfterSeconds":3},"code":429}"#
        );
        assert_eq!(
            wire(&StatusError::too_many_requests_error("x")),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Too many requests: x","reason":"TooManyRequests","code":429}"#
        );
        assert_eq!(
            wire(&StatusError::timeout(
                "request did not complete within 60s",
                2
            )),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Timeout: request did not complete within 60s","reason":"Timeout","details":{"retryAfterSeconds":2},"code":504}"#
        );
        // Go writes the non-nil, empty details as {}
        assert_eq!(
            wire(&StatusError::timeout("x", 0)),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Timeout: x","reason":"Timeout","details":{},"code":504}"#
        );
        let err = StatusError::too_large_resource_version(20, 10, 1);
        assert_eq!(
            wire(&err),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Timeout: Too large resource version: 20, current: 10","reason":"Timeout","details":{"causes":[{"reason":"ResourceVersionTooLarge","message":"Too large resource version"}],"retryAfterSeconds":1},"code":504}"#
        );
        assert!(err.is_timeout());
        let err = StatusError::server_timeout(&pods(), "create", 2);
        assert_eq!(
            err.to_string(),
            "The create operation against pods could not be completed at this time, please try again."
        );
        assert_eq!(err.status().details.as_ref().unwrap().name, "create");
        assert_eq!(err.http_status(), 500);
    }

    #[test]
    fn server_side_errors() {
        let err = StatusError::internal_error("etcd is down");
        assert_eq!(
            wire(&err),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Internal error occurred: etcd is down","reason":"InternalError","details":{"causes":[{"message":"etcd is down"}]},"code":500}"#
        );
        assert!(err.is_internal_error());
        assert_eq!(
            wire(&StatusError::service_unavailable(
                "the server is shutting down"
            )),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"the server is shutting down","reason":"ServiceUnavailable","code":503}"#
        );
    }

    #[test]
    fn generic_server_responses() {
        let err = StatusError::generic_server_response(
            404,
            "GET",
            &GroupResource::default(),
            "",
            "",
            0,
            false,
        );
        assert_eq!(
            wire(&err),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"the server could not find the requested resource","reason":"NotFound","details":{},"code":404}"#
        );
        let err = StatusError::generic_server_response(409, "POST", &pods(), "web", "", 0, false);
        assert_eq!(err.reason(), StatusReason::AlreadyExists);
        assert_eq!(
            err.to_string(),
            "the server reported a conflict (post pods web)"
        );
        let err = StatusError::generic_server_response(
            502,
            "GET",
            &deployments(),
            "",
            "bad gateway",
            0,
            true,
        );
        assert_eq!(
            err.to_string(),
            r#"an error on the server ("bad gateway") has prevented the request from succeeding (get deployments.apps)"#
        );
        assert_eq!(
            err.status().details.as_ref().unwrap().causes[0].cause_type,
            cause_type::UNEXPECTED_SERVER_RESPONSE
        );
        let err = StatusError::generic_server_response(
            418,
            "GET",
            &GroupResource::default(),
            "",
            "",
            0,
            false,
        );
        assert_eq!(err.reason(), StatusReason::Unknown);
        assert_eq!(
            err.to_string(),
            "the server responded with the status code 418 but did not return more information"
        );
    }

    #[test]
    fn success_status() {
        let s = Status::success(Some(StatusDetails {
            name: "web".into(),
            kind: "pods".into(),
            uid: "1234".into(),
            ..StatusDetails::default()
        }));
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success","details":{"name":"web","kind":"pods","uid":"1234"},"code":200}"#
        );
        assert_eq!(s.http_status(), 200);
    }

    #[test]
    fn statuses_round_trip_and_unknown_reasons_fall_back_to_the_code() {
        let err = StatusError::invalid(
            &GroupKind::new("apps", "Deployment"),
            "web",
            &[FieldError::invalid(
                "spec.replicas",
                -1i64,
                "must be greater than or equal to 0",
            )],
        );
        let text = wire(&err);
        let back: Status = serde_json::from_str(&text).unwrap();
        assert_eq!(&back, err.status());

        let foreign: Status = serde_json::from_value(json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "nope", "reason": "SomethingNew", "code": 404
        }))
        .unwrap();
        assert_eq!(foreign.reason, StatusReason::Unknown);
        assert!(StatusError(foreign.clone()).is_not_found());
        let mut conflict = foreign;
        conflict.reason = StatusReason::AlreadyExists;
        conflict.code = 409;
        assert!(
            !StatusError(conflict).is_conflict(),
            "a known reason wins over the code"
        );
        let storage: StatusReason = serde_json::from_str(r#""StorageReadError""#).unwrap();
        assert_eq!(storage, StatusReason::StoreReadError);
        assert_eq!(
            serde_json::to_string(&StatusReason::StoreReadError).unwrap(),
            r#""StorageReadError""#
        );
    }

    #[test]
    fn reasons_map_to_their_documented_codes() {
        assert_eq!(StatusReason::NotFound.http_code(), 404);
        assert_eq!(StatusReason::Expired.http_code(), 410);
        assert_eq!(StatusReason::Invalid.http_code(), 422);
        assert_eq!(StatusReason::Timeout.http_code(), 504);
        assert_eq!(StatusReason::ServerTimeout.http_code(), 500);
        assert_eq!(StatusReason::RequestEntityTooLarge.http_code(), 413);
        assert_eq!(StatusReason::Unknown.as_str(), "");
        // a status without a code answers 500 on failure, as ErrorToAPIStatus fills it in
        let s = Status {
            status: STATUS_FAILURE.into(),
            ..Status::default()
        };
        assert_eq!(s.http_status(), 500);
    }
}
