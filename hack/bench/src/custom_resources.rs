//! Custom resources beside built-ins: create rate and p50/p99 of a custom resource whose
//! CRD (created by the benchmark through the API) has a 50-field `spec` schema with 5
//! CEL rules (`x-kubernetes-validations`), beside ConfigMaps of comparable size (`data`
//! with 50 keys, padded to the custom object's `spec` bytes, so both carry the same
//! payload); then server-side apply (`application/apply-patch+yaml`, fieldManager
//! `bench`, force) changing one field of the objects just created, round-robin, for
//! both. Each concurrency level measures the four figures side by side, in one run,
//! through HTTPS and kube-rs against one in-process kube-apiserver on the embedded
//! store, and prints the ratios custom resource ÷ ConfigMap (the target: at
//! least 0.6x). It prints figures; it is never a timed test.
//!
//! Run: `cargo run --release -p rkube-bench --bin bench-custom-resources` (see `--help`).

use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Parser;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use rkube_bench::{Figure, measure};
use serde_json::{Value, json};

#[derive(Parser, Debug)]
#[command(about = "custom resources (50-field schema, 5 CEL rules) beside ConfigMaps")]
struct Args {
    /// Objects of each kind created per concurrency level.
    #[arg(long, default_value_t = 1000)]
    creates: usize,
    /// Server-side applies of each kind per level, round-robin over that level's objects.
    #[arg(long, default_value_t = 1000)]
    applies: usize,
    /// Concurrency levels.
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    concurrency: Vec<usize>,
}

const NS: &str = "default";
const GROUP: &str = "bench.rkube.io";
const VERSION: &str = "v1";
const KIND: &str = "Widget";
const PLURAL: &str = "widgets";
/// The target for custom resource ÷ ConfigMap rates.
const TARGET: f64 = 0.6;

/// String, integer and boolean fields that fill the schema up to 50.
const STRINGS: usize = 22;
const INTEGERS: usize = 14;
const BOOLEANS: usize = 6;

fn resource() -> ApiResource {
    ApiResource {
        group: GROUP.into(),
        version: VERSION.into(),
        api_version: format!("{GROUP}/{VERSION}"),
        kind: KIND.into(),
        plural: PLURAL.into(),
    }
}

/// The `spec` schema: 50 properties of mixed types and 5 CEL rules.
fn spec_schema() -> Value {
    let mut properties = serde_json::Map::new();
    properties.insert("name".into(), json!({"type": "string", "maxLength": 63}));
    for field in ["replicas", "minReplicas", "maxReplicas"] {
        properties.insert(
            field.into(),
            json!({"type": "integer", "minimum": 0, "maximum": 1000}),
        );
    }
    properties.insert(
        "mode".into(),
        json!({"type": "string", "enum": ["a", "b", "c"]}),
    );
    properties.insert(
        "tags".into(),
        json!({"type": "array", "maxItems": 16, "items": {"type": "string", "maxLength": 32}}),
    );
    properties.insert(
        "labels".into(),
        json!({"type": "object", "maxProperties": 16,
               "additionalProperties": {"type": "string", "maxLength": 63}}),
    );
    properties.insert(
        "ports".into(),
        json!({"type": "array", "maxItems": 8,
               "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
               "items": {"type": "object", "required": ["name"], "properties": {
                   "name": {"type": "string", "maxLength": 15},
                   "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                   "protocol": {"type": "string", "enum": ["TCP", "UDP"]}}}}),
    );
    for k in 0..STRINGS {
        properties.insert(
            format!("str{k:02}"),
            json!({"type": "string", "maxLength": 64}),
        );
    }
    for k in 0..INTEGERS {
        properties.insert(
            format!("int{k:02}"),
            json!({"type": "integer", "minimum": 0, "maximum": 1_000_000}),
        );
    }
    for k in 0..BOOLEANS {
        properties.insert(format!("bool{k:02}"), json!({"type": "boolean"}));
    }
    assert_eq!(properties.len(), 50, "the schema has 50 fields");
    json!({
        "type": "object",
        "required": ["name", "replicas", "minReplicas", "maxReplicas", "tags"],
        "properties": properties,
        "x-kubernetes-validations": [
            {"rule": "self.replicas <= self.maxReplicas", "message": "replicas above maxReplicas"},
            {"rule": "self.name.startsWith('a')", "message": "name must start with a"},
            {"rule": "size(self.tags) <= 10", "message": "at most 10 tags"},
            {"rule": "self.minReplicas <= self.replicas", "message": "replicas below minReplicas"},
            {"rule": "!has(self.mode) || self.mode in ['a','b','c']", "message": "unknown mode"},
        ],
    })
}

fn crd() -> Result<CustomResourceDefinition> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{PLURAL}.{GROUP}")},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"plural": PLURAL, "singular": "widget", "kind": KIND, "listKind": "WidgetList"},
            "versions": [{"name": VERSION, "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": spec_schema()}}}}],
        },
    }))?)
}

