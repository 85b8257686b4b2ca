//! The Deployment controller against a real in-process apiserver, with the ReplicaSet
//! controller, the scheduler and a fake kubelet: a Deployment becomes available, an
//! image change rolls out a second ReplicaSet, and setting the template back (what
//! `kubectl rollout undo` does in apps/v1) makes the first ReplicaSet current again.

mod support;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use support::{ready_cluster, wait_for};

const REVISION: &str = "deployment.kubernetes.io/revision";

fn revision(rs: &ReplicaSet) -> Option<String> {
    rs.metadata.annotations.as_ref()?.get(REVISION).cloned()
}

fn replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

fn available(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

/// The Deployment once `kubectl rollout status` would call it done: observed, all
/// replicas updated and available, Progressing NewReplicaSetAvailable.
async fn rolled_out(api: &Api<Deployment>, name: &str, want: i32) -> Deployment {
    wait_for("the rollout to complete", || {
        let api = api.clone();
        let name = name.to_owned();
        async move {
            let d = api.get(&name).await.unwrap();
            let status = d.status.clone()?;
            let observed = status.observed_generation? >= d.metadata.generation?;
            let counts = status.updated_replicas == Some(want)
                && status.replicas == Some(want)
                && status.available_replicas == Some(want);
            let progressing = status.conditions.as_ref()?.iter().any(|c| {
                c.type_ == "Progressing"
                    && c.status == "True"
                    && c.reason.as_deref() == Some("NewReplicaSetAvailable")
            });
            let available = status.conditions.as_ref()?.iter().any(|c| {
                c.type_ == "Available"
                    && c.status == "True"
                    && c.reason.as_deref() == Some("MinimumReplicasAvailable")
            });
            (observed && counts && progressing && available).then_some(d)
        }
    })
    .await
}

async fn set_image(api: &Api<Deployment>, name: &str, image: &str) {
    let patch = serde_json::json!({
        "spec": {"template": {"spec": {"containers": [{"name": "web", "image": image}]}}}
    });
    api.patch(name, &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_rolls_out_updates_and_rolls_back() {
    let c = ready_cluster(&["deployment", "replicaset"], 1).await;
    let deployments: Api<Deployment> = Api::namespaced(c.admin.clone(), "default");
    let replica_sets: Api<ReplicaSet> = Api::namespaced(c.admin.clone(), "default");
    let d: Deployment = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1"}]}
            }
        }
    }))
    .unwrap();
    deployments
        .create(&PostParams::default(), &d)
        .await
        .unwrap();

    // 1. available, with one ReplicaSet at revision 1
    let d = rolled_out(&deployments, "web", 2).await;
    assert_eq!(
        d.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(REVISION))
            .map(String::as_str),
        Some("1")
    );
    let first = replica_sets
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    assert_eq!(first.len(), 1);
    let first = first.into_iter().next().unwrap();
    let first_name = first.metadata.name.clone().unwrap();
    let hash = first.metadata.labels.as_ref().unwrap()["pod-template-hash"].clone();
    assert_eq!(first_name, format!("web-{hash}"));
    assert_eq!(revision(&first).as_deref(), Some("1"));
    let owner = &first.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.controller),
        ("Deployment", Some(true))
    );
    assert_eq!(
        first
            .spec
            .as_ref()
            .unwrap()
            .selector
            .match_labels
            .as_ref()
            .unwrap()["pod-template-hash"],
        hash
    );

    // 2. a new image: a second ReplicaSet takes over, the first goes to 0
    set_image(&deployments, "web", "nginx:2").await;
    let d = rolled_out(&deployments, "web", 2).await;
    let second = wait_for("the second replica set to take over", || {
        let replica_sets = replica_sets.clone();
        let first_name = first_name.clone();
        async move {
            let all = replica_sets
                .list(&ListParams::default())
                .await
                .unwrap()
                .items;
            let old = all
                .iter()
                .find(|rs| rs.metadata.name.as_deref() == Some(&first_name))?;
            let new = all
                .iter()
                .find(|rs| rs.metadata.name.as_deref() != Some(&first_name))?;
            (all.len() == 2 && replicas(old) == 0 && replicas(new) == 2 && available(new) == 2)
                .then(|| new.clone())
        }
    })
    .await;
    let second_name = second.metadata.name.clone().unwrap();
    assert_eq!(revision(&second).as_deref(), Some("2"));
    assert_eq!(
        d.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(REVISION))
            .map(String::as_str),
        Some("2")
    );
    let events: Api<Event> = Api::namespaced(c.admin.clone(), "default");
    let scaling = wait_for("ScalingReplicaSet events", || {
        let events = events.clone();
        let first_name = first_name.clone();
        let second_name = second_name.clone();
        async move {
            let messages: Vec<String> = events
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .into_iter()
                .filter(|e| e.reason.as_deref() == Some("ScalingReplicaSet"))
                .filter_map(|e| e.message)
                .collect();
            let up = messages
                .iter()
                .any(|m| m.starts_with(&format!("Scaled up replica set {second_name} from ")));
            let down = messages.iter().any(|m| {
                m.starts_with(&format!("Scaled down replica set {first_name} from "))
                    && m.ends_with(" to 0")
            });
            (up && down).then_some(messages)
        }
    })
    .await;
    assert!(
        scaling.contains(&format!("Scaled up replica set {first_name} from 0 to 2")),
        "{scaling:?}"
    );

    // 3. the template set back: the first ReplicaSet is current again at revision 3
    set_image(&deployments, "web", "nginx:1").await;
    let d = rolled_out(&deployments, "web", 2).await;
    let back = wait_for("the first replica set to be current again", || {
        let replica_sets = replica_sets.clone();
        let first_name = first_name.clone();
        let second_name = second_name.clone();
        async move {
            let first = replica_sets.get(&first_name).await.unwrap();
            let second = replica_sets.get(&second_name).await.unwrap();
            (replicas(&first) == 2 && available(&first) == 2 && replicas(&second) == 0)
                .then_some(first)
        }
    })
    .await;
    assert_eq!(revision(&back).as_deref(), Some("3"));
    assert_eq!(
        back.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("deployment.kubernetes.io/revision-history"))
            .map(String::as_str),
        Some("1")
    );
    assert_eq!(
        d.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(REVISION))
            .map(String::as_str),
        Some("3")
    );
    assert_eq!(
        replica_sets
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        2,
        "no third replica set"
    );
}

