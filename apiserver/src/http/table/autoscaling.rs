//! Printers of `autoscaling`: horizontal pod autoscalers in v2 and v1. Upstream prints
//! both from the internal (v2-shaped) object; v1's CPU target is converted first.

use serde_json::{Value, json};

use super::{
    AGE, Column, Ctx, NAME, Printer, int_of, items, name_of, quantity_ptr, str_of, string,
};

const COLUMNS: &[Column] = &[
    NAME,
    string("Reference"),
    string("Targets"),
    string("MinPods"),
    string("MaxPods"),
    string("Replicas"),
    AGE,
];

pub(super) const HPA_V2: Printer = Printer::new(COLUMNS, |o, ctx| {
    let targets = format_metrics(
        items(&o["spec"]["metrics"]),
        items(&o["status"]["currentMetrics"]),
    );
    hpa_row(o, targets, ctx)
});

/// v1 carries a single CPU utilization target, which upstream converts to a Resource
/// metric before printing.
pub(super) const HPA_V1: Printer = Printer::new(COLUMNS, |o, ctx| {
    let cpu = |utilization: &Value, field: &str| json!({"type": "Resource", "resource": {"name": "cpu", field: {"averageUtilization": utilization}}});
    let specs: Vec<Value> = match &o["spec"]["targetCPUUtilizationPercentage"] {
        Value::Null => Vec::new(),
        target => vec![cpu(target, "target")],
    };
    let statuses: Vec<Value> = match &o["status"]["currentCPUUtilizationPercentage"] {
        Value::Null => Vec::new(),
        current => vec![cpu(current, "current")],
    };
    hpa_row(o, format_metrics(&specs, &statuses), ctx)
});

fn hpa_row(o: &Value, targets: String, ctx: &Ctx) -> Vec<Value> {
    let (spec, target) = (&o["spec"], &o["spec"]["scaleTargetRef"]);
    let min = spec["minReplicas"]
        .as_i64()
        .map_or_else(|| "<unset>".to_owned(), |m| m.to_string());
    vec![
        name_of(o),
        json!(format!(
            "{}/{}",
            str_of(&target["kind"]),
            str_of(&target["name"])
        )),
        json!(targets),
        json!(min),
        json!(int_of(&spec["maxReplicas"])),
        json!(int_of(&o["status"]["currentReplicas"])),
        ctx.age(o),
    ]
}

/// Upstream's `formatHPAMetrics`: `current/target` per metric, matched to the status at
/// the same index, the first two shown.
fn format_metrics(specs: &[Value], statuses: &[Value]) -> String {
    const MAX: usize = 2;
    if specs.is_empty() {
        return "<none>".into();
    }
    let list: Vec<String> = specs
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            // the status of the same source type at the same index, if reported
            let status = |field: &str| statuses.get(i).map(|s| &s[field]).filter(|s| s.is_object());
            match str_of(&spec["type"]) {
                "External" => value_metric(&spec["external"]["target"], status("external")),
                "Object" => value_metric(&spec["object"]["target"], status("object")),
                "Pods" => format!(
                    "{}/{}",
                    status("pods").map_or("<unknown>".into(), |s| quantity_ptr(
                        &s["current"]["averageValue"]
                    )),
                    quantity_ptr(&spec["pods"]["target"]["averageValue"])
                ),
                "Resource" => resource_metric(&spec["resource"], status("resource")),
                "ContainerResource" => {
                    resource_metric(&spec["containerResource"], status("containerResource"))
                }
                _ => "<unknown type>".into(),
            }
        })
        .collect();
    let shown = list
        .iter()
        .take(MAX)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if list.len() > MAX {
        format!("{shown} + {} more...", list.len() - MAX)
    } else {
        shown
    }
}

/// An External or Object metric: an average value (`(avg)`) or a plain value.
fn value_metric(target: &Value, status: Option<&Value>) -> String {
    let average = &target["averageValue"];
    if average.is_null() {
        let current = status.map_or("<unknown>".into(), |s| quantity_ptr(&s["current"]["value"]));
        return format!("{current}/{}", quantity_ptr(&target["value"]));
    }
    let current = status
        .map(|s| &s["current"]["averageValue"])
        .filter(|v| !v.is_null())
        .map_or("<unknown>".into(), quantity_ptr);
    format!("{current}/{} (avg)", quantity_ptr(average))
}

/// A Resource or ContainerResource metric: `cpu: 40%/80%`, or average values.
fn resource_metric(source: &Value, status: Option<&Value>) -> String {
    let (name, target) = (str_of(&source["name"]), &source["target"]);
    let average = &target["averageValue"];
    if !average.is_null() {
        let current = status.map_or("<unknown>".into(), |s| {
            quantity_ptr(&s["current"]["averageValue"])
        });
        return format!("{name}: {current}/{}", quantity_ptr(average));
    }
    let percent = |v: &Value| v.as_i64().map(|p| format!("{p}%"));
    let current = status
        .and_then(|s| percent(&s["current"]["averageUtilization"]))
        .unwrap_or_else(|| "<unknown>".into());
    let target = percent(&target["averageUtilization"]).unwrap_or_else(|| "<auto>".into());
    format!("{name}: {current}/{target}")
}

#[cfg(test)]
mod tests {
    use super::super::tests::cells;
    use serde_json::json;

    #[test]
    fn v2_autoscalers_print_each_metric() {
        let hpa = json!({
            "metadata": {"name": "web"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "minReplicas": 2, "maxReplicas": 10,
                     "metrics": [
                        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}},
                        {"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "1k"}}},
                        {"type": "External", "external": {"metric": {"name": "queue"}, "target": {"type": "Value", "value": "30"}}},
                     ]},
            "status": {"currentReplicas": 3, "currentMetrics": [
                {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 45, "averageValue": "450m"}}},
            ]},
        });
        assert_eq!(
            cells("autoscaling", "v2", "horizontalpodautoscalers", hpa),
            [
                json!("web"),
                json!("Deployment/web"),
                json!("cpu: 45%/80%, <unknown>/1k + 1 more..."),
                json!("2"),
                json!(10),
                json!(3),
                json!("<unknown>"),
            ]
        );
        let none = cells("autoscaling", "v2", "horizontalpodautoscalers", json!({}));
        assert_eq!(none[2..4], [json!("<none>"), json!("<unset>")]);
    }

    #[test]
    fn v1_autoscalers_print_the_cpu_target() {
        let hpa = json!({"spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 5,
                                  "targetCPUUtilizationPercentage": 50}, "status": {}});
        assert_eq!(
            cells("autoscaling", "v1", "horizontalpodautoscalers", hpa)[2],
            "cpu: <unknown>/50%"
        );
    }
}
