//! Server-side field validation of unknown and duplicate fields
//! (`?fieldValidation=Strict|Warn|Ignore` on create and update), as upstream's strict
//! decoding in k8s.io/apiserver/pkg/endpoints/handlers (create.go, update.go).
//! Duplicates are found by walking the body's keys in document order.
//!
//! Objects stay JSON values, so unknown fields are found by walking the request along
//! its kind's shape ([`crate::schema`]); kinds without a k8s-openapi type (custom
//! resources) are not checked here.

use std::collections::HashMap;

use apimachinery::errors::StatusError;
use apimachinery::resources::ResourceInfo;
use axum::http::{HeaderMap, HeaderValue, header};
use serde_json::Value;

use crate::crd::CustomResources;
use crate::schema::{self, Shapes};

/// What the client asked the server to do about unknown fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Directive {
    /// Drop them silently.
    Ignore,
    /// Drop them and tell the client in `Warning` headers (upstream's default).
    Warn,
    /// Refuse the request with 400 BadRequest.
    Strict,
}

impl Directive {
    /// The directive of a `fieldValidation` query value; absent or empty means `Warn`, as
    /// upstream defaults it since server-side field validation went GA (v1.27).
    pub fn from_param(value: Option<&str>) -> Self {
        match value {
            Some("Strict") => Directive::Strict,
            Some("Ignore") => Directive::Ignore,
            _ => Directive::Warn,
        }
    }
}

/// The unknown fields of `request` for `resource`'s kind, as upstream's JSON paths
/// (`data2`, `spec.replica`, `spec.template.spec.containers[0].foo`), in the request's
/// key order: what the kind's shape (k8s-openapi's schema) does not declare.
pub fn unknown_fields(resource: &ResourceInfo, request: &Value) -> Vec<String> {
    let shapes = Shapes::get();
    match shapes.kind(resource.group, resource.version, resource.kind) {
        Some(root) => schema::unknown_fields(shapes, root, request),
        None => Vec::new(),
    }
}

/// The field-validation step of a create or update: `Err` is upstream's 400 for
/// `Strict`, `Ok` carries the warnings to send for `Warn` (empty otherwise).
pub fn check(
    resource: &ResourceInfo,
    custom: &CustomResources,
    verb: &str,
    params: &HashMap<String, String>,
    body: &[u8],
) -> Result<Vec<String>, StatusError> {
    if !matches!(verb, "create" | "update") {
        return Ok(Vec::new());
    }
    let directive = Directive::from_param(params.get("fieldValidation").map(String::as_str));
    if directive == Directive::Ignore {
        return Ok(Vec::new());
    }
    // A body that is not JSON is the decoder's to report, with its own message.
    let Ok(mut request) = serde_json::from_slice::<Value>(body) else {
        return Ok(Vec::new());
    };
    let parsed_keys = value_key_count(&request);
    let unknown: std::collections::HashSet<String> = if resource.custom {
        // the parsed body is ours to prune: what the schema prunes is unknown
        custom.unknown_fields_in(resource, &mut request)
    } else {
        unknown_fields(resource, &request)
    }
    .into_iter()
    .collect();
    // a parse keeps one value per key: as many keys in the body as in the value means
    // no duplicates, and the path-by-path walk below is only needed when there is news
    if unknown.is_empty() && key_count(body) == Some(parsed_keys) {
        return Ok(Vec::new());
    }
    // Both kinds of problem in the order the body has them, as upstream's strict
    // decoder reports them: a duplicate where it repeats, an unknown field where it
    // first appears.
    let mut issues = Vec::new();
    let mut reported = std::collections::HashSet::new();
    for (path, duplicate) in key_occurrences(body) {
        if duplicate {
            issues.push(format!("duplicate field \"{path}\""));
        } else if unknown.contains(&path) && reported.insert(path.clone()) {
            issues.push(format!("unknown field \"{path}\""));
        }
    }
    let unknown = issues;
    if unknown.is_empty() || directive == Directive::Warn {
        return Ok(unknown);
    }
    // Upstream's transformDecodeError wording around the strict decoding error.
    Err(StatusError::bad_request(format!(
        "{kind} in version \"{version}\" cannot be handled as a {kind}: strict decoding error: {}",
        unknown.join(", "),
        kind = resource.kind,
        version = resource.version,
    )))
}

