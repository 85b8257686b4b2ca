//! Server-side printing (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`), as
//! upstream's `meta.k8s.io/v1` Table: `kubectl get` asks for it and prints the columns as
//! given. This module builds the Table and holds the helpers the printers share; each
//! API group's printers live in the file named after the group (pods in `core.rs`,
//! deployments in `apps.rs`...), mirroring upstream's pkg/printers/internalversion.
//!
//! As upstream's `TableConvertor`, the server always prints wide: every row carries the
//! priority-1 cells too, and kubectl drops them unless asked for `-o wide`.

mod admissionregistration;
mod apiregistration;
mod apps;
mod autoscaling;
mod batch;
mod certificates;
mod coordination;
mod core;
pub mod custom;
mod events;
mod flowcontrol;
mod networking;
mod node;
mod policy;
mod rbac;
mod scheduling;
mod storage;

use std::cmp::Ordering;

use apimachinery::labels::{LabelSelector, Selector};
use apimachinery::quantity::Quantity;
use apimachinery::resources::ResourceInfo;
use jiff::Timestamp;
use serde_json::{Value, json};

/// A column definition (`metav1.TableColumnDefinition`) without its description.
#[derive(Debug, Clone, Copy)]
struct Column {
    name: &'static str,
    /// `string`, `integer`, `boolean` or `date`, as upstream declares it (a cell may
    /// still hold another JSON type: upstream's Data column is `string` over a count).
    kind: &'static str,
    format: &'static str,
    /// 0 for the default view, 1 for `-o wide` only.
    priority: u8,
}

impl Column {
    const fn new(name: &'static str, kind: &'static str) -> Self {
        Column {
            name,
            kind,
            format: "",
            priority: 0,
        }
    }

    /// The same column, shown only by `-o wide`.
    const fn wide(self) -> Self {
        Column {
            priority: 1,
            ..self
        }
    }
}

/// A `string` column.
const fn string(name: &'static str) -> Column {
    Column::new(name, "string")
}

/// An `integer` column.
const fn integer(name: &'static str) -> Column {
    Column::new(name, "integer")
}

/// A `boolean` column.
const fn boolean(name: &'static str) -> Column {
    Column::new(name, "boolean")
}

/// The object's name, first column of nearly every printer.
const NAME: Column = Column {
    format: "name",
    ..string("Name")
};
/// Time since creation, as `translateTimestampSince`.
const AGE: Column = string("Age");
/// The wide columns of the workload printers (filled by [`workload_cells`]); services
/// share the selector one.
const CONTAINERS: Column = string("Containers").wide();
const IMAGES: Column = string("Images").wide();
const SELECTOR: Column = string("Selector").wide();

/// What the printers need besides the object: the time that ages are measured to.
struct Ctx {
    now: Timestamp,
}

impl Ctx {
    /// The human duration from `then` to now.
    fn elapsed(&self, then: Timestamp) -> String {
        human_duration(self.now.duration_since(then).as_secs())
    }

    /// Upstream's `translateTimestampSince`: `<unknown>` for a missing time.
    fn since(&self, timestamp: &Value) -> String {
        parse_time(timestamp).map_or_else(|| "<unknown>".into(), |then| self.elapsed(then))
    }

    /// The Age cell: time since `metadata.creationTimestamp`.
    fn age(&self, object: &Value) -> Value {
        json!(self.since(&object["metadata"]["creationTimestamp"]))
    }
}

/// How one kind prints: its columns and the function computing a row's cells (one per
/// column, wide ones included, in column order).
struct Printer {
    columns: &'static [Column],
    row: fn(&Value, &Ctx) -> Vec<Value>,
    /// The row's `conditions` (upstream sets them on finished pods only).
    conditions: Option<fn(&Value) -> Value>,
    /// The order of a list's rows, where upstream's list printer sorts (flow schemas).
    order: Option<fn(&Value, &Value) -> Ordering>,
}

impl Printer {
    const fn new(columns: &'static [Column], row: fn(&Value, &Ctx) -> Vec<Value>) -> Self {
        Printer {
            columns,
            row,
            conditions: None,
            order: None,
        }
    }

