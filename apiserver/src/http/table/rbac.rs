//! Printers of `rbac.authorization.k8s.io`: role bindings and cluster role bindings share
//! one. Roles and cluster roles have no printer upstream and get the default table.

use serde_json::json;

use super::{AGE, NAME, Printer, items, name_of, str_of, string};

pub(super) const ROLE_BINDING: Printer = Printer::new(
    &[
        NAME,
        string("Role"),
        AGE,
        string("Users").wide(),
        string("Groups").wide(),
        string("ServiceAccounts").wide(),
    ],
    |o, ctx| {
        let role = &o["roleRef"];
        // upstream's rbac.SubjectsStrings; service accounts print as namespace/name
        let subjects = |kind: &str| {
            items(&o["subjects"])
                .iter()
                .filter(|s| s["kind"] == kind)
                .map(|s| match kind {
                    "ServiceAccount" => {
                        format!("{}/{}", str_of(&s["namespace"]), str_of(&s["name"]))
                    }
                    _ => str_of(&s["name"]).to_owned(),
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        vec![
            name_of(o),
            json!(format!(
                "{}/{}",
                str_of(&role["kind"]),
                str_of(&role["name"])
            )),
            ctx.age(o),
            json!(subjects("User")),
            json!(subjects("Group")),
            json!(subjects("ServiceAccount")),
        ]
    },
);

#[cfg(test)]
mod tests {
    use super::super::tests::cells;
    use serde_json::json;

    #[test]
    fn bindings_print_role_and_subjects() {
        let binding = json!({
            "metadata": {"name": "admins"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [
                {"kind": "User", "name": "alice"}, {"kind": "Group", "name": "system:masters"},
                {"kind": "ServiceAccount", "namespace": "kube-system", "name": "ci"}, {"kind": "User", "name": "bob"},
            ],
        });
        assert_eq!(
            cells(
                "rbac.authorization.k8s.io",
                "v1",
                "clusterrolebindings",
                binding
            ),
            [
                "admins",
                "ClusterRole/cluster-admin",
                "<unknown>",
                "alice, bob",
                "system:masters",
                "kube-system/ci"
            ]
        );
    }
}
