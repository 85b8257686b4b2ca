//! The three patch types kube-apiserver applies on PATCH, on objects held as JSON:
//! RFC 6902 JSON patch, RFC 7386 merge patch and strategic merge patch.
//!
//! Mirrors `k8s.io/apiserver/pkg/endpoints/handlers/patch.go` (which body decodes how,
//! the 10000-operation limit, which failure is which HTTP status),
//! `gopkg.in/evanphx/json-patch.v4` (JSON and merge patch semantics and error texts),
//! `k8s.io/apimachinery/pkg/util/strategicpatch` and `pkg/util/mergepatch` (strategic
//! merge and its directives), and `encoding/json`'s syntax errors as `sigs.k8s.io/json`
//! reports them. The request is assumed decoded with the server's default field
//! validation (`Warn`), which is also what kubectl's default `Strict` decodes with.

use std::collections::BTreeSet;

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, PatchOperation, RemoveOperation, ReplaceOperation};
use serde_json::{Map, Value};

use crate::errors::{Status, StatusError, StatusReason};
use crate::resources::{self, GroupKind, GroupResource};

/// `application/json-patch+json`.
pub const JSON_PATCH_MEDIA_TYPE: &str = "application/json-patch+json";
/// `application/merge-patch+json`.
pub const MERGE_PATCH_MEDIA_TYPE: &str = "application/merge-patch+json";
/// `application/strategic-merge-patch+json`.
pub const STRATEGIC_MERGE_PATCH_MEDIA_TYPE: &str = "application/strategic-merge-patch+json";
/// `application/apply-patch+yaml` (server-side apply).
pub const APPLY_PATCH_MEDIA_TYPE: &str = "application/apply-patch+yaml";

/// Upstream's `maxJSONPatchOperations`: the most operations one JSON patch may carry.
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// The patch media types a built-in resource accepts, in upstream's order (the API
/// installer's `supportedTypes`); the order shows in the 415 message.
pub const BUILT_IN_PATCH_TYPES: &[&str] = &[
    JSON_PATCH_MEDIA_TYPE,
    MERGE_PATCH_MEDIA_TYPE,
    STRATEGIC_MERGE_PATCH_MEDIA_TYPE,
    APPLY_PATCH_MEDIA_TYPE,
];

/// The patch media types a custom resource accepts: no strategic merge, because there
/// are no Go struct tags to say how its lists merge (apiextensions-apiserver's handler).
pub const CUSTOM_RESOURCE_PATCH_TYPES: &[&str] = &[
    JSON_PATCH_MEDIA_TYPE,
    MERGE_PATCH_MEDIA_TYPE,
    APPLY_PATCH_MEDIA_TYPE,
];

/// Bounds what `copy` operations may add in total, so a short patch cannot double a
/// document thousands of times; upstream leaves evanphx's `AccumulatedCopySizeLimit` at 0
/// (unlimited), which a server sharing two cores cannot afford.
const MAX_ACCUMULATED_COPY_BYTES: usize = 64 << 20;

/// Which patch a PATCH request carries, from its `Content-Type` (upstream's `types.PatchType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PatchType {
    /// RFC 6902 JSON patch, `application/json-patch+json`.
    Json,
    /// RFC 7386 merge patch, `application/merge-patch+json`.
    Merge,
    /// Strategic merge patch, `application/strategic-merge-patch+json`.
    StrategicMerge,
    /// Server-side apply, `application/apply-patch+yaml`; not applied by this module.
    Apply,
}

impl PatchType {
    /// The patch type of a `Content-Type` header. As upstream, anything after the first
    /// `;` (a charset) is ignored and the media type must match exactly; an unknown one is
    /// 415 listing the types built-in resources accept.
    pub fn from_content_type(content_type: &str) -> Result<Self, PatchError> {
        let media = match content_type.find(';') {
            Some(idx) if idx > 0 => &content_type[..idx],
            _ => content_type,
        };
        match media {
            JSON_PATCH_MEDIA_TYPE => Ok(Self::Json),
            MERGE_PATCH_MEDIA_TYPE => Ok(Self::Merge),
            STRATEGIC_MERGE_PATCH_MEDIA_TYPE => Ok(Self::StrategicMerge),
            APPLY_PATCH_MEDIA_TYPE => Ok(Self::Apply),
            _ => Err(PatchError::UnsupportedMediaType {
                accepted: BUILT_IN_PATCH_TYPES.to_vec(),
            }),
        }
    }

    /// The media type naming this patch type.
    pub fn media_type(&self) -> &'static str {
        match self {
            Self::Json => JSON_PATCH_MEDIA_TYPE,
            Self::Merge => MERGE_PATCH_MEDIA_TYPE,
            Self::StrategicMerge => STRATEGIC_MERGE_PATCH_MEDIA_TYPE,
            Self::Apply => APPLY_PATCH_MEDIA_TYPE,
        }
    }
}

/// Why a patch could not be applied; [`PatchError::to_status_error`] gives the
/// `metav1.Status` upstream answers with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PatchError {
    /// 415: the media type is not a patch type the resource accepts.
    #[error("the body of the request was in an unknown format - accepted media types include: {}", .accepted.join(", "))]
    UnsupportedMediaType {
        /// The media types the resource accepts, in upstream's order.
        accepted: Vec<&'static str>,
    },
    /// 400: the body cannot be decoded as the patch type, or a strategic merge directive
    /// is malformed; the text is upstream's message.
    #[error("{0}")]
    BadRequest(String),
    /// 413: a JSON patch with more than [`MAX_JSON_PATCH_OPERATIONS`] operations.
    #[error("The allowed maximum operations in a JSON patch is {max}, got {got}")]
    TooManyOperations {
        /// The limit.
        max: usize,
        /// How many operations the patch had.
        got: usize,
    },
    /// 422: the patch does not apply to the object (a failed `test`, a missing path, a
    /// list of lists). Upstream answers with a stock message and drops this text, which
    /// is kept here for logs.
    #[error("{0}")]
    Unprocessable(String),
    /// 500 with no reason: a strategic merge failure upstream passes on as a plain Go
    /// error (e.g. a list element without its merge key).
    #[error("{0}")]
    Unclassified(String),
    /// Server-side apply reached this module, which does not apply it.
    #[error("{0}: unimplemented patch type")]
    Unimplemented(&'static str),
}

impl PatchError {
    /// The `metav1.Status` error upstream answers with for this failure.
    pub fn to_status_error(&self) -> StatusError {
        match self {
            Self::UnsupportedMediaType { accepted } => {
                StatusError::unsupported_media_type(accepted)
            }
            Self::BadRequest(message) => StatusError::bad_request(message.clone()),
            Self::TooManyOperations { .. } => {
                StatusError::request_entity_too_large(&self.to_string())
            }
            // upstream: NewGenericServerResponse(422, "", GroupResource{}, "", err, 0, false)
            Self::Unprocessable(message) => StatusError::generic_server_response(
                422,
                "",
                &GroupResource::default(),
                "",
                message,
                0,
                false,
            ),
            // upstream's ErrorToAPIStatus for an error that is not a StatusError
            Self::Unclassified(_) | Self::Unimplemented(_) => StatusError(Status::failure(
                500,
                StatusReason::Unknown,
                self.to_string(),
            )),
        }
    }
}

impl From<PatchError> for StatusError {
    fn from(err: PatchError) -> Self {
        err.to_status_error()
    }
}

/// The patch media types a kind accepts: all four for a built-in kind, no strategic
/// merge for any other (custom resources).
pub fn accepted_patch_types(kind: &GroupKind) -> &'static [&'static str] {
    if supports_strategic_merge(kind) {
        BUILT_IN_PATCH_TYPES
    } else {
        CUSTOM_RESOURCE_PATCH_TYPES
    }
}

/// Whether strategic merge patch applies to the kind: true for built-in kinds only.
pub fn supports_strategic_merge(kind: &GroupKind) -> bool {
    resources::find_by_group_kind(&kind.group, &kind.kind).is_some()
}

/// Applies a PATCH body of `patch_type` to `original` (the object as the client sees it,
/// in its versioned JSON form) and returns the patched object, as kube-apiserver's patch
/// handler does before decoding the result into the typed object.
pub fn apply_patch(
    patch_type: PatchType,
    original: &Value,
    patch_body: &[u8],
    kind: &GroupKind,
) -> Result<Value, PatchError> {
    match patch_type {
        PatchType::Json => {
            let ops = decode_json_patch(patch_body)?;
            let mut doc = original.clone();
            apply_json_patch_ops(&mut doc, &ops).map_err(PatchError::Unprocessable)?;
            Ok(doc)
        }
        PatchType::Merge => apply_merge_patch(original, patch_body),
        PatchType::StrategicMerge => {
            let Some(schema) = MergeSchema::for_kind(kind) else {
                return Err(PatchError::UnsupportedMediaType {
                    accepted: CUSTOM_RESOURCE_PATCH_TYPES.to_vec(),
                });
            };
            apply_strategic_merge_patch(original, patch_body, &schema)
        }
        PatchType::Apply => Err(PatchError::Unimplemented(APPLY_PATCH_MEDIA_TYPE)),
    }
}

// ---------------------------------------------------------------------------------------
// Go's encoding/json syntax check, for upstream's exact decode error texts.

fn is_go_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

