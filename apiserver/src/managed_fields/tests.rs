//! Field ownership through creates, updates and applies, on built-in kinds' schemas.

use serde_json::{Value, json};

use super::fieldpath::Set;
use super::typed::Schema;
use super::*;
use crate::schema::Shapes;

fn schema(group: &str, version: &str, kind: &str) -> Schema<'static> {
    let shapes = Shapes::get();
    Schema {
        shapes,
        root: shapes.kind(group, version, kind).expect("a built-in kind"),
    }
}

fn writer(manager: &str, api_version: &str) -> Writer {
    Writer {
        manager: manager.into(),
        api_version: api_version.into(),
        subresource: "",
    }
}

fn status_reset() -> Set {
    let mut reset = Set::new();
    reset.insert(&[PathElement::field("status")]);
    reset
}

/// (manager, operation, fieldsV1 text) of each entry.
fn owners(object: &Value) -> Vec<(String, String, String)> {
    managed_fields_of(object)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["manager"].as_str().unwrap().to_owned(),
                e["operation"].as_str().unwrap().to_owned(),
                Set::from_fields_v1(&e["fieldsV1"])
                    .unwrap()
                    .to_fields_v1_string(),
            )
        })
        .collect()
}

fn deployment(replicas: i64, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": image}]}
            }
        }
    })
}

#[test]
fn a_create_is_owned_by_its_manager_and_an_update_takes_what_it_changes() {
    let cm = schema("", "v1", "ConfigMap");
    let mut created = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c", "labels": {"app": "x"}}, "data": {"a": "1", "b": "2"}});
    track_update(
        cm,
        None,
        &mut created,
        &writer("kubectl-create", "v1"),
        &Set::new(),
    );
    assert_eq!(
        owners(&created),
        [(
            "kubectl-create".into(),
            "Update".into(),
            r#"{"f:data":{".":{},"f:a":{},"f:b":{}},"f:metadata":{"f:labels":{".":{},"f:app":{}}}}"#.into()
        )]
    );
    let entry = &created["metadata"]["managedFields"][0];
    assert_eq!(entry["apiVersion"], "v1");
    assert_eq!(entry["fieldsType"], "FieldsV1");
    assert!(entry["time"].as_str().unwrap().ends_with('Z'));

    // another manager changes a and adds c: it owns those, the creator keeps b
    let mut updated = created.clone();
    updated["data"]["a"] = "9".into();
    updated["data"]["c"] = "3".into();
    meta::remove_meta(&mut updated, "managedFields");
    track_update(
        cm,
        Some(&created),
        &mut updated,
        &writer("kubectl-edit", "v1"),
        &Set::new(),
    );
    assert_eq!(
        owners(&updated),
        [
            (
                "kubectl-create".into(),
                "Update".into(),
                r#"{"f:data":{".":{},"f:b":{}},"f:metadata":{"f:labels":{".":{},"f:app":{}}}}"#
                    .into()
            ),
            (
                "kubectl-edit".into(),
                "Update".into(),
                r#"{"f:data":{"f:a":{},"f:c":{}}}"#.into()
            ),
        ]
    );

    // writing the same values again changes no ownership
    let mut again = updated.clone();
    track_update(
        cm,
        Some(&updated),
        &mut again,
        &writer("other", "v1"),
        &Set::new(),
    );
    assert_eq!(owners(&again), owners(&updated));

    // an update of an untracked object stays untracked; a reset turns tracking off
    let mut untracked = updated.clone();
    meta::remove_meta(&mut untracked, "managedFields");
    let mut next = untracked.clone();
    track_update(
        cm,
        Some(&untracked),
        &mut next,
        &writer("x", "v1"),
        &Set::new(),
    );
    assert!(managed_fields_of(&next).is_none());
    let mut reset = updated.clone();
    meta::set_meta(&mut reset, "managedFields", json!([]));
    track_update(
        cm,
        Some(&updated),
        &mut reset,
        &writer("x", "v1"),
        &Set::new(),
    );
    assert!(managed_fields_of(&reset).is_none());
}

