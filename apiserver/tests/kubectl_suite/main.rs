//! The kubectl integration suite: the real `kube-apiserver`, on the embedded store and
//! on a real etcd, driven by stock kubectl (the one on PATH and the `kubectl.1.31` and
//! `kubectl.1.33` shipped beside it) through what people do every day: discovery,
//! create/get/describe/edit/label/annotate/patch/replace/delete of namespaces,
//! ConfigMaps, Secrets, Services, Deployments, Pods and Nodes, every `get` output
//! format and list option, watch, apply, diff, server-side dry run, wait, explain and
//! scale. Each test is one (store, kubectl) pair running every step in order.

mod conversion;
mod crds;
mod harness;
mod server_side_apply;

use std::io::{BufRead, BufReader};
use std::time::Duration;

use harness::{Kubectl, Server, Store};

async fn suite(store: Store, kubectl_name: &'static str) {
    let server = Server::start(store).await;
    let kubectl = Kubectl::new(kubectl_name, &server.kubeconfig);
    let steps = tokio::task::spawn_blocking(move || {
        discovery(&kubectl);
        create_from_manifests(&kubectl);
        get_output_formats(&kubectl);
        list_options(&kubectl);
        watch(&kubectl);
        imperative_create_and_binding(&kubectl);
        drain_eviction_and_metrics(&kubectl);
        describe(&kubectl);
        every_write_verb_on_every_kind(&kubectl);
        label_annotate_patch_replace_edit(&kubectl);
        apply_diff_dry_run_scale_wait(&kubectl);
        explain(&kubectl);
        invalid_input(&kubectl);
        delete(&kubectl);
    });
    steps.await.unwrap();
    if let Some(etcd) = &server.etcd {
        objects_live_in_etcd_under_upstream_keys(etcd).await;
    }
}

/// CRDs and their custom resources, on each store with the kubectl on PATH.
async fn custom_resources(store: Store) {
    let server = Server::start(store).await;
    let kubectl = Kubectl::new("kubectl", &server.kubeconfig);
    let webhook = conversion::start_webhook().await;
    tokio::task::spawn_blocking(move || {
        crds::custom_resources(&kubectl);
        crds::two_versions(&kubectl);
        conversion::webhook_conversion(&kubectl, &webhook);
    })
    .await
    .unwrap();
}

