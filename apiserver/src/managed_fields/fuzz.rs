//! Server-side apply takes whatever a client sends: a bounded, deterministic fuzz of
//! [`track_update`] and [`apply`] with random objects shaped loosely like their kind
//! (mostly declared fields, sometimes wrong types, nulls, empty maps and lists,
//! duplicate or missing list-map keys, unknown fields, deep nesting) for a ConfigMap,
//! a Deployment, a Pod and a custom resource whose structural schema has a list map,
//! a set, an atomic list, atomic maps and a preserve-unknown-fields object. Several
//! managers update and apply in random order; nothing may panic, every
//! `managedFields` written must read back as written, an applier owns what it applied,
//! a conflict always yields to `force`, re-applying a configuration changes nothing,
//! and where merging is simple (maps of atomic values, preserve-unknown-fields
//! objects) a write's changed fields belong to the writer alone and its removed ones
//! to nobody. The same objects also go through the custom resource schema
//! validation.
//!
//! A failure prints the iteration's seed and the inputs of every call in it;
//! `RKUBE_SSA_FUZZ_SEED=<seed>` replays just that iteration, and
//! `RKUBE_SSA_FUZZ_ITERATIONS=<n>` runs longer.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::fieldpath::{Path, PathElement, Set};
use super::typed::Schema;
use super::{ApplyError, LAST_APPLIED, Writer, apply, track_update};
use crate::crd::schema_validation;
use crate::schema::{ListKind, NodeId, Shape, Shapes};

const SEED: u64 = 0x5eed_55a0_f00d_2024;
const ITERATIONS: u64 = 3_000;
/// How deep the schema-guided generator goes before it stops adding fields.
const DEPTH: usize = 9;
const MANAGERS: &[&str] = &["alice", "bob", "kubectl", "ci"];

/// A small deterministic generator (xorshift) so failures reproduce.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    /// True `percent` times in a hundred.
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())].clone()
    }
}

/// One kind under test.
struct Target<'a> {
    name: &'static str,
    schema: Schema<'a>,
    api_version: &'static str,
    kind: &'static str,
    /// Where configurations mostly write (so managers meet on the same fields).
    top: &'static str,
}

/// Field names the generator prefers wherever the schema declares them.
const HOT: &[&str] = &[
    "data",
    "spec",
    "metadata",
    "labels",
    "annotations",
    "finalizers",
    "ownerReferences",
    "replicas",
    "selector",
    "matchLabels",
    "template",
    "containers",
    "initContainers",
    "name",
    "image",
    "ports",
    "containerPort",
    "protocol",
    "env",
    "value",
    "args",
    "tolerations",
    "nodeSelector",
    "volumes",
    "items",
    "tags",
    "extra",
    "config",
    "nested",
    "deep",
    "weight",
    "status",
    "phase",
];

const KEYS: &[&str] = &["a", "b", "c", "app", "x.io/y"];
const UNKNOWN: &[&str] = &["bogus", "a", "spec", "ü", "", "."];

/// A random scalar from a small pool, so values often coincide.
fn scalar(rng: &mut Rng) -> Value {
    match rng.below(10) {
        0 => json!(1),
        1 => json!(2),
        2 => json!(true),
        3 => json!(""),
        4 => json!(1.5),
        5 => json!("ü\"<>&"),
        _ => json!(rng.pick(&["a", "b", "c"])),
    }
}

/// Any small JSON value; now and then a deep chain of objects or lists.
fn junk(rng: &mut Rng, depth: usize) -> Value {
    match rng.below(if depth == 0 { 4 } else { 9 }) {
        0 => Value::Null,
        1 | 2 => scalar(rng),
        3 => {
            if rng.chance(50) {
                json!({})
            } else {
                json!([])
            }
        }
        4 => {
            let mut value = scalar(rng);
            for level in 0..rng.below(48) {
                value = if level % 5 == 4 {
                    json!([value])
                } else {
                    json!({ rng.pick(KEYS): value })
                };
            }
            value
        }
        5 | 6 => Value::Array((0..rng.below(3)).map(|_| junk(rng, depth - 1)).collect()),
        _ => {
            let mut map = Map::new();
            for _ in 0..rng.below(4) {
                map.insert(rng.pick(KEYS).to_owned(), junk(rng, depth - 1));
            }
            Value::Object(map)
        }
    }
}

