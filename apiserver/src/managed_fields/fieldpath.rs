//! Field paths and field sets for server-side apply (the model of
//! sigs.k8s.io/structured-merge-diff's `fieldpath` package): a [`PathElement`]
//! is one step into an object (a field, an associative-list key, a set value or
//! a list index), a [`Path`] is a sequence of them, and a [`Set`] is a trie of
//! paths with the set algebra the merge needs (union, difference, intersection
//! and the recursive difference that strips reset fields such as `status`).
//!
//! A [`Set`] is stored in `metadata.managedFields[].fieldsV1` in the `FieldsV1`
//! JSON form: `{"f:spec":{"f:replicas":{}}}`. `Set::to_fields_v1_string` writes
//! the bytes exactly as upstream does (keys in path-element order, `"."` first,
//! Go's HTML-escaping JSON string encoding) and [`Set::from_fields_v1`] reads
//! them back, skipping element kinds it does not know.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};

use serde_json::{Map, Number, Value};

/// One step of a path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PathElement {
    /// A struct field or map key: `f:<name>`.
    Field(String),
    /// An associative-list item by its key fields, sorted by field name: `k:{"name":"a"}`.
    Key(Vec<(String, Value)>),
    /// A set item by value: `v:<json>`.
    Value(Value),
    /// A list index: `i:<n>`.
    Index(usize),
}

/// A sequence of path elements from the object's root.
pub(crate) type Path = Vec<PathElement>;

impl PathElement {
    /// A key element from its fields in any order (they are sorted by name here).
    pub(crate) fn key<I, S>(fields: I) -> PathElement
    where
        I: IntoIterator<Item = (S, Value)>,
        S: Into<String>,
    {
        let mut fields: Vec<(String, Value)> =
            fields.into_iter().map(|(n, v)| (n.into(), v)).collect();
        fields.sort_by(|a, b| a.0.cmp(&b.0));
        PathElement::Key(fields)
    }

    /// A field element.
    pub(crate) fn field(name: impl Into<String>) -> PathElement {
        PathElement::Field(name.into())
    }

    fn rank(&self) -> u8 {
        match self {
            PathElement::Field(_) => 0,
            PathElement::Key(_) => 1,
            PathElement::Value(_) => 2,
            PathElement::Index(_) => 3,
        }
    }

