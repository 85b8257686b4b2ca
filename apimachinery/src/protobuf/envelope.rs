//! The envelope of a Kubernetes protobuf body, as upstream's protobuf serializer reads
//! it: the `k8s\x00` magic, then a `runtime.Unknown` whose `typeMeta` names the kind and
//! whose `raw` is the typed object; and the lookup of that kind's message in the v1.33
//! `generated.proto` descriptors that `build.rs` makes.

use std::collections::HashMap;
use std::sync::OnceLock;

use k8s_rs_pb::apimachinery::pkg::runtime::Unknown;
use protobuf::Message;
use protobuf::descriptor::FileDescriptorSet;
use protobuf::reflect::{FileDescriptor, MessageDescriptor, RuntimeFieldType, RuntimeType};
use serde_json::{Map, Value};

use super::DecodeError;
use super::json;

/// What every Kubernetes protobuf message starts with.
pub(crate) const MAGIC: &[u8] = b"k8s\x00";

/// How deep messages may nest, objects embedded in `RawExtension`s included. Parsing and
/// walking recurse once per level, and rust-protobuf checks no depth for dynamic
/// messages, so [`check_depth`] does before either: a hostile body must not overflow the
/// stack. Deep enough for CRD schemas (a schema level is a `JSONSchemaProps` and a map
/// entry) and small enough for a 2 MiB stack unoptimised (see the test).
pub(crate) const MAX_DEPTH: u32 = 200;

/// The descriptors of the v1.33 `generated.proto` files, built by `build.rs`.
static DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/k8s-v1_33.fds"));

/// `meta.k8s.io/v1`'s package, where the options kinds (`DeleteOptions`) live whatever
/// group version the envelope names.
const META_V1: &str = "apimachinery.pkg.apis.meta.v1";

/// The files of [`DESCRIPTOR_SET`] by proto package.
fn files() -> &'static HashMap<String, FileDescriptor> {
    static FILES: OnceLock<HashMap<String, FileDescriptor>> = OnceLock::new();
    FILES.get_or_init(|| {
        // build.rs wrote these from protos it parsed and typechecked: they cannot fail
        // here, and every test would show it if they did
        let set = FileDescriptorSet::parse_from_bytes(DESCRIPTOR_SET)
            .expect("build.rs wrote a FileDescriptorSet");
        FileDescriptor::new_dynamic_fds(set.file, &[])
            .expect("the descriptor set is complete")
            .into_iter()
            .map(|file| (file.package().to_owned(), file))
            .collect()
    })
}

/// The proto package of an API group version. The packages are named after the Go
/// import paths (`k8s.io/api/apps/v1` → `api.apps.v1`), which for most groups is the
/// group's first DNS label.
fn package(group: &str, version: &str) -> String {
    match group {
        "" => format!("api.core.{version}"),
        "meta.k8s.io" => format!("apimachinery.pkg.apis.meta.{version}"),
        "apiextensions.k8s.io" => {
            format!("apiextensions_apiserver.pkg.apis.apiextensions.{version}")
        }
        "apiregistration.k8s.io" => {
            format!("kube_aggregator.pkg.apis.apiregistration.{version}")
        }
        "internal.apiserver.k8s.io" => format!("api.apiserverinternal.{version}"),
        _ => {
            let label = group.split('.').next().unwrap_or(group);
            format!("api.{label}.{version}")
        }
    }
}

/// The message of `kind` in `group`/`version`, falling back to `meta.k8s.io/v1` for the
/// kinds every group version registers from there (`DeleteOptions`, `Status`...).
pub(crate) fn message_for(group: &str, version: &str, kind: &str) -> Option<MessageDescriptor> {
    let files = files();
    files
        .get(package(group, version).as_str())
        .and_then(|file| file.message_by_package_relative_name(kind))
        .or_else(|| {
            files
                .get(META_V1)
                .and_then(|file| file.message_by_package_relative_name(kind))
        })
}

/// A message by its proto full name (`api.core.v1.PodSpec`).
pub(crate) fn message_by_full_name(full_name: &str) -> Option<MessageDescriptor> {
    let (package, name) = full_name.rsplit_once('.')?;
    files().get(package)?.message_by_package_relative_name(name)
}

/// Splits `apps/v1` into group and version (`v1` is the core group's).
fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((group, version)) => (group, version),
        None => ("", api_version),
    }
}

/// The kind a body is decoded as when its envelope leaves parts out, as upstream's
/// `copyKindDefaults`: the request's resource kind for create and update.
#[derive(Debug, Clone, Copy, Default)]
pub struct Defaults<'a> {
    /// The API group (empty for core).
    pub group: &'a str,
    /// The version.
    pub version: &'a str,
    /// The kind.
    pub kind: &'a str,
}

/// Decodes a protobuf body (magic, envelope, typed object) into the JSON object upstream
/// would have received, with `apiVersion` and `kind` from the envelope.
pub fn decode(body: &[u8], defaults: Defaults<'_>) -> Result<Value, DecodeError> {
    decode_at(body, defaults, 0)
}

