//! Server-side printing (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`), as
//! upstream's `meta.k8s.io/v1` Table and the printers of pkg/printers/internalversion:
//! `kubectl get` asks for this and prints the columns as given.

use apimachinery::resources::ResourceInfo;
use serde_json::{Value, json};

/// A column: header, type and the cell it computes from an object.
struct Column {
    name: &'static str,
    kind: &'static str,
    format: &'static str,
    priority: i64,
    cell: fn(&Value) -> Value,
}

fn name_cell(object: &Value) -> Value {
    object
        .pointer("/metadata/name")
        .cloned()
        .unwrap_or(json!(""))
}

fn age_cell(object: &Value) -> Value {
    let created = object
        .pointer("/metadata/creationTimestamp")
        .and_then(Value::as_str);
    Value::String(created.map_or_else(|| "<unknown>".to_owned(), human_age))
}

fn len_of(value: Option<&Value>) -> usize {
    value.and_then(Value::as_object).map_or(0, |m| m.len())
}

/// Upstream's `duration.HumanDuration` of the time since `timestamp`.
pub fn human_age(timestamp: &str) -> String {
    let Ok(then) = timestamp.parse::<jiff::Timestamp>() else {
        return "<invalid>".into();
    };
    let seconds = jiff::Timestamp::now().as_second() - then.as_second();
    human_duration(seconds)
}

/// `duration.HumanDuration` over whole seconds.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    let seconds = seconds.max(0);
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let days = (hours / 24) % 365;
        return if days == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{days}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

const NAME: Column = Column {
    name: "Name",
    kind: "string",
    format: "name",
    priority: 0,
    cell: name_cell,
};
const AGE: Column = Column {
    name: "Age",
    kind: "string",
    format: "",
    priority: 0,
    cell: age_cell,
};

