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

/// `kubectl.1.NN` beside the real kubectl binary.
fn versioned_kubectl(minor: u32) -> std::path::PathBuf {
    let real = std::process::Command::new("sh")
        .args(["-c", "readlink -f \"$(command -v kubectl)\""])
        .output()
        .expect("sh");
    let real = std::path::PathBuf::from(String::from_utf8_lossy(&real.stdout).trim());
    let versioned = real.with_file_name(format!("kubectl.1.{minor}"));
    assert!(versioned.is_file(), "{} is missing", versioned.display());
    versioned
}

/// kubectl 1.27 and 1.28 read only `/openapi/v2`, and only in gnostic's protobuf: with
/// it they create with their default validation, leave unknown fields to the server
/// and explain from the v2 schemas.
#[test]
fn kubectl_1_27_and_1_28_use_the_protobuf_openapi_v2() {
    let up = RkubeUp::start();
    for minor in [27, 28] {
        let binary = versioned_kubectl(minor);
        let cache = up.dir.path().join(format!("cache-{minor}"));
        let run = |args: &[&str], stdin: &str| {
            use std::io::Write;
            let mut child = std::process::Command::new(&binary)
                .arg("--kubeconfig")
                .arg(&up.kubeconfig)
                .arg("--cache-dir")
                .arg(&cache)
                .args(args)
                .env_remove("KUBECONFIG")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(stdin.as_bytes())
                .unwrap();
            child.wait_with_output().unwrap()
        };
        let good = CONFIGMAP.replace("name: validated", &format!("name: old-{minor}"));
        let created = run(&["create", "-f", "-"], &good);
        assert!(
            created.status.success(),
            "kubectl 1.{minor}: {}",
            String::from_utf8_lossy(&created.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&created.stdout).trim(),
            format!("configmap/old-{minor} created")
        );
        let typo = CONFIGMAP_WITH_TYPO.replace("name: typo", &format!("name: typo-{minor}"));
        let refused = run(&["create", "-f", "-"], &typo);
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(!refused.status.success(), "kubectl 1.{minor}: {stderr}");
        assert!(
            stderr.contains("unknown field \"data2\""),
            "kubectl 1.{minor}: {stderr}"
        );
        let explained = run(&["explain", "deployment.spec.replicas"], "");
        let stdout = String::from_utf8_lossy(&explained.stdout);
        assert!(explained.status.success(), "kubectl 1.{minor}: {stdout}");
        assert!(stdout.contains("Number of desired pods."), "{stdout}");
    }
}