/// A key field's value: from a small pool (ports are numbers), sometimes wrong.
fn key_value(rng: &mut Rng, key: &str, index: usize) -> Option<Value> {
    if rng.chance(6) {
        return rng.pick(&[None, Some(Value::Null), Some(json!({})), Some(json!(7.5))]);
    }
    let numeric = key.to_ascii_lowercase().contains("port");
    Some(match (numeric, key) {
        (true, _) => json!([80, 443, 8080][index % 3]),
        (false, "protocol") => json!(["TCP", "UDP"][index % 2]),
        _ => json!(["a", "b", "c", "d"][index % 4]),
    })
}

/// A value for `node`, mostly as the schema says.
fn generate_node(rng: &mut Rng, shapes: &Shapes, node: NodeId, depth: usize) -> Value {
    if rng.chance(3) {
        return junk(rng, 3);
    }
    match shapes.node(node) {
        Shape::Struct { fields, other, .. } => {
            let mut map = Map::new();
            if depth == 0 {
                return Value::Object(map);
            }
            let mut names: Vec<&String> = fields.keys().collect();
            names.sort();
            let hot: Vec<&String> = names
                .iter()
                .copied()
                .filter(|n| HOT.contains(&n.as_str()))
                .collect();
            for _ in 0..rng.below(4) {
                let roll = rng.below(100);
                let (name, child) = if roll < 70 && !hot.is_empty() {
                    let name = rng.pick(&hot);
                    (name.clone(), Some(fields[name]))
                } else if roll < 95 && !names.is_empty() {
                    let name = rng.pick(&names);
                    (name.clone(), Some(fields[name]))
                } else {
                    (rng.pick(UNKNOWN).to_owned(), *other)
                };
                let value = match child {
                    Some(child) => generate_node(rng, shapes, child, depth - 1),
                    None => junk(rng, 3),
                };
                map.insert(name, value);
            }
            Value::Object(map)
        }
        Shape::Map { values, .. } => {
            let mut map = Map::new();
            for _ in 0..rng.below(4) {
                let value = if depth == 0 {
                    scalar(rng)
                } else {
                    generate_node(rng, shapes, *values, depth - 1)
                };
                map.insert(rng.pick(KEYS).to_owned(), value);
            }
            Value::Object(map)
        }
        Shape::List { items, kind } => {
            let count = rng.below(if depth == 0 { 1 } else { 4 });
            // keys are mostly distinct; sometimes drawn freely, so duplicates happen
            let offset = rng.below(4);
            let distinct = rng.chance(88);
            let mut list = Vec::with_capacity(count);
            for i in 0..count {
                let index = if distinct { offset + i } else { rng.below(4) };
                let item = match kind {
                    ListKind::Set => {
                        if rng.chance(90) {
                            json!(["a", "b", "c", "d"][index % 4])
                        } else {
                            junk(rng, 1)
                        }
                    }
                    ListKind::Map(keys) => {
                        let mut item = generate_node(rng, shapes, *items, depth.saturating_sub(1));
                        if let Value::Object(object) = &mut item {
                            for (key, _) in keys {
                                match key_value(rng, key, index) {
                                    Some(value) => object.insert(key.clone(), value),
                                    None => object.remove(key),
                                };
                            }
                        }
                        item
                    }
                    ListKind::Atomic => generate_node(rng, shapes, *items, depth.saturating_sub(1)),
                };
                list.push(item);
            }
            Value::Array(list)
        }
        Shape::Leaf => scalar(rng),
        Shape::Deduced => junk(rng, depth.min(4)),
    }
}

/// A whole object of the target's kind: apiVersion, kind and name (mostly right), and
/// usually something under the kind's main field.
fn generate(rng: &mut Rng, target: &Target<'_>) -> Value {
    let shapes = target.schema.shapes;
    let mut object = generate_node(rng, shapes, target.schema.root, DEPTH);
    if !object.is_object() {
        if rng.chance(97) {
            object = json!({});
        } else {
            return object;
        }
    }
    if rng.chance(70) {
        if let Shape::Struct { fields, .. } = shapes.node(target.schema.root) {
            if let Some(top) = fields.get(target.top) {
                let value = generate_node(rng, shapes, *top, DEPTH - 1);
                object[target.top] = value;
            }
        }
    }
    if rng.chance(97) {
        object["apiVersion"] = target.api_version.into();
        object["kind"] = target.kind.into();
    }
    if !object.get("metadata").is_some_and(Value::is_object) && rng.chance(95) {
        object["metadata"] = json!({});
    }
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("managedFields");
        if rng.chance(95) {
            metadata.insert("name".into(), "x".into());
        }
    }
    object
}

