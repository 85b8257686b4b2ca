//! Tables of custom resources, as upstream's apiextensions `tableconvertor`: the Name
//! column, then the CRD version's `additionalPrinterColumns` (each cell the first
//! result of its JSONPath, converted to the column's type), or Age when the version
//! declares none.

use apimachinery::resources::ResourceInfo;
use serde_json::{Value, json};

use super::{Ctx, name_of, parse_time, row_object};

const NAME_DESCRIPTION: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const AGE_DESCRIPTION: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

/// The columns a version prints: its own, else Age.
fn columns(printer_columns: &[Value]) -> Vec<Value> {
    if printer_columns.is_empty() {
        return vec![
            json!({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp",
                           "description": AGE_DESCRIPTION}),
        ];
    }
    printer_columns.to_vec()
}

/// A Table of custom resources.
pub fn table(
    resource: &ResourceInfo,
    printer_columns: &[Value],
    objects: &[Value],
    list_metadata: Value,
    include: &str,
    headers: bool,
) -> Value {
    let ctx = Ctx {
        now: jiff::Timestamp::now(),
    };
    let columns = columns(printer_columns);
    let rows: Vec<Value> = objects
        .iter()
        .map(|object| {
            let mut cells = vec![name_of(object)];
            for column in &columns {
                let path = column["jsonPath"].as_str().unwrap_or("");
                let found = first_result(object, path);
                cells.push(cell(
                    column["type"].as_str().unwrap_or("string"),
                    found,
                    &ctx,
                ));
            }
            let mut row = json!({"cells": cells});
            if let Some(o) = row_object(resource, object, include) {
                row["object"] = o;
            }
            row
        })
        .collect();
    let mut table = json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_metadata,
        "rows": rows,
    });
    if headers {
        let mut definitions = vec![json!({"name": "Name", "type": "string", "format": "name",
                                          "description": NAME_DESCRIPTION, "priority": 0})];
        for column in &columns {
            let path = column["jsonPath"].as_str().unwrap_or("");
            let description = column["description"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| {
                    format!("Custom resource definition column (in JSONPath format): {path}")
                });
            definitions.push(json!({
                "name": column["name"].as_str().unwrap_or(""),
                "type": column["type"].as_str().unwrap_or("string"),
                "format": column["format"].as_str().unwrap_or(""),
                "description": description,
                "priority": column["priority"].as_i64().unwrap_or(0),
            }));
        }
        table["columnDefinitions"] = Value::Array(definitions);
    }
    table
}

/// A cell of a column's type from the JSONPath's first result; `null` when there is
/// none or it has another type.
fn cell(kind: &str, found: Option<&Value>, ctx: &Ctx) -> Value {
    let Some(value) = found else {
        return Value::Null;
    };
    match kind {
        "integer" => match value {
            Value::Number(n) => n
                .as_i64()
                .or_else(|| n.as_f64().map(|f| f as i64))
                .map_or(Value::Null, |i| json!(i)),
            _ => Value::Null,
        },
        "number" => value.as_f64().map_or(Value::Null, |f| json!(f)),
        "boolean" => value.as_bool().map_or(Value::Null, |b| json!(b)),
        "date" => match value.as_str() {
            Some(_) => match parse_time(value) {
                Some(_) => json!(ctx.since(value)),
                None => json!("<invalid>"),
            },
            None => Value::Null,
        },
        // the JSONPath printer's text: strings as they are, anything else as JSON
        _ => match value {
            Value::String(s) => json!(s),
            other => json!(other.to_string()),
        },
    }
}

