//! Server-side apply through stock kubectl: `apply --server-side` creating and
//! re-applying objects of every common built-in kind and a custom resource,
//! managedFields in upstream's shape, conflicts between managers with upstream's
//! message, `--force-conflicts`, fields shared and pruned between managers, dry run,
//! and the move from client-side to server-side apply.

use serde_json::Value;

use super::harness::Kubectl;

/// Objects of many built-in kinds in one manifest (cluster-scoped and namespaced).
const EVERY_KIND: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: ssa, labels: {team: a}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg, namespace: ssa}
data: {a: "1"}
---
apiVersion: v1
kind: Secret
metadata: {name: sec, namespace: ssa}
stringData: {token: t}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: robot, namespace: ssa, labels: {app: robot}}
---
apiVersion: v1
kind: Service
metadata: {name: svc, namespace: ssa}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: ssa}
spec:
  replicas: 0
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: nginx
        image: nginx:1.25
        ports: [{containerPort: 80}]
        env: [{name: A, value: "1"}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: ssa}
spec:
  replicas: 0
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: db, image: postgres:16}]
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, namespace: ssa}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      nodeSelector: {none: none}
      containers: [{name: agent, image: busybox}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: tick, namespace: ssa}
spec:
  schedule: "*/5 * * * *"
  suspend: true
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{name: tick, image: busybox}]
---
apiVersion: v1
kind: Pod
metadata: {name: solo, namespace: ssa}
spec:
  nodeName: nowhere
  containers: [{name: c, image: busybox, command: [sleep, "3600"]}]
  tolerations: [{key: k, operator: Exists}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: reader, namespace: ssa}
rules:
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: reader, namespace: ssa}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: reader}
subjects: [{kind: ServiceAccount, name: robot, namespace: ssa}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: ssa}
spec:
  podSelector: {}
  policyTypes: [Ingress]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web, namespace: ssa}
spec:
  minAvailable: 1
  selector: {matchLabels: {app: web}}
---
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {name: ssa-high}
value: 1000
---
apiVersion: v1
kind: LimitRange
metadata: {name: limits, namespace: ssa}
spec:
  limits: [{type: Container, default: {cpu: 500m}}]
"#;

/// `(manager, operation, subresource)` of each managedFields entry.
fn managers(kubectl: &Kubectl, target: &[&str]) -> Vec<(String, String, String)> {
    let mut args = vec!["get"];
    args.extend_from_slice(target);
    args.extend_from_slice(&["-o", "json", "--show-managed-fields"]);
    let object: Value = serde_json::from_str(&kubectl.ok(&args)).unwrap();
    object["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|e| {
            let text = |k: &str| e[k].as_str().unwrap_or("").to_owned();
            (text("manager"), text("operation"), text("subresource"))
        })
        .collect()
}

