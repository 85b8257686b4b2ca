//! Validation of custom resources against their CRD version's OpenAPI v3 schema, and the
//! two decoding steps that go with it: pruning of undeclared fields and defaulting.
//!
//! Upstream splits this across several packages, and the error texts come from each of
//! them, so this file mirrors that split:
//!
//! * [`validate`] runs, in upstream's order, (1) kube-openapi's schema validator
//!   (`k8s.io/kube-openapi/pkg/validation/validate`) whose errors are turned into field
//!   errors as apiextensions-apiserver's `kubeOpenAPIResultToFieldErrors` does, (2) the
//!   embedded-resource checks (`schema/objectmeta`) and (3) the
//!   `x-kubernetes-list-type` set/map uniqueness checks (`schema/listtype`).
//! * [`prune`] is `schema/pruning` with the root treated as an embedded resource.
//! * [`apply_defaults`] is `PruneNonNullableNullsWithoutDefaults` followed by the
//!   structural `Default` algorithm (`schema/defaulting`).
//!
//! kube-openapi names a value by its data path (`spec.items[0].name`, additionalProperties
//! keys joined with `.`); apiextensions uses that name as a single field-path segment, so
//! messages repeat the path: `spec.replicas: Invalid value: "string": spec.replicas in
//! body must be of type integer: "string"`. The structural passes (2, 3) use real field
//! paths instead (map keys as `[key]`).
//!
//! Schemas come straight from the CRD as JSON and are read leniently: a keyword with the
//! wrong JSON type is ignored rather than rejected (the CRD's own validation reports it).
//! Upstream iterates Go maps (random order); we use the object's key order, which makes
//! the error list deterministic.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::OnceLock;

use apimachinery::errors::{BadValue, FieldError, go_quote};
use regex::Regex;
use serde_json::{Map, Value};

use crate::registry::meta::{NameRule, validate_object_meta};

/// Validates `object` (a whole custom resource as JSON) against `schema`, the CRD
/// version's `openAPIV3Schema` as JSON (apiextensions.k8s.io/v1 JSONSchemaProps).
/// Paths are upstream's (`spec.replicas`, `spec.items[0].name`); errors in document order
/// as upstream reports them. `metadata` is not validated here except that the schema's
/// own properties for it are ignored (apiVersion/kind/metadata are handled elsewhere).
pub fn validate(schema: &Value, object: &Value) -> Vec<FieldError> {
    let mut errors: Vec<FieldError> = validate_node(schema, object, "", true)
        .errors
        .into_iter()
        .map(OpenApiError::into_field_error)
        .collect();
    errors.extend(validate_embedded(schema, object, None, true));
    errors.extend(validate_list_types(schema, object, None, true));
    errors
}

/// Removes fields the structural schema does not declare (upstream's pruning), except under
/// `x-kubernetes-preserve-unknown-fields: true` and inside `x-kubernetes-embedded-resource`
/// objects' apiVersion/kind/metadata; at the root keeps apiVersion, kind, metadata.
/// Returns the pruned paths (for fieldValidation warnings: `unknown field "spec.foo"`).
pub fn prune(schema: &Value, object: &mut Value) -> Vec<String> {
    let mut unknown = Vec::new();
    let mut path = String::new();
    // upstream treats the resource root as an embedded resource
    prune_node(object, Some(schema), true, &mut path, &mut unknown);
    // upstream sorts the collected paths (Go's byte-wise string order)
    unknown.sort();
    unknown
}

/// Applies `default`s from the schema (upstream's structural defaulting: a missing property
/// with a default gets a deep copy of it; recurses into objects, additionalProperties,
/// array items), and drops `null` values of non-nullable fields that have no default, as
/// upstream does before validation.
pub fn apply_defaults(schema: &Value, object: &mut Value) {
    drop_non_nullable_nulls(object, Some(schema));
    default_node(object, Some(schema));
}

// ---------------------------------------------------------------------------------------
// Reading the schema (JSONSchemaProps as JSON), leniently.

/// What `additionalProperties` says: absent, a bare boolean, or a schema.
enum Additional<'a> {
    Absent,
    Bool(bool),
    Schema(&'a Value),
}

fn additional(s: &Value) -> Additional<'_> {
    match s.get("additionalProperties") {
        Some(Value::Bool(b)) => Additional::Bool(*b),
        Some(v @ Value::Object(_)) => Additional::Schema(v),
        _ => Additional::Absent,
    }
}

/// The structural schema of additionalProperties: `None` for a bare boolean, as
/// upstream's `StructuralOrBool{Bool: ...}` carries no schema.
fn additional_schema(s: &Value) -> Option<&Value> {
    match additional(s) {
        Additional::Schema(v) => Some(v),
        _ => None,
    }
}

fn has_additional(s: &Value) -> bool {
    !matches!(additional(s), Additional::Absent)
}

fn properties(s: &Value) -> Option<&Map<String, Value>> {
    s.get("properties").and_then(Value::as_object)
}

fn property<'a>(s: &'a Value, name: &str) -> Option<&'a Value> {
    properties(s)
        .and_then(|p| p.get(name))
        .filter(|v| v.is_object())
}

/// The single `items` schema (an array of schemas is not structural; see the validator
/// for the tuple form).
fn items(s: &Value) -> Option<&Value> {
    s.get("items").filter(|v| v.is_object())
}

fn flag(s: &Value, key: &str) -> bool {
    s.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn int_keyword(s: &Value, key: &str) -> Option<i64> {
    let v = s.get(key)?;
    v.as_i64().or_else(|| v.as_f64().map(|f| f as i64))
}

fn float_keyword(s: &Value, key: &str) -> Option<f64> {
    s.get(key).and_then(Value::as_f64)
}

fn str_keyword<'a>(s: &'a Value, key: &str) -> &'a str {
    s.get(key).and_then(Value::as_str).unwrap_or("")
}

fn schema_list<'a>(s: &'a Value, key: &str) -> Vec<&'a Value> {
    s.get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter(|v| v.is_object()).collect())
        .unwrap_or_default()
}

/// The types kube-openapi checks: `x-kubernetes-int-or-string` becomes
/// `["integer", "string"]` in apiextensions' conversion, whatever `type` says.
fn schema_types(s: &Value) -> Vec<&str> {
    if flag(s, "x-kubernetes-int-or-string") {
        return vec!["integer", "string"];
    }
    match str_keyword(s, "type") {
        "" => Vec::new(),
        t => vec![t],
    }
}

/// The formats CRD schemas support (apiextensions' `supportedVersionedFormats`, names
/// normalised by removing dashes); any other format is stripped before validation, which
/// is why `int32`/`int64`/`float`/`double` are never checked.
const SUPPORTED_FORMATS: &[&str] = &[
    "bsonobjectid",
    "uri",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "cidr",
    "mac",
    "uuid",
    "uuid3",
    "uuid4",
    "uuid5",
    "isbn",
    "isbn10",
    "isbn13",
    "creditcard",
    "ssn",
    "hexcolor",
    "rgbcolor",
    "byte",
    "password",
    "date",
    "duration",
    "datetime",
];

/// The schema's format as kube-openapi sees it: empty when unsupported.
fn effective_format(s: &Value) -> &str {
    let format = str_keyword(s, "format");
    if SUPPORTED_FORMATS.contains(&format.replace('-', "").as_str()) {
        format
    } else {
        ""
    }
}

// ---------------------------------------------------------------------------------------
// Values as Go sees them after decoding: integers are int64 when they fit, otherwise
// float64 (apimachinery's JSON decoder).

enum Num {
    Int(i64),
    Float(f64),
}

fn number(v: &Value) -> Option<Num> {
    let n = v.as_number()?;
    Some(match n.as_i64() {
        Some(i) => Num::Int(i),
        None => Num::Float(n.as_f64().unwrap_or(f64::NAN)),
    })
}

/// The JSON type name kube-openapi infers for a value.
fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::String(_) => "string",
        Value::Number(_) => match number(v) {
            Some(Num::Int(_)) => "integer",
            _ => "number",
        },
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The format kube-openapi infers from the Go type of a number (`int64`/`float64`).
fn data_format(v: &Value) -> &'static str {
    match number(v) {
        Some(Num::Int(_)) => "int64",
        Some(Num::Float(_)) => "float64",
        None => "",
    }
}

/// go-openapi's `swag.IsFloat64AJSONInteger`: an integral float within ±(2^53-1), with a
/// relative tolerance of 1e-9.
fn is_json_integer(f: f64) -> bool {
    const MAX: f64 = 9_007_199_254_740_991.0;
    if !f.is_finite() || !(-MAX..=MAX).contains(&f) {
        return false;
    }
    let g = f.trunc();
    if f == g {
        return true;
    }
    let diff = (f - g).abs();
    if g == 0.0 {
        return false;
    }
    diff / (f.abs() + g.abs()) < 1e-9
}

/// Go's `%v` of a float64.
fn go_float(x: f64) -> String {
    BadValue::Float(x).to_string()
}

/// The bad value of a field error for a decoded JSON value, printed as upstream's
/// `ErrorBody` prints it: strings quoted, scalars bare, nil as `"null"` (Go substitutes
/// the string "null", which `%q` then quotes), maps and slices as Go's `%#v`.
fn bad_value(v: &Value) -> BadValue {
    match v {
        Value::Null => BadValue::String("null".to_string()),
        Value::Bool(b) => BadValue::Bool(*b),
        Value::String(s) => BadValue::String(s.clone()),
        Value::Number(_) => match number(v) {
            Some(Num::Int(i)) => BadValue::Int(i),
            Some(Num::Float(f)) => BadValue::Float(f),
            None => BadValue::Null,
        },
        Value::Array(_) | Value::Object(_) => BadValue::Display(go_sharp_v(v)),
    }
}

/// Go's `%#v` of a value inside `interface{}`: `map[string]interface {}{"a":1}` (keys
/// sorted), `[]interface {}{"a", 1}`, `interface {}(nil)`.
fn go_sharp_v(v: &Value) -> String {
    match v {
        Value::Null => "interface {}(nil)".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::String(s) => go_quote(s),
        Value::Number(_) => match number(v) {
            Some(Num::Int(i)) => i.to_string(),
            Some(Num::Float(f)) => go_float(f),
            None => "0".to_string(),
        },
        Value::Array(a) => {
            let parts: Vec<String> = a.iter().map(go_sharp_v).collect();
            format!("[]interface {{}}{{{}}}", parts.join(", "))
        }
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", go_quote(k), go_sharp_v(&m[k])))
                .collect();
            format!("map[string]interface {{}}{{{}}}", parts.join(", "))
        }
    }
}

