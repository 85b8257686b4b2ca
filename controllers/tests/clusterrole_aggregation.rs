//! The ClusterRole aggregation controller against a real apiserver: an aggregated
//! ClusterRole gathers the rules of the roles its selector picks, and follows them as
//! they are added, changed and deleted.

mod support;

use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use support::{Spec, cluster, wait_for};

fn role(value: Value) -> ClusterRole {
    serde_json::from_value(value).unwrap()
}

/// A cluster running the aggregation controller, which writes aggregated ClusterRoles
/// with its own `system:controller:clusterrole-aggregation-controller` role (it holds
/// `escalate`, as upstream's).
async fn aggregation_cluster() -> support::Cluster {
    let mut spec = Spec::new(&["clusterrole-aggregation"]);
    spec.scheduler = false;
    cluster(spec).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aggregated_cluster_role_follows_the_roles_it_selects() {
    let c = aggregation_cluster().await;
    let roles: Api<ClusterRole> = Api::all(c.admin.clone());
    let label = "example.com/aggregate-to-monitoring";
    roles
        .create(
            &PostParams::default(),
            &role(json!({
                "metadata": {"name": "monitoring"},
                "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {label: "true"}}]}
            })),
        )
        .await
        .unwrap();
    let pods = json!({"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]});
    let nodes = json!({"verbs": ["get"], "apiGroups": [""], "resources": ["nodes"]});
    let metrics = json!({"verbs": ["get"], "nonResourceURLs": ["/metrics"]});
    roles
        .create(
            &PostParams::default(),
            &role(json!({
                "metadata": {"name": "monitoring-pods", "labels": {label: "true"}},
                "rules": [pods.clone()]
            })),
        )
        .await
        .unwrap();
    // not selected: its rules stay out
    roles
        .create(
            &PostParams::default(),
            &role(json!({
                "metadata": {"name": "unrelated", "labels": {label: "false"}},
                "rules": [metrics.clone()]
            })),
        )
        .await
        .unwrap();

    let rules_are = |want: Value| {
        let roles = roles.clone();
        async move {
            let got = roles.get("monitoring").await.unwrap().rules;
            let got = serde_json::to_value(got.unwrap_or_default()).unwrap();
            (got == want).then_some(())
        }
    };
    wait_for("the selected role's rules", || {
        rules_are(json!([pods.clone()]))
    })
    .await;

    // a second role (sorting before the first) and a repeated rule
    roles
        .create(
            &PostParams::default(),
            &role(json!({
                "metadata": {"name": "monitoring-a-nodes", "labels": {label: "true"}},
                "rules": [nodes.clone(), pods.clone()]
            })),
        )
        .await
        .unwrap();
    wait_for("both roles' rules, by role name, once each", || {
        rules_are(json!([nodes.clone(), pods.clone()]))
    })
    .await;

    // a selected role changing its rules
    roles
        .patch(
            "monitoring-pods",
            &PatchParams::default(),
            &Patch::Merge(json!({"rules": [metrics.clone()]})),
        )
        .await
        .unwrap();
    wait_for("the changed rules", || {
        rules_are(json!([nodes.clone(), pods.clone(), metrics.clone()]))
    })
    .await;

    // a selected role going away
    roles
        .delete("monitoring-a-nodes", &DeleteParams::default())
        .await
        .unwrap();
    wait_for("the deleted role's rules gone", || {
        rules_are(json!([metrics.clone()]))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_roles_aggregate_into_admin_edit_and_view() {
    let c = aggregation_cluster().await;
    let roles: Api<ClusterRole> = Api::all(c.admin.clone());
    // a CRD author's role labelled for view reaches view, edit and admin
    let widgets = json!({"verbs": ["get"], "apiGroups": ["example.com"], "resources": ["widgets"]});
    roles
        .create(
            &PostParams::default(),
            &role(json!({
                "metadata": {"name": "widgets-view", "labels": {
                    "rbac.authorization.k8s.io/aggregate-to-view": "true"}},
                "rules": [widgets.clone()]
            })),
        )
        .await
        .unwrap();
    for name in ["view", "edit", "admin"] {
        wait_for(&format!("{name} to include the widgets rule"), || {
            let (roles, widgets) = (roles.clone(), widgets.clone());
            async move {
                let rules = roles.get(name).await.unwrap().rules.unwrap_or_default();
                serde_json::to_value(rules)
                    .unwrap()
                    .as_array()?
                    .contains(&widgets)
                    .then_some(())
            }
        })
        .await;
    }
}
