//! CustomResourceDefinitions through stock kubectl: a CRD applied, Established, its
//! custom resources created, defaulted, pruned and validated against its schema,
//! reached by short name and category, and deleted with the CRD.

use std::time::{Duration, Instant};

use super::harness::Kubectl;

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: crontabs.stable.example.com
spec:
  group: stable.example.com
  scope: Namespaced
  names:
    plural: crontabs
    kind: CronTab
    shortNames: [ct]
    categories: [all]
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale:
        specReplicasPath: .spec.replicas
        statusReplicasPath: .status.replicas
    selectableFields:
    - jsonPath: .spec.image
    additionalPrinterColumns:
    - name: Spec
      type: string
      jsonPath: .spec.cronSpec
    - name: Replicas
      type: integer
      jsonPath: .spec.replicas
    - name: Age
      type: date
      jsonPath: .metadata.creationTimestamp
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [cronSpec]
            x-kubernetes-validations:
            - rule: "!has(self.image) || self.image != 'forbidden'"
              message: image may not be forbidden
            - rule: self.cronSpec == oldSelf.cronSpec
              message: cronSpec is immutable
            properties:
              cronSpec:
                type: string
              image:
                type: string
              replicas:
                type: integer
                minimum: 1
                maximum: 10
                default: 1
          status:
            type: object
            properties:
              phase:
                type: string
              replicas:
                type: integer
"#;

fn crontab(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: stable.example.com/v1\nkind: CronTab\nmetadata:\n  name: {name}\nspec:\n{spec}\n"
    )
}

/// Waits until `condition` holds for `what`, or fails the test after 30 s.
fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

const TWO_VERSIONS: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.multi.example.com
spec:
  group: multi.example.com
  scope: Cluster
  names:
    plural: widgets
    kind: Widget
  versions:
  - name: v1beta1
    served: true
    storage: false
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size:
                type: integer
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size:
                type: integer
"#;