// ---------------------------------------------------------------------------------------
// Pass 1: kube-openapi's schema validator.

/// What kind of kube-openapi error, i.e. how apiextensions converts it to a field error.
enum Code {
    /// `InvalidTypeCode` → TypeInvalid.
    InvalidType,
    /// `RequiredFailCode` → Required.
    Required,
    /// `TooLongFailCode` → TooLong with the maximum.
    TooLong(i64),
    /// `EnumFailCode` → NotSupported with the values as strings.
    Enum(Vec<String>),
    /// `MaxItemsFailCode` / `TooManyPropertiesCode` → TooMany.
    TooMany(i64, i64),
    /// Any other validation code → Invalid.
    Invalid,
    /// A composite (anyOf/oneOf/allOf/not) message: Invalid at the nil path, value "".
    Composite,
}

/// One kube-openapi error: its code, its `Name` (data path), `Error()` text and value.
struct OpenApiError {
    code: Code,
    name: String,
    message: String,
    value: BadValue,
}

impl OpenApiError {
    fn new(code: Code, name: &str, message: String, value: BadValue) -> Self {
        Self {
            code,
            name: name.to_string(),
            message,
            value,
        }
    }

    fn composite(message: String) -> Self {
        Self::new(Code::Composite, "", message, BadValue::from(""))
    }

    /// apiextensions' `kubeOpenAPIResultToFieldErrors` for one error.
    fn into_field_error(self) -> FieldError {
        // the name becomes one child of a nil path; a nil path prints as `<nil>`
        let path = if self.name.is_empty() || self.name == "." {
            "<nil>".to_string()
        } else {
            self.name
                .strip_prefix('.')
                .unwrap_or(&self.name)
                .to_string()
        };
        match self.code {
            Code::Required => FieldError::required(path, ""),
            Code::Enum(values) => {
                let values: Vec<&str> = values.iter().map(String::as_str).collect();
                FieldError::not_supported(path, self.value, &values)
            }
            Code::TooLong(max) => FieldError::too_long(path, max),
            Code::TooMany(actual, max) => FieldError::too_many(path, actual, max),
            Code::InvalidType => FieldError::type_invalid(path, self.value, self.message),
            Code::Invalid => FieldError::invalid(path, self.value, self.message),
            Code::Composite => FieldError::invalid("<nil>", "", self.message),
        }
    }
}

/// kube-openapi's `Result`: errors de-duplicated by text, and the match count used to
/// pick the "best" failing branch of anyOf/oneOf.
#[derive(Default)]
struct Outcome {
    errors: Vec<OpenApiError>,
    match_count: usize,
}

impl Outcome {
    fn add(&mut self, e: OpenApiError) {
        if !self.errors.iter().any(|x| x.message == e.message) {
            self.errors.push(e);
        }
    }

    fn merge(&mut self, other: Outcome) {
        for e in other.errors {
            self.add(e);
        }
        self.match_count += other.match_count;
    }

    fn error(e: OpenApiError) -> Self {
        Self {
            errors: vec![e],
            match_count: 0,
        }
    }

    fn is_valid(&self) -> bool {
        self.errors.is_empty()
    }
}

/// `"<name> in body must be of type <t>: \"<actual>\""`.
fn invalid_type(name: &str, type_name: &str, actual: &str, value: BadValue) -> OpenApiError {
    OpenApiError::new(
        Code::InvalidType,
        name,
        format!(
            "{name} in body must be of type {type_name}: {}",
            go_quote(actual)
        ),
        value,
    )
}

/// One schema node against one value, as kube-openapi's `SchemaValidator.Validate`:
/// type, anyOf/oneOf/allOf/not, string, format, number, array, enum, object, each run
/// when it applies to the value's kind. `root` skips the root `metadata` property.
fn validate_node(s: &Value, data: &Value, name: &str, root: bool) -> Outcome {
    let mut out = Outcome::default();
    if !s.is_object() {
        return out;
    }
    if data.is_null() {
        // upstream runs only the type and enum validators on nil
        out.merge(validate_type(s, data, name));
        out.merge(validate_enum(s, data, name));
        return out;
    }
    // each applicable validator's result is merged and counted once more
    let run = |out: &mut Outcome, r: Outcome| {
        out.merge(r);
        out.match_count += 1;
    };
    if !schema_types(s).is_empty() || !effective_format(s).is_empty() {
        run(&mut out, validate_type(s, data, name));
    }
    run(&mut out, validate_junctors(s, data, name));
    if let Value::String(text) = data {
        run(&mut out, validate_string(s, text, name));
        if !effective_format(s).is_empty() {
            run(&mut out, validate_format(s, text, name));
        }
    }
    if data.is_number() {
        run(&mut out, validate_number(s, data, name));
    }
    if let Value::Array(list) = data {
        run(&mut out, validate_array(s, list, name));
    }
    run(&mut out, validate_enum(s, data, name));
    if let Value::Object(map) = data {
        run(&mut out, validate_object(s, map, name, root));
    }
    out.match_count += 1;
    out
}

/// kube-openapi's type validator.
fn validate_type(s: &Value, data: &Value, name: &str) -> Outcome {
    let types = schema_types(s);
    let format = effective_format(s);
    if data.is_null() {
        if !types.is_empty() && !types.contains(&"null") && !flag(s, "nullable") {
            return Outcome::error(invalid_type(
                name,
                &types.join(","),
                "null",
                BadValue::from("null"),
            ));
        }
        return Outcome {
            errors: Vec::new(),
            match_count: 1,
        };
    }
    let actual = json_type(data);
    let is_float_int = actual == "number"
        && data.as_f64().is_some_and(is_json_integer)
        && types.contains(&"integer");
    let is_int_float = actual == "integer" && types.contains(&"number");
    let stringish = data.is_string() || data.is_array();
    if !stringish
        && !format.is_empty()
        && !(types.contains(&actual) || data_format(data) == format || is_float_int || is_int_float)
    {
        // upstream reports the format here, with the value's Go format as the "type"
        let df = data_format(data);
        return Outcome::error(invalid_type(name, format, df, BadValue::from(df)));
    }
    let numeric = types.contains(&"number") || types.contains(&"integer");
    if !numeric && !format.is_empty() && stringish {
        return Outcome {
            errors: Vec::new(),
            match_count: 1,
        };
    }
    if !(types.contains(&actual) || is_float_int || is_int_float) {
        return Outcome::error(invalid_type(
            name,
            &types.join(","),
            actual,
            BadValue::from(actual),
        ));
    }
    Outcome {
        errors: Vec::new(),
        match_count: 1,
    }
}

/// kube-openapi's schemaPropsValidator: anyOf, oneOf, allOf, not (all at the same data
/// path), with their composite messages ahead of the chosen branch's own errors.
fn validate_junctors(s: &Value, data: &Value, name: &str) -> Outcome {
    let mut out = Outcome::default();
    let quoted = go_quote(name);

    let any_of = schema_list(s, "anyOf");
    if !any_of.is_empty() {
        let mut best: Option<Outcome> = None;
        let mut success: Option<Outcome> = None;
        for branch in any_of {
            let r = validate_node(branch, data, name, false);
            if r.is_valid() {
                best = None;
                success = Some(r);
                break;
            }
            if best.as_ref().is_none_or(|b| r.match_count > b.match_count) {
                best = Some(r);
            }
        }
        if success.is_none() {
            out.add(OpenApiError::composite(format!(
                "{quoted} must validate at least one schema (anyOf)"
            )));
        }
        if let Some(r) = best.or(success) {
            out.merge(r);
        }
    }

    let one_of = schema_list(s, "oneOf");
    if !one_of.is_empty() {
        let mut best: Option<Outcome> = None;
        let mut first_success: Option<Outcome> = None;
        let mut validated = 0usize;
        for branch in one_of {
            let r = validate_node(branch, data, name, false);
            if r.is_valid() {
                validated += 1;
                best = None;
                if first_success.is_none() {
                    first_success = Some(r);
                }
                continue;
            }
            if validated == 0 && best.as_ref().is_none_or(|b| r.match_count > b.match_count) {
                best = Some(r);
            }
        }
        if validated != 1 {
            let extra = if validated == 0 {
                "Found none valid".to_string()
            } else {
                format!("Found {validated} valid alternatives")
            };
            out.add(OpenApiError::composite(format!(
                "{quoted} must validate one and only one schema (oneOf). {extra}"
            )));
            if let Some(r) = best {
                out.merge(r);
            }
        } else if let Some(r) = first_success {
            out.merge(r);
        }
    }

    let all_of = schema_list(s, "allOf");
    if !all_of.is_empty() {
        let total = all_of.len();
        let mut validated = 0usize;
        for branch in all_of {
            let r = validate_node(branch, data, name, false);
            if r.is_valid() {
                validated += 1;
            }
            out.merge(r);
        }
        if validated != total {
            let extra = if validated == 0 {
                ". None validated"
            } else {
                ""
            };
            out.add(OpenApiError::composite(format!(
                "{quoted} must validate all the schemas (allOf){extra}"
            )));
        }
    }

    let not = s.get("not").filter(|v| v.is_object());
    if not.is_some_and(|not| validate_node(not, data, name, false).is_valid()) {
        out.add(OpenApiError::composite(format!(
            "{quoted} must not validate the schema (not)"
        )));
    }

    out.match_count += 1;
    out
}

/// kube-openapi's string validator: maxLength, minLength, pattern; only the first
/// failure is reported. Lengths count Unicode characters.
fn validate_string(s: &Value, text: &str, name: &str) -> Outcome {
    let len = text.chars().count() as i64;
    if let Some(max) = int_keyword(s, "maxLength").filter(|max| len > *max) {
        return Outcome::error(OpenApiError::new(
            Code::TooLong(max),
            name,
            format!("{name} in body should be at most {max} chars long"),
            BadValue::from(text),
        ));
    }
    if let Some(min) = int_keyword(s, "minLength").filter(|min| len < *min) {
        return Outcome::error(OpenApiError::new(
            Code::Invalid,
            name,
            format!("{name} in body should be at least {min} chars long"),
            BadValue::from(text),
        ));
    }
    let pattern = str_keyword(s, "pattern");
    if !pattern.is_empty() {
        let shown = match compiled_pattern(pattern) {
            Ok(re) if re.is_match(text) => return Outcome::default(),
            Ok(_) => pattern.to_string(),
            Err(err) => format!("{pattern}, but pattern is invalid: {err}"),
        };
        return Outcome::error(OpenApiError::new(
            Code::Invalid,
            name,
            format!("{name} in body should match '{shown}'"),
            BadValue::from(text),
        ));
    }
    Outcome::default()
}

