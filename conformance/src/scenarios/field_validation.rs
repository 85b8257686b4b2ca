//! As upstream's test/e2e/apimachinery/field_validation.go: `fieldValidation=Strict`
//! refuses unknown and duplicate fields with upstream's errors. The bodies are sent as
//! written (`kubectl create --raw` for the typed objects' POSTs, [`Cluster::request`]
//! for the custom resources' server-side apply PATCHes), since kubectl's own decoding
//! would drop the duplicates before the server saw them.

use serde_json::{Value, json};

use super::custom_resource_definition::create_established;
use super::fail;
use crate::Cluster;

/// Posts `body` to the namespace's Deployments with upstream's parameters; the error
/// kubectl printed, or why the request unexpectedly succeeded.
fn post_strict(cluster: &Cluster, ns: &str, body: &str) -> Result<String, String> {
    let path = format!(
        "/apis/apps/v1/namespaces/{ns}/deployments?fieldManager=field_validation_mgr&fieldValidation=Strict"
    );
    match cluster.kubectl_stdin(&["create", "--raw", &path, "-f", "-"], body) {
        Ok(created) => Err(format!("the invalid Deployment was created: {created}")),
        Err(e) => Ok(e.to_string()),
    }
}

/// "FieldValidation should detect unknown and duplicate fields of a typed object".
pub fn unknown_and_duplicate_fields(cluster: &Cluster) -> Result<(), String> {
    let ns = cluster.namespace("field-validation").map_err(fail)?;
    let body = r#"{
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "my-dep", "labels": {"app": "nginx"}},
        "spec": {
            "unknownField": "foo",
            "replicas": 2,
            "replicas": 3,
            "selector": {"matchLabels": {"app": "nginx"}},
            "template": {
                "metadata": {"labels": {"app": "nginx"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:latest"}]}
            }
        }
    }"#;
    let said = post_strict(cluster, &ns, body)?;
    let expected = r#"strict decoding error: unknown field "spec.unknownField", duplicate field "spec.replicas""#;
    if !said.contains(expected) {
        return Err(format!("expected {expected:?}, got: {said}"));
    }
    Ok(())
}

/// "FieldValidation should detect unknown metadata fields of a typed object".
pub fn unknown_metadata_fields(cluster: &Cluster) -> Result<(), String> {
    let ns = cluster.namespace("field-validation").map_err(fail)?;
    let body = r#"{
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "my-dep", "unknownMeta": "foo", "labels": {"app": "nginx"}},
        "spec": {
            "selector": {"matchLabels": {"app": "nginx"}},
            "template": {
                "metadata": {"labels": {"app": "nginx"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:latest"}]}
            }
        }
    }"#;
    let said = post_strict(cluster, &ns, body)?;
    let expected = r#"strict decoding error: unknown field "metadata.unknownMeta""#;
    if !said.contains(expected) {
        return Err(format!("expected {expected:?}, got: {said}"));
    }
    Ok(())
}

/// The CR tests' schema (upstream's): a `spec` of a string, a patterned string and a
/// map-list of ports; with `preserve` the `spec` keeps unknown fields, with `embedded`
/// it also has an embedded resource `template`.
fn cr_schema(preserve: bool, embedded: bool) -> Value {
    let mut spec = json!({
        "type": "object",
        "properties": {
            "foo": {"type": "string"},
            "cronSpec": {
                "type": "string",
                "pattern": r"^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$",
            },
            "ports": {
                "type": "array",
                "x-kubernetes-list-map-keys": ["containerPort", "protocol"],
                "x-kubernetes-list-type": "map",
                "items": {
                    "properties": {
                        "containerPort": {"format": "int32", "type": "integer"},
                        "hostIP": {"type": "string"},
                        "hostPort": {"format": "int32", "type": "integer"},
                        "name": {"type": "string"},
                        "protocol": {"type": "string"},
                    },
                    "required": ["containerPort", "protocol"],
                    "type": "object",
                },
            },
        },
    });
    if preserve {
        spec["x-kubernetes-preserve-unknown-fields"] = json!(true);
    }
    if embedded {
        spec["properties"]["template"] = json!({
            "type": "object",
            "x-kubernetes-embedded-resource": true,
            "properties": {
                "metadata": {"type": "object", "properties": {"name": {"type": "string"}}},
                "spec": {"type": "object"},
            },
        });
    }
    json!({"type": "object", "properties": {"spec": spec}})
}

