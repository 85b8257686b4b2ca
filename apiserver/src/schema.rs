//! The shape of every built-in kind: which fields each struct declares, which values
//! are maps (free keys) or lists, and where the schema stops (scalars, RawExtension,
//! int-or-string, free-form JSON). Compiled once from k8s-openapi's schemas (the same
//! ones `/openapi` serves), so walking a request against its kind costs a lookup per
//! key and allocates nothing: upstream's strict decoder finds unknown fields while it
//! decodes into the Go type; this is how we find them without a typed round trip.
//!
//! Shapes also carry what server-side apply needs to merge and track ownership
//! (upstream's structured-merge-diff schema): whether a list is atomic, a set or a map
//! keyed by some of its items' fields, and whether a map or struct is atomic. For
//! built-in kinds these come from the Go markers (`apimachinery::markers`); a custom
//! resource's shape is compiled from its CRD's structural schema
//! ([`Shapes::for_custom_resource`]).

use std::collections::HashMap;
use std::sync::OnceLock;

use k8s_openapi::schemars::generate::SchemaSettings;
use serde_json::{Map, Value};

use crate::typed;

/// One node of a kind's shape.
#[derive(Clone, Debug)]
pub(crate) enum Shape {
    /// A struct: its declared fields (JSON names) and their shapes.
    Struct {
        fields: HashMap<String, NodeId>,
        /// `+structType=atomic`: replaced and owned as a whole.
        atomic: bool,
        /// The shape of undeclared keys a custom resource's schema keeps
        /// (`x-kubernetes-preserve-unknown-fields` beside `properties`).
        other: Option<NodeId>,
    },
    /// A map with free keys (`labels`, `data`, `resources.limits`) of one value shape.
    Map {
        values: NodeId,
        /// `+mapType=atomic` (a Service's or a Pod's `selector`/`nodeSelector`).
        atomic: bool,
    },
    /// A list of one item shape.
    List { items: NodeId, kind: ListKind },
    /// A scalar, or a value the schema leaves open (RawExtension, free-form JSON):
    /// replaced and owned as a whole.
    Leaf,
    /// Whatever `x-kubernetes-preserve-unknown-fields` lets in: objects are granular
    /// maps of more of the same, lists atomic (upstream's "deduced" type).
    Deduced,
}

/// How a list merges and how its items are owned.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum ListKind {
    /// Replaced and owned as a whole (the default).
    Atomic,
    /// `+listType=set`: scalar items, each owned by value.
    Set,
    /// `+listType=map`: items merged and owned by these key fields, each with the
    /// default a missing key takes (a port's `protocol` is `"TCP"`).
    Map(Vec<(String, Option<Value>)>),
}

/// An index into [`Shapes`].
pub(crate) type NodeId = usize;

/// The shapes of every built-in kind, or of one custom resource.
#[derive(Debug)]
pub(crate) struct Shapes {
    nodes: Vec<Shape>,
    kinds: HashMap<(&'static str, &'static str, &'static str), NodeId>,
    /// Named definitions (`io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta`).
    named: HashMap<String, NodeId>,
}

impl Shapes {
    /// The shapes of every kind k8s-openapi has a type for, built on first use.
    pub(crate) fn get() -> &'static Shapes {
        static SHAPES: OnceLock<Shapes> = OnceLock::new();
        SHAPES.get_or_init(Shapes::build)
    }

    /// The root node of a kind, if k8s-openapi has its type.
    pub(crate) fn kind(&self, group: &str, version: &str, kind: &str) -> Option<NodeId> {
        self.kinds
            .iter()
            .find(|((g, v, k), _)| *g == group && *v == version && *k == kind)
            .map(|(_, id)| *id)
    }

    /// The shape of a node.
    pub(crate) fn node(&self, id: NodeId) -> &Shape {
        &self.nodes[id]
    }