#[test]
fn apply_creates_merges_and_refuses_fields_others_own() {
    let apps = schema("apps", "v1", "Deployment");
    let reset = status_reset();
    let created = apply(
        apps,
        None,
        &deployment(2, "nginx:1"),
        &writer("alice", "apps/v1"),
        &reset,
        false,
    )
    .expect("apply creates");
    assert_eq!(created["spec"]["replicas"], 2);
    assert!(created.get("status").is_none(), "{created}");
    let cm = schema("", "v1", "ConfigMap");
    let config = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
    let made = apply(cm, None, &config, &writer("m", "v1"), &Set::new(), false).unwrap();
    assert!(
        made.get("spec").is_none() && made.get("status").is_none(),
        "{made}"
    );
    let owners_now = owners(&created);
    assert_eq!(owners_now.len(), 1);
    assert_eq!(owners_now[0].1, "Apply");
    assert_eq!(
        owners_now[0].2,
        r#"{"f:spec":{"f:replicas":{},"f:selector":{},"f:template":{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"nginx\"}":{".":{},"f:image":{},"f:name":{}}}}}}}"#
    );

    // the same value from another applier is shared, not a conflict
    let bob = writer("bob", "apps/v1");
    let partial = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"}, "spec": {"replicas": 2}});
    let shared = apply(apps, Some(&created), &partial, &bob, &reset, false).expect("same value");
    assert_eq!(owners(&shared).len(), 2);

    // a different value is a conflict, with upstream's message and cause
    let mut change = partial.clone();
    change["spec"]["replicas"] = 5.into();
    let error = apply(apps, Some(&created), &change, &bob, &reset, false).unwrap_err();
    let status = error.to_status_error("default/web", "apps/v1, Kind=Deployment");
    let status = status.status();
    assert_eq!(status.code, 409);
    assert_eq!(
        status.message,
        r#"Apply failed with 1 conflict: conflict with "alice": .spec.replicas"#
    );
    let cause = &status.details.as_ref().unwrap().causes[0];
    assert_eq!(cause.cause_type, "FieldManagerConflict");
    assert_eq!(cause.message, r#"conflict with "alice""#);
    assert_eq!(cause.field, ".spec.replicas");

    // forced, bob takes the field
    let forced = apply(apps, Some(&created), &change, &bob, &reset, true).expect("forced");
    assert_eq!(forced["spec"]["replicas"], 5);
    let after = owners(&forced);
    let alice = after.iter().find(|o| o.0 == "alice").unwrap();
    assert!(!alice.2.contains("replicas"), "{alice:?}");
    assert!(
        after
            .iter()
            .find(|o| o.0 == "bob")
            .unwrap()
            .2
            .contains("replicas")
    );

    // an update manager's fields conflict too, named with its version
    let mut scaled = created.clone();
    scaled["spec"]["replicas"] = 3.into();
    track_update(
        apps,
        Some(&created),
        &mut scaled,
        &writer("kubectl-scale", "apps/v1"),
        &reset,
    );
    let error = apply(
        apps,
        Some(&scaled),
        &deployment(2, "nginx:2"),
        &writer("alice", "apps/v1"),
        &reset,
        false,
    )
    .unwrap_err();
    assert_eq!(
        error
            .to_status_error("default/web", "apps/v1, Kind=Deployment")
            .status()
            .message,
        r#"Apply failed with 1 conflict: conflict with "kubectl-scale" using apps/v1: .spec.replicas"#
    );
}

#[test]
fn several_conflicts_are_listed_per_manager() {
    let cm = schema("", "v1", "ConfigMap");
    let reset = Set::new();
    let base = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
    let mut a = base.clone();
    a["data"] = json!({"x": "1", "y": "1"});
    let owned = apply(cm, None, &a, &writer("a", "v1"), &reset, false).unwrap();
    let mut b = base.clone();
    b["data"] = json!({"z": "1"});
    let owned = apply(cm, Some(&owned), &b, &writer("b", "v1"), &reset, false).unwrap();
    let mut c = base.clone();
    c["data"] = json!({"x": "2", "y": "2", "z": "2"});
    let error = apply(cm, Some(&owned), &c, &writer("c", "v1"), &reset, false).unwrap_err();
    assert_eq!(
        error
            .to_status_error("default/c", "/v1, Kind=ConfigMap")
            .status()
            .message,
        "Apply failed with 3 conflicts: conflicts with \"a\":\n- .data.x\n- .data.y\nconflicts with \"b\":\n- .data.z"
    );
}

#[test]
fn fields_an_applier_stops_applying_go_unless_someone_else_owns_them() {
    let cm = schema("", "v1", "ConfigMap");
    let reset = Set::new();
    let config = |data: Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": data});
    let first = apply(
        cm,
        None,
        &config(json!({"a": "1", "b": "1", "c": "1"})),
        &writer("a", "v1"),
        &reset,
        false,
    )
    .unwrap();
    // b is also applied (same value) by another manager
    let shared = apply(
        cm,
        Some(&first),
        &config(json!({"b": "1"})),
        &writer("other", "v1"),
        &reset,
        false,
    )
    .unwrap();
    let pruned = apply(
        cm,
        Some(&shared),
        &config(json!({"a": "1"})),
        &writer("a", "v1"),
        &reset,
        false,
    )
    .unwrap();
    assert_eq!(pruned["data"], json!({"a": "1", "b": "1"}));
    // a value nobody ever applied stays
    let mut edited = pruned.clone();
    edited["data"]["d"] = "1".into();
    track_update(
        cm,
        Some(&pruned),
        &mut edited,
        &writer("edit", "v1"),
        &reset,
    );
    let again = apply(
        cm,
        Some(&edited),
        &config(json!({})),
        &writer("a", "v1"),
        &reset,
        false,
    )
    .unwrap();
    assert_eq!(again["data"], json!({"b": "1", "d": "1"}));
}

#[test]
fn list_maps_merge_by_key_and_keep_live_only_items() {
    let pod = schema("", "v1", "Pod");
    let live = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "a", "image": "a:1"}, {"name": "side", "image": "s:1"}],
                 "tolerations": [{"key": "x"}]}});
    let config = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "a", "image": "a:2", "ports": [{"containerPort": 80}]}],
                 "tolerations": [{"key": "y"}]}});
    let merged = pod.merge(&live, &config);
    assert_eq!(
        merged["spec"]["containers"],
        json!([{"name": "a", "image": "a:2", "ports": [{"containerPort": 80}]}, {"name": "side", "image": "s:1"}])
    );
    // live-only items keep their place, the configuration's new ones follow the
    // shared items they stand after
    let names = |merged: &Value| -> Vec<String> {
        merged["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let containers = |names: &[&str]| json!({"spec": {"containers": names.iter().map(|n| json!({"name": n})).collect::<Vec<_>>()}});
    assert_eq!(
        names(&pod.merge(&containers(&["http"]), &containers(&["https"]))),
        ["http", "https"]
    );
    assert_eq!(
        names(&pod.merge(&containers(&["a", "side"]), &containers(&["b", "a"]))),
        ["b", "a", "side"]
    );
    assert_eq!(
        names(&pod.merge(&containers(&["a", "b"]), &containers(&["b", "a"]))),
        ["b", "a"]
    );
    // an atomic list is replaced whole
    assert_eq!(merged["spec"]["tolerations"], json!([{"key": "y"}]));
    // a port's protocol key defaults to TCP
    let set = pod.field_set(&config).unwrap();
    assert!(
        set.to_fields_v1_string()
            .contains(r#"k:{\"containerPort\":80,\"protocol\":\"TCP\"}"#)
    );
    // duplicate keys and undeclared fields are refused with upstream's details
    let duplicate = json!({"spec": {"containers": [{"name": "a"}, {"name": "a"}]}});
    assert_eq!(
        pod.field_set(&duplicate).unwrap_err(),
        r#".spec.containers: duplicate entries for key [name="a"]"#
    );
    let undeclared = json!({"spec": {"bogus": 1}});
    assert_eq!(
        pod.field_set(&undeclared).unwrap_err(),
        ".spec.bogus: field not declared in schema"
    );
}

#[test]
fn the_first_apply_to_an_untracked_object_conflicts_with_before_first_apply() {
    let cm = schema("", "v1", "ConfigMap");
    let live = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c", "uid": "u"}, "data": {"a": "1"}});
    let config = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "2"}});
    let error = apply(
        cm,
        Some(&live),
        &config,
        &writer("m", "v1"),
        &Set::new(),
        false,
    )
    .unwrap_err();
    assert_eq!(
        error
            .to_status_error("default/c", "/v1, Kind=ConfigMap")
            .status()
            .message,
        r#"Apply failed with 1 conflict: conflict with "before-first-apply" using v1: .data.a"#
    );
}

