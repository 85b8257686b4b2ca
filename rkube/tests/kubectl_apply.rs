//! Stock kubectl's write paths on `rkube up`: apply (created, unchanged, configured),
//! label, annotate, patch of all three types, scale, edit, diff and `--dry-run=server`,
//! with the client-side schema validation that needs our OpenAPI.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{RkubeUp, stdout_of};

fn with_stdin(kubeconfig: &Path, args: &[&str], stdin: &str, envs: &[(&str, &str)]) -> Output {
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .env_remove("KUBECONFIG")
        .envs(envs.iter().copied())
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
    child.wait_with_output().unwrap()
}

fn ok(kubeconfig: &Path, args: &[&str], stdin: &str) -> String {
    let output = with_stdin(kubeconfig, args, stdin, &[]);
    assert!(
        output.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn deployment(image: &str, replicas: u32) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: {replicas}\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      containers:\n      - name: nginx\n        image: {image}\n        ports: [{{containerPort: 80}}]\n"
    )
}

#[test]
fn apply_patch_scale_and_edit_through_kubectl() {
    let up = RkubeUp::start();
    let kc = &up.kubeconfig;
    assert_eq!(
        ok(kc, &["apply", "-f", "-"], &deployment("nginx:1.27", 2)).trim(),
        "deployment.apps/web created"
    );
    assert_eq!(
        ok(kc, &["apply", "-f", "-"], &deployment("nginx:1.27", 2)).trim(),
        "deployment.apps/web unchanged"
    );
    assert_eq!(
        ok(kc, &["apply", "-f", "-"], &deployment("nginx:1.28", 2)).trim(),
        "deployment.apps/web configured"
    );
    let image = stdout_of(
        kc,
        &[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image} {.metadata.generation}",
        ],
    );
    assert_eq!(
        image, "nginx:1.28 2",
        "apply changed the image and bumped the generation"
    );
    // Upstream's defaults are filled in.
    let defaults = stdout_of(
        kc,
        &[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.strategy.type} {.spec.template.spec.restartPolicy}",
        ],
    );
    assert_eq!(defaults, "RollingUpdate Always");

    // An invalid Deployment is refused with upstream's message.
    let bad = with_stdin(
        kc,
        &["apply", "-f", "-"],
        &deployment("nginx", 1).replace("matchLabels: {app: web}", "matchLabels: {app: other}"),
        &[],
    );
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr)
            .contains("`selector` does not match template `labels`"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );

    assert_eq!(
        stdout_of(kc, &["label", "deploy", "web", "tier=front"]).trim(),
        "deployment.apps/web labeled"
    );
    assert_eq!(
        stdout_of(kc, &["annotate", "deploy", "web", "note=hi"]).trim(),
        "deployment.apps/web annotated"
    );
    stdout_of(
        kc,
        &[
            "patch",
            "deploy",
            "web",
            "--type=merge",
            "-p",
            r#"{"metadata":{"labels":{"extra":"yes"}}}"#,
        ],
    );
    stdout_of(
        kc,
        &[
            "patch",
            "deploy",
            "web",
            "--type=json",
            "-p",
            r#"[{"op":"replace","path":"/spec/replicas","value":5}]"#,
        ],
    );
    stdout_of(
        kc,
        &[
            "patch",
            "deploy",
            "web",
            "-p",
            r#"{"spec":{"template":{"spec":{"containers":[{"name":"nginx","image":"nginx:1.29"}]}}}}"#,
        ],
    );
    let patched = stdout_of(
        kc,
        &[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.metadata.labels.tier} {.metadata.labels.extra} {.spec.replicas} {.spec.template.spec.containers[0].image} {.spec.template.spec.containers[0].ports[0].containerPort}",
        ],
    );
    assert_eq!(
        patched, "front yes 5 nginx:1.29 80",
        "the strategic merge kept the container's ports"
    );

    assert_eq!(
        stdout_of(kc, &["scale", "deploy", "web", "--replicas=3"]).trim(),
        "deployment.apps/web scaled"
    );
    assert_eq!(
        stdout_of(
            kc,
            &["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]
        ),
        "3"
    );

    let edited = with_stdin(
        kc,
        &["edit", "deploy", "web"],
        "",
        &[("KUBE_EDITOR", "sed -i s/replicas:\\ 3/replicas:\\ 4/")],
    );
    assert!(
        edited.status.success(),
        "{}",
        String::from_utf8_lossy(&edited.stderr)
    );
    assert_eq!(
        stdout_of(
            kc,
            &["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]
        ),
        "4"
    );

    // Server-side dry run changes nothing; diff reports the difference (exit 1).
    ok(
        kc,
        &["apply", "--dry-run=server", "-f", "-"],
        &deployment("nginx:9.9", 4),
    );
    assert_eq!(
        stdout_of(
            kc,
            &[
                "get",
                "deploy",
                "web",
                "-o",
                "jsonpath={.spec.template.spec.containers[0].image}"
            ]
        ),
        "nginx:1.29"
    );
    let diff = with_stdin(kc, &["diff", "-f", "-"], &deployment("nginx:9.9", 4), &[]);
    assert_eq!(
        diff.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&diff.stderr)
    );
    let diff_text = String::from_utf8_lossy(&diff.stdout);
    assert!(
        diff_text
            .lines()
            .any(|l| l.starts_with('+') && l.contains("image: nginx:9.9")),
        "{diff_text}"
    );

    assert_eq!(
        stdout_of(kc, &["delete", "deploy", "web"]).trim(),
        r#"deployment.apps "web" deleted"#
    );
}
