//! Objects read through their kind's [`Shapes`] (structured-merge-diff's `typed`
//! package): the set of fields an applied configuration sets, the difference between
//! two versions of an object, the merge of a configuration into the live object, and
//! the removal of fields a manager stopped applying. Lists and maps merge and are owned
//! as the schema says: atomic ones as a whole, sets by value, list maps by their keys.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::fieldpath::{Path, PathElement, Set, path_string};
use crate::schema::{ListKind, NodeId, Shape, Shapes};

/// A kind's schema: its shapes and the root node.
#[derive(Clone, Copy)]
pub(crate) struct Schema<'a> {
    pub(crate) shapes: &'a Shapes,
    pub(crate) root: NodeId,
}

/// What changed from one object to another, as sets of paths.
#[derive(Debug, Default)]
pub(crate) struct Comparison {
    pub(crate) added: Set,
    pub(crate) modified: Set,
    pub(crate) removed: Set,
}

/// How a node is merged, compared and owned.
enum Kind<'a> {
    /// A scalar, or an atomic list, map or struct: one value, owned as a whole.
    Atomic,
    /// A granular struct or map: each key on its own.
    Fields {
        fields: Option<&'a HashMap<String, NodeId>>,
        /// The node of keys `fields` does not declare (`None`: undeclared keys are an
        /// error in an applied configuration and atomic elsewhere; `Some(None)`:
        /// deduced values).
        other: Option<Option<NodeId>>,
    },
    /// A set or a list map: each item on its own.
    Items { items: NodeId, list: &'a ListKind },
}