fn columns(resource: &ResourceInfo) -> Vec<Column> {
    let text = |name, cell| Column {
        name,
        kind: "string",
        format: "",
        priority: 0,
        cell,
    };
    let number = |name, cell| Column {
        name,
        kind: "integer",
        format: "",
        priority: 0,
        cell,
    };
    match (resource.group, resource.plural) {
        ("", "namespaces") => vec![
            NAME,
            text("Status", |o| {
                o.pointer("/status/phase").cloned().unwrap_or(json!(""))
            }),
            AGE,
        ],
        ("", "configmaps") => vec![
            NAME,
            number("Data", |o| {
                json!(len_of(o.get("data")) + len_of(o.get("binaryData")))
            }),
            AGE,
        ],
        ("", "secrets") => vec![
            NAME,
            text("Type", |o| {
                o.get("type").cloned().unwrap_or(json!("Opaque"))
            }),
            number("Data", |o| json!(len_of(o.get("data")))),
            AGE,
        ],
        ("", "pods") => vec![
            NAME,
            text("Ready", |o| {
                let total = o
                    .pointer("/spec/containers")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
                let ready = o
                    .pointer("/status/containerStatuses")
                    .and_then(Value::as_array)
                    .map_or(0, |s| {
                        s.iter().filter(|c| c["ready"] == json!(true)).count()
                    });
                json!(format!("{ready}/{total}"))
            }),
            text("Status", |o| {
                if o.pointer("/metadata/deletionTimestamp").is_some() {
                    return json!("Terminating");
                }
                o.pointer("/status/reason")
                    .or(o.pointer("/status/phase"))
                    .cloned()
                    .unwrap_or(json!("Pending"))
            }),
            number("Restarts", |o| {
                let restarts: i64 = o
                    .pointer("/status/containerStatuses")
                    .and_then(Value::as_array)
                    .map_or(0, |s| {
                        s.iter().filter_map(|c| c["restartCount"].as_i64()).sum()
                    });
                json!(restarts)
            }),
            AGE,
        ],
        ("", "services") => vec![
            NAME,
            text("Type", |o| {
                o.pointer("/spec/type")
                    .cloned()
                    .unwrap_or(json!("ClusterIP"))
            }),
            text("Cluster-IP", |o| {
                o.pointer("/spec/clusterIP")
                    .cloned()
                    .unwrap_or(json!("<none>"))
            }),
            text("External-IP", |o| {
                let ips: Vec<&str> = o
                    .pointer("/spec/externalIPs")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                json!(if ips.is_empty() {
                    "<none>".to_owned()
                } else {
                    ips.join(",")
                })
            }),
            text("Port(s)", |o| {
                let ports: Vec<String> = o
                    .pointer("/spec/ports")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .map(|p| {
                                let proto = p["protocol"].as_str().unwrap_or("TCP");
                                match p["nodePort"].as_i64() {
                                    Some(node) => format!("{}:{node}/{proto}", p["port"]),
                                    None => format!("{}/{proto}", p["port"]),
                                }
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                json!(if ports.is_empty() {
                    "<none>".to_owned()
                } else {
                    ports.join(",")
                })
            }),
            AGE,
        ],
        ("apps", "deployments") => vec![
            NAME,
            text("Ready", |o| {
                let ready = o
                    .pointer("/status/readyReplicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                let want = o
                    .pointer("/spec/replicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(1);
                json!(format!("{ready}/{want}"))
            }),
            number("Up-to-date", |o| {
                o.pointer("/status/updatedReplicas")
                    .cloned()
                    .unwrap_or(json!(0))
            }),
            number("Available", |o| {
                o.pointer("/status/availableReplicas")
                    .cloned()
                    .unwrap_or(json!(0))
            }),
            AGE,
        ],
        ("", "serviceaccounts") => vec![
            NAME,
            number("Secrets", |o| {
                json!(
                    o.get("secrets")
                        .and_then(Value::as_array)
                        .map_or(0, Vec::len)
                )
            }),
            AGE,
        ],
        _ => vec![NAME, AGE],
    }
}

/// The object a row carries: `includeObject=None|Metadata|Object` (Metadata by default).
fn row_object(object: &Value, include: &str) -> Option<Value> {
    match include {
        "None" => None,
        "Object" => Some(object.clone()),
        _ => Some(json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": object.get("metadata").cloned().unwrap_or(json!({})),
        })),
    }
}

/// A Table of `objects`; `list_metadata` is the list's metadata (resourceVersion, continue).
pub fn table(
    resource: &ResourceInfo,
    objects: &[Value],
    list_metadata: Value,
    include: &str,
    headers: bool,
) -> Value {
    let columns = columns(resource);
    let definitions: Vec<Value> = columns
        .iter()
        .map(|c| json!({"name": c.name, "type": c.kind, "format": c.format, "description": "", "priority": c.priority}))
        .collect();
    let rows: Vec<Value> = objects
        .iter()
        .map(|object| {
            let cells: Vec<Value> = columns.iter().map(|c| (c.cell)(object)).collect();
            let mut row = json!({"cells": cells});
            if let Some(o) = row_object(object, include) {
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
        table["columnDefinitions"] = Value::Array(definitions);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use apimachinery::resources::find;

    #[test]
    fn human_durations_match_upstream() {
        for (seconds, text) in [
            (5, "5s"),
            (119, "119s"),
            (150, "2m30s"),
            (600, "10m"),
            (3 * 3600 + 120, "3h2m"),
            (10 * 3600, "10h"),
            (3 * 86400 + 3600, "3d1h"),
            (30 * 86400, "30d"),
        ] {
            assert_eq!(human_duration(seconds), text, "{seconds}");
        }
    }

    #[test]
    fn configmap_table_has_data_count() {
        let cms = find("", "v1", "configmaps").unwrap();
        let cm = json!({"metadata": {"name": "c", "creationTimestamp": "2020-01-01T00:00:00Z"}, "data": {"a": "1", "b": "2"}});
        let t = table(
            cms,
            &[cm],
            json!({"resourceVersion": "5"}),
            "Metadata",
            true,
        );
        assert_eq!(t["columnDefinitions"][1]["name"], "Data");
        assert_eq!(t["rows"][0]["cells"][0], "c");
        assert_eq!(t["rows"][0]["cells"][1], 2);
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    }
}