    const fn with_conditions(self, conditions: fn(&Value) -> Value) -> Self {
        Printer {
            conditions: Some(conditions),
            ..self
        }
    }

    const fn ordered_by(self, order: fn(&Value, &Value) -> Ordering) -> Self {
        Printer {
            order: Some(order),
            ..self
        }
    }
}

/// Upstream's `rest.NewDefaultTableConvertor`, for kinds without a printer (roles, cluster
/// roles, limit ranges, CRDs): the name and the creation time as an RFC 3339 date.
const DEFAULT: Printer = Printer::new(&[NAME, Column::new("Created At", "date")], |o, _| {
    let created = parse_time(&o["metadata"]["creationTimestamp"]).map_or_else(
        || "0001-01-01T00:00:00Z".into(),
        |t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
    );
    vec![name_of(o), json!(created)]
});

/// The printer upstream registers for a resource's kind.
fn printer(resource: &ResourceInfo) -> &'static Printer {
    match (resource.group, resource.version, resource.plural) {
        ("", _, "componentstatuses") => &core::COMPONENT_STATUS,
        ("", _, "configmaps") => &core::CONFIG_MAP,
        ("", _, "endpoints") => &core::ENDPOINTS,
        ("", _, "events") => &events::CORE_EVENT,
        ("", _, "namespaces") => &core::NAMESPACE,
        ("", _, "nodes") => &core::NODE,
        ("", _, "persistentvolumeclaims") => &core::PERSISTENT_VOLUME_CLAIM,
        ("", _, "persistentvolumes") => &core::PERSISTENT_VOLUME,
        ("", _, "pods") => &core::POD,
        ("", _, "podtemplates") => &core::POD_TEMPLATE,
        ("", _, "replicationcontrollers") => &core::REPLICATION_CONTROLLER,
        ("", _, "resourcequotas") => &core::RESOURCE_QUOTA,
        ("", _, "secrets") => &core::SECRET,
        ("", _, "serviceaccounts") => &core::SERVICE_ACCOUNT,
        ("", _, "services") => &core::SERVICE,
        ("admissionregistration.k8s.io", _, "mutatingwebhookconfigurations") => {
            &admissionregistration::WEBHOOK_CONFIGURATION
        }
        ("admissionregistration.k8s.io", _, "validatingwebhookconfigurations") => {
            &admissionregistration::WEBHOOK_CONFIGURATION
        }
        ("admissionregistration.k8s.io", _, "validatingadmissionpolicies") => {
            &admissionregistration::VALIDATING_ADMISSION_POLICY
        }
        ("admissionregistration.k8s.io", _, "validatingadmissionpolicybindings") => {
            &admissionregistration::VALIDATING_ADMISSION_POLICY_BINDING
        }
        ("apiregistration.k8s.io", _, "apiservices") => &apiregistration::API_SERVICE,
        ("apps", _, "controllerrevisions") => &apps::CONTROLLER_REVISION,
        ("apps", _, "daemonsets") => &apps::DAEMON_SET,
        ("apps", _, "deployments") => &apps::DEPLOYMENT,
        ("apps", _, "replicasets") => &apps::REPLICA_SET,
        ("apps", _, "statefulsets") => &apps::STATEFUL_SET,
        ("autoscaling", "v1", "horizontalpodautoscalers") => &autoscaling::HPA_V1,
        ("autoscaling", _, "horizontalpodautoscalers") => &autoscaling::HPA_V2,
        ("batch", _, "cronjobs") => &batch::CRON_JOB,
        ("batch", _, "jobs") => &batch::JOB,
        ("certificates.k8s.io", _, "certificatesigningrequests") => {
            &certificates::CERTIFICATE_SIGNING_REQUEST
        }
        ("coordination.k8s.io", _, "leases") => &coordination::LEASE,
        ("discovery.k8s.io", _, "endpointslices") => &networking::ENDPOINT_SLICE,
        ("events.k8s.io", _, "events") => &events::EVENTS_V1_EVENT,
        ("flowcontrol.apiserver.k8s.io", _, "flowschemas") => &flowcontrol::FLOW_SCHEMA,
        ("flowcontrol.apiserver.k8s.io", _, "prioritylevelconfigurations") => {
            &flowcontrol::PRIORITY_LEVEL_CONFIGURATION
        }
        ("networking.k8s.io", _, "ingressclasses") => &networking::INGRESS_CLASS,
        ("networking.k8s.io", _, "ingresses") => &networking::INGRESS,
        ("networking.k8s.io", _, "ipaddresses") => &networking::IP_ADDRESS,
        ("networking.k8s.io", _, "networkpolicies") => &networking::NETWORK_POLICY,
        ("networking.k8s.io", _, "servicecidrs") => &networking::SERVICE_CIDR,
        ("node.k8s.io", _, "runtimeclasses") => &node::RUNTIME_CLASS,
        ("policy", _, "poddisruptionbudgets") => &policy::POD_DISRUPTION_BUDGET,
        ("rbac.authorization.k8s.io", _, "clusterrolebindings") => &rbac::ROLE_BINDING,
        ("rbac.authorization.k8s.io", _, "rolebindings") => &rbac::ROLE_BINDING,
        ("scheduling.k8s.io", _, "priorityclasses") => &scheduling::PRIORITY_CLASS,
        ("storage.k8s.io", _, "csidrivers") => &storage::CSI_DRIVER,
        ("storage.k8s.io", _, "csinodes") => &storage::CSI_NODE,
        ("storage.k8s.io", _, "csistoragecapacities") => &storage::CSI_STORAGE_CAPACITY,
        ("storage.k8s.io", _, "storageclasses") => &storage::STORAGE_CLASS,
        ("storage.k8s.io", _, "volumeattachments") => &storage::VOLUME_ATTACHMENT,
        _ => &DEFAULT,
    }
}

