//! The walk from a decoded protobuf message to the JSON upstream's `encoding/json` writes
//! for the same Go struct: fields under their JSON names, embedded structs flattened,
//! special types in their `MarshalJSON` forms, and the zero scalars a Go encoder wrote
//! for fields nobody set left out again (see [`super::fields`]).

use base64::Engine;
use protobuf::MessageDyn;
use protobuf::reflect::{MessageDescriptor, ReflectFieldRef, ReflectValueRef};
use serde_json::{Map, Number, Value};

use super::envelope::{self, Defaults, MAGIC};
use super::fields::{self, Special};

/// Why a decoded message has no JSON form.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WalkError {
    /// A raw JSON field (`RawExtension`, apiextensions `JSON`, `FieldsV1`) is not JSON.
    #[error("invalid JSON in {message}: {source}")]
    Json {
        /// The message holding it.
        message: String,
        /// What the JSON parser said.
        source: serde_json::Error,
    },
    /// An object embedded as protobuf in a `RawExtension` could not be decoded.
    #[error("{0}")]
    Nested(Box<super::DecodeError>),
    /// A time whose year RFC 3339 cannot write, as Go's `Time.MarshalJSON` refuses it.
    #[error("Time.MarshalJSON: year outside of range [0,9999]")]
    YearOutOfRange,
}

/// One converted value: absent (a nil pointer's worth), a zero scalar (dropped unless
/// its field keeps zeros), or anything else.
enum Converted {
    Absent,
    Zero(Value),
    Present(Value),
}

impl Converted {
    /// The value inside a list or map, where nothing is dropped.
    fn into_value(self) -> Value {
        match self {
            Converted::Absent => Value::Null,
            Converted::Zero(v) | Converted::Present(v) => v,
        }
    }
}

/// The JSON object of a message that is an object of fields, `depth` messages deep.
pub(crate) fn object(
    message: &dyn MessageDyn,
    depth: u32,
) -> Result<Map<String, Value>, WalkError> {
    let descriptor = message.descriptor_dyn();
    let name = fields::versionless(descriptor.full_name());
    let mut out = Map::new();
    for field in descriptor.fields() {
        let proto_name = field.name();
        match field.get_reflect(message) {
            ReflectFieldRef::Optional(optional) => {
                let Some(value) = optional.value() else {
                    continue;
                };
                if fields::is_inlined(&name, proto_name) {
                    if let ReflectValueRef::Message(inner) = value {
                        out.extend(object(&*inner, depth + 1)?);
                    }
                    continue;
                }
                let json = match convert(value, depth)? {
                    Converted::Absent => continue,
                    Converted::Zero(_) if !fields::keeps_zero(&name, proto_name) => continue,
                    Converted::Zero(json) | Converted::Present(json) => json,
                };
                out.insert(fields::json_name(&name, proto_name).into_owned(), json);
            }
            ReflectFieldRef::Repeated(list) => {
                if list.is_empty() {
                    continue;
                }
                let items = list
                    .into_iter()
                    .map(|v| convert(v, depth).map(Converted::into_value))
                    .collect::<Result<Vec<_>, _>>()?;
                out.insert(
                    fields::json_name(&name, proto_name).into_owned(),
                    Value::Array(items),
                );
            }
            ReflectFieldRef::Map(map) => {
                if map.is_empty() {
                    continue;
                }
                let mut entries = Map::new();
                for (key, value) in &map {
                    // the entry is a message of its own, the value inside it
                    entries.insert(map_key(key), convert(value, depth + 1)?.into_value());
                }
                out.insert(
                    fields::json_name(&name, proto_name).into_owned(),
                    Value::Object(entries),
                );
            }
        }
    }
    Ok(out)
}

/// The JSON property names `descriptor`'s object has, embedded structs flattened; `None`
/// for messages with a special JSON form.
pub(crate) fn property_names(descriptor: &MessageDescriptor) -> Option<Vec<String>> {
    let name = fields::versionless(descriptor.full_name());
    if fields::special(&name).is_some() {
        return None;
    }
    let mut names = Vec::new();
    for field in descriptor.fields() {
        if fields::is_inlined(&name, field.name()) {
            if let protobuf::reflect::RuntimeFieldType::Singular(
                protobuf::reflect::RuntimeType::Message(inner),
            ) = field.runtime_field_type()
            {
                names.extend(property_names(&inner).unwrap_or_default());
            }
            continue;
        }
        names.push(fields::json_name(&name, field.name()).into_owned());
    }
    Some(names)
}

/// Map keys are strings in every Kubernetes map; other scalars are written as Go would.
fn map_key(key: ReflectValueRef<'_>) -> String {
    match key {
        ReflectValueRef::String(s) => s.to_owned(),
        other => match scalar(other) {
            Converted::Zero(Value::String(s)) | Converted::Present(Value::String(s)) => s,
            Converted::Zero(v) | Converted::Present(v) => v.to_string(),
            Converted::Absent => String::new(),
        },
    }
}