    fn build() -> Shapes {
        // draft-07 without transforms: `$ref`s stay plain `#/definitions/<name>`
        let mut settings = SchemaSettings::draft07();
        settings.transforms.clear();
        let mut generator = settings.into_generator();
        let roots: Vec<_> = typed::KINDS
            .iter()
            .map(|kind| {
                (
                    (kind.group, kind.version, kind.kind),
                    (kind.schema)(&mut generator),
                )
            })
            .collect();
        let definitions = generator.take_definitions(true);
        let mut compiler = Compiler {
            definitions: &definitions,
            named: HashMap::new(),
            nodes: Vec::new(),
            markers: Markers::read(),
        };
        let mut kinds = HashMap::new();
        for (gvk, root) in roots {
            let id = compiler.compile(&root.to_value());
            // every kind takes apiVersion and kind, whatever its schema says
            let leaf = compiler.push(Shape::Leaf);
            if let Shape::Struct { fields, .. } = &mut compiler.nodes[id] {
                for name in ["apiVersion", "kind"] {
                    fields.entry(name.to_owned()).or_insert(leaf);
                }
            }
            kinds.insert(gvk, id);
        }
        Shapes {
            nodes: compiler.nodes,
            kinds,
            named: compiler.named,
        }
    }

    /// The shape of a custom resource from its version's structural schema (`None`:
    /// no schema, anything goes), with the built-in ObjectMeta as its `metadata`.
    pub(crate) fn for_custom_resource(schema: Option<&Value>) -> (Shapes, NodeId) {
        let mut shapes = Shapes {
            nodes: Vec::new(),
            kinds: HashMap::new(),
            named: HashMap::new(),
        };
        let built_in = Shapes::get();
        let object_meta = built_in
            .named
            .get("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
            .map(|id| shapes.import(built_in, *id, &mut HashMap::new()));
        let root = match schema {
            Some(schema) => shapes.compile_structural(schema),
            None => shapes.push(Shape::Deduced),
        };
        let leaf = shapes.push(Shape::Leaf);
        let mut root_shape = match &shapes.nodes[root] {
            Shape::Struct { .. } => shapes.nodes[root].clone(),
            _ => Shape::Struct {
                fields: HashMap::new(),
                atomic: false,
                other: Some(root),
            },
        };
        if let Shape::Struct { fields, .. } = &mut root_shape {
            fields.insert("apiVersion".into(), leaf);
            fields.insert("kind".into(), leaf);
            if let Some(meta) = object_meta {
                fields.insert("metadata".into(), meta);
            }
        }
        let root = shapes.push(root_shape);
        (shapes, root)
    }

    /// Copies node `id` of `from` (and everything under it) into these shapes.
    fn import(
        &mut self,
        from: &Shapes,
        id: NodeId,
        copied: &mut HashMap<NodeId, NodeId>,
    ) -> NodeId {
        if let Some(done) = copied.get(&id) {
            return *done;
        }
        let new = self.push(Shape::Leaf);
        copied.insert(id, new);
        let shape = match from.node(id) {
            Shape::Struct {
                fields,
                atomic,
                other,
            } => Shape::Struct {
                fields: fields
                    .iter()
                    .map(|(name, field)| (name.clone(), self.import(from, *field, copied)))
                    .collect(),
                atomic: *atomic,
                other: other.map(|o| self.import(from, o, copied)),
            },
            Shape::Map { values, atomic } => Shape::Map {
                values: self.import(from, *values, copied),
                atomic: *atomic,
            },
            Shape::List { items, kind } => Shape::List {
                items: self.import(from, *items, copied),
                kind: kind.clone(),
            },
            Shape::Leaf => Shape::Leaf,
            Shape::Deduced => Shape::Deduced,
        };
        self.nodes[new] = shape;
        new
    }

    /// One node of a structural schema (apiextensions' JSONSchemaProps), with its
    /// `x-kubernetes-*` extensions.
    fn compile_structural(&mut self, schema: &Value) -> NodeId {
        let flag = |name: &str| schema.get(name).and_then(Value::as_bool) == Some(true);
        let atomic = schema.get("x-kubernetes-map-type").and_then(Value::as_str) == Some("atomic");
        if flag("x-kubernetes-int-or-string") {
            return self.push(Shape::Leaf);
        }
        let preserve = flag("x-kubernetes-preserve-unknown-fields");
        if let Some(Value::Object(properties)) = schema.get("properties") {
            let mut fields: HashMap<String, NodeId> = properties
                .iter()
                .map(|(name, property)| (name.clone(), self.compile_structural(property)))
                .collect();
            if flag("x-kubernetes-embedded-resource") {
                let leaf = self.push(Shape::Leaf);
                fields.entry("apiVersion".into()).or_insert(leaf);
                fields.entry("kind".into()).or_insert(leaf);
            }
            let other = preserve.then(|| self.push(Shape::Deduced));
            return self.push(Shape::Struct {
                fields,
                atomic,
                other,
            });
        }
        if let Some(values) = schema.get("additionalProperties").filter(|v| v.is_object()) {
            let values = self.compile_structural(values);
            return self.push(Shape::Map { values, atomic });
        }
        if let Some(items) = schema.get("items").filter(|v| v.is_object()) {
            let kind = match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
                Some("set") => ListKind::Set,
                Some("map") => ListKind::Map(
                    schema
                        .get("x-kubernetes-list-map-keys")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .map(|key| {
                            let default = items
                                .get("properties")
                                .and_then(|p| p.get(key))
                                .and_then(|p| p.get("default"))
                                .cloned();
                            (key.to_owned(), default)
                        })
                        .collect(),
                ),
                _ => ListKind::Atomic,
            };
            let items = self.compile_structural(items);
            return self.push(Shape::List { items, kind });
        }
        if preserve || schema.get("type").and_then(Value::as_str) == Some("object") {
            return self.push(if preserve {
                Shape::Deduced
            } else {
                Shape::Leaf
            });
        }
        self.push(Shape::Leaf)
    }