/// The object a row carries: `includeObject=None|Metadata|Object` (Metadata by default).
/// A full object carries its `apiVersion` and `kind`, as upstream embeds it with its
/// TypeMeta: kubectl's `--sort-by` decodes it by them.
fn row_object(resource: &ResourceInfo, object: &Value, include: &str) -> Option<Value> {
    match include {
        "None" => None,
        "Object" => {
            let mut full = object.clone();
            if let Some(map) = full.as_object_mut() {
                map.insert("apiVersion".into(), json!(resource.api_version()));
                map.insert("kind".into(), json!(resource.kind));
            }
            Some(full)
        }
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
    let ctx = Ctx {
        now: Timestamp::now(),
    };
    build(resource, objects, list_metadata, include, headers, &ctx)
}

fn build(
    resource: &ResourceInfo,
    objects: &[Value],
    list_metadata: Value,
    include: &str,
    headers: bool,
    ctx: &Ctx,
) -> Value {
    let printer = printer(resource);
    let mut ordered: Vec<&Value> = objects.iter().collect();
    if let Some(order) = printer.order {
        ordered.sort_by(|a, b| order(a, b));
    }
    let rows: Vec<Value> = ordered
        .into_iter()
        .map(|object| {
            let mut row = json!({"cells": (printer.row)(object, ctx)});
            let conditions = printer.conditions.map_or(Value::Null, |c| c(object));
            if !conditions.is_null() {
                row["conditions"] = conditions;
            }
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
        let definitions: Vec<Value> = printer
            .columns
            .iter()
            .map(|c| json!({"name": c.name, "type": c.kind, "format": c.format, "description": "", "priority": c.priority}))
            .collect();
        table["columnDefinitions"] = Value::Array(definitions);
    }
    table
}

// ---- shared helpers: reading the JSON object, and upstream's formatting functions ----

/// The object's name, the first cell of most rows.
fn name_of(object: &Value) -> Value {
    json!(str_of(&object["metadata"]["name"]))
}

/// A string field, `""` when absent (a Go zero value).
fn str_of(value: &Value) -> &str {
    value.as_str().unwrap_or("")
}

/// An integer field, 0 when absent.
fn int_of(value: &Value) -> i64 {
    value.as_i64().unwrap_or(0)
}

/// An array field, empty when absent.
fn items(value: &Value) -> &[Value] {
    value.as_array().map_or(&[], Vec::as_slice)
}

/// The number of entries of a map or array field.
fn count(value: &Value) -> i64 {
    let n = match value {
        Value::Object(m) => m.len(),
        Value::Array(a) => a.len(),
        _ => 0,
    };
    n as i64
}

/// `text`, or `<none>` when it is empty.
fn or_none(text: String) -> String {
    if text.is_empty() {
        "<none>".into()
    } else {
        text
    }
}

/// The strings of an array field joined by `sep`.
fn join(value: &Value, sep: &str) -> String {
    items(value)
        .iter()
        .filter_map(Value::as_str)
        .collect::<Vec<_>>()
        .join(sep)
}

fn parse_time(value: &Value) -> Option<Timestamp> {
    value.as_str()?.parse().ok()
}

/// Upstream's `duration.HumanDuration` over whole seconds.
fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    let seconds = seconds.max(0);
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        return with_remainder(minutes, "m", seconds % 60, "s");
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        return with_remainder(hours, "h", minutes % 60, "m");
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    let days = hours / 24;
    if hours < 24 * 8 {
        return with_remainder(days, "d", hours % 24, "h");
    }
    if hours < 24 * 365 * 2 {
        return format!("{days}d");
    }
    if hours < 24 * 365 * 8 {
        return with_remainder(days / 365, "y", days % 365, "d");
    }
    format!("{}y", days / 365)
}

/// `3h2m`, or `3h` when the remainder is zero.
fn with_remainder(whole: i64, unit: &str, rest: i64, rest_unit: &str) -> String {
    if rest == 0 {
        format!("{whole}{unit}")
    } else {
        format!("{whole}{unit}{rest}{rest_unit}")
    }
}

/// Upstream's `labels.FormatLabels`: `k=v` pairs sorted by key, `<none>` when empty.
fn format_labels(map: &Value) -> String {
    let mut pairs: Vec<String> = map
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", str_of(v)))
        .collect();
    pairs.sort();
    or_none(pairs.join(","))
}

/// `metav1.LabelSelectorAsSelector(selector).String()`; `None` when it does not convert.
fn selector_string(selector: &Value) -> Option<String> {
    let parsed: Option<LabelSelector> = if selector.is_null() {
        None
    } else {
        Some(serde_json::from_value(selector.clone()).ok()?)
    };
    Selector::from_label_selector(parsed.as_ref())
        .ok()
        .map(|s| s.to_string())
}

/// Upstream's `metav1.FormatLabelSelector`: `<none>` when it selects everything (or
/// nothing), `<error>` when it does not convert.
fn format_selector(selector: &Value) -> String {
    selector_string(selector).map_or_else(|| "<error>".into(), or_none)
}

/// Upstream's `layoutContainerCells` over a pod spec: container names and images, each
/// joined by commas.
fn containers(pod_spec: &Value) -> (String, String) {
    let list = items(&pod_spec["containers"]);
    let field = |f: &str| {
        list.iter()
            .map(|c| str_of(&c[f]))
            .collect::<Vec<_>>()
            .join(",")
    };
    (field("name"), field("image"))
}

/// The wide cells of the workload printers: Containers, Images and Selector.
fn workload_cells(pod_spec: &Value, selector: String) -> [Value; 3] {
    let (names, images) = containers(pod_spec);
    [json!(names), json!(images), json!(selector)]
}

/// The wide cells of a controller whose `spec` has a pod template and a label
/// selector (replica sets, daemon sets, jobs).
fn template_cells(spec: &Value) -> [Value; 3] {
    workload_cells(
        &spec["template"]["spec"],
        format_selector(&spec["selector"]),
    )
}

/// A quantity as upstream's `Quantity.String()` prints it (`1.5Gi` is `1536Mi`), `0`
/// when absent.
fn quantity(value: &Value) -> String {
    let text = match value {
        Value::Null => return "0".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    Quantity::parse(&text).map_or(text, |q| q.to_string())
}

/// A `*resource.Quantity` printed by upstream: `<nil>` when unset.
fn quantity_ptr(value: &Value) -> String {
    if value.is_null() {
        "<nil>".into()
    } else {
        quantity(value)
    }
}

/// Upstream's `listWithMoreString`: the first `max` entries, `+ N more...` for the rest,
/// `<unset>` for none.
fn list_with_more(list: &[String], max: usize) -> String {
    let shown = list.iter().take(max).cloned().collect::<Vec<_>>().join(",");
    if list.len() > max {
        format!("{shown} + {} more...", list.len() - max)
    } else if shown.is_empty() {
        "<unset>".into()
    } else {
        shown
    }
}

/// Upstream's `printBoolPtr`: `True`, `False` or `<unset>`.
fn bool_ptr(value: &Value) -> &'static str {
    match value.as_bool() {
        Some(true) => "True",
        Some(false) => "False",
        None => "<unset>",
    }
}

/// The `status` of the first condition of `type` in a conditions array.
fn condition_status<'a>(conditions: &'a Value, kind: &str) -> Option<&'a str> {
    items(conditions)
        .iter()
        .find(|c| c["type"] == kind)
        .map(|c| str_of(&c["status"]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use apimachinery::resources::{RESOURCES, find};

    /// A fixed "now" for exact Age cells: 2024-05-01T12:00:00Z.
    pub(super) fn ctx() -> Ctx {
        Ctx {
            now: "2024-05-01T12:00:00Z".parse().unwrap(),
        }
    }

    /// The cells of one object printed as `group/version/plural`.
    pub(super) fn cells(group: &str, version: &str, plural: &str, object: Value) -> Vec<Value> {
        let resource = find(group, version, plural).unwrap();
        let t = build(resource, &[object], json!({}), "None", true, &ctx());
        t["rows"][0]["cells"].as_array().unwrap().clone()
    }

    /// The column names of a resource's table.
    pub(super) fn column_names(group: &str, version: &str, plural: &str) -> Vec<String> {
        printer(find(group, version, plural).unwrap())
            .columns
            .iter()
            .map(|c| c.name.to_owned())
            .collect()
    }

    #[test]
    fn human_durations_match_upstream() {
        for (seconds, text) in [
            (-5, "<invalid>"),
            (-1, "0s"),
            (5, "5s"),
            (119, "119s"),
            (150, "2m30s"),
            (180, "3m"),
            (600, "10m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 120, "3h2m"),
            (10 * 3600, "10h"),
            (3 * 86400 + 3600, "3d1h"),
            (30 * 86400, "30d"),
            (3 * 365 * 86400, "3y"),
            (3 * 365 * 86400 + 5 * 86400, "3y5d"),
            (10 * 365 * 86400, "10y"),
        ] {
            assert_eq!(human_duration(seconds), text, "{seconds}");
        }
    }

    #[test]
    fn every_row_has_one_cell_per_column() {
        // a bare object exercises every printer's defaults
        let object =
            json!({"metadata": {"name": "x", "creationTimestamp": "2024-05-01T11:00:00Z"}});
        for resource in RESOURCES.iter().filter(|r| r.has_verb("list")) {
            let p = printer(resource);
            let row = (p.row)(&object, &ctx());
            assert_eq!(row.len(), p.columns.len(), "{}", resource.group_resource());
            assert!(
                p.columns.iter().any(|c| c.format == "name"),
                "{}",
                resource.group_resource()
            );
        }
    }

    #[test]
    fn kinds_without_a_printer_get_the_default_convertor() {
        // as upstream's rest.NewDefaultTableConvertor: roles, limit ranges, CRDs
        let role =
            json!({"metadata": {"name": "r", "creationTimestamp": "2024-05-01T11:00:00+00:00"}});
        let t = build(
            find("rbac.authorization.k8s.io", "v1", "roles").unwrap(),
            &[role],
            json!({}),
            "None",
            true,
            &ctx(),
        );
        assert_eq!(t["columnDefinitions"][1]["name"], "Created At");
        assert_eq!(t["columnDefinitions"][1]["type"], "date");
        assert_eq!(t["rows"][0]["cells"], json!(["r", "2024-05-01T11:00:00Z"]));
        assert_eq!(
            column_names("apiextensions.k8s.io", "v1", "customresourcedefinitions"),
            ["Name", "Created At"]
        );
    }

    #[test]
    fn configmap_table_has_data_count_and_partial_metadata() {
        let cms = find("", "v1", "configmaps").unwrap();
        let cm = json!({"metadata": {"name": "c", "creationTimestamp": "2020-01-01T00:00:00Z"}, "data": {"a": "1", "b": "2"}, "binaryData": {"c": ""}});
        let t = table(
            cms,
            &[cm],
            json!({"resourceVersion": "5"}),
            "Metadata",
            true,
        );
        assert_eq!(t["metadata"]["resourceVersion"], "5");
        assert_eq!(t["columnDefinitions"][1]["name"], "Data");
        assert_eq!(t["rows"][0]["cells"][0], "c");
        assert_eq!(t["rows"][0]["cells"][1], 3);
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    }

    #[test]
    fn included_objects_carry_their_type_meta() {
        // kubectl --sort-by decodes row objects by apiVersion/kind; without them it
        // printed an empty <unknown> row
        let deployments = find("apps", "v1", "deployments").unwrap();
        let d = json!({"metadata": {"name": "web"}, "spec": {}});
        let t = build(deployments, &[d], json!({}), "Object", false, &ctx());
        let object = &t["rows"][0]["object"];
        assert_eq!(object["apiVersion"], "apps/v1");
        assert_eq!(object["kind"], "Deployment");
        assert_eq!(object["metadata"]["name"], "web");
        assert!(t.get("columnDefinitions").is_none());
        let t = build(deployments, &[json!({})], json!({}), "None", true, &ctx());
        assert!(t["rows"][0].get("object").is_none());
    }

    #[test]
    fn wide_columns_have_priority_one() {
        let t = build(
            find("", "v1", "pods").unwrap(),
            &[],
            json!({}),
            "None",
            true,
            &ctx(),
        );
        let wide: Vec<&str> = t["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["priority"] == 1)
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(wide, ["IP", "Node", "Nominated Node", "Readiness Gates"]);
    }

    #[test]
    fn selectors_format_as_upstream() {
        assert_eq!(format_selector(&Value::Null), "<none>");
        assert_eq!(format_selector(&json!({})), "<none>");
        assert_eq!(
            format_selector(
                &json!({"matchLabels": {"b": "2", "a": "1"}, "matchExpressions": [{"key": "c", "operator": "In", "values": ["y", "x"]}, {"key": "d", "operator": "DoesNotExist"}]})
            ),
            "a=1,b=2,c in (x,y),!d"
        );
        assert_eq!(
            format_selector(&json!({"matchExpressions": [{"key": "c", "operator": "Bogus"}]})),
            "<error>"
        );
        assert_eq!(format_labels(&json!({"b": "2", "a": "1"})), "a=1,b=2");
        assert_eq!(format_labels(&Value::Null), "<none>");
    }

    #[test]
    fn lists_show_the_first_entries_then_a_count() {
        let l: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        assert_eq!(list_with_more(&l, 2), "a,b + 2 more...");
        assert_eq!(list_with_more(&l[..2], 3), "a,b");
        assert_eq!(list_with_more(&[], 3), "<unset>");
    }

    #[test]
    fn quantities_print_canonically() {
        assert_eq!(quantity(&json!("1.5Gi")), "1536Mi");
        assert_eq!(quantity(&Value::Null), "0");
        assert_eq!(quantity_ptr(&Value::Null), "<nil>");
        assert_eq!(quantity(&json!(2)), "2");
    }
}
