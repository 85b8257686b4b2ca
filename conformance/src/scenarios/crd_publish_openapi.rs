//! As upstream's test/e2e/apimachinery/crd_publish_openapi.go: a CRD's schemas are
//! published in `/openapi/v2` under `<reversed group>.<version>.<Kind>` (and withdrawn
//! when the CRD or the version goes), kubectl validates custom resources against them
//! and `kubectl explain` renders them.

use regex::Regex;
use serde_json::{Value, json};

use super::custom_resource_definition::create_established;
use super::{fail, poll, token};
use crate::Cluster;

/// Upstream's `schemaFoo`: objects, arrays, primitives, an enum, a pattern and a
/// required field, each described.
fn schema_foo() -> Value {
    json!({
        "description": "Foo CRD for Testing",
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "description": "Specification of Foo",
                "properties": {
                    "bars": {
                        "description": "List of Bars and their specs.",
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["name"],
                            "properties": {
                                "name": {"description": "Name of Bar.", "type": "string"},
                                "age": {"description": "Age of Bar.", "type": "string"},
                                "feeling": {
                                    "description": "Whether Bar is feeling great.",
                                    "type": "string",
                                    "enum": ["Great", "Down"],
                                },
                                "bazs": {
                                    "description": "List of Bazs.",
                                    "items": {"type": "string"},
                                    "type": "array",
                                },
                            },
                        },
                    },
                },
            },
            "status": {
                "description": "Status of Foo",
                "type": "object",
                "properties": {
                    "bars": {
                        "description": "List of Bars and their statuses.",
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "name": {"description": "Name of Bar.", "type": "string"},
                                "available": {
                                    "description": "Whether the Bar is installed.",
                                    "type": "boolean",
                                },
                                "quxType": {
                                    "description": "Indicates to external qux type.",
                                    "pattern": "in-tree|out-of-tree",
                                    "type": "string",
                                },
                            },
                        },
                    },
                },
            },
        },
    })
}

/// The `spec`/`status` properties upstream's Waldo-shaped schemas share.
fn waldo_properties() -> Value {
    json!({
        "spec": {
            "description": "Specification of Waldo",
            "type": "object",
            "properties": {"dummy": {"description": "Dummy property.", "type": "object"}},
        },
        "status": {
            "description": "Status of Waldo",
            "type": "object",
            "properties": {
                "bars": {
                    "description": "List of Bars and their statuses.",
                    "type": "array",
                    "items": {"type": "object"},
                },
            },
        },
    })
}

/// Upstream's `schemaWaldo`.
fn schema_waldo() -> Value {
    json!({
        "description": "Waldo CRD for Testing",
        "type": "object",
        "properties": waldo_properties(),
    })
}

/// Upstream's `schemaPreserveRoot`: unknown fields kept at the root.
fn schema_preserve_root() -> Value {
    json!({
        "description": "preserve-unknown-properties at root for Testing",
        "x-kubernetes-preserve-unknown-fields": true,
        "type": "object",
        "properties": waldo_properties(),
    })
}

/// Upstream's `schemaPreserveNested`: unknown fields kept under `spec`.
fn schema_preserve_nested() -> Value {
    let mut properties = waldo_properties();
    properties["spec"]["x-kubernetes-preserve-unknown-fields"] = json!(true);
    json!({
        "description": "preserve-unknown-properties in nested field for Testing",
        "type": "object",
        "properties": properties,
    })
}

/// What a definition must be once published.
enum Expect<'a> {
    /// Only that it is there.
    Present,
    /// Equal to this schema, once the properties and extension the server adds
    /// (`apiVersion`, `kind`, `metadata`, `x-kubernetes-group-version-kind`) are dropped.
    Schema(&'a Value),
}

/// A CRD made for one scenario.
struct TestCrd {
    name: String,
    group: String,
    plural: String,
    kind: String,
    /// The versions whose definitions are published (and must go at cleanup).
    versions: Vec<String>,
}

impl TestCrd {
    /// `<reversed group>.<version>.<Kind>`, as upstream's `ToRESTFriendlyName`.
    fn definition(&self, version: &str) -> String {
        let reversed: Vec<&str> = self.group.split('.').rev().collect();
        format!("{}.{version}.{}", reversed.join("."), self.kind)
    }

    /// The start of a custom resource of the first version, as upstream's `metaPattern`.
    fn meta(&self, name: &str) -> String {
        format!(
            r#""kind":"{}","apiVersion":"{}/{}","metadata":{{"name":"{name}"}}"#,
            self.kind, self.group, self.versions[0]
        )
    }
}

