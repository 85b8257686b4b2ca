//! kube-rs users can work against our `kube-apiserver` with a `#[derive(CustomResource)]`
//! type: the real binary (embedded store) takes the CRD `Tank::crd()` generates
//! (schemars schema, status and scale subresources, printer column), establishes it,
//! and then serves the typed `Api<Tank>` the way upstream v1.33 does: create/get/list
//! with managedFields, server-side apply of the status subresource, get and merge-patch
//! of the scale subresource, server-side apply conflicts between two managers (409
//! `Conflict`, then `force`), structural-schema validation (422 `Invalid` in upstream's
//! words), and deletion of the object and of the CRD.

#[path = "kubectl_suite/harness.rs"]
#[allow(dead_code)]
mod harness;

use std::time::{Duration, Instant};

use harness::{Server, Store};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, ObjectMeta, Patch, PatchParams,
    PostParams,
};
use kube::{Client, CustomResource, CustomResourceExt, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The spec of a fish tank: how many replicas of it, which fish, which water.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "derive.example.com",
    version = "v1",
    kind = "Tank",
    namespaced,
    status = "TankStatus",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas"
    ),
    printcolumn(name = "Replicas", type_ = "integer", json_path = ".spec.replicas")
)]
pub struct TankSpec {
    /// How many tanks.
    pub replicas: i32,
    /// The fish living in it.
    pub fish: Vec<String>,
    /// Fresh or salt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub water: Option<String>,
}

/// What the tank controller observed.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct TankStatus {
    /// How many tanks exist.
    pub replicas: i32,
}

const NAMESPACE: &str = "kube-derive";
const CRD_NAME: &str = "tanks.derive.example.com";
const DEADLINE: Duration = Duration::from_secs(30);

/// A kube-rs client from the admin kubeconfig the harness wrote.
async fn client(server: &Server) -> Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(&server.kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}

