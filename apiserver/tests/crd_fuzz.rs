//! CRD schemas and custom resources are user input: a bounded, deterministic fuzz over
//! schema validation, pruning, defaulting and CEL rules with random (often malformed)
//! schemas and random objects. Nothing may panic; pruning and defaulting must be
//! idempotent (a second pass finds nothing more to remove or fill).

use apiserver::crd::{cel_rules, schema_validation};
use serde_json::{Map, Value, json};

/// A small deterministic generator (xorshift) so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const NAMES: &[&str] = &[
    "spec", "status", "a", "b", "replicas", "items", "name", "metadata", "ü",
];

/// Any JSON value, small.
fn value(rng: &mut Rng, depth: usize) -> Value {
    match rng.below(if depth == 0 { 5 } else { 7 }) {
        0 => Value::Null,
        1 => json!(rng.below(2) == 0),
        2 => json!(rng.next() as i64 % 1000 - 500),
        3 => json!((rng.next() % 10_000) as f64 / 7.0),
        4 => json!(rng.pick(&[
            "",
            "x",
            "abc",
            "2024-01-01T00:00:00Z",
            "1.2.3.4",
            "ünï",
            "(",
            "10Gi"
        ])),
        5 => Value::Array((0..rng.below(4)).map(|_| value(rng, depth - 1)).collect()),
        _ => {
            let mut map = Map::new();
            for _ in 0..rng.below(4) {
                map.insert(rng.pick(NAMES).to_owned(), value(rng, depth - 1));
            }
            Value::Object(map)
        }
    }
}

/// A schema: mostly well-formed, with random keywords of random (wrong) types.
fn schema(rng: &mut Rng, depth: usize) -> Value {
    let mut s = Map::new();
    let kind = rng.pick(&[
        "object", "array", "string", "integer", "number", "boolean", "", "bogus",
    ]);
    if !kind.is_empty() {
        s.insert("type".into(), json!(kind));
    }
    if depth > 0 && (kind == "object" || rng.below(4) == 0) {
        let mut properties = Map::new();
        for _ in 0..rng.below(4) {
            properties.insert(rng.pick(NAMES).to_owned(), schema(rng, depth - 1));
        }
        s.insert("properties".into(), Value::Object(properties));
        if rng.below(3) == 0 {
            let additional = if rng.below(2) == 0 {
                json!(true)
            } else {
                schema(rng, depth - 1)
            };
            s.insert("additionalProperties".into(), additional);
        }
    }
    if depth > 0 && (kind == "array" || rng.below(5) == 0) {
        s.insert("items".into(), schema(rng, depth - 1));
        if rng.below(2) == 0 {
            s.insert(
                "x-kubernetes-list-type".into(),
                json!(rng.pick(&["map", "set", "atomic", "x"])),
            );
            s.insert(
                "x-kubernetes-list-map-keys".into(),
                json!([rng.pick(NAMES)]),
            );
        }
    }
    for _ in 0..rng.below(5) {
        let keyword = rng.pick(&[
            "minimum",
            "maximum",
            "exclusiveMinimum",
            "exclusiveMaximum",
            "multipleOf",
            "minLength",
            "maxLength",
            "pattern",
            "format",
            "enum",
            "required",
            "minItems",
            "maxItems",
            "uniqueItems",
            "minProperties",
            "maxProperties",
            "nullable",
            "default",
            "x-kubernetes-int-or-string",
            "x-kubernetes-preserve-unknown-fields",
            "x-kubernetes-embedded-resource",
            "anyOf",
            "oneOf",
            "allOf",
            "not",
            "x-kubernetes-validations",
        ]);
        let v = match keyword {
            "pattern" => json!(rng.pick(&["^a+$", "(", "\\d{2,}", "[z-a]", "\\p{L}"])),
            "format" => json!(rng.pick(&[
                "date-time",
                "uuid",
                "ipv4",
                "cidr",
                "byte",
                "duration",
                "email",
                "uri",
                "mac",
                "isbn",
                "x"
            ])),
            "anyOf" | "oneOf" | "allOf" if depth > 0 => {
                Value::Array((0..=rng.below(2)).map(|_| schema(rng, depth - 1)).collect())
            }
            "not" if depth > 0 => schema(rng, depth - 1),
            "required" => json!([rng.pick(NAMES)]),
            "x-kubernetes-validations" => json!([{
                "rule": rng.pick(&["self.a > 1", "has(self.spec)", "self == oldSelf", "self +", "size(self) < 3", "1", "self.x.y.z"]),
                "message": rng.pick(&["", "bad"]),
                "messageExpression": rng.pick(&["'m'", "self", "1 +"]),
                "fieldPath": rng.pick(&["", ".a", "..", ".spec.b"]),
                "reason": rng.pick(&["FieldValueForbidden", "FieldValueRequired", "FieldValueDuplicate", "x"]),
            }]),
            _ => value(rng, 1),
        };
        s.insert(keyword.into(), v);
    }
    Value::Object(s)
}

/// Whether any `default` in the schema holds a null somewhere.
fn nulls_in_defaults(schema: &Value) -> bool {
    fn has_null(v: &Value) -> bool {
        match v {
            Value::Null => true,
            Value::Array(items) => items.iter().any(has_null),
            Value::Object(map) => map.values().any(has_null),
            _ => false,
        }
    }
    match schema {
        Value::Object(map) => map
            .iter()
            .any(|(k, v)| (k == "default" && has_null(v)) || nulls_in_defaults(v)),
        Value::Array(items) => items.iter().any(nulls_in_defaults),
        _ => false,
    }
}

const ITERATIONS: usize = 50_000;

#[test]
fn random_schemas_and_objects_never_panic_and_prune_and_default_settle() {
    let mut rng = Rng(0x5eed_cafe_f00d_0001);
    for _ in 0..ITERATIONS {
        let schema = schema(&mut rng, 3);
        let mut object = value(&mut rng, 4);
        if rng.below(2) == 0 {
            // mostly objects, as custom resources are
            object = json!({"apiVersion": "x.example.com/v1", "kind": "X",
                            "metadata": {"name": "n"}, "spec": object});
        }
        let old = value(&mut rng, 3);
        schema_validation::validate(&schema, &object);
        cel_rules::validate(&schema, &object, Some(&old));
        cel_rules::validate(&schema, &object, None);

        let mut pruned = object.clone();
        schema_validation::prune(&schema, &mut pruned);
        let mut again = pruned.clone();
        assert!(
            schema_validation::prune(&schema, &mut again).is_empty() && again == pruned,
            "pruning twice removed more\nschema: {schema}\nobject: {object}\npruned: {pruned}\nagain: {again}"
        );

        let mut defaulted = pruned.clone();
        schema_validation::apply_defaults(&schema, &mut defaulted);
        let mut twice = defaulted.clone();
        schema_validation::apply_defaults(&schema, &mut twice);
        // a default holding nulls is copied as it is and its nulls dropped on the next
        // pass, upstream too (its CRD validation refuses such defaults)
        if !nulls_in_defaults(&schema) {
            assert_eq!(
                twice, defaulted,
                "defaulting twice changed more\nschema: {schema}\nobject: {pruned}"
            );
        }
        schema_validation::validate(&schema, &defaulted);
    }
}