/// kube-openapi's format validator: `must be of type <format>: "<value>"`.
fn validate_format(s: &Value, text: &str, name: &str) -> Outcome {
    let format = effective_format(s);
    if format_ok(&format.replace('-', ""), text) {
        Outcome::default()
    } else {
        Outcome::error(invalid_type(name, format, text, BadValue::from(text)))
    }
}

/// kube-openapi's number validator. For int64 data the bounds and factor are truncated
/// to int64 first (upstream's "native type" comparisons); errors come multipleOf,
/// minimum, maximum.
fn validate_number(s: &Value, data: &Value, name: &str) -> Outcome {
    let mut out = Outcome::default();
    let Some(num) = number(data) else {
        return out;
    };
    if let Some(factor) = float_keyword(s, "multipleOf") {
        let e = match num {
            Num::Int(v) => {
                let f = factor as i64;
                if f <= 0 {
                    Some(must_be_positive(name, BadValue::Int(f), &f.to_string()))
                } else if v.wrapping_div(f).wrapping_mul(f) != v {
                    Some(not_multiple(name, &f.to_string(), BadValue::Int(v)))
                } else {
                    None
                }
            }
            Num::Float(v) => {
                if factor <= 0.0 {
                    let shown = go_float(factor);
                    Some(must_be_positive(name, BadValue::Float(factor), &shown))
                } else {
                    let mult = if factor < 1.0 {
                        1.0 / factor * v
                    } else {
                        v / factor
                    };
                    (!is_json_integer(mult))
                        .then(|| not_multiple(name, &go_float(factor), BadValue::Float(v)))
                }
            }
        };
        if let Some(e) = e {
            out.add(e);
        }
    }
    let bound = |key: &str, exclusive_key: &str, upper: bool| -> Option<OpenApiError> {
        let limit = float_keyword(s, key)?;
        let exclusive = flag(s, exclusive_key);
        let (fails, shown, value) = match num {
            Num::Int(v) => {
                let l = limit as i64;
                let fails = match (upper, exclusive) {
                    (true, false) => v > l,
                    (true, true) => v >= l,
                    (false, false) => v < l,
                    (false, true) => v <= l,
                };
                (fails, l.to_string(), BadValue::Int(v))
            }
            Num::Float(v) => {
                let fails = match (upper, exclusive) {
                    (true, false) => v > limit,
                    (true, true) => v >= limit,
                    (false, false) => v < limit,
                    (false, true) => v <= limit,
                };
                (fails, go_float(limit), BadValue::Float(v))
            }
        };
        if !fails {
            return None;
        }
        let relation = match (upper, exclusive) {
            (true, false) => "less than or equal to",
            (true, true) => "less than",
            (false, false) => "greater than or equal to",
            (false, true) => "greater than",
        };
        Some(OpenApiError::new(
            Code::Invalid,
            name,
            format!("{name} in body should be {relation} {shown}"),
            value,
        ))
    };
    if let Some(e) = bound("minimum", "exclusiveMinimum", false) {
        out.add(e);
    }
    if let Some(e) = bound("maximum", "exclusiveMaximum", true) {
        out.add(e);
    }
    out.match_count += 1;
    out
}

fn must_be_positive(name: &str, factor: BadValue, shown: &str) -> OpenApiError {
    OpenApiError::new(
        Code::Invalid,
        name,
        format!("factor MultipleOf declared for {name} must be positive: {shown}"),
        factor,
    )
}

fn not_multiple(name: &str, factor: &str, value: BadValue) -> OpenApiError {
    OpenApiError::new(
        Code::Invalid,
        name,
        format!("{name} in body should be a multiple of {factor}"),
        value,
    )
}

/// kube-openapi's slice validator: items first, then minItems, maxItems, uniqueItems.
fn validate_array(s: &Value, list: &[Value], name: &str) -> Outcome {
    let mut out = Outcome::default();
    match s.get("items") {
        Some(item @ Value::Object(_)) => {
            for (i, v) in list.iter().enumerate() {
                out.merge(validate_node(item, v, &format!("{name}[{i}]"), false));
            }
        }
        // the tuple form (not structural, but kube-openapi honours it)
        Some(Value::Array(tuple)) => {
            for (i, (item, v)) in tuple.iter().zip(list).enumerate() {
                out.merge(validate_node(item, v, &format!("{name}[{i}]"), false));
            }
        }
        _ => {}
    }
    let size = list.len() as i64;
    if let Some(min) = int_keyword(s, "minItems").filter(|min| size < *min) {
        out.add(OpenApiError::new(
            Code::Invalid,
            name,
            format!("{name} in body should have at least {min} items"),
            BadValue::Int(size),
        ));
    }
    if let Some(max) = int_keyword(s, "maxItems").filter(|max| size > *max) {
        out.add(OpenApiError::new(
            Code::TooMany(size, max),
            name,
            format!("{name} in body should have at most {max} items"),
            BadValue::Int(size),
        ));
    }
    if flag(s, "uniqueItems") {
        // JSON equality matches Go's DeepEqual here: 1 and 1.0 differ in both
        let duplicated = list.iter().enumerate().any(|(i, v)| list[..i].contains(v));
        if duplicated {
            out.add(OpenApiError::new(
                Code::Invalid,
                name,
                format!("{name} in body shouldn't contain duplicates"),
                BadValue::from(""),
            ));
        }
    }
    out.match_count += 1;
    out
}

/// kube-openapi's enum check: a value matches an enum entry when Go could convert it to
/// the entry's type and the result is deeply equal (so 1.0 matches 1, and an integer
/// matches the one-character string of its code point).
fn validate_enum(s: &Value, data: &Value, name: &str) -> Outcome {
    let Some(values) = s.get("enum").and_then(Value::as_array) else {
        return Outcome::default();
    };
    if values.is_empty() || values.iter().any(|e| enum_matches(data, e)) {
        return Outcome::default();
    }
    let supported = values
        .iter()
        .map(|e| match e {
            Value::String(s) => s.clone(),
            other => serde_json::to_string(other).unwrap_or_default(),
        })
        .collect();
    Outcome::error(OpenApiError::new(
        Code::Enum(supported),
        name,
        format!("{name} in body should be one of {}", go_list(values)),
        bad_value(data),
    ))
}

/// Go's `%v` of a `[]interface{}` (only in the message upstream never shows).
fn go_list(values: &[Value]) -> String {
    let parts: Vec<String> = values
        .iter()
        .map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect();
    format!("[{}]", parts.join(" "))
}

fn enum_matches(data: &Value, entry: &Value) -> bool {
    match (data, entry) {
        (Value::Null, _) | (_, Value::Null) => false,
        (Value::Number(_), Value::Number(_)) => match (number(data), number(entry)) {
            (Some(Num::Int(a)), Some(Num::Int(b))) => a == b,
            (Some(Num::Int(a)), Some(Num::Float(b))) => a as f64 == b,
            (Some(Num::Float(a)), Some(Num::Int(b))) => a as i64 == b,
            (Some(Num::Float(a)), Some(Num::Float(b))) => a == b,
            _ => false,
        },
        (Value::Number(_), Value::String(e)) => match number(data) {
            // Go's string(rune(i)): invalid code points become U+FFFD
            Some(Num::Int(i)) => {
                let c = u32::try_from(i)
                    .ok()
                    .and_then(char::from_u32)
                    .unwrap_or('\u{FFFD}');
                e.chars().eq(std::iter::once(c))
            }
            _ => false,
        },
        _ => data == entry,
    }
}