    /// The element's `FieldsV1` key form (`f:name`, `k:{...}`, `v:<json>`, `i:<n>`),
    /// before it is itself JSON-quoted as an object key.
    pub(crate) fn to_fields_v1_key(&self) -> String {
        let mut out = String::new();
        match self {
            PathElement::Field(name) => {
                out.push_str("f:");
                out.push_str(name);
            }
            PathElement::Key(fields) => {
                out.push_str("k:{");
                for (i, (name, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_json_string(&mut out, name);
                    out.push(':');
                    write_json_value(&mut out, value);
                }
                out.push('}');
            }
            PathElement::Value(value) => {
                out.push_str("v:");
                write_json_value(&mut out, value);
            }
            PathElement::Index(index) => {
                let _ = write!(out, "i:{index}");
            }
        }
        out
    }

    /// Parses one `FieldsV1` key. `Ok(None)` for a well-formed key of an element
    /// kind this version does not know (`x:...`), which readers skip.
    pub(crate) fn from_fields_v1_key(key: &str) -> Result<Option<PathElement>, String> {
        let bytes = key.as_bytes();
        if bytes.len() < 2 {
            return Err(format!("key must be 2 characters long: {key:?}"));
        }
        if bytes[1] != b':' {
            return Err(format!("missing colon: {key:?}"));
        }
        // bytes[1] is ASCII, so byte 2 is a char boundary.
        let rest = &key[2..];
        match bytes[0] {
            b'f' => Ok(Some(PathElement::Field(rest.to_string()))),
            b'v' => {
                let value: Value = serde_json::from_str(rest)
                    .map_err(|e| format!("parsing value of {key:?}: {e}"))?;
                Ok(Some(PathElement::Value(value)))
            }
            b'k' => {
                let value: Value = serde_json::from_str(rest)
                    .map_err(|e| format!("parsing key fields of {key:?}: {e}"))?;
                match value {
                    Value::Object(map) => Ok(Some(PathElement::key(map))),
                    _ => Err(format!("key fields of {key:?} are not a JSON object")),
                }
            }
            b'i' => rest
                .parse::<usize>()
                .map(|i| Some(PathElement::Index(i)))
                .map_err(|e| format!("parsing index of {key:?}: {e}")),
            _ => Ok(None),
        }
    }
}

impl Ord for PathElement {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (PathElement::Field(a), PathElement::Field(b)) => a.as_bytes().cmp(b.as_bytes()),
            (PathElement::Key(a), PathElement::Key(b)) => {
                for ((an, av), (bn, bv)) in a.iter().zip(b.iter()) {
                    let c = an
                        .as_bytes()
                        .cmp(bn.as_bytes())
                        .then_with(|| compare_values(av, bv));
                    if c != Ordering::Equal {
                        return c;
                    }
                }
                a.len().cmp(&b.len())
            }
            (PathElement::Value(a), PathElement::Value(b)) => compare_values(a, b),
            (PathElement::Index(a), PathElement::Index(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl PartialOrd for PathElement {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for PathElement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathElement::Field(name) => write!(f, ".{name}"),
            PathElement::Key(fields) => {
                f.write_str("[")?;
                for (i, (name, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{name}={}", display_value(value))?;
                }
                f.write_str("]")
            }
            PathElement::Value(value) => write!(f, "[={}]", display_value(value)),
            PathElement::Index(index) => write!(f, "[{index}]"),
        }
    }
}

/// The path's string form: `.spec.containers[name="nginx"].image`.
pub(crate) fn path_string(path: &[PathElement]) -> String {
    let mut out = String::new();
    for element in path {
        let _ = write!(out, "{element}");
    }
    out
}

/// The total order of values used by path elements: numbers (integers and
/// floats together, numerically) < strings < bools < arrays < objects < null.
pub(crate) fn compare_values(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Number(_) => 0,
            Value::String(_) => 1,
            Value::Bool(_) => 2,
            Value::Array(_) => 3,
            Value::Object(_) => 4,
            Value::Null => 5,
        }
    }
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => compare_numbers(x, y),
        (Value::String(x), Value::String(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => {
            for (xv, yv) in x.iter().zip(y.iter()) {
                let c = compare_values(xv, yv);
                if c != Ordering::Equal {
                    return c;
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Object(x), Value::Object(y)) => {
            let mut xs: Vec<(&String, &Value)> = x.iter().collect();
            let mut ys: Vec<(&String, &Value)> = y.iter().collect();
            xs.sort_by(|p, q| p.0.cmp(q.0));
            ys.sort_by(|p, q| p.0.cmp(q.0));
            for ((xk, xv), (yk, yv)) in xs.iter().zip(ys.iter()) {
                let c = xk
                    .as_bytes()
                    .cmp(yk.as_bytes())
                    .then_with(|| compare_values(xv, yv));
                if c != Ordering::Equal {
                    return c;
                }
            }
            xs.len().cmp(&ys.len())
        }
        _ => rank(a).cmp(&rank(b)),
    }
}

fn number_as_int(n: &Number) -> Option<i128> {
    n.as_i64()
        .map(i128::from)
        .or_else(|| n.as_u64().map(i128::from))
}

/// Numbers compare numerically; an integer and a float of the same value are
/// told apart (integer first) so the order agrees with `Value`'s equality.
fn compare_numbers(a: &Number, b: &Number) -> Ordering {
    match (number_as_int(a), number_as_int(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (xi, yi) => {
            let x = a.as_f64().unwrap_or(0.0);
            let y = b.as_f64().unwrap_or(0.0);
            x.partial_cmp(&y)
                .unwrap_or(Ordering::Equal)
                .then_with(|| xi.is_none().cmp(&yi.is_none()))
        }
    }
}

/// A value as upstream's path strings show it: strings quoted, numbers and
/// bools bare, lists and maps as compact JSON.
fn display_value(value: &Value) -> String {
    match value {
        Value::String(s) => go_quote(s),
        other => {
            let mut out = String::new();
            write_json_value(&mut out, other);
            out
        }
    }
}

/// Go's `%q` quoting of a string.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON string as upstream's writer (Go, HTML-escaping) emits it: `<`, `>`,
/// `&`, U+2028 and U+2029 escaped, control characters as `\n`, `\r`, `\t` or
/// `\u00XX`.
fn write_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A float as Go's JSON writer formats it: shortest digits, plain notation for
/// 1e-6 <= |f| < 1e21 (an integral value without a fraction), else `1e+21` or
/// `1e-7` style.
fn write_json_float(out: &mut String, f: f64) {
    let abs = f.abs();
    if abs == 0.0 || (1e-6..1e21).contains(&abs) {
        let _ = write!(out, "{f}");
        return;
    }
    let formatted = format!("{f:e}");
    match formatted.split_once('e') {
        Some((mantissa, exponent)) => {
            out.push_str(mantissa);
            out.push('e');
            if !exponent.starts_with('-') {
                out.push('+');
            }
            out.push_str(exponent);
        }
        None => out.push_str(&formatted),
    }
}

/// Compact JSON of a value as upstream writes it (object keys sorted).
fn write_json_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match number_as_int(n) {
            Some(i) => {
                let _ = write!(out, "{i}");
            }
            None => write_json_float(out, n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => write_json_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_string(out, k);
                out.push(':');
                write_json_value(out, v);
            }
            out.push('}');
        }
    }
}

/// A set of paths, stored as a trie: the elements that are members at this
/// node, and the sets under each element that has member paths below it.
/// Child sets are never empty.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Set {
    members: BTreeSet<PathElement>,
    children: BTreeMap<PathElement, Set>,
}

impl Set {
    pub(crate) fn new() -> Set {
        Set::default()
    }