fn fields_of(kubectl: &Kubectl, target: &[&str], manager: &str) -> Value {
    let mut args = vec!["get"];
    args.extend_from_slice(target);
    args.extend_from_slice(&["-o", "json", "--show-managed-fields"]);
    let object: Value = serde_json::from_str(&kubectl.ok(&args)).unwrap();
    object["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["manager"] == manager)
        .unwrap_or_else(|| panic!("no {manager} entry on {target:?}"))["fieldsV1"]
        .clone()
}

fn apply(kubectl: &Kubectl, extra: &[&str], manifest: &str) -> String {
    let mut args = vec!["apply", "--server-side", "-f", "-"];
    args.extend_from_slice(extra);
    kubectl.ok_with(&args, manifest)
}

fn apply_fails(kubectl: &Kubectl, extra: &[&str], manifest: &str) -> String {
    let mut args = vec!["apply", "--server-side", "-f", "-"];
    args.extend_from_slice(extra);
    kubectl.fails(&args, manifest)
}

/// Every kind in [`EVERY_KIND`] is created by apply, owned by `kubectl`, and a second
/// apply of the same manifest changes nothing.
pub fn every_built_in_kind_round_trips(kubectl: &Kubectl) {
    let out = apply(kubectl, &[], EVERY_KIND);
    assert_eq!(out.matches("serverside-applied").count(), 16, "{out}");
    let targets: &[&[&str]] = &[
        &["namespace", "ssa"],
        &["configmap", "cfg", "-n", "ssa"],
        &["secret", "sec", "-n", "ssa"],
        &["serviceaccount", "robot", "-n", "ssa"],
        &["service", "svc", "-n", "ssa"],
        &["deployment", "web", "-n", "ssa"],
        &["statefulset", "db", "-n", "ssa"],
        &["daemonset", "agent", "-n", "ssa"],
        &["cronjob", "tick", "-n", "ssa"],
        &["pod", "solo", "-n", "ssa"],
        &["role", "reader", "-n", "ssa"],
        &["rolebinding", "reader", "-n", "ssa"],
        &["networkpolicy", "deny", "-n", "ssa"],
        &["poddisruptionbudget", "web", "-n", "ssa"],
        &["priorityclass", "ssa-high"],
        &["limitrange", "limits", "-n", "ssa"],
    ];
    let before: Vec<_> = targets
        .iter()
        .map(|t| {
            let owners = managers(kubectl, t);
            assert!(
                owners.contains(&("kubectl".into(), "Apply".into(), String::new())),
                "{t:?}: {owners:?}"
            );
            fields_of(kubectl, t, "kubectl")
        })
        .collect();
    apply(kubectl, &[], EVERY_KIND);
    for (target, fields) in targets.iter().zip(&before) {
        assert_eq!(&fields_of(kubectl, target, "kubectl"), fields, "{target:?}");
    }
    // upstream's shape: list maps by key (ports default their protocol), atomic
    // selectors, granular labels
    let deployment = fields_of(kubectl, &["deployment", "web", "-n", "ssa"], "kubectl");
    let container =
        &deployment["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"nginx\"}"];
    assert_eq!(container["."], serde_json::json!({}), "{deployment}");
    assert!(
        container["f:ports"]
            .get("k:{\"containerPort\":80,\"protocol\":\"TCP\"}")
            .is_some(),
        "{deployment}"
    );
    assert!(container["f:env"].get("k:{\"name\":\"A\"}").is_some());
    assert_eq!(deployment["f:spec"]["f:selector"], serde_json::json!({}));
    let pod = fields_of(kubectl, &["pod", "solo", "-n", "ssa"], "kubectl");
    assert_eq!(pod["f:spec"]["f:tolerations"], serde_json::json!({}));
}

/// Two managers on one object: conflicts with upstream's message, co-ownership of
/// equal values, forcing, and pruning of fields only the applier owned.
pub fn conflicts_force_and_pruning(kubectl: &Kubectl) {
    let config = |data: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: shared, namespace: default}}\ndata: {{{data}}}\n"
        )
    };
    apply(
        kubectl,
        &["--field-manager=alice"],
        &config("a: '1', b: '1'"),
    );
    let err = apply_fails(kubectl, &["--field-manager=bob"], &config("b: '2'"));
    assert!(
        err.contains(r#"Apply failed with 1 conflict: conflict with "alice": .data.b"#),
        "{err}"
    );
    // the same value is shared
    apply(kubectl, &["--field-manager=bob"], &config("b: '1'"));
    // alice stops applying b: bob still owns it, so it stays; a goes when she drops it
    apply(kubectl, &["--field-manager=alice"], &config("a: '1'"));
    assert_eq!(
        kubectl.jsonpath(&["configmap", "shared"], "{.data}"),
        r#"{"a":"1","b":"1"}"#
    );
    apply(kubectl, &["--field-manager=alice"], &config("c: '1'"));
    assert_eq!(
        kubectl.jsonpath(&["configmap", "shared"], "{.data}"),
        r#"{"b":"1","c":"1"}"#
    );
    // kubectl edit-style updates take fields from appliers without asking
    kubectl.ok(&[
        "patch",
        "configmap",
        "shared",
        "--type=merge",
        "-p",
        r#"{"data":{"c":"9"}}"#,
    ]);
    let err = apply_fails(kubectl, &["--field-manager=alice"], &config("c: '1'"));
    assert!(
        err.contains(r#"conflict with "kubectl-patch" using v1: .data.c"#),
        "{err}"
    );
    apply(
        kubectl,
        &["--field-manager=alice", "--force-conflicts"],
        &config("c: '1'"),
    );
    assert_eq!(kubectl.jsonpath(&["configmap", "shared"], "{.data.c}"), "1");
    let owners = managers(kubectl, &["configmap", "shared"]);
    assert!(!owners.iter().any(|o| o.0 == "kubectl-patch"), "{owners:?}");

    // the scale subresource's manager owns replicas
    let deployment = |replicas: u32| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: scaled, namespace: default}}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: s}}}}\n  template:\n    metadata: {{labels: {{app: s}}}}\n    spec:\n      containers: [{{name: c, image: busybox}}]\n"
        )
    };
    apply(kubectl, &[], &deployment(0));
    kubectl.ok(&["scale", "deployment", "scaled", "--replicas=1"]);
    let err = apply_fails(kubectl, &[], &deployment(2));
    assert!(
        err.contains(r#"with subresource "scale" using apps/v1: .spec.replicas"#),
        "{err}"
    );
    // a server-side dry run reports the same and stores nothing
    apply(
        kubectl,
        &["--force-conflicts", "--dry-run=server"],
        &deployment(2),
    );
    assert_eq!(
        kubectl.jsonpath(&["deployment", "scaled"], "{.spec.replicas}"),
        "1"
    );
    apply(kubectl, &["--force-conflicts"], &deployment(2));
    assert_eq!(
        kubectl.jsonpath(&["deployment", "scaled"], "{.spec.replicas}"),
        "2"
    );
}