/// kube-openapi's object validator: minProperties, maxProperties, additionalProperties,
/// properties, required.
fn validate_object(s: &Value, map: &Map<String, Value>, name: &str, root: bool) -> Outcome {
    let mut out = Outcome::default();
    let size = map.len() as i64;
    if let Some(min) = int_keyword(s, "minProperties").filter(|min| size < *min) {
        out.add(OpenApiError::new(
            Code::Invalid,
            name,
            format!("{name} in body should have at least {min} properties"),
            BadValue::Int(size),
        ));
    }
    if let Some(max) = int_keyword(s, "maxProperties").filter(|max| size > *max) {
        out.add(OpenApiError::new(
            Code::TooMany(size, max),
            name,
            format!("{name} in body should have at most {max} properties"),
            BadValue::Int(size),
        ));
    }
    let props = properties(s);
    let declared = |k: &str| props.is_some_and(|p| p.contains_key(k));
    match additional(s) {
        Additional::Bool(false) => {
            for k in map.keys().filter(|k| !declared(k)) {
                out.add(OpenApiError::new(
                    Code::Invalid,
                    name,
                    format!("{name}.{k} in body is a forbidden property"),
                    BadValue::from(k.as_str()),
                ));
            }
        }
        Additional::Schema(sub) => {
            for (k, v) in map.iter().filter(|(k, _)| !declared(k)) {
                // upstream joins with "." even at the root (".key"), trimmed later
                out.merge(validate_node(sub, v, &format!("{name}.{k}"), false));
            }
        }
        Additional::Bool(true) | Additional::Absent => {}
    }
    for (k, v) in map {
        if root && k == "metadata" {
            continue;
        }
        if let Some(sub) = props.and_then(|p| p.get(k)) {
            let child = if name.is_empty() {
                k.clone()
            } else {
                format!("{name}.{k}")
            };
            out.merge(validate_node(sub, v, &child, false));
        }
    }
    if let Some(required) = s.get("required").and_then(Value::as_array) {
        for k in required.iter().filter_map(Value::as_str) {
            if !map.contains_key(k) && !(root && k == "metadata") {
                let path = format!("{name}.{k}");
                out.add(OpenApiError::new(
                    Code::Required,
                    &path,
                    format!("{path} in body is required"),
                    BadValue::Null,
                ));
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Formats (strfmt.Default, as registered by kube-openapi). `format` is normalised.

fn format_ok(format: &str, s: &str) -> bool {
    match format {
        "bsonobjectid" => s.len() == 24 && s.bytes().all(|b| b.is_ascii_hexdigit()),
        "uri" => is_request_uri(s),
        "email" => is_email(s),
        "hostname" => is_hostname(s),
        "ipv4" => parse_ip(s, true).is_some() && s.contains('.'),
        "ipv6" => parse_ip(s, false).is_some() && s.contains(':'),
        "cidr" => is_cidr(s),
        "mac" => is_mac(s),
        "uuid" => regex_match(
            &UUID,
            r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$",
            s,
        ),
        "uuid3" => regex_match(
            &UUID3,
            r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?3[0-9a-f]{3}-?[0-9a-f]{4}-?[0-9a-f]{12}$",
            s,
        ),
        "uuid4" => regex_match(
            &UUID4,
            r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?4[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$",
            s,
        ),
        "uuid5" => regex_match(
            &UUID5,
            r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?5[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$",
            s,
        ),
        "isbn" => is_isbn10(s) || is_isbn13(s),
        "isbn10" => is_isbn10(s),
        "isbn13" => is_isbn13(s),
        "creditcard" => is_credit_card(s),
        "ssn" => s.len() == 11 && regex_match(&SSN, r"^[0-9]{3}[- ]?[0-9]{2}[- ]?[0-9]{4}$", s),
        "hexcolor" => regex_match(&HEXCOLOR, r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$", s),
        "rgbcolor" => regex_match(
            &RGBCOLOR,
            r"^rgb\([\t\n\f\r ]*(0|[1-9][0-9]?|1[0-9][0-9]?|2[0-4][0-9]|25[0-5])[\t\n\f\r ]*,[\t\n\f\r ]*(0|[1-9][0-9]?|1[0-9][0-9]?|2[0-4][0-9]|25[0-5])[\t\n\f\r ]*,[\t\n\f\r ]*(0|[1-9][0-9]?|1[0-9][0-9]?|2[0-4][0-9]|25[0-5])[\t\n\f\r ]*\)$",
            s,
        ),
        "byte" => regex_match(
            &BASE64,
            r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{4})$",
            s,
        ),
        "password" => true,
        "date" => is_date(s),
        "datetime" => is_date_time(s),
        "duration" => is_duration(s),
        _ => true,
    }
}

static UUID: OnceLock<Option<Regex>> = OnceLock::new();
static UUID3: OnceLock<Option<Regex>> = OnceLock::new();
static UUID4: OnceLock<Option<Regex>> = OnceLock::new();
static UUID5: OnceLock<Option<Regex>> = OnceLock::new();
static SSN: OnceLock<Option<Regex>> = OnceLock::new();
static HEXCOLOR: OnceLock<Option<Regex>> = OnceLock::new();
static RGBCOLOR: OnceLock<Option<Regex>> = OnceLock::new();
static BASE64: OnceLock<Option<Regex>> = OnceLock::new();
static TIME_OF_DAY: OnceLock<Option<Regex>> = OnceLock::new();
static DURATION_PART: OnceLock<Option<Regex>> = OnceLock::new();
static HOST_CHAR: OnceLock<Option<Regex>> = OnceLock::new();
static TLD_CHAR: OnceLock<Option<Regex>> = OnceLock::new();

fn regex_match(cell: &OnceLock<Option<Regex>>, pattern: &str, s: &str) -> bool {
    cell.get_or_init(|| Regex::new(pattern).ok())
        .as_ref()
        .is_some_and(|re| re.is_match(s))
}

/// strfmt's hostname pattern, checked by hand (a compiled regex with repeated Unicode
/// classes is huge): either one label that is a character, an optional dash and up to 62
/// characters, or dot-terminated labels followed by a 2-63 letter top-level label.
/// Then at most 255 bytes and 63 bytes per label.
fn is_hostname(s: &str) -> bool {
    // [a-zA-Z0-9\p{S}\p{L}]: some ASCII punctuation (`$+<=>^`|~`) is a Unicode symbol
    let host = |c: char| {
        c.is_ascii_alphanumeric()
            || regex_match(&HOST_CHAR, r"^[\p{S}\p{L}]$", c.encode_utf8(&mut [0; 4]))
    };
    let letter = |c: char| {
        c.is_ascii_alphabetic() || regex_match(&TLD_CHAR, r"^\p{L}$", c.encode_utf8(&mut [0; 4]))
    };
    let parts: Vec<&str> = s.split('.').collect();
    let shape_ok = if parts.len() == 1 {
        let mut chars = s.chars();
        match chars.next() {
            Some(c) if host(c) => {
                let rest: Vec<char> = chars.collect();
                let rest = match rest.first() {
                    Some('-') => &rest[1..],
                    _ => &rest[..],
                };
                rest.len() <= 62 && rest.iter().all(|&c| host(c))
            }
            _ => false,
        }
    } else {
        let (tld, labels) = parts.split_last().unwrap_or((&"", &[]));
        let tld_len = tld.chars().count();
        (2..=63).contains(&tld_len)
            && tld.chars().all(letter)
            && labels.iter().all(|label| {
                let chars: Vec<char> = label.chars().collect();
                match chars.as_slice() {
                    [c] => host(*c),
                    [first, middle @ .., last] => {
                        host(*first)
                            && host(*last)
                            && middle.len() <= 61
                            && middle.iter().all(|&c| c == '-' || host(c))
                    }
                    [] => false,
                }
            })
    };
    shape_ok && s.len() <= 255 && parts.iter().all(|p| p.len() <= 63)
}

/// Go's `net.ParseIP` (strict) or the sloppy parser k8s.io/utils uses for `ipv4`/`cidr`
/// (leading zeros allowed in dotted quads).
fn parse_ip(s: &str, sloppy: bool) -> Option<()> {
    if parse_ipv4(s, sloppy) {
        return Some(());
    }
    if s.contains(':') && !s.contains('%') {
        return s.parse::<std::net::Ipv6Addr>().ok().map(|_| ());
    }
    None
}

fn parse_ipv4(s: &str, sloppy: bool) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 4
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes().all(|b| b.is_ascii_digit())
                && (sloppy || p.len() == 1 || !p.starts_with('0'))
                && p.trim_start_matches('0').len() <= 3
                && p.parse::<u32>()
                    .map_or(p.trim_start_matches('0').is_empty(), |n| n <= 255)
        })
}

fn is_cidr(s: &str) -> bool {
    let Some((addr, prefix)) = s.split_once('/') else {
        return false;
    };
    let bits = if parse_ipv4(addr, true) {
        32
    } else if parse_ip(addr, true).is_some() {
        128
    } else {
        return false;
    };
    !prefix.is_empty()
        && prefix.bytes().all(|b| b.is_ascii_digit())
        && prefix
            .trim_start_matches('0')
            .parse::<u32>()
            .map_or(prefix.trim_start_matches('0').is_empty(), |n| n <= bits)
}

/// Go's `net.ParseMAC`: 6, 8 or 20 groups of two hex digits separated by `:` or `-`, or
/// groups of four separated by `.`.
fn is_mac(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 14 {
        return false;
    }
    let groups_ok = |n: usize| matches!(n, 6 | 8 | 20);
    if b[2] == b':' || b[2] == b'-' {
        if (b.len() + 1) % 3 != 0 || !groups_ok((b.len() + 1) / 3) {
            return false;
        }
        b.chunks(3).all(|c| {
            c[0].is_ascii_hexdigit() && c[1].is_ascii_hexdigit() && (c.len() == 2 || c[2] == b[2])
        })
    } else if b[4] == b'.' {
        if (b.len() + 1) % 5 != 0 || !groups_ok(2 * (b.len() + 1) / 5) {
            return false;
        }
        b.chunks(5)
            .all(|c| c[..4].iter().all(u8::is_ascii_hexdigit) && (c.len() == 4 || c[4] == b'.'))
    } else {
        false
    }
}

fn isbn_digits(s: &str) -> String {
    s.chars()
        .filter(|c| !(*c == '-' || matches!(c, '\t' | '\n' | '\x0b' | '\x0c' | '\r' | ' ')))
        .collect()
}

fn is_isbn10(s: &str) -> bool {
    let d = isbn_digits(s);
    let b = d.as_bytes();
    if b.len() != 10
        || !b[..9].iter().all(u8::is_ascii_digit)
        || !(b[9].is_ascii_digit() || b[9] == b'X')
    {
        return false;
    }
    let mut sum: u32 = (0..9)
        .map(|i| (i as u32 + 1) * u32::from(b[i] - b'0'))
        .sum();
    sum += 10
        * if b[9] == b'X' {
            10
        } else {
            u32::from(b[9] - b'0')
        };
    sum % 11 == 0
}

fn is_isbn13(s: &str) -> bool {
    let d = isbn_digits(s);
    let b = d.as_bytes();
    if b.len() != 13 || !b.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let sum: u32 = (0..12)
        .map(|i| [1, 3][i % 2] * u32::from(b[i] - b'0'))
        .sum();
    u32::from(b[12] - b'0') == (10 - sum % 10) % 10
}

fn is_credit_card(s: &str) -> bool {
    static CARD: OnceLock<Option<Regex>> = OnceLock::new();
    let digits: String = s.chars().filter(char::is_ascii_digit).collect();
    if !regex_match(
        &CARD,
        r"^(?:4[0-9]{12}(?:[0-9]{3})?|5[1-5][0-9]{14}|6(?:011|5[0-9][0-9])[0-9]{12}|3[47][0-9]{13}|3(?:0[0-5]|[68][0-9])[0-9]{11}|(?:2131|1800|35[0-9]{3})[0-9]{11})$",
        &digits,
    ) {
        return false;
    }
    let mut sum = 0;
    for (i, c) in digits.bytes().rev().enumerate() {
        let mut n = u32::from(c - b'0');
        if i % 2 == 1 {
            n *= 2;
            if n >= 10 {
                n = n % 10 + 1;
            }
        }
        sum += n;
    }
    sum % 10 == 0
}

/// Go's `time.Parse("2006-01-02", s)`: fixed widths and a real calendar day.
fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = &s[r];
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())
            .flatten()
    };
    let (Some(year), Some(month), Some(day)) = (num(0..4), num(5..7), num(8..10)) else {
        return false;
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day)
}

/// strfmt's `IsDateTime`: lowercased, split on every `t`; the first part a date, the
/// second a time of day with an optional fraction and a `z` or numeric offset.
fn is_date_time(s: &str) -> bool {
    if s.len() < 4 {
        return false;
    }
    let lower = s.to_lowercase();
    let parts: Vec<&str> = lower.split('t').collect();
    if parts.len() < 2 || !is_date(parts[0]) {
        return false;
    }
    let re = TIME_OF_DAY.get_or_init(|| {
        Regex::new(r"^([0-9]{2}):([0-9]{2}):([0-9]{2})(.[0-9]+)?(z|([+-][0-9]{2}:[0-9]{2}))$").ok()
    });
    let Some(caps) = re.as_ref().and_then(|re| re.captures(parts[1])) else {
        return false;
    };
    &caps[1] <= "23" && &caps[2] <= "59" && &caps[3] <= "59"
}