    #[cfg(test)]
    /// A set of the given paths.
    pub(crate) fn from_paths<'a, I>(paths: I) -> Set
    where
        I: IntoIterator<Item = &'a [PathElement]>,
    {
        let mut set = Set::new();
        for path in paths {
            set.insert(path);
        }
        set
    }

    /// No member anywhere.
    pub(crate) fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.values().all(Set::is_empty)
    }

    /// Adds a path; the empty path is ignored.
    pub(crate) fn insert(&mut self, path: &[PathElement]) {
        match path {
            [] => {}
            [last] => {
                self.members.insert(last.clone());
            }
            [first, rest @ ..] => {
                self.children.entry(first.clone()).or_default().insert(rest);
            }
        }
    }

    /// Takes one path out (in place; what lies under it stays). Returns whether this
    /// node is left empty.
    pub(crate) fn remove(&mut self, path: &[PathElement]) -> bool {
        match path {
            [] => {}
            [last] => {
                self.members.remove(last);
            }
            [first, rest @ ..] => {
                if let Some(child) = self.children.get_mut(first)
                    && child.remove(rest)
                {
                    self.children.remove(first);
                }
            }
        }
        self.members.is_empty() && self.children.is_empty()
    }

    /// Takes a path and everything under it out (in place). Returns whether this node
    /// is left empty.
    pub(crate) fn remove_subtree(&mut self, path: &[PathElement]) -> bool {
        match path {
            [] => {}
            [last] => {
                self.members.remove(last);
                self.children.remove(last);
            }
            [first, rest @ ..] => {
                if let Some(child) = self.children.get_mut(first)
                    && child.remove_subtree(rest)
                {
                    self.children.remove(first);
                }
            }
        }
        self.members.is_empty() && self.children.is_empty()
    }

    /// Whether the path is a member (not merely a prefix of one).
    pub(crate) fn has(&self, path: &[PathElement]) -> bool {
        match path {
            [] => false,
            [last] => self.members.contains(last),
            [first, rest @ ..] => self.children.get(first).is_some_and(|c| c.has(rest)),
        }
    }

    /// Whether some member equals or lies under `prefix`.
    pub(crate) fn has_prefix(&self, prefix: &[PathElement]) -> bool {
        match prefix {
            [] => !self.is_empty(),
            [last] => self.members.contains(last) || self.children.contains_key(last),
            [first, rest @ ..] => self.children.get(first).is_some_and(|c| c.has_prefix(rest)),
        }
    }

    #[cfg(test)]
    /// The paths under `prefix`, relative to it (upstream's `WithPrefix`).
    pub(crate) fn with_prefix(&self, prefix: &[PathElement]) -> Set {
        let mut node = self;
        for element in prefix {
            match node.children.get(element) {
                Some(child) => node = child,
                None => return Set::new(),
            }
        }
        node.clone()
    }

    /// Every member of either set.
    pub(crate) fn union(&self, other: &Set) -> Set {
        let members = self.members.union(&other.members).cloned().collect();
        let mut children = self.children.clone();
        for (element, theirs) in &other.children {
            match children.get_mut(element) {
                Some(ours) => *ours = ours.union(theirs),
                None => {
                    children.insert(element.clone(), theirs.clone());
                }
            }
        }
        Set { members, children }
    }

    /// The members of `self` that are not members of `other`.
    pub(crate) fn difference(&self, other: &Set) -> Set {
        let members = self.members.difference(&other.members).cloned().collect();
        let mut children = BTreeMap::new();
        for (element, ours) in &self.children {
            let rest = match other.children.get(element) {
                Some(theirs) => ours.difference(theirs),
                None => ours.clone(),
            };
            if !rest.is_empty() {
                children.insert(element.clone(), rest);
            }
        }
        Set { members, children }
    }

    /// The members of both sets.
    pub(crate) fn intersection(&self, other: &Set) -> Set {
        let members = self.members.intersection(&other.members).cloned().collect();
        let mut children = BTreeMap::new();
        for (element, ours) in &self.children {
            if let Some(theirs) = other.children.get(element) {
                let both = ours.intersection(theirs);
                if !both.is_empty() {
                    children.insert(element.clone(), both);
                }
            }
        }
        Set { members, children }
    }

    /// `self` without every path that equals, or lies under, a member of `other`.
    pub(crate) fn recursive_difference(&self, other: &Set) -> Set {
        let members = self.members.difference(&other.members).cloned().collect();
        let mut children = BTreeMap::new();
        for (element, ours) in &self.children {
            if other.members.contains(element) {
                continue;
            }
            let rest = match other.children.get(element) {
                Some(theirs) => ours.recursive_difference(theirs),
                None => ours.clone(),
            };
            if !rest.is_empty() {
                children.insert(element.clone(), rest);
            }
        }
        Set { members, children }
    }

    /// Every member path, in upstream's iteration order: at each node its own
    /// members (in element order) first, then the paths under each child (in
    /// element order). A path therefore comes before any path under it.
    pub(crate) fn paths(&self) -> Vec<Path> {
        let mut out = Vec::with_capacity(self.len());
        let mut prefix = Vec::new();
        self.collect_paths(&mut prefix, &mut out);
        out
    }