/// The `kube::Error::Api` status of a request that must fail.
fn api_error<T: std::fmt::Debug>(result: kube::Result<T>) -> kube::core::Status {
    match result {
        Err(kube::Error::Api(status)) => *status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn spec(replicas: i32) -> TankSpec {
    TankSpec {
        replicas,
        fish: vec!["nemo".into(), "dory".into()],
        water: Some("salt".into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn derived_custom_resource_round_trip() {
    let server = Server::start(Store::Embedded).await;
    let client = client(&server).await;

    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(NAMESPACE.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap();

    // 1-2. the derived CRD is accepted, established, and its resource served
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let created = crds
        .create(&PostParams::default(), &Tank::crd())
        .await
        .unwrap();
    assert_eq!(created.name_any(), CRD_NAME);
    let version = &created.spec.versions[0];
    assert_eq!(version.name, "v1");
    let subresources = version.subresources.as_ref().expect("subresources kept");
    assert!(subresources.status.is_some(), "{subresources:?}");
    let scale = subresources.scale.as_ref().expect("scale subresource kept");
    assert_eq!(scale.spec_replicas_path, ".spec.replicas");
    assert_eq!(scale.status_replicas_path, ".status.replicas");
    let columns = version.additional_printer_columns.as_ref().unwrap();
    assert_eq!(columns.len(), 1, "{columns:?}");
    assert_eq!(
        (
            columns[0].name.as_str(),
            columns[0].type_.as_str(),
            columns[0].json_path.as_str()
        ),
        ("Replicas", "integer", ".spec.replicas")
    );

    let deadline = Instant::now() + DEADLINE;
    loop {
        let crd = crds.get(CRD_NAME).await.unwrap();
        let established = crd
            .status
            .as_ref()
            .and_then(|status| status.conditions.as_ref())
            .into_iter()
            .flatten()
            .any(|c| c.type_ == "Established" && c.status == "True");
        if established {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "CRD not established: {:?}",
            crd.status
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let tanks: Api<Tank> = Api::namespaced(client.clone(), NAMESPACE);
    loop {
        match tanks.list(&ListParams::default()).await {
            Ok(list) => {
                assert!(list.items.is_empty(), "{list:?}");
                break;
            }
            Err(e) => assert!(Instant::now() < deadline, "Tank list not served: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // 3. create, get back typed, list, managedFields of the creator
    let created = tanks
        .create(
            &PostParams {
                field_manager: Some("tank-creator".into()),
                ..Default::default()
            },
            &Tank::new("nemo", spec(3)),
        )
        .await
        .unwrap();
    assert_eq!(created.spec, spec(3));
    assert_eq!(created.namespace().as_deref(), Some(NAMESPACE));
    assert!(created.uid().is_some());
    let got = tanks.get("nemo").await.unwrap();
    assert_eq!(got.spec, spec(3));
    assert_eq!(got.status, None);
    assert_eq!(got.resource_version(), created.resource_version());
    let list = tanks.list(&ListParams::default()).await.unwrap();
    assert_eq!(
        list.items.iter().map(|t| t.name_any()).collect::<Vec<_>>(),
        ["nemo"]
    );
    assert_eq!(list.items[0].spec, spec(3));
    let managed = got.managed_fields();
    assert_eq!(managed.len(), 1, "{managed:?}");
    assert_eq!(managed[0].manager.as_deref(), Some("tank-creator"));
    assert_eq!(managed[0].operation.as_deref(), Some("Update"));
    assert_eq!(
        managed[0].api_version.as_deref(),
        Some("derive.example.com/v1")
    );
    assert_eq!(managed[0].fields_type.as_deref(), Some("FieldsV1"));
    let fields = &managed[0].fields_v1.as_ref().unwrap().0;
    assert!(fields["f:spec"]["f:replicas"].is_object(), "{fields}");

    // 4. server-side apply of the status subresource
    let patched = tanks
        .patch_status(
            "nemo",
            &PatchParams::apply("tank-controller").force(),
            &Patch::Apply(json!({
                "apiVersion": "derive.example.com/v1",
                "kind": "Tank",
                "status": {"replicas": 2},
            })),
        )
        .await
        .unwrap();
    assert_eq!(patched.status, Some(TankStatus { replicas: 2 }));
    let got = tanks.get("nemo").await.unwrap();
    assert_eq!(got.status, Some(TankStatus { replicas: 2 }));
    assert_eq!(got.spec, spec(3), "the status subresource changed the spec");
    let controller = got
        .managed_fields()
        .iter()
        .find(|m| m.manager.as_deref() == Some("tank-controller"))
        .unwrap_or_else(|| panic!("no tank-controller entry: {:?}", got.managed_fields()));
    assert_eq!(controller.operation.as_deref(), Some("Apply"));
    assert_eq!(controller.subresource.as_deref(), Some("status"));

    // 5. the scale subresource
    let scale = tanks.get_scale("nemo").await.unwrap();
    assert_eq!(scale.metadata.name.as_deref(), Some("nemo"));
    assert_eq!(scale.spec.as_ref().unwrap().replicas, Some(3));
    assert_eq!(scale.status.as_ref().unwrap().replicas, 2);
    let scaled = tanks
        .patch_scale(
            "nemo",
            &PatchParams {
                field_manager: Some("tank-scaler".into()),
                ..Default::default()
            },
            &Patch::Merge(json!({"spec": {"replicas": 5}})),
        )
        .await
        .unwrap();
    assert_eq!(scaled.spec.as_ref().unwrap().replicas, Some(5));
    let scale = tanks.get_scale("nemo").await.unwrap();
    assert_eq!(scale.spec.as_ref().unwrap().replicas, Some(5));
    let got = tanks.get("nemo").await.unwrap();
    assert_eq!(got.spec, spec(5));
    assert_eq!(got.status, Some(TankStatus { replicas: 2 }));

    // 6. server-side apply by a second manager conflicts on the scaler's replicas
    let conflict = api_error(
        tanks
            .patch(
                "nemo",
                &PatchParams::apply("alice"),
                &Patch::Apply(Tank::new("nemo", spec(7))),
            )
            .await,
    );
    assert_eq!(conflict.code, 409, "{conflict:?}");
    assert_eq!(conflict.reason, "Conflict", "{conflict:?}");
    assert!(
        conflict
            .message
            .starts_with(r#"Apply failed with 1 conflict: conflict with ""#),
        "{conflict:?}"
    );
    assert!(conflict.message.contains(".spec.replicas"), "{conflict:?}");
    // upstream names the scaler, its subresource and the parent's version
    assert_eq!(
        conflict.message,
        r#"Apply failed with 1 conflict: conflict with "tank-scaler" with subresource "scale" using derive.example.com/v1: .spec.replicas"#
    );
    assert_eq!(tanks.get("nemo").await.unwrap().spec, spec(5));
    let forced = tanks
        .patch(
            "nemo",
            &PatchParams::apply("alice").force(),
            &Patch::Apply(Tank::new("nemo", spec(7))),
        )
        .await
        .unwrap();
    assert_eq!(forced.spec, spec(7));
    let got = tanks.get("nemo").await.unwrap();
    assert_eq!(got.spec, spec(7));
    assert_eq!(got.status, Some(TankStatus { replicas: 2 }));
    assert_eq!(
        tanks
            .get_scale("nemo")
            .await
            .unwrap()
            .spec
            .unwrap()
            .replicas,
        Some(7)
    );
    let alice = got
        .managed_fields()
        .iter()
        .find(|m| m.manager.as_deref() == Some("alice"))
        .unwrap_or_else(|| panic!("no alice entry: {:?}", got.managed_fields()));
    assert_eq!(alice.operation.as_deref(), Some("Apply"));
    assert!(
        alice.fields_v1.as_ref().unwrap().0["f:spec"]["f:replicas"].is_object(),
        "{alice:?}"
    );

    // 7. the schemars schema validates: a string where an integer belongs
    let resource = ApiResource::erase::<Tank>(&());
    let dynamic: Api<DynamicObject> = Api::namespaced_with(client.clone(), NAMESPACE, &resource);
    let bad = DynamicObject::new("bad", &resource).data(json!({
        "spec": {"replicas": "many", "fish": []},
    }));
    let invalid = api_error(dynamic.create(&PostParams::default(), &bad).await);
    assert_eq!(invalid.code, 422, "{invalid:?}");
    assert_eq!(invalid.reason, "Invalid", "{invalid:?}");
    assert_eq!(
        invalid.message,
        r#"Tank.derive.example.com "bad" is invalid: spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string""#
    );
    let missing = api_error(tanks.get("bad").await);
    assert_eq!(missing.code, 404, "{missing:?}");

    // 8. delete the Tank, then the CRD
    tanks
        .delete("nemo", &DeleteParams::default())
        .await
        .unwrap();
    let gone = api_error(tanks.get("nemo").await);
    assert_eq!(gone.code, 404, "{gone:?}");
    assert_eq!(gone.reason, "NotFound", "{gone:?}");
    crds.delete(CRD_NAME, &DeleteParams::default())
        .await
        .unwrap();
    let deadline = Instant::now() + DEADLINE;
    loop {
        match crds.get(CRD_NAME).await {
            Err(kube::Error::Api(status)) if status.code == 404 => break,
            other => assert!(
                Instant::now() < deadline,
                "CRD still there after deletion: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let unserved = api_error(tanks.list(&ListParams::default()).await);
    assert_eq!(unserved.code, 404, "{unserved:?}");
}