#[test]
fn kubectl_may_take_over_fields_its_client_side_apply_set() {
    let cm = schema("", "v1", "ConfigMap");
    let last = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}});
    let mut live = last.clone();
    live["metadata"]["annotations"] = json!({LAST_APPLIED: last.to_string()});
    track_update(
        cm,
        None,
        &mut live,
        &writer("kubectl-client-side-apply", "v1"),
        &Set::new(),
    );
    let mut config = last.clone();
    config["data"]["a"] = "2".into();
    let applied = apply(
        cm,
        Some(&live),
        &config,
        &writer("kubectl", "v1"),
        &Set::new(),
        false,
    )
    .expect("forgiven");
    assert_eq!(applied["data"]["a"], "2");
    // the annotation follows the configuration
    let annotation: Value = serde_json::from_str(
        applied["metadata"]["annotations"][LAST_APPLIED]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(annotation["data"]["a"], "2");
    // another manager gets no such pass
    assert!(
        apply(
            cm,
            Some(&live),
            &config,
            &writer("other", "v1"),
            &Set::new(),
            false
        )
        .is_err()
    );
}

#[test]
fn update_managers_are_capped_into_ancient_changes() {
    let cm = schema("", "v1", "ConfigMap");
    let mut object =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {}});
    track_update(cm, None, &mut object, &writer("m0", "v1"), &Set::new());
    for i in 1..=12 {
        let mut next = object.clone();
        next["data"][format!("k{i}")] = "v".into();
        track_update(
            cm,
            Some(&object),
            &mut next,
            &writer(&format!("m{i}"), "v1"),
            &Set::new(),
        );
        object = next;
    }
    let all = owners(&object);
    assert!(all.len() <= MAX_UPDATE_MANAGERS, "{all:?}");
    assert!(all.iter().any(|o| o.0 == "ancient-changes"), "{all:?}");
}