/// A field's value, in a message `depth` messages deep.
fn convert(value: ReflectValueRef<'_>, depth: u32) -> Result<Converted, WalkError> {
    match value {
        ReflectValueRef::Message(message) => convert_message(&*message, depth + 1),
        other => Ok(scalar(other)),
    }
}

fn scalar(value: ReflectValueRef<'_>) -> Converted {
    let (json, zero) = match value {
        ReflectValueRef::U32(n) => (Value::from(n), n == 0),
        ReflectValueRef::U64(n) => (Value::from(n), n == 0),
        ReflectValueRef::I32(n) => (Value::from(n), n == 0),
        ReflectValueRef::I64(n) => (Value::from(n), n == 0),
        ReflectValueRef::F32(n) => (float(f64::from(n)), n == 0.0),
        ReflectValueRef::F64(n) => (float(n), n == 0.0),
        ReflectValueRef::Bool(b) => (Value::Bool(b), !b),
        ReflectValueRef::String(s) => (Value::String(s.to_owned()), s.is_empty()),
        // Go's `[]byte` is base64 in JSON
        ReflectValueRef::Bytes(b) => (
            Value::String(base64::engine::general_purpose::STANDARD.encode(b)),
            b.is_empty(),
        ),
        // Kubernetes protos have no enums (Go enums are strings); keep the number
        ReflectValueRef::Enum(_, n) => (Value::from(n), n == 0),
        ReflectValueRef::Message(_) => return Converted::Absent,
    };
    if zero {
        Converted::Zero(json)
    } else {
        Converted::Present(json)
    }
}

/// A float as Go writes it: integral values without a fraction (`10`, not `10.0`).
fn float(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        return Value::from(n as i64);
    }
    Number::from_f64(n).map_or(Value::Null, Value::Number)
}

/// A message `depth` messages deep.
fn convert_message(message: &dyn MessageDyn, depth: u32) -> Result<Converted, WalkError> {
    let descriptor = message.descriptor_dyn();
    let name = fields::versionless(descriptor.full_name());
    let Some(special) = fields::special(&name) else {
        return Ok(Converted::Present(Value::Object(object(message, depth)?)));
    };
    let get = |field: &str| {
        descriptor
            .field_by_name(field)
            .and_then(|f| f.get_singular(message))
    };
    let schema = || -> Result<Option<Value>, WalkError> {
        match get("schema") {
            Some(ReflectValueRef::Message(schema)) => {
                Ok(Some(Value::Object(object(&*schema, depth + 1)?)))
            }
            _ => Ok(None),
        }
    };
    Ok(match special {
        Special::Time | Special::MicroTime => {
            let seconds = get("seconds").and_then(|v| v.to_i64());
            let nanos = get("nanos").and_then(|v| v.to_i32());
            if seconds.is_none() && nanos.is_none() {
                // Go writes a zero time as an empty message: JSON null, left out
                return Ok(Converted::Absent);
            }
            let micros = (special == Special::MicroTime)
                .then(|| nanos.unwrap_or(0).clamp(0, 999_999_999) / 1000);
            Converted::Present(Value::String(rfc3339(seconds.unwrap_or(0), micros)?))
        }
        Special::Duration => {
            let nanos = get("duration").and_then(|v| v.to_i64()).unwrap_or(0);
            Converted::Present(Value::String(go_duration(nanos)))
        }
        Special::Quantity => match get("string") {
            Some(ReflectValueRef::String(s)) if !s.is_empty() => {
                Converted::Present(Value::String(s.to_owned()))
            }
            _ => Converted::Absent,
        },
        Special::IntOrString => {
            let is_string = get("type").and_then(|v| v.to_i64()) == Some(1);
            if is_string {
                match get("strVal") {
                    Some(ReflectValueRef::String(s)) if !s.is_empty() => {
                        Converted::Present(Value::String(s.to_owned()))
                    }
                    _ => Converted::Zero(Value::String(String::new())),
                }
            } else {
                match get("intVal").and_then(|v| v.to_i32()).unwrap_or(0) {
                    0 => Converted::Zero(Value::from(0)),
                    n => Converted::Present(Value::from(n)),
                }
            }
        }
        Special::RawExtension | Special::RawJson => {
            // `raw` (`Raw` in FieldsV1) is the only field
            let raw = descriptor
                .field_by_number(1)
                .and_then(|f| f.get_singular(message));
            let Some(ReflectValueRef::Bytes(raw)) = raw else {
                return Ok(Converted::Absent);
            };
            if raw.is_empty() {
                return Ok(Converted::Absent);
            }
            if special == Special::RawExtension && raw.starts_with(MAGIC) {
                let nested = envelope::decode_at(raw, Defaults::default(), depth + 1)
                    .map_err(|e| WalkError::Nested(Box::new(e)))?;
                return Ok(Converted::Present(nested));
            }
            let json = serde_json::from_slice(raw).map_err(|source| WalkError::Json {
                message: descriptor.name().to_owned(),
                source,
            })?;
            Converted::Present(json)
        }
        Special::SchemaOrArray => {
            let list = items(message, "jSONSchemas", depth)?;
            if let Some(list) = list.filter(|l| !l.is_empty()) {
                Converted::Present(Value::Array(list))
            } else {
                schema()?.map_or(Converted::Absent, Converted::Present)
            }
        }
        Special::SchemaOrBool => match schema()? {
            Some(schema) => Converted::Present(schema),
            None => {
                let allows = matches!(get("allows"), Some(ReflectValueRef::Bool(true)));
                Converted::Present(Value::Bool(allows))
            }
        },
        Special::SchemaOrStringArray => {
            let list = items(message, "property", depth)?;
            if let Some(list) = list.filter(|l| !l.is_empty()) {
                Converted::Present(Value::Array(list))
            } else {
                schema()?.map_or(Converted::Absent, Converted::Present)
            }
        }
        Special::Items => Converted::Present(Value::Array(
            items(message, "items", depth)?.unwrap_or_default(),
        )),
    })
}