    fn push(&mut self, shape: Shape) -> NodeId {
        self.nodes.push(shape);
        self.nodes.len() - 1
    }
}

/// The Go markers of the built-in types, by (definition, field).
type MarkerList = Vec<(&'static str, &'static str)>;
struct Markers(HashMap<&'static str, HashMap<&'static str, MarkerList>>);

impl Markers {
    fn read() -> Markers {
        let mut table: HashMap<_, HashMap<_, MarkerList>> = HashMap::new();
        for marker in apimachinery::markers::all() {
            table
                .entry(marker.definition)
                .or_default()
                .entry(marker.field)
                .or_default()
                .push((marker.key, marker.value));
        }
        Markers(table)
    }

    fn of(&self, definition: &str, field: &str) -> &[(&'static str, &'static str)] {
        self.0
            .get(definition)
            .and_then(|fields| fields.get(field))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    fn value(&self, definition: &str, field: &str, key: &str) -> Option<&'static str> {
        self.of(definition, field)
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
    }
}

/// Turns JSON schemas into nodes, each named definition once (they are recursive:
/// JSONSchemaProps holds JSONSchemaProps).
struct Compiler<'a> {
    definitions: &'a Map<String, Value>,
    named: HashMap<String, NodeId>,
    nodes: Vec<Shape>,
    markers: Markers,
}