/// A cluster-scoped CRD as upstream's `NewRandomNameMultipleVersionCustomResourceDefinition`
/// (served in v1beta1, stored, and v1), of a kind no other run uses, every version with
/// `schema` (none: one keeping any field).
struct Noxu {
    name: String,
    group: String,
    plural: String,
    kind: String,
}

impl Noxu {
    fn create(cluster: &Cluster, schema: Option<Value>) -> Result<Self, String> {
        let token = super::token();
        let group = "field-validation.example.com".to_owned();
        let plural = format!("noxus{token}");
        let kind = format!("WishIHadChosenNoxu{token}");
        let schema = schema.unwrap_or_else(
            || json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
        );
        let version = |name: &str, storage: bool| {
            json!({"name": name, "served": true, "storage": storage,
                   "schema": {"openAPIV3Schema": schema}})
        };
        let crd = json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": format!("{plural}.{group}")},
            "spec": {
                "group": group,
                "scope": "Cluster",
                "names": {"plural": plural, "singular": format!("noxu{token}"), "kind": kind,
                          "listKind": format!("{kind}List")},
                "versions": [version("v1beta1", true), version("v1", false)],
            },
        });
        let name = create_established(cluster, &crd)?;
        Ok(Noxu {
            name,
            group,
            plural,
            kind,
        })
    }

    /// Server-side applies `yaml` (written with `{api_version}`, `{kind}` and `{name}`
    /// in it) to custom resource `mytest` with upstream's parameters.
    fn apply_strict(&self, cluster: &Cluster, yaml: &str) -> Result<crate::Response, String> {
        let yaml = yaml
            .replace("{api_version}", &format!("{}/v1beta1", self.group))
            .replace("{kind}", &self.kind)
            .replace("{name}", "mytest");
        let path = format!(
            "/apis/{}/v1beta1/{}/mytest?fieldManager=field_validation_mgr&fieldValidation=Strict",
            self.group, self.plural
        );
        cluster
            .request("PATCH", &path, "application/apply-patch+yaml", &yaml)
            .map_err(fail)
    }

    /// Removes `mytest` (its finalizer first) and the CRD.
    fn delete(&self, cluster: &Cluster) -> Result<(), String> {
        let resource = format!("{}.{}", self.plural, self.group);
        if cluster.kubectl(&["get", &resource, "mytest"]).is_ok() {
            cluster
                .kubectl(&[
                    "patch",
                    &resource,
                    "mytest",
                    "--type=merge",
                    "-p",
                    r#"{"metadata":{"finalizers":null}}"#,
                ])
                .map_err(fail)?;
        }
        cluster
            .kubectl(&["delete", "crd", &self.name, "--timeout=60s"])
            .map_err(fail)?;
        Ok(())
    }

    /// Runs `body` with this CRD, then deletes it whatever happened.
    fn run(
        self,
        cluster: &Cluster,
        body: impl FnOnce(&Noxu) -> Result<(), String>,
    ) -> Result<(), String> {
        let outcome = body(&self);
        let cleanup = self.delete(cluster);
        outcome.and(cleanup)
    }
}

/// The apply succeeded and its answer holds `spec` as applied.
fn applied(answer: &crate::Response, spec: &Value) -> Result<(), String> {
    if !(200..300).contains(&answer.status) {
        return Err(format!(
            "the apply failed: {} {}",
            answer.status, answer.body
        ));
    }
    let got = answer.json();
    if &got["spec"] != spec {
        return Err(format!("applied spec {spec}, the server answered {got}"));
    }
    Ok(())
}

/// The apply failed with a message having one of `expected`. (Upstream answers the
/// schema errors of an applied patch with 500, kubernetes/kubernetes#139253, and
/// strict YAML errors with 400; upstream's test checks the message only, as here.)
fn refused(answer: &crate::Response, expected: &[&str]) -> Result<(), String> {
    let message = answer.json()["message"].as_str().unwrap_or("").to_owned();
    if answer.status < 400 || !expected.iter().any(|x| message.contains(x)) {
        return Err(format!(
            "expected a failure saying one of {expected:?}, got {} {}",
            answer.status, answer.body
        ));
    }
    Ok(())
}