/// The converted elements of the repeated `field` of `message`, `depth` messages deep.
fn items(
    message: &dyn MessageDyn,
    field: &str,
    depth: u32,
) -> Result<Option<Vec<Value>>, WalkError> {
    let Some(field) = message.descriptor_dyn().field_by_name(field) else {
        return Ok(None);
    };
    let ReflectFieldRef::Repeated(list) = field.get_reflect(message) else {
        return Ok(None);
    };
    list.into_iter()
        .map(|v| convert(v, depth).map(Converted::into_value))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// RFC 3339 in UTC, to the second (`metav1.Time`) or with six fractional digits
/// (`metav1.MicroTime`), as Go's `Format` writes them.
fn rfc3339(seconds: i64, micros: Option<i32>) -> Result<String, WalkError> {
    let days = seconds.div_euclid(86_400);
    let of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    if !(0..=9999).contains(&year) {
        return Err(WalkError::YearOutOfRange);
    }
    let (hour, minute, second) = (of_day / 3600, of_day / 60 % 60, of_day % 60);
    let fraction = micros.map(|m| format!(".{m:06}")).unwrap_or_default();
    Ok(format!(
        "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}{fraction}Z"
    ))
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * shifted_month + 2) / 5 + 1) as u32;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A duration in nanoseconds as Go's `time.Duration.String` writes it: `0s`, `1.5µs`,
/// `300ms`, `1m30s`, `1h0m0s`.
fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    const SECOND: u64 = 1_000_000_000;
    if n < SECOND {
        let (unit, scale, digits) = if n < 1_000 {
            ("ns", 1, 0)
        } else if n < 1_000_000 {
            ("µs", 1_000, 3)
        } else {
            ("ms", 1_000_000, 6)
        };
        return format!(
            "{sign}{}{unit}",
            with_fraction(n / scale, n % scale, digits)
        );
    }
    let total = n / SECOND;
    let (hours, minutes, seconds) = (total / 3600, total / 60 % 60, total % 60);
    let mut out = String::from(sign);
    if hours > 0 {
        out.push_str(&format!("{hours}h{minutes}m"));
    } else if minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    out.push_str(&with_fraction(seconds, n % SECOND, 9));
    out.push('s');
    out
}

/// `whole` with `fraction` (of `digits` digits) after a point, trailing zeros trimmed.
fn with_fraction(whole: u64, fraction: u64, digits: usize) -> String {
    if fraction == 0 {
        return whole.to_string();
    }
    let fraction = format!("{fraction:0digits$}");
    format!("{whole}.{}", fraction.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_written_as_go_does() {
        for (nanos, text) in [
            (0, "0s"),
            (999, "999ns"),
            (1_500, "1.5µs"),
            (300_000_000, "300ms"),
            (1_500_000_000, "1.5s"),
            (90_000_000_000, "1m30s"),
            (3_600_000_000_000, "1h0m0s"),
            (-61_000_000_000, "-1m1s"),
        ] {
            assert_eq!(go_duration(nanos), text, "{nanos}");
        }
    }

    #[test]
    fn times_are_rfc3339_in_utc() {
        assert_eq!(rfc3339(0, None).unwrap(), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(1_767_323_045, None).unwrap(),
            "2026-01-02T03:04:05Z"
        );
        assert_eq!(
            rfc3339(951_782_400, Some(1_234)).unwrap(),
            "2000-02-29T00:00:00.001234Z"
        );
        assert_eq!(
            rfc3339(-62_135_596_800, None).unwrap(),
            "0001-01-01T00:00:00Z"
        );
        assert!(rfc3339(-62_167_219_201, None).is_err());
    }
}