impl Compiler<'_> {
    fn compile(&mut self, schema: &Value) -> NodeId {
        if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            let name = reference.rsplit('/').next().unwrap_or(reference);
            if let Some(id) = self.named.get(name) {
                return *id;
            }
            // reserve the id first, so a definition that refers to itself finds it
            let id = self.push(Shape::Leaf);
            self.named.insert(name.to_owned(), id);
            let shape = match self.definitions.get(name) {
                Some(definition) => {
                    let definition = definition.clone();
                    let mut shape = self.shape(&definition, Some(name));
                    if let Shape::Struct { atomic, .. } = &mut shape {
                        *atomic = self.markers.value(name, ".", "structType") == Some("atomic");
                    }
                    shape
                }
                None => Shape::Leaf,
            };
            self.nodes[id] = shape;
            return id;
        }
        let shape = self.shape(schema, None);
        self.push(shape)
    }

    /// The shape of a schema; `definition` names it when it is a named definition, so
    /// its fields' markers can be found.
    fn shape(&mut self, schema: &Value, definition: Option<&str>) -> Shape {
        // a described reference may come wrapped: `allOf: [{$ref}]`
        if let Some([only]) = schema
            .get("allOf")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
        {
            let id = self.compile(only);
            return self.copy(id);
        }
        if schema.get("$ref").is_some() {
            let id = self.compile(schema);
            return self.copy(id);
        }
        if let Some(Value::Object(properties)) = schema.get("properties") {
            let fields = properties
                .iter()
                .map(|(name, property)| {
                    let mut id = self.compile(property);
                    if let Some(definition) = definition {
                        id = self.apply_markers(definition, name, property, id);
                    }
                    (name.clone(), id)
                })
                .collect();
            return Shape::Struct {
                fields,
                atomic: false,
                other: None,
            };
        }
        if let Some(values) = schema.get("additionalProperties").filter(|v| v.is_object()) {
            return Shape::Map {
                values: self.compile(values),
                atomic: false,
            };
        }
        if let Some(items) = schema.get("items").filter(|v| v.is_object()) {
            return Shape::List {
                items: self.compile(items),
                kind: ListKind::Atomic,
            };
        }
        Shape::Leaf
    }

    /// Gives field `field` of `definition` (compiled as node `id`) the list or map
    /// semantics its Go markers declare, as upstream's OpenAPI→SMD conversion does:
    /// `listType` first, else `patchStrategy: merge` (keyed by `patchMergeKey`, a set
    /// without one), else atomic; maps and structs are granular unless marked atomic.
    /// Returns the node to use (a struct shared with other fields is copied before
    /// it is marked).
    fn apply_markers(
        &mut self,
        definition: &str,
        field: &str,
        property: &Value,
        id: NodeId,
    ) -> NodeId {
        let marker = |key| self.markers.value(definition, field, key);
        let (list_type, map_type, struct_type) =
            (marker("listType"), marker("mapType"), marker("structType"));
        let merge = marker("patchStrategy").is_some_and(|s| s.split(',').any(|p| p == "merge"));
        let merge_key = marker("patchMergeKey");
        let keys: Vec<&str> = self
            .markers
            .of(definition, field)
            .iter()
            .filter(|(k, _)| *k == "listMapKey")
            .map(|(_, v)| *v)
            .collect();
        let atomic = map_type == Some("atomic") || struct_type == Some("atomic");
        // the items' definition, for the defaults of key fields
        let item_definition = property
            .get("items")
            .and_then(|items| items.get("$ref"))
            .and_then(Value::as_str)
            .map(|r| r.rsplit('/').next().unwrap_or(r).to_owned());
        match &self.nodes[id] {
            Shape::List { items, .. } => {
                let items = *items;
                let key_fields: Vec<&str> = match (list_type, merge, merge_key) {
                    (Some("map"), _, _) => keys,
                    (None, true, Some(key)) => vec![key],
                    _ => Vec::new(),
                };
                let kind = match (list_type, merge) {
                    (Some("map"), _) => ListKind::Map(Vec::new()),
                    (Some("set"), _) => ListKind::Set,
                    (None, true) if merge_key.is_some() => ListKind::Map(Vec::new()),
                    (None, true) => ListKind::Set,
                    _ => ListKind::Atomic,
                };
                let kind = match kind {
                    ListKind::Map(_) => ListKind::Map(
                        key_fields
                            .into_iter()
                            .map(|key| {
                                let default = item_definition
                                    .as_deref()
                                    .and_then(|d| self.markers.value(d, key, "default"))
                                    .and_then(|v| serde_json::from_str(v).ok());
                                (key.to_owned(), default)
                            })
                            .collect(),
                    ),
                    other => other,
                };
                self.nodes[id] = Shape::List { items, kind };
                id
            }
            Shape::Map { values, .. } if atomic => {
                let values = *values;
                self.nodes[id] = Shape::Map {
                    values,
                    atomic: true,
                };
                id
            }
            Shape::Struct { fields, other, .. } if atomic => {
                let shape = Shape::Struct {
                    fields: fields.clone(),
                    atomic: true,
                    other: *other,
                };
                self.push(shape)
            }
            _ => id,
        }
    }

    /// A shape equal to node `id`'s (only references to structs need copying in full;
    /// their field ids are shared).
    fn copy(&self, id: NodeId) -> Shape {
        self.nodes[id].clone()
    }

    fn push(&mut self, shape: Shape) -> NodeId {
        self.nodes.push(shape);
        self.nodes.len() - 1
    }
}