/// strfmt's `ParseDuration`: Go's `time.ParseDuration`, or else any `<digits> <unit>`
/// group with a unit like `d`, `days`, `wk`, `hours`...
fn is_duration(s: &str) -> bool {
    if go_parse_duration(s) {
        return true;
    }
    const UNITS: &[&[&str]] = &[
        &["ns", "nano"],
        &["us", "µs", "micro"],
        &["ms", "milli"],
        &["s", "sec"],
        &["m", "min"],
        &["h", "hr", "hour"],
        &["d", "day"],
        &["w", "wk", "week"],
    ];
    let Some(re) = DURATION_PART
        .get_or_init(|| Regex::new(r"(([0-9]+)[\t\n\f\r ]*([A-Za-zµ]+))").ok())
        .as_ref()
    else {
        return false;
    };
    let mut ok = false;
    for caps in re.captures_iter(s) {
        if caps[2].parse::<i64>().is_err() {
            // strconv.Atoi overflow aborts the whole parse upstream
            return false;
        }
        let unit = caps[3].trim().to_lowercase();
        for variants in UNITS {
            let last = variants.len() - 1;
            for (i, variant) in variants.iter().enumerate() {
                if (i == last && unit.starts_with(variant)) || unit == *variant {
                    ok = true;
                }
            }
        }
    }
    ok
}

/// Go's `time.ParseDuration` grammar: `[-+]?(<decimal><unit>)+` or `0`.
fn go_parse_duration(s: &str) -> bool {
    let mut rest = s.strip_prefix(['-', '+']).unwrap_or(s);
    if rest == "0" {
        return true;
    }
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        rest = &rest[int_len..];
        let mut frac_len = 0;
        if let Some(after) = rest.strip_prefix('.') {
            frac_len = after.bytes().take_while(u8::is_ascii_digit).count();
            rest = &after[frac_len..];
        }
        if int_len == 0 && frac_len == 0 {
            return false;
        }
        let unit_len = rest
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        if !matches!(unit, "ns" | "us" | "µs" | "μs" | "ms" | "s" | "m" | "h") {
            return false;
        }
        rest = &rest[unit_len..];
    }
    true
}

/// Go's `url.ParseRequestURI`: an absolute URI or an absolute path, no control
/// characters, valid percent-escapes and a plausible authority.
fn is_request_uri(s: &str) -> bool {
    if s.is_empty() || s.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return false;
    }
    if s == "*" {
        return true;
    }
    // scheme: a letter, then letters, digits, "+-.", up to ':'
    let mut scheme = "";
    let mut rest = s;
    for (i, c) in s.char_indices() {
        if c.is_ascii_alphabetic() {
            continue;
        }
        if c.is_ascii_digit() || matches!(c, '+' | '-' | '.') {
            if i == 0 {
                break;
            }
            continue;
        }
        if c == ':' {
            if i == 0 {
                return false;
            }
            scheme = &s[..i];
            rest = &s[i + 1..];
        }
        break;
    }
    let path_part = match rest.split_once('?') {
        Some((p, _)) => p,
        None => rest,
    };
    if !path_part.starts_with('/') {
        // opaque URIs (mailto:x) are fine with a scheme; relative paths are not
        return !scheme.is_empty();
    }
    let mut path = path_part;
    let authority_part = path_part.strip_prefix("//").filter(|_| !scheme.is_empty());
    if let Some(after) = authority_part {
        let end = after.find('/').unwrap_or(after.len());
        let authority = &after[..end];
        path = &after[end..];
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        if !valid_host(host) {
            return false;
        }
    }
    valid_escapes(path)
}

fn valid_escapes(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if !(b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
            {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

fn valid_host(host: &str) -> bool {
    if let Some(inner) = host.strip_prefix('[') {
        let Some((addr, port)) = inner.split_once(']') else {
            return false;
        };
        let addr = addr.split_once("%25").map_or(addr, |(a, _)| a);
        return addr.parse::<std::net::Ipv6Addr>().is_ok()
            && (port.is_empty()
                || port
                    .strip_prefix(':')
                    .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit())));
    }
    let (name, port) = match host.rsplit_once(':') {
        Some((n, p)) => (n, Some(p)),
        None => (host, None),
    };
    if port.is_some_and(|p| !p.bytes().all(|b| b.is_ascii_digit())) {
        return false;
    }
    valid_escapes(name)
        && name
            .chars()
            .all(|c| !c.is_ascii() || c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=%".contains(c))
}

/// Go's `mail.ParseAddress`, approximated: `local@domain` or `Name <local@domain>`, the
/// local part a dot-atom or quoted string, the domain a dot-atom or `[literal]`.
fn is_email(s: &str) -> bool {
    let s = s.trim_matches([' ', '\t']);
    let addr = match (s.rfind('<'), s.strip_suffix('>')) {
        (Some(open), Some(inner)) => &inner[open + 1..],
        _ => s,
    };
    let Some((local, domain)) = addr.rsplit_once('@') else {
        return false;
    };
    let atext =
        |c: char| !c.is_ascii() || c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c);
    let dot_atom =
        |t: &str| !t.is_empty() && t.split('.').all(|a| !a.is_empty() && a.chars().all(atext));
    let local_ok = if local.len() >= 2 && local.starts_with('"') && local.ends_with('"') {
        true
    } else {
        dot_atom(local)
    };
    let domain_ok = if domain.starts_with('[') && domain.ends_with(']') {
        domain.len() >= 2
    } else {
        dot_atom(domain)
    };
    local_ok && domain_ok
}

// ---------------------------------------------------------------------------------------
// `pattern`: Go RE2 syntax through the `regex` crate.

thread_local! {
    /// Compiled patterns; CRDs reuse a handful, so the cache stays small.
    static PATTERNS: RefCell<HashMap<String, Result<Regex, String>>> = RefCell::new(HashMap::new());
}

fn compiled_pattern(pattern: &str) -> Result<Regex, String> {
    PATTERNS.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some(hit) = cache.get(pattern) {
            return hit.clone();
        }
        if cache.len() > 512 {
            cache.clear();
        }
        let compiled = Regex::new(&go_regex_to_rust(pattern)).map_err(|e| {
            // the first line of the crate's report is the closest to Go's short message
            e.to_string()
                .lines()
                .last()
                .unwrap_or("invalid regular expression")
                .trim()
                .to_string()
        });
        cache.insert(pattern.to_string(), compiled.clone());
        compiled
    })
}

/// Rewrites the Perl classes whose meaning differs: Go's `\d`, `\w`, `\s` and `\b` are
/// ASCII-only, the crate's are Unicode-aware. `\Q...\E` (Go only) becomes escaped text.
fn go_regex_to_rust(p: &str) -> String {
    let mut out = String::with_capacity(p.len() + 16);
    let mut chars = p.chars().peekable();
    let mut in_class = false;
    let mut class_start = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let Some(n) = chars.next() else {
                    out.push('\\');
                    break;
                };
                let (inside, outside) = match n {
                    'd' => ("0-9", "[0-9]"),
                    'D' => ("[^0-9]", "[^0-9]"),
                    'w' => ("0-9A-Za-z_", "[0-9A-Za-z_]"),
                    'W' => ("[^0-9A-Za-z_]", "[^0-9A-Za-z_]"),
                    's' => (r"\t\n\x0C\r ", r"[\t\n\x0C\r ]"),
                    'S' => (r"[^\t\n\x0C\r ]", r"[^\t\n\x0C\r ]"),
                    'b' if !in_class => ("", r"(?-u:\b)"),
                    'B' if !in_class => ("", r"(?-u:\B)"),
                    'Q' if !in_class => {
                        let mut literal = String::new();
                        while let Some(q) = chars.next() {
                            if q == '\\' && chars.peek() == Some(&'E') {
                                chars.next();
                                break;
                            }
                            literal.push(q);
                        }
                        out.push_str(&regex::escape(&literal));
                        class_start = false;
                        continue;
                    }
                    other => {
                        out.push('\\');
                        out.push(other);
                        class_start = false;
                        continue;
                    }
                };
                out.push_str(if in_class { inside } else { outside });
                class_start = false;
            }
            '[' if !in_class => {
                in_class = true;
                class_start = true;
                out.push('[');
                if chars.peek() == Some(&'^') {
                    chars.next();
                    out.push('^');
                }
            }
            '[' if chars.peek() == Some(&':') => {
                // a POSIX class such as [:alpha:] is copied whole
                out.push('[');
                for q in chars.by_ref() {
                    out.push(q);
                    if q == ']' {
                        break;
                    }
                }
                class_start = false;
            }
            '[' => {
                // a literal '[' inside a class (the crate would read a nested class)
                out.push_str(r"\[");
                class_start = false;
            }
            ']' if in_class && !class_start => {
                in_class = false;
                out.push(']');
            }
            ']' if in_class => {
                out.push_str(r"\]");
                class_start = false;
            }
            '&' | '~' | '-' if in_class && chars.peek() == Some(&c) => {
                // the crate reads "&&", "~~" and "--" inside classes as set operations
                out.push('\\');
                out.push(c);
                class_start = false;
            }
            other => {
                out.push(other);
                class_start = false;
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Pass 2: embedded resources (`schema/objectmeta.Validate`, not at the resource root).

fn child_path(path: Option<&str>, name: &str) -> String {
    match path {
        None => name.to_string(),
        Some(p) => format!("{p}.{name}"),
    }
}

fn key_path(path: Option<&str>, key: &str) -> String {
    format!("{}[{key}]", path.unwrap_or(""))
}

fn validate_embedded(s: &Value, x: &Value, path: Option<&str>, root: bool) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if !s.is_object() {
        return errs;
    }
    match x {
        Value::Object(map) => {
            if flag(s, "x-kubernetes-embedded-resource") {
                errs.extend(validate_embedded_resource(map, path));
            }
            for (k, v) in map {
                if root && k == "metadata" {
                    continue;
                }
                if let Some(prop) = property(s, k) {
                    errs.extend(validate_embedded(
                        prop,
                        v,
                        Some(&child_path(path, k)),
                        false,
                    ));
                } else if let Some(sub) = additional_schema(s) {
                    errs.extend(validate_embedded(sub, v, Some(&key_path(path, k)), false));
                }
            }
        }
        Value::Array(list) => {
            if let Some(item) = items(s) {
                for (i, v) in list.iter().enumerate() {
                    let p = format!("{}[{i}]", path.unwrap_or(""));
                    errs.extend(validate_embedded(item, v, Some(&p), false));
                }
            }
        }
        _ => {}
    }
    errs
}