/// A change to the live object: some of its top-level fields (and some of the main
/// field's keys) replaced by random ones, or removed.
fn mutate(rng: &mut Rng, target: &Target<'_>, live: &Value) -> Value {
    let mut new = live.clone();
    let fresh = generate(rng, target);
    let (Value::Object(new_map), Value::Object(fresh_map)) = (&mut new, &fresh) else {
        return fresh;
    };
    for (key, value) in fresh_map {
        if key == target.top || key == "metadata" {
            match (new_map.get_mut(key), value) {
                (Some(Value::Object(ours)), Value::Object(theirs)) => {
                    for (k, v) in theirs {
                        if rng.chance(50) {
                            ours.insert(k.clone(), v.clone());
                        }
                    }
                    if rng.chance(20) {
                        let victim = ours.keys().nth(rng.below(ours.len())).cloned();
                        if let Some(victim) = victim {
                            ours.remove(&victim);
                        }
                    }
                }
                _ => {
                    new_map.insert(key.clone(), value.clone());
                }
            }
        } else if rng.chance(30) {
            new_map.insert(key.clone(), value.clone());
        }
    }
    new
}

/// The managedFields a client sends along with an update.
fn requested_managed_fields(rng: &mut Rng, live: Option<&Value>) -> Option<Value> {
    let live_fields = live.and_then(|l| l.get("metadata")?.get("managedFields").cloned());
    match rng.below(20) {
        0..=7 => live_fields,
        8 => Some(json!([])),
        9 => Some(json!([{}])),
        10 => Some(
            json!([{"manager": "hand", "operation": "Update", "apiVersion": "v1",
            "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:a": {}}, "f:spec": {".": {}, "f:replicas": {}}}}]),
        ),
        11 => Some(
            json!([{"manager": "hand", "operation": "Apply", "apiVersion": "v1",
            "fieldsType": "FieldsV1", "fieldsV1": junk(rng, 3)}]),
        ),
        12 => Some(
            json!([{"manager": "hand", "operation": "Patch", "apiVersion": "v1",
            "fieldsType": "FieldsV1", "fieldsV1": {}}]),
        ),
        13 => Some(
            json!([{"manager": "hand", "operation": "Update", "apiVersion": "v1",
            "fieldsType": "FieldsV1", "fieldsV1": {"k:{\"name\":\"a\"}": {"v:1": {}, "i:0": {}, "z:?": {}}, "f:x": {".": {}}}},
            {"manager": "hand", "operation": "Update", "apiVersion": "v1", "fieldsType": "FieldsV1",
             "fieldsV1": {"f:data": {"f:b": {}}}}]),
        ),
        14 => Some(junk(rng, 3)),
        _ => None,
    }
}

/// The `metadata.managedFields` of an object, or `None` when it has none.
fn managed_fields(object: &Value) -> Option<&Value> {
    object.get("metadata")?.get("managedFields")
}

/// The value at a path of fields, if every step is an object's key.
fn at<'v>(value: &'v Value, path: &[PathElement]) -> Option<&'v Value> {
    path.iter().try_fold(value, |v, element| match element {
        PathElement::Field(name) => v.get(name.as_str()),
        _ => None,
    })
}

/// A configuration's value as stored: nulls inside objects dropped.
fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

/// An object with its managedFields' times dropped and the entries in a fixed order
/// (entries are sorted by time, so a new time may reorder them).
fn without_times(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(Value::Array(entries)) = object
        .get_mut("metadata")
        .and_then(|m| m.get_mut("managedFields"))
    {
        for entry in entries.iter_mut() {
            if let Some(entry) = entry.as_object_mut() {
                entry.remove("time");
            }
        }
        entries.sort_by_key(|e| e.to_string());
    }
    object
}