fn web(replicas: i32, strategy: serde_json::Value) -> Deployment {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": replicas,
            "strategy": strategy,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1"}]}
            }
        }
    }))
    .unwrap()
}

fn progressing_reason(d: &Deployment) -> Option<String> {
    d.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Progressing")?
        .reason
        .clone()
}

/// `kubectl rollout pause`: a template change waits, a scale still happens; `resume`
/// rolls the change out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_deployment_scales_but_does_not_roll_out_until_resumed() {
    let c = ready_cluster(&["deployment", "replicaset"], 1).await;
    let deployments: Api<Deployment> = Api::namespaced(c.admin.clone(), "default");
    let replica_sets: Api<ReplicaSet> = Api::namespaced(c.admin.clone(), "default");
    deployments
        .create(&PostParams::default(), &web(2, serde_json::json!({})))
        .await
        .unwrap();
    rolled_out(&deployments, "web", 2).await;
    let pause = serde_json::json!({"spec": {"paused": true}});
    deployments
        .patch("web", &PatchParams::default(), &Patch::Merge(pause))
        .await
        .unwrap();
    wait_for("the DeploymentPaused condition", || {
        let deployments = deployments.clone();
        async move {
            let d = deployments.get("web").await.unwrap();
            (progressing_reason(&d).as_deref() == Some("DeploymentPaused")).then_some(())
        }
    })
    .await;
    set_image(&deployments, "web", "nginx:2").await;
    let scale = serde_json::json!({"spec": {"replicas": 3}});
    deployments
        .patch("web", &PatchParams::default(), &Patch::Merge(scale))
        .await
        .unwrap();
    let only = wait_for("the paused deployment to scale its one replica set", || {
        let replica_sets = replica_sets.clone();
        async move {
            let all = replica_sets
                .list(&ListParams::default())
                .await
                .unwrap()
                .items;
            (all.len() == 1 && replicas(&all[0]) == 3 && available(&all[0]) == 3)
                .then(|| all[0].clone())
        }
    })
    .await;
    assert_eq!(
        revision(&only).as_deref(),
        Some("1"),
        "no rollout while paused"
    );
    let d = deployments.get("web").await.unwrap();
    assert_eq!(progressing_reason(&d).as_deref(), Some("DeploymentPaused"));

    let resume = serde_json::json!({"spec": {"paused": null}});
    deployments
        .patch("web", &PatchParams::default(), &Patch::Merge(resume))
        .await
        .unwrap();
    rolled_out(&deployments, "web", 3).await;
    let all = replica_sets
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    assert_eq!(all.len(), 2);
    let new = all
        .iter()
        .find(|rs| revision(rs).as_deref() == Some("2"))
        .unwrap();
    assert_eq!(replicas(new), 3);
}

/// The Recreate strategy scales the old ReplicaSet to zero before the new one grows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recreate_replaces_every_pod_at_once() {
    let c = ready_cluster(&["deployment", "replicaset"], 1).await;
    let deployments: Api<Deployment> = Api::namespaced(c.admin.clone(), "default");
    let replica_sets: Api<ReplicaSet> = Api::namespaced(c.admin.clone(), "default");
    deployments
        .create(
            &PostParams::default(),
            &web(2, serde_json::json!({"type": "Recreate"})),
        )
        .await
        .unwrap();
    rolled_out(&deployments, "web", 2).await;
    set_image(&deployments, "web", "nginx:2").await;
    rolled_out(&deployments, "web", 2).await;
    let all = replica_sets
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    assert_eq!(all.len(), 2);
    let old = all
        .iter()
        .find(|rs| revision(rs).as_deref() == Some("1"))
        .unwrap();
    let new = all
        .iter()
        .find(|rs| revision(rs).as_deref() == Some("2"))
        .unwrap();
    assert_eq!((replicas(old), replicas(new)), (0, 2));
    // Recreate creates the new ReplicaSet at full size in one step (a rolling update
    // would surge it one replica at a time)
    let events: Api<Event> = Api::namespaced(c.admin.clone(), "default");
    let new_name = new.metadata.name.clone().unwrap();
    wait_for("the new replica set's scale-up event", || {
        let events = events.clone();
        let want = format!("Scaled up replica set {new_name} from 0 to 2");
        async move {
            let list = events.list(&ListParams::default()).await.unwrap().items;
            list.iter()
                .any(|e| e.message.as_deref() == Some(want.as_str()))
                .then_some(())
        }
    })
    .await;
}