/// A `spec` that sets all 50 fields with values that pass validation.
fn spec() -> Value {
    let mut spec = serde_json::Map::new();
    spec.insert("name".into(), json!("alpha-widget"));
    spec.insert("replicas".into(), json!(3));
    spec.insert("minReplicas".into(), json!(1));
    spec.insert("maxReplicas".into(), json!(5));
    spec.insert("mode".into(), json!("b"));
    spec.insert(
        "tags".into(),
        json!(["frontend", "blue", "canary", "team-x"]),
    );
    spec.insert(
        "labels".into(),
        json!({"app": "bench", "tier": "web", "env": "test", "owner": "team-x"}),
    );
    spec.insert(
        "ports".into(),
        json!([{"name": "http", "port": 8080, "protocol": "TCP"},
               {"name": "metrics", "port": 9090, "protocol": "TCP"}]),
    );
    for k in 0..STRINGS {
        spec.insert(
            format!("str{k:02}"),
            json!(format!("value-{k:02}-abcdefgh")),
        );
    }
    for k in 0..INTEGERS {
        spec.insert(format!("int{k:02}"), json!(k * 1000 + 7));
    }
    for k in 0..BOOLEANS {
        spec.insert(format!("bool{k:02}"), json!(k % 2 == 0));
    }
    Value::Object(spec)
}

fn custom(name: &str, spec: &Value) -> Result<DynamicObject> {
    Ok(serde_json::from_value(json!({
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "kind": KIND,
        "metadata": {"name": name},
        "spec": spec,
    }))?)
}

/// ConfigMap `data` with 50 keys whose JSON is `bytes` long (when that is possible).
fn config_data(bytes: usize) -> Value {
    let data = |extra: usize| -> Value {
        Value::Object(
            (0..50)
                .map(|k| {
                    let pad = extra / 50 + usize::from(k < extra % 50);
                    (format!("key{k:02}"), json!("x".repeat(pad)))
                })
                .collect(),
        )
    };
    let empty = serde_json::to_vec(&data(0)).map_or(0, |v| v.len());
    data(bytes.saturating_sub(empty))
}

fn configmap(name: &str, data: &Value) -> Result<ConfigMap> {
    Ok(serde_json::from_value(
        json!({"metadata": {"name": name}, "data": data}),
    )?)
}