/// The field-validation step of a server-side apply (upstream's applyPatcher): the
/// configuration may not repeat a key. `Strict` refuses it (400 `error strict decoding
/// YAML: ...`), `Warn` reports it, `Ignore` lets it be (the last value wins).
pub fn check_apply(
    params: &HashMap<String, String>,
    body: &[u8],
) -> Result<Vec<String>, StatusError> {
    let directive = Directive::from_param(params.get("fieldValidation").map(String::as_str));
    if directive == Directive::Ignore {
        return Ok(Vec::new());
    }
    let Some(duplicate) = yaml_duplicate_key(body) else {
        return Ok(Vec::new());
    };
    let error = format!("error converting YAML to JSON: yaml: unmarshal errors:\n  {duplicate}");
    match directive {
        Directive::Strict => Err(StatusError::bad_request(format!(
            "error strict decoding YAML: {error}"
        ))),
        _ => Ok(vec![error]),
    }
}

/// The first repeated key of a YAML document, as go-yaml reports it: `line 12: key
/// "foo" already set in map` (the line of the repeat).
fn yaml_duplicate_key(body: &[u8]) -> Option<String> {
    let Err(error) = serde_yaml_ng::from_slice::<serde_yaml_ng::Value>(body) else {
        return None;
    };
    let message = error.to_string();
    let key = message
        .split("duplicate entry with key ")
        .nth(1)?
        .split(" at line")
        .next()?
        .trim();
    let name: String = serde_json::from_str(key).unwrap_or_else(|_| key.to_owned());
    // the error points at the map; the repeat is the second key at its indentation
    let location = error.location();
    let text = String::from_utf8_lossy(body);
    let (start, column) = location.map_or((0, 1), |l| (l.line().saturating_sub(1), l.column()));
    let indent = column.saturating_sub(1);
    let mut seen = 0;
    let mut line_of_repeat = start + 1;
    for (number, line) in text.lines().enumerate().skip(start) {
        let rest = line.get(indent..).unwrap_or("");
        let own_indent = line.len() - line.trim_start().len();
        if own_indent == indent
            && (rest.starts_with(&format!("{name}:")) || rest.starts_with(&format!("{key}:")))
        {
            seen += 1;
            if seen == 2 {
                line_of_repeat = number + 1;
                break;
            }
        }
    }
    Some(format!(
        "line {line_of_repeat}: key {} already set in map",
        serde_json::Value::from(name)
    ))
}

/// How many keys the objects of a JSON document hold, repeated ones included.
fn key_count(body: &[u8]) -> Option<usize> {
    walk_keys(body, false).map(|(count, _)| count)
}

/// How many keys the objects of a parsed value hold.
fn value_key_count(value: &Value) -> usize {
    match value {
        Value::Object(object) => object.len() + object.values().map(value_key_count).sum::<usize>(),
        Value::Array(items) => items.iter().map(value_key_count).sum(),
        _ => 0,
    }
}

/// Every key of a JSON document with its path (`spec.containers[0].name`), in document
/// order, marked when it repeats a key of the same object (the value a parser keeps is
/// the last one; upstream's strict decoding reports the repetition). Empty for a
/// document that does not parse.
pub fn key_occurrences(body: &[u8]) -> Vec<(String, bool)> {
    walk_keys(body, true)
        .map(|(_, occurrences)| occurrences)
        .unwrap_or_default()
}