/// Server-side apply on built-in kinds and custom resources.
async fn server_side_apply_suite(store: Store) {
    let server = Server::start(store).await;
    let kubectl = Kubectl::new("kubectl", &server.kubeconfig);
    tokio::task::spawn_blocking(move || {
        server_side_apply::every_built_in_kind_round_trips(&kubectl);
        server_side_apply::conflicts_force_and_pruning(&kubectl);
        server_side_apply::client_side_then_server_side(&kubectl);
        server_side_apply::custom_resources(&kubectl);
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_on_the_embedded_store() {
    server_side_apply_suite(Store::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_on_etcd() {
    server_side_apply_suite(Store::Etcd).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_resources_on_the_embedded_store() {
    custom_resources(Store::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_resources_on_etcd() {
    custom_resources(Store::Etcd).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_store_with_kubectl_on_path() {
    suite(Store::Embedded, "kubectl").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_store_with_kubectl_1_31() {
    suite(Store::Embedded, "kubectl.1.31").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_store_with_kubectl_1_33() {
    suite(Store::Embedded, "kubectl.1.33").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_with_kubectl_on_path() {
    suite(Store::Etcd, "kubectl").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_with_kubectl_1_31() {
    suite(Store::Etcd, "kubectl.1.31").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_with_kubectl_1_33() {
    suite(Store::Etcd, "kubectl.1.33").await;
}

const NS: &str = "suite";

/// One of each kind the suite drives, in the `suite` namespace (the Node is cluster-scoped).
const MANIFESTS: &str = r#"
apiVersion: v1
kind: Namespace
metadata:
  name: suite
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: suite
  labels: {app: web, rank: "2"}
data:
  mode: fast
---
apiVersion: v1
kind: Secret
metadata:
  name: token
  namespace: suite
type: Opaque
stringData:
  password: hunter2
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: suite
spec:
  selector: {app: web}
  ports:
  - port: 80
    targetPort: 8080
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: suite
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: nginx
        image: nginx:1.27
        ports: [{containerPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata:
  name: runner
  namespace: suite
  labels: {app: web}
spec:
  nodeName: node-a
  containers:
  - name: main
    image: busybox:1.36
    command: ["sleep", "3600"]
---
apiVersion: v1
kind: Node
metadata:
  name: node-a
  labels: {kubernetes.io/hostname: node-a}
status:
  capacity: {cpu: "2", memory: 4Gi, pods: "110"}
"#;

fn discovery(kubectl: &Kubectl) {
    let version: serde_json::Value =
        serde_json::from_str(&kubectl.ok(&["version", "-o", "json"])).unwrap();
    let server = version["serverVersion"]["gitVersion"].as_str().unwrap();
    assert!(server.starts_with("v1.33."), "{version}");

    let resources = kubectl.ok(&["api-resources"]);
    let row = |name: &str| {
        resources
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("{name} missing from api-resources:\n{resources}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        row("deployments"),
        ["deployments", "deploy", "apps/v1", "true", "Deployment"]
    );
    assert_eq!(row("nodes"), ["nodes", "no", "v1", "false", "Node"]);

    let versions = kubectl.ok(&["api-versions"]);
    for group_version in ["v1", "apps/v1", "batch/v1", "rbac.authorization.k8s.io/v1"] {
        assert!(versions.lines().any(|l| l == group_version), "{versions}");
    }
}

fn create_from_manifests(kubectl: &Kubectl) {
    let created = kubectl.ok_with(&["create", "-f", "-"], MANIFESTS);
    let lines: Vec<&str> = created.lines().collect();
    assert_eq!(
        lines,
        [
            "namespace/suite created",
            "configmap/settings created",
            "secret/token created",
            "service/web created",
            "deployment.apps/web created",
            "pod/runner created",
            "node/node-a created",
        ]
    );
    // Creating the same object twice is AlreadyExists with upstream's message.
    let again = kubectl.fails(&["create", "-f", "-"], MANIFESTS);
    assert!(
        again.contains(r#"configmaps "settings" already exists"#),
        "{again}"
    );
}

fn get_output_formats(kubectl: &Kubectl) {
    let json: serde_json::Value =
        serde_json::from_str(&kubectl.ok(&["get", "cm", "settings", "-n", NS, "-o", "json"]))
            .unwrap();
    assert_eq!(json["data"]["mode"], "fast");
    assert_eq!(json["metadata"]["namespace"], NS);
    assert!(json["metadata"]["uid"].is_string());

    let yaml = kubectl.ok(&["get", "secret", "token", "-n", NS, "-o", "yaml"]);
    assert!(yaml.contains("kind: Secret"), "{yaml}");
    assert!(
        yaml.contains("password: aHVudGVyMg=="),
        "stringData is folded into data: {yaml}"
    );

    let names = kubectl.ok(&["get", "deploy,svc,pods", "-n", NS, "-o", "name"]);
    assert_eq!(
        names.lines().collect::<Vec<_>>(),
        ["deployment.apps/web", "service/web", "pod/runner"]
    );

    let wide = kubectl.ok(&["get", "pods", "-n", NS, "-o", "wide"]);
    let header: Vec<&str> = wide.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "READY",
            "STATUS",
            "RESTARTS",
            "AGE",
            "IP",
            "NODE",
            "NOMINATED",
            "NODE",
            "READINESS",
            "GATES"
        ],
        "{wide}"
    );
    let runner: Vec<&str> = wide.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(runner[0], "runner");
    assert_eq!(runner[1], "0/1");
    assert_eq!(runner[2], "Pending");
    assert_eq!(runner[6], "node-a", "{wide}");

    let wide = kubectl.ok(&["get", "deploy", "-n", NS, "-o", "wide"]);
    let lines: Vec<Vec<&str>> = wide
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines[0],
        [
            "NAME",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ]
    );
    assert_eq!(lines[1][0], "web");
    assert_eq!(lines[1][1], "0/2");
    assert_eq!(&lines[1][5..], ["nginx", "nginx:1.27", "app=web"]);

    let services = kubectl.ok(&["get", "svc", "web", "-n", NS, "-o", "wide"]);
    let row: Vec<&str> = services
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(row[0], "web");
    assert_eq!(row[1], "ClusterIP");
    assert!(row[2].starts_with("10."), "{services}");
    assert_eq!(row[4], "80/TCP");
    assert_eq!(row[6], "app=web");

    let nodes = kubectl.ok(&["get", "nodes"]);
    let header: Vec<&str> = nodes.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "STATUS", "ROLES", "AGE", "VERSION"],
        "{nodes}"
    );

    assert_eq!(
        kubectl.jsonpath(
            &["pod", "runner", "-n", NS],
            "{.spec.containers[0].image} {.spec.nodeName}"
        ),
        "busybox:1.36 node-a"
    );
    let columns = kubectl.ok(&[
        "get",
        "pods",
        "-n",
        NS,
        "-o",
        "custom-columns=NAME:.metadata.name,IMAGE:.spec.containers[0].image,NODE:.spec.nodeName",
    ]);
    assert_eq!(
        columns
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .collect::<Vec<_>>(),
        [
            ["NAME", "IMAGE", "NODE"],
            ["runner", "busybox:1.36", "node-a"]
        ]
    );
}

fn list_options(kubectl: &Kubectl) {
    // Three more ConfigMaps whose `rank` label orders them unlike their names.
    for (name, rank) in [("alpha", "3"), ("beta", "1"), ("gamma", "4")] {
        kubectl.ok_with(&["create", "-f", "-"], &configmap(name, rank));
    }
    let sorted = kubectl.ok(&[
        "get",
        "cm",
        "-n",
        NS,
        "-l",
        "rank",
        "--sort-by=.metadata.labels.rank",
        "-o",
        "name",
    ]);
    assert_eq!(
        sorted.lines().collect::<Vec<_>>(),
        [
            "configmap/beta",
            "configmap/settings",
            "configmap/alpha",
            "configmap/gamma"
        ]
    );

    let chunked = kubectl.ok(&[
        "get",
        "cm",
        "-n",
        NS,
        "-l",
        "rank",
        "--chunk-size=1",
        "-o",
        "name",
    ]);
    assert_eq!(chunked.lines().count(), 4, "{chunked}");

    let everywhere = kubectl.ok(&["get", "pods", "-A"]);
    let header: Vec<&str> = everywhere
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(header[..2], ["NAMESPACE", "NAME"], "{everywhere}");
    assert!(
        everywhere
            .lines()
            .any(|l| l.split_whitespace().take(2).eq([NS, "runner"])),
        "{everywhere}"
    );

    assert_eq!(
        kubectl
            .ok(&["get", "cm", "-n", NS, "-l", "app=web", "-o", "name"])
            .trim(),
        "configmap/settings"
    );
    assert_eq!(
        kubectl
            .ok(&["get", "cm", "-n", NS, "-l", "rank in (1,4)", "-o", "name"])
            .lines()
            .collect::<Vec<_>>(),
        ["configmap/beta", "configmap/gamma"]
    );
    assert_eq!(
        kubectl
            .ok(&[
                "get",
                "pods",
                "-A",
                "--field-selector",
                "spec.nodeName=node-a",
                "-o",
                "name"
            ])
            .trim(),
        "pod/runner"
    );
    assert_eq!(
        kubectl
            .ok(&[
                "get",
                "pods",
                "-n",
                NS,
                "--field-selector",
                "status.phase=Running",
                "-o",
                "name"
            ])
            .trim(),
        ""
    );
    let unsupported = kubectl.fails(
        &["get", "pods", "-n", NS, "--field-selector", "spec.image=x"],
        "",
    );
    assert!(
        unsupported.contains(r#"field label not supported: spec.image"#),
        "{unsupported}"
    );
}

fn configmap(name: &str, rank: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {NS}\n  labels: {{rank: \"{rank}\"}}\ndata:\n  k: v\n"
    )
}

fn watch(kubectl: &Kubectl) {
    let mut child = kubectl.spawn(&["get", "cm", "-n", NS, "--watch-only", "-o", "name"]);
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The watch may start after our first create; create until an event arrives.
    let mut seen = None;
    for attempt in 0..20 {
        kubectl.ok_with(
            &["create", "-f", "-"],
            &configmap(&format!("watched-{attempt}"), "9"),
        );
        if let Ok(line) = rx.recv_timeout(Duration::from_secs(1)) {
            seen = Some(line);
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let line = seen.expect("kubectl get -w saw no event");
    assert!(line.starts_with("configmap/watched-"), "{line}");
}

/// kubectl's imperative commands send protobuf bodies (client-go's typed clients do);
/// a pod is then bound to a node through the binding subresource, as the scheduler does.
fn imperative_create_and_binding(kubectl: &Kubectl) {
    for (args, said) in [
        (
            vec!["create", "configmap", "imp-cm", "--from-literal=k=v"],
            "configmap/imp-cm created",
        ),
        (
            vec![
                "create",
                "secret",
                "generic",
                "imp-secret",
                "--from-literal=p=x",
            ],
            "secret/imp-secret created",
        ),
        (
            vec![
                "create",
                "deployment",
                "imp-deploy",
                "--image=nginx:1.27",
                "--replicas=0",
            ],
            "deployment.apps/imp-deploy created",
        ),
        (
            vec!["create", "service", "clusterip", "imp-svc", "--tcp=80:8080"],
            "service/imp-svc created",
        ),
        (
            vec!["create", "serviceaccount", "imp-sa"],
            "serviceaccount/imp-sa created",
        ),
        (
            vec!["run", "imp-pod", "--image=busybox:1.36"],
            "pod/imp-pod created",
        ),
    ] {
        let mut all = args.clone();
        all.extend(["-n", NS]);
        assert_eq!(kubectl.ok(&all).trim(), said);
    }
    assert_eq!(
        kubectl.ok(&["create", "namespace", "imp-ns"]).trim(),
        "namespace/imp-ns created"
    );
    assert_eq!(
        kubectl.jsonpath(&["cm", "imp-cm", "-n", NS], "{.data.k}"),
        "v"
    );
    assert_eq!(
        kubectl.jsonpath(&["secret", "imp-secret", "-n", NS], "{.data.p} {.type}"),
        "eA== Opaque"
    );
    assert_eq!(
        kubectl.jsonpath(
            &["deploy", "imp-deploy", "-n", NS],
            "{.spec.replicas} {.spec.template.spec.containers[0].image}"
        ),
        "0 nginx:1.27",
        "an explicit zero survives protobuf"
    );
    assert_eq!(
        kubectl.jsonpath(
            &["svc", "imp-svc", "-n", NS],
            "{.spec.ports[0].port} {.spec.ports[0].targetPort} {.spec.type}"
        ),
        "80 8080 ClusterIP"
    );
    assert_eq!(
        kubectl.jsonpath(&["namespace", "imp-ns"], "{.status.phase}"),
        "Active"
    );

    let binding = r#"{"apiVersion":"v1","kind":"Binding","metadata":{"name":"imp-pod"},"target":{"kind":"Node","name":"node-a"}}"#;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("binding.json");
    std::fs::write(&file, binding).unwrap();
    let path = format!("/api/v1/namespaces/{NS}/pods/imp-pod/binding");
    let bound = kubectl.ok(&["create", "--raw", &path, "-f", file.to_str().unwrap()]);
    assert!(bound.contains(r#""status":"Success""#), "{bound}");
    assert_eq!(
        kubectl.jsonpath(
            &["pod", "imp-pod", "-n", NS],
            "{.spec.nodeName} {.status.conditions[0].type}={.status.conditions[0].status}"
        ),
        "node-a PodScheduled=True"
    );
    let again = kubectl.fails(
        &["create", "--raw", &path, "-f", file.to_str().unwrap()],
        "",
    );
    assert!(
        again.contains(r#"pod imp-pod is already assigned to node \"node-a\""#)
            || again.contains("already assigned to node"),
        "{again}"
    );
}

/// A node and a running pod on it, for `kubectl drain`.
const DRAINED_NODE: &str = r#"
apiVersion: v1
kind: Node
metadata:
  name: node-b
status:
  capacity: {cpu: "2", memory: 4Gi, pods: "110"}
---
apiVersion: v1
kind: Pod
metadata:
  name: evictee
  namespace: suite
  labels: {app: evictee}
spec:
  nodeName: node-b
  containers:
  - name: main
    image: busybox:1.36
"#;

/// `kubectl drain` cordons the node and evicts its pods through `pods/eviction`, which
/// a PodDisruptionBudget with no disruptions left refuses; `/metrics` counted it all.
fn drain_eviction_and_metrics(kubectl: &Kubectl) {
    kubectl.ok_with(&["create", "-f", "-"], DRAINED_NODE);
    kubectl.ok(&[
        "patch",
        "pod",
        "evictee",
        "-n",
        NS,
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"}]}}"#,
    ]);
    assert_eq!(
        kubectl
            .ok(&[
                "create",
                "pdb",
                "evictee",
                "-n",
                NS,
                "--selector=app=evictee",
                "--min-available=1",
            ])
            .trim(),
        "poddisruptionbudget.policy/evictee created"
    );
    let drain = [
        "drain",
        "node-b",
        "--force",
        "--grace-period=0",
        "--timeout=3s",
    ];
    let refused = kubectl.fails(&drain, "");
    assert!(
        refused.contains("Cannot evict pod as it would violate the pod's disruption budget."),
        "{refused}"
    );
    assert_eq!(
        kubectl.jsonpath(&["node", "node-b"], "{.spec.unschedulable}"),
        "true",
        "drain cordons first"
    );
    assert_eq!(
        kubectl.jsonpath(&["pod", "evictee", "-n", NS], "{.metadata.name}"),
        "evictee"
    );
    kubectl.ok(&["delete", "pdb", "evictee", "-n", NS]);
    let drained = kubectl.ok(&[
        "drain",
        "node-b",
        "--force",
        "--grace-period=0",
        "--timeout=30s",
    ]);
    assert!(drained.contains("pod/evictee evicted"), "{drained}");
    assert!(drained.contains("node/node-b drained"), "{drained}");
    let gone = kubectl.fails(&["get", "pod", "evictee", "-n", NS], "");
    assert!(gone.contains(r#"pods "evictee" not found"#), "{gone}");
    kubectl.ok(&["delete", "node", "node-b"]);

    let metrics = kubectl.ok(&["get", "--raw", "/metrics"]);
    for expected in [
        r#"apiserver_request_total{code="429",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="eviction",verb="POST",version="v1"}"#,
        r#"apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="eviction",verb="POST",version="v1"} 1"#,
        r#"apiserver_request_duration_seconds_bucket{component="apiserver",dry_run="",group="policy",resource="poddisruptionbudgets",scope="namespace",subresource="",verb="POST",version="v1",le="60"} 1"#,
    ] {
        assert!(metrics.contains(expected), "{expected} not in {metrics}");
    }
}

fn describe(kubectl: &Kubectl) {
    let pod = kubectl.ok(&["describe", "pod", "runner", "-n", NS]);
    for expected in [
        "Name:",
        "runner",
        "Namespace:",
        "Node:",
        "node-a",
        "Status:",
        "Pending",
        "busybox:1.36",
        "QoS Class:",
        "BestEffort",
    ] {
        assert!(pod.contains(expected), "{expected} missing:\n{pod}");
    }
    let deployment = kubectl.ok(&["describe", "deployment", "web", "-n", NS]);
    for expected in [
        "Selector:",
        "app=web",
        "Replicas:",
        "2 desired",
        "StrategyType:",
        "RollingUpdate",
        "nginx:1.27",
    ] {
        assert!(
            deployment.contains(expected),
            "{expected} missing:\n{deployment}"
        );
    }
    let service = kubectl.ok(&["describe", "service", "web", "-n", NS]);
    for expected in [
        "Selector:",
        "app=web",
        "Type:",
        "ClusterIP",
        "TargetPort:",
        "8080/TCP",
    ] {
        assert!(service.contains(expected), "{expected} missing:\n{service}");
    }
    let node = kubectl.ok(&["describe", "node", "node-a"]);
    for expected in [
        "Name:",
        "node-a",
        "Capacity:",
        "memory:",
        "4Gi",
        "Non-terminated Pods:",
        "runner",
    ] {
        assert!(node.contains(expected), "{expected} missing:\n{node}");
    }
    let secret = kubectl.ok(&["describe", "secret", "token", "-n", NS]);
    assert!(secret.contains("password:  7 bytes"), "{secret}");
    let configmap = kubectl.ok(&["describe", "cm", "settings", "-n", NS]);
    assert!(
        configmap.contains("mode:") && configmap.contains("fast"),
        "{configmap}"
    );
    let namespace = kubectl.ok(&["describe", "namespace", NS]);
    assert!(namespace.contains("Status:       Active"), "{namespace}");
}

/// label, annotate, the three patch types, edit and replace on each of the seven kinds.
fn every_write_verb_on_every_kind(kubectl: &Kubectl) {
    let objects: [(&str, &str, &str); 7] = [
        ("namespace", "suite", "namespace/suite"),
        ("configmap", "settings", "configmap/settings"),
        ("secret", "token", "secret/token"),
        ("service", "web", "service/web"),
        ("deployment", "web", "deployment.apps/web"),
        ("pod", "runner", "pod/runner"),
        ("node", "node-a", "node/node-a"),
    ];
    for (kind, name, shown) in objects {
        // `kubectl VERB KIND NAME ARGS... [-n suite]`
        let target = |verb: &str, args: &[&str]| -> Vec<String> {
            let mut all = vec![verb.to_owned(), kind.to_owned(), name.to_owned()];
            all.extend(args.iter().map(|a| (*a).to_owned()));
            if kind != "namespace" && kind != "node" {
                all.extend(["-n".to_owned(), NS.to_owned()]);
            }
            all
        };
        let run = |verb: &str, args: &[&str]| kubectl.ok(&target(verb, args)).trim().to_owned();
        let stage = || run("get", &["-o", "jsonpath={.metadata.annotations.stage}"]);
        assert_eq!(run("label", &["verb-test=yes"]), format!("{shown} labeled"));
        assert_eq!(
            run("annotate", &["stage=annotated"]),
            format!("{shown} annotated")
        );
        assert_eq!(stage(), "annotated", "{shown}");
        assert_eq!(
            run(
                "patch",
                &[
                    "--type=merge",
                    "-p",
                    r#"{"metadata":{"annotations":{"stage":"merged"}}}"#
                ]
            ),
            format!("{shown} patched")
        );
        assert_eq!(stage(), "merged", "{shown}");
        run(
            "patch",
            &[
                "--type=json",
                "-p",
                r#"[{"op":"replace","path":"/metadata/annotations/stage","value":"json"}]"#,
            ],
        );
        assert_eq!(stage(), "json", "{shown}");
        run(
            "patch",
            &[
                "-p",
                r#"{"metadata":{"annotations":{"stage":"strategic"}}}"#,
            ],
        );
        assert_eq!(stage(), "strategic", "{shown}");

        let edited = kubectl.run_with(
            &target("edit", &[]),
            "",
            &[(
                "KUBE_EDITOR",
                "sed -i s/stage:\\ strategic/stage:\\ edited/",
            )],
        );
        assert!(
            edited.status.success(),
            "{shown}: {}",
            String::from_utf8_lossy(&edited.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&edited.stdout).trim(),
            format!("{shown} edited")
        );
        assert_eq!(stage(), "edited", "{shown}");

        let manifest = run("get", &["-o", "yaml"]).replace("stage: edited", "stage: replaced");
        assert_eq!(
            kubectl.ok_with(&["replace", "-f", "-"], &manifest).trim(),
            format!("{shown} replaced")
        );
        assert_eq!(stage(), "replaced", "{shown}");
        assert_eq!(
            run("get", &["-o", "jsonpath={.metadata.labels.verb-test}"]),
            "yes",
            "{shown}"
        );
    }
}

fn label_annotate_patch_replace_edit(kubectl: &Kubectl) {
    assert_eq!(
        kubectl
            .ok(&["label", "pod", "runner", "-n", NS, "tier=batch"])
            .trim(),
        "pod/runner labeled"
    );
    assert_eq!(
        kubectl.ok(&["label", "node", "node-a", "zone=a"]).trim(),
        "node/node-a labeled"
    );
    assert_eq!(
        kubectl
            .ok(&["annotate", "svc", "web", "-n", NS, "owner=team-a"])
            .trim(),
        "service/web annotated"
    );
    let clash = kubectl.fails(&["label", "pod", "runner", "-n", NS, "tier=web"], "");
    assert!(
        clash.contains("'tier' already has a value (batch)"),
        "{clash}"
    );
    kubectl.ok(&[
        "label",
        "pod",
        "runner",
        "-n",
        NS,
        "tier=web",
        "--overwrite",
    ]);
    assert_eq!(
        kubectl.jsonpath(&["pod", "runner", "-n", NS], "{.metadata.labels.tier}"),
        "web"
    );
    assert_eq!(
        kubectl.jsonpath(&["svc", "web", "-n", NS], "{.metadata.annotations.owner}"),
        "team-a"
    );

    // The three patch types.
    assert_eq!(
        kubectl
            .ok(&[
                "patch",
                "cm",
                "settings",
                "-n",
                NS,
                "--type=merge",
                "-p",
                r#"{"data":{"extra":"1"}}"#
            ])
            .trim(),
        "configmap/settings patched"
    );
    kubectl.ok(&[
        "patch",
        "cm",
        "settings",
        "-n",
        NS,
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/data/mode","value":"slow"}]"#,
    ]);
    kubectl.ok(&[
        "patch",
        "deploy",
        "web",
        "-n",
        NS,
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"nginx","image":"nginx:1.28"}]}}}}"#,
    ]);
    assert_eq!(
        kubectl.jsonpath(&["cm", "settings", "-n", NS], "{.data.mode} {.data.extra}"),
        "slow 1"
    );
    assert_eq!(
        kubectl.jsonpath(
            &["deploy", "web", "-n", NS],
            "{.spec.template.spec.containers[0].image} {.spec.template.spec.containers[0].ports[0].containerPort} {.metadata.generation}"
        ),
        "nginx:1.28 8080 2",
        "the strategic merge kept the ports and bumped the generation"
    );
    let unchanged = kubectl.ok(&[
        "patch",
        "cm",
        "settings",
        "-n",
        NS,
        "--type=merge",
        "-p",
        r#"{"data":{"extra":"1"}}"#,
    ]);
    assert_eq!(unchanged.trim(), "configmap/settings patched (no change)");

    // Replace with a whole new object.
    let replaced = kubectl.ok_with(
        &["replace", "-f", "-"],
        &format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: {NS}\n  labels: {{app: web, rank: \"2\"}}\ndata:\n  mode: replaced\n"),
    );
    assert_eq!(replaced.trim(), "configmap/settings replaced");
    assert_eq!(
        kubectl.jsonpath(&["cm", "settings", "-n", NS], "{.data}"),
        r#"{"mode":"replaced"}"#
    );

    // Edit through KUBE_EDITOR, as a person with an editor would.
    let edited = kubectl.run_with(
        &["edit", "cm", "settings", "-n", NS],
        "",
        &[("KUBE_EDITOR", "sed -i s/mode:\\ replaced/mode:\\ edited/")],
    );
    assert!(
        edited.status.success(),
        "{}",
        String::from_utf8_lossy(&edited.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&edited.stdout).trim(),
        "configmap/settings edited"
    );
    assert_eq!(
        kubectl.jsonpath(&["cm", "settings", "-n", NS], "{.data.mode}"),
        "edited"
    );
}

fn deployment(name: &str, image: &str, replicas: u32) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: {NS}\nspec:\n  replicas: {replicas}\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      containers:\n      - name: app\n        image: {image}\n"
    )
}

fn apply_diff_dry_run_scale_wait(kubectl: &Kubectl) {
    let apply = |manifest: &str| {
        kubectl
            .ok_with(&["apply", "-f", "-"], manifest)
            .trim()
            .to_owned()
    };
    assert_eq!(
        apply(&deployment("api", "app:1", 1)),
        "deployment.apps/api created"
    );
    assert_eq!(
        apply(&deployment("api", "app:1", 1)),
        "deployment.apps/api unchanged"
    );
    assert_eq!(
        apply(&deployment("api", "app:2", 1)),
        "deployment.apps/api configured"
    );
    assert_eq!(
        kubectl.jsonpath(&["deploy", "api", "-n", NS], "{.spec.template.spec.containers[0].image} {.spec.strategy.type} {.spec.template.spec.restartPolicy}"),
        "app:2 RollingUpdate Always",
        "applied, with upstream's defaults filled in"
    );

    // diff shows the change (exit 1) and changes nothing.
    let diff = kubectl.run_with(&["diff", "-f", "-"], &deployment("api", "app:3", 1), &[]);
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
            .any(|l| l.starts_with('+') && l.contains("image: app:3")),
        "{diff_text}"
    );
    // A server-side dry run is validated and defaulted but stores nothing.
    let dry = kubectl.ok_with(
        &["apply", "--dry-run=server", "-f", "-"],
        &deployment("api", "app:4", 1),
    );
    assert_eq!(
        dry.trim(),
        "deployment.apps/api configured (server dry run)"
    );
    let dry = kubectl.ok_with(
        &["create", "--dry-run=server", "-f", "-"],
        &deployment("ghost", "app:1", 1),
    );
    assert_eq!(dry.trim(), "deployment.apps/ghost created (server dry run)");
    assert!(
        !kubectl
            .run(&["get", "deploy", "ghost", "-n", NS])
            .status
            .success()
    );
    assert_eq!(
        kubectl.jsonpath(
            &["deploy", "api", "-n", NS],
            "{.spec.template.spec.containers[0].image}"
        ),
        "app:2"
    );

    assert_eq!(
        kubectl
            .ok(&["scale", "deploy", "api", "-n", NS, "--replicas=3"])
            .trim(),
        "deployment.apps/api scaled"
    );
    assert_eq!(
        kubectl.jsonpath(&["deploy", "api", "-n", NS], "{.spec.replicas}"),
        "3"
    );
    let stale = kubectl.fails(
        &[
            "scale",
            "deploy",
            "api",
            "-n",
            NS,
            "--current-replicas=1",
            "--replicas=5",
        ],
        "",
    );
    assert!(
        stale.contains("Expected replicas to be 1, was 3"),
        "{stale}"
    );

    let waited = kubectl.ok(&[
        "wait",
        "deploy/api",
        "-n",
        NS,
        "--for=jsonpath={.spec.replicas}=3",
        "--timeout=20s",
    ]);
    assert_eq!(waited.trim(), "deployment.apps/api condition met");
    // A wait that cannot be met times out.
    let timeout = kubectl.fails(
        &[
            "wait",
            "pod/runner",
            "-n",
            NS,
            "--for=jsonpath={.status.phase}=Running",
            "--timeout=1s",
        ],
        "",
    );
    assert!(
        timeout.contains("timed out waiting for the condition"),
        "{timeout}"
    );
}

fn explain(kubectl: &Kubectl) {
    let explained = kubectl.ok(&["explain", "deployment.spec.replicas"]);
    assert!(explained.contains("KIND:       Deployment"), "{explained}");
    assert!(explained.contains("replicas <integer>"), "{explained}");
    assert!(explained.contains("Number of desired pods"), "{explained}");
    let explained = kubectl.ok(&["explain", "pods.spec.containers.image"]);
    assert!(explained.contains("image <string>"), "{explained}");
}

fn invalid_input(kubectl: &Kubectl) {
    let bad_selector = deployment("broken", "app:1", 1)
        .replace("matchLabels: {app: broken}", "matchLabels: {app: other}");
    let refused = kubectl.fails(&["create", "-f", "-"], &bad_selector);
    assert!(
        refused.contains(r#"The Deployment "broken" is invalid"#)
            && refused.contains("`selector` does not match template `labels`"),
        "{refused}"
    );
    let bad_name = configmap("Not_A_Name", "1");
    let refused = kubectl.fails(&["create", "-f", "-"], &bad_name);
    assert!(
        refused.contains(
            r#"ConfigMap "Not_A_Name" is invalid: metadata.name: Invalid value: "Not_A_Name""#
        ),
        "{refused}"
    );
    let missing_namespace = kubectl.fails(
        &["create", "-n", "nowhere", "-f", "-"],
        &configmap("x", "1").replace(&format!("  namespace: {NS}\n"), ""),
    );
    assert!(
        missing_namespace.contains(r#"namespaces "nowhere" not found"#),
        "{missing_namespace}"
    );
    let unknown = kubectl.fails(&["get", "widgets"], "");
    assert!(
        unknown.contains(r#"the server doesn't have a resource type "widgets""#),
        "{unknown}"
    );
}

fn delete(kubectl: &Kubectl) {
    assert_eq!(
        kubectl.ok(&["delete", "cm", "settings", "-n", NS]).trim(),
        r#"configmap "settings" deleted"#
    );
    let gone = kubectl.fails(&["get", "cm", "settings", "-n", NS], "");
    assert!(
        gone.contains(r#"configmaps "settings" not found"#),
        "{gone}"
    );
    for (kind, name, message) in [
        ("secret", "token", r#"secret "token" deleted"#),
        ("service", "web", r#"service "web" deleted"#),
        ("deployment", "web", r#"deployment.apps "web" deleted"#),
        ("pod", "runner", r#"pod "runner" deleted"#),
    ] {
        let said = kubectl.ok(&["delete", kind, name, "-n", NS, "--wait=false"]);
        assert_eq!(said.trim(), message);
    }
    let said = kubectl.ok(&["delete", "cm", "-n", NS, "-l", "rank"]);
    assert!(
        said.lines().any(|l| l == r#"configmap "alpha" deleted"#),
        "{said}"
    );
    assert_eq!(
        kubectl
            .ok(&["get", "cm", "-n", NS, "-l", "rank", "-o", "name"])
            .trim(),
        ""
    );
    assert_eq!(
        kubectl.ok(&["delete", "node", "node-a"]).trim(),
        r#"node "node-a" deleted"#
    );

    // Deleting a namespace leaves it Terminating until the namespace controller empties it.
    kubectl.ok(&["delete", "namespace", NS, "--wait=false"]);
    assert_eq!(
        kubectl.jsonpath(&["namespace", NS], "{.status.phase}"),
        "Terminating"
    );
    let refused = kubectl.fails(&["create", "-f", "-"], &configmap("late", "1"));
    assert!(
        refused.contains("because it is being terminated"),
        "{refused}"
    );
}

/// On etcd, what the suite left behind is stored under upstream's keys, as JSON
/// without a resourceVersion (etcd's revision is the resourceVersion).
async fn objects_live_in_etcd_under_upstream_keys(
    etcd: &apiserver::storage::testing::etcd_cluster::EtcdCluster,
) {
    let mut client = etcd_client::Client::connect(etcd.endpoints(), None)
        .await
        .unwrap();
    let stored = client
        .get("/registry/namespaces/suite", None)
        .await
        .unwrap();
    let value: serde_json::Value = serde_json::from_slice(stored.kvs()[0].value()).unwrap();
    assert_eq!(value["status"]["phase"], "Terminating");
    assert!(value["metadata"].get("resourceVersion").is_none());
    let deployment = client
        .get("/registry/deployments/suite/api", None)
        .await
        .unwrap();
    assert_eq!(
        deployment.kvs().len(),
        1,
        "the applied Deployment is in etcd"
    );
    let deleted = client
        .get("/registry/configmaps/suite/settings", None)
        .await
        .unwrap();
    assert!(
        deleted.kvs().is_empty(),
        "a deleted ConfigMap is gone from etcd"
    );
}