/// `kubectl apply` (client-side) then `kubectl apply --server-side`: the client-side
/// manager's fields pass to `kubectl`, a changed value is no conflict, and a later
/// client-side apply still works.
pub fn client_side_then_server_side(kubectl: &Kubectl) {
    let config = |b: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: upgraded, namespace: default}}\ndata: {{a: '1', b: '{b}'}}\n"
        )
    };
    kubectl.ok_with(&["apply", "-f", "-"], &config("1"));
    let owners = managers(kubectl, &["configmap", "upgraded"]);
    assert_eq!(
        owners,
        [(
            "kubectl-client-side-apply".to_owned(),
            "Update".to_owned(),
            String::new()
        )]
    );
    apply(kubectl, &[], &config("2"));
    assert_eq!(
        kubectl.jsonpath(&["configmap", "upgraded"], "{.data.b}"),
        "2"
    );
    let owners = managers(kubectl, &["configmap", "upgraded"]);
    assert!(
        !owners.iter().any(|o| o.0 == "kubectl-client-side-apply"),
        "{owners:?}"
    );
    let fields = fields_of(kubectl, &["configmap", "upgraded"], "kubectl");
    assert!(fields["f:data"].get("f:a").is_some(), "{fields}");
    kubectl.ok_with(&["apply", "-f", "-"], &config("3"));
    assert_eq!(
        kubectl.jsonpath(&["configmap", "upgraded"], "{.data.b}"),
        "3"
    );
}

/// Server-side apply of custom resources: list maps from the schema merge by key
/// between managers, and conflicts name the custom resource's fields.
pub fn custom_resources(kubectl: &Kubectl) {
    let crd = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.ssa.example.com}
spec:
  group: ssa.example.com
  scope: Namespaced
  names: {plural: widgets, kind: Widget}
  versions:
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
              size: {type: integer}
              ports:
                type: array
                x-kubernetes-list-type: map
                x-kubernetes-list-map-keys: [name]
                items:
                  type: object
                  required: [name]
                  properties:
                    name: {type: string}
                    port: {type: integer}
"#;
    apply(kubectl, &[], crd);
    kubectl.wait_established("widgets.ssa.example.com");
    let widget = |size: u32, port: &str| {
        format!(
            "apiVersion: ssa.example.com/v1\nkind: Widget\nmetadata: {{name: w, namespace: default}}\nspec:\n  size: {size}\n  ports: [{port}]\n"
        )
    };
    apply(
        kubectl,
        &["--field-manager=alice"],
        &widget(1, "{name: http, port: 80}"),
    );
    let err = apply_fails(
        kubectl,
        &["--field-manager=bob"],
        &widget(2, "{name: https, port: 443}"),
    );
    assert!(
        err.contains(r#"Apply failed with 1 conflict: conflict with "alice": .spec.size"#),
        "{err}"
    );
    apply(
        kubectl,
        &["--field-manager=bob"],
        &widget(1, "{name: https, port: 443}"),
    );
    assert_eq!(
        kubectl.jsonpath(&["widget", "w"], "{.spec.ports[*].name}"),
        "http https"
    );
    let bob = fields_of(kubectl, &["widget", "w"], "bob");
    assert!(
        bob["f:spec"]["f:ports"]
            .get("k:{\"name\":\"https\"}")
            .is_some(),
        "{bob}"
    );
}