/// Upstream's `setupCRD`: a CRD (see [`setup_crd_expecting`]) whose definitions must be
/// published as `schema` itself (none: as a bare `type: object`).
fn setup_crd(
    cluster: &Cluster,
    schema: Option<&Value>,
    group_suffix: &str,
    versions: &[&str],
) -> Result<TestCrd, String> {
    let bare = json!({"type": "object"});
    let expect = Expect::Schema(schema.unwrap_or(&bare));
    setup_crd_expecting(cluster, schema, &expect, group_suffix, versions)
}

/// Upstream's `setupCRDAndVerifySchema`: a namespaced CRD in group
/// `crd-publish-openapi-test-<suffix>.example.com` of a kind no other run uses, serving
/// `versions` (the first stored), each with `schema` (none: a schema keeping unknown
/// fields); then waits for every version's definition to be published as `expect` says.
fn setup_crd_expecting(
    cluster: &Cluster,
    schema: Option<&Value>,
    expect: &Expect<'_>,
    group_suffix: &str,
    versions: &[&str],
) -> Result<TestCrd, String> {
    let group = format!("crd-publish-openapi-test-{group_suffix}.example.com");
    let kind = format!("e2e-test-crd-publish-openapi-{}-crd", token());
    let plural = format!("{kind}s");
    let stored_schema = schema
        .cloned()
        .unwrap_or_else(|| json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}));
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.{group}")},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": plural, "singular": kind, "kind": kind,
                      "listKind": format!("{kind}List")},
            "versions": versions.iter().enumerate().map(|(i, v)| json!({
                "name": v, "served": true, "storage": i == 0,
                "schema": {"openAPIV3Schema": stored_schema},
            })).collect::<Vec<_>>(),
        },
    });
    let name = create_established(cluster, &crd)?;
    let test_crd = TestCrd {
        name,
        group,
        plural,
        kind,
        versions: versions.iter().map(|v| (*v).to_owned()).collect(),
    };
    for version in &test_crd.versions {
        wait_for_definition(cluster, &test_crd.definition(version), expect)?;
    }
    Ok(test_crd)
}

/// Upstream's `cleanupCRD`: deletes the CRD and waits until none of its versions'
/// definitions is published any more.
fn cleanup_crd(cluster: &Cluster, crd: &TestCrd) -> Result<(), String> {
    cluster
        .kubectl(&["delete", "crd", &crd.name, "--timeout=60s"])
        .map_err(fail)?;
    for version in &crd.versions {
        wait_for_definition_gone(cluster, &crd.definition(version))?;
    }
    Ok(())
}

/// Runs `body` with the CRD, then cleans it up whatever happened; the body's failure
/// comes first.
fn with_crd(
    cluster: &Cluster,
    crd: &mut TestCrd,
    body: impl FnOnce(&Cluster, &mut TestCrd) -> Result<(), String>,
) -> Result<(), String> {
    let outcome = body(cluster, crd);
    let cleanup = cleanup_crd(cluster, crd);
    outcome.and(cleanup)
}

/// The published `/openapi/v2` definitions.
fn definitions(cluster: &Cluster) -> Result<Value, String> {
    let spec = cluster.get_json("/openapi/v2").map_err(fail)?;
    match spec.get("definitions") {
        Some(defs) if defs.is_object() => Ok(defs.clone()),
        _ => Err("/openapi/v2 has no definitions".into()),
    }
}

/// Checks a published definition against `expect`, as upstream's `waitForDefinition`
/// (which drops what the server adds before comparing).
fn matches(published: &Value, expect: &Expect<'_>) -> Result<(), String> {
    let Expect::Schema(expect) = expect else {
        return Ok(());
    };
    let mut got = published.clone();
    if let Some(object) = got.as_object_mut() {
        object.remove("x-kubernetes-group-version-kind");
        if let Some(props) = object.get_mut("properties").and_then(Value::as_object_mut) {
            for added in ["apiVersion", "kind", "metadata"] {
                props.remove(added);
            }
            if props.is_empty() {
                object.remove("properties");
            }
        }
    }
    if &got == *expect {
        Ok(())
    } else {
        Err(format!(
            "published {got} (extensions and apiVersion/kind/metadata dropped), expected {expect}"
        ))
    }
}

/// Waits until `/openapi/v2` has definition `name` as `expect` says.
fn wait_for_definition(cluster: &Cluster, name: &str, expect: &Expect<'_>) -> Result<(), String> {
    poll(|| {
        let defs = definitions(cluster)?;
        let published = defs
            .get(name)
            .ok_or_else(|| format!("definition {name} is not in /openapi/v2"))?;
        matches(published, expect).map_err(|why| format!("definition {name}: {why}"))
    })
}

