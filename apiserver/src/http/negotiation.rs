//! Content negotiation of responses, as upstream's `endpoints/handlers/negotiation`:
//! the `Accept` header picks the encoding (JSON or YAML) and the form of the answer:
//! the object itself, a server-printed Table (`as=Table;g=meta.k8s.io;v=v1`) or only its
//! metadata (`as=PartialObjectMetadata` / `as=PartialObjectMetadataList`, what
//! client-go's metadata informers and kube-rs' `metadata_watcher` ask for). Clauses are
//! tried in order of preference and the first the server can produce wins; when none
//! can, the answer is upstream's 406.

use apimachinery::errors::StatusError;
use apimachinery::protobuf;
use axum::http::{HeaderMap, header};
use serde_json::{Map, Value, json};

/// The media types upstream lists in a 406 for resource requests.
const SUPPORTED: &[&str] = &["application/json", "application/yaml", protobuf::MEDIA_TYPE];

/// How a response's objects are encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Json,
    Yaml,
}

/// What a response carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// The object (or list) itself.
    Object,
    /// A `meta.k8s.io` Table of it.
    Table,
    /// A `meta.k8s.io` PartialObjectMetadata (or its list).
    Metadata,
}

/// The negotiated output of one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Output {
    pub encoding: Encoding,
    pub form: Form,
    /// The `meta.k8s.io` version of a Table or PartialObjectMetadata (`v1` or `v1beta1`).
    pub meta_version: &'static str,
}

impl Output {
    /// Plain JSON of the object: what the server answers without an Accept header.
    pub const JSON: Output = Output {
        encoding: Encoding::Json,
        form: Form::Object,
        meta_version: "v1",
    };

    /// The response's Content-Type (for lists, `list` picks the list's `as=`).
    pub fn content_type(&self, list: bool) -> String {
        let media = match self.encoding {
            Encoding::Json => "application/json",
            Encoding::Yaml => "application/yaml",
        };
        let kind = match (self.form, list) {
            (Form::Object, _) => return media.to_owned(),
            (Form::Table, _) => "Table",
            (Form::Metadata, false) => "PartialObjectMetadata",
            (Form::Metadata, true) => "PartialObjectMetadataList",
        };
        format!("{media};as={kind};v={};g=meta.k8s.io", self.meta_version)
    }

    /// The apiVersion of a Table or PartialObjectMetadata answer.
    pub fn meta_api_version(&self) -> String {
        format!("meta.k8s.io/{}", self.meta_version)
    }
}

/// What the request is, as far as the forms it may be answered in go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// One object (get, create, update, patch, delete).
    Object,
    /// A collection (list, deletecollection).
    List,
    /// A watch stream: JSON only, since upstream has no YAML stream serializer.
    Watch,
}

/// One clause of an Accept header.
struct Clause<'a> {
    media: &'a str,
    params: Vec<(String, &'a str)>,
    quality: f32,
}

impl Clause<'_> {
    fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| *v)
    }
}

fn parse_accept(accept: &str) -> Vec<Clause<'_>> {
    let mut clauses: Vec<Clause<'_>> = accept
        .split(',')
        .filter_map(|clause| {
            let mut parts = clause.split(';').map(str::trim);
            let media = parts.next().filter(|m| !m.is_empty())?;
            let mut quality = 1.0;
            let mut params = Vec::new();
            for param in parts {
                let Some((key, value)) = param.split_once('=') else {
                    continue;
                };
                let key = key.trim().to_ascii_lowercase();
                let value = value.trim().trim_matches('"');
                if key == "q" {
                    quality = value.parse().unwrap_or(0.0);
                } else {
                    params.push((key, value));
                }
            }
            Some(Clause {
                media,
                params,
                quality,
            })
        })
        .collect();
    // Highest quality first; the sort is stable, so equal ones keep the client's order.
    clauses.sort_by(|a, b| b.quality.total_cmp(&a.quality));
    clauses
}

