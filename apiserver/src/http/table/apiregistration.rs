//! The printer of `apiregistration.k8s.io` API services, as kube-aggregator's own
//! `ConvertToTable`.

use serde_json::json;

use super::{AGE, NAME, Printer, items, name_of, str_of, string};

pub(super) const API_SERVICE: Printer = Printer::new(
    &[NAME, string("Service"), string("Available"), AGE],
    |o, ctx| {
        let service = match &o["spec"]["service"] {
            s if s.is_object() => format!("{}/{}", str_of(&s["namespace"]), str_of(&s["name"])),
            _ => "Local".to_owned(),
        };
        let available = items(&o["status"]["conditions"])
            .iter()
            .find(|c| c["type"] == "Available")
            .map_or_else(
                || "Unknown".to_owned(),
                |c| match (str_of(&c["status"]), str_of(&c["reason"])) {
                    ("True", _) | (_, "") => str_of(&c["status"]).to_owned(),
                    (status, reason) => format!("{status} ({reason})"),
                },
            );
        vec![name_of(o), json!(service), json!(available), ctx.age(o)]
    },
);

#[cfg(test)]
mod tests {
    use super::super::tests::cells;
    use serde_json::json;

    #[test]
    fn api_services_print_service_and_availability() {
        let local = json!({"metadata": {"name": "v1.apps"}, "status": {"conditions": [{"type": "Available", "status": "True", "reason": "Local"}]}});
        assert_eq!(
            cells("apiregistration.k8s.io", "v1", "apiservices", local)[1..3],
            [json!("Local"), json!("True")]
        );
        let remote = json!({"spec": {"service": {"namespace": "kube-system", "name": "metrics-server"}},
                            "status": {"conditions": [{"type": "Available", "status": "False", "reason": "MissingEndpoints"}]}});
        assert_eq!(
            cells("apiregistration.k8s.io", "v1", "apiservices", remote)[1..3],
            [
                json!("kube-system/metrics-server"),
                json!("False (MissingEndpoints)")
            ]
        );
    }
}
