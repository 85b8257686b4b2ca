//! The shape of every built-in kind: which fields each struct declares, which values
//! are maps (free keys) or lists, and where the schema stops (scalars, RawExtension,
//! int-or-string, free-form JSON). Compiled once from k8s-openapi's schemas (the same
//! ones `/openapi` serves), so walking a request against its kind costs a lookup per
//! key and allocates nothing: upstream's strict decoder finds unknown fields while it
//! decodes into the Go type; this is how we find them without a typed round trip.

use std::collections::HashMap;
use std::sync::OnceLock;

use k8s_openapi::schemars::generate::SchemaSettings;
use serde_json::{Map, Value};

use crate::typed;

/// One node of a kind's shape.
#[derive(Debug)]
pub(crate) enum Shape {
    /// A struct: its declared fields (JSON names) and their shapes.
    Struct(HashMap<String, NodeId>),
    /// A map with free keys (`labels`, `data`, `resources.limits`) of one value shape.
    Map(NodeId),
    /// A list of one item shape.
    List(NodeId),
    /// A scalar, or a value the schema leaves open (RawExtension, free-form JSON).
    Leaf,
}

/// An index into [`Shapes`].
pub(crate) type NodeId = usize;

/// The shapes of every built-in kind.
pub(crate) struct Shapes {
    nodes: Vec<Shape>,
    kinds: HashMap<(&'static str, &'static str, &'static str), NodeId>,
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
        };
        let mut kinds = HashMap::new();
        for (gvk, root) in roots {
            let id = compiler.compile(&root.to_value());
            // every kind takes apiVersion and kind, whatever its schema says
            let leaf = compiler.push(Shape::Leaf);
            if let Shape::Struct(fields) = &mut compiler.nodes[id] {
                for name in ["apiVersion", "kind"] {
                    fields.entry(name.to_owned()).or_insert(leaf);
                }
            }
            kinds.insert(gvk, id);
        }
        Shapes {
            nodes: compiler.nodes,
            kinds,
        }
    }
}

/// Turns JSON schemas into nodes, each named definition once (they are recursive:
/// JSONSchemaProps holds JSONSchemaProps).
struct Compiler<'a> {
    definitions: &'a Map<String, Value>,
    named: HashMap<String, NodeId>,
    nodes: Vec<Shape>,
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
                    self.shape(&definition)
                }
                None => Shape::Leaf,
            };
            self.nodes[id] = shape;
            return id;
        }
        let shape = self.shape(schema);
        self.push(shape)
    }

    fn shape(&mut self, schema: &Value) -> Shape {
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
                .map(|(name, property)| (name.clone(), self.compile(property)))
                .collect();
            return Shape::Struct(fields);
        }
        if let Some(values) = schema.get("additionalProperties").filter(|v| v.is_object()) {
            return Shape::Map(self.compile(values));
        }
        if let Some(items) = schema.get("items").filter(|v| v.is_object()) {
            return Shape::List(self.compile(items));
        }
        Shape::Leaf
    }

    /// A shape equal to node `id`'s (only references to structs need copying in full;
    /// their field ids are shared).
    fn copy(&self, id: NodeId) -> Shape {
        match &self.nodes[id] {
            Shape::Struct(fields) => Shape::Struct(fields.clone()),
            Shape::Map(values) => Shape::Map(*values),
            Shape::List(items) => Shape::List(*items),
            Shape::Leaf => Shape::Leaf,
        }
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
        (Shape::Struct(fields), Value::Object(object)) => {
            for (key, child) in object {
                if child.is_null() {
                    continue;
                }
                path.push(Step::Field(key));
                match fields.get(key) {
                    Some(field) => walk(shapes, *field, child, path, out),
                    None => out.push(render(path)),
                }
                path.pop();
            }
        }
        (Shape::Map(values), Value::Object(object)) => {
            for (key, child) in object {
                path.push(Step::Field(key));
                walk(shapes, *values, child, path, out);
                path.pop();
            }
        }
        (Shape::List(items), Value::Array(list)) => {
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
                matches!(shapes.node(id), Shape::Struct(_)),
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
}