fn validate_embedded_resource(map: &Map<String, Value>, path: Option<&str>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let api_version = child_path(path, "apiVersion");
    let kind = child_path(path, "kind");
    if !map.contains_key("apiVersion") {
        errs.push(FieldError::required(&api_version, "must not be empty"));
    }
    if !map.contains_key("kind") {
        errs.push(FieldError::required(&kind, "must not be empty"));
    }
    for (k, v) in map {
        match k.as_str() {
            "apiVersion" => match v.as_str() {
                None => errs.push(FieldError::invalid(
                    &api_version,
                    bad_value(v),
                    "must be a string",
                )),
                Some("") => errs.push(FieldError::invalid(&api_version, "", "must not be empty")),
                // schema.ParseGroupVersion: at most one slash
                Some(gv) if gv != "/" && gv.matches('/').count() > 1 => {
                    errs.push(FieldError::invalid(
                        &api_version,
                        gv,
                        format!("unexpected GroupVersion string: {gv}"),
                    ))
                }
                Some(_) => {}
            },
            "kind" => match v.as_str() {
                None => errs.push(FieldError::invalid(&kind, bad_value(v), "must be a string")),
                Some("") => errs.push(FieldError::invalid(&kind, "", "must not be empty")),
                Some(name) => {
                    let problems = dns1035_label(&name.to_lowercase());
                    if !problems.is_empty() {
                        errs.push(FieldError::invalid(
                            &kind,
                            name,
                            format!(
                                "may have mixed case, but should otherwise match: {}",
                                problems.join(",")
                            ),
                        ));
                    }
                }
            },
            "metadata" => errs.extend(validate_embedded_metadata(v, &child_path(path, "metadata"))),
            _ => {}
        }
    }
    errs
}

/// ObjectMeta validation of an embedded resource's metadata (names as path segments, a
/// placeholder name when none is set, as upstream), with paths moved under `prefix`.
fn validate_embedded_metadata(meta: &Value, prefix: &str) -> Vec<FieldError> {
    let mut meta = match meta {
        Value::Object(m) => m.clone(),
        Value::Null => Map::new(),
        other => {
            let message = format!(
                "json: cannot unmarshal {} into Go value of type v1.ObjectMeta",
                json_type(other)
            );
            return vec![FieldError::invalid(prefix, bad_value(other), message)];
        }
    };
    if meta
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .is_empty()
    {
        meta.insert("name".to_string(), Value::String("fakename".to_string()));
    }
    let namespaced = meta
        .get("namespace")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    let wrapper = serde_json::json!({ "metadata": Value::Object(meta) });
    validate_object_meta(&wrapper, namespaced, NameRule::PathSegment)
        .into_iter()
        .map(|mut e| {
            if let Some(rest) = e.field.strip_prefix("metadata") {
                e.field = format!("{prefix}{rest}");
            }
            e
        })
        .collect()
}

/// `IsDNS1035Label` messages.
fn dns1035_label(value: &str) -> Vec<String> {
    static LABEL: OnceLock<Option<Regex>> = OnceLock::new();
    let mut errs = Vec::new();
    if value.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    if !regex_match(&LABEL, r"^[a-z]([-a-z0-9]*[a-z0-9])?$", value) {
        errs.push("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')".to_string());
    }
    errs
}

// ---------------------------------------------------------------------------------------
// Pass 3: x-kubernetes-list-type set/map uniqueness (`schema/listtype`).

fn validate_list_types(s: &Value, x: &Value, path: Option<&str>, root: bool) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if !s.is_object() {
        return errs;
    }
    match x {
        Value::Object(map) => {
            // upstream walks additionalProperties for every key, then the properties
            if let Some(sub) = additional_schema(s) {
                for (k, v) in map {
                    errs.extend(validate_list_types(sub, v, Some(&key_path(path, k)), false));
                }
            }
            for (k, v) in map {
                if root && k == "metadata" {
                    continue;
                }
                if let Some(prop) = property(s, k) {
                    errs.extend(validate_list_types(
                        prop,
                        v,
                        Some(&child_path(path, k)),
                        false,
                    ));
                }
            }
        }
        Value::Array(list) => {
            let p = path.unwrap_or("");
            match str_keyword(s, "x-kubernetes-list-type") {
                "set" => {
                    for i in non_unique(list.iter().map(ListKey::Value)) {
                        errs.push(FieldError::duplicate(
                            format!("{p}[{i}]"),
                            bad_value(&list[i]),
                        ));
                    }
                }
                "map" => errs.extend(validate_list_map(s, list, p)),
                _ => {}
            }
            if let Some(item) = items(s) {
                for (i, v) in list.iter().enumerate() {
                    errs.extend(validate_list_types(
                        item,
                        v,
                        Some(&format!("{p}[{i}]")),
                        false,
                    ));
                }
            }
        }
        _ => {}
    }
    errs
}

/// A list-set element or list-map key; `Unspecified` is upstream's marker for an item
/// without the key (or a null item), distinct from an explicit null.
#[derive(PartialEq)]
enum ListKey<'a> {
    Value(&'a Value),
    Owned(Value),
    Unspecified,
}

/// The index of each value's second appearance (upstream reports only that one).
fn non_unique<'a>(keys: impl Iterator<Item = ListKey<'a>>) -> Vec<usize> {
    let keys: Vec<ListKey<'a>> = keys.collect();
    let mut out = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let before = keys[..i].iter().filter(|x| *x == k).count();
        if before == 1 {
            out.push(i);
        }
    }
    out
}

fn validate_list_map(s: &Value, list: &[Value], p: &str) -> Vec<FieldError> {
    if let Some((i, x)) = list
        .iter()
        .enumerate()
        .find(|(_, x)| !x.is_null() && !x.is_object())
    {
        return vec![FieldError::invalid(
            format!("{p}[{i}]"),
            bad_value(x),
            "must be an object for an array of list-type map",
        )];
    }
    if list.len() <= 1 {
        return Vec::new();
    }
    let key_fields: Vec<&str> = s
        .get("x-kubernetes-list-map-keys")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if key_fields.len() == 1 {
        let field = key_fields[0];
        let keys: Vec<Option<&Value>> = list.iter().map(|x| x.get(field)).collect();
        let dups = non_unique(keys.iter().map(|k| match k {
            Some(v) => ListKey::Value(v),
            None => ListKey::Unspecified,
        }));
        return dups
            .into_iter()
            .map(|i| {
                let mut key = Map::new();
                if let Some(v) = keys[i] {
                    key.insert(field.to_string(), v.clone());
                }
                FieldError::duplicate(format!("{p}[{i}]"), bad_value(&Value::Object(key)))
            })
            .collect();
    }
    let keys: Vec<Value> = list
        .iter()
        .map(|x| {
            let mut key = Map::new();
            for f in &key_fields {
                if let Some(v) = x.get(*f) {
                    key.insert((*f).to_string(), v.clone());
                }
            }
            Value::Object(key)
        })
        .collect();
    non_unique(keys.iter().map(|k| ListKey::Owned(k.clone())))
        .into_iter()
        .map(|i| FieldError::duplicate(format!("{p}[{i}]"), bad_value(&keys[i])))
        .collect()
}

// ---------------------------------------------------------------------------------------
// Pruning (`schema/pruning`).

fn push_key(path: &mut String, key: &str) {
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(key);
}

const META_FIELDS: [&str; 3] = ["apiVersion", "kind", "metadata"];