impl<'a> Schema<'a> {
    /// The node's kind for a value (deduced nodes follow the value: objects are granular,
    /// anything else atomic). `None` is a value the schema does not describe.
    fn kind(&self, node: Option<NodeId>, value: Option<&Value>) -> Kind<'a> {
        let deduced = Kind::Fields {
            fields: None,
            other: Some(None),
        };
        let Some(node) = node else {
            return match value {
                Some(Value::Object(_)) => deduced,
                _ => Kind::Atomic,
            };
        };
        match self.shapes.node(node) {
            Shape::Struct {
                fields,
                atomic: false,
                other,
            } => Kind::Fields {
                fields: Some(fields),
                other: other.map(Some),
            },
            Shape::Map {
                values,
                atomic: false,
            } => Kind::Fields {
                fields: None,
                other: Some(Some(*values)),
            },
            Shape::List { items, kind } if *kind != ListKind::Atomic => Kind::Items {
                items: *items,
                list: kind,
            },
            Shape::Deduced if matches!(value, Some(Value::Object(_))) => deduced,
            _ => Kind::Atomic,
        }
    }

    /// Whether `value` at `node` has parts of its own (a granular map, struct or list
    /// with content).
    fn is_granular(&self, node: Option<NodeId>, value: &Value) -> bool {
        match self.kind(node, Some(value)) {
            Kind::Fields { .. } => value.as_object().is_some_and(|m| !m.is_empty()),
            Kind::Items { .. } => value.as_array().is_some_and(|a| !a.is_empty()),
            Kind::Atomic => false,
        }
    }

    /// The node of a key under a granular struct or map; `Err` when undeclared.
    fn child(
        fields: Option<&HashMap<String, NodeId>>,
        other: Option<Option<NodeId>>,
        key: &str,
    ) -> Result<Option<NodeId>, ()> {
        match fields.and_then(|f| f.get(key)) {
            Some(id) => Ok(Some(*id)),
            None => other.ok_or(()),
        }
    }

    /// The path element of a list item: its keys in a list map (a missing key takes
    /// its default), its value in a set.
    fn item_element(list: &ListKind, item: &Value, index: usize) -> Result<PathElement, String> {
        match list {
            ListKind::Set => Ok(PathElement::Value(item.clone())),
            ListKind::Map(keys) => {
                let mut fields = Vec::with_capacity(keys.len());
                for (key, default) in keys {
                    match item.get(key).filter(|v| !v.is_null()).or(default.as_ref()) {
                        Some(value) => fields.push((key.clone(), value.clone())),
                        None => {
                            return Err(format!(
                                "element {index}: associative list with keys has an element that omits key field {key:?} (and doesn't have default value)"
                            ));
                        }
                    }
                }
                Ok(PathElement::key(fields))
            }
            ListKind::Atomic => Ok(PathElement::Index(index)),
        }
    }

    /// The elements of a list's items, refusing duplicates as upstream does.
    fn elements(list: &ListKind, items: &[Value], path: &Path) -> Result<Vec<PathElement>, String> {
        let mut elements: Vec<PathElement> = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let element = Self::item_element(list, item, index)
                .map_err(|e| format!("{}: {e}", path_string(path)))?;
            if elements.contains(&element) {
                let shown = element.to_string();
                return Err(format!(
                    "{}: duplicate entries for key {shown}",
                    path_string(path)
                ));
            }
            elements.push(element);
        }
        Ok(elements)
    }

    /// The fields an applied configuration sets (upstream's `ToFieldSet`): every scalar
    /// and atomic value, every list item, and a struct or map only when it is empty or
    /// null or a map's element; structs with content are owned through their fields.
    pub(crate) fn field_set(&self, value: &Value) -> Result<Set, String> {
        let mut set = Set::new();
        self.collect(Some(self.root), value, &mut Vec::new(), &mut set)?;
        Ok(set)
    }

    fn collect(
        &self,
        node: Option<NodeId>,
        value: &Value,
        path: &mut Path,
        set: &mut Set,
    ) -> Result<(), String> {
        if value.is_null() {
            set.insert(path);
            return Ok(());
        }
        match self.kind(node, Some(value)) {
            Kind::Atomic => set.insert(path),
            Kind::Fields { fields, other } => {
                let Value::Object(object) = value else {
                    return Err(format!(
                        "{}: expected map, got {}",
                        path_string(path),
                        type_word(value)
                    ));
                };
                for (key, child) in object {
                    path.push(PathElement::Field(key.clone()));
                    let declared = fields.is_some_and(|f| f.contains_key(key));
                    let Ok(child_node) = Self::child(fields, other, key) else {
                        let message =
                            format!("{}: field not declared in schema", path_string(path));
                        return Err(message);
                    };
                    self.collect(child_node, child, path, set)?;
                    let empty = child.as_object().is_some_and(Map::is_empty);
                    if empty || !declared {
                        set.insert(path);
                    }
                    path.pop();
                }
            }
            Kind::Items { items, list } => {
                let Value::Array(values) = value else {
                    return Err(format!(
                        "{}: expected list, got {}",
                        path_string(path),
                        type_word(value)
                    ));
                };
                let elements = Self::elements(list, values, path)?;
                for (element, item) in elements.into_iter().zip(values) {
                    path.push(element);
                    self.collect(Some(items), item, path, set)?;
                    set.insert(path);
                    path.pop();
                }
            }
        }
        Ok(())
    }

    /// What changed from `old` to `new` (upstream's `Compare`): a value only on the new
    /// side is added (a new struct or item along with everything in it), only on the
    /// old side removed, on both but different modified.
    pub(crate) fn compare(&self, old: &Value, new: &Value) -> Comparison {
        let mut comparison = Comparison::default();
        self.compare_node(
            Some(self.root),
            Some(old),
            Some(new),
            &mut Vec::new(),
            &mut comparison,
        );
        comparison
    }

    fn compare_node(
        &self,
        node: Option<NodeId>,
        old: Option<&Value>,
        new: Option<&Value>,
        path: &mut Path,
        c: &mut Comparison,
    ) {
        let blank = |v: Option<&Value>| match v {
            None | Some(Value::Null) => true,
            Some(Value::Object(m)) => m.is_empty(),
            Some(Value::Array(a)) => a.is_empty(),
            _ => false,
        };
        let kind = self.kind(node, new.or(old));
        // a null map or list is an empty one, as upstream reads it
        let object_like = |v: Option<&Value>| v.is_none_or(|v| v.is_object() || v.is_null());
        let array_like = |v: Option<&Value>| v.is_none_or(|v| v.is_array() || v.is_null());
        let shapes_agree = match &kind {
            Kind::Fields { .. } => object_like(old) && object_like(new),
            Kind::Items { .. } => array_like(old) && array_like(new),
            Kind::Atomic => false,
        };
        if matches!(kind, Kind::Atomic) || !shapes_agree || (blank(old) && blank(new)) {
            match (old, new) {
                (None, Some(_)) => c.added.insert(path),
                (Some(_), None) => c.removed.insert(path),
                (Some(a), Some(b)) if a != b => {
                    c.modified.insert(path);
                    // a value that changes shape (a map becoming a scalar, a list
                    // becoming null): what was under the old one is gone, what is under
                    // the new one is new
                    if self.is_granular(node, a) {
                        self.compare_node(node, Some(a), None, path, c);
                        c.removed.remove(path);
                    }
                    if self.is_granular(node, b) {
                        self.compare_node(node, None, Some(b), path, c);
                        c.added.remove(path);
                    }
                }
                _ => {}
            }
            return;
        }
        match kind {
            Kind::Fields { fields, other } => {
                let empty = Map::new();
                let old_map = old.and_then(Value::as_object).unwrap_or(&empty);
                let new_map = new.and_then(Value::as_object).unwrap_or(&empty);
                for (key, value) in old_map {
                    let child = Self::child(fields, other, key).unwrap_or(None);
                    path.push(PathElement::Field(key.clone()));
                    self.compare_node(child, Some(value), new_map.get(key), path, c);
                    path.pop();
                }
                for (key, value) in new_map {
                    if old_map.contains_key(key) {
                        continue;
                    }
                    let child = Self::child(fields, other, key).unwrap_or(None);
                    path.push(PathElement::Field(key.clone()));
                    self.compare_node(child, None, Some(value), path, c);
                    path.pop();
                }
            }
            Kind::Items { items, list } => {
                let old_items = old
                    .and_then(Value::as_array)
                    .map(Vec::as_slice)
                    .unwrap_or(&[]);
                let new_items = new
                    .and_then(Value::as_array)
                    .map(Vec::as_slice)
                    .unwrap_or(&[]);
                // items whose keys cannot be read are skipped: the object was stored
                // before these rules, and only an applied configuration is refused
                let keyed = |values: &'_ [Value]| -> Vec<(PathElement, usize)> {
                    values
                        .iter()
                        .enumerate()
                        .filter_map(|(i, v)| Self::item_element(list, v, i).ok().map(|e| (e, i)))
                        .collect()
                };
                let old_keyed = keyed(old_items);
                let new_keyed = keyed(new_items);
                for (element, i) in &old_keyed {
                    let partner = new_keyed
                        .iter()
                        .find(|(e, _)| e == element)
                        .map(|(_, j)| &new_items[*j]);
                    path.push(element.clone());
                    self.compare_node(Some(items), Some(&old_items[*i]), partner, path, c);
                    path.pop();
                }
                for (element, j) in &new_keyed {
                    if old_keyed.iter().any(|(e, _)| e == element) {
                        continue;
                    }
                    path.push(element.clone());
                    self.compare_node(Some(items), None, Some(&new_items[*j]), path, c);
                    path.pop();
                }
            }
            Kind::Atomic => {}
        }
        // a granular node that appears or disappears is itself added or removed
        match (old, new) {
            (None, Some(_)) => c.added.insert(path),
            (Some(_), None) => c.removed.insert(path),
            _ => {}
        }
    }

    /// `config` merged into `live` (upstream's `Merge`, keeping the configuration's
    /// values): granular structs and maps key by key, list maps and sets item by item
    /// (the configuration's order, with live-only items where they stood), everything
    /// else replaced. A null in the configuration removes the field.
    pub(crate) fn merge(&self, live: &Value, config: &Value) -> Value {
        self.merge_node(Some(self.root), Some(live), config)
    }

    fn merge_node(&self, node: Option<NodeId>, live: Option<&Value>, config: &Value) -> Value {
        let Some(live) = live else {
            return without_nulls(config);
        };
        match (self.kind(node, Some(config)), live, config) {
            (Kind::Fields { fields, other }, Value::Object(old), Value::Object(new)) => {
                let mut merged = old.clone();
                for (key, value) in new {
                    if value.is_null() {
                        merged.remove(key);
                        continue;
                    }
                    let child = Self::child(fields, other, key).unwrap_or(None);
                    let value = self.merge_node(child, old.get(key), value);
                    merged.insert(key.clone(), value);
                }
                Value::Object(merged)
            }
            (Kind::Items { items, list }, Value::Array(old), Value::Array(new)) => {
                let element = |i: usize, v: &Value| Self::item_element(list, v, i).ok();
                let old_elements: Vec<_> =
                    old.iter().enumerate().map(|(i, v)| element(i, v)).collect();
                let new_elements: Vec<_> =
                    new.iter().enumerate().map(|(i, v)| element(i, v)).collect();
                // live-only items keep their place; a shared item comes after the
                // configuration's items before it (so shared items follow the
                // configuration's order); the configuration's other items follow
                let position_in = |elements: &[Option<PathElement>], e: &Option<PathElement>| {
                    e.as_ref()
                        .and_then(|e| elements.iter().position(|o| o.as_ref() == Some(e)))
                };
                let mut merged = Vec::with_capacity(old.len() + new.len());
                let mut emitted = vec![false; new.len()];
                let mut emit = |merged: &mut Vec<Value>, j: usize| {
                    if !std::mem::replace(&mut emitted[j], true) {
                        let live = position_in(&old_elements, &new_elements[j]).map(|i| &old[i]);
                        merged.push(self.merge_node(Some(items), live, &new[j]));
                    }
                };
                let mut next_new = 0;
                for (value, element) in old.iter().zip(&old_elements) {
                    match position_in(&new_elements, element) {
                        None => merged.push(value.clone()),
                        Some(j) => {
                            while next_new <= j {
                                emit(&mut merged, next_new);
                                next_new += 1;
                            }
                            emit(&mut merged, j);
                        }
                    }
                }
                for j in next_new..new.len() {
                    emit(&mut merged, j);
                }
                Value::Array(merged)
            }
            _ => without_nulls(config),
        }
    }

    /// `value` without the fields and items `set` holds (upstream's `RemoveItems`).
    pub(crate) fn remove(&self, value: &mut Value, set: &Set) {
        self.remove_node(Some(self.root), value, set);
    }

    fn remove_node(&self, node: Option<NodeId>, value: &mut Value, set: &Set) {
        match (self.kind(node, Some(value)), value) {
            (Kind::Fields { fields, other }, Value::Object(object)) => {
                for member in set.members() {
                    if let PathElement::Field(name) = member {
                        object.remove(name);
                    }
                }
                for (element, below) in set.children() {
                    if let PathElement::Field(name) = element {
                        let child = Self::child(fields, other, name).unwrap_or(None);
                        if let Some(value) = object.get_mut(name) {
                            self.remove_node(child, value, below);
                        }
                    }
                }
            }
            (Kind::Items { items, list }, Value::Array(values)) => {
                let mut index = 0;
                values.retain(|item| {
                    let element = Self::item_element(list, item, index).ok();
                    index += 1;
                    !element.is_some_and(|e| set.members().any(|m| *m == e))
                });
                for (i, item) in values.iter_mut().enumerate() {
                    if let Ok(element) = Self::item_element(list, item, i) {
                        if let Some(below) = set.child(&element) {
                            self.remove_node(Some(items), item, below);
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

/// A configuration's value as it is stored: nulls inside objects mean "absent".
fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(object) => Value::Object(
            object
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

/// Upstream's word for a value's type in schema errors.
fn type_word(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "numeric",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "map",
    }
}