    fn collect_paths(&self, prefix: &mut Path, out: &mut Vec<Path>) {
        for member in &self.members {
            let mut path = prefix.clone();
            path.push(member.clone());
            out.push(path);
        }
        for (element, child) in &self.children {
            prefix.push(element.clone());
            child.collect_paths(prefix, out);
            prefix.pop();
        }
    }

    #[cfg(test)]
    /// The member paths that have no member path under them (upstream's `Leaves`).
    pub(crate) fn leaves(&self) -> Set {
        let mut members = BTreeSet::new();
        for member in &self.members {
            if !self.children.contains_key(member) {
                members.insert(member.clone());
            }
        }
        let mut children = BTreeMap::new();
        for (element, child) in &self.children {
            let leaves = child.leaves();
            if !leaves.is_empty() {
                children.insert(element.clone(), leaves);
            }
        }
        Set { members, children }
    }

    /// The number of member paths.
    pub(crate) fn len(&self) -> usize {
        self.members.len() + self.children.values().map(Set::len).sum::<usize>()
    }

    /// The set under one element, if any path continues below it.
    pub(crate) fn child(&self, element: &PathElement) -> Option<&Set> {
        self.children.get(element)
    }

    /// The member elements of this node (paths of length one).
    pub(crate) fn members(&self) -> impl Iterator<Item = &PathElement> {
        self.members.iter()
    }

    /// The elements with paths below them, with their sets.
    pub(crate) fn children(&self) -> impl Iterator<Item = (&PathElement, &Set)> {
        self.children.iter()
    }

    /// Every element of this node, members and children merged in element order,
    /// each with whether it is a member and its child set.
    fn entries(&self) -> Vec<(&PathElement, bool, Option<&Set>)> {
        let mut out = Vec::with_capacity(self.members.len() + self.children.len());
        let mut members = self.members.iter().peekable();
        let mut children = self.children.iter().peekable();
        loop {
            match (members.peek(), children.peek()) {
                (None, None) => break,
                (Some(m), None) => {
                    out.push((*m, true, None));
                    members.next();
                }
                (None, Some((c, set))) => {
                    out.push((*c, false, Some(*set)));
                    children.next();
                }
                (Some(m), Some((c, set))) => match (*m).cmp(*c) {
                    Ordering::Less => {
                        out.push((*m, true, None));
                        members.next();
                    }
                    Ordering::Greater => {
                        out.push((*c, false, Some(*set)));
                        children.next();
                    }
                    Ordering::Equal => {
                        out.push((*c, true, Some(*set)));
                        members.next();
                        children.next();
                    }
                },
            }
        }
        out
    }

    #[cfg(test)]
    /// The `FieldsV1` JSON text, byte for byte as upstream writes it.
    pub(crate) fn to_fields_v1_string(&self) -> String {
        let mut out = String::new();
        self.write_fields_v1(&mut out, false);
        out
    }

    #[cfg(test)]
    fn write_fields_v1(&self, out: &mut String, is_member: bool) {
        out.push('{');
        let mut first = true;
        if is_member && !self.is_empty() {
            out.push_str("\".\":{}");
            first = false;
        }
        for (element, member, child) in self.entries() {
            if !first {
                out.push(',');
            }
            first = false;
            write_json_string(out, &element.to_fields_v1_key());
            out.push(':');
            match child {
                Some(child) => child.write_fields_v1(out, member),
                None => out.push_str("{}"),
            }
        }
        out.push('}');
    }

    /// The `FieldsV1` as a JSON value.
    pub(crate) fn to_fields_v1(&self) -> Value {
        self.fields_v1_value(false)
    }

    fn fields_v1_value(&self, is_member: bool) -> Value {
        let mut map = Map::new();
        if is_member && !self.is_empty() {
            map.insert(".".to_string(), Value::Object(Map::new()));
        }
        for (element, member, child) in self.entries() {
            let value = match child {
                Some(child) => child.fields_v1_value(member),
                None => Value::Object(Map::new()),
            };
            map.insert(element.to_fields_v1_key(), value);
        }
        Value::Object(map)
    }

    #[cfg(test)]
    /// Parses a `FieldsV1` JSON text.
    pub(crate) fn from_fields_v1_str(text: &str) -> Result<Set, String> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| format!("parsing FieldsV1 JSON: {e}"))?;
        Set::from_fields_v1(&value)
    }

    /// Parses a `FieldsV1` value.
    pub(crate) fn from_fields_v1(value: &Value) -> Result<Set, String> {
        let (set, _) = read_fields_v1(value)?;
        Ok(set)
    }
}