/// Waits until `/openapi/v2` no longer has definition `name`.
fn wait_for_definition_gone(cluster: &Cluster, name: &str) -> Result<(), String> {
    poll(|| {
        if definitions(cluster)?.get(name).is_some() {
            Err(format!("definition {name} is still in /openapi/v2"))
        } else {
            Ok(())
        }
    })
}

/// Upstream's `verifyKubectlExplain`: `kubectl explain <what>` matches `pattern`.
fn explain_matches(cluster: &Cluster, what: &str, pattern: &str) -> Result<(), String> {
    let out = cluster.kubectl(&["explain", what]).map_err(fail)?;
    let re = Regex::new(pattern).map_err(fail)?;
    if re.is_match(&out) {
        Ok(())
    } else {
        Err(format!(
            "kubectl explain {what} does not match {pattern}: {out}"
        ))
    }
}

/// kubectl create then apply (each followed by a delete) of `cr` in `ns` succeed, with
/// kubectl's default validation (strict, done by the server).
fn create_and_apply(cluster: &Cluster, ns: &str, crd: &TestCrd, cr: &str) -> Result<(), String> {
    for verb in ["create", "apply"] {
        cluster
            .kubectl_stdin(&[verb, "-n", ns, "-f", "-"], cr)
            .map_err(|e| format!("kubectl {verb} of {cr}: {e}"))?;
        cluster
            .kubectl(&["delete", "-n", ns, &crd.plural, &cr_name(cr)])
            .map_err(fail)?;
    }
    Ok(())
}

