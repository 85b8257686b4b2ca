//! Printers of the `apps` group: deployments, replica sets, stateful sets, daemon sets and
//! controller revisions.

use serde_json::{Value, json};

use super::core::{REPLICA_COLUMNS, replica_cells};
use super::{
    AGE, CONTAINERS, IMAGES, NAME, Printer, SELECTOR, containers, format_labels, int_of, integer,
    items, name_of, selector_string, str_of, string, template_cells, workload_cells,
};

/// `ready/desired`, desired defaulting to 1 as apps/v1 does.
fn ready_of_desired(o: &Value) -> Value {
    let desired = o["spec"]["replicas"].as_i64().unwrap_or(1);
    json!(format!(
        "{}/{desired}",
        int_of(&o["status"]["readyReplicas"])
    ))
}

pub(super) const DEPLOYMENT: Printer = Printer::new(
    &[
        NAME,
        string("Ready"),
        string("Up-to-date"),
        string("Available"),
        AGE,
        CONTAINERS,
        IMAGES,
        SELECTOR,
    ],
    |o, ctx| {
        // unlike the other workloads, an empty selector prints empty, a bad one <invalid>
        let selector =
            selector_string(&o["spec"]["selector"]).unwrap_or_else(|| "<invalid>".into());
        let mut cells = vec![
            name_of(o),
            ready_of_desired(o),
            json!(int_of(&o["status"]["updatedReplicas"])),
            json!(int_of(&o["status"]["availableReplicas"])),
            ctx.age(o),
        ];
        cells.extend(workload_cells(&o["spec"]["template"]["spec"], selector));
        cells
    },
);

pub(super) const REPLICA_SET: Printer = Printer::new(REPLICA_COLUMNS, |o, ctx| {
    let mut cells = replica_cells(o, ctx);
    cells.extend(template_cells(&o["spec"]));
    cells
});

pub(super) const DAEMON_SET: Printer = Printer::new(
    &[
        NAME,
        integer("Desired"),
        integer("Current"),
        integer("Ready"),
        integer("Up-to-date"),
        integer("Available"),
        string("Node Selector"),
        AGE,
        CONTAINERS,
        IMAGES,
        SELECTOR,
    ],
    |o, ctx| {
        let status = &o["status"];
        let mut cells = vec![name_of(o)];
        cells.extend(
            [
                "desiredNumberScheduled",
                "currentNumberScheduled",
                "numberReady",
                "updatedNumberScheduled",
                "numberAvailable",
            ]
            .map(|field| json!(int_of(&status[field]))),
        );
        cells.push(json!(format_labels(
            &o["spec"]["template"]["spec"]["nodeSelector"]
        )));
        cells.push(ctx.age(o));
        cells.extend(template_cells(&o["spec"]));
        cells
    },
);

pub(super) const STATEFUL_SET: Printer = Printer::new(
    &[NAME, string("Ready"), AGE, CONTAINERS, IMAGES],
    |o, ctx| {
        let (names, images) = containers(&o["spec"]["template"]["spec"]);
        vec![
            name_of(o),
            ready_of_desired(o),
            ctx.age(o),
            json!(names),
            json!(images),
        ]
    },
);

pub(super) const CONTROLLER_REVISION: Printer = Printer::new(
    &[NAME, string("Controller"), string("Revision"), AGE],
    |o, ctx| {
        vec![
            name_of(o),
            json!(controller_of(o)),
            json!(int_of(&o["revision"])),
            ctx.age(o),
        ]
    },
);

/// The controlling owner as `kind.group/name` in lower case (`daemonset.apps/fluentd`),
/// or `<none>`.
fn controller_of(o: &Value) -> String {
    let Some(owner) = items(&o["metadata"]["ownerReferences"])
        .iter()
        .find(|r| r["controller"] == true)
    else {
        return "<none>".into();
    };
    let kind = str_of(&owner["kind"]);
    let name = str_of(&owner["name"]);
    let group = str_of(&owner["apiVersion"])
        .rsplit_once('/')
        .map_or("", |(group, _)| group);
    match (kind, group) {
        ("", "") => name.to_owned(),
        (kind, "") => format!("{}/{name}", kind.to_lowercase()),
        (kind, group) => format!("{}.{}/{name}", kind.to_lowercase(), group.to_lowercase()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{cells, column_names};
    use serde_json::json;

    #[test]
    fn deployments_print_ready_and_wide_containers() {
        let d = json!({
            "metadata": {"name": "web", "creationTimestamp": "2024-04-29T12:00:00Z"},
            "spec": {"replicas": 3,
                     "selector": {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["fe", "be"]}]},
                     "template": {"spec": {"containers": [
                        {"name": "nginx", "image": "nginx:1.27"}, {"name": "sidecar", "image": "busybox"}]}}},
            "status": {"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2},
        });
        assert_eq!(
            cells("apps", "v1", "deployments", d),
            [
                json!("web"),
                json!("2/3"),
                json!(3),
                json!(2),
                json!("2d"),
                json!("nginx,sidecar"),
                json!("nginx:1.27,busybox"),
                json!("app=web,tier in (be,fe)"),
            ]
        );
        assert_eq!(
            column_names("apps", "v1", "deployments"),
            [
                "Name",
                "Ready",
                "Up-to-date",
                "Available",
                "Age",
                "Containers",
                "Images",
                "Selector"
            ]
        );
    }

    #[test]
    fn replica_sets_daemon_sets_and_stateful_sets() {
        let rs = json!({"spec": {"replicas": 2, "selector": {}, "template": {"spec": {"containers": [{"name": "a", "image": "i"}]}}},
                        "status": {"replicas": 2, "readyReplicas": 1}});
        let c = cells("apps", "v1", "replicasets", rs);
        assert_eq!(c[1..4], [json!(2), json!(2), json!(1)]);
        assert_eq!(c[5..], [json!("a"), json!("i"), json!("<none>")]);

        let ds = json!({"spec": {"template": {"spec": {"nodeSelector": {"kubernetes.io/os": "linux"}}}},
                        "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2,
                                   "updatedNumberScheduled": 3, "numberAvailable": 2}});
        let c = cells("apps", "v1", "daemonsets", ds);
        assert_eq!(
            c[1..7],
            [
                json!(3),
                json!(3),
                json!(2),
                json!(3),
                json!(2),
                json!("kubernetes.io/os=linux")
            ]
        );

        let sts = json!({"spec": {"replicas": 3}, "status": {"readyReplicas": 3}});
        assert_eq!(cells("apps", "v1", "statefulsets", sts)[1], "3/3");
    }

    #[test]
    fn controller_revisions_name_their_controller() {
        let cr = json!({"metadata": {"ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "fluentd", "controller": true}]}, "revision": 4});
        let c = cells("apps", "v1", "controllerrevisions", cr);
        assert_eq!(c[1..3], [json!("daemonset.apps/fluentd"), json!(4)]);
        assert_eq!(
            cells("apps", "v1", "controllerrevisions", json!({}))[1],
            "<none>"
        );
    }
}
