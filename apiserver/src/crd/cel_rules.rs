//! The CEL rules of CRD schemas (`x-kubernetes-validations`), as upstream's
//! apiextensions `cel` validator: each rule runs with `self` bound to the value of the
//! schema node that carries it, and transition rules (those naming `oldSelf`) with
//! `oldSelf` bound to the same node's value before an update, when there is one to
//! correlate (object properties, map values, `listType: map` items by key).
//!
//! A rule that does not hold is reported at its node's path (`<nil>` at the root, plus
//! its `fieldPath`), with the node's schema type as the value and the rule's
//! `message`, its `messageExpression`, or `failed rule: <rule>`, as the detail.

use std::sync::{Arc, Mutex, OnceLock};

use apimachinery::errors::{BadValue, FieldError};
use cel::{Context as CelContext, Program, Value as CelValue};
use serde_json::Value;

use crate::auth::admission::validating_policy::{go_error, to_cel};

/// Validates `new` against the rules of `schema`; `old` is the object before an update.
pub fn validate(schema: &Value, new: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    walk(schema, new, old, &mut Vec::new(), &mut errors);
    errors
}

/// A compiled CEL expression, or its compile error; compiled once per source text
/// (admission webhooks' matchConditions use it too).
pub(crate) fn compile(source: &str) -> Arc<Result<Program, String>> {
    static CACHE: OnceLock<Mutex<std::collections::HashMap<String, Arc<Result<Program, String>>>>> =
        OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(found) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(source) {
        return found.clone();
    }
    // the parser is generated: an input it panics on is a compile error
    let compiled = match std::panic::catch_unwind(|| Program::compile(source)) {
        Ok(Ok(program)) => Ok(program),
        Ok(Err(e)) => Err(format!("compilation failed: {}", e.to_string().trim())),
        Err(_) => Err("compilation failed: unparsable expression".to_owned()),
    };
    let compiled = Arc::new(compiled);
    let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
    // a bounded cache: rules come from CRDs, which are few; clear if it ever grows
    if cache.len() > 4096 {
        cache.clear();
    }
    cache.insert(source.to_owned(), compiled.clone());
    compiled
}

/// A node's value and old value as CEL sees them, converted once for all its rules.
struct Subjects<'a> {
    old: Option<&'a Value>,
    value_cel: CelValue,
    /// Converted when a transition rule first needs it.
    old_cel: std::cell::OnceCell<Option<CelValue>>,
}

impl<'a> Subjects<'a> {
    fn new(value: &'a Value, old: Option<&'a Value>) -> Self {
        Subjects {
            old,
            value_cel: to_cel(value),
            old_cel: std::cell::OnceCell::new(),
        }
    }

    fn old_cel(&self) -> Option<&CelValue> {
        self.old_cel.get_or_init(|| self.old.map(to_cel)).as_ref()
    }
}

/// Runs `program` with `self` and, for a transition rule, `oldSelf`.
fn run(program: &Program, subjects: &Subjects<'_>, transition: bool) -> Result<CelValue, String> {
    let mut context = CelContext::default();
    context.add_variable_from_value("self", subjects.value_cel.clone());
    if transition && let Some(old) = subjects.old_cel() {
        context.add_variable_from_value("oldSelf", old.clone());
    }
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| program.execute(&context))) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(go_error(&e)),
        Err(_) => Err("internal error".to_owned()),
    }
}

/// The schema type of a node, as the rule errors show it.
fn schema_type(schema: &Value) -> String {
    match schema["type"].as_str() {
        Some(t) => t.to_owned(),
        None if schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) => {
            "integer".to_owned()
        }
        None => "object".to_owned(),
    }
}

/// Upstream's rendering of a path: dots between fields, `[i]` for items; the root is
/// `<nil>`.
fn render(path: &[String]) -> String {
    if path.is_empty() {
        return "<nil>".to_owned();
    }
    let mut out = String::new();
    for step in path {
        if step.starts_with('[') {
            out.push_str(step);
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(step);
        }
    }
    out
}

