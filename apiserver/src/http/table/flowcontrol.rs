//! Printers of `flowcontrol.apiserver.k8s.io`: flow schemas (listed in matching order, as
//! upstream's list printer sorts them) and priority level configurations.

use std::cmp::Ordering;

use serde_json::{Value, json};

use super::{AGE, NAME, Printer, condition_status, int_of, name_of, str_of, string};

pub(super) const FLOW_SCHEMA: Printer = Printer::new(
    &[
        NAME,
        string("PriorityLevel"),
        string("MatchingPrecedence"),
        string("DistinguisherMethod"),
        AGE,
        string("MissingPL"),
    ],
    |o, ctx| {
        let spec = &o["spec"];
        let distinguisher = spec["distinguisherMethod"]["type"]
            .as_str()
            .unwrap_or("<none>");
        // whether the priority level it names is missing, `?` until the controller says
        let missing = condition_status(&o["status"]["conditions"], "Dangling").unwrap_or("?");
        vec![
            name_of(o),
            json!(str_of(&spec["priorityLevelConfiguration"]["name"])),
            json!(int_of(&spec["matchingPrecedence"])),
            json!(distinguisher),
            ctx.age(o),
            json!(missing),
        ]
    },
)
.ordered_by(matching_order);

/// Upstream's `FlowSchemaSequence`: lower matching precedence first, then by name.
fn matching_order(a: &Value, b: &Value) -> Ordering {
    let key = |o: &Value| {
        (
            int_of(&o["spec"]["matchingPrecedence"]),
            str_of(&o["metadata"]["name"]).to_owned(),
        )
    };
    key(a).cmp(&key(b))
}

pub(super) const PRIORITY_LEVEL_CONFIGURATION: Printer = Printer::new(
    &[
        NAME,
        string("Type"),
        string("NominalConcurrencyShares"),
        string("Queues"),
        string("HandSize"),
        string("QueueLengthLimit"),
        AGE,
    ],
    |o, ctx| {
        let spec = &o["spec"];
        let limited = &spec["limited"];
        let queuing = &limited["limitResponse"]["queuing"];
        // exempt levels have no limits; levels that reject have no queues
        let none = || json!("<none>");
        let shares = if limited.is_object() {
            json!(int_of(&limited["nominalConcurrencyShares"]))
        } else {
            none()
        };
        let queue = |field: &str| {
            if queuing.is_object() {
                json!(int_of(&queuing[field]))
            } else {
                none()
            }
        };
        vec![
            name_of(o),
            json!(str_of(&spec["type"])),
            shares,
            queue("queues"),
            queue("handSize"),
            queue("queueLengthLimit"),
            ctx.age(o),
        ]
    },
);

#[cfg(test)]
mod tests {
    use super::super::build;
    use super::super::tests::cells;
    use apimachinery::resources::find;
    use serde_json::json;

    const FC: &str = "flowcontrol.apiserver.k8s.io";

    #[test]
    fn flow_schemas_list_in_matching_order() {
        let fs = |name: &str, precedence: i64| {
            json!({"metadata": {"name": name}, "spec": {"matchingPrecedence": precedence,
                   "priorityLevelConfiguration": {"name": "workload-low"}, "distinguisherMethod": {"type": "ByUser"}},
                   "status": {"conditions": [{"type": "Dangling", "status": "False"}]}})
        };
        let t = build(
            find(FC, "v1", "flowschemas").unwrap(),
            &[fs("b", 9000), fs("a", 9000), fs("exempt", 1)],
            json!({}),
            "None",
            false,
            &super::super::tests::ctx(),
        );
        let names: Vec<&str> = t["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["cells"][0].as_str().unwrap())
            .collect();
        assert_eq!(names, ["exempt", "a", "b"]);
        assert_eq!(
            t["rows"][0]["cells"],
            json!(["exempt", "workload-low", 1, "ByUser", "<unknown>", "False"])
        );
    }

    #[test]
    fn priority_levels_print_limits_and_queues() {
        let limited = json!({"spec": {"type": "Limited", "limited": {"nominalConcurrencyShares": 30,
            "limitResponse": {"type": "Queue", "queuing": {"queues": 64, "handSize": 6, "queueLengthLimit": 50}}}}});
        assert_eq!(
            cells(FC, "v1", "prioritylevelconfigurations", limited)[1..6],
            [json!("Limited"), json!(30), json!(64), json!(6), json!(50)]
        );
        let exempt = json!({"spec": {"type": "Exempt", "exempt": {}}});
        assert_eq!(
            cells(FC, "v1", "prioritylevelconfigurations", exempt)[1..6],
            [
                json!("Exempt"),
                json!("<none>"),
                json!("<none>"),
                json!("<none>"),
                json!("<none>")
            ]
        );
    }
}
