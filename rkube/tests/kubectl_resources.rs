//! Stock kubectl driving resources on `rkube up`: create, get (table, json, name,
//! selectors, chunking), replace, watch and delete of ConfigMaps and Namespaces.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{RkubeUp, kubectl, stdout_of};

fn configmap(name: &str, value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  labels:\n    app: {name}\ndata:\n  key: \"{value}\"\n"
    )
}

fn kubectl_stdin(kubeconfig: &std::path::Path, args: &[&str], stdin: &str) -> String {
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .env_remove("KUBECONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl must be on PATH");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn configmaps_and_namespaces_through_kubectl() {
    let up = RkubeUp::start();
    let kc = &up.kubeconfig;
    // Client-side schema validation needs /openapi, which is not served yet.
    let created = kubectl_stdin(
        kc,
        &["create", "--validate=false", "-f", "-"],
        &configmap("web", "one"),
    );
    assert_eq!(created.trim(), "configmap/web created");

    let table = stdout_of(kc, &["get", "configmaps"]);
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0], ["NAME", "DATA", "AGE"], "{table}");
    assert_eq!(&rows[1][..2], ["web", "1"], "{table}");

    let object: serde_json::Value =
        serde_json::from_str(&stdout_of(kc, &["get", "cm", "web", "-o", "json"])).unwrap();
    assert_eq!(object["data"]["key"], "one");
    assert_eq!(object["metadata"]["namespace"], "default");
    assert!(
        object["metadata"]["uid"].is_string() && object["metadata"]["resourceVersion"].is_string()
    );

    assert_eq!(
        stdout_of(kc, &["get", "cm", "-l", "app=web", "-o", "name"]).trim(),
        "configmap/web"
    );
    assert_eq!(
        stdout_of(kc, &["get", "cm", "-l", "app=other", "-o", "name"]).trim(),
        ""
    );
    assert_eq!(
        stdout_of(
            kc,
            &[
                "get",
                "cm",
                "--field-selector",
                "metadata.name=web",
                "-o",
                "name"
            ]
        )
        .trim(),
        "configmap/web"
    );
    assert_eq!(
        stdout_of(kc, &["get", "cm", "web", "-o", "jsonpath={.data.key}"]),
        "one"
    );

    let replaced = kubectl_stdin(
        kc,
        &["replace", "--validate=false", "-f", "-"],
        &configmap("web", "two"),
    );
    assert_eq!(replaced.trim(), "configmap/web replaced");
    assert_eq!(
        stdout_of(kc, &["get", "cm", "web", "-o", "jsonpath={.data.key}"]),
        "two"
    );

    // A watch sees a create made after it started.
    let mut watch = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kc)
        .args(["get", "configmaps", "--watch", "-o", "name"])
        .env_remove("KUBECONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    assert_eq!(
        lines.next().unwrap().unwrap(),
        "configmap/web",
        "the watch lists what exists first"
    );
    kubectl_stdin(
        kc,
        &["create", "--validate=false", "-f", "-"],
        &configmap("late", "x"),
    );
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(20))
            .expect("watch event"),
        "configmap/late"
    );
    let _ = watch.kill();
    let _ = watch.wait();

    // Chunked lists return every item.
    kubectl_stdin(
        kc,
        &["create", "--validate=false", "-f", "-"],
        &configmap("third", "x"),
    );
    let names = stdout_of(kc, &["get", "cm", "--chunk-size=1", "-o", "name"]);
    assert_eq!(names.lines().count(), 3, "{names}");

    assert_eq!(
        stdout_of(kc, &["delete", "cm", "web"]).trim(),
        r#"configmap "web" deleted"#
    );
    let missing = kubectl(kc, &["get", "cm", "web"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains(r#"configmaps "web" not found"#));

    // Namespaces: the system ones exist; a deleted one is Terminating.
    let namespaces = stdout_of(kc, &["get", "namespaces", "-o", "name"]);
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(
            namespaces.lines().any(|l| l == format!("namespace/{ns}")),
            "{namespaces}"
        );
    }
    kubectl_stdin(
        kc,
        &["create", "--validate=false", "-f", "-"],
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: scratch\n",
    );
    stdout_of(kc, &["delete", "namespace", "scratch", "--wait=false"]);
    assert_eq!(
        stdout_of(
            kc,
            &["get", "ns", "scratch", "-o", "jsonpath={.status.phase}"]
        ),
        "Terminating"
    );
}