/// Random changes to a structural schema (types, list types, nullable, limits,
/// patterns), for validation only.
fn mutate_schema(rng: &mut Rng, schema: &mut Value, depth: usize) {
    let Value::Object(map) = schema else {
        return;
    };
    if rng.chance(10) {
        let kind = rng.pick(&["object", "array", "string", "integer", "number", "boolean"]);
        map.insert("type".into(), kind.into());
    }
    if rng.chance(5) {
        map.insert("nullable".into(), json!(rng.chance(50)));
    }
    if rng.chance(5) {
        let list_type = rng.pick(&[json!("map"), json!("set"), json!("atomic"), json!(3)]);
        map.insert("x-kubernetes-list-type".into(), list_type);
    }
    if rng.chance(4) {
        map.insert("maxItems".into(), json!(rng.below(3)));
        map.insert("maxProperties".into(), json!(rng.below(3)));
    }
    if rng.chance(4) {
        map.insert(
            "pattern".into(),
            rng.pick(&[json!("^a"), json!("("), json!(1)]),
        );
    }
    if rng.chance(3) {
        map.insert("required".into(), json!(["name", "a"]));
    }
    if rng.chance(3) {
        map.insert("x-kubernetes-preserve-unknown-fields".into(), json!(true));
    }
    if depth == 0 {
        return;
    }
    for key in ["properties", "additionalProperties"] {
        match map.get_mut(key) {
            Some(Value::Object(children)) if key == "properties" => {
                for child in children.values_mut() {
                    mutate_schema(rng, child, depth - 1);
                }
            }
            Some(child) => mutate_schema(rng, child, depth - 1),
            None => {}
        }
    }
    if let Some(items) = map.get_mut("items") {
        mutate_schema(rng, items, depth - 1);
    }
}

/// The custom resource's structural schema (a CRD version's `openAPIV3Schema`).
fn custom_resource_schema() -> Value {
    json!({"type": "object", "properties": {
        "spec": {"type": "object", "properties": {
            "replicas": {"type": "integer", "minimum": 0},
            "items": {
                "type": "array",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name"],
                "items": {"type": "object", "required": ["name"], "properties": {
                    "name": {"type": "string"},
                    "value": {"type": "string"},
                    "weight": {"type": "integer"},
                    "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}}
                }}
            },
            "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
            "args": {"type": "array", "x-kubernetes-list-type": "atomic", "items": {"type": "string"}},
            "selector": {"type": "object", "x-kubernetes-map-type": "atomic",
                "additionalProperties": {"type": "string"}},
            "config": {"type": "object", "x-kubernetes-map-type": "atomic", "properties": {
                "a": {"type": "string"}, "b": {"type": "integer"}
            }},
            "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            "nested": {"type": "object", "properties": {
                "deep": {"type": "object", "properties": {
                    "value": {"type": "string"},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}}
                }}
            }}
        }},
        "status": {"type": "object", "properties": {"phase": {"type": "string"}}}
    }})
}

/// What one iteration did, for the reproducer.
struct Trace {
    seed: u64,
    target: &'static str,
    steps: Vec<String>,
}

impl Trace {
    fn fail(&self, message: String) -> ! {
        panic!(
            "{message}\nreproduce: RKUBE_SSA_FUZZ_SEED={:#x} (target {}), steps:\n{}",
            self.seed,
            self.target,
            self.steps.join("\n")
        );
    }
}

/// Invariant 2: managedFields, if any, are a non-empty list of entries that read
/// back exactly as written.
fn check_managed_fields(trace: &Trace, object: &Value) {
    let Some(fields) = managed_fields(object) else {
        return;
    };
    let fail = |what: &str| -> ! { trace.fail(format!("{what}: managedFields {fields}")) };
    let Some(entries) = fields.as_array() else {
        fail("not a list");
    };
    if entries.is_empty() {
        fail("an empty list is written as no managedFields");
    }
    for entry in entries {
        if !matches!(entry["operation"].as_str(), Some("Apply" | "Update")) {
            fail("operation is neither Apply nor Update");
        }
        if entry["fieldsType"] != "FieldsV1" {
            fail("fieldsType is not FieldsV1");
        }
        if !entry["manager"].is_string() || !entry["apiVersion"].is_string() {
            fail("manager or apiVersion is not a string");
        }
        let set = match Set::from_fields_v1(&entry["fieldsV1"]) {
            Ok(set) => set,
            Err(e) => fail(&format!("fieldsV1 does not parse ({e})")),
        };
        if set.is_empty() {
            fail("an entry owns nothing");
        }
        if set.to_fields_v1() != entry["fieldsV1"] {
            fail(&format!(
                "fieldsV1 does not round-trip (reads back as {})",
                set.to_fields_v1()
            ));
        }
    }
}

/// The set the applier's Apply entry holds in `object`.
fn apply_set(object: &Value, manager: &str) -> Option<Set> {
    managed_fields(object)?
        .as_array()?
        .iter()
        .find(|e| {
            e["manager"] == manager && e["operation"] == "Apply" && e.get("subresource").is_none()
        })
        .map(|e| Set::from_fields_v1(&e["fieldsV1"]).expect("checked before"))
}