/// The output for `headers`' Accept, or upstream's 406 when the server can produce
/// nothing the client accepts.
pub fn negotiate(headers: &HeaderMap, request: Request) -> Result<Output, StatusError> {
    let Some(accept) = headers.get(header::ACCEPT) else {
        return Ok(Output::JSON);
    };
    let accept = accept.to_str().unwrap_or("");
    if accept.trim().is_empty() {
        return Ok(Output::JSON);
    }
    for clause in parse_accept(accept) {
        if clause.quality <= 0.0 {
            continue;
        }
        let encoding = match clause.media.to_ascii_lowercase().as_str() {
            "application/json" | "*/*" | "application/*" => Encoding::Json,
            "application/yaml" if request != Request::Watch => Encoding::Yaml,
            _ => continue,
        };
        let form = match clause.param("as") {
            None => Form::Object,
            Some(kind) => {
                let version = clause.param("v").unwrap_or("");
                if clause.param("g") != Some("meta.k8s.io") || !["v1", "v1beta1"].contains(&version)
                {
                    continue;
                }
                match (kind, request) {
                    ("Table", _) => Form::Table,
                    ("PartialObjectMetadata", Request::Object | Request::Watch)
                    | ("PartialObjectMetadataList", Request::List) => Form::Metadata,
                    _ => continue,
                }
            }
        };
        let meta_version = if clause.param("v") == Some("v1beta1") {
            "v1beta1"
        } else {
            "v1"
        };
        return Ok(Output {
            encoding,
            form,
            meta_version,
        });
    }
    Err(StatusError::not_acceptable(SUPPORTED))
}

/// An object as upstream's `PartialObjectMetadata`: its type and metadata only.
pub fn partial_metadata(object: &Value, api_version: &str) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": api_version,
        "metadata": object.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

/// A `<Kind>List` as upstream's `PartialObjectMetadataList`.
pub fn partial_metadata_list(list: &Value, api_version: &str) -> Value {
    let items: Vec<Value> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|item| partial_metadata(item, api_version))
        .collect();
    let metadata = list
        .get("metadata")
        .cloned()
        .unwrap_or_else(|| Value::Object(Map::new()));
    json!({
        "kind": "PartialObjectMetadataList",
        "apiVersion": api_version,
        "metadata": metadata,
        "items": items,
    })
}

/// Encodes `value` as `encoding`.
pub fn encode(value: &Value, encoding: Encoding) -> Result<Vec<u8>, StatusError> {
    match encoding {
        Encoding::Json => serde_json::to_vec(value).map_err(StatusError::internal_error),
        Encoding::Yaml => serde_yaml_ng::to_string(value)
            .map(String::into_bytes)
            .map_err(StatusError::internal_error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn accept(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn clauses_pick_encoding_and_form_in_order() {
        assert_eq!(
            negotiate(&HeaderMap::new(), Request::Object).unwrap(),
            Output::JSON
        );
        assert_eq!(
            negotiate(&accept("application/yaml"), Request::List)
                .unwrap()
                .encoding,
            Encoding::Yaml
        );
        // kubectl get: Table first, JSON as the fallback.
        let kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(
            negotiate(&accept(kubectl), Request::List).unwrap().form,
            Form::Table
        );
        // client-go's metadata client.
        let metadata = "application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json";
        let output = negotiate(&accept(metadata), Request::List).unwrap();
        assert_eq!(output.form, Form::Metadata);
        assert_eq!(
            output.content_type(true),
            "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io"
        );
        // A list form for one object is skipped, falling back to plain JSON.
        assert_eq!(
            negotiate(&accept(metadata), Request::Object).unwrap(),
            Output::JSON
        );
        // Protobuf alone, or YAML for a watch, cannot be served.
        for (header, request) in [
            ("application/vnd.kubernetes.protobuf", Request::Object),
            ("application/yaml", Request::Watch),
            ("text/html", Request::List),
            ("application/json;as=Table;g=other.io;v=v1", Request::List),
        ] {
            let err = negotiate(&accept(header), request).unwrap_err();
            assert_eq!(err.http_status(), 406, "{header}");
            assert_eq!(
                err.status().message,
                "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf"
            );
        }
        // Quality orders clauses.
        assert_eq!(
            negotiate(
                &accept("application/json;q=0.5, application/yaml"),
                Request::Object
            )
            .unwrap()
            .encoding,
            Encoding::Yaml
        );
    }

    #[test]
    fn partial_metadata_keeps_only_metadata() {
        let list = json!({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "7"},
            "items": [{"metadata": {"name": "a", "labels": {"x": "y"}}, "spec": {"containers": []}}]});
        let partial = partial_metadata_list(&list, "meta.k8s.io/v1");
        assert_eq!(
            partial,
            json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": "7"},
                "items": [{"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": {"name": "a", "labels": {"x": "y"}}}]})
        );
    }
}
