//! The Swagger 2.0 document in the protobuf encoding client-go asks for
//! (`application/com.github.proto-openapi.spec.v2@v1.0+protobuf`): gnostic's
//! `openapi_v2.Document` messages, which kube-openapi's `proto.NewOpenAPIData` reads.
//! kubectl up to 1.28 fetches nothing else for client-side validation and `explain`.
//!
//! Written by hand from the JSON document with a small protobuf writer: the document
//! is encoded once, and only the messages the definitions need are written (Document,
//! Info, Definitions, NamedSchema, Schema and its parts, Any, NamedAny). Paths are left
//! out: clients read models by the `x-kubernetes-group-version-kind` extension of the
//! definitions, never through the paths. Field numbers are gnostic's (OpenAPIv2.proto).
//! Free-form values (`default`, `enum`, `example`, vendor extensions) travel as YAML in
//! `Any.yaml`, as gnostic writes them.

use serde_json::{Map, Value};

/// One protobuf message being written: fields appended in any order, proto3 zero
/// values left out.
#[derive(Default)]
struct Message(Vec<u8>);

impl Message {
    fn varint(&mut self, mut value: u64) {
        loop {
            let byte = (value & 0x7f) as u8;
            value >>= 7;
            if value == 0 {
                self.0.push(byte);
                return;
            }
            self.0.push(byte | 0x80);
        }
    }

    fn key(&mut self, field: u32, wire_type: u8) {
        self.varint(u64::from(field) << 3 | u64::from(wire_type));
    }

    fn bytes(&mut self, field: u32, bytes: &[u8]) {
        self.key(field, 2);
        self.varint(bytes.len() as u64);
        self.0.extend_from_slice(bytes);
    }

    fn string(&mut self, field: u32, value: &str) {
        if !value.is_empty() {
            self.bytes(field, value.as_bytes());
        }
    }

    /// A sub-message, written even when empty: its presence can matter.
    fn message(&mut self, field: u32, message: Message) {
        self.bytes(field, &message.0);
    }

    fn boolean(&mut self, field: u32, value: bool) {
        if value {
            self.key(field, 0);
            self.varint(1);
        }
    }

    fn int64(&mut self, field: u32, value: i64) {
        if value != 0 {
            self.key(field, 0);
            // Negative values are ten-byte two's complement varints in protobuf.
            self.varint(value as u64);
        }
    }

    fn double(&mut self, field: u32, value: f64) {
        if value != 0.0 {
            self.key(field, 1);
            self.0.extend_from_slice(&value.to_le_bytes());
        }
    }
}

/// gnostic's `Any`: a free-form value as YAML.
fn any(value: &Value) -> Message {
    let mut any = Message::default();
    any.string(2, &serde_yaml_ng::to_string(value).unwrap_or_default());
    any
}

/// gnostic's `NamedAny` for each `x-` key of `object` (a vendor extension).
fn vendor_extensions(object: &Map<String, Value>, field: u32, message: &mut Message) {
    for (name, value) in object.iter().filter(|(k, _)| k.starts_with("x-")) {
        let mut named = Message::default();
        named.string(1, name);
        named.message(2, any(value));
        message.message(field, named);
    }
}