/// [`decode`] for a body found `depth` messages deep (in a `RawExtension`).
pub(crate) fn decode_at(
    body: &[u8],
    defaults: Defaults<'_>,
    depth: u32,
) -> Result<Value, DecodeError> {
    let unrecognized = |message: String| DecodeError::Unrecognized {
        message,
        summary: summarize(body),
    };
    let Some(data) = body.strip_prefix(MAGIC) else {
        if body.is_empty() {
            return Err(unrecognized("empty data".into()));
        }
        // Go's `%v` of the prefix bytes
        let prefix: Vec<String> = MAGIC.iter().map(u8::to_string).collect();
        return Err(unrecognized(format!(
            "provided data does not appear to be a protobuf message, expected prefix [{}]",
            prefix.join(" ")
        )));
    };
    if data.is_empty() {
        return Err(unrecognized("empty body".into()));
    }
    let envelope = Unknown::parse_from_bytes(data).map_err(|e| unrecognized(e.to_string()))?;
    let type_meta = envelope.typeMeta.get_or_default();
    let (mut group, mut version) = split_api_version(type_meta.apiVersion());
    let mut kind = type_meta.kind();
    // upstream's copyKindDefaults
    if kind.is_empty() {
        kind = defaults.kind;
    }
    if version.is_empty() && !defaults.version.is_empty() {
        group = defaults.group;
        version = defaults.version;
    }
    if kind.is_empty() {
        return Err(unrecognized(format!(
            "Object 'Kind' is missing in 'runtime.TypeMeta{{APIVersion:{:?}, Kind:{:?}}}'",
            type_meta.apiVersion(),
            type_meta.kind()
        )));
    }
    let api_version = crate::resources::api_version(group, version);
    let object_error = |message: String| DecodeError::Object {
        kind: kind.to_owned(),
        version: version.to_owned(),
        message,
    };
    if version.is_empty() {
        return Err(object_error(format!(
            "Object 'apiVersion' is missing in 'runtime.TypeMeta{{APIVersion:{:?}, Kind:{:?}}}'",
            type_meta.apiVersion(),
            type_meta.kind()
        )));
    }
    let descriptor = message_for(group, version, kind).ok_or_else(|| {
        object_error(format!(
            "no kind {kind:?} is registered for version {api_version:?} in scheme \"pkg/api/legacyscheme/scheme.go:30\""
        ))
    })?;
    if !check_depth(&descriptor, envelope.raw(), depth) {
        return Err(object_error(format!(
            "the object nests deeper than {MAX_DEPTH} messages"
        )));
    }
    let object = descriptor
        .parse_from_bytes(envelope.raw())
        .map_err(|e| object_error(e.to_string()))?;
    let walked = json::object(&*object, depth).map_err(|e| object_error(e.to_string()))?;
    let mut out = Map::with_capacity(walked.len() + 2);
    out.insert("apiVersion".into(), Value::String(api_version));
    out.insert("kind".into(), Value::String(kind.to_owned()));
    out.extend(walked);
    Ok(Value::Object(out))
}

/// Whether `bytes`, a `descriptor` message `depth` messages deep, nests no deeper than
/// [`MAX_DEPTH`]. Reads only tags and lengths; bytes that are not well-formed pass, for
/// the parser to report in its own words.
fn check_depth(descriptor: &MessageDescriptor, mut bytes: &[u8], depth: u32) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    while !bytes.is_empty() {
        let Some(tag) = varint(&mut bytes) else {
            return true;
        };
        let length = match tag & 7 {
            0 => {
                if varint(&mut bytes).is_none() {
                    return true;
                }
                continue;
            }
            1 => 8,
            5 => 4,
            2 => match varint(&mut bytes).and_then(|n| usize::try_from(n).ok()) {
                Some(n) => n,
                None => return true,
            },
            // groups (no Kubernetes proto has them) are the parser's, which checks depth
            _ => return true,
        };
        if length > bytes.len() {
            return true;
        }
        let (value, rest) = bytes.split_at(length);
        bytes = rest;
        if tag & 7 != 2 {
            continue;
        }
        let field = u32::try_from(tag >> 3)
            .ok()
            .and_then(|n| descriptor.field_by_number(n));
        let nested = match field.map(|f| f.runtime_field_type()) {
            Some(
                RuntimeFieldType::Singular(RuntimeType::Message(inner))
                | RuntimeFieldType::Repeated(RuntimeType::Message(inner)),
            ) => check_depth(&inner, value, depth + 1),
            // a map entry is a message whose field 2 is the value
            Some(RuntimeFieldType::Map(_, RuntimeType::Message(inner))) => {
                map_value_depth(&inner, value, depth + 1)
            }
            _ => true,
        };
        if !nested {
            return false;
        }
    }
    true
}

/// [`check_depth`] of the message values in a map entry.
fn map_value_depth(value_type: &MessageDescriptor, mut entry: &[u8], depth: u32) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    while !entry.is_empty() {
        let Some(tag) = varint(&mut entry) else {
            return true;
        };
        let length = match tag & 7 {
            0 => {
                if varint(&mut entry).is_none() {
                    return true;
                }
                continue;
            }
            2 => match varint(&mut entry).and_then(|n| usize::try_from(n).ok()) {
                Some(n) if n <= entry.len() => n,
                _ => return true,
            },
            _ => return true,
        };
        let (value, rest) = entry.split_at(length);
        entry = rest;
        if tag >> 3 == 2 && !check_depth(value_type, value, depth + 1) {
            return false;
        }
    }
    true
}

/// Reads a base-128 varint off the front of `bytes`.
fn varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for (i, byte) in bytes.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            *bytes = &bytes[i + 1..];
            return Some(value);
        }
    }
    None
}

/// Upstream's `summarizeData(body, 30)`: the start of an undecodable body, in hex unless
/// it looks like JSON.
fn summarize(body: &[u8]) -> String {
    const MAX: usize = 30;
    let (head, more) = if body.len() > MAX {
        (&body[..MAX], " ...")
    } else {
        (body, "")
    };
    if body.is_empty() {
        return "<empty>".into();
    }
    if body[0] == b'{' {
        return format!("{}{more}", String::from_utf8_lossy(head));
    }
    let hex: String = head.iter().map(|b| format!("{b:02x}")).collect();
    format!("{hex}{more}")
}