/// The subtrees whose merge semantics are simple enough to check ownership against
/// directly: maps of atomic values (`data`, labels, annotations), and the
/// preserve-unknown-fields object (every object granular, everything else atomic).
fn plain_subtrees(target: &Target<'_>) -> Vec<(Path, bool)> {
    let path = |names: &[&str]| names.iter().map(|n| PathElement::field(*n)).collect();
    let mut subtrees = vec![
        (path(&["metadata", "labels"]), false),
        (path(&["metadata", "annotations"]), false),
    ];
    match target.kind {
        "ConfigMap" => {
            subtrees.push((path(&["data"]), false));
            subtrees.push((path(&["binaryData"]), false));
        }
        "Widget" => subtrees.push((path(&["spec", "extra"]), true)),
        _ => {}
    }
    subtrees
}

/// The leaves of a plain subtree: its keys, and in a deduced one the keys of the
/// non-empty objects below them.
fn plain_leaves(value: Option<&Value>, deduced: bool, path: &mut Path, out: &mut Vec<Path>) {
    let Some(Value::Object(map)) = value else {
        return;
    };
    for (key, child) in map {
        path.push(PathElement::field(key.clone()));
        if deduced && child.as_object().is_some_and(|m| !m.is_empty()) {
            plain_leaves(Some(child), deduced, path, out);
        } else {
            out.push(path.clone());
        }
        path.pop();
    }
}

/// Invariant 6: in the plain subtrees, a write leaves every field it changed to the
/// writer alone (the `owner` entry, or the ancient-changes bucket it may have been
/// merged into), and a field it removed to nobody.
fn check_plain_ownership(
    trace: &Trace,
    target: &Target<'_>,
    old: &Value,
    new: &Value,
    owner: impl Fn(&Value) -> bool,
    config: Option<&Value>,
    outcomes: &mut Outcomes,
) {
    let Some(entries) = managed_fields(new).and_then(Value::as_array) else {
        return;
    };
    let sets: Vec<(&Value, Set)> = entries
        .iter()
        .map(|e| (e, Set::from_fields_v1(&e["fieldsV1"]).expect("checked")))
        .collect();
    for (prefix, deduced) in plain_subtrees(target) {
        let mut path = prefix.clone();
        let mut new_leaves = Vec::new();
        plain_leaves(at(new, &prefix), deduced, &mut path, &mut new_leaves);
        let mut old_leaves = Vec::new();
        plain_leaves(at(old, &prefix), deduced, &mut path, &mut old_leaves);
        for leaf in &new_leaves {
            let (before, after) = (at(old, leaf), at(new, leaf));
            // an object that stays an object is compared by its fields
            let both_objects = deduced && before.is_some_and(Value::is_object);
            if before == after
                || both_objects
                || leaf.last() == Some(&PathElement::field(LAST_APPLIED))
            {
                continue;
            }
            let writer = |e: &Value| owner(e) || e["manager"] == "ancient-changes";
            if let Some((entry, _)) = sets.iter().find(|(e, set)| !writer(e) && set.has(leaf)) {
                trace.fail(format!(
                    "{} changed from {before:?} to {after:?}, but {entry} still owns it",
                    super::fieldpath::path_string(leaf)
                ));
            }
            if !sets.iter().any(|(e, set)| writer(e) && set.has(leaf)) {
                trace.fail(format!(
                    "{} changed from {before:?} to {after:?}, but the writer does not own it: {}",
                    super::fieldpath::path_string(leaf),
                    managed_fields(new).unwrap()
                ));
            }
            outcomes.plain_checked += 1;
        }
        for leaf in &old_leaves {
            if at(new, leaf).is_some() {
                continue;
            }
            // an applier owns the fields its configuration sets to null (and removes)
            let nulled = config.is_some_and(|c| at(c, leaf).is_some_and(Value::is_null));
            let may_own = |e: &Value| nulled && owner(e);
            if let Some((entry, _)) = sets.iter().find(|(e, set)| set.has(leaf) && !may_own(e)) {
                trace.fail(format!(
                    "{} was removed (it was {:?}, the parent now {:?}) but {entry} still owns it",
                    super::fieldpath::path_string(leaf),
                    at(old, leaf),
                    at(new, &leaf[..leaf.len() - 1])
                ));
            }
            outcomes.plain_checked += 1;
        }
    }
}