/// A CRD serving two versions (conversion `None`): objects are stored in the storage
/// version and shown in the version each request names.
pub fn two_versions(kubectl: &Kubectl) {
    kubectl.ok_with(&["apply", "-f", "-"], TWO_VERSIONS);
    kubectl.wait_established("widgets.multi.example.com");
    eventually("widgets in discovery", || {
        kubectl
            .run(&["get", "widgets.v1beta1.multi.example.com"])
            .status
            .success()
    });
    kubectl.ok_with(
        &["create", "-f", "-"],
        "apiVersion: multi.example.com/v1beta1\nkind: Widget\nmetadata:\n  name: w1\nspec:\n  size: 2\n",
    );
    // the preferred version is v1 (kube-aware order), the object is shown in it
    assert_eq!(
        kubectl.jsonpath(&["widgets", "w1"], "{.apiVersion} {.spec.size}"),
        "multi.example.com/v1 2"
    );
    assert_eq!(
        kubectl.jsonpath(
            &["widgets.v1beta1.multi.example.com", "w1"],
            "{.apiVersion}"
        ),
        "multi.example.com/v1beta1"
    );
    kubectl.ok(&[
        "patch",
        "widgets.v1beta1.multi.example.com",
        "w1",
        "--type=merge",
        "-p",
        r#"{"spec":{"size":3}}"#,
    ]);
    let listed = kubectl.ok(&["get", "--raw", "/apis/multi.example.com/v1beta1/widgets"]);
    assert!(
        listed.contains(r#""apiVersion":"multi.example.com/v1beta1","kind":"Widget""#)
            && listed.contains(r#""size":3"#),
        "{listed}"
    );
    // a default added to the schema later shows in objects stored before it
    kubectl.ok(&[
        "patch",
        "crd",
        "widgets.multi.example.com",
        "--type=json",
        "-p",
        r#"[{"op":"add","path":"/spec/versions/1/schema/openAPIV3Schema/properties/spec/properties/color","value":{"type":"string","default":"blue"}}]"#,
    ]);
    eventually("the new default on read", || {
        kubectl.jsonpath(&["widgets", "w1"], "{.spec.color}") == "blue"
    });
    assert_eq!(
        kubectl.jsonpath(
            &["crd", "widgets.multi.example.com"],
            "{.status.storedVersions}"
        ),
        "[\"v1\"]"
    );
    kubectl.ok(&["delete", "crd", "widgets.multi.example.com"]);
}

pub fn custom_resources(kubectl: &Kubectl) {
    let out = kubectl.ok_with(&["apply", "-f", "-"], CRD);
    assert!(
        out.contains(
            "customresourcedefinition.apiextensions.k8s.io/crontabs.stable.example.com created"
        ),
        "{out}"
    );
    kubectl.wait_established("crontabs.stable.example.com");
    assert_eq!(
        kubectl.jsonpath(
            &["crd", "crontabs.stable.example.com"],
            "{.status.acceptedNames.kind} {.status.storedVersions} {.spec.names.listKind}"
        ),
        "CronTab [\"v1\"] CronTabList"
    );
    // discovery may take a moment to show the new group to kubectl's cache
    eventually("the crontabs resource in discovery", || {
        kubectl
            .run(&["api-resources", "--api-group=stable.example.com"])
            .stdout
            .windows(8)
            .any(|w| w == b"crontabs")
    });
    // the CRD's schema is in the OpenAPI documents: explain renders it (v3), and the
    // v2 document has its definition under upstream's name
    let explained = kubectl.ok(&["explain", "crontabs.spec"]);
    assert!(explained.contains("KIND:       CronTab"), "{explained}");
    assert!(
        explained.contains("cronSpec\t<string> -required-"),
        "{explained}"
    );
    assert!(explained.contains("replicas\t<integer>"), "{explained}");
    let v2: serde_json::Value =
        serde_json::from_str(&kubectl.ok(&["get", "--raw", "/openapi/v2"])).unwrap();
    let definition = &v2["definitions"]["com.example.stable.v1.CronTab"];
    assert_eq!(
        definition["x-kubernetes-group-version-kind"],
        serde_json::json!([{"group": "stable.example.com", "kind": "CronTab", "version": "v1"}])
    );
    assert!(
        v2["paths"]["/apis/stable.example.com/v1/namespaces/{namespace}/crontabs/{name}/scale"]
            .is_object()
    );

    let out = kubectl.ok_with(
        &["apply", "-f", "-"],
        &crontab("nightly", "  cronSpec: \"0 0 * * *\"\n  image: backup:1"),
    );
    assert!(
        out.contains("crontab.stable.example.com/nightly created"),
        "{out}"
    );
    // the schema's default
    assert_eq!(
        kubectl.jsonpath(&["ct", "nightly"], "{.spec.replicas}"),
        "1"
    );
    assert_eq!(
        kubectl.jsonpath(
            &["crontabs.stable.example.com", "nightly"],
            "{.metadata.generation}"
        ),
        "1"
    );
    // the CRD's printer columns
    let table = kubectl.ok(&["get", "ct", "nightly"]);
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(header, ["NAME", "SPEC", "REPLICAS", "AGE"], "{table}");
    assert!(table.contains("nightly   0 0 * * *   1"), "{table}");
    // the scale subresource at the CRD's paths
    kubectl.ok(&["scale", "ct", "nightly", "--replicas=5"]);
    assert_eq!(
        kubectl.jsonpath(&["ct", "nightly"], "{.spec.replicas}"),
        "5"
    );
    let scale = kubectl.ok(&[
        "get",
        "--raw",
        "/apis/stable.example.com/v1/namespaces/default/crontabs/nightly/scale",
    ]);
    assert!(
        scale.contains("\"kind\":\"Scale\"") && scale.contains("\"replicas\":5"),
        "{scale}"
    );
    kubectl.ok(&["scale", "ct", "nightly", "--replicas=1"]);
    let names = kubectl.ok(&["get", "all", "-o", "name"]);
    assert!(
        names.contains("crontab.stable.example.com/nightly"),
        "{names}"
    );

    // validation against the schema, with upstream's message
    let err = kubectl.fails(
        &["apply", "-f", "-"],
        &crontab("too-many", "  cronSpec: \"* * * * *\"\n  replicas: 20"),
    );
    assert!(
        err.contains("spec.replicas: Invalid value: 20: spec.replicas in body should be less than or equal to 10"),
        "{err}"
    );
    // CEL rules, the transition rule only on updates
    let err = kubectl.fails(
        &["apply", "-f", "-"],
        &crontab("forbidden", "  cronSpec: \"* * * * *\"\n  image: forbidden"),
    );
    assert!(
        err.contains("spec: Invalid value: \"object\": image may not be forbidden"),
        "{err}"
    );
    let err = kubectl.fails(
        &[
            "patch",
            "ct",
            "nightly",
            "--type=merge",
            "-p",
            r#"{"spec":{"cronSpec":"1 1 * * *"}}"#,
        ],
        "",
    );
    assert!(
        err.contains("spec: Invalid value: \"object\": cronSpec is immutable"),
        "{err}"
    );
    let err = kubectl.fails(&["apply", "-f", "-"], &crontab("no-spec", "  image: x"));
    assert!(err.contains("spec.cronSpec: Required value"), "{err}");

    // unknown fields: refused by kubectl's Strict, pruned when validation is off
    let err = kubectl.fails(
        &["create", "-f", "-"],
        &crontab("extra", "  cronSpec: \"* * * * *\"\n  extra: 1"),
    );
    assert!(err.contains("unknown field \"spec.extra\""), "{err}");
    kubectl.ok_with(
        &["create", "--validate=false", "-f", "-"],
        &crontab("extra", "  cronSpec: \"* * * * *\"\n  extra: 1"),
    );
    assert_eq!(
        kubectl.jsonpath(&["ct", "extra"], "{.spec}"),
        "{\"cronSpec\":\"* * * * *\",\"replicas\":1}"
    );

    // selectableFields: the image selects, other spec fields do not
    assert_eq!(
        kubectl
            .ok(&[
                "get",
                "ct",
                "--field-selector",
                "spec.image=backup:1",
                "-o",
                "name"
            ])
            .trim(),
        "crontab.stable.example.com/nightly"
    );
    let names = kubectl.ok(&[
        "get",
        "ct",
        "--field-selector",
        "spec.image!=backup:1",
        "-o",
        "name",
    ]);
    assert!(
        !names.contains("nightly") && names.contains("extra"),
        "{names}"
    );
    let err = kubectl.fails(&["get", "ct", "--field-selector", "spec.cronSpec=x"], "");
    assert!(
        err.contains("field label not supported: spec.cronSpec"),
        "{err}"
    );

    // the status subresource: status is not set through the main resource
    kubectl.ok(&[
        "patch",
        "ct",
        "nightly",
        "--type=merge",
        "-p",
        r#"{"status":{"phase":"Running"}}"#,
    ]);
    assert_eq!(kubectl.jsonpath(&["ct", "nightly"], "{.status.phase}"), "");
    kubectl.ok(&[
        "patch",
        "ct",
        "nightly",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"phase":"Running"}}"#,
    ]);
    assert_eq!(
        kubectl.jsonpath(&["ct", "nightly"], "{.status.phase}"),
        "Running"
    );
    kubectl.ok(&[
        "patch",
        "ct",
        "nightly",
        "--type=merge",
        "-p",
        r#"{"spec":{"replicas":3}}"#,
    ]);
    // created 1, scaled twice, the status patch kept it, the spec patch bumped it
    assert_eq!(
        kubectl.jsonpath(&["ct", "nightly"], "{.metadata.generation}"),
        "4"
    );

    // deleting the CRD deletes its custom resources; re-creating it starts empty
    kubectl.ok(&[
        "delete",
        "crd",
        "crontabs.stable.example.com",
        "--timeout=60s",
    ]);
    eventually("the CRD to be gone", || {
        !kubectl
            .run(&["get", "crd", "crontabs.stable.example.com"])
            .status
            .success()
    });
    kubectl.ok_with(&["apply", "-f", "-"], CRD);
    kubectl.wait_established("crontabs.stable.example.com");
    eventually("an empty crontab list", || {
        let out = kubectl.run(&["get", "crontabs.stable.example.com", "-o", "name"]);
        out.status.success() && out.stdout.is_empty()
    });
    kubectl.ok(&["delete", "crd", "crontabs.stable.example.com"]);
}