fn prune_node(
    x: &mut Value,
    s: Option<&Value>,
    embedded_root: bool,
    path: &mut String,
    unknown: &mut Vec<String>,
) {
    let s = s.filter(|s| s.is_object());
    if let Some(schema) = s.filter(|s| flag(s, "x-kubernetes-preserve-unknown-fields")) {
        skip_prune(x, schema, embedded_root, path, unknown);
        return;
    }
    let len = path.len();
    match x {
        Value::Object(map) => {
            let Some(schema) = s else {
                for k in map.keys() {
                    push_key(path, k);
                    unknown.push(path.clone());
                    path.truncate(len);
                }
                map.clear();
                return;
            };
            let embedded = embedded_root || flag(schema, "x-kubernetes-embedded-resource");
            let mut removed = Vec::new();
            for (k, v) in map.iter_mut() {
                if embedded && META_FIELDS.contains(&k.as_str()) {
                    continue;
                }
                if let Some(prop) = property(schema, k) {
                    push_key(path, k);
                    prune_node(v, Some(prop), false, path, unknown);
                    path.truncate(len);
                } else if has_additional(schema) {
                    push_key(path, k);
                    prune_node(v, additional_schema(schema), false, path, unknown);
                    path.truncate(len);
                } else {
                    if !META_FIELDS.contains(&k.as_str()) || !path.is_empty() {
                        push_key(path, k);
                        unknown.push(path.clone());
                        path.truncate(len);
                    }
                    removed.push(k.clone());
                }
            }
            for k in removed {
                map.remove(&k);
            }
        }
        Value::Array(list) => {
            let item = s.and_then(items);
            for (i, v) in list.iter_mut().enumerate() {
                path.push_str(&format!("[{i}]"));
                prune_node(v, item, false, path, unknown);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

/// Below `x-kubernetes-preserve-unknown-fields`: nothing is removed here, but declared
/// properties (and additionalProperties) are still pruned normally.
fn skip_prune(
    x: &mut Value,
    s: &Value,
    embedded_root: bool,
    path: &mut String,
    unknown: &mut Vec<String>,
) {
    let len = path.len();
    match x {
        Value::Object(map) => {
            let embedded = embedded_root || flag(s, "x-kubernetes-embedded-resource");
            for (k, v) in map.iter_mut() {
                if embedded && META_FIELDS.contains(&k.as_str()) {
                    continue;
                }
                if let Some(prop) = property(s, k) {
                    push_key(path, k);
                    prune_node(v, Some(prop), false, path, unknown);
                    path.truncate(len);
                } else if has_additional(s) {
                    push_key(path, k);
                    prune_node(v, additional_schema(s), false, path, unknown);
                    path.truncate(len);
                }
            }
        }
        Value::Array(list) => {
            if let Some(item) = items(s) {
                for (i, v) in list.iter_mut().enumerate() {
                    path.push_str(&format!("[{i}]"));
                    skip_prune(v, item, false, path, unknown);
                    path.truncate(len);
                }
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------
// Null dropping and defaulting (`schema/defaulting`).

/// The schema's `default`, unless absent or null (upstream: `Default.Object == nil`).
fn default_of(s: &Value) -> Option<&Value> {
    s.get("default").filter(|d| !d.is_null())
}

fn field_schema<'a>(s: Option<&'a Value>, field: &str) -> Option<&'a Value> {
    let s = s?;
    property(s, field).or_else(|| additional_schema(s))
}

/// `PruneNonNullableNullsWithoutDefaults`: object fields that are null, not nullable and
/// have no default are removed (array items are left alone).
fn drop_non_nullable_nulls(x: &mut Value, s: Option<&Value>) {
    match x {
        Value::Object(map) => {
            map.retain(|k, v| {
                let schema = field_schema(s, k);
                !(v.is_null()
                    && schema.is_some_and(|sc| !flag(sc, "nullable") && default_of(sc).is_none()))
            });
            for (k, v) in map.iter_mut() {
                drop_non_nullable_nulls(v, field_schema(s, k));
            }
        }
        Value::Array(list) => {
            let item = s.and_then(items);
            for v in list {
                drop_non_nullable_nulls(v, item);
            }
        }
        _ => {}
    }
}

fn is_non_nullable_null(x: Option<&Value>, s: Option<&Value>) -> bool {
    x.is_none_or(Value::is_null) && s.is_some_and(|s| !flag(s, "nullable"))
}

/// The structural `Default` algorithm.
fn default_node(x: &mut Value, s: Option<&Value>) {
    let Some(s) = s.filter(|s| s.is_object()) else {
        return;
    };
    match x {
        Value::Object(map) => {
            if let Some(props) = properties(s) {
                for (k, prop) in props {
                    let Some(default) = default_of(prop) else {
                        continue;
                    };
                    let current = map.get(k);
                    if current.is_none() || is_non_nullable_null(current, Some(prop)) {
                        map.insert(k.clone(), default.clone());
                    }
                }
            }
            let ap = additional_schema(s);
            for (k, v) in map.iter_mut() {
                if let Some(prop) = property(s, k) {
                    default_node(v, Some(prop));
                } else if has_additional(s) {
                    if v.is_null() && is_non_nullable_null(Some(v), ap) {
                        *v = ap.and_then(default_of).cloned().unwrap_or(Value::Null);
                    }
                    default_node(v, ap);
                }
            }
        }
        Value::Array(list) => {
            let item = items(s);
            for v in list {
                if v.is_null() && is_non_nullable_null(Some(v), item) {
                    *v = item.and_then(default_of).cloned().unwrap_or(Value::Null);
                }
                default_node(v, item);
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use apimachinery::errors::{StatusError, aggregate_message};
    use apimachinery::resources::GroupKind;
    use serde_json::json;

    /// The Status message upstream would answer a create with.
    fn message(schema: Value, object: Value) -> String {
        let errors = validate(&schema, &object);
        StatusError::invalid(
            &GroupKind::new("stable.example.com", "CronTab"),
            "ct",
            &errors,
        )
        .0
        .message
    }

    const PREFIX: &str = "CronTab.stable.example.com \"ct\" is invalid: ";

    /// A root schema with `spec` holding the given property schemas.
    fn spec_schema(props: Value) -> Value {
        json!({
            "type": "object",
            "properties": {
                "metadata": {"type": "object"},
                "spec": {"type": "object", "properties": props}
            }
        })
    }

    fn cr(spec: Value) -> Value {
        json!({"apiVersion": "stable.example.com/v1", "kind": "CronTab",
               "metadata": {"name": "ct"}, "spec": spec})
    }

    /// `expected` is the aggregated error text; empty means no errors.
    fn check(props: Value, spec: Value, expected: &str) {
        if expected.is_empty() {
            let errors = validate(&spec_schema(props), &cr(spec));
            assert!(errors.is_empty(), "{errors:?}");
            return;
        }
        assert_eq!(
            message(spec_schema(props), cr(spec)),
            format!("{PREFIX}{expected}")
        );
    }

    #[test]
    fn valid_object_has_no_errors() {
        let schema = spec_schema(json!({
            "replicas": {"type": "integer", "minimum": 1, "maximum": 10},
            "image": {"type": "string", "pattern": "^[a-z]+$"},
            "tags": {"type": "array", "items": {"type": "string"}}
        }));
        let object = cr(json!({"replicas": 3, "image": "nginx", "tags": ["a", "b"]}));
        assert!(validate(&schema, &object).is_empty());
    }

    #[test]
    fn type_mismatch_reports_the_actual_json_type() {
        check(
            json!({"replicas": {"type": "integer"}}),
            json!({"replicas": "string"}),
            r#"spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string""#,
        );
        check(
            json!({"n": {"type": "integer"}}),
            json!({"n": 1.5}),
            r#"spec.n: Invalid value: "number": spec.n in body must be of type integer: "number""#,
        );
        check(
            json!({"o": {"type": "object"}}),
            json!({"o": [1]}),
            r#"spec.o: Invalid value: "array": spec.o in body must be of type object: "array""#,
        );
        // an integral float is an integer, an integer a number
        check(
            json!({"n": {"type": "integer"}, "f": {"type": "number"}}),
            json!({"n": 2.0, "f": 2}),
            "",
        );
        let errors = validate(
            &spec_schema(json!({"b": {"type": "boolean"}})),
            &cr(json!({"b": "x"})),
        );
        assert_eq!(errors[0].to_cause().cause_type, "FieldValueTypeInvalid");
    }

    #[test]
    fn null_is_a_type_error_unless_nullable() {
        check(
            json!({"s": {"type": "string"}}),
            json!({"s": null}),
            r#"spec.s: Invalid value: "null": spec.s in body must be of type string: "null""#,
        );
        check(
            json!({"s": {"type": "string", "nullable": true}}),
            json!({"s": null}),
            "",
        );
    }

    #[test]
    fn int_or_string() {
        let props = json!({"port": {"x-kubernetes-int-or-string": true}});
        check(props.clone(), json!({"port": 80}), "");
        check(props.clone(), json!({"port": "http"}), "");
        check(
            props,
            json!({"port": true}),
            r#"spec.port: Invalid value: "boolean": spec.port in body must be of type integer,string: "boolean""#,
        );
    }

    #[test]
    fn formats() {
        let cases = [
            ("date-time", "abc", false),
            ("date-time", "2024-01-02T03:04:05Z", true),
            ("date-time", "2024-01-02T03:04:05.123+01:00", true),
            ("date-time", "2024-02-30T03:04:05Z", false),
            ("date", "2024-02-29", true),
            ("date", "2023-02-29", false),
            ("byte", "aGVsbG8=", true),
            ("byte", "not base64!", false),
            ("uuid", "123e4567-e89b-12d3-a456-426614174000", true),
            ("uuid", "123", false),
            ("hostname", "example.com", true),
            ("hostname", "my-host", false),
            ("hostname", "-bad.com", false),
            ("ipv4", "10.0.0.1", true),
            ("ipv4", "10.0.0", false),
            ("ipv6", "::1", true),
            ("ipv6", "10.0.0.1", false),
            ("cidr", "10.0.0.0/8", true),
            ("cidr", "10.0.0.0/33", false),
            ("duration", "1h30m", true),
            ("duration", "3 days", true),
            ("duration", "soon", false),
            ("email", "a@example.com", true),
            ("email", "not-an-email", false),
            ("uri", "https://example.com/x?y=1", true),
            ("uri", "relative/path", false),
            ("mac", "01:23:45:67:89:ab", true),
            ("mac", "01:23:45", false),
            ("int32", "anything", true),
            ("unknown-format", "anything", true),
        ];
        for (format, value, ok) in cases {
            let props = json!({"v": {"type": "string", "format": format}});
            let errors = validate(&spec_schema(props), &cr(json!({"v": value})));
            if ok {
                assert!(errors.is_empty(), "{format} {value}: {errors:?}");
                continue;
            }
            let expected = format!(
                r#"spec.v: Invalid value: "{value}": spec.v in body must be of type {format}: "{value}""#
            );
            assert_eq!(aggregate_message(&errors).unwrap_or_default(), expected);
        }
    }

    #[test]
    fn enum_values() {
        check(
            json!({"mode": {"type": "string", "enum": ["a", "b"]}}),
            json!({"mode": "x"}),
            r#"spec.mode: Unsupported value: "x": supported values: "a", "b""#,
        );
        check(
            json!({"n": {"type": "integer", "enum": [1, 2]}}),
            json!({"n": 3}),
            r#"spec.n: Unsupported value: 3: supported values: "1", "2""#,
        );
        check(
            json!({"n": {"type": "number", "enum": [1, 2]}}),
            json!({"n": 2.0}),
            "",
        );
    }

    #[test]
    fn required_properties() {
        check(
            json!({"a": {"type": "object", "required": ["x"], "properties": {"x": {"type": "string"}}}}),
            json!({"a": {}}),
            "spec.a.x: Required value",
        );
        let schema = json!({"type": "object", "required": ["spec"],
                            "properties": {"spec": {"type": "object"}}});
        assert_eq!(
            message(
                schema,
                json!({"apiVersion": "v", "kind": "K", "metadata": {}})
            ),
            format!("{PREFIX}spec: Required value")
        );
    }

    #[test]
    fn numeric_bounds() {
        check(
            json!({"n": {"type": "integer", "maximum": 10}}),
            json!({"n": 15}),
            "spec.n: Invalid value: 15: spec.n in body should be less than or equal to 10",
        );
        check(
            json!({"n": {"type": "integer", "maximum": 10, "exclusiveMaximum": true}}),
            json!({"n": 10}),
            "spec.n: Invalid value: 10: spec.n in body should be less than 10",
        );
        check(
            json!({"n": {"type": "number", "minimum": 1.5}}),
            json!({"n": 1.25}),
            "spec.n: Invalid value: 1.25: spec.n in body should be greater than or equal to 1.5",
        );
        check(
            json!({"n": {"type": "integer", "minimum": 0, "exclusiveMinimum": true}}),
            json!({"n": 0}),
            "spec.n: Invalid value: 0: spec.n in body should be greater than 0",
        );
        // multipleOf, then minimum, then maximum
        check(
            json!({"n": {"type": "integer", "multipleOf": 5, "maximum": 3}}),
            json!({"n": 7}),
            "[spec.n: Invalid value: 7: spec.n in body should be a multiple of 5, spec.n: Invalid value: 7: spec.n in body should be less than or equal to 3]",
        );
        check(
            json!({"n": {"type": "number", "multipleOf": 0.5}}),
            json!({"n": 1.3}),
            "spec.n: Invalid value: 1.3: spec.n in body should be a multiple of 0.5",
        );
        check(
            json!({"n": {"type": "number", "multipleOf": 0.1}}),
            json!({"n": 0.3}),
            "",
        );
    }

    #[test]
    fn string_lengths_and_pattern() {
        check(
            json!({"s": {"type": "string", "maxLength": 3}}),
            json!({"s": "abcd"}),
            "spec.s: Too long: may not be more than 3 bytes",
        );
        // characters, not bytes
        check(
            json!({"s": {"type": "string", "maxLength": 3}}),
            json!({"s": "héé"}),
            "",
        );
        check(
            json!({"s": {"type": "string", "minLength": 2}}),
            json!({"s": "a"}),
            r#"spec.s: Invalid value: "a": spec.s in body should be at least 2 chars long"#,
        );
        check(
            json!({"s": {"type": "string", "pattern": "^\\d+$"}}),
            json!({"s": "12a"}),
            r#"spec.s: Invalid value: "12a": spec.s in body should match '^\d+$'"#,
        );
        // Go's \d is ASCII only
        check(
            json!({"s": {"type": "string", "pattern": "^\\d+$"}}),
            json!({"s": "١٢"}),
            r#"spec.s: Invalid value: "١٢": spec.s in body should match '^\d+$'"#,
        );
        check(
            json!({"s": {"type": "string", "pattern": "[a-z]"}}),
            json!({"s": "1a1"}),
            "",
        );
    }

    #[test]
    fn array_sizes_and_uniqueness() {
        check(
            json!({"l": {"type": "array", "maxItems": 2, "items": {"type": "integer"}}}),
            json!({"l": [1, 2, 3]}),
            "spec.l: Too many: 3: must have at most 2 items",
        );
        check(
            json!({"l": {"type": "array", "minItems": 2, "items": {"type": "integer"}}}),
            json!({"l": [1]}),
            "spec.l: Invalid value: 1: spec.l in body should have at least 2 items",
        );
        check(
            json!({"l": {"type": "array", "uniqueItems": true, "items": {"type": "integer"}}}),
            json!({"l": [1, 1]}),
            r#"spec.l: Invalid value: "": spec.l in body shouldn't contain duplicates"#,
        );
        check(
            json!({"l": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}}}),
            json!({"l": [{"name": 1}]}),
            r#"spec.l[0].name: Invalid value: "integer": spec.l[0].name in body must be of type string: "integer""#,
        );
    }

    #[test]
    fn property_counts() {
        check(
            json!({"m": {"type": "object", "maxProperties": 1, "additionalProperties": {"type": "string"}}}),
            json!({"m": {"a": "x", "b": "y"}}),
            "spec.m: Too many: 2: must have at most 1 items",
        );
        check(
            json!({"m": {"type": "object", "minProperties": 2, "additionalProperties": {"type": "string"}}}),
            json!({"m": {"a": "x"}}),
            "spec.m: Invalid value: 1: spec.m in body should have at least 2 properties",
        );
    }

    #[test]
    fn additional_properties() {
        check(
            json!({"labels": {"type": "object", "additionalProperties": {"type": "string"}}}),
            json!({"labels": {"my.key": 5}}),
            r#"spec.labels.my.key: Invalid value: "integer": spec.labels.my.key in body must be of type string: "integer""#,
        );
        check(
            json!({"o": {"type": "object", "additionalProperties": false}}),
            json!({"o": {"x": 1}}),
            r#"spec.o: Invalid value: "x": spec.o.x in body is a forbidden property"#,
        );
    }

    #[test]
    fn junctors() {
        check(
            json!({"v": {"anyOf": [{"type": "integer"}, {"type": "string"}]}}),
            json!({"v": true}),
            r#"[<nil>: Invalid value: "": "spec.v" must validate at least one schema (anyOf), spec.v: Invalid value: "boolean": spec.v in body must be of type integer: "boolean"]"#,
        );
        check(
            json!({"v": {"type": "integer", "oneOf": [{"minimum": 0}, {"maximum": 10}]}}),
            json!({"v": 5}),
            r#"<nil>: Invalid value: "": "spec.v" must validate one and only one schema (oneOf). Found 2 valid alternatives"#,
        );
        check(
            json!({"v": {"type": "integer", "allOf": [{"minimum": 10}, {"maximum": 0}]}}),
            json!({"v": 5}),
            r#"[spec.v: Invalid value: 5: spec.v in body should be greater than or equal to 10, spec.v: Invalid value: 5: spec.v in body should be less than or equal to 0, <nil>: Invalid value: "": "spec.v" must validate all the schemas (allOf). None validated]"#,
        );
        check(
            json!({"v": {"type": "string", "not": {"enum": ["x"]}}}),
            json!({"v": "x"}),
            r#"<nil>: Invalid value: "": "spec.v" must not validate the schema (not)"#,
        );
    }

    #[test]
    fn metadata_schema_is_ignored() {
        let schema = json!({"type": "object", "properties": {
            "metadata": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 1}}}
        }});
        assert!(validate(&schema, &cr(json!({}))).is_empty());
    }

    #[test]
    fn embedded_resources_need_api_version_and_kind() {
        let props = json!({"template": {"type": "object", "x-kubernetes-embedded-resource": true,
                                         "x-kubernetes-preserve-unknown-fields": true}});
        check(
            props.clone(),
            json!({"template": {}}),
            "[spec.template.apiVersion: Required value: must not be empty, spec.template.kind: Required value: must not be empty]",
        );
        check(
            props.clone(),
            json!({"template": {"apiVersion": 1, "kind": "Pod"}}),
            "spec.template.apiVersion: Invalid value: 1: must be a string",
        );
        check(
            props.clone(),
            json!({"template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a b"}}}),
            "",
        );
        check(
            props,
            json!({"template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"labels": {"a": "b c"}}}}),
            "spec.template.metadata.labels: Invalid value: \"b c\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
        );
    }

    #[test]
    fn list_type_set_and_map_duplicates() {
        check(
            json!({"l": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}}}),
            json!({"l": ["a", "b", "a", "a"]}),
            r#"spec.l[2]: Duplicate value: "a""#,
        );
        check(
            json!({"l": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                          "items": {"type": "object", "properties": {"name": {"type": "string"}}}}}),
            json!({"l": [{"name": "a"}, {"name": "a"}]}),
            r#"spec.l[1]: Duplicate value: map[string]interface {}{"name":"a"}"#,
        );
        check(
            json!({"l": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["k", "p"],
                          "items": {"type": "object", "properties": {"k": {"type": "string"}, "p": {"type": "integer"}}}}}),
            json!({"l": [{"k": "a", "p": 1}, {"k": "a", "p": 2}, {"k": "a", "p": 1}]}),
            r#"spec.l[2]: Duplicate value: map[string]interface {}{"k":"a", "p":1}"#,
        );
    }

    #[test]
    fn malformed_schemas_do_not_panic() {
        for schema in [
            json!(null),
            json!("x"),
            json!({"type": 5, "properties": [], "items": "x", "required": "spec", "enum": {}}),
            json!({"properties": {"spec": {"pattern": "(", "type": "string", "maxLength": "3"}}}),
            json!({"properties": {"spec": {"anyOf": "x", "multipleOf": 0, "type": "integer"}}}),
        ] {
            let _ = validate(&schema, &cr(json!("abc")));
            let _ = validate(&schema, &cr(json!(5)));
            let mut o = cr(json!({"a": null}));
            apply_defaults(&schema, &mut o);
            let _ = prune(&schema, &mut o);
        }
    }

    #[test]
    fn prune_removes_undeclared_fields() {
        let schema = json!({"type": "object", "properties": {
            "spec": {"type": "object", "properties": {
                "a": {"type": "string"},
                "list": {"type": "array", "items": {"type": "object", "properties": {"x": {"type": "string"}}}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                         "properties": {"inner": {"type": "object", "properties": {}}}},
                "tpl": {"type": "object", "x-kubernetes-embedded-resource": true,
                        "properties": {"spec": {"type": "object"}}},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}}
            }}
        }});
        let mut object = json!({
            "apiVersion": "stable.example.com/v1", "kind": "CronTab", "metadata": {"name": "ct"},
            "status": {"x": 1},
            "spec": {
                "a": "keep", "foo": 1,
                "list": [{"x": "y", "bar": 2}],
                "free": {"anything": {"goes": true}, "inner": {"dropped": 1}},
                "tpl": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "other": 1},
                "labels": {"k": "v"}
            }
        });
        let pruned = prune(&schema, &mut object);
        assert_eq!(
            pruned,
            vec![
                "spec.foo",
                "spec.free.inner.dropped",
                "spec.list[0].bar",
                "spec.tpl.other",
                "status"
            ]
        );
        assert_eq!(
            object,
            json!({
                "apiVersion": "stable.example.com/v1", "kind": "CronTab", "metadata": {"name": "ct"},
                "spec": {
                    "a": "keep",
                    "list": [{"x": "y"}],
                    "free": {"anything": {"goes": true}, "inner": {}},
                    "tpl": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}},
                    "labels": {"k": "v"}
                }
            })
        );
    }

    #[test]
    fn defaults_fill_missing_and_null_fields() {
        let schema = json!({"type": "object", "properties": {
            "spec": {"type": "object", "default": {}, "properties": {
                "replicas": {"type": "integer", "default": 1},
                "mode": {"type": "string", "default": "auto"},
                "opt": {"type": "string"},
                "keepNull": {"type": "string", "nullable": true},
                "items": {"type": "array", "items": {"type": "object", "properties": {
                    "port": {"type": "integer", "default": 80}
                }}},
                "map": {"type": "object", "additionalProperties": {
                    "type": "object", "properties": {"w": {"type": "integer", "default": 5}}
                }}
            }}
        }});
        let mut object = json!({"spec": {
            "mode": null, "opt": null, "keepNull": null,
            "items": [{}, {"port": 8080}],
            "map": {"a": {}}
        }});
        apply_defaults(&schema, &mut object);
        assert_eq!(
            object,
            json!({"spec": {
                "replicas": 1, "mode": "auto", "keepNull": null,
                "items": [{"port": 80}, {"port": 8080}],
                "map": {"a": {"w": 5}}
            }})
        );
        // a missing object with a default is created, then defaulted inside
        let mut empty = json!({});
        apply_defaults(&schema, &mut empty);
        assert_eq!(empty, json!({"spec": {"replicas": 1, "mode": "auto"}}));
    }
}