fn walk(
    schema: &Value,
    value: &Value,
    old: Option<&Value>,
    path: &mut Vec<String>,
    errors: &mut Vec<FieldError>,
) {
    if value.is_null() {
        return;
    }
    if let Some(rules) = schema["x-kubernetes-validations"]
        .as_array()
        .filter(|r| !r.is_empty())
    {
        let subjects = Subjects::new(value, old);
        for rule in rules {
            check_rule(schema, rule, &subjects, path, errors);
        }
    }
    match value {
        Value::Object(map) => {
            let properties = schema["properties"].as_object();
            let additional = schema["additionalProperties"]
                .as_object()
                .map(|_| &schema["additionalProperties"]);
            for (key, child) in map {
                let child_schema = properties.and_then(|p| p.get(key)).or(
                    if properties.is_none_or(|p| !p.contains_key(key)) {
                        additional
                    } else {
                        None
                    },
                );
                let Some(child_schema) = child_schema else {
                    continue;
                };
                // `metadata` of the root is ObjectMeta's, not the schema's
                if path.is_empty() && key == "metadata" {
                    continue;
                }
                let atomic_map = schema["x-kubernetes-map-type"].as_str() == Some("atomic");
                let old_child = if atomic_map {
                    None
                } else {
                    old.and_then(|o| o.get(key))
                };
                path.push(key.clone());
                walk(child_schema, child, old_child, path, errors);
                path.pop();
            }
        }
        Value::Array(items) => {
            let Some(item_schema) = schema.get("items").filter(|s| s.is_object()) else {
                return;
            };
            let keys: Vec<&str> = if schema["x-kubernetes-list-type"].as_str() == Some("map") {
                schema["x-kubernetes-list-map-keys"]
                    .as_array()
                    .map(|k| k.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default()
            } else {
                Vec::new()
            };
            for (i, item) in items.iter().enumerate() {
                // only items of a map-list correlate with their old selves, by key
                let old_item = if keys.is_empty() {
                    None
                } else {
                    old.and_then(Value::as_array).and_then(|olds| {
                        olds.iter()
                            .find(|o| keys.iter().all(|k| o.get(*k) == item.get(*k)))
                    })
                };
                path.push(format!("[{i}]"));
                walk(item_schema, item, old_item, path, errors);
                path.pop();
            }
        }
        _ => {}
    }
}

fn check_rule(
    schema: &Value,
    rule: &Value,
    subjects: &Subjects<'_>,
    path: &[String],
    errors: &mut Vec<FieldError>,
) {
    let Some(source) = rule["rule"].as_str() else {
        return;
    };
    let transition = source.contains("oldSelf");
    if transition && subjects.old.is_none() {
        // a transition rule needs the old value; upstream skips it on create
        return;
    }
    let mut field = path.to_vec();
    if let Some(extra) = rule["fieldPath"].as_str() {
        for step in extra.split('.').filter(|s| !s.is_empty()) {
            field.push(step.to_owned());
        }
    }
    let field = render(&field);
    let type_name = schema_type(schema);
    let compiled = compile(source);
    let program = match compiled.as_ref() {
        Ok(program) => program,
        Err(e) => {
            errors.push(FieldError::invalid(
                field,
                BadValue::String(type_name),
                format!("{e} evaluating rule: {}", source.trim()),
            ));
            return;
        }
    };
    let outcome = run(program, subjects, transition);
    let detail = match outcome {
        Ok(CelValue::Bool(true)) => return,
        Ok(CelValue::Bool(false)) => failure_message(rule, subjects),
        Ok(_) => format!(
            "rule did not evaluate to a boolean evaluating rule: {}",
            source.trim()
        ),
        Err(e) => format!("{e} evaluating rule: {}", source.trim()),
    };
    let error = match rule["reason"].as_str() {
        Some("FieldValueForbidden") => FieldError::forbidden(field, detail),
        Some("FieldValueRequired") => FieldError::required(field, detail),
        Some("FieldValueDuplicate") => FieldError::duplicate(field, BadValue::String(type_name)),
        _ => FieldError::invalid(field, BadValue::String(type_name), detail),
    };
    errors.push(error);
}

/// A failed rule's detail: its messageExpression's string, its message, or
/// `failed rule: <rule>`.
fn failure_message(rule: &Value, subjects: &Subjects<'_>) -> String {
    if let Some(expression) = rule["messageExpression"].as_str()
        && let Ok(program) = compile(expression).as_ref()
        && let Ok(CelValue::String(text)) = run(program, subjects, true)
    {
        let text = text.trim();
        if !text.is_empty() && !text.contains('\n') && text.len() <= 5 * 1024 {
            return text.to_owned();
        }
    }
    match rule["message"].as_str().map(str::trim) {
        Some(message) if !message.is_empty() => message.to_owned(),
        _ => format!(
            "failed rule: {}",
            rule["rule"].as_str().unwrap_or("").trim()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apimachinery::errors::StatusError;
    use apimachinery::resources::GroupKind;
    use serde_json::json;

    fn message(errors: &[FieldError]) -> String {
        StatusError::invalid(
            &GroupKind::new("stable.example.com", "CronTab"),
            "ct",
            errors,
        )
        .0
        .message
    }

    fn schema() -> Value {
        json!({
            "type": "object",
            "x-kubernetes-validations": [{"rule": "self.spec.min <= self.spec.max"}],
            "properties": {
                "spec": {
                    "type": "object",
                    "x-kubernetes-validations": [
                        {"rule": "self.max <= 100", "message": "max is at most 100"},
                        {"rule": "self.min >= 0", "messageExpression": "'min is ' + string(self.min)"},
                        {"rule": "self.name == oldSelf.name", "fieldPath": ".name",
                         "reason": "FieldValueForbidden", "message": "name is immutable"},
                    ],
                    "properties": {
                        "min": {"type": "integer"},
                        "max": {"type": "integer"},
                        "name": {"type": "string"},
                        "items": {"type": "array", "x-kubernetes-list-type": "map",
                                  "x-kubernetes-list-map-keys": ["id"],
                                  "items": {"type": "object",
                                            "x-kubernetes-validations": [{"rule": "self.v >= oldSelf.v"}],
                                            "properties": {"id": {"type": "string"}, "v": {"type": "number"}}}},
                    },
                },
            },
        })
    }

    #[test]
    fn rules_hold_or_fail_with_upstreams_messages() {
        let ok = json!({"spec": {"min": 1, "max": 2, "name": "a"}});
        assert!(validate(&schema(), &ok, None).is_empty());
        let bad = json!({"spec": {"min": -3, "max": 200, "name": "a"}});
        assert_eq!(
            message(&validate(&schema(), &bad, None)),
            "CronTab.stable.example.com \"ct\" is invalid: [spec: Invalid value: \"object\": max is at most 100, spec: Invalid value: \"object\": min is -3]"
        );
        let crossed = json!({"spec": {"min": 5, "max": 2, "name": "a"}});
        assert_eq!(
            message(&validate(&schema(), &crossed, None)),
            "CronTab.stable.example.com \"ct\" is invalid: <nil>: Invalid value: \"object\": failed rule: self.spec.min <= self.spec.max"
        );
    }

    #[test]
    fn transition_rules_run_on_updates_only_with_the_old_value() {
        let old = json!({"spec": {"min": 1, "max": 2, "name": "a",
                                  "items": [{"id": "x", "v": 5}, {"id": "y", "v": 1}]}});
        let new = json!({"spec": {"min": 1, "max": 2, "name": "b",
                                  "items": [{"id": "y", "v": 2}, {"id": "x", "v": 4}, {"id": "z", "v": 0}]}});
        // on create, no transition rule runs
        assert!(validate(&schema(), &new, None).is_empty());
        assert_eq!(
            message(&validate(&schema(), &new, Some(&old))),
            "CronTab.stable.example.com \"ct\" is invalid: [spec.name: Forbidden: name is immutable, spec.items[1]: Invalid value: \"object\": failed rule: self.v >= oldSelf.v]"
        );
    }

    #[test]
    fn broken_rules_are_errors_not_panics() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object",
            "x-kubernetes-validations": [{"rule": "self.missing > 1"}, {"rule": "self +"}, {"rule": "1"}]}}});
        let errors = validate(&schema, &json!({"spec": {}}), None);
        assert_eq!(errors.len(), 3, "{}", message(&errors));
        assert!(errors.iter().all(|e| e.field == "spec"));
    }
}