/// The `metadata.name` of a custom resource written as JSON.
fn cr_name(cr: &str) -> String {
    serde_json::from_str::<Value>(cr)
        .ok()
        .and_then(|v| v["metadata"]["name"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// kubectl create and apply of `cr` in `ns` both fail, saying one of `expected`.
fn create_and_apply_refused(
    cluster: &Cluster,
    ns: &str,
    cr: &str,
    expected: &[&str],
) -> Result<(), String> {
    for verb in ["create", "apply"] {
        match cluster.kubectl_stdin(&[verb, "-n", ns, "-f", "-"], cr) {
            Ok(out) => return Err(format!("kubectl {verb} accepted {cr}: {out}")),
            Err(e) => {
                let said = e.to_string();
                if !expected.iter().any(|x| said.contains(x)) {
                    return Err(format!(
                        "kubectl {verb} of {cr} should fail saying one of {expected:?}: {said}"
                    ));
                }
            }
        }
    }
    Ok(())
}

/// A namespace for the scenario's custom resources.
fn namespace(cluster: &Cluster) -> Result<String, String> {
    cluster.namespace("crd-publish-openapi").map_err(fail)
}

/// "works for CRD with validation schema".
pub fn with_validation_schema(cluster: &Cluster) -> Result<(), String> {
    let foo_schema = schema_foo();
    let mut crd = setup_crd(cluster, Some(&foo_schema), "foo", &["v1"])?;
    with_crd(cluster, &mut crd, |cluster, crd| {
        let ns = namespace(cluster)?;
        let meta = crd.meta("test-foo");
        let valid = format!(r#"{{{meta},"spec":{{"bars":[{{"name":"test-bar"}}]}}}}"#);
        create_and_apply(cluster, &ns, crd, &valid)?;
        // upstream has these commented out pending client-side validation; the
        // server-side validation kubectl now uses gives upstream's answers
        let unknown = format!(r#"{{{meta},"spec":{{"foo":true}}}}"#);
        create_and_apply_refused(
            cluster,
            &ns,
            &unknown,
            &[r#"unknown field "foo""#, r#"unknown field "spec.foo""#],
        )?;
        let no_required = format!(r#"{{{meta},"spec":{{"bars":[{{"age":"10"}}]}}}}"#);
        create_and_apply_refused(
            cluster,
            &ns,
            &no_required,
            &[
                r#"missing required field "name""#,
                "spec.bars[0].name: Required value",
            ],
        )?;
        let bad_enum = format!(
            r#"{{{meta},"spec":{{"bars":[{{"name":"test-bar","feeling":"NonExistentValue"}}]}}}}"#
        );
        create_and_apply_refused(
            cluster,
            &ns,
            &bad_enum,
            &[r#"Unsupported value: "NonExistentValue""#],
        )?;

        let plural = &crd.plural;
        explain_matches(
            cluster,
            plural,
            r"(?s)DESCRIPTION:.*Foo CRD for Testing.*FIELDS:.*apiVersion.*<string>.*APIVersion defines.*spec.*<Object>.*Specification of Foo",
        )?;
        explain_matches(
            cluster,
            &format!("{plural}.metadata"),
            r"(?s)DESCRIPTION:.*Standard object's metadata.*FIELDS:.*creationTimestamp.*<string>.*CreationTimestamp is a timestamp",
        )?;
        explain_matches(
            cluster,
            &format!("{plural}.spec"),
            r"(?s)DESCRIPTION:.*Specification of Foo.*FIELDS:.*bars.*<\[\]Object>.*List of Bars and their specs",
        )?;
        explain_matches(
            cluster,
            &format!("{plural}.spec.bars"),
            r"(?s)(FIELD|RESOURCE):.*bars.*<\[\]Object>.*DESCRIPTION:.*List of Bars and their specs.*FIELDS:.*bazs.*<\[\]string>.*List of Bazs.*name.*<string>.*Name of Bar",
        )?;
        match cluster.kubectl(&["explain", &format!("{plural}.spec.bars2")]) {
            Ok(out) => Err(format!(
                "kubectl explain of a missing field succeeded: {out}"
            )),
            Err(e) if e.to_string().contains(r#"field "bars2" does not exist"#) => Ok(()),
            Err(e) => Err(format!(
                "kubectl explain of a missing field should say it does not exist: {e}"
            )),
        }
    })
}

/// "works for CRD without validation schema": the CRD's schema only keeps unknown
/// fields, and upstream publishes it in /openapi/v2 as a bare `type: object` (no
/// properties, so that kubectl's client-side validation lets any field through).
pub fn without_validation_schema(cluster: &Cluster) -> Result<(), String> {
    let mut crd = setup_crd(cluster, None, "empty", &["v1"])?;
    with_crd(cluster, &mut crd, |cluster, crd| {
        let ns = namespace(cluster)?;
        let random = format!(r#"{{{},"a":{{"b":[{{"c":"d"}}]}}}}"#, crd.meta("test-cr"));
        create_and_apply(cluster, &ns, crd, &random)?;
        explain_matches(cluster, &crd.plural, r"(?s)DESCRIPTION:.*<empty>")
    })
}

/// "works for CRD preserving unknown fields at the schema root".
pub fn preserving_unknown_fields_at_root(cluster: &Cluster) -> Result<(), String> {
    let schema = schema_preserve_root();
    let mut crd = setup_crd_expecting(
        cluster,
        Some(&schema),
        &Expect::Present,
        "unknown-at-root",
        &["v1"],
    )?;
    with_crd(cluster, &mut crd, |cluster, crd| {
        let ns = namespace(cluster)?;
        let random = format!(r#"{{{},"a":{{"b":[{{"c":"d"}}]}}}}"#, crd.meta("test-cr"));
        create_and_apply(cluster, &ns, crd, &random)?;
        explain_matches(
            cluster,
            &crd.plural,
            &format!("(?s)KIND:.*{}", regex::escape(&crd.kind)),
        )
    })
}

/// "works for CRD preserving unknown fields in an embedded object".
pub fn preserving_unknown_fields_in_embedded_object(cluster: &Cluster) -> Result<(), String> {
    let schema = schema_preserve_nested();
    let mut crd = setup_crd_expecting(
        cluster,
        Some(&schema),
        &Expect::Present,
        "unknown-in-nested",
        &["v1"],
    )?;
    with_crd(cluster, &mut crd, |cluster, crd| {
        let ns = namespace(cluster)?;
        let random = format!(
            r#"{{{},"spec":{{"a":null,"b":[{{"c":"d"}}]}}}}"#,
            crd.meta("test-cr")
        );
        create_and_apply(cluster, &ns, crd, &random)?;
        explain_matches(
            cluster,
            &crd.plural,
            r"(?s)DESCRIPTION:.*preserve-unknown-properties in nested field for Testing",
        )
    })
}

/// Two CRDs set up one after the other, both cleaned up whatever happens.
fn with_two_crds(
    cluster: &Cluster,
    first: (&Value, &str, &str),
    second: (&Value, &str, &str),
    check: impl FnOnce(&TestCrd, &TestCrd) -> Result<(), String>,
) -> Result<(), String> {
    let mut a = setup_crd(cluster, Some(first.0), first.1, &[first.2])?;
    with_crd(cluster, &mut a, |cluster, a| {
        let mut b = setup_crd(cluster, Some(second.0), second.1, &[second.2])?;
        with_crd(cluster, &mut b, |cluster, b| {
            check(a, b)?;
            wait_for_definition(cluster, &b.definition(second.2), &Expect::Schema(second.0))?;
            wait_for_definition(cluster, &a.definition(first.2), &Expect::Schema(first.0))
        })
    })
}

/// "works for multiple CRDs of different groups".
pub fn multiple_crds_of_different_groups(cluster: &Cluster) -> Result<(), String> {
    let (foo_schema, waldo) = (schema_foo(), schema_waldo());
    with_two_crds(
        cluster,
        (&foo_schema, "foo", "v1"),
        (&waldo, "waldo", "v1beta1"),
        |a, b| {
            if a.group == b.group {
                return Err(format!(
                    "the CRDs should be of different groups: {}",
                    a.group
                ));
            }
            Ok(())
        },
    )
}

/// "works for multiple CRDs of same group but different versions".
pub fn multiple_crds_of_same_group_different_versions(cluster: &Cluster) -> Result<(), String> {
    let (foo_schema, waldo) = (schema_foo(), schema_waldo());
    // one CRD of two versions
    let mut multi = setup_crd(cluster, Some(&foo_schema), "multi-ver", &["v2", "v3"])?;
    with_crd(cluster, &mut multi, |cluster, multi| {
        for version in ["v3", "v2"] {
            wait_for_definition(
                cluster,
                &multi.definition(version),
                &Expect::Schema(&foo_schema),
            )?;
        }
        Ok(())
    })?;
    // two CRDs of one group
    with_two_crds(
        cluster,
        (&foo_schema, "common-group", "v4"),
        (&waldo, "common-group", "v5"),
        |a, b| {
            if a.group != b.group {
                return Err(format!(
                    "the CRDs should share a group: {}, {}",
                    a.group, b.group
                ));
            }
            Ok(())
        },
    )
}

/// "works for multiple CRDs of same group and version but different kinds".
pub fn multiple_crds_of_same_group_and_version(cluster: &Cluster) -> Result<(), String> {
    let (foo_schema, waldo) = (schema_foo(), schema_waldo());
    with_two_crds(
        cluster,
        (&foo_schema, "common-group", "v6"),
        (&waldo, "common-group", "v6"),
        |a, b| {
            if a.group != b.group || a.kind == b.kind {
                return Err(format!(
                    "the CRDs should share a group and differ in kind: {}/{}, {}/{}",
                    a.group, a.kind, b.group, b.kind
                ));
            }
            Ok(())
        },
    )
}

/// "updates the published spec when one version gets renamed".
pub fn version_renamed(cluster: &Cluster) -> Result<(), String> {
    let foo_schema = schema_foo();
    let mut crd = setup_crd(cluster, Some(&foo_schema), "multi-ver", &["v2", "v3"])?;
    with_crd(cluster, &mut crd, |cluster, crd| {
        let patch = json!([
            {"op": "test", "path": "/spec/versions/1/name", "value": "v3"},
            {"op": "replace", "path": "/spec/versions/1/name", "value": "v4"},
        ]);
        cluster
            .kubectl(&[
                "patch",
                "crd",
                &crd.name,
                "--type=json",
                "-p",
                &patch.to_string(),
            ])
            .map_err(fail)?;
        crd.versions = vec!["v2".into(), "v4".into()];
        wait_for_definition(cluster, &crd.definition("v4"), &Expect::Schema(&foo_schema))?;
        wait_for_definition_gone(cluster, &crd.definition("v3"))?;
        wait_for_definition(cluster, &crd.definition("v2"), &Expect::Schema(&foo_schema))
    })
}

/// "removes definition from spec when one version gets changed to not be served".
pub fn version_unserved(cluster: &Cluster) -> Result<(), String> {
    let foo_schema = schema_foo();
    let mut crd = setup_crd(
        cluster,
        Some(&foo_schema),
        "multi-to-single-ver",
        &["v5", "v6alpha1"],
    )?;
    with_crd(cluster, &mut crd, |cluster, crd| {
        for version in ["v6alpha1", "v5"] {
            wait_for_definition(
                cluster,
                &crd.definition(version),
                &Expect::Schema(&foo_schema),
            )?;
        }
        // a read-modify-write update, as upstream
        let mut current: Value = serde_json::from_str(
            &cluster
                .kubectl(&["get", "crd", &crd.name, "-o", "json"])
                .map_err(fail)?,
        )
        .map_err(fail)?;
        current["spec"]["versions"][1]["served"] = json!(false);
        cluster
            .kubectl_stdin(&["replace", "-f", "-"], &current.to_string())
            .map_err(fail)?;
        wait_for_definition_gone(cluster, &crd.definition("v6alpha1"))?;
        wait_for_definition(cluster, &crd.definition("v5"), &Expect::Schema(&foo_schema))
    })
}