/// Creates the CRD and waits until it is Established, discovery lists its resource and
/// the resource answers a LIST.
async fn install_crd(client: &kube::Client) -> Result<Duration> {
    let started = Instant::now();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &crd()?).await?;
    let deadline = started + Duration::from_secs(60);
    let name = format!("{PLURAL}.{GROUP}");
    loop {
        let established = crds
            .get(&name)
            .await?
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        if established {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "the CRD is not Established");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let widgets: Api<DynamicObject> = Api::namespaced_with(client.clone(), NS, &resource());
    loop {
        let request = http::Request::get(format!("/apis/{GROUP}/{VERSION}")).body(Vec::new())?;
        let discovered = client
            .request_text(request)
            .await
            .is_ok_and(|text| text.contains(&format!("\"name\":\"{PLURAL}\"")));
        if discovered && widgets.list(&ListParams::default()).await.is_ok() {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the custom resource does not answer"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(started.elapsed())
}

/// The CEL rules must run: an object breaking one of them is refused with 422.
async fn check_rules(widgets: &Api<DynamicObject>) -> Result<()> {
    let mut bad = spec();
    bad["name"] = json!("zeta");
    match widgets
        .create(&PostParams::default(), &custom("breaks-a-rule", &bad)?)
        .await
    {
        Err(kube::Error::Api(e)) if e.code == 422 => Ok(()),
        Err(e) => Err(anyhow::anyhow!(
            "a rule-breaking object: expected 422, got {e}"
        )),
        Ok(_) => Err(anyhow::anyhow!(
            "a rule-breaking object was accepted: the CEL rules do not run"
        )),
    }
}

fn ratio_line(kind: &str, ours: Figure, theirs: Figure) -> String {
    let ratio = ours.ops_per_sec / theirs.ops_per_sec.max(1e-9);
    format!("{ratio:.2}x of ConfigMap {kind}  (target ≥ {TARGET}x)")
}

#[tokio::main]
async fn main() -> Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();

    let dir = tempfile::tempdir()?;
    let options = rkube_bench::embedded_options(dir.path());
    let (client, stop) = rkube_bench::start_apiserver(options).await?;

    let spec = std::sync::Arc::new(spec());
    let spec_bytes = serde_json::to_vec(&*spec)?.len();
    let data = std::sync::Arc::new(config_data(spec_bytes));
    println!(
        "# custom resources benchmark: {} creates and {} applies per kind and level, concurrency {:?}",
        args.creates, args.applies, args.concurrency
    );
    println!(
        "# custom resource: 50-field spec, 5 CEL rules, spec {} B of JSON; ConfigMap: 50 data keys, data {} B of JSON",
        spec_bytes,
        serde_json::to_vec(&*data)?.len()
    );

    let ready = install_crd(&client).await?;
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    let widgets: Api<DynamicObject> = Api::namespaced_with(client.clone(), NS, &resource());
    check_rules(&widgets).await?;
    println!(
        "# CRD created, Established and served in {:.0} ms; a rule-breaking object is refused (422)",
        ready.as_secs_f64() * 1000.0
    );
    // one of each before measuring, so no first-use cost (compiling the rules, the
    // managedFields of a new manager) falls in a figure
    configmaps
        .create(&PostParams::default(), &configmap("warm", &data)?)
        .await?;
    widgets
        .create(&PostParams::default(), &custom("warm", &spec)?)
        .await?;
    let apply = PatchParams::apply("bench").force();
    configmaps
        .patch(
            "warm",
            &apply,
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "warm"}, "data": {"key00": "warm"}})),
        )
        .await?;
    widgets
        .patch(
            "warm",
            &apply,
            &Patch::Apply(
                json!({"apiVersion": format!("{GROUP}/{VERSION}"), "kind": KIND,
                "metadata": {"name": "warm"}, "spec": {"str00": "warm"}}),
            ),
        )
        .await?;

    let (n, applies) = (args.creates, args.applies);
    for &c in &args.concurrency {
        let (api, data) = (configmaps.clone(), data.clone());
        let cm_create = measure(c, n, move |i| {
            let (api, data) = (api.clone(), data.clone());
            async move {
                api.create(
                    &PostParams::default(),
                    &configmap(&format!("c{c}-{i}"), &data)?,
                )
                .await?;
                Ok(())
            }
        })
        .await?;
        println!("configmap c{c:<3} create {cm_create}");
        let (api, spec) = (widgets.clone(), spec.clone());
        let cr_create = measure(c, n, move |i| {
            let (api, spec) = (api.clone(), spec.clone());
            async move {
                api.create(
                    &PostParams::default(),
                    &custom(&format!("c{c}-{i}"), &spec)?,
                )
                .await?;
                Ok(())
            }
        })
        .await?;
        println!(
            "custom    c{c:<3} create {cr_create}   {}",
            ratio_line("create", cr_create, cm_create)
        );

        // server-side apply of one changed field, round-robin over the objects above
        let (api, params) = (configmaps.clone(), apply.clone());
        let cm_apply = measure(c, applies, move |i| {
            let (api, params) = (api.clone(), params.clone());
            async move {
                let name = format!("c{c}-{}", i % n);
                let patch = json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": name}, "data": {"key00": format!("applied-{i}")}});
                api.patch(&name, &params, &Patch::Apply(patch)).await?;
                Ok(())
            }
        })
        .await?;
        println!("configmap c{c:<3} apply  {cm_apply}");
        let (api, params) = (widgets.clone(), apply.clone());
        let cr_apply = measure(c, applies, move |i| {
            let (api, params) = (api.clone(), params.clone());
            async move {
                let name = format!("c{c}-{}", i % n);
                let patch = json!({"apiVersion": format!("{GROUP}/{VERSION}"), "kind": KIND,
                    "metadata": {"name": name}, "spec": {"str00": format!("applied-{i}")}});
                api.patch(&name, &params, &Patch::Apply(patch)).await?;
                Ok(())
            }
        })
        .await?;
        println!(
            "custom    c{c:<3} apply  {cr_apply}   {}",
            ratio_line("apply", cr_apply, cm_apply)
        );
    }
    let _ = stop.send(());
    Ok(())
}