/// The first value a simple JSONPath (`.spec.replicas`, `.status.nodes[0]`,
/// `.spec.items[*].name`, `.status.conditions[?(@.type=="Ready")].status`) reaches.
fn first_result<'a>(object: &'a Value, path: &str) -> Option<&'a Value> {
    let path = path.trim().trim_start_matches('{').trim_end_matches('}');
    let mut current = vec![object];
    for step in steps(path)? {
        let mut next = Vec::new();
        for value in current {
            match &step {
                Step::Field(name) => next.extend(value.get(name.as_str())),
                Step::Index(i) => next.extend(value.as_array().and_then(|a| a.get(*i))),
                Step::All => next.extend(value.as_array().into_iter().flatten()),
                Step::Filter(field, wanted) => {
                    next.extend(value.as_array().into_iter().flatten().filter(|item| {
                        item.get(field.as_str()).is_some_and(|v| matches(v, wanted))
                    }))
                }
            }
        }
        current = next;
    }
    current.into_iter().next()
}

fn matches(value: &Value, wanted: &str) -> bool {
    match value {
        Value::String(s) => s == wanted,
        other => other.to_string() == wanted,
    }
}

enum Step {
    Field(String),
    Index(usize),
    All,
    /// `[?(@.field=="value")]`
    Filter(String, String),
}

/// The steps of a path; `None` for a path this reader does not understand.
fn steps(path: &str) -> Option<Vec<Step>> {
    let mut steps = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            if end > 0 {
                steps.push(Step::Field(after[..end].to_owned()));
            }
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let end = after.find(']')?;
            let inner = after[..end].trim();
            rest = &after[end + 1..];
            if inner == "*" {
                steps.push(Step::All);
            } else if let Some(filter) =
                inner.strip_prefix("?(@.").and_then(|f| f.strip_suffix(')'))
            {
                let (field, wanted) = filter.split_once("==")?;
                let wanted = wanted.trim().trim_matches(|c| c == '"' || c == '\'');
                steps.push(Step::Filter(field.trim().to_owned(), wanted.to_owned()));
            } else {
                steps.push(Step::Index(inner.parse().ok()?));
            }
        } else {
            return None;
        }
    }
    Some(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_paths_reach_fields_items_and_filtered_items() {
        let object = json!({"spec": {"replicas": 3, "items": [{"name": "a"}, {"name": "b"}]},
            "status": {"conditions": [{"type": "Synced", "status": "False"}, {"type": "Ready", "status": "True"}]}});
        assert_eq!(first_result(&object, ".spec.replicas"), Some(&json!(3)));
        assert_eq!(
            first_result(&object, ".spec.items[1].name"),
            Some(&json!("b"))
        );
        assert_eq!(
            first_result(&object, ".spec.items[*].name"),
            Some(&json!("a"))
        );
        assert_eq!(
            first_result(&object, r#".status.conditions[?(@.type=="Ready")].status"#),
            Some(&json!("True"))
        );
        assert_eq!(first_result(&object, ".spec.missing"), None);
    }

    #[test]
    fn columns_default_to_age_and_cells_take_the_columns_type() {
        let resource = apimachinery::resources::find("", "v1", "configmaps").unwrap();
        let object = json!({"metadata": {"name": "x", "creationTimestamp": "2020-01-01T00:00:00Z"},
                            "spec": {"replicas": 2, "image": "i", "on": true}});
        let plain = table(
            resource,
            &[],
            std::slice::from_ref(&object),
            json!({}),
            "None",
            true,
        );
        assert_eq!(plain["columnDefinitions"][1]["name"], "Age");
        assert!(
            plain["rows"][0]["cells"][1]
                .as_str()
                .unwrap()
                .ends_with('d')
        );
        let columns = [
            json!({"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"}),
            json!({"name": "Image", "type": "string", "jsonPath": ".spec.image", "priority": 1}),
            json!({"name": "On", "type": "boolean", "jsonPath": ".spec.on"}),
            json!({"name": "Missing", "type": "string", "jsonPath": ".spec.none"}),
        ];
        let custom = table(resource, &columns, &[object], json!({}), "None", true);
        assert_eq!(custom["rows"][0]["cells"], json!(["x", 2, "i", true, null]));
        assert_eq!(
            custom["columnDefinitions"][1]["description"],
            "Custom resource definition column (in JSONPath format): .spec.replicas"
        );
        assert_eq!(custom["columnDefinitions"][2]["priority"], 1);
    }
}