/// Go's `quoteChar`: a byte as a single-quoted Go character literal.
fn go_quote_char(c: u8) -> String {
    match c {
        b'\'' => r"'\''".to_string(),
        b'"' => "'\"'".to_string(),
        0x07 => r"'\a'".to_string(),
        0x08 => r"'\b'".to_string(),
        0x0c => r"'\f'".to_string(),
        b'\n' => r"'\n'".to_string(),
        b'\r' => r"'\r'".to_string(),
        b'\t' => r"'\t'".to_string(),
        0x0b => r"'\v'".to_string(),
        b'\\' => r"'\\'".to_string(),
        c if c < 0x20 || c == 0x7f => format!("'\\x{c:02x}'"),
        // string(byte) in Go is the rune U+00XX; these are not printable to strconv.Quote
        c if (0x80..=0xa0).contains(&c) || c == 0xad => format!("'\\u{c:04x}'"),
        c => format!("'{}'", char::from(c)),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum ScanState {
    BeginValueOrEmpty,
    BeginValue,
    BeginStringOrEmpty,
    BeginString,
    EndValue,
    EndTop,
    InString,
    InStringEsc,
    InStringEscU(u8),
    Neg,
    One,
    Zero,
    Dot,
    Dot0,
    E,
    ESign,
    E0,
    Literal(&'static [u8], usize, &'static str),
}

#[derive(Clone, Copy, PartialEq)]
enum ParseState {
    ObjectKey,
    ObjectValue,
    ArrayValue,
}

/// Go's `encoding/json` scanner: only its error texts are needed, so it answers the first
/// syntax error as Go words it.
struct GoScanner {
    state: ScanState,
    stack: Vec<ParseState>,
    end_top: bool,
}

const GO_MAX_NESTING_DEPTH: usize = 10_000;

impl GoScanner {
    fn new() -> Self {
        Self {
            state: ScanState::BeginValue,
            stack: Vec::new(),
            end_top: false,
        }
    }

    fn error(c: u8, context: &str) -> Result<(), String> {
        Err(format!("invalid character {} {context}", go_quote_char(c)))
    }

    fn push(&mut self, c: u8, ps: ParseState, next: ScanState) -> Result<(), String> {
        self.stack.push(ps);
        if self.stack.len() > GO_MAX_NESTING_DEPTH {
            return Self::error(c, "exceeded max depth");
        }
        self.state = next;
        Ok(())
    }

    fn pop(&mut self) {
        self.stack.pop();
        if self.stack.is_empty() {
            self.state = ScanState::EndTop;
            self.end_top = true;
        } else {
            self.state = ScanState::EndValue;
        }
    }

    fn step(&mut self, c: u8) -> Result<(), String> {
        loop {
            match self.state {
                ScanState::BeginValueOrEmpty => {
                    if is_go_space(c) {
                        return Ok(());
                    }
                    self.state = if c == b']' {
                        ScanState::EndValue
                    } else {
                        ScanState::BeginValue
                    };
                }
                ScanState::BeginValue => {
                    if is_go_space(c) {
                        return Ok(());
                    }
                    self.state = match c {
                        b'{' => {
                            return self.push(
                                c,
                                ParseState::ObjectKey,
                                ScanState::BeginStringOrEmpty,
                            );
                        }
                        b'[' => {
                            return self.push(
                                c,
                                ParseState::ArrayValue,
                                ScanState::BeginValueOrEmpty,
                            );
                        }
                        b'"' => ScanState::InString,
                        b'-' => ScanState::Neg,
                        b'0' => ScanState::Zero,
                        b'1'..=b'9' => ScanState::One,
                        b't' => ScanState::Literal(b"rue", 0, "true"),
                        b'f' => ScanState::Literal(b"alse", 0, "false"),
                        b'n' => ScanState::Literal(b"ull", 0, "null"),
                        _ => return Self::error(c, "looking for beginning of value"),
                    };
                    return Ok(());
                }
                ScanState::BeginStringOrEmpty => {
                    if is_go_space(c) {
                        return Ok(());
                    }
                    if c == b'}' {
                        if let Some(top) = self.stack.last_mut() {
                            *top = ParseState::ObjectValue;
                        }
                        self.state = ScanState::EndValue;
                    } else {
                        self.state = ScanState::BeginString;
                    }
                }
                ScanState::BeginString => {
                    if is_go_space(c) {
                        return Ok(());
                    }
                    if c == b'"' {
                        self.state = ScanState::InString;
                        return Ok(());
                    }
                    return Self::error(c, "looking for beginning of object key string");
                }
                ScanState::EndValue => {
                    let Some(top) = self.stack.last().copied() else {
                        self.state = ScanState::EndTop;
                        self.end_top = true;
                        continue;
                    };
                    if is_go_space(c) {
                        return Ok(());
                    }
                    match (top, c) {
                        (ParseState::ObjectKey, b':') => {
                            if let Some(t) = self.stack.last_mut() {
                                *t = ParseState::ObjectValue;
                            }
                            self.state = ScanState::BeginValue;
                        }
                        (ParseState::ObjectKey, _) => return Self::error(c, "after object key"),
                        (ParseState::ObjectValue, b',') => {
                            if let Some(t) = self.stack.last_mut() {
                                *t = ParseState::ObjectKey;
                            }
                            self.state = ScanState::BeginString;
                        }
                        (ParseState::ObjectValue, b'}') => self.pop(),
                        (ParseState::ObjectValue, _) => {
                            return Self::error(c, "after object key:value pair");
                        }
                        (ParseState::ArrayValue, b',') => self.state = ScanState::BeginValue,
                        (ParseState::ArrayValue, b']') => self.pop(),
                        (ParseState::ArrayValue, _) => {
                            return Self::error(c, "after array element");
                        }
                    }
                    return Ok(());
                }
                ScanState::EndTop => {
                    if !is_go_space(c) {
                        return Self::error(c, "after top-level value");
                    }
                    return Ok(());
                }
                ScanState::InString => {
                    match c {
                        b'"' => self.state = ScanState::EndValue,
                        b'\\' => self.state = ScanState::InStringEsc,
                        c if c < 0x20 => return Self::error(c, "in string literal"),
                        _ => {}
                    }
                    return Ok(());
                }
                ScanState::InStringEsc => {
                    self.state = match c {
                        b'b' | b'f' | b'n' | b'r' | b't' | b'\\' | b'/' | b'"' => {
                            ScanState::InString
                        }
                        b'u' => ScanState::InStringEscU(0),
                        _ => return Self::error(c, "in string escape code"),
                    };
                    return Ok(());
                }
                ScanState::InStringEscU(n) => {
                    if !c.is_ascii_hexdigit() {
                        return Self::error(c, "in \\u hexadecimal character escape");
                    }
                    self.state = if n >= 3 {
                        ScanState::InString
                    } else {
                        ScanState::InStringEscU(n + 1)
                    };
                    return Ok(());
                }
                ScanState::Neg => {
                    self.state = match c {
                        b'0' => ScanState::Zero,
                        b'1'..=b'9' => ScanState::One,
                        _ => return Self::error(c, "in numeric literal"),
                    };
                    return Ok(());
                }
                ScanState::One => {
                    if c.is_ascii_digit() {
                        return Ok(());
                    }
                    self.state = ScanState::Zero;
                }
                ScanState::Zero => match c {
                    b'.' => {
                        self.state = ScanState::Dot;
                        return Ok(());
                    }
                    b'e' | b'E' => {
                        self.state = ScanState::E;
                        return Ok(());
                    }
                    _ => self.state = ScanState::EndValue,
                },
                ScanState::Dot => {
                    if c.is_ascii_digit() {
                        self.state = ScanState::Dot0;
                        return Ok(());
                    }
                    return Self::error(c, "after decimal point in numeric literal");
                }
                ScanState::Dot0 => match c {
                    b'0'..=b'9' => return Ok(()),
                    b'e' | b'E' => {
                        self.state = ScanState::E;
                        return Ok(());
                    }
                    _ => self.state = ScanState::EndValue,
                },
                ScanState::E => {
                    if c == b'+' || c == b'-' {
                        self.state = ScanState::ESign;
                        return Ok(());
                    }
                    self.state = ScanState::ESign;
                }
                ScanState::ESign => {
                    if c.is_ascii_digit() {
                        self.state = ScanState::E0;
                        return Ok(());
                    }
                    return Self::error(c, "in exponent of numeric literal");
                }
                ScanState::E0 => {
                    if c.is_ascii_digit() {
                        return Ok(());
                    }
                    self.state = ScanState::EndValue;
                }
                ScanState::Literal(rest, pos, name) => {
                    let Some(&want) = rest.get(pos) else {
                        self.state = ScanState::EndValue;
                        continue;
                    };
                    if c != want {
                        return Self::error(
                            c,
                            &format!("in literal {name} (expecting {})", go_quote_char(want)),
                        );
                    }
                    self.state = if pos + 1 == rest.len() {
                        ScanState::EndValue
                    } else {
                        ScanState::Literal(rest, pos + 1, name)
                    };
                    return Ok(());
                }
            }
        }
    }
}

/// Go's `checkValid`: the syntax error `json.Unmarshal` reports for `data`, if any.
fn go_json_syntax_error(data: &[u8]) -> Option<String> {
    let mut scanner = GoScanner::new();
    for &c in data {
        if let Err(e) = scanner.step(c) {
            return Some(e);
        }
    }
    if scanner.end_top {
        return None;
    }
    // Go's scanner.eof feeds one space, which ends a number and exposes a cut literal
    if let Err(e) = scanner.step(b' ') {
        return Some(e);
    }
    if scanner.end_top {
        None
    } else {
        Some("unexpected end of JSON input".to_string())
    }
}

/// Decodes a body as Go's `json.Unmarshal` would accept it, with Go's syntax messages.
fn decode_body(body: &[u8]) -> Result<Value, String> {
    if let Some(e) = go_json_syntax_error(body) {
        return Err(e);
    }
    // Go accepts a few inputs serde rejects (invalid UTF-8, lone surrogates, deep nesting);
    // those answer with serde's text
    serde_json::from_slice(body).map_err(|e| e.to_string())
}

/// The word Go's `UnmarshalTypeError` uses for a JSON value.
fn json_kind_word(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

// ---------------------------------------------------------------------------------------
// Go's fmt rendering of decoded JSON, for the texts of strategic merge errors.

/// The Go dynamic type a decoded JSON value has (`UnmarshalCaseSensitivePreserveInts`
/// keeps integers as int64, other numbers as float64).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GoType {
    Nil,
    Bool,
    Int64,
    Float64,
    String,
    Slice,
    Map,
}

fn go_type(v: &Value) -> GoType {
    match v {
        Value::Null => GoType::Nil,
        Value::Bool(_) => GoType::Bool,
        Value::Number(n) if n.is_f64() => GoType::Float64,
        Value::Number(_) => GoType::Int64,
        Value::String(_) => GoType::String,
        Value::Array(_) => GoType::Slice,
        Value::Object(_) => GoType::Map,
    }
}

fn go_type_name(v: &Value) -> &'static str {
    match go_type(v) {
        GoType::Nil => "%!s(<nil>)",
        GoType::Bool => "bool",
        GoType::Int64 => "int64",
        GoType::Float64 => "float64",
        GoType::String => "string",
        GoType::Slice => "[]interface {}",
        GoType::Map => "map[string]interface {}",
    }
}

/// Go's `%v` of a float64 (`strconv` 'g', shortest): exponent form below 1e-4 or from 1e6.
fn go_float(f: f64) -> String {
    if f == 0.0 || !f.is_finite() {
        return format!("{f}");
    }
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        format!("{f}")
    }
}

/// Go's `%v` of a decoded JSON value: `map[k:v]` with sorted keys, `[a b]`, `<nil>`.
fn go_v(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => go_float(f),
            _ => n.to_string(),
        },
        Value::String(s) => s.clone(),
        Value::Array(a) => go_v_list(a),
        Value::Object(m) => go_v_map(m),
    }
}

fn go_v_list(a: &[Value]) -> String {
    let items: Vec<String> = a.iter().map(go_v).collect();
    format!("[{}]", items.join(" "))
}

fn go_v_map(m: &Map<String, Value>) -> String {
    let mut keys: Vec<&String> = m.keys().collect();
    keys.sort();
    let items: Vec<String> = keys
        .into_iter()
        .map(|k| format!("{k}:{}", m.get(k).map(go_v).unwrap_or_default()))
        .collect();
    format!("map[{}]", items.join(" "))
}

/// Go's `%s` of a decoded value: strings as is, other values as `%!s(type=value)`.
fn go_s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "%!s(<nil>)".to_string(),
        Value::Array(_) | Value::Object(_) => go_v(v),
        other => format!("%!s({}={})", go_type_name(other), go_v(other)),
    }
}

/// Go's `==` on two decoded values; maps and slices (which panic in Go) are unequal.
fn go_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Number(x), Value::Number(y)) => {
            if x.is_f64() != y.is_f64() {
                false
            } else if x.is_f64() {
                x.as_f64() == y.as_f64()
            } else {
                x == y
            }
        }
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------
// JSON patch (RFC 6902), with evanphx/json-patch v4 semantics and texts.

/// One decoded operation; `None` fields were absent or null.
#[derive(Debug, Clone, Default)]
struct RawOp {
    op: Option<String>,
    path: Option<String>,
    from: Option<String>,
    value: Value,
}

/// Decodes a JSON patch body as upstream does: strictly into `[]jsonPatchOp` first (which
/// names the type error), then counts the operations.
fn decode_json_patch(body: &[u8]) -> Result<Vec<Option<RawOp>>, PatchError> {
    let bad = |e: String| PatchError::BadRequest(format!("error decoding patch: {e}"));
    let value = decode_body(body).map_err(bad)?;
    let items = match value {
        Value::Null => Vec::new(),
        Value::Array(items) => items,
        other => {
            return Err(bad(format!(
                "json: cannot unmarshal {} into Go value of type []handlers.jsonPatchOp",
                json_kind_word(&other)
            )));
        }
    };
    let mut ops = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Value::Null => ops.push(None),
            Value::Object(mut m) => {
                let mut field = |name: &str| -> Result<Option<String>, PatchError> {
                    match m.remove(name) {
                        None | Some(Value::Null) => Ok(None),
                        Some(Value::String(s)) => Ok(Some(s)),
                        Some(other) => Err(bad(format!(
                            "json: cannot unmarshal {} into Go struct field jsonPatchOp.{name} of type string",
                            json_kind_word(&other)
                        ))),
                    }
                };
                let op = field("op")?;
                let path = field("path")?;
                let from = field("from")?;
                let value = m.remove("value").unwrap_or(Value::Null);
                ops.push(Some(RawOp {
                    op,
                    path,
                    from,
                    value,
                }));
            }
            other => {
                return Err(bad(format!(
                    "json: cannot unmarshal {} into Go value of type handlers.jsonPatchOp",
                    json_kind_word(&other)
                )));
            }
        }
    }
    if ops.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(PatchError::TooManyOperations {
            max: MAX_JSON_PATCH_OPERATIONS,
            got: ops.len(),
        });
    }
    Ok(ops)
}