/// The paths in `value` that `node`'s shape does not declare (`data2`,
/// `spec.containers[0].foo`), in the value's key order. Null values are skipped, as a
/// decoder skips them.
pub(crate) fn unknown_fields(shapes: &Shapes, node: NodeId, value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk(shapes, node, value, &mut Vec::new(), &mut out);
    out
}

/// A step of the path from the root to the value being walked.
enum Step<'a> {
    Field(&'a str),
    Index(usize),
}

fn walk<'a>(
    shapes: &Shapes,
    node: NodeId,
    value: &'a Value,
    path: &mut Vec<Step<'a>>,
    out: &mut Vec<String>,
) {
    match (shapes.node(node), value) {
        (Shape::Struct { fields, other, .. }, Value::Object(object)) => {
            for (key, child) in object {
                if child.is_null() {
                    continue;
                }
                path.push(Step::Field(key));
                match fields.get(key).or(other.as_ref()) {
                    Some(field) => walk(shapes, *field, child, path, out),
                    None => out.push(render(path)),
                }
                path.pop();
            }
        }
        (Shape::Map { values, .. }, Value::Object(object)) => {
            for (key, child) in object {
                path.push(Step::Field(key));
                walk(shapes, *values, child, path, out);
                path.pop();
            }
        }
        (Shape::List { items, .. }, Value::Array(list)) => {
            for (i, item) in list.iter().enumerate() {
                path.push(Step::Index(i));
                walk(shapes, *items, item, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

/// Upstream's rendering of a field path: dots between fields, `[i]` for items.
fn render(path: &[Step<'_>]) -> String {
    let mut rendered = String::new();
    for step in path {
        match step {
            Step::Field(name) => {
                if !rendered.is_empty() {
                    rendered.push('.');
                }
                rendered.push_str(name);
            }
            Step::Index(i) => {
                rendered.push('[');
                rendered.push_str(&i.to_string());
                rendered.push(']');
            }
        }
    }
    rendered
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn unknown(group: &str, version: &str, kind: &str, value: Value) -> Vec<String> {
        let shapes = Shapes::get();
        let root = shapes.kind(group, version, kind).expect("a built-in kind");
        unknown_fields(shapes, root, &value)
    }

    #[test]
    fn every_typed_kind_has_a_struct_shape() {
        let shapes = Shapes::get();
        for kind in typed::KINDS {
            let id = shapes
                .kind(kind.group, kind.version, kind.kind)
                .expect("compiled");
            assert!(
                matches!(shapes.node(id), Shape::Struct { .. }),
                "{}/{} {}",
                kind.group,
                kind.version,
                kind.kind
            );
        }
    }

    #[test]
    fn unknown_fields_are_found_in_structs_lists_and_map_values() {
        let found = unknown(
            "",
            "v1",
            "Pod",
            json!({
                "apiVersion": "v1", "kind": "Pod", "bogus": 1,
                "metadata": {"name": "p", "labels": {"any-key": "v"}, "nam": "x"},
                "spec": {
                    "containers": [
                        {"name": "a", "image": "i", "resources": {"limits": {"cpu": "1"}}},
                        {"name": "b", "imagee": "i", "ports": [{"containerPort": 80, "hostt": 1}]}
                    ],
                    "nodeSelector": {"free": "keys"},
                    "overhead": null,
                    "replicas": 3
                },
            }),
        );
        assert_eq!(
            found,
            [
                "bogus",
                "metadata.nam",
                "spec.containers[1].imagee",
                "spec.containers[1].ports[0].hostt",
                "spec.replicas",
            ]
        );
    }

    #[test]
    fn open_values_are_not_walked() {
        // a RawExtension, free-form JSON in a CRD schema, an int-or-string quantity
        assert!(
            unknown(
                "apps",
                "v1",
                "ControllerRevision",
                json!({"metadata": {"name": "r"}, "revision": 1, "data": {"anything": {"goes": 1}}}),
            )
            .is_empty()
        );
        assert!(
            unknown(
                "apiextensions.k8s.io",
                "v1",
                "CustomResourceDefinition",
                json!({"spec": {"versions": [{"name": "v1", "schema": {"openAPIV3Schema": {
                "type": "object", "default": {"free": {"form": true}},
                "properties": {"spec": {"type": "object", "properties": {}, "bogus": 1}}}}}]}}),
            )
            .contains(&"spec.versions[0].schema.openAPIV3Schema.properties.spec.bogus".to_owned())
        );
    }

    /// The node at a dotted path of fields (`[]` steps into a list's items).
    fn at(shapes: &Shapes, mut id: NodeId, path: &str) -> NodeId {
        for step in path.split('.') {
            id = match (shapes.node(id), step) {
                (Shape::List { items, .. }, "[]") => *items,
                (Shape::Map { values, .. }, "*") => *values,
                (Shape::Struct { fields, .. }, name) => fields[name],
                (shape, step) => panic!("{step} in {shape:?}"),
            };
        }
        id
    }

    #[test]
    fn built_in_lists_and_maps_follow_the_go_markers() {
        let shapes = Shapes::get();
        let pod = shapes.kind("", "v1", "Pod").unwrap();
        let list = |path| match shapes.node(at(shapes, pod, path)) {
            Shape::List { kind, .. } => kind.clone(),
            other => panic!("{path}: {other:?}"),
        };
        assert_eq!(
            list("spec.containers"),
            ListKind::Map(vec![("name".into(), None)])
        );
        assert_eq!(
            list("spec.containers.[].ports"),
            ListKind::Map(vec![
                ("containerPort".into(), None),
                ("protocol".into(), Some(Value::from("TCP")))
            ])
        );
        assert_eq!(list("spec.tolerations"), ListKind::Atomic);
        assert_eq!(list("spec.containers.[].command"), ListKind::Atomic);
        assert_eq!(list("metadata.finalizers"), ListKind::Set);
        assert_eq!(
            list("metadata.ownerReferences"),
            ListKind::Map(vec![("uid".into(), None)])
        );
        assert!(matches!(
            shapes.node(at(shapes, pod, "spec.nodeSelector")),
            Shape::Map { atomic: true, .. }
        ));
        assert!(matches!(
            shapes.node(at(shapes, pod, "metadata.labels")),
            Shape::Map { atomic: false, .. }
        ));
        let deployment = shapes.kind("apps", "v1", "Deployment").unwrap();
        assert!(matches!(
            shapes.node(at(shapes, deployment, "spec.selector")),
            Shape::Struct { atomic: true, .. }
        ));
        assert!(matches!(
            shapes.node(at(shapes, deployment, "spec.template.spec")),
            Shape::Struct { atomic: false, .. }
        ));
        let service = shapes.kind("", "v1", "Service").unwrap();
        assert!(matches!(
            shapes.node(at(shapes, service, "spec.selector")),
            Shape::Map { atomic: true, .. }
        ));
    }

    #[test]
    fn custom_resources_take_their_semantics_from_the_structural_schema() {
        let schema = json!({"type": "object", "properties": {
            "spec": {"type": "object", "properties": {
                "ports": {"type": "array", "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["port", "protocol"],
                    "items": {"type": "object", "properties": {
                        "port": {"type": "integer"}, "protocol": {"type": "string", "default": "TCP"}}}},
                "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                "args": {"type": "array", "items": {"type": "string"}},
                "selector": {"type": "object", "x-kubernetes-map-type": "atomic",
                    "additionalProperties": {"type": "string"}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
            }}
        }});
        let (shapes, root) = Shapes::for_custom_resource(Some(&schema));
        let list = |path| match shapes.node(at(&shapes, root, path)) {
            Shape::List { kind, .. } => kind.clone(),
            other => panic!("{path}: {other:?}"),
        };
        assert_eq!(
            list("spec.ports"),
            ListKind::Map(vec![
                ("port".into(), None),
                ("protocol".into(), Some(Value::from("TCP")))
            ])
        );
        assert_eq!(list("spec.tags"), ListKind::Set);
        assert_eq!(list("spec.args"), ListKind::Atomic);
        assert!(matches!(
            shapes.node(at(&shapes, root, "spec.selector")),
            Shape::Map { atomic: true, .. }
        ));
        assert!(matches!(
            shapes.node(at(&shapes, root, "spec.free")),
            Shape::Deduced
        ));
        assert_eq!(list("metadata.finalizers"), ListKind::Set);
        assert!(matches!(
            shapes.node(at(&shapes, root, "kind")),
            Shape::Leaf
        ));
    }
}