/// Walks every key of a JSON document: counts them, and with `paths` records each with
/// its path and whether it repeats (building paths only then, as most requests need
/// just the count). `None` for a document that does not parse.
fn walk_keys(body: &[u8], paths: bool) -> Option<(usize, Vec<(String, bool)>)> {
    use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

    struct Walker<'a> {
        /// The path so far; `None` when only counting.
        path: Option<String>,
        count: &'a mut usize,
        out: &'a mut Vec<(String, bool)>,
    }

    impl<'de> DeserializeSeed<'de> for Walker<'_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
            deserializer.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Walker<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let (count, out) = (self.count, self.out);
            let Some(parent) = self.path else {
                while map.next_key::<IgnoredAny>()?.is_some() {
                    *count += 1;
                    map.next_value_seed(Walker {
                        path: None,
                        count: &mut *count,
                        out: &mut *out,
                    })?;
                }
                return Ok(());
            };
            let mut seen = std::collections::HashSet::new();
            while let Some(key) = map.next_key::<String>()? {
                *count += 1;
                let path = if parent.is_empty() {
                    key.clone()
                } else {
                    format!("{parent}.{key}")
                };
                let duplicate = !seen.insert(key);
                out.push((path.clone(), duplicate));
                map.next_value_seed(Walker {
                    path: Some(path),
                    count: &mut *count,
                    out: &mut *out,
                })?;
            }
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let (count, out) = (self.count, self.out);
            let mut i = 0;
            while seq
                .next_element_seed(Walker {
                    path: self.path.as_ref().map(|p| format!("{p}[{i}]")),
                    count: &mut *count,
                    out: &mut *out,
                })?
                .is_some()
            {
                i += 1;
            }
            Ok(())
        }
    }

    let mut count = 0;
    let mut out = Vec::new();
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    Walker {
        path: paths.then(String::new),
        count: &mut count,
        out: &mut out,
    }
    .deserialize(&mut deserializer)
    .ok()?;
    Some((count, out))
}

