//! Printers of the `policy` group: pod disruption budgets.

use serde_json::{Value, json};

use super::{AGE, NAME, Printer, int_of, integer, name_of, string};

/// An int-or-string field as upstream's `IntOrString.String()`, or `N/A` when unset.
fn int_or_string(value: &Value) -> String {
    match value {
        Value::Null => "N/A".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub(super) const POD_DISRUPTION_BUDGET: Printer = Printer::new(
    &[
        NAME,
        string("Min Available"),
        string("Max Unavailable"),
        integer("Allowed Disruptions"),
        AGE,
    ],
    |o, ctx| {
        vec![
            name_of(o),
            json!(int_or_string(&o["spec"]["minAvailable"])),
            json!(int_or_string(&o["spec"]["maxUnavailable"])),
            json!(int_of(&o["status"]["disruptionsAllowed"])),
            ctx.age(o),
        ]
    },
);

#[cfg(test)]
mod tests {
    use super::super::tests::cells;
    use serde_json::json;

    #[test]
    fn budgets_print_int_or_percent_and_na() {
        let pdb = json!({"spec": {"minAvailable": "50%"}, "status": {"disruptionsAllowed": 1}});
        let c = cells("policy", "v1", "poddisruptionbudgets", pdb);
        assert_eq!(c[1..4], [json!("50%"), json!("N/A"), json!(1)]);
        let pdb = json!({"spec": {"maxUnavailable": 1}});
        assert_eq!(
            cells("policy", "v1", "poddisruptionbudgets", pdb)[1..3],
            [json!("N/A"), json!("1")]
        );
    }
}