/// Go's `strconv.Atoi` on a 64-bit platform, with its error text.
fn go_atoi(s: &str) -> Result<i64, String> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("strconv.Atoi: parsing \"{s}\": invalid syntax"));
    }
    let cleaned = s.strip_prefix('+').unwrap_or(s);
    cleaned
        .parse::<i64>()
        .map_err(|_| format!("strconv.Atoi: parsing \"{s}\": value out of range"))
}

fn invalid_index(idx: i64) -> String {
    format!("Unable to access invalid index: {idx}: invalid index referenced")
}

/// evanphx's `partialArray.get` index rule (negative indices count from the end).
fn array_get_index(len: usize, key: &str) -> Result<usize, String> {
    let idx = go_atoi(key)?;
    let len = len as i64;
    let resolved = if idx < 0 {
        if idx < -len {
            return Err(invalid_index(idx));
        }
        idx + len
    } else {
        idx
    };
    if resolved >= len {
        return Err(invalid_index(resolved));
    }
    Ok(resolved as usize)
}

/// RFC 6901 token decoding, as evanphx's `decodePatchKey`.
fn decode_patch_key(k: &str) -> String {
    k.replace("~1", "/").replace("~0", "~")
}

/// Where an operation's path lands: the canonical tokens of its parent container and the
/// decoded last token (evanphx's `findObject`, negative indices resolved).
struct Target {
    parent: Vec<String>,
    key: String,
}

