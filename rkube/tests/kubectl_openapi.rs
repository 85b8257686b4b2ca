//! Stock kubectl against `rkube up` with its default validation: `create`, `replace` and
//! `apply` read `/openapi/v3` to learn that the server validates fields itself, the
//! server refuses unknown fields under `fieldValidation=Strict` with upstream's message,
//! and `kubectl explain` renders the schemas. kubectl must be on PATH: without it this
//! test fails, it never skips.

mod common;

use common::{RkubeUp, kubectl, stdout_of};

const CONFIGMAP: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: validated
  namespace: default
data:
  greeting: hello
";

const CONFIGMAP_WITH_TYPO: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: typo
  namespace: default
data2:
  greeting: hello
";

#[test]
fn kubectl_validates_through_openapi_and_explains() {
    let up = RkubeUp::start();
    let kubeconfig = &up.kubeconfig;
    let file = |name: &str, text: &str| {
        let path = up.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    };
    let good = file("configmap.yaml", CONFIGMAP);
    let typo = file("typo.yaml", CONFIGMAP_WITH_TYPO);

    // no --validate=false: kubectl consults /openapi/v3 first
    let created = stdout_of(kubeconfig, &["create", "-f", &good]);
    assert_eq!(created.trim(), "configmap/validated created");
    let replaced = stdout_of(kubeconfig, &["replace", "-f", &good]);
    assert_eq!(replaced.trim(), "configmap/validated replaced");

    // upstream: `Error from server (BadRequest): error when creating "typo.yaml": ConfigMap
    // in version "v1" cannot be handled as a ConfigMap: strict decoding error: unknown
    // field "data2"`
    let refused = kubectl(kubeconfig, &["create", "-f", &typo]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(
        stderr.contains("Error from server (BadRequest)"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: strict decoding error: unknown field \"data2\""
        ),
        "{stderr}"
    );
    let missing = kubectl(kubeconfig, &["get", "configmap", "typo"]);
    assert!(!missing.status.success());

    // --validate=warn: created, with the server's warning printed by kubectl
    let warned = kubectl(kubeconfig, &["create", "--validate=warn", "-f", &typo]);
    let stderr = String::from_utf8_lossy(&warned.stderr);
    assert!(warned.status.success(), "{stderr}");
    assert!(stderr.contains("unknown field \"data2\""), "{stderr}");

    let explained = stdout_of(kubeconfig, &["explain", "configmap.data"]);
    // kubectl's column widths vary across versions; the words do not
    assert!(explained.contains("ConfigMap"), "{explained}");
    assert!(
        explained.contains("data <map[string]string>"),
        "{explained}"
    );
    assert!(
        explained.contains("Data contains the configuration data."),
        "{explained}"
    );
    let replicas = stdout_of(kubeconfig, &["explain", "deployment.spec.replicas"]);
    assert!(replicas.contains("Deployment"), "{replicas}");
    assert!(replicas.contains("replicas <integer>"), "{replicas}");
    assert!(replicas.contains("Number of desired pods."), "{replicas}");
}