/// "FieldValidation should create/apply a valid CR for CRD with validation schema".
pub fn valid_cr_with_schema(cluster: &Cluster) -> Result<(), String> {
    Noxu::create(cluster, Some(cr_schema(false, false)))?.run(cluster, |noxu| {
        let answer = noxu.apply_strict(
            cluster,
            r#"
apiVersion: {api_version}
kind: {kind}
metadata:
  name: {name}
  finalizers:
  - test-finalizer
spec:
  foo: foo1
  cronSpec: "* * * * */5"
  ports:
  - name: x
    containerPort: 80
    protocol: TCP"#,
        )?;
        applied(
            &answer,
            &json!({"foo": "foo1", "cronSpec": "* * * * */5",
                    "ports": [{"name": "x", "containerPort": 80, "protocol": "TCP"}]}),
        )
    })
}

/// "FieldValidation should create/apply a CR with unknown fields for CRD with no
/// validation schema".
pub fn unknown_fields_cr_without_schema(cluster: &Cluster) -> Result<(), String> {
    Noxu::create(cluster, None)?.run(cluster, |noxu| {
        let answer = noxu.apply_strict(
            cluster,
            r#"
apiVersion: {api_version}
kind: {kind}
metadata:
  name: {name}
  finalizers:
  - test-finalizer
spec:
  unknown: uk1
  cronSpec: "* * * * */5"
  ports:
  - name: x
    containerPort: 80
    protocol: TCP"#,
        )?;
        applied(
            &answer,
            &json!({"unknown": "uk1", "cronSpec": "* * * * */5",
                    "ports": [{"name": "x", "containerPort": 80, "protocol": "TCP"}]}),
        )
    })
}

/// "FieldValidation should create/apply an invalid CR with extra properties for CRD
/// with validation schema".
pub fn extra_properties_cr_with_schema(cluster: &Cluster) -> Result<(), String> {
    Noxu::create(cluster, Some(cr_schema(false, false)))?.run(cluster, |noxu| {
        let answer = noxu.apply_strict(
            cluster,
            r#"
apiVersion: {api_version}
kind: {kind}
metadata:
  name: {name}
  finalizers:
  - test-finalizer
unknownField: unknown
spec:
  foo: foo1
  cronSpec: "* * * * */5"
  ports:
  - name: x
    containerPort: 80
    protocol: TCP"#,
        )?;
        refused(&answer, &[".unknownField: field not declared in schema"])
    })
}

/// "FieldValidation should detect unknown metadata fields in both the root and embedded
/// object of a CR".
pub fn unknown_metadata_fields_of_cr(cluster: &Cluster) -> Result<(), String> {
    Noxu::create(cluster, Some(cr_schema(true, true)))?.run(cluster, |noxu| {
        let answer = noxu.apply_strict(
            cluster,
            r#"
apiVersion: {api_version}
kind: {kind}
metadata:
  name: {name}
  unknownMeta: unknown
  finalizers:
  - test-finalizer
spec:
  template:
    apiversion: foo/v1
    kind: Sub
    metadata:
        unknownSubMeta: unknown
        name: subobject
        namespace: default
  foo: foo1
  cronSpec: "* * * * */5"
  ports:
  - name: x
    containerPort: 80
    protocol: TCP"#,
        )?;
        refused(
            &answer,
            &[
                ".spec.template.metadata.unknownSubMeta: field not declared in schema",
                ".metadata.unknownMeta: field not declared in schema",
            ],
        )
    })
}

/// "FieldValidation should detect duplicates in a CR when preserving unknown fields".
pub fn duplicates_in_cr_preserving_unknown_fields(cluster: &Cluster) -> Result<(), String> {
    Noxu::create(cluster, Some(cr_schema(true, false)))?.run(cluster, |noxu| {
        let answer = noxu.apply_strict(
            cluster,
            r#"
apiVersion: {api_version}
kind: {kind}
metadata:
  name: {name}
  finalizers:
  - test-finalizer
spec:
  unknown: uk1
  foo: foo1
  foo: foo2
  cronSpec: "* * * * */5"
  ports:
  - name: x
    containerPort: 80
    protocol: TCP"#,
        )?;
        refused(&answer, &[r#"line 11: key "foo" already set in map"#])
    })
}