/// Invariant 3: after a successful apply the applier owns what it applied (under
/// the kind's main field and in labels and annotations), and each scalar it set by
/// a path of fields has its value; a ConfigMap has every key of the configuration's
/// `data` with the configuration's value.
fn check_applied(
    trace: &Trace,
    target: &Target<'_>,
    config: &Value,
    result: &Value,
    manager: &str,
    reset: &Set,
    outcomes: &mut Outcomes,
) {
    let applied = match target.schema.field_set(config) {
        Ok(set) => set.recursive_difference(reset),
        Err(e) => trace.fail(format!("apply succeeded but field_set failed: {e}")),
    };
    let owned = apply_set(result, manager).unwrap_or_default();
    let top = PathElement::field(target.top);
    let metadata = PathElement::field("metadata");
    let labels = [
        PathElement::field("labels"),
        PathElement::field("annotations"),
    ];
    for path in applied.paths() {
        let checked = match path.as_slice() {
            [first, _, ..] if *first == top => true,
            [first, second, _, ..] => *first == metadata && labels.contains(second),
            _ => false,
        };
        if !checked {
            continue;
        }
        if !owned.has(&path) {
            trace.fail(format!(
                "{manager} applied {} but does not own it; result {result}",
                super::fieldpath::path_string(&path)
            ));
        }
        outcomes.owned_checked += 1;
        // kubectl's applies keep this annotation in step with the configuration
        let last_applied = path.last() == Some(&PathElement::field(LAST_APPLIED));
        let Some(wanted) = at(config, &path).filter(|_| !last_applied) else {
            continue;
        };
        if wanted.is_null() || wanted.is_object() || wanted.is_array() {
            continue;
        }
        if at(result, &path) != Some(wanted) {
            trace.fail(format!(
                "{manager} applied {} = {wanted} but the result has {:?}; result {result}",
                super::fieldpath::path_string(&path),
                at(result, &path)
            ));
        }
        outcomes.values_checked += 1;
    }
    if target.kind == "ConfigMap" {
        if let Some(Value::Object(data)) = config.get("data") {
            for (key, value) in data.iter().filter(|(_, v)| !v.is_null()) {
                if result["data"].get(key) != Some(&without_nulls(value)) {
                    trace.fail(format!(
                        "applied data.{key} = {value} but the result has {}",
                        result["data"]
                    ));
                }
                outcomes.values_checked += 1;
            }
        }
    }
}

#[derive(Default, Debug)]
struct Outcomes {
    updates: usize,
    applied: usize,
    forced: usize,
    conflicts: usize,
    schema_errors: usize,
    not_reapplied: usize,
    /// Paths invariant 3 found owned, and values it found applied.
    owned_checked: usize,
    values_checked: usize,
    /// Fields invariant 6 checked.
    plain_checked: usize,
}

