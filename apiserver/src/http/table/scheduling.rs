//! Printers of `scheduling.k8s.io`: priority classes.

use serde_json::json;

use super::{AGE, NAME, Printer, boolean, int_of, integer, name_of, str_of, string};

/// The preemption policy column has priority 0 upstream although only wide output fills
/// it; the server always prints wide, so it always shows.
pub(super) const PRIORITY_CLASS: Printer = Printer::new(
    &[
        NAME,
        integer("Value"),
        boolean("Global-Default"),
        AGE,
        string("PreemptionPolicy"),
    ],
    |o, ctx| {
        vec![
            name_of(o),
            json!(int_of(&o["value"])),
            json!(o["globalDefault"] == true),
            ctx.age(o),
            json!(str_of(&o["preemptionPolicy"])),
        ]
    },
);

#[cfg(test)]
mod tests {
    use super::super::tests::cells;
    use serde_json::json;

    #[test]
    fn priority_classes_print_value_and_policy() {
        let pc = json!({"metadata": {"name": "system-node-critical"}, "value": 2000001000,
                        "preemptionPolicy": "PreemptLowerPriority"});
        assert_eq!(
            cells("scheduling.k8s.io", "v1", "priorityclasses", pc),
            [
                json!("system-node-critical"),
                json!(2000001000),
                json!(false),
                json!("<unknown>"),
                json!("PreemptLowerPriority")
            ]
        );
    }
}