/// gnostic's `Schema` from a JSON schema object.
fn schema(object: &Map<String, Value>) -> Message {
    let mut m = Message::default();
    let text = |key: &str| object.get(key).and_then(Value::as_str).unwrap_or("");
    let number = |key: &str| object.get(key).and_then(Value::as_f64).unwrap_or(0.0);
    let integer = |key: &str| object.get(key).and_then(Value::as_i64).unwrap_or(0);
    let flag = |key: &str| object.get(key).and_then(Value::as_bool).unwrap_or(false);
    m.string(1, text("$ref"));
    m.string(2, text("format"));
    m.string(3, text("title"));
    m.string(4, text("description"));
    if let Some(default) = object.get("default") {
        m.message(5, any(default));
    }
    m.double(6, number("multipleOf"));
    m.double(7, number("maximum"));
    m.boolean(8, flag("exclusiveMaximum"));
    m.double(9, number("minimum"));
    m.boolean(10, flag("exclusiveMinimum"));
    m.int64(11, integer("maxLength"));
    m.int64(12, integer("minLength"));
    m.string(13, text("pattern"));
    m.int64(14, integer("maxItems"));
    m.int64(15, integer("minItems"));
    m.boolean(16, flag("uniqueItems"));
    m.int64(17, integer("maxProperties"));
    m.int64(18, integer("minProperties"));
    for required in object
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        m.bytes(19, required.as_bytes());
    }
    for value in object
        .get("enum")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        m.message(20, any(value));
    }
    match object.get("additionalProperties") {
        Some(Value::Object(inner)) => {
            let mut item = Message::default();
            item.message(1, schema(inner));
            m.message(21, item);
        }
        Some(Value::Bool(allowed)) => {
            let mut item = Message::default();
            // `false` must be written: it is the oneof's value.
            item.key(2, 0);
            item.varint(u64::from(*allowed));
            m.message(21, item);
        }
        _ => {}
    }
    let types: Vec<&str> = match object.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !types.is_empty() {
        let mut item = Message::default();
        for t in types {
            item.bytes(1, t.as_bytes());
        }
        m.message(22, item);
    }
    let items: Vec<&Map<String, Value>> = match object.get("items") {
        Some(Value::Object(one)) => vec![one],
        Some(Value::Array(many)) => many.iter().filter_map(Value::as_object).collect(),
        _ => Vec::new(),
    };
    if !items.is_empty() {
        let mut item = Message::default();
        for one in items {
            item.message(1, schema(one));
        }
        m.message(23, item);
    }
    for part in object
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
    {
        m.message(24, schema(part));
    }
    if let Some(properties) = object.get("properties").and_then(Value::as_object) {
        m.message(25, named_schemas(properties));
    }
    m.string(26, text("discriminator"));
    m.boolean(27, flag("readOnly"));
    if let Some(example) = object.get("example") {
        m.message(30, any(example));
    }
    vendor_extensions(object, 31, &mut m);
    m
}

/// A message of `NamedSchema`s in field 1 (gnostic's `Definitions` and `Properties`).
fn named_schemas(schemas: &Map<String, Value>) -> Message {
    let mut m = Message::default();
    for (name, value) in schemas {
        let Some(object) = value.as_object() else {
            continue;
        };
        let mut named = Message::default();
        named.string(1, name);
        named.message(2, schema(object));
        m.message(1, named);
    }
    m
}

