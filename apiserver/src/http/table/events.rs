//! The Event printer, shared by core `v1` and `events.k8s.io/v1` events: upstream prints
//! both from the one internal Event, so only the field names differ here.

use serde_json::{Value, json};

use super::{Column, Ctx, NAME, Printer, int_of, name_of, str_of, string};

/// As upstream: the name comes last and only in `-o wide`, with the source and counts.
const COLUMNS: &[Column] = &[
    string("Last Seen"),
    string("Type"),
    string("Reason"),
    string("Object"),
    string("Subobject").wide(),
    string("Source").wide(),
    string("Message"),
    string("First Seen").wide(),
    string("Count").wide(),
    NAME.wide(),
];

pub(super) const CORE_EVENT: Printer = Printer::new(COLUMNS, |o, ctx| event_row(o, ctx, &CORE));
pub(super) const EVENTS_V1_EVENT: Printer =
    Printer::new(COLUMNS, |o, ctx| event_row(o, ctx, &EVENTS_V1));

/// Where one Event version keeps the fields the printer reads.
struct Fields {
    regarding: &'static str,
    message: &'static str,
    source: &'static str,
    first: &'static str,
    last: &'static str,
    count: &'static str,
    reporting_controller: &'static str,
}

const CORE: Fields = Fields {
    regarding: "involvedObject",
    message: "message",
    source: "source",
    first: "firstTimestamp",
    last: "lastTimestamp",
    count: "count",
    reporting_controller: "reportingComponent",
};

/// events.k8s.io/v1 renamed the fields and kept the old ones as `deprecated*`.
const EVENTS_V1: Fields = Fields {
    regarding: "regarding",
    message: "note",
    source: "deprecatedSource",
    first: "deprecatedFirstTimestamp",
    last: "deprecatedLastTimestamp",
    count: "deprecatedCount",
    reporting_controller: "reportingController",
};

/// The first non-empty string.
fn first_set(candidates: [&Value; 2]) -> &str {
    candidates
        .into_iter()
        .map(str_of)
        .find(|s| !s.is_empty())
        .unwrap_or("")
}

/// Upstream's `printEvent`: times fall back from the deprecated timestamps to
/// `eventTime`, and a series overrides the last time and count.
fn event_row(o: &Value, ctx: &Ctx, f: &Fields) -> Vec<Value> {
    let first = if o[f.first].is_string() {
        ctx.since(&o[f.first])
    } else {
        ctx.since(&o["eventTime"])
    };
    let mut last = if o[f.last].is_string() {
        ctx.since(&o[f.last])
    } else {
        first.clone()
    };
    let mut count = int_of(&o[f.count]);
    let series = &o["series"];
    if series.is_object() {
        last = ctx.since(&series["lastObservedTime"]);
        count = int_of(&series["count"]);
    } else if count == 0 {
        // singleton events have no count in the new API
        count = 1;
    }
    let regarding = &o[f.regarding];
    let kind = str_of(&regarding["kind"]).to_lowercase();
    let object = match str_of(&regarding["name"]) {
        "" => kind,
        name => format!("{kind}/{name}"),
    };
    let component = first_set([&o[f.source]["component"], &o[f.reporting_controller]]);
    let source = match first_set([&o[f.source]["host"], &o["reportingInstance"]]) {
        "" => component.to_owned(),
        instance => format!("{component}, {instance}"),
    };
    vec![
        json!(last),
        json!(str_of(&o["type"])),
        json!(str_of(&o["reason"])),
        json!(object),
        json!(str_of(&regarding["fieldPath"])),
        json!(source),
        json!(str_of(&o[f.message]).trim()),
        json!(first),
        json!(count),
        name_of(o),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::tests::{cells, column_names};
    use serde_json::json;

    #[test]
    fn core_events_print_object_source_and_times() {
        let event = json!({
            "metadata": {"name": "web-0.17c1", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "web-0", "fieldPath": "spec.containers{app}"},
            "reason": "BackOff", "message": "Back-off restarting failed container\n", "type": "Warning",
            "source": {"component": "kubelet", "host": "n1"},
            "firstTimestamp": "2024-05-01T11:00:00Z", "lastTimestamp": "2024-05-01T11:59:00Z", "count": 7,
        });
        assert_eq!(
            cells("", "v1", "events", event),
            [
                json!("60s"),
                json!("Warning"),
                json!("BackOff"),
                json!("pod/web-0"),
                json!("spec.containers{app}"),
                json!("kubelet, n1"),
                json!("Back-off restarting failed container"),
                json!("60m"),
                json!(7),
                json!("web-0.17c1"),
            ]
        );
    }

    #[test]
    fn new_api_events_use_event_time_series_and_reporting_controller() {
        let event = json!({
            "metadata": {"name": "e"},
            "regarding": {"kind": "Node"},
            "reason": "Starting", "note": "Starting kubelet.", "type": "Normal",
            "eventTime": "2024-05-01T11:58:00.000000Z",
            "reportingController": "kubelet", "reportingInstance": "n1",
            "series": {"count": 3, "lastObservedTime": "2024-05-01T11:59:30.000000Z"},
        });
        assert_eq!(
            cells("events.k8s.io", "v1", "events", event),
            [
                json!("30s"),
                json!("Normal"),
                json!("Starting"),
                json!("node"),
                json!(""),
                json!("kubelet, n1"),
                json!("Starting kubelet."),
                json!("2m"),
                json!(3),
                json!("e"),
            ]
        );
        let single = json!({"metadata": {"name": "s"}, "eventTime": "2024-05-01T11:59:00.000000Z",
                            "regarding": {"kind": "Pod", "name": "p"}, "reportingController": "sched"});
        let c = cells("events.k8s.io", "v1", "events", single);
        assert_eq!(c[0], "60s");
        assert_eq!(c[5], "sched");
        assert_eq!(c[8], 1);
    }

    #[test]
    fn event_columns_put_the_name_last() {
        assert_eq!(
            column_names("", "v1", "events"),
            [
                "Last Seen",
                "Type",
                "Reason",
                "Object",
                "Subobject",
                "Source",
                "Message",
                "First Seen",
                "Count",
                "Name"
            ]
        );
    }
}