fn run_iteration(seed: u64, targets: &[Target<'_>], crd_schema: &Value, outcomes: &mut Outcomes) {
    let mut rng = Rng::new(seed);
    let target = &targets[rng.below(targets.len())];
    let mut trace = Trace {
        seed,
        target: target.name,
        steps: Vec::new(),
    };
    let mut status_reset = Set::new();
    status_reset.insert(&[PathElement::field("status")]);
    let mut live: Option<Value> = None;
    for _ in 0..1 + rng.below(6) {
        let manager = rng.pick(MANAGERS);
        let api_version = if rng.chance(90) {
            target.api_version
        } else {
            "v0"
        };
        let writer = Writer {
            manager: manager.into(),
            api_version: api_version.into(),
            subresource: "",
        };
        let reset = if target.kind != "ConfigMap" && rng.chance(70) {
            status_reset.clone()
        } else {
            Set::new()
        };
        let reset_text = reset.to_fields_v1();
        if rng.chance(35) {
            // an update (or a create, when nothing is there yet)
            let mut new = match &live {
                Some(live) if rng.chance(60) => mutate(&mut rng, target, live),
                _ => generate(&mut rng, target),
            };
            if let Some(metadata) = new.get_mut("metadata").and_then(Value::as_object_mut) {
                match requested_managed_fields(&mut rng, live.as_ref()) {
                    Some(fields) => metadata.insert("managedFields".into(), fields),
                    None => metadata.remove("managedFields"),
                };
                if manager == "kubectl" && rng.chance(30) {
                    let last = generate(&mut rng, target).to_string();
                    let annotations = metadata.entry("annotations").or_insert(json!({}));
                    if let Some(annotations) = annotations.as_object_mut() {
                        annotations.insert(LAST_APPLIED.into(), last.into());
                    }
                }
            }
            validate(&mut rng, crd_schema, &new);
            trace.steps.push(format!(
                "track_update by {manager} ({api_version}), reset {reset_text}:\n  live {}\n  new {new}",
                live.as_ref().map_or("none".into(), Value::to_string)
            ));
            track_update(target.schema, live.as_ref(), &mut new, &writer, &reset);
            check_managed_fields(&trace, &new);
            let before = live.clone().unwrap_or_else(|| json!({}));
            let owner = |e: &Value| {
                e["manager"] == manager
                    && e["operation"] == "Update"
                    && e["apiVersion"] == api_version
            };
            check_plain_ownership(&trace, target, &before, &new, owner, None, outcomes);
            outcomes.updates += 1;
            if rng.chance(10) {
                // sometimes the object was stored before anyone tracked it
                if let Some(metadata) = new.get_mut("metadata").and_then(Value::as_object_mut) {
                    metadata.remove("managedFields");
                }
            }
            // the server stores only objects (it refuses any other body)
            if new.is_object() {
                live = Some(new);
            }
            continue;
        }
        let mut config = generate(&mut rng, target);
        if let Some(metadata) = config.get_mut("metadata").and_then(Value::as_object_mut) {
            if rng.chance(5) {
                metadata.insert("annotations".into(), json!({LAST_APPLIED: "{}"}));
            }
        }
        validate(&mut rng, crd_schema, &config);
        let force = rng.chance(25);
        trace.steps.push(format!(
            "apply by {manager} ({api_version}), force {force}, reset {reset_text}:\n  live {}\n  config {config}",
            live.as_ref().map_or("none".into(), Value::to_string)
        ));
        let result = match apply(
            target.schema,
            live.as_ref(),
            &config,
            &writer,
            &reset,
            force,
        ) {
            Ok(result) => {
                outcomes.applied += 1;
                result
            }
            Err(ApplyError::Schema(_)) => {
                outcomes.schema_errors += 1;
                continue;
            }
            Err(ApplyError::Conflicts(conflicts)) => {
                // invariant 4: a conflict always yields to force
                outcomes.conflicts += 1;
                if force {
                    trace.fail(format!("a forced apply conflicted: {conflicts:?}"));
                }
                let forced =
                    match apply(target.schema, live.as_ref(), &config, &writer, &reset, true) {
                        Ok(forced) => forced,
                        Err(e) => trace.fail(format!(
                            "an apply that conflicted ({conflicts:?}) fails when forced: {e:?}"
                        )),
                    };
                outcomes.forced += 1;
                check_managed_fields(&trace, &forced);
                // nobody else keeps a field the forced apply took
                for entry in managed_fields(&forced)
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if entry["manager"] == manager && entry["operation"] == "Apply" {
                        continue;
                    }
                    let set = Set::from_fields_v1(&entry["fieldsV1"]).expect("checked");
                    for (_, _, path) in &conflicts {
                        if set.has(path) {
                            trace.fail(format!(
                                "after a forced apply {entry} still owns conflicting {}",
                                super::fieldpath::path_string(path)
                            ));
                        }
                    }
                }
                forced
            }
        };
        check_managed_fields(&trace, &result);
        let before = live.clone().unwrap_or_else(|| json!({}));
        let owner = |e: &Value| e["manager"] == manager && e["operation"] == "Apply";
        check_plain_ownership(
            &trace,
            target,
            &before,
            &result,
            owner,
            Some(&config),
            outcomes,
        );
        check_applied(&trace, target, &config, &result, manager, &reset, outcomes);

        // invariant 5: applying the same configuration again changes nothing. Not
        // when the configuration has an empty list: it sets no field, so a parent
        // the applier owned before is pruned on the first apply (with the list) and
        // comes back with it on the second, as upstream's prune does. Nor when
        // kubectl applies the last-applied annotation itself: the applied value is
        // compared, then replaced by the configuration (upstream's
        // lastAppliedUpdater), so the next apply changes it again.
        let sends_last_applied = manager == "kubectl"
            && config
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(LAST_APPLIED))
                .is_some();
        if has_empty_list(&config) || sends_last_applied {
            outcomes.not_reapplied += 1;
        } else {
            trace
                .steps
                .push("  (and the same apply again, not forced)".into());
            reapply(&trace, target, &config, &result, &writer, &reset);
        }
        if rng.chance(85) {
            live = Some(result);
        }
    }
}