/// Adds one `Warning: 299 - "<message>"` header per warning, as upstream's warning
/// recorder writes them (quotes and backslashes escaped).
pub fn add_warnings(headers: &mut HeaderMap, warnings: &[String]) {
    for warning in warnings {
        let escaped = warning.replace('\\', "\\\\").replace('"', "\\\"");
        if let Ok(value) = HeaderValue::from_str(&format!("299 - \"{escaped}\"")) {
            headers.append(header::WARNING, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apimachinery::resources;
    use serde_json::json;

    #[test]
    fn an_applied_configuration_may_not_repeat_a_key() {
        // upstream's e2e body: the repeat of foo is on line 11
        let body = "\napiVersion: example.com/v1\nkind: Noxu\nmetadata:\n  name: mytest\n  finalizers:\n  - test-finalizer\nspec:\n  unknown: uk1\n  foo: foo1\n  foo: foo2\n  cronSpec: x\n";
        let strict: HashMap<String, String> =
            [("fieldValidation".to_owned(), "Strict".to_owned())].into();
        let error = check_apply(&strict, body.as_bytes()).unwrap_err();
        assert_eq!(
            error.0.message,
            "error strict decoding YAML: error converting YAML to JSON: yaml: unmarshal errors:\n  line 11: key \"foo\" already set in map"
        );
        assert_eq!(error.0.code, 400);
        // Warn (the default) reports it; Ignore lets it be
        let warnings = check_apply(&HashMap::new(), body.as_bytes()).unwrap();
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].ends_with("line 11: key \"foo\" already set in map"));
        let ignore: HashMap<String, String> =
            [("fieldValidation".to_owned(), "Ignore".to_owned())].into();
        assert!(check_apply(&ignore, body.as_bytes()).unwrap().is_empty());
        // nothing repeated: nothing to say
        assert!(
            check_apply(&strict, b"a: 1\nb:\n  a: 2\n")
                .unwrap()
                .is_empty()
        );
    }

    fn configmaps() -> &'static ResourceInfo {
        resources::find("", "v1", "configmaps").unwrap()
    }

    #[test]
    fn unknown_fields_are_named_by_their_path() {
        let deployments = resources::find("apps", "v1", "deployments").unwrap();
        let request = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d", "bogus": 1, "creationTimestamp": null},
            "spec": {
                "replica": 3,
                "selector": {"matchLabels": {"app": "a"}},
                "template": {"spec": {"containers": [{"name": "c", "image": "i", "foo": true}]}}
            }
        });
        assert_eq!(
            unknown_fields(deployments, &request),
            [
                "metadata.bogus",
                "spec.replica",
                "spec.template.spec.containers[0].foo"
            ]
        );
    }

    #[test]
    fn strict_refuses_unknown_fields_with_upstreams_message() {
        let body =
            br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"},"data2":{"a":"b"}}"#;
        let params = HashMap::from([("fieldValidation".to_owned(), "Strict".to_owned())]);
        let err = check(
            configmaps(),
            &CustomResources::default(),
            "create",
            &params,
            body,
        )
        .unwrap_err();
        assert_eq!(err.0.code, 400);
        assert_eq!(
            err.0.message,
            "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: strict decoding error: unknown field \"data2\""
        );
    }

    #[test]
    fn warn_is_the_default_and_ignore_is_silent() {
        let body = br#"{"metadata":{"name":"a"},"data":{"k":"v"},"data2":{}}"#;
        let warnings = check(
            configmaps(),
            &CustomResources::default(),
            "update",
            &HashMap::new(),
            body,
        )
        .unwrap();
        assert_eq!(warnings, ["unknown field \"data2\""]);
        let mut headers = HeaderMap::new();
        add_warnings(&mut headers, &warnings);
        assert_eq!(
            headers[header::WARNING],
            r#"299 - "unknown field \"data2\"""#
        );
        let ignore = HashMap::from([("fieldValidation".to_owned(), "Ignore".to_owned())]);
        assert!(
            check(
                configmaps(),
                &CustomResources::default(),
                "create",
                &ignore,
                body
            )
            .unwrap()
            .is_empty()
        );
    }

    /// Upstream's field-validation integration test body, reduced: duplicates and
    /// unknown fields reported together, in the order the body has them.
    #[test]
    fn duplicates_and_unknown_fields_in_document_order() {
        let deployments = resources::find("apps", "v1", "deployments").unwrap();
        let body = br#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d","name":"e","unknownMeta":"x"},
            "spec":{"unknown1":1,"paused":false,"paused":true,"selector":{"matchLabels":{"a":"b"}},
            "template":{"metadata":{"labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"i","unknownNested":1,"imagePullPolicy":"Always","imagePullPolicy":"Never"}]}}}}"#;
        let params = HashMap::from([("fieldValidation".to_owned(), "Strict".to_owned())]);
        let err = check(
            deployments,
            &CustomResources::default(),
            "create",
            &params,
            body,
        )
        .unwrap_err();
        assert_eq!(
            err.0.message,
            r#"Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: duplicate field "metadata.name", unknown field "metadata.unknownMeta", unknown field "spec.unknown1", duplicate field "spec.paused", unknown field "spec.template.spec.containers[0].unknownNested", duplicate field "spec.template.spec.containers[0].imagePullPolicy""#
        );
        assert!(key_occurrences(b"{not json").is_empty());
    }

    #[test]
    fn known_fields_pass() {
        let body = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","labels":{"x":"y"}},"data":{"k":"v"},"binaryData":{"b":"aGk="},"immutable":false}"#;
        let params = HashMap::from([("fieldValidation".to_owned(), "Strict".to_owned())]);
        assert!(
            check(
                configmaps(),
                &CustomResources::default(),
                "create",
                &params,
                body
            )
            .unwrap()
            .is_empty()
        );
    }
}
