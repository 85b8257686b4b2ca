//! Printers of `admissionregistration.k8s.io`: webhook configurations (mutating and
//! validating share one), validating admission policies and their bindings.

use serde_json::{Value, json};

use super::{AGE, NAME, Printer, count, integer, items, name_of, str_of, string};

pub(super) const WEBHOOK_CONFIGURATION: Printer =
    Printer::new(&[NAME, integer("Webhooks"), AGE], |o, ctx| {
        vec![name_of(o), json!(count(&o["webhooks"])), ctx.age(o)]
    });

pub(super) const VALIDATING_ADMISSION_POLICY: Printer = Printer::new(
    &[NAME, integer("Validations"), string("ParamKind"), AGE],
    |o, ctx| {
        let param_kind = match &o["spec"]["paramKind"] {
            Value::Null => "<unset>".to_owned(),
            p => format!("{}/{}", str_of(&p["apiVersion"]), str_of(&p["kind"])),
        };
        vec![
            name_of(o),
            json!(count(&o["spec"]["validations"])),
            json!(param_kind),
            ctx.age(o),
        ]
    },
);

pub(super) const VALIDATING_ADMISSION_POLICY_BINDING: Printer = Printer::new(
    &[NAME, string("PolicyName"), string("ParamRef"), AGE],
    |o, ctx| {
        vec![
            name_of(o),
            json!(str_of(&o["spec"]["policyName"])),
            json!(param_ref(&o["spec"]["paramRef"])),
            ctx.age(o),
        ]
    },
);

/// The binding's parameter: `namespace/name` (`*/name` when the namespace is open), else
/// its selector as upstream's Go value printing renders a `LabelSelector`.
fn param_ref(reference: &Value) -> String {
    if reference.is_null() {
        return "<unset>".into();
    }
    match (str_of(&reference["name"]), str_of(&reference["namespace"])) {
        ("", _) if reference["selector"].is_object() => go_label_selector(&reference["selector"]),
        ("", _) => "<unset>".into(),
        (name, "") => format!("*/{name}"),
        (name, namespace) => format!("{namespace}/{name}"),
    }
}

/// The generated `String()` of `metav1.LabelSelector`, which upstream prints here:
/// `&LabelSelector{MatchLabels:map[string]string{app: web,},MatchExpressions:[]...{},}`.
fn go_label_selector(selector: &Value) -> String {
    let mut labels: Vec<(&String, &Value)> = selector["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .collect();
    labels.sort_by_key(|(k, _)| *k);
    let labels: String = labels
        .into_iter()
        .map(|(k, v)| format!("{k}: {},", str_of(v)))
        .collect();
    let expressions: String = items(&selector["matchExpressions"])
        .iter()
        .map(|e| {
            let values: Vec<&str> = items(&e["values"])
                .iter()
                .filter_map(Value::as_str)
                .collect();
            format!(
                "LabelSelectorRequirement{{Key:{},Operator:{},Values:[{}],}},",
                str_of(&e["key"]),
                str_of(&e["operator"]),
                values.join(" ")
            )
        })
        .collect();
    format!(
        "&LabelSelector{{MatchLabels:map[string]string{{{labels}}},MatchExpressions:[]LabelSelectorRequirement{{{expressions}}},}}"
    )
}

#[cfg(test)]
mod tests {
    use super::super::tests::cells;
    use serde_json::json;

    const AR: &str = "admissionregistration.k8s.io";

    #[test]
    fn policies_and_bindings() {
        let policy = json!({"spec": {"paramKind": {"apiVersion": "v1", "kind": "ConfigMap"},
                                     "validations": [{"expression": "true"}, {"expression": "true"}]}});
        assert_eq!(
            cells(AR, "v1", "validatingadmissionpolicies", policy)[1..3],
            [json!(2), json!("v1/ConfigMap")]
        );
        let binding =
            |param: serde_json::Value| json!({"spec": {"policyName": "p", "paramRef": param}});
        assert_eq!(
            cells(
                AR,
                "v1",
                "validatingadmissionpolicybindings",
                binding(json!({"name": "cfg"}))
            )[2],
            "*/cfg"
        );
        assert_eq!(
            cells(
                AR,
                "v1",
                "validatingadmissionpolicybindings",
                binding(json!({"name": "cfg", "namespace": "ns"}))
            )[2],
            "ns/cfg"
        );
        assert_eq!(
            cells(
                AR,
                "v1",
                "validatingadmissionpolicybindings",
                binding(json!({"selector": {"matchLabels": {"app": "web"}}}))
            )[2],
            "&LabelSelector{MatchLabels:map[string]string{app: web,},MatchExpressions:[]LabelSelectorRequirement{},}"
        );
        assert_eq!(
            cells(AR, "v1", "validatingadmissionpolicybindings", json!({}))[2],
            "<unset>"
        );
        let hooks = json!({"webhooks": [{"name": "a"}]});
        assert_eq!(
            cells(AR, "v1", "mutatingwebhookconfigurations", hooks)[1],
            1
        );
    }
}