/// Whether a list anywhere in `value` is empty.
fn has_empty_list(value: &Value) -> bool {
    match value {
        Value::Array(items) => items.is_empty() || items.iter().any(has_empty_list),
        Value::Object(map) => map.values().any(has_empty_list),
        _ => false,
    }
}

/// Invariant 5: the same apply again (not forced) succeeds and changes nothing but
/// the times in managedFields.
fn reapply(
    trace: &Trace,
    target: &Target<'_>,
    config: &Value,
    result: &Value,
    writer: &Writer,
    reset: &Set,
) {
    match apply(target.schema, Some(result), config, writer, reset, false) {
        Ok(mut again) => {
            check_managed_fields(trace, &again);
            if managed_fields(result).is_none() {
                // an apply that owns nothing leaves the object untracked, and the
                // next apply gives whatever is there to before-first-apply (as
                // upstream's skipNonAppliedManager does)
                if let Some(metadata) = again.get_mut("metadata").and_then(Value::as_object_mut) {
                    metadata.remove("managedFields");
                }
            }
            if without_times(&again) != without_times(result) {
                trace.fail(format!(
                    "re-applying changed the object:\n  first  {result}\n  second {again}"
                ));
            }
        }
        Err(e) => trace.fail(format!("re-applying failed: {e:?}\n  first {result}")),
    }
}

/// Custom resource validation of a random object, against the CRD's schema or a
/// random variation of it: only that it does not panic.
fn validate(rng: &mut Rng, crd_schema: &Value, object: &Value) {
    if rng.chance(60) {
        schema_validation::validate(crd_schema, object);
    } else {
        let mut schema = crd_schema.clone();
        mutate_schema(rng, &mut schema, 5);
        schema_validation::validate(&schema, object);
    }
}

#[test]
fn server_side_apply_survives_random_objects() {
    let shapes = Shapes::get();
    let built_in = |group, version, kind| Schema {
        shapes,
        root: shapes.kind(group, version, kind).expect("a built-in kind"),
    };
    let crd_schema = custom_resource_schema();
    let (cr_shapes, cr_root) = Shapes::for_custom_resource(Some(&crd_schema));
    let targets = [
        Target {
            name: "ConfigMap",
            schema: built_in("", "v1", "ConfigMap"),
            api_version: "v1",
            kind: "ConfigMap",
            top: "data",
        },
        Target {
            name: "Deployment",
            schema: built_in("apps", "v1", "Deployment"),
            api_version: "apps/v1",
            kind: "Deployment",
            top: "spec",
        },
        Target {
            name: "Pod",
            schema: built_in("", "v1", "Pod"),
            api_version: "v1",
            kind: "Pod",
            top: "spec",
        },
        Target {
            name: "Widget",
            schema: Schema {
                shapes: &cr_shapes,
                root: cr_root,
            },
            api_version: "example.com/v1",
            kind: "Widget",
            top: "spec",
        },
    ];
    let mut outcomes = Outcomes::default();
    if let Ok(seed) = std::env::var("RKUBE_SSA_FUZZ_SEED") {
        let seed = u64::from_str_radix(seed.trim_start_matches("0x"), 16).expect("a hex seed");
        run_iteration(seed, &targets, &crd_schema, &mut outcomes);
        return;
    }
    let mut per_target: BTreeMap<&str, usize> = BTreeMap::new();
    // more iterations for a longer local run
    let iterations = std::env::var("RKUBE_SSA_FUZZ_ITERATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(ITERATIONS);
    for i in 0..iterations {
        let seed = SEED ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        *per_target
            .entry(targets[Rng::new(seed).below(targets.len())].name)
            .or_default() += 1;
        run_iteration(seed, &targets, &crd_schema, &mut outcomes);
    }
    eprintln!("{iterations} iterations {per_target:?}: {outcomes:?}");
    // the fuzz is only worth something if every path is taken often
    assert!(outcomes.applied > 1_000, "{outcomes:?}");
    assert!(outcomes.conflicts > 100, "{outcomes:?}");
    assert!(outcomes.schema_errors > 100, "{outcomes:?}");
    assert!(outcomes.updates > 1_000, "{outcomes:?}");
    assert!(outcomes.owned_checked > 1_000, "{outcomes:?}");
    assert!(outcomes.values_checked > 1_000, "{outcomes:?}");
    assert!(outcomes.plain_checked > 1_000, "{outcomes:?}");
}