fn value_at<'a>(doc: &'a Value, tokens: &[String]) -> Option<&'a Value> {
    let mut cur = doc;
    for t in tokens {
        cur = match cur {
            Value::Object(m) => m.get(t)?,
            Value::Array(a) => a.get(t.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// evanphx's `findObject`: the path is split on `/`, everything between the first and the
/// last `/` must name existing containers; note that a path without a leading `/` still
/// resolves its last token against the root, as upstream.
fn find_object(doc: &Value, path: &str) -> Option<Target> {
    let split: Vec<&str> = path.split('/').collect();
    if split.len() < 2 {
        return None;
    }
    let mut parent = Vec::new();
    let mut cur = doc;
    for part in &split[1..split.len() - 1] {
        let decoded = decode_patch_key(part);
        let (next, token) = match cur {
            Value::Object(m) => (m.get(&decoded)?, decoded),
            Value::Array(a) => {
                let idx = array_get_index(a.len(), &decoded).ok()?;
                (a.get(idx)?, idx.to_string())
            }
            _ => return None,
        };
        if !matches!(next, Value::Object(_) | Value::Array(_)) {
            return None;
        }
        parent.push(token);
        cur = next;
    }
    let key = decode_patch_key(split.last().copied().unwrap_or_default());
    Some(Target { parent, key })
}

fn pointer(parent: &[String], last: &str) -> PointerBuf {
    let mut p = PointerBuf::from_tokens(parent.iter().map(String::as_str));
    p.push_back(last);
    p
}

/// Runs one mutation through the json-patch crate.
fn run_op(doc: &mut Value, op: PatchOperation) -> Result<(), String> {
    json_patch::patch(doc, &[op]).map_err(|e| e.to_string())
}

/// evanphx's container `add`: on an object it sets the key, on an array it inserts at an
/// index (`-` appends, negatives count from the end).
fn container_add(doc: &mut Value, target: &Target, value: Value) -> Result<(), String> {
    let token = match value_at(doc, &target.parent) {
        Some(Value::Array(a)) => {
            if target.key == "-" {
                a.len().to_string()
            } else {
                let idx = go_atoi(&target.key).map_err(|e| {
                    format!("value was not a proper array index: '{}': {e}", target.key)
                })?;
                let size = a.len() as i64 + 1;
                if idx >= size {
                    return Err(invalid_index(idx));
                }
                let resolved = if idx < 0 {
                    if idx < -size {
                        return Err(invalid_index(idx));
                    }
                    idx + size
                } else {
                    idx
                };
                resolved.to_string()
            }
        }
        Some(_) => target.key.clone(),
        None => return Err("missing value".to_string()),
    };
    run_op(
        doc,
        PatchOperation::Add(AddOperation {
            path: pointer(&target.parent, &token),
            value,
        }),
    )
}

/// evanphx's container `get`: a missing object key is `None` without error.
fn container_get(doc: &Value, target: &Target) -> Result<Option<Value>, String> {
    match value_at(doc, &target.parent) {
        Some(Value::Array(a)) => {
            let idx = array_get_index(a.len(), &target.key)?;
            Ok(a.get(idx).cloned())
        }
        Some(Value::Object(m)) => Ok(m.get(&target.key).filter(|v| !v.is_null()).cloned()),
        _ => Ok(None),
    }
}

/// evanphx's container `remove`.
fn container_remove(doc: &mut Value, target: &Target) -> Result<(), String> {
    let token = match value_at(doc, &target.parent) {
        Some(Value::Array(a)) => {
            let idx = go_atoi(&target.key)?;
            let len = a.len() as i64;
            if idx >= len {
                return Err(invalid_index(idx));
            }
            let resolved = if idx < 0 {
                if idx < -len {
                    return Err(invalid_index(idx));
                }
                idx + len
            } else {
                idx
            };
            resolved.to_string()
        }
        Some(Value::Object(m)) => {
            if !m.contains_key(&target.key) {
                return Err(format!(
                    "Unable to remove nonexistent key: {}: missing value",
                    target.key
                ));
            }
            target.key.clone()
        }
        _ => return Err("missing value".to_string()),
    };
    run_op(
        doc,
        PatchOperation::Remove(RemoveOperation {
            path: pointer(&target.parent, &token),
        }),
    )
}

/// evanphx's `lazyNode.equal`: structural, numbers compared as float64.
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_equal(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter().all(|(k, v)| match y.get(k) {
                    Some(w) => json_equal(v, w),
                    None => false,
                })
        }
        _ => a == b,
    }
}

/// Applies decoded operations in order, failing on the first with evanphx's text.
fn apply_json_patch_ops(doc: &mut Value, ops: &[Option<RawOp>]) -> Result<(), String> {
    let mut copied_bytes = 0usize;
    for op in ops {
        let Some(op) = op else {
            return Err("Unexpected kind: unknown".to_string());
        };
        let kind = op.op.as_deref().unwrap_or("unknown");
        let missing_path = "operation missing path field: missing value";
        match kind {
            "add" => {
                let path = op
                    .path
                    .as_deref()
                    .ok_or("add operation failed to decode path: missing value")?;
                let target = find_object(doc, path).ok_or_else(|| {
                    format!("add operation does not apply: doc is missing path: \"{path}\": missing value")
                })?;
                container_add(doc, &target, op.value.clone())
                    .map_err(|e| format!("error in add for path: '{path}': {e}"))?;
            }
            "remove" => {
                let path = op
                    .path
                    .as_deref()
                    .ok_or("remove operation failed to decode path: missing value")?;
                let target = find_object(doc, path).ok_or_else(|| {
                    format!("remove operation does not apply: doc is missing path: \"{path}\": missing value")
                })?;
                container_remove(doc, &target)
                    .map_err(|e| format!("error in remove for path: '{path}': {e}"))?;
            }
            "replace" => {
                let path = op.path.as_deref().ok_or_else(|| {
                    format!("replace operation failed to decode path: {missing_path}")
                })?;
                if path.is_empty() {
                    // evanphx replaces the document only with an object or array and
                    // silently ignores any other value
                    if matches!(op.value, Value::Object(_) | Value::Array(_)) {
                        *doc = op.value.clone();
                    }
                    continue;
                }
                let target = find_object(doc, path).ok_or_else(|| {
                    format!("replace operation does not apply: doc is missing path: {path}: missing value")
                })?;
                let missing_key = || {
                    format!(
                        "replace operation does not apply: doc is missing key: {path}: missing value"
                    )
                };
                match value_at(doc, &target.parent) {
                    Some(Value::Array(a)) => {
                        let idx =
                            array_get_index(a.len(), &target.key).map_err(|_| missing_key())?;
                        run_op(
                            doc,
                            PatchOperation::Replace(ReplaceOperation {
                                path: pointer(&target.parent, &idx.to_string()),
                                value: op.value.clone(),
                            }),
                        )
                        .map_err(|e| format!("error in remove for path: '{path}': {e}"))?;
                    }
                    // evanphx's object get never fails, so replace of an absent key adds it
                    _ => container_add(doc, &target, op.value.clone())
                        .map_err(|e| format!("error in remove for path: '{path}': {e}"))?,
                }
            }
            "move" => {
                let from = op.from.as_deref().ok_or(
                    "move operation failed to decode from: operation, missing from field: missing value",
                )?;
                let source = find_object(doc, from).ok_or_else(|| {
                    format!("move operation does not apply: doc is missing from path: {from}: missing value")
                })?;
                let value = container_get(doc, &source)
                    .map_err(|e| format!("error in move for path: '{}': {e}", source.key))?
                    .unwrap_or(Value::Null);
                container_remove(doc, &source)
                    .map_err(|e| format!("error in move for path: '{}': {e}", source.key))?;
                let path = op.path.as_deref().ok_or_else(|| {
                    format!("move operation failed to decode path: {missing_path}")
                })?;
                let target = find_object(doc, path).ok_or_else(|| {
                    format!("move operation does not apply: doc is missing destination path: {path}: missing value")
                })?;
                container_add(doc, &target, value)
                    .map_err(|e| format!("error in move for path: '{path}': {e}"))?;
            }
            "test" => {
                let path = op.path.as_deref().ok_or_else(|| {
                    format!("test operation failed to decode path: {missing_path}")
                })?;
                let failed = || format!("testing value {path} failed: test failed");
                if path.is_empty() {
                    if json_equal(doc, &op.value) {
                        continue;
                    }
                    return Err(failed());
                }
                let target = find_object(doc, path).ok_or_else(|| {
                    format!("test operation does not apply: is missing path: {path}: missing value")
                })?;
                let current = container_get(doc, &target)
                    .map_err(|e| format!("error in test for path: '{path}': {e}"))?;
                let ok = match current {
                    None => op.value.is_null(),
                    Some(v) => json_equal(&v, &op.value),
                };
                if !ok {
                    return Err(failed());
                }
            }
            "copy" => {
                let from = op.from.as_deref().ok_or(
                    "copy operation failed to decode from: operation, missing from field: missing value",
                )?;
                let source = find_object(doc, from).ok_or_else(|| {
                    format!("copy operation does not apply: doc is missing from path: {from}: missing value")
                })?;
                let value = container_get(doc, &source)
                    .map_err(|e| format!("error in copy for from: '{from}': {e}"))?
                    .unwrap_or(Value::Null);
                let path = op
                    .path
                    .as_deref()
                    .ok_or("copy operation failed to decode path: missing value")?;
                let target = find_object(doc, path).ok_or_else(|| {
                    format!("copy operation does not apply: doc is missing destination path: {path}: missing value")
                })?;
                copied_bytes += serde_json::to_vec(&value).map(|v| v.len()).unwrap_or(0);
                if copied_bytes > MAX_ACCUMULATED_COPY_BYTES {
                    return Err(format!(
                        "Unable to complete the copy, the accumulated size increase of copy is {copied_bytes}, exceeding the limit {MAX_ACCUMULATED_COPY_BYTES}"
                    ));
                }
                container_add(doc, &target, value)
                    .map_err(|e| format!("error while adding value during copy: {e}"))?;
            }
            other => return Err(format!("Unexpected kind: {other}")),
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Merge patch (RFC 7386), as evanphx/json-patch v4's MergePatch.

fn apply_merge_patch(original: &Value, body: &[u8]) -> Result<Value, PatchError> {
    let bad = |e: String| PatchError::BadRequest(format!("error decoding patch: {e}"));
    let mut patch = decode_body(body).map_err(bad)?;
    match &patch {
        Value::Object(_) => {}
        // the strict decode into a map accepts null; MergePatch then refuses it
        Value::Null => return Err(PatchError::BadRequest("Invalid JSON Patch".to_string())),
        other => {
            return Err(bad(format!(
                "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
                json_kind_word(other)
            )));
        }
    }
    let mut doc = original.clone();
    if doc.is_object() {
        prune_like_evanphx(&doc, &mut patch);
    }
    json_patch::merge(&mut doc, &patch);
    Ok(doc)
}

/// evanphx's `pruneNulls`: drops null object members at any depth, arrays included
/// (null array elements stay).
fn prune_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(prune_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(prune_nulls),
        _ => {}
    }
}

/// Where evanphx's merge differs from RFC 7386 it prunes nulls inside arrays of values
/// that land where the document has no object; doing that to the patch first makes the
/// crate's merge give evanphx's result.
fn prune_like_evanphx(cur: &Value, patch: &mut Value) {
    let Value::Object(pm) = patch else { return };
    for (k, v) in pm.iter_mut() {
        if v.is_null() {
            continue;
        }
        match cur.get(k) {
            Some(c) if c.is_object() => {
                if v.is_object() {
                    prune_like_evanphx(c, v);
                }
            }
            _ => prune_nulls(v),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Strategic merge patch, as k8s.io/apimachinery/pkg/util/strategicpatch.

const DIRECTIVE_MARKER: &str = "$patch";
const DELETE_DIRECTIVE: &str = "delete";
const REPLACE_DIRECTIVE: &str = "replace";
const MERGE_DIRECTIVE: &str = "merge";
const RETAIN_KEYS_DIRECTIVE: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE_LIST_PREFIX: &str = "$deleteFromPrimitiveList";
const SET_ELEMENT_ORDER_PREFIX: &str = "$setElementOrder";

// mergepatch's error texts
const ERR_BAD_PATCH_FORMAT_FOR_PRIMITIVE_LIST: &str = "invalid patch format of primitive list";
const ERR_BAD_PATCH_FORMAT_FOR_RETAIN_KEYS: &str = "invalid patch format of retainKeys";
const ERR_BAD_PATCH_FORMAT_FOR_SET_ELEMENT_ORDER: &str =
    "invalid patch format of setElementOrder list";
const ERR_NO_LIST_OF_LISTS: &str = "lists of lists are not supported";

/// A strategic merge failure, classified as upstream's `interpretStrategicMergePatchError`.
enum SmpError {
    /// 400 (the mergepatch format errors).
    Bad(&'static str),
    /// 422 (`ErrNoListOfLists`).
    Unprocessable(&'static str),
    /// Any other error: 500 without a reason.
    Other(String),
}

impl From<SmpError> for PatchError {
    fn from(e: SmpError) -> Self {
        match e {
            SmpError::Bad(m) => PatchError::BadRequest(m.to_string()),
            SmpError::Unprocessable(m) => PatchError::Unprocessable(m.to_string()),
            SmpError::Other(m) => PatchError::Unclassified(m),
        }
    }
}

type SmpResult<T> = Result<T, SmpError>;

fn no_merge_key(m: &Map<String, Value>, key: &str) -> SmpError {
    SmpError::Other(format!(
        "map: {} does not contain declared merge key: {key}",
        go_v_map(m)
    ))
}

fn bad_arg_type(expected: &str, actual: &Value) -> SmpError {
    SmpError::Other(format!(
        "expected a {expected}, but received a {}",
        go_type_name(actual)
    ))
}

fn bad_patch_type(directive: &Value, m: &Map<String, Value>) -> SmpError {
    SmpError::Other(format!(
        "unknown patch type: {} in map: {}",
        go_s(directive),
        go_v_map(m)
    ))
}

const MAP_TYPE: &str = "map[string]interface {}";
const SLICE_TYPE: &str = "[]interface {}";

/// The lists of ObjectMeta that merge (`patchStrategy:"merge"`); `""` merges primitives.
const OBJECT_META_LISTS: &[(&str, &str)] = &[("ownerReferences", "uid"), ("finalizers", "")];

/// PodSpec's merging lists (core/v1 types.go), container lists' own included.
const POD_SPEC_LISTS: &[(&str, &str)] = &[
    ("volumes", "name"),
    ("initContainers", "name"),
    ("containers", "name"),
    ("ephemeralContainers", "name"),
    ("imagePullSecrets", "name"),
    ("hostAliases", "ip"),
    ("topologySpreadConstraints", "topologyKey"),
    ("schedulingGates", "name"),
    ("resourceClaims", "name"),
];

/// Container's (and EphemeralContainerCommon's) merging lists.
const CONTAINER_LISTS: &[(&str, &str)] = &[
    ("ports", "containerPort"),
    ("env", "name"),
    ("volumeMounts", "mountPath"),
    ("volumeDevices", "devicePath"),
];

const POD_STATUS_LISTS: &[(&str, &str)] = &[
    ("conditions", "type"),
    ("hostIPs", "ip"),
    ("podIPs", "ip"),
    ("resourceClaimStatuses", "name"),
];

/// Which lists of a kind merge and by which key: the `patchStrategy:"merge"` and
/// `patchMergeKey` struct tags of the Go types, as JSON paths from the object's root (a
/// list's elements share the list's path). Lists absent from it are replaced whole.
#[derive(Debug, Clone, Default)]
struct MergeSchema {
    lists: Vec<(Vec<String>, &'static str)>,
}

impl MergeSchema {
    fn add(&mut self, prefix: &str, rules: &[(&str, &'static str)]) {
        for (path, key) in rules {
            let full = if prefix.is_empty() {
                path.to_string()
            } else {
                format!("{prefix}.{path}")
            };
            self.lists
                .push((full.split('.').map(str::to_string).collect(), key));
        }
    }

    fn add_object_meta(&mut self, prefix: &str) {
        self.add(prefix, OBJECT_META_LISTS);
    }

    fn add_pod_template(&mut self, prefix: &str) {
        self.add_object_meta(&format!("{prefix}.metadata"));
        let spec = format!("{prefix}.spec");
        self.add(&spec, POD_SPEC_LISTS);
        for containers in ["containers", "initContainers", "ephemeralContainers"] {
            self.add(&format!("{spec}.{containers}"), CONTAINER_LISTS);
        }
    }

    /// The schema of a built-in kind; `None` for any other kind (custom resources).
    fn for_kind(kind: &GroupKind) -> Option<Self> {
        if !supports_strategic_merge(kind) {
            return None;
        }
        let mut s = Self::default();
        s.add_object_meta("metadata");
        let conditions: &[(&str, &'static str)] = &[("conditions", "type")];
        match (kind.group.as_str(), kind.kind.as_str()) {
            ("", "Pod") => {
                s.add("spec", POD_SPEC_LISTS);
                for containers in ["containers", "initContainers", "ephemeralContainers"] {
                    s.add(&format!("spec.{containers}"), CONTAINER_LISTS);
                }
                s.add("status", POD_STATUS_LISTS);
            }
            ("", "PodTemplate") => s.add_pod_template("template"),
            ("", "ReplicationController")
            | ("apps", "Deployment")
            | ("apps", "StatefulSet")
            | ("apps", "DaemonSet")
            | ("apps", "ReplicaSet")
            | ("batch", "Job") => {
                s.add_pod_template("spec.template");
                s.add("status", conditions);
            }
            ("batch", "CronJob") => {
                s.add_object_meta("spec.jobTemplate.metadata");
                s.add_pod_template("spec.jobTemplate.spec.template");
            }
            ("", "Service") => {
                s.add("spec", &[("ports", "port")]);
                s.add("status", conditions);
            }
            ("", "Node") => {
                s.add("spec", &[("podCIDRs", "")]);
                s.add("status", &[("conditions", "type"), ("addresses", "type")]);
            }
            ("", "Namespace") | ("", "PersistentVolumeClaim") => s.add("status", conditions),
            ("", "ServiceAccount") => s.add("", &[("secrets", "name")]),
            _ => {}
        }
        Some(s)
    }

    /// The merge key of the list at `path`, `Some("")` for a merging primitive list, `None`
    /// for a list that is replaced.
    fn merge_key(&self, path: &[String]) -> Option<&'static str> {
        self.lists
            .iter()
            .find(|(p, _)| p.as_slice() == path)
            .map(|(_, k)| *k)
    }
}

fn apply_strategic_merge_patch(
    original: &Value,
    body: &[u8],
    schema: &MergeSchema,
) -> Result<Value, PatchError> {
    // upstream: errors.NewBadRequest(err.Error()), no "error decoding patch" prefix here
    let patch = decode_body(body).map_err(PatchError::BadRequest)?;
    let patch = match patch {
        Value::Object(m) => m,
        Value::Null => Map::new(),
        other => {
            return Err(PatchError::BadRequest(format!(
                "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
                json_kind_word(&other)
            )));
        }
    };
    let Value::Object(original) = original.clone() else {
        return Err(PatchError::Unclassified(
            "original object is not a JSON object".to_string(),
        ));
    };
    let merged = merge_map(schema, original, patch, &mut Vec::new())?;
    let mut out = Value::Object(merged);
    strip_directives(&mut out);
    Ok(out)
}

/// Directive keys left in the result (e.g. inside a `$patch: replace` map or a newly added
/// list element) are unknown fields to the typed decode upstream runs next, which drops
/// them; drop them here too.
fn strip_directives(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|k, _| {
                k != DIRECTIVE_MARKER
                    && k != RETAIN_KEYS_DIRECTIVE
                    && !k.starts_with("$setElementOrder/")
                    && !k.starts_with("$deleteFromPrimitiveList/")
            });
            m.values_mut().for_each(strip_directives);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_directives),
        _ => {}
    }
}

/// strategicpatch's `extractKey`: the field a `$prefix/field` directive names.
fn extract_key(s: &str, prefix: &str) -> SmpResult<String> {
    match s.split_once('/') {
        Some((head, rest)) if head == prefix => Ok(rest.to_string()),
        _ if prefix == DELETE_FROM_PRIMITIVE_LIST_PREFIX => {
            Err(SmpError::Bad(ERR_BAD_PATCH_FORMAT_FOR_PRIMITIVE_LIST))
        }
        _ => Err(SmpError::Bad(ERR_BAD_PATCH_FORMAT_FOR_SET_ELEMENT_ORDER)),
    }
}

/// strategicpatch's `removeDirectives`: `None` when the value itself is a `$patch` map.
fn remove_directives(v: Value) -> Option<Value> {
    match v {
        Value::Object(m) => {
            if m.contains_key(DIRECTIVE_MARKER) {
                return None;
            }
            Some(Value::Object(
                m.into_iter()
                    .filter_map(|(k, v)| remove_directives(v).map(|v| (k, v)))
                    .collect(),
            ))
        }
        Value::Array(a) => Some(Value::Array(
            a.into_iter().filter_map(remove_directives).collect(),
        )),
        other => Some(other),
    }
}

/// strategicpatch's `discardNullValuesFromPatch`.
fn discard_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(discard_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(discard_nulls),
        _ => {}
    }
}

/// Puts a patch value where the original has none (or one of another type).
fn take_patch_value(original: &mut Map<String, Value>, k: String, mut v: Value) {
    discard_nulls(&mut v);
    match remove_directives(v) {
        Some(v) => {
            original.insert(k, v);
        }
        None => {
            original.remove(&k);
        }
    }
}

/// strategicpatch's `mergeMap` with the server's options (merge parallel lists, ignore
/// unmatched nulls). Keys are taken in sorted order where Go's map order is random.
fn merge_map(
    schema: &MergeSchema,
    mut original: Map<String, Value>,
    mut patch: Map<String, Value>,
    path: &mut Vec<String>,
) -> SmpResult<Map<String, Value>> {
    if let Some(directive) = patch.get(DIRECTIVE_MARKER) {
        return match directive.as_str() {
            Some(REPLACE_DIRECTIVE) => {
                patch.remove(DIRECTIVE_MARKER);
                Ok(patch)
            }
            Some(DELETE_DIRECTIVE) => Ok(Map::new()),
            // upstream refuses `$patch: merge` on a map too
            _ => Err(bad_patch_type(directive, &patch)),
        };
    }
    apply_retain_keys(&mut original, &mut patch)?;
    merge_set_element_order(schema, &mut original, &mut patch, path)?;

    let keys: Vec<String> = patch.keys().cloned().collect();
    for key in keys {
        let Some(patch_v) = patch.remove(&key) else {
            continue;
        };
        let (k, is_delete_list) = if key.starts_with(DELETE_FROM_PRIMITIVE_LIST_PREFIX) {
            (extract_key(&key, DELETE_FROM_PRIMITIVE_LIST_PREFIX)?, true)
        } else {
            (key, false)
        };
        if patch_v.is_null() {
            original.remove(&k);
            continue;
        }
        let Some(orig_v) = original.get(&k) else {
            if !is_delete_list {
                take_patch_value(&mut original, k, patch_v);
            }
            continue;
        };
        if go_type(orig_v) != go_type(&patch_v) {
            if !is_delete_list {
                take_patch_value(&mut original, k, patch_v);
            }
            continue;
        }
        let orig_v = original.remove(&k).unwrap_or(Value::Null);
        path.push(k.clone());
        let merged = match (orig_v, patch_v) {
            (Value::Object(o), Value::Object(p)) => {
                merge_map(schema, o, p, path).map(Value::Object)
            }
            (Value::Array(o), Value::Array(p)) => {
                let key = schema.merge_key(path);
                if key.is_some() || is_delete_list {
                    merge_slice(schema, o, p, key.unwrap_or(""), is_delete_list, path)
                        .map(Value::Array)
                } else {
                    Ok(Value::Array(p))
                }
            }
            (_, p) => Ok(remove_directives(p).unwrap_or(Value::Null)),
        };
        path.pop();
        original.insert(k, merged?);
    }
    Ok(original)
}

/// strategicpatch's `applyRetainKeysDirective` (server side).
fn apply_retain_keys(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
) -> SmpResult<()> {
    let Some(retain) = patch.remove(RETAIN_KEYS_DIRECTIVE) else {
        return Ok(());
    };
    let Value::Array(list) = retain else {
        return Err(SmpError::Bad(ERR_BAD_PATCH_FORMAT_FOR_RETAIN_KEYS));
    };
    let keep: BTreeSet<&str> = list.iter().filter_map(Value::as_str).collect();
    for (k, v) in patch.iter() {
        if v.is_null()
            || k.starts_with(DELETE_FROM_PRIMITIVE_LIST_PREFIX)
            || k.starts_with(SET_ELEMENT_ORDER_PREFIX)
        {
            continue;
        }
        if !keep.contains(k.as_str()) {
            return Err(SmpError::Bad(ERR_BAD_PATCH_FORMAT_FOR_RETAIN_KEYS));
        }
    }
    original.retain(|k, _| keep.contains(k.as_str()));
    Ok(())
}

fn as_list(v: Option<&Value>) -> SmpResult<Option<&Vec<Value>>> {
    match v {
        None => Ok(None),
        Some(Value::Array(a)) => Ok(Some(a)),
        Some(other) => Err(bad_arg_type(SLICE_TYPE, other)),
    }
}

/// strategicpatch's `mergePatchIntoOriginal`: merges each `$setElementOrder/<field>` with
/// its list and orders the result by it.
fn merge_set_element_order(
    schema: &MergeSchema,
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    path: &mut Vec<String>,
) -> SmpResult<()> {
    let keys: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(SET_ELEMENT_ORDER_PREFIX))
        .cloned()
        .collect();
    for key in keys {
        let Some(order_v) = patch.remove(&key) else {
            continue;
        };
        let Value::Array(order) = order_v else {
            return Err(bad_arg_type(SLICE_TYPE, &order_v));
        };
        let field = extract_key(&key, SET_ELEMENT_ORDER_PREFIX)?;
        let orig_list = as_list(original.get(&field))?.cloned();
        let patch_list = as_list(patch.get(&field))?.cloned();
        path.push(field.clone());
        let declared = schema.merge_key(path);
        let merge_key = declared.unwrap_or("");
        let result = (|| {
            validate_patch_with_set_order_list(
                patch_list.as_deref().unwrap_or(&[]),
                &order,
                merge_key,
            )?;
            let merged = match (&orig_list, &patch_list) {
                (Some(o), None) => o.clone(),
                (None, Some(p)) => match remove_directives(Value::Array(p.clone())) {
                    Some(Value::Array(a)) => a,
                    _ => Vec::new(),
                },
                (Some(o), Some(p)) => {
                    if declared.is_some() {
                        merge_slice(schema, o.clone(), p.clone(), merge_key, false, path)?
                    } else {
                        p.clone()
                    }
                }
                (None, None) => return Ok(None),
            };
            let (patch_items, server_only) = partition_by_presence(&merged, &order, merge_key)?;
            let empty = Vec::new();
            let orig_ref = orig_list.as_ref().unwrap_or(&empty);
            let kind = slice_element_type(&[orig_ref, patch_list.as_ref().unwrap_or(&empty)])?;
            normalize_element_order(patch_items, server_only, &order, orig_ref, merge_key, kind)
                .map(Some)
        })();
        path.pop();
        if let Some(both) = result? {
            original.insert(field.clone(), Value::Array(both));
            patch.remove(&field);
        }
    }
    Ok(())
}

fn contains_directive_marker(v: &Value) -> bool {
    v.as_object()
        .is_some_and(|m| m.contains_key(DIRECTIVE_MARKER))
}

fn merge_key_value_equal(left: &Value, right: &Value, key: &str) -> SmpResult<bool> {
    if key.is_empty() {
        return Ok(go_eq(left, right));
    }
    let l = left
        .as_object()
        .ok_or_else(|| bad_arg_type(MAP_TYPE, left))?;
    let r = right
        .as_object()
        .ok_or_else(|| bad_arg_type(MAP_TYPE, right))?;
    let lv = l.get(key).ok_or_else(|| no_merge_key(l, key))?;
    let rv = r.get(key).ok_or_else(|| no_merge_key(r, key))?;
    Ok(go_eq(lv, rv))
}

/// strategicpatch's `validatePatchWithSetOrderList`: the patch list's items must appear
/// in the order list, in the same relative order.
fn validate_patch_with_set_order_list(
    patch_list: &[Value],
    order: &[Value],
    key: &str,
) -> SmpResult<()> {
    if order.is_empty() || patch_list.is_empty() {
        return Ok(());
    }
    let non_delete: Vec<Value> = if key.is_empty() {
        patch_list.to_vec()
    } else {
        extract_to_delete_items(patch_list.to_vec())?.0
    };
    let (mut pi, mut si) = (0, 0);
    while pi < non_delete.len() && si < order.len() {
        if contains_directive_marker(&non_delete[pi]) {
            pi += 1;
            continue;
        }
        if merge_key_value_equal(&non_delete[pi], &order[si], key)? {
            pi += 1;
        }
        si += 1;
    }
    if pi < non_delete.len() && si >= order.len() {
        return Err(SmpError::Other(format!(
            "The order in patch list:\n{}\n doesn't match {SET_ELEMENT_ORDER_PREFIX} list:\n{}\n",
            go_v_list(patch_list),
            go_v_list(order)
        )));
    }
    Ok(())
}

/// strategicpatch's `extractToDeleteItems`: (kept, `$patch: delete` items).
fn extract_to_delete_items(l: Vec<Value>) -> SmpResult<(Vec<Value>, Vec<Value>)> {
    let (mut keep, mut delete) = (Vec::new(), Vec::new());
    for v in l {
        let m = v.as_object().ok_or_else(|| bad_arg_type(MAP_TYPE, &v))?;
        if m.get(DIRECTIVE_MARKER).and_then(Value::as_str) == Some(DELETE_DIRECTIVE) {
            delete.push(v);
        } else {
            keep.push(v);
        }
    }
    Ok((keep, delete))
}

/// strategicpatch's `sliceElementType`: every element of every list has one Go type,
/// which is not a list.
fn slice_element_type(slices: &[&Vec<Value>]) -> SmpResult<GoType> {
    let mut prev: Option<GoType> = None;
    let describe = || {
        let parts: Vec<String> = slices.iter().map(|s| go_v_list(s)).collect();
        format!("[{}]", parts.join(" "))
    };
    for s in slices {
        for v in s.iter() {
            let cur = go_type(v);
            match prev {
                None => {
                    // a leading null makes upstream panic (reflect.TypeOf(nil).Kind())
                    if cur == GoType::Nil {
                        return Err(SmpError::Other(format!(
                            "list element types are not identical: {}",
                            describe()
                        )));
                    }
                    if cur == GoType::Slice {
                        return Err(SmpError::Unprocessable(ERR_NO_LIST_OF_LISTS));
                    }
                    prev = Some(cur);
                }
                Some(p) if p != cur => {
                    return Err(SmpError::Other(format!(
                        "list element types are not identical: {}",
                        describe()
                    )));
                }
                Some(_) => {}
            }
        }
    }
    prev.ok_or_else(|| SmpError::Other("no elements in any of the given slices".to_string()))
}

/// strategicpatch's `mergeSlice`.
fn merge_slice(
    schema: &MergeSchema,
    original: Vec<Value>,
    patch: Vec<Value>,
    key: &str,
    is_delete_list: bool,
    path: &mut Vec<String>,
) -> SmpResult<Vec<Value>> {
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    let kind = slice_element_type(&[&original, &patch])?;
    let (original, patch, merged) = if kind != GoType::Map {
        if is_delete_list {
            return Ok(original
                .into_iter()
                .filter(|v| !patch.iter().any(|d| go_eq(v, d)))
                .collect());
        }
        let mut both = original.clone();
        both.extend(patch.iter().cloned());
        let merged = deduplicate_scalars(both);
        (original, patch, merged)
    } else {
        if key.is_empty() {
            return Err(SmpError::Other(format!(
                "cannot merge lists without merge key for {}",
                path.join(".")
            )));
        }
        let (original, patch) = merge_slice_with_special_elements(original, patch, key)?;
        let merged =
            merge_slice_without_special_elements(schema, original.clone(), &patch, key, path)?;
        (original, patch, merged)
    };
    let (patch_items, server_only) = partition_by_presence(&merged, &patch, key)?;
    normalize_element_order(patch_items, server_only, &patch, &original, key, kind)
}

/// Go's "clever" in-place deduplication, kept so the intermediate order matches upstream.
fn deduplicate_scalars(mut s: Vec<Value>) -> Vec<Value> {
    let mut length = s.len() as isize - 1;
    let mut i: isize = 0;
    while i < length {
        let mut j = i + 1;
        while j <= length {
            if go_eq(&s[i as usize], &s[j as usize]) {
                s[j as usize] = s[length as usize].clone();
                s.truncate(length as usize);
                length -= 1;
                j -= 1;
            }
            j += 1;
        }
        i += 1;
    }
    s
}

/// strategicpatch's `mergeSliceWithSpecialElements`: applies `$patch: delete` and
/// `$patch: replace` items, returning the new original and the plain patch items.
fn merge_slice_with_special_elements(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    key: &str,
) -> SmpResult<(Vec<Value>, Vec<Value>)> {
    let mut plain = Vec::new();
    let mut replace = false;
    for v in patch {
        let Some(m) = v.as_object() else {
            return Err(bad_arg_type(MAP_TYPE, &v));
        };
        match m.get(DIRECTIVE_MARKER) {
            None => plain.push(v),
            Some(directive) => match directive.as_str() {
                Some(DELETE_DIRECTIVE) => {
                    let value = m.get(key).ok_or_else(|| no_merge_key(m, key))?;
                    while let Some(idx) = find_by_merge_key(&original, key, value)? {
                        original.remove(idx);
                    }
                }
                Some(REPLACE_DIRECTIVE) => replace = true,
                Some(MERGE_DIRECTIVE) => {
                    return Err(SmpError::Other(
                        "merging lists cannot yet be specified in the patch".to_string(),
                    ));
                }
                _ => return Err(bad_patch_type(directive, m)),
            },
        }
    }
    if replace {
        Ok((plain, Vec::new()))
    } else {
        Ok((original, plain))
    }
}

/// strategicpatch's `findMapInSliceBasedOnKeyValue`.
fn find_by_merge_key(list: &[Value], key: &str, value: &Value) -> SmpResult<Option<usize>> {
    for (i, v) in list.iter().enumerate() {
        let Some(m) = v.as_object() else {
            return Err(SmpError::Other(format!("value for key {i} is not a map")));
        };
        if m.get(key).is_some_and(|x| go_eq(x, value)) {
            return Ok(Some(i));
        }
    }
    Ok(None)
}

/// strategicpatch's `mergeSliceWithoutSpecialElements`: merges items sharing a merge key
/// value, appends the rest.
fn merge_slice_without_special_elements(
    schema: &MergeSchema,
    mut original: Vec<Value>,
    patch: &[Value],
    key: &str,
    path: &mut Vec<String>,
) -> SmpResult<Vec<Value>> {
    for v in patch {
        let Some(m) = v.as_object() else {
            return Err(bad_arg_type(MAP_TYPE, v));
        };
        let value = m.get(key).ok_or_else(|| no_merge_key(m, key))?;
        match find_by_merge_key(&original, key, value)? {
            Some(idx) => {
                let current = match original.get(idx) {
                    Some(Value::Object(o)) => o.clone(),
                    _ => Map::new(),
                };
                let merged = merge_map(schema, current, m.clone(), path)?;
                if let Some(slot) = original.get_mut(idx) {
                    *slot = Value::Object(merged);
                }
            }
            None => original.push(v.clone()),
        }
    }
    Ok(original)
}

/// strategicpatch's `partitionPrimitivesByPresentInList` / `partitionMapsByPresentInList`:
/// (items present in `by`, server-only items).
fn partition_by_presence(
    merged: &[Value],
    by: &[Value],
    key: &str,
) -> SmpResult<(Vec<Value>, Vec<Value>)> {
    let (mut present, mut server_only) = (Vec::new(), Vec::new());
    for v in merged {
        let found = if key.is_empty() {
            by.iter().any(|b| go_eq(b, v))
        } else {
            let m = v.as_object().ok_or_else(|| bad_arg_type(MAP_TYPE, v))?;
            let value = m.get(key).ok_or_else(|| no_merge_key(m, key))?;
            find_by_merge_key(by, key, value)?.is_some()
        };
        if found {
            present.push(v.clone());
        } else {
            server_only.push(v.clone());
        }
    }
    Ok((present, server_only))
}

/// strategicpatch's `index`: where an item (by merge key for maps) sits in `l`.
fn order_index(l: &[Value], item: &Value, key: &str, kind: GoType) -> Option<usize> {
    let val = |v: &Value| -> Value {
        if kind == GoType::Map {
            v.get(key).cloned().unwrap_or(Value::Null)
        } else {
            v.clone()
        }
    };
    let wanted = val(item);
    l.iter().position(|v| go_eq(&val(v), &wanted))
}

/// strategicpatch's `normalizeElementOrder`.
fn normalize_element_order(
    patch: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    key: &str,
    kind: GoType,
) -> SmpResult<Vec<Value>> {
    let patch = normalize_slice_order(patch, patch_order, key, kind)?;
    let server_only = normalize_slice_order(server_only, server_order, key, kind)?;
    Ok(merge_sorted_slice(
        server_only,
        patch,
        server_order,
        key,
        kind,
    ))
}

/// strategicpatch's `normalizeSliceOrder`: stable sort by position in `order`, deletion
/// items last.
fn normalize_slice_order(
    to_sort: Vec<Value>,
    order: &[Value],
    key: &str,
    kind: GoType,
) -> SmpResult<Vec<Value>> {
    let (mut to_sort, to_delete) = if kind == GoType::Map {
        for v in to_sort.iter().chain(order) {
            let m = v.as_object().ok_or_else(|| bad_arg_type(MAP_TYPE, v))?;
            if !m.contains_key(key) {
                return Err(no_merge_key(m, key));
            }
        }
        extract_to_delete_items(to_sort)?
    } else {
        (to_sort, Vec::new())
    };
    let ranks: Vec<Option<usize>> = to_sort
        .iter()
        .map(|v| order_index(order, v, key, kind))
        .collect();
    // Go's comparator says "less" whenever either item is missing from `order`, which is
    // no total order; replaying Go's sort.SliceStable keeps the result identical and
    // cannot panic the way a Rust sort may on an inconsistent comparator
    let mut perm: Vec<usize> = (0..to_sort.len()).collect();
    go_stable_sort(&mut perm, &|a, b| match (ranks[a], ranks[b]) {
        (Some(x), Some(y)) => x < y,
        _ => true,
    });
    let mut slots: Vec<Option<Value>> = to_sort.drain(..).map(Some).collect();
    let mut sorted: Vec<Value> = perm
        .into_iter()
        .filter_map(|i| slots.get_mut(i).and_then(Option::take))
        .collect();
    sorted.extend(to_delete);
    Ok(sorted)
}

/// strategicpatch's `mergeSortedSlice`: interleaves server-only items (`left`) into the
/// patch items (`right`) by their positions in the live list.
fn merge_sorted_slice(
    left: Vec<Value>,
    right: Vec<Value>,
    server_order: &[Value],
    key: &str,
    kind: GoType,
) -> Vec<Value> {
    let mut out = Vec::with_capacity(left.len() + right.len());
    let mut left = left.into_iter().peekable();
    let mut right = right.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => {
                let li = order_index(server_order, l, key, kind);
                let ri = order_index(server_order, r, key, kind);
                matches!((li, ri), (Some(a), Some(b)) if a < b)
            }
        };
        let next = if take_left { left.next() } else { right.next() };
        if let Some(v) = next {
            out.push(v);
        }
    }
    out
}

/// Go's `sort.SliceStable` (insertion sort in blocks of 20, then SymMerge), replayed on a
/// permutation so an inconsistent `less` gives Go's order.
fn go_stable_sort(data: &mut [usize], less: &dyn Fn(usize, usize) -> bool) {
    let n = data.len();
    let mut block = 20;
    let (mut a, mut b) = (0, block);
    while b <= n {
        go_insertion_sort(data, a, b, less);
        a = b;
        b += block;
    }
    go_insertion_sort(data, a, n, less);
    while block < n {
        a = 0;
        b = 2 * block;
        while b <= n {
            go_sym_merge(data, a, a + block, b, less);
            a = b;
            b += 2 * block;
        }
        let m = a + block;
        if m < n {
            go_sym_merge(data, a, m, n, less);
        }
        block *= 2;
    }
}

fn go_insertion_sort(data: &mut [usize], a: usize, b: usize, less: &dyn Fn(usize, usize) -> bool) {
    for i in a + 1..b {
        let mut j = i;
        while j > a && less(data[j], data[j - 1]) {
            data.swap(j, j - 1);
            j -= 1;
        }
    }
}

fn go_sym_merge(
    data: &mut [usize],
    a: usize,
    m: usize,
    b: usize,
    less: &dyn Fn(usize, usize) -> bool,
) {
    if m - a == 1 {
        let (mut i, mut j) = (m, b);
        while i < j {
            let h = (i + j) / 2;
            if less(data[h], data[a]) {
                i = h + 1;
            } else {
                j = h;
            }
        }
        let mut k = a;
        while k + 1 < i {
            data.swap(k, k + 1);
            k += 1;
        }
        return;
    }
    if b - m == 1 {
        let (mut i, mut j) = (a, m);
        while i < j {
            let h = (i + j) / 2;
            if !less(data[m], data[h]) {
                i = h + 1;
            } else {
                j = h;
            }
        }
        let mut k = m;
        while k > i {
            data.swap(k, k - 1);
            k -= 1;
        }
        return;
    }
    let mid = (a + b) / 2;
    let n = mid + m;
    let (mut start, mut r) = if m > mid { (n - b, mid) } else { (a, m) };
    let p = n - 1;
    while start < r {
        let c = (start + r) / 2;
        if !less(data[p - c], data[c]) {
            start = c + 1;
        } else {
            r = c;
        }
    }
    let end = n - start;
    if start < m && m < end {
        go_rotate(data, start, m, end);
    }
    if a < start && start < mid {
        go_sym_merge(data, a, start, mid, less);
    }
    if mid < end && end < b {
        go_sym_merge(data, mid, end, b, less);
    }
}

fn go_rotate(data: &mut [usize], a: usize, m: usize, b: usize) {
    let mut i = m - a;
    let mut j = b - m;
    while i != j {
        if i > j {
            go_swap_range(data, m - i, m, j);
            i -= j;
        } else {
            go_swap_range(data, m - i, m + j - i, i);
            j -= i;
        }
    }
    go_swap_range(data, m - i, m, i);
}

fn go_swap_range(data: &mut [usize], a: usize, b: usize, n: usize) {
    for i in 0..n {
        data.swap(a + i, b + i);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod_kind() -> GroupKind {
        GroupKind::core("Pod")
    }

    fn smp(original: Value, patch: Value) -> Result<Value, PatchError> {
        smp_kind(original, patch, &pod_kind())
    }

    fn smp_kind(original: Value, patch: Value, kind: &GroupKind) -> Result<Value, PatchError> {
        let body = serde_json::to_vec(&patch).unwrap_or_default();
        apply_patch(PatchType::StrategicMerge, &original, &body, kind)
    }

    fn json_patch(original: Value, body: &str) -> Result<Value, PatchError> {
        apply_patch(PatchType::Json, &original, body.as_bytes(), &pod_kind())
    }

    fn merge(original: Value, body: &str) -> Result<Value, PatchError> {
        apply_patch(PatchType::Merge, &original, body.as_bytes(), &pod_kind())
    }

    fn pod() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "labels": {"a": "1", "b": "2"}, "finalizers": ["x", "y"]},
            "spec": {
                "containers": [
                    {"name": "app", "image": "nginx:1", "ports": [{"containerPort": 80}],
                     "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
                    {"name": "side", "image": "busybox"}
                ],
                "tolerations": [{"key": "k1"}, {"key": "k2"}]
            }
        })
    }

    #[test]
    fn content_type_recognises_the_patch_media_types() {
        assert_eq!(
            PatchType::from_content_type("application/json-patch+json"),
            Ok(PatchType::Json)
        );
        assert_eq!(
            PatchType::from_content_type("application/merge-patch+json; charset=utf-8"),
            Ok(PatchType::Merge)
        );
        assert_eq!(
            PatchType::from_content_type("application/strategic-merge-patch+json"),
            Ok(PatchType::StrategicMerge)
        );
        assert_eq!(
            PatchType::from_content_type("application/apply-patch+yaml"),
            Ok(PatchType::Apply)
        );
        let err = PatchType::from_content_type("application/json").unwrap_err();
        let status = err.to_status_error();
        assert_eq!(status.http_status(), 415);
        assert_eq!(status.reason(), StatusReason::UnsupportedMediaType);
        assert_eq!(
            status.status().message,
            "the body of the request was in an unknown format - accepted media types include: \
             application/json-patch+json, application/merge-patch+json, \
             application/strategic-merge-patch+json, application/apply-patch+yaml"
        );
    }

    #[test]
    fn strategic_merge_on_custom_resource_is_415_without_strategic() {
        let err = smp_kind(
            json!({}),
            json!({}),
            &GroupKind::new("example.com", "Widget"),
        )
        .unwrap_err();
        let status = err.to_status_error();
        assert_eq!(status.http_status(), 415);
        assert_eq!(
            status.status().message,
            "the body of the request was in an unknown format - accepted media types include: \
             application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
        );
        assert_eq!(
            accepted_patch_types(&GroupKind::new("example.com", "Widget")),
            CUSTOM_RESOURCE_PATCH_TYPES
        );
        assert_eq!(accepted_patch_types(&pod_kind()), BUILT_IN_PATCH_TYPES);
    }

    #[test]
    fn apply_patch_type_is_not_applied_here() {
        let err = apply_patch(PatchType::Apply, &json!({}), b"{}", &pod_kind()).unwrap_err();
        assert_eq!(err.to_status_error().http_status(), 500);
    }

    // --- JSON patch -------------------------------------------------------------------

    #[test]
    fn json_patch_add_replace_remove_move_copy_test() {
        let out = json_patch(
            pod(),
            r#"[
              {"op":"add","path":"/metadata/labels/c","value":"3"},
              {"op":"replace","path":"/spec/containers/0/image","value":"nginx:2"},
              {"op":"remove","path":"/metadata/labels/a"},
              {"op":"move","from":"/metadata/labels/b","path":"/metadata/labels/bb"},
              {"op":"copy","from":"/metadata/name","path":"/metadata/labels/name"},
              {"op":"test","path":"/spec/containers/1/name","value":"side"},
              {"op":"add","path":"/metadata/finalizers/-","value":"z"},
              {"op":"remove","path":"/metadata/finalizers/-3"}
            ]"#,
        )
        .unwrap_or_default();
        assert_eq!(
            out["metadata"]["labels"],
            json!({"bb": "2", "c": "3", "name": "p"})
        );
        assert_eq!(out["spec"]["containers"][0]["image"], "nginx:2");
        // negative indices count from the end, as evanphx v4's SupportNegativeIndices
        assert_eq!(out["metadata"]["finalizers"], json!(["y", "z"]));
    }

    #[test]
    fn json_patch_replace_of_absent_object_key_adds_it_as_evanphx() {
        let out = json_patch(
            json!({"a": {}}),
            r#"[{"op":"replace","path":"/a/b","value":1}]"#,
        );
        assert_eq!(out, Ok(json!({"a": {"b": 1}})));
    }

    #[test]
    fn json_patch_test_of_absent_key_against_null_passes_as_evanphx() {
        let out = json_patch(
            json!({"a": 1}),
            r#"[{"op":"test","path":"/b","value":null}]"#,
        );
        assert_eq!(out, Ok(json!({"a": 1})));
        // evanphx compares numbers as float64
        let out = json_patch(
            json!({"a": 1}),
            r#"[{"op":"test","path":"/a","value":1.0}]"#,
        );
        assert!(out.is_ok());
    }

    #[test]
    fn json_patch_failed_test_is_422_with_stock_message() {
        let err = json_patch(
            pod(),
            r#"[{"op":"test","path":"/metadata/name","value":"q"}]"#,
        )
        .unwrap_err();
        assert_eq!(
            err,
            PatchError::Unprocessable("testing value /metadata/name failed: test failed".into())
        );
        let status = err.to_status_error();
        assert_eq!(status.http_status(), 422);
        assert_eq!(status.reason(), StatusReason::Invalid);
        assert_eq!(
            status.status().message,
            "the server rejected our request due to an error in our request"
        );
    }

    #[test]
    fn json_patch_missing_path_and_unknown_op_texts() {
        let err = json_patch(pod(), r#"[{"op":"add","path":"/nope/x","value":1}]"#).unwrap_err();
        assert_eq!(
            err,
            PatchError::Unprocessable(
                "add operation does not apply: doc is missing path: \"/nope/x\": missing value"
                    .into()
            )
        );
        let err = json_patch(pod(), r#"[{"op":"remove","path":"/metadata/nope"}]"#).unwrap_err();
        assert_eq!(
            err,
            PatchError::Unprocessable(
                "error in remove for path: '/metadata/nope': Unable to remove nonexistent key: nope: missing value"
                    .into()
            )
        );
        let err = json_patch(pod(), r#"[{"op":"frob","path":"/a"}]"#).unwrap_err();
        assert_eq!(
            err,
            PatchError::Unprocessable("Unexpected kind: frob".into())
        );
        let err = json_patch(pod(), r#"[{"path":"/a"}]"#).unwrap_err();
        assert_eq!(
            err,
            PatchError::Unprocessable("Unexpected kind: unknown".into())
        );
        let err = json_patch(
            pod(),
            r#"[{"op":"add","path":"/metadata/finalizers/9","value":"q"}]"#,
        )
        .unwrap_err();
        assert_eq!(
            err,
            PatchError::Unprocessable(
                "error in add for path: '/metadata/finalizers/9': Unable to access invalid index: 9: invalid index referenced"
                    .into()
            )
        );
    }

    #[test]
    fn json_patch_that_is_not_an_array_is_400() {
        let err = json_patch(pod(), r#"{"op":"add"}"#).unwrap_err();
        assert_eq!(
            err,
            PatchError::BadRequest(
                "error decoding patch: json: cannot unmarshal object into Go value of type []handlers.jsonPatchOp".into()
            )
        );
        assert_eq!(err.to_status_error().http_status(), 400);
        let err = json_patch(pod(), r#"[{"op":1}]"#).unwrap_err();
        assert_eq!(
            err,
            PatchError::BadRequest(
                "error decoding patch: json: cannot unmarshal number into Go struct field jsonPatchOp.op of type string"
                    .into()
            )
        );
        let err = json_patch(pod(), r#"["x"]"#).unwrap_err();
        assert_eq!(
            err,
            PatchError::BadRequest(
                "error decoding patch: json: cannot unmarshal string into Go value of type handlers.jsonPatchOp".into()
            )
        );
        let err = json_patch(pod(), "[x]").unwrap_err();
        assert_eq!(
            err,
            PatchError::BadRequest(
                "error decoding patch: invalid character 'x' looking for beginning of value".into()
            )
        );
    }

    #[test]
    fn json_patch_over_the_operation_limit_is_413() {
        let op = r#"{"op":"test","path":"/kind","value":"Pod"}"#;
        let body = format!("[{}]", vec![op; MAX_JSON_PATCH_OPERATIONS + 1].join(","));
        let err = json_patch(pod(), &body).unwrap_err();
        let status = err.to_status_error();
        assert_eq!(status.http_status(), 413);
        assert_eq!(
            status.status().message,
            "Request entity too large: The allowed maximum operations in a JSON patch is 10000, got 10001"
        );
        let body = format!("[{}]", vec![op; MAX_JSON_PATCH_OPERATIONS].join(","));
        assert!(json_patch(pod(), &body).is_ok());
    }

    #[test]
    fn json_patch_copy_growth_is_bounded() {
        let mut ops = vec![
            r#"{"op":"add","path":"/a","value":["0123456789abcdef0123456789abcdef"]}"#.to_string(),
        ];
        for _ in 0..40 {
            ops.push(r#"{"op":"copy","from":"/a","path":"/a/-"}"#.to_string());
        }
        let err = json_patch(json!({}), &format!("[{}]", ops.join(","))).unwrap_err();
        assert!(
            matches!(err, PatchError::Unprocessable(m) if m.starts_with("Unable to complete the copy"))
        );
    }

    // --- merge patch ------------------------------------------------------------------

    #[test]
    fn merge_patch_merges_and_null_deletes() {
        let out = merge(
            pod(),
            r#"{"metadata":{"labels":{"a":null,"c":"3"}},"spec":{"tolerations":[{"key":"k3"}]}}"#,
        )
        .unwrap_or_default();
        assert_eq!(out["metadata"]["labels"], json!({"b": "2", "c": "3"}));
        // merge patch replaces lists whole
        assert_eq!(out["spec"]["tolerations"], json!([{"key": "k3"}]));
        assert_eq!(out["spec"]["containers"][1]["name"], "side");
    }

    #[test]
    fn merge_patch_prunes_nulls_inside_new_arrays_as_evanphx() {
        let out = merge(json!({"a": 1}), r#"{"b":[{"x":null,"y":1},null]}"#);
        assert_eq!(out, Ok(json!({"a": 1, "b": [{"y": 1}, null]})));
    }

    #[test]
    fn merge_patch_decode_errors() {
        let err = merge(pod(), "{x").unwrap_err();
        assert_eq!(
            err,
            PatchError::BadRequest(
                "error decoding patch: invalid character 'x' looking for beginning of object key string".into()
            )
        );
        let err = merge(pod(), "xyz").unwrap_err();
        assert_eq!(
            err,
            PatchError::BadRequest(
                "error decoding patch: invalid character 'x' looking for beginning of value".into()
            )
        );
        let err = merge(pod(), "[1]").unwrap_err();
        assert_eq!(
            err,
            PatchError::BadRequest(
                "error decoding patch: json: cannot unmarshal array into Go value of type map[string]interface {}"
                    .into()
            )
        );
        assert_eq!(
            merge(pod(), "null").unwrap_err(),
            PatchError::BadRequest("Invalid JSON Patch".into())
        );
        assert_eq!(
            merge(pod(), "").unwrap_err(),
            PatchError::BadRequest("error decoding patch: unexpected end of JSON input".into())
        );
    }

    #[test]
    fn go_syntax_errors_match_encoding_json() {
        let cases: &[(&str, &str)] = &[
            ("", "unexpected end of JSON input"),
            ("{", "unexpected end of JSON input"),
            (
                "tru",
                "invalid character ' ' in literal true (expecting 'e')",
            ),
            ("{\"a\" 1}", "invalid character '1' after object key"),
            (
                "{\"a\":1 \"b\"}",
                "invalid character '\"' after object key:value pair",
            ),
            ("[1 2]", "invalid character '2' after array element"),
            ("{} x", "invalid character 'x' after top-level value"),
            ("\"\\q\"", "invalid character 'q' in string escape code"),
            ("-x", "invalid character 'x' in numeric literal"),
            (
                "1.x",
                "invalid character 'x' after decimal point in numeric literal",
            ),
            (
                "1ex",
                "invalid character 'x' in exponent of numeric literal",
            ),
            (
                "\"\\u12x4\"",
                "invalid character 'x' in \\u hexadecimal character escape",
            ),
            ("\"a\nb\"", "invalid character '\\n' in string literal"),
            (
                "{'a':1}",
                "invalid character '\\'' looking for beginning of object key string",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(
                go_json_syntax_error(input.as_bytes()).as_deref(),
                Some(*want),
                "{input:?}"
            );
        }
        for ok in [
            "{}",
            " [1, 2.5e-3, -0, true, false, null, \"\\u00e9\"] ",
            "0",
            "{\"a\":{\"b\":[]}}",
        ] {
            assert_eq!(go_json_syntax_error(ok.as_bytes()), None, "{ok:?}");
        }
    }

    // --- strategic merge patch (cases after strategicpatch's patch_test.go) ------------

    #[test]
    fn smp_merges_containers_by_name_and_keeps_order() {
        let out = smp(
            pod(),
            json!({"spec": {"containers": [{"name": "app", "image": "nginx:2"}]}}),
        )
        .unwrap_or_default();
        let containers = &out["spec"]["containers"];
        assert_eq!(containers[0]["name"], "app");
        assert_eq!(containers[0]["image"], "nginx:2");
        assert_eq!(containers[0]["ports"], json!([{"containerPort": 80}]));
        assert_eq!(containers[1]["name"], "side");
    }

    #[test]
    fn smp_appends_new_items_and_merges_nested_env() {
        let out = smp(
            pod(),
            json!({"spec": {"containers": [
                {"name": "app", "env": [{"name": "B", "value": "two"}, {"name": "C", "value": "3"}]},
                {"name": "new", "image": "x"}
            ]}}),
        )
        .unwrap_or_default();
        let names: Vec<&str> = out["spec"]["containers"]
            .as_array()
            .map(|a| a.iter().filter_map(|c| c["name"].as_str()).collect())
            .unwrap_or_default();
        // upstream's mergeSortedSlice places a server-only item only before patch items
        // it can rank, so "side" lands after the new "new"
        assert_eq!(names, ["app", "new", "side"]);
        assert_eq!(
            out["spec"]["containers"][0]["env"],
            json!([{"name": "A", "value": "1"}, {"name": "B", "value": "two"}, {"name": "C", "value": "3"}])
        );
    }

    #[test]
    fn smp_delete_directive_in_list_removes_by_merge_key() {
        let out = smp(
            pod(),
            json!({"spec": {"containers": [{"name": "side", "$patch": "delete"}]}}),
        )
        .unwrap_or_default();
        assert_eq!(out["spec"]["containers"].as_array().map(Vec::len), Some(1));
        assert_eq!(out["spec"]["containers"][0]["name"], "app");
    }

    #[test]
    fn smp_replace_directive_in_list_replaces_it() {
        let out = smp(
            pod(),
            json!({"spec": {"containers": [{"name": "only", "image": "i"}, {"$patch": "replace"}]}}),
        )
        .unwrap_or_default();
        assert_eq!(
            out["spec"]["containers"],
            json!([{"name": "only", "image": "i"}])
        );
    }

    #[test]
    fn smp_map_directives_replace_and_delete() {
        let out = smp(
            pod(),
            json!({"metadata": {"labels": {"$patch": "replace", "z": "9"}}}),
        )
        .unwrap_or_default();
        assert_eq!(out["metadata"]["labels"], json!({"z": "9"}));
        let out =
            smp(pod(), json!({"metadata": {"labels": {"$patch": "delete"}}})).unwrap_or_default();
        assert_eq!(out["metadata"]["labels"], json!({}));
    }

    #[test]
    fn smp_merge_directive_is_refused_as_upstream() {
        let err = smp(pod(), json!({"metadata": {"labels": {"$patch": "merge"}}})).unwrap_err();
        assert_eq!(
            err,
            PatchError::Unclassified("unknown patch type: merge in map: map[$patch:merge]".into())
        );
        assert_eq!(err.to_status_error().http_status(), 500);
        let err = smp(
            pod(),
            json!({"spec": {"containers": [{"$patch": "merge"}]}}),
        )
        .unwrap_err();
        assert_eq!(
            err,
            PatchError::Unclassified("merging lists cannot yet be specified in the patch".into())
        );
    }

    #[test]
    fn smp_null_deletes_keys() {
        let out = smp(
            pod(),
            json!({"metadata": {"labels": {"a": null}}, "spec": {"tolerations": null}}),
        )
        .unwrap_or_default();
        assert_eq!(out["metadata"]["labels"], json!({"b": "2"}));
        assert!(out["spec"].get("tolerations").is_none());
    }

    #[test]
    fn smp_lists_without_strategy_are_replaced() {
        let out = smp(pod(), json!({"spec": {"tolerations": [{"key": "k3"}]}})).unwrap_or_default();
        assert_eq!(out["spec"]["tolerations"], json!([{"key": "k3"}]));
    }

    #[test]
    fn smp_primitive_merge_list_for_finalizers() {
        let out = smp(pod(), json!({"metadata": {"finalizers": ["z", "x"]}})).unwrap_or_default();
        // patch items in patch order; the server-only "y" ranks after "x" in the live list
        assert_eq!(out["metadata"]["finalizers"], json!(["z", "x", "y"]));
        let out = smp(
            pod(),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]}}),
        )
        .unwrap_or_default();
        assert_eq!(out["metadata"]["finalizers"], json!(["y"]));
    }

    #[test]
    fn smp_set_element_order_orders_the_merged_list() {
        let out = smp(
            pod(),
            json!({"spec": {
                "$setElementOrder/containers": [{"name": "side"}, {"name": "app"}],
                "containers": [{"name": "app", "image": "nginx:3"}]
            }}),
        )
        .unwrap_or_default();
        assert_eq!(out["spec"]["containers"][0]["name"], "side");
        assert_eq!(out["spec"]["containers"][1]["image"], "nginx:3");
        let out = smp(
            pod(),
            json!({"metadata": {"$setElementOrder/finalizers": ["y", "x"]}}),
        )
        .unwrap_or_default();
        assert_eq!(out["metadata"]["finalizers"], json!(["y", "x"]));
    }

    #[test]
    fn smp_set_element_order_mismatch_is_an_error() {
        let err = smp(
            pod(),
            json!({"spec": {
                "$setElementOrder/containers": [{"name": "app"}],
                "containers": [{"name": "other"}]
            }}),
        )
        .unwrap_err();
        assert!(
            matches!(err, PatchError::Unclassified(m) if m.starts_with("The order in patch list:"))
        );
    }

    #[test]
    fn smp_retain_keys_clears_unlisted_fields() {
        let original = json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}});
        let out = smp_kind(
            original.clone(),
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
            &GroupKind::new("apps", "Deployment"),
        );
        assert_eq!(out, Ok(json!({"spec": {"strategy": {"type": "Recreate"}}})));
        let err = smp_kind(
            original,
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}}),
            &GroupKind::new("apps", "Deployment"),
        )
        .unwrap_err();
        assert_eq!(
            err,
            PatchError::BadRequest("invalid patch format of retainKeys".into())
        );
    }

    #[test]
    fn smp_template_rules_apply_to_workloads() {
        let original = json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {
            "containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "2"}]
        }}}}}});
        let out = smp_kind(
            original,
            json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "3"}]}}}}}}),
            &GroupKind::new("batch", "CronJob"),
        )
        .unwrap_or_default();
        let containers = &out["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"];
        assert_eq!(
            containers,
            &json!([{"name": "a", "image": "1"}, {"name": "b", "image": "3"}])
        );
    }

    #[test]
    fn smp_node_conditions_merge_by_type() {
        let original = json!({"status": {"conditions": [
            {"type": "Ready", "status": "False"}, {"type": "DiskPressure", "status": "False"}
        ]}});
        let out = smp_kind(
            original,
            json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
            &GroupKind::core("Node"),
        )
        .unwrap_or_default();
        assert_eq!(
            out["status"]["conditions"],
            json!([{"type": "Ready", "status": "True"}, {"type": "DiskPressure", "status": "False"}])
        );
    }

    #[test]
    fn smp_missing_merge_key_and_bad_format_errors() {
        let err = smp(pod(), json!({"spec": {"containers": [{"image": "x"}]}})).unwrap_err();
        assert_eq!(
            err,
            PatchError::Unclassified(
                "map: map[image:x] does not contain declared merge key: name".into()
            )
        );
        let err = smp(
            pod(),
            json!({"metadata": {"$deleteFromPrimitiveListfinalizers": ["x"]}}),
        )
        .unwrap_err();
        assert_eq!(
            err,
            PatchError::BadRequest("invalid patch format of primitive list".into())
        );
        let err = smp(
            json!({"metadata": {"finalizers": []}}),
            json!({"metadata": {"finalizers": [["x"]]}}),
        )
        .unwrap_err();
        assert_eq!(
            err,
            PatchError::Unprocessable("lists of lists are not supported".into())
        );
        assert_eq!(err.to_status_error().http_status(), 422);
        let err = smp(pod(), json!({"metadata": {"finalizers": [["x"]]}})).unwrap_err();
        assert_eq!(
            err,
            PatchError::Unclassified("list element types are not identical: [[x y] [[x]]]".into())
        );
        let err = smp(
            pod(),
            json!({"metadata": {"$setElementOrderfinalizers": ["x"]}}),
        )
        .unwrap_err();
        assert_eq!(
            err,
            PatchError::BadRequest("invalid patch format of setElementOrder list".into())
        );
    }

    #[test]
    fn smp_decode_errors_have_no_prefix() {
        let err = apply_patch(PatchType::StrategicMerge, &pod(), b"{x", &pod_kind()).unwrap_err();
        assert_eq!(
            err,
            PatchError::BadRequest(
                "invalid character 'x' looking for beginning of object key string".into()
            )
        );
        let err = apply_patch(PatchType::StrategicMerge, &pod(), b"[]", &pod_kind()).unwrap_err();
        assert_eq!(
            err,
            PatchError::BadRequest(
                "json: cannot unmarshal array into Go value of type map[string]interface {}".into()
            )
        );
        assert_eq!(
            apply_patch(PatchType::StrategicMerge, &pod(), b"null", &pod_kind()),
            Ok(pod())
        );
    }

    #[test]
    fn smp_new_fields_drop_directives_and_nulls() {
        let out = smp(
            pod(),
            json!({"spec": {"affinity": {"x": null, "y": {"$patch": "delete"}, "z": 1}}}),
        )
        .unwrap_or_default();
        assert_eq!(out["spec"]["affinity"], json!({"z": 1}));
    }

    #[test]
    fn go_stable_sort_matches_a_stable_sort_for_consistent_orders() {
        let keys: Vec<usize> = (0..97).map(|i| (i * 37) % 11).collect();
        let mut perm: Vec<usize> = (0..keys.len()).collect();
        go_stable_sort(&mut perm, &|a, b| keys[a] < keys[b]);
        let mut want: Vec<usize> = (0..keys.len()).collect();
        want.sort_by_key(|&i| keys[i]);
        assert_eq!(perm, want);
    }

    #[test]
    fn go_formatting_of_values() {
        assert_eq!(
            go_v(&json!({"b": [1, 2.5], "a": null, "c": true})),
            "map[a:<nil> b:[1 2.5] c:true]"
        );
        assert_eq!(go_float(1e6), "1e+06");
        assert_eq!(go_float(123456.0), "123456");
        assert_eq!(go_float(0.00001), "1e-05");
        assert_eq!(go_s(&json!(5)), "%!s(int64=5)");
    }

    /// A deterministic xorshift64 generator, so the fuzz test needs no dependency.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n.max(1)
        }

        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            items[self.below(items.len() as u64) as usize]
        }

        fn value(&mut self, depth: u32) -> Value {
            let keys = [
                "metadata",
                "spec",
                "containers",
                "name",
                "image",
                "labels",
                "finalizers",
                "$patch",
                "$retainKeys",
                "$setElementOrder/containers",
                "$deleteFromPrimitiveList/finalizers",
                "$setElementOrder/finalizers",
                "env",
                "ports",
                "containerPort",
                "a",
                "",
            ];
            match if depth > 3 {
                self.below(5)
            } else {
                self.below(8)
            } {
                0 => Value::Null,
                1 => json!(self.below(3) == 0),
                2 => json!(self.below(100) as i64 - 50),
                3 => json!(self.pick(&["delete", "replace", "merge", "app", "side", "x", "y"])),
                4 => json!(1.5),
                5 | 6 => {
                    let mut m = Map::new();
                    for _ in 0..self.below(4) {
                        let k = self.pick(&keys).to_string();
                        m.insert(k, self.value(depth + 1));
                    }
                    Value::Object(m)
                }
                _ => Value::Array((0..self.below(4)).map(|_| self.value(depth + 1)).collect()),
            }
        }

        fn json_patch_body(&mut self) -> String {
            let paths = [
                "/metadata/labels/a",
                "/spec/containers/0",
                "/spec/containers/-",
                "",
                "/",
                "x/y",
                "/metadata/finalizers/-1",
                "/metadata/finalizers/01",
                "/spec/containers/9/name",
                "/a~1b~0",
            ];
            let ops: Vec<Value> = (0..self.below(5))
                .map(|_| {
                    json!({
                        "op": self.pick(&["add", "remove", "replace", "move", "copy", "test", "bogus"]),
                        "path": self.pick(&paths),
                        "from": self.pick(&paths),
                        "value": self.value(2),
                    })
                })
                .collect();
            Value::Array(ops).to_string()
        }
    }

    #[test]
    fn no_panic_on_pseudo_random_patch_bodies() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let kinds = [
            pod_kind(),
            GroupKind::core("Node"),
            GroupKind::new("apps", "Deployment"),
        ];
        for round in 0..4000 {
            let kind = &kinds[round % kinds.len()];
            let body: Vec<u8> = match rng.below(4) {
                0 => (0..rng.below(40)).map(|_| rng.next() as u8).collect(),
                1 => {
                    // structured JSON with a random byte flipped, to reach deep syntax states
                    let mut b = rng.value(0).to_string().into_bytes();
                    if !b.is_empty() {
                        let i = rng.below(b.len() as u64) as usize;
                        let alphabet = b"{}[]\",:0-eE.tfn\\u x";
                        b[i] = alphabet[rng.below(alphabet.len() as u64) as usize];
                    }
                    b
                }
                2 => rng.json_patch_body().into_bytes(),
                _ => {
                    let mut v = Map::new();
                    v.insert("metadata".into(), rng.value(1));
                    v.insert("spec".into(), rng.value(1));
                    Value::Object(v).to_string().into_bytes()
                }
            };
            for patch_type in [PatchType::Json, PatchType::Merge, PatchType::StrategicMerge] {
                let result = apply_patch(patch_type, &pod(), &body, kind);
                if let Err(e) = result {
                    // every error maps to a status without panicking
                    let _ = e.to_status_error();
                }
            }
        }
    }
}