/// The gnostic `Document` of a Swagger 2.0 JSON document (without its paths).
pub fn encode(document: &Value) -> Vec<u8> {
    let mut m = Message::default();
    let text = |pointer: &str| {
        document
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or("")
    };
    m.string(1, text("/swagger"));
    let mut info = Message::default();
    info.string(1, text("/info/title"));
    info.string(2, text("/info/version"));
    m.message(2, info);
    if let Some(definitions) = document.get("definitions").and_then(Value::as_object) {
        m.message(9, named_schemas(definitions));
    }
    if let Some(object) = document.as_object() {
        vendor_extensions(object, 16, &mut m);
    }
    m.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use protobuf::reflect::FileDescriptor;
    use serde_json::json;

    /// gnostic's messages as far as these tests read them, declared for the decoder
    /// (the field numbers are the wire format both sides share).
    const GNOSTIC_SUBSET: &str = r#"
syntax = "proto3";
package openapi_v2;
message Any { string yaml = 2; }
message NamedAny { string name = 1; Any value = 2; }
message Info { string title = 1; string version = 2; }
message TypeItem { repeated string value = 1; }
message ItemsItem { repeated Schema schema = 1; }
message AdditionalPropertiesItem { oneof oneof { Schema schema = 1; bool boolean = 2; } }
message NamedSchema { string name = 1; Schema value = 2; }
message Properties { repeated NamedSchema additional_properties = 1; }
message Definitions { repeated NamedSchema additional_properties = 1; }
message Schema {
  string _ref = 1; string description = 4; Any default = 5; double minimum = 9;
  repeated string required = 19; repeated Any enum = 20;
  AdditionalPropertiesItem additional_properties = 21; TypeItem type = 22;
  ItemsItem items = 23; Properties properties = 25; repeated NamedAny vendor_extension = 31;
}
message Document { string swagger = 1; Info info = 2; Definitions definitions = 9; }
"#;

    fn descriptor() -> FileDescriptor {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gnostic.proto");
        std::fs::write(&path, GNOSTIC_SUBSET).unwrap();
        let parsed = protobuf_parse::Parser::new()
            .pure()
            .include(dir.path())
            .input(&path)
            .parse_and_typecheck()
            .unwrap();
        let file = parsed
            .file_descriptors
            .into_iter()
            .find(|f| f.name() == "gnostic.proto")
            .unwrap();
        FileDescriptor::new_dynamic(file, &[]).unwrap()
    }

    #[test]
    fn definitions_decode_as_gnostic_messages() {
        let document = json!({
            "swagger": "2.0",
            "info": {"title": "Kubernetes", "version": "v1.33.0"},
            "definitions": {
                "io.k8s.api.core.v1.ConfigMap": {
                    "description": "ConfigMap holds configuration data.",
                    "type": "object",
                    "required": ["metadata"],
                    "properties": {
                        "data": {"type": "object", "additionalProperties": {"type": "string", "default": ""}},
                        "items": {"type": "array", "items": {"$ref": "#/definitions/x"}},
                        "replicas": {"type": "integer", "minimum": 1.0, "enum": [1, 2]},
                        "open": {"type": "object", "additionalProperties": false},
                    },
                    "x-kubernetes-group-version-kind": [{"group": "", "kind": "ConfigMap", "version": "v1"}],
                }
            }
        });
        let bytes = encode(&document);
        let file = descriptor();
        let doc_type = file.message_by_package_relative_name("Document").unwrap();
        let doc = doc_type.parse_from_bytes(&bytes).unwrap();
        let json = protobuf_json_mapping::print_to_string(&*doc).unwrap();
        let decoded: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(decoded["swagger"], "2.0");
        assert_eq!(decoded["info"]["version"], "v1.33.0");
        let cm = &decoded["definitions"]["additionalProperties"][0];
        assert_eq!(cm["name"], "io.k8s.api.core.v1.ConfigMap");
        let s = &cm["value"];
        assert_eq!(s["description"], "ConfigMap holds configuration data.");
        assert_eq!(s["type"]["value"], json!(["object"]));
        assert_eq!(s["required"], json!(["metadata"]));
        let gvk = &s["vendorExtension"][0];
        assert_eq!(gvk["name"], "x-kubernetes-group-version-kind");
        let yaml: Value = serde_yaml_ng::from_str(gvk["value"]["yaml"].as_str().unwrap()).unwrap();
        assert_eq!(
            yaml,
            json!([{"group": "", "kind": "ConfigMap", "version": "v1"}])
        );
        let properties = s["properties"]["additionalProperties"].as_array().unwrap();
        let named = |n: &str| &properties.iter().find(|p| p["name"] == n).unwrap()["value"];
        assert_eq!(
            named("data")["additionalProperties"]["schema"]["type"]["value"],
            json!(["string"])
        );
        assert_eq!(
            named("items")["items"]["schema"][0]["Ref"],
            "#/definitions/x"
        );
        assert_eq!(named("replicas")["minimum"], 1.0);
        assert_eq!(named("replicas")["enum"].as_array().unwrap().len(), 2);
        assert_eq!(named("open")["additionalProperties"]["boolean"], false);
    }
}