/// Reads one `FieldsV1` object: the set below it, and whether the node itself
/// is a member of its parent (it has `"."`, or nothing understood below it).
fn read_fields_v1(value: &Value) -> Result<(Set, bool), String> {
    let Value::Object(map) = value else {
        return Err(format!("FieldsV1: expected an object, got {value}"));
    };
    let mut set = Set::new();
    let mut is_member = false;
    for (key, child) in map {
        if key == "." {
            is_member = true;
            continue;
        }
        let Some(element) = PathElement::from_fields_v1_key(key)? else {
            // An element kind from a newer version: dropped, as upstream does.
            continue;
        };
        let (grandchildren, child_is_member) =
            read_fields_v1(child).map_err(|e| format!("under {key:?}: {e}"))?;
        if child_is_member {
            set.members.insert(element.clone());
        }
        if !grandchildren.is_empty() {
            match set.children.get_mut(&element) {
                Some(existing) => *existing = existing.union(&grandchildren),
                None => {
                    set.children.insert(element, grandchildren);
                }
            }
        }
    }
    if set.is_empty() {
        is_member = true;
    }
    Ok((set, is_member))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn f(name: &str) -> PathElement {
        PathElement::field(name)
    }

    fn k(fields: Value) -> PathElement {
        match fields {
            Value::Object(map) => PathElement::key(map),
            _ => panic!("not an object"),
        }
    }

    fn v(value: Value) -> PathElement {
        PathElement::Value(value)
    }

    fn set_of(paths: &[Path]) -> Set {
        Set::from_paths(paths.iter().map(Vec::as_slice))
    }

    fn round_trip(set: &Set) {
        let text = set.to_fields_v1_string();
        let parsed = Set::from_fields_v1(&set.to_fields_v1()).unwrap();
        assert_eq!(&parsed, set, "{text}");
        let reparsed = Set::from_fields_v1_str(&text).unwrap();
        assert_eq!(&reparsed, set, "{text}");
        assert_eq!(reparsed.to_fields_v1_string(), text);
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value, set.to_fields_v1());
    }

    #[test]
    fn encodes_the_documented_example() {
        let a = k(json!({"name": "a"}));
        let set = set_of(&[
            vec![f("metadata"), f("labels"), f("app")],
            vec![f("spec"), f("containers"), a.clone()],
            vec![f("spec"), f("containers"), a.clone(), f("image")],
            vec![f("spec"), f("containers"), a.clone(), f("name")],
        ]);
        assert_eq!(
            set.to_fields_v1_string(),
            r#"{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"a\"}":{".":{},"f:image":{},"f:name":{}}}}}"#
        );
        round_trip(&set);
    }

    #[test]
    fn empty_set_encodes_as_empty_object() {
        let set = Set::new();
        assert!(set.is_empty());
        assert_eq!(set.len(), 0);
        assert_eq!(set.to_fields_v1_string(), "{}");
        assert_eq!(set.to_fields_v1(), json!({}));
        assert_eq!(Set::from_fields_v1(&json!({})).unwrap(), Set::new());
    }

    #[test]
    fn element_kinds_sort_field_key_value_index() {
        let set = set_of(&[
            vec![PathElement::Index(0)],
            vec![v(json!("x"))],
            vec![k(json!({"a": 1}))],
            vec![f("z")],
        ]);
        assert_eq!(
            set.to_fields_v1_string(),
            r#"{"f:z":{},"k:{\"a\":1}":{},"v:\"x\"":{},"i:0":{}}"#
        );
        round_trip(&set);
    }

    #[test]
    fn numbers_sort_before_strings_in_values() {
        let set = set_of(&[
            vec![f("ports"), v(json!("kubernetes"))],
            vec![f("ports"), v(json!(80))],
            vec![f("ports"), v(json!(8.5))],
            vec![f("ports"), v(json!(true))],
            vec![f("ports"), v(json!(null))],
            vec![f("ports"), v(json!([1, 2]))],
            vec![f("ports"), v(json!({"a": "b"}))],
            vec![f("ports"), v(json!(3))],
        ]);
        assert_eq!(
            set.to_fields_v1_string(),
            r#"{"f:ports":{"v:3":{},"v:8.5":{},"v:80":{},"v:\"kubernetes\"":{},"v:true":{},"v:[1,2]":{},"v:{\"a\":\"b\"}":{},"v:null":{}}}"#
        );
        round_trip(&set);
    }

    #[test]
    fn element_order_within_kinds() {
        assert!(f("a") < f("b"));
        assert!(f("B") < f("a"));
        assert!(PathElement::Index(2) < PathElement::Index(10));
        // key fields: name first, then value, then shorter first
        assert!(k(json!({"a": 1})) < k(json!({"b": 0})));
        assert!(k(json!({"a": 1})) < k(json!({"a": 2})));
        assert!(k(json!({"a": 1})) < k(json!({"a": 1, "b": 1})));
        assert!(
            k(json!({"containerPort": 80, "protocol": "TCP"}))
                < k(json!({"containerPort": 80, "protocol": "UDP"}))
        );
        // values
        assert!(v(json!(2)) < v(json!(2.5)));
        assert!(v(json!(-1.5)) < v(json!(-1)));
        assert!(v(json!(1000)) < v(json!("1")));
        assert!(v(json!("b")) < v(json!(false)));
        assert!(v(json!(false)) < v(json!(true)));
        assert!(v(json!(true)) < v(json!([])));
        assert!(v(json!([1])) < v(json!([1, 0])));
        assert!(v(json!([2])) < v(json!([3])));
        assert!(v(json!([9])) < v(json!({})));
        assert!(v(json!({"a": 2})) < v(json!({"b": 1})));
        assert!(v(json!({"a": 1})) < v(json!({"a": 1, "b": 1})));
        assert!(v(json!({"z": 1})) < v(json!(null)));
        assert_eq!(v(json!(1)).cmp(&v(json!(1))), Ordering::Equal);
        assert_ne!(v(json!(1)).cmp(&v(json!(1.0))), Ordering::Equal);
        // across kinds
        assert!(f("zzz") < k(json!({})));
        assert!(k(json!({"z": "z"})) < v(json!(0)));
        assert!(v(json!(null)) < PathElement::Index(0));
    }

    #[test]
    fn key_fields_are_sorted_and_encoded_compactly() {
        let port = PathElement::key([("protocol", json!("TCP")), ("containerPort", json!(80))]);
        assert_eq!(
            port,
            PathElement::Key(vec![
                ("containerPort".to_string(), json!(80)),
                ("protocol".to_string(), json!("TCP")),
            ])
        );
        assert_eq!(
            port.to_fields_v1_key(),
            r#"k:{"containerPort":80,"protocol":"TCP"}"#
        );
        let set = set_of(&[vec![f("spec"), f("ports"), port.clone()]]);
        assert_eq!(
            set.to_fields_v1_string(),
            r#"{"f:spec":{"f:ports":{"k:{\"containerPort\":80,\"protocol\":\"TCP\"}":{}}}}"#
        );
        // parsing sorts the key fields whatever their written order
        let parsed = Set::from_fields_v1(&json!({
            "f:spec": {"f:ports": {r#"k:{"protocol":"TCP","containerPort":80}"#: {}}}
        }))
        .unwrap();
        assert_eq!(parsed, set);
    }

    #[test]
    fn element_encodings() {
        assert_eq!(
            f("app.kubernetes.io/name").to_fields_v1_key(),
            "f:app.kubernetes.io/name"
        );
        assert_eq!(
            v(json!("kubernetes")).to_fields_v1_key(),
            r#"v:"kubernetes""#
        );
        assert_eq!(v(json!(80)).to_fields_v1_key(), "v:80");
        assert_eq!(v(json!(1.5)).to_fields_v1_key(), "v:1.5");
        assert_eq!(v(json!(2.0)).to_fields_v1_key(), "v:2");
        assert_eq!(v(json!(1e21)).to_fields_v1_key(), "v:1e+21");
        assert_eq!(v(json!(1.5e-7)).to_fields_v1_key(), "v:1.5e-7");
        assert_eq!(v(json!(-1e-10)).to_fields_v1_key(), "v:-1e-10");
        assert_eq!(PathElement::Index(12).to_fields_v1_key(), "i:12");
        // Go's HTML-safe escaping, both inside the element and as an object key
        assert_eq!(
            v(json!("a<b>&c")).to_fields_v1_key(),
            r#"v:"a\u003cb\u003e\u0026c""#
        );
        let set = set_of(&[vec![f("a<b"), v(json!("x\ny"))]]);
        assert_eq!(
            set.to_fields_v1_string(),
            r#"{"f:a\u003cb":{"v:\"x\\ny\"":{}}}"#
        );
        round_trip(&set);
    }

    #[test]
    fn round_trips() {
        let sets = [
            Set::new(),
            set_of(&[vec![f("a")]]),
            set_of(&[vec![f("a")], vec![f("a"), f("b")]]),
            set_of(&[
                vec![f("metadata"), f("annotations"), f("example.com/x")],
                vec![f("metadata"), f("finalizers"), v(json!("example.com/f"))],
                vec![f("spec"), f("template"), f("spec"), f("containers")],
                vec![
                    f("spec"),
                    f("template"),
                    f("spec"),
                    f("containers"),
                    k(json!({"name": "nginx"})),
                ],
                vec![
                    f("spec"),
                    f("template"),
                    f("spec"),
                    f("containers"),
                    k(json!({"name": "nginx"})),
                    f("ports"),
                    k(json!({"containerPort": 80, "protocol": "TCP"})),
                    f("containerPort"),
                ],
                vec![f("spec"), f("args"), PathElement::Index(3)],
                vec![f("spec"), f("weird"), v(json!({"b": [1, "x"], "a": null}))],
            ]),
        ];
        for set in &sets {
            round_trip(set);
        }
    }

    #[test]
    fn member_with_children_carries_dot() {
        let set = set_of(&[vec![f("spec")], vec![f("spec"), f("replicas")]]);
        assert_eq!(
            set.to_fields_v1_string(),
            r#"{"f:spec":{".":{},"f:replicas":{}}}"#
        );
        assert_eq!(
            set.to_fields_v1(),
            json!({"f:spec": {".": {}, "f:replicas": {}}})
        );
        // an intermediate node only: no "."
        let set = set_of(&[vec![f("spec"), f("replicas")]]);
        assert_eq!(set.to_fields_v1_string(), r#"{"f:spec":{"f:replicas":{}}}"#);
        assert!(!set.has(&[f("spec")]));
    }

    #[test]
    fn parses_membership_forms() {
        let set = Set::from_fields_v1(&json!({
            "f:a": {},
            "f:b": {".": {}, "f:c": {}},
            "f:d": {"f:e": {}},
            "f:g": {".": {}},
        }))
        .unwrap();
        assert!(set.has(&[f("a")]));
        assert!(set.has(&[f("b")]));
        assert!(set.has(&[f("b"), f("c")]));
        assert!(!set.has(&[f("d")]));
        assert!(set.has(&[f("d"), f("e")]));
        assert!(set.has(&[f("g")]));
        assert!(set.child(&f("g")).is_none());
        assert_eq!(set.len(), 5);
    }

    #[test]
    fn unknown_prefix_is_skipped() {
        let set = Set::from_fields_v1(&json!({
            "f:a": {"x:foo": {}, "f:b": {}},
            "x:foo": {"f:bar": {}},
            "z:": 7,
        }))
        .unwrap();
        assert_eq!(set, set_of(&[vec![f("a"), f("b")]]));
        // a child with only unknown elements below it is a member leaf
        let set = Set::from_fields_v1(&json!({"f:a": {"x:foo": {}}})).unwrap();
        assert_eq!(set, set_of(&[vec![f("a")]]));
    }

    #[test]
    fn parse_errors() {
        assert!(Set::from_fields_v1(&json!([])).is_err());
        assert!(Set::from_fields_v1(&json!("f:a")).is_err());
        assert!(Set::from_fields_v1(&json!(null)).is_err());
        assert!(Set::from_fields_v1(&json!({"q": {}})).is_err());
        assert!(Set::from_fields_v1(&json!({"": {}})).is_err());
        assert!(Set::from_fields_v1(&json!({"fa": {}})).is_err());
        assert!(Set::from_fields_v1(&json!({"k:{\"name\":": {}})).is_err());
        assert!(Set::from_fields_v1(&json!({"k:[1]": {}})).is_err());
        assert!(Set::from_fields_v1(&json!({"k:\"a\"": {}})).is_err());
        assert!(Set::from_fields_v1(&json!({"v:{": {}})).is_err());
        assert!(Set::from_fields_v1(&json!({"i:x": {}})).is_err());
        assert!(Set::from_fields_v1(&json!({"i:-1": {}})).is_err());
        assert!(Set::from_fields_v1(&json!({"f:a": []})).is_err());
        assert!(Set::from_fields_v1(&json!({"f:a": {"f:b": 1}})).is_err());
        assert!(Set::from_fields_v1(&json!({"f:a": {"q": {}}})).is_err());
        assert!(Set::from_fields_v1_str("{").is_err());
        assert_eq!(
            Set::from_fields_v1(&json!({"i:5": {}, "f:": {}})).unwrap(),
            set_of(&[vec![PathElement::Index(5)], vec![f("")]])
        );
    }

    #[test]
    fn has_insert_and_len() {
        let mut set = Set::new();
        set.insert(&[]);
        assert!(set.is_empty());
        set.insert(&[f("spec"), f("replicas")]);
        set.insert(&[f("spec"), f("replicas")]);
        assert!(!set.is_empty());
        assert_eq!(set.len(), 1);
        assert!(set.has(&[f("spec"), f("replicas")]));
        assert!(!set.has(&[f("spec")]));
        assert!(!set.has(&[]));
        assert!(!set.has(&[f("spec"), f("replicas"), f("x")]));
        assert!(set.has_prefix(&[f("spec")]));
        assert!(!set.has_prefix(&[f("status")]));
        set.insert(&[f("spec")]);
        assert_eq!(set.len(), 2);
        assert!(set.has(&[f("spec")]));
        assert_eq!(set.child(&f("spec")).unwrap().len(), 1);
        assert!(set.child(&f("status")).is_none());
        assert_eq!(
            set.with_prefix(&[f("spec")]),
            set_of(&[vec![f("replicas")]])
        );
    }

    #[test]
    fn set_algebra() {
        let a = set_of(&[
            vec![f("spec"), f("replicas")],
            vec![f("spec"), f("paused")],
            vec![f("metadata"), f("labels"), f("app")],
        ]);
        let b = set_of(&[
            vec![f("spec"), f("replicas")],
            vec![f("spec"), f("selector")],
            vec![f("metadata")],
        ]);
        assert_eq!(
            a.union(&b),
            set_of(&[
                vec![f("spec"), f("replicas")],
                vec![f("spec"), f("paused")],
                vec![f("spec"), f("selector")],
                vec![f("metadata")],
                vec![f("metadata"), f("labels"), f("app")],
            ])
        );
        assert_eq!(
            a.difference(&b),
            set_of(&[
                vec![f("spec"), f("paused")],
                vec![f("metadata"), f("labels"), f("app")],
            ])
        );
        assert_eq!(
            a.intersection(&b),
            set_of(&[vec![f("spec"), f("replicas")]])
        );
        // the recursive difference drops everything under the member .metadata
        assert_eq!(
            a.recursive_difference(&b),
            set_of(&[vec![f("spec"), f("paused")]])
        );
        assert_eq!(a.difference(&a), Set::new());
        assert!(a.difference(&a).is_empty());
        assert_eq!(a.intersection(&Set::new()), Set::new());
        assert_eq!(a.union(&Set::new()), a);
        // pruning: results equal freshly built sets, so their encodings agree too
        let d = a.difference(&set_of(&[
            vec![f("spec"), f("replicas")],
            vec![f("spec"), f("paused")],
        ]));
        assert_eq!(d, set_of(&[vec![f("metadata"), f("labels"), f("app")]]));
        assert_eq!(
            d.to_fields_v1_string(),
            r#"{"f:metadata":{"f:labels":{"f:app":{}}}}"#
        );
    }

    #[test]
    fn recursive_difference_strips_status() {
        let ready = k(json!({"type": "Ready"}));
        let object = set_of(&[
            vec![f("spec"), f("replicas")],
            vec![f("status")],
            vec![f("status"), f("phase")],
            vec![f("status"), f("conditions"), ready.clone()],
            vec![f("status"), f("conditions"), ready.clone(), f("status")],
        ]);
        let reset = set_of(&[vec![f("status")]]);
        let stripped = object.recursive_difference(&reset);
        assert_eq!(stripped, set_of(&[vec![f("spec"), f("replicas")]]));
        assert!(!stripped.has(&[f("status"), f("phase")]));
        assert!(!stripped.has(&[f("status"), f("conditions"), ready, f("status")]));
        // a set that only has paths under .status (no .status member itself)
        let under = set_of(&[vec![f("status"), f("phase")], vec![f("spec")]]);
        assert_eq!(
            under.recursive_difference(&reset),
            set_of(&[vec![f("spec")]])
        );
        // the plain difference keeps the paths below
        assert_eq!(object.difference(&reset).len(), 4);
        // nested reset members
        let nested = set_of(&[vec![f("metadata"), f("managedFields")]]);
        let obj = set_of(&[
            vec![f("metadata"), f("managedFields"), PathElement::Index(0)],
            vec![f("metadata"), f("name")],
        ]);
        assert_eq!(
            obj.recursive_difference(&nested),
            set_of(&[vec![f("metadata"), f("name")]])
        );
    }

    #[test]
    fn paths_order_and_leaves() {
        let a = k(json!({"name": "a"}));
        let set = set_of(&[
            vec![f("spec"), f("containers"), a.clone(), f("name")],
            vec![f("spec"), f("containers"), a.clone()],
            vec![f("spec"), f("containers"), a.clone(), f("image")],
            vec![f("metadata"), f("labels"), f("app")],
            vec![f("spec")],
            vec![f("apiVersion")],
        ]);
        assert_eq!(set.len(), 6);
        let strings: Vec<String> = set.paths().iter().map(|p| path_string(p)).collect();
        assert_eq!(
            strings,
            [
                ".apiVersion",
                ".spec",
                ".metadata.labels.app",
                r#".spec.containers[name="a"]"#,
                r#".spec.containers[name="a"].image"#,
                r#".spec.containers[name="a"].name"#,
            ]
        );
        assert_eq!(
            set.leaves(),
            set_of(&[
                vec![f("apiVersion")],
                vec![f("metadata"), f("labels"), f("app")],
                vec![f("spec"), f("containers"), a.clone(), f("image")],
                vec![f("spec"), f("containers"), a, f("name")],
            ])
        );
        let members: Vec<&PathElement> = set.members().collect();
        assert_eq!(members, [&f("apiVersion"), &f("spec")]);
        assert_eq!(set.children().count(), 2);
    }

    #[test]
    fn display_strings() {
        assert_eq!(
            path_string(&[
                f("spec"),
                f("containers"),
                k(json!({"name": "nginx"})),
                f("image")
            ]),
            r#".spec.containers[name="nginx"].image"#
        );
        assert_eq!(
            k(json!({"protocol": "TCP", "containerPort": 80})).to_string(),
            r#"[containerPort=80,protocol="TCP"]"#
        );
        assert_eq!(k(json!({"enabled": true})).to_string(), "[enabled=true]");
        assert_eq!(
            path_string(&[f("metadata"), f("finalizers"), v(json!("example.com/f"))]),
            r#".metadata.finalizers[="example.com/f"]"#
        );
        assert_eq!(v(json!(80)).to_string(), "[=80]");
        assert_eq!(PathElement::Index(3).to_string(), "[3]");
        assert_eq!(
            f("app.kubernetes.io/name").to_string(),
            ".app.kubernetes.io/name"
        );
        assert_eq!(path_string(&[]), "");
        assert_eq!(v(json!("a\"b\n")).to_string(), r#"[="a\"b\n"]"#);
    }
}
