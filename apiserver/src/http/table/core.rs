//! Printers of the core (`v1`) group: pods, nodes, services, volumes, claims and the other
//! legacy kinds, as upstream's pkg/printers/internalversion. Core events print with the
//! events.k8s.io ones in `events.rs`; limit ranges have no printer upstream (default table).

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::{
    AGE, CONTAINERS, Column, Ctx, IMAGES, NAME, Printer, SELECTOR, condition_status, containers,
    count, format_labels, int_of, integer, items, name_of, or_none, parse_time, quantity, str_of,
    string, workload_cells,
};

pub(super) const POD: Printer = Printer::new(
    &[
        NAME,
        string("Ready"),
        string("Status"),
        string("Restarts"),
        AGE,
        string("IP").wide(),
        string("Node").wide(),
        string("Nominated Node").wide(),
        string("Readiness Gates").wide(),
    ],
    pod_row,
)
.with_conditions(pod_conditions);

/// Upstream's `NodeUnreachablePodReason`: the node controller's reason for pods it marks
/// for deletion on a lost node.
const NODE_LOST: &str = "NodeLost";

/// What upstream's `printPod` adds up over a pod's container statuses.
#[derive(Default)]
struct Containers {
    ready: usize,
    restarts: i64,
    last_restart: Option<jiff::Timestamp>,
}

impl Containers {
    /// Counts one status's restarts and its last termination.
    fn restarted(&mut self, status: &Value) {
        self.restarts += int_of(&status["restartCount"]);
        let finished = parse_time(&status["lastState"]["terminated"]["finishedAt"]);
        self.last_restart = self.last_restart.max(finished);
    }
}

/// A terminated container's reason, else its signal or exit code (`Signal:9`).
fn terminated_reason(terminated: &Value) -> String {
    match str_of(&terminated["reason"]) {
        "" if int_of(&terminated["signal"]) != 0 => {
            format!("Signal:{}", int_of(&terminated["signal"]))
        }
        "" => format!("ExitCode:{}", int_of(&terminated["exitCode"])),
        reason => reason.to_owned(),
    }
}

fn has_condition(pod: &Value, kind: &str) -> bool {
    condition_status(&pod["status"]["conditions"], kind) == Some("True")
}

/// Upstream's `printPod`: the aggregate status walks init containers first (the first
/// one not done names the status, `Init:...`), then the app containers from last to
/// first; sidecars (restartable init containers) count towards Ready and Restarts.
fn pod_row(pod: &Value, ctx: &Ctx) -> Vec<Value> {
    let (spec, status) = (&pod["spec"], &pod["status"]);
    let phase = str_of(&status["phase"]);
    let mut reason = match str_of(&status["reason"]) {
        "" => phase.to_owned(),
        r => r.to_owned(),
    };
    if items(&status["conditions"])
        .iter()
        .any(|c| c["type"] == "PodScheduled" && c["reason"] == "SchedulingGated")
    {
        reason = "SchedulingGated".into();
    }

    let init_specs = items(&spec["initContainers"]);
    let is_sidecar = |name: &Value| {
        init_specs
            .iter()
            .any(|c| &c["name"] == name && c["restartPolicy"] == "Always")
    };
    let sidecars = init_specs
        .iter()
        .filter(|c| c["restartPolicy"] == "Always")
        .count();
    let total = items(&spec["containers"]).len() + sidecars;

    let mut all = Containers::default();
    let mut sidecar = Containers::default();
    let mut initializing = false;
    for (i, c) in items(&status["initContainerStatuses"]).iter().enumerate() {
        all.restarted(c);
        let restartable = is_sidecar(&c["name"]);
        if restartable {
            sidecar.restarted(c);
        }
        let (terminated, waiting) = (&c["state"]["terminated"], &c["state"]["waiting"]);
        if terminated.is_object() && int_of(&terminated["exitCode"]) == 0 {
            continue;
        }
        if restartable && c["started"] == true {
            all.ready += usize::from(c["ready"] == true);
            continue;
        }
        let waiting_reason = str_of(&waiting["reason"]);
        reason = if terminated.is_object() {
            format!("Init:{}", terminated_reason(terminated))
        } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
            format!("Init:{waiting_reason}")
        } else {
            format!("Init:{i}/{}", init_specs.len())
        };
        initializing = true;
        break;
    }

    let mut counted = all;
    if !initializing || has_condition(pod, "Initialized") {
        // once initialized, only sidecars' restarts count besides the app containers'
        counted = Containers {
            ready: counted.ready,
            ..sidecar
        };
        let mut has_running = false;
        for c in items(&status["containerStatuses"]).iter().rev() {
            counted.restarted(c);
            let (terminated, waiting) = (&c["state"]["terminated"], &c["state"]["waiting"]);
            if !str_of(&waiting["reason"]).is_empty() {
                reason = str_of(&waiting["reason"]).to_owned();
            } else if terminated.is_object() {
                reason = terminated_reason(terminated);
            } else if c["ready"] == true && c["state"]["running"].is_object() {
                has_running = true;
                counted.ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if has_condition(pod, "Ready") {
                "Running"
            } else {
                "NotReady"
            }
            .into();
        }
    }

    if pod["metadata"]["deletionTimestamp"].is_string() {
        if status["reason"] == NODE_LOST {
            reason = "Unknown".into();
        } else if phase != "Succeeded" && phase != "Failed" {
            reason = "Terminating".into();
        }
    }

    let restarts = match counted.last_restart {
        Some(last) if counted.restarts != 0 => {
            format!("{} ({} ago)", counted.restarts, ctx.elapsed(last))
        }
        _ => counted.restarts.to_string(),
    };

    let ip = match str_of(&status["podIP"]) {
        "" => str_of(&status["podIPs"][0]["ip"]),
        ip => ip,
    };
    let gates = items(&spec["readinessGates"]);
    let readiness_gates = if gates.is_empty() {
        "<none>".to_owned()
    } else {
        let passed = gates
            .iter()
            .filter(|g| {
                condition_status(&status["conditions"], str_of(&g["conditionType"])) == Some("True")
            })
            .count();
        format!("{passed}/{}", gates.len())
    };
    vec![
        name_of(pod),
        json!(format!("{}/{total}", counted.ready)),
        json!(reason),
        json!(restarts),
        ctx.age(pod),
        json!(or_none(ip.to_owned())),
        json!(or_none(str_of(&spec["nodeName"]).to_owned())),
        json!(or_none(str_of(&status["nominatedNodeName"]).to_owned())),
        json!(readiness_gates),
    ]
}

/// Finished pods' row conditions, which let clients tell them apart.
fn pod_conditions(pod: &Value) -> Value {
    let (reason, message) = match str_of(&pod["status"]["phase"]) {
        "Succeeded" => ("Succeeded", "The pod has completed successfully."),
        "Failed" => ("Failed", "The pod failed."),
        _ => return Value::Null,
    };
    json!([{"type": "Completed", "status": "True", "reason": reason, "message": message}])
}

pub(super) const POD_TEMPLATE: Printer = Printer::new(
    &[
        NAME,
        string("Containers"),
        string("Images"),
        string("Pod Labels"),
    ],
    |o, _| {
        let (names, images) = containers(&o["template"]["spec"]);
        vec![
            name_of(o),
            json!(names),
            json!(images),
            json!(format_labels(&o["template"]["metadata"]["labels"])),
        ]
    },
);

/// The columns of a replica-counting controller: desired, current and ready replicas.
pub(super) const REPLICA_COLUMNS: &[Column] = &[
    NAME,
    integer("Desired"),
    integer("Current"),
    integer("Ready"),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

/// Desired (defaulted to 1), current and ready replicas, then age.
pub(super) fn replica_cells(o: &Value, ctx: &Ctx) -> Vec<Value> {
    vec![
        name_of(o),
        json!(o["spec"]["replicas"].as_i64().unwrap_or(1)),
        json!(int_of(&o["status"]["replicas"])),
        json!(int_of(&o["status"]["readyReplicas"])),
        ctx.age(o),
    ]
}

pub(super) const REPLICATION_CONTROLLER: Printer = Printer::new(REPLICA_COLUMNS, |o, ctx| {
    let mut cells = replica_cells(o, ctx);
    // a controller's selector is a plain label map
    cells.extend(workload_cells(
        &o["spec"]["template"]["spec"],
        format_labels(&o["spec"]["selector"]),
    ));
    cells
});

pub(super) const SERVICE: Printer = Printer::new(
    &[
        NAME,
        string("Type"),
        string("Cluster-IP"),
        string("External-IP"),
        string("Port(s)"),
        AGE,
        SELECTOR,
    ],
    |o, ctx| {
        let spec = &o["spec"];
        let cluster_ip = match str_of(&spec["clusterIP"]) {
            "" => str_of(&spec["clusterIPs"][0]),
            ip => ip,
        };
        let ports: Vec<String> = items(&spec["ports"])
            .iter()
            .map(|p| {
                let protocol = p["protocol"].as_str().unwrap_or("TCP");
                match int_of(&p["nodePort"]) {
                    0 => format!("{}/{protocol}", int_of(&p["port"])),
                    node => format!("{}:{node}/{protocol}", int_of(&p["port"])),
                }
            })
            .collect();
        vec![
            name_of(o),
            json!(spec["type"].as_str().unwrap_or("ClusterIP")),
            json!(or_none(cluster_ip.to_owned())),
            json!(service_external_ip(o)),
            json!(or_none(ports.join(","))),
            ctx.age(o),
            json!(format_labels(&spec["selector"])),
        ]
    },
);

/// Upstream's `loadBalancerStatusStringer` (unclipped, as the server prints wide): the
/// distinct ingress IPs or host names, sorted.
pub(super) fn load_balancer_ingress(status: &Value) -> String {
    let points: BTreeSet<&str> = items(&status["ingress"])
        .iter()
        .filter_map(|i| match (str_of(&i["ip"]), str_of(&i["hostname"])) {
            ("", "") => None,
            ("", host) => Some(host),
            (ip, _) => Some(ip),
        })
        .collect();
    points.into_iter().collect::<Vec<_>>().join(",")
}

/// Upstream's `getServiceExternalIP`.
fn service_external_ip(service: &Value) -> String {
    let spec = &service["spec"];
    let external: Vec<&str> = items(&spec["externalIPs"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    match spec["type"].as_str().unwrap_or("ClusterIP") {
        "ClusterIP" | "NodePort" => or_none(external.join(",")),
        "LoadBalancer" => {
            let balancer = load_balancer_ingress(&service["status"]["loadBalancer"]);
            match (balancer.is_empty(), external.is_empty()) {
                (_, false) => balancer
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .chain(external)
                    .collect::<Vec<_>>()
                    .join(","),
                (false, true) => balancer,
                (true, true) => "<pending>".into(),
            }
        }
        "ExternalName" => str_of(&spec["externalName"]).to_owned(),
        _ => "<unknown>".into(),
    }
}

pub(super) const ENDPOINTS: Printer = Printer::new(&[NAME, string("Endpoints"), AGE], |o, ctx| {
    vec![name_of(o), json!(format_endpoints(o)), ctx.age(o)]
});

/// Upstream's `formatEndpoints` over all ports: the first three `ip:port` pairs (bare
/// IPs for port-less subsets) and how many more there are.
fn format_endpoints(endpoints: &Value) -> String {
    const MAX: usize = 3;
    let subsets = items(&endpoints["subsets"]);
    if subsets.is_empty() {
        return "<none>".into();
    }
    let mut list = Vec::new();
    let mut total = 0;
    for subset in subsets {
        let addresses = items(&subset["addresses"]);
        let ports = items(&subset["ports"]);
        let ports: Vec<Option<i64>> = if ports.is_empty() {
            vec![None]
        } else {
            ports.iter().map(|p| Some(int_of(&p["port"]))).collect()
        };
        for port in ports {
            total += addresses.len();
            for address in addresses.iter().take(MAX.saturating_sub(list.len())) {
                let ip = str_of(&address["ip"]);
                list.push(match port {
                    None => ip.to_owned(),
                    Some(port) if ip.contains(':') => format!("[{ip}]:{port}"),
                    Some(port) => format!("{ip}:{port}"),
                });
            }
        }
    }
    let shown = list.join(",");
    if total > MAX {
        format!("{shown} + {} more...", total - MAX)
    } else {
        shown
    }
}

pub(super) const NODE: Printer = Printer::new(
    &[
        NAME,
        string("Status"),
        string("Roles"),
        AGE,
        string("Version"),
        string("Internal-IP").wide(),
        string("External-IP").wide(),
        string("OS-Image").wide(),
        string("Kernel-Version").wide(),
        string("Container-Runtime").wide(),
    ],
    node_row,
);

/// The label prefix naming a node role (`node-role.kubernetes.io/control-plane`).
const NODE_ROLE_PREFIX: &str = "node-role.kubernetes.io/";
/// The older label whose value names a node role.
const NODE_ROLE_LABEL: &str = "kubernetes.io/role";

/// Upstream's `printNode`: Ready/NotReady/Unknown from the Ready condition (the last one
/// listed wins), plus SchedulingDisabled when cordoned.
fn node_row(node: &Value, ctx: &Ctx) -> Vec<Value> {
    let status = &node["status"];
    let ready = items(&status["conditions"])
        .iter()
        .rfind(|c| c["type"] == "Ready")
        .map(|c| str_of(&c["status"]));
    let mut state = vec![match ready {
        Some("True") => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }];
    if node["spec"]["unschedulable"] == true {
        state.push("SchedulingDisabled");
    }
    let roles: BTreeSet<&str> = node["metadata"]["labels"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| match k.strip_prefix(NODE_ROLE_PREFIX) {
            Some(role) => Some(role),
            None if k == NODE_ROLE_LABEL => v.as_str(),
            None => None,
        })
        .filter(|role| !role.is_empty())
        .collect();
    let address = |kind: &str| {
        items(&status["addresses"])
            .iter()
            .find(|a| a["type"] == kind)
            .map_or("<none>", |a| str_of(&a["address"]))
    };
    let info = |field: &str| match str_of(&status["nodeInfo"][field]) {
        "" => "<unknown>",
        v => v,
    };
    vec![
        name_of(node),
        json!(state.join(",")),
        json!(or_none(roles.into_iter().collect::<Vec<_>>().join(","))),
        ctx.age(node),
        json!(str_of(&status["nodeInfo"]["kubeletVersion"])),
        json!(address("InternalIP")),
        json!(address("ExternalIP")),
        json!(info("osImage")),
        json!(info("kernelVersion")),
        json!(info("containerRuntimeVersion")),
    ]
}

pub(super) const NAMESPACE: Printer = Printer::new(&[NAME, string("Status"), AGE], |o, ctx| {
    vec![name_of(o), json!(str_of(&o["status"]["phase"])), ctx.age(o)]
});

pub(super) const SECRET: Printer =
    Printer::new(&[NAME, string("Type"), string("Data"), AGE], |o, ctx| {
        vec![
            name_of(o),
            json!(o["type"].as_str().unwrap_or("Opaque")),
            json!(count(&o["data"])),
            ctx.age(o),
        ]
    });

pub(super) const CONFIG_MAP: Printer = Printer::new(&[NAME, string("Data"), AGE], |o, ctx| {
    vec![
        name_of(o),
        json!(count(&o["data"]) + count(&o["binaryData"])),
        ctx.age(o),
    ]
});

pub(super) const SERVICE_ACCOUNT: Printer =
    Printer::new(&[NAME, string("Secrets"), AGE], |o, ctx| {
        vec![name_of(o), json!(count(&o["secrets"])), ctx.age(o)]
    });

/// The annotation that names a volume's or claim's class before `storageClassName`.
const BETA_STORAGE_CLASS: &str = "volume.beta.kubernetes.io/storage-class";

/// Upstream's `GetPersistentVolumeClass` / `GetPersistentVolumeClaimClass`.
fn storage_class(o: &Value) -> String {
    o["metadata"]["annotations"][BETA_STORAGE_CLASS]
        .as_str()
        .unwrap_or_else(|| str_of(&o["spec"]["storageClassName"]))
        .to_owned()
}

/// Upstream's `GetAccessModesAsString`: RWO, ROX, RWX, RWOP in that order, once each.
fn access_modes(modes: &Value) -> String {
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .into_iter()
    .filter(|(mode, _)| items(modes).iter().any(|m| m == mode))
    .map(|(_, short)| short)
    .collect::<Vec<_>>()
    .join(",")
}

/// The phase, or Terminating once deletion started.
fn volume_phase(o: &Value) -> &str {
    if o["metadata"]["deletionTimestamp"].is_string() {
        "Terminating"
    } else {
        str_of(&o["status"]["phase"])
    }
}

/// A `*string` field: its value, or `<unset>`.
fn or_unset(value: &Value) -> &str {
    value.as_str().unwrap_or("<unset>")
}

pub(super) const PERSISTENT_VOLUME: Printer = Printer::new(
    &[
        NAME,
        string("Capacity"),
        string("Access Modes"),
        string("Reclaim Policy"),
        string("Status"),
        string("Claim"),
        string("StorageClass"),
        string("VolumeAttributesClass"),
        string("Reason"),
        AGE,
        string("VolumeMode").wide(),
    ],
    |o, ctx| {
        let spec = &o["spec"];
        let claim = match &spec["claimRef"] {
            Value::Null => String::new(),
            r => format!("{}/{}", str_of(&r["namespace"]), str_of(&r["name"])),
        };
        vec![
            name_of(o),
            json!(quantity(&spec["capacity"]["storage"])),
            json!(access_modes(&spec["accessModes"])),
            json!(str_of(&spec["persistentVolumeReclaimPolicy"])),
            json!(volume_phase(o)),
            json!(claim),
            json!(storage_class(o)),
            json!(or_unset(&spec["volumeAttributesClassName"])),
            json!(str_of(&o["status"]["reason"])),
            ctx.age(o),
            json!(or_unset(&spec["volumeMode"])),
        ]
    },
);

pub(super) const PERSISTENT_VOLUME_CLAIM: Printer = Printer::new(
    &[
        NAME,
        string("Status"),
        string("Volume"),
        string("Capacity"),
        string("Access Modes"),
        string("StorageClass"),
        string("VolumeAttributesClass"),
        AGE,
        string("VolumeMode").wide(),
    ],
    |o, ctx| {
        let (spec, status) = (&o["spec"], &o["status"]);
        let volume = str_of(&spec["volumeName"]);
        // capacity and modes are the bound volume's, so blank until bound
        let (capacity, modes) = if volume.is_empty() {
            (String::new(), String::new())
        } else {
            (
                quantity(&status["capacity"]["storage"]),
                access_modes(&status["accessModes"]),
            )
        };
        vec![
            name_of(o),
            json!(volume_phase(o)),
            json!(volume),
            json!(capacity),
            json!(modes),
            json!(storage_class(o)),
            json!(or_unset(&spec["volumeAttributesClassName"])),
            ctx.age(o),
            json!(or_unset(&spec["volumeMode"])),
        ]
    },
);

pub(super) const RESOURCE_QUOTA: Printer = Printer::new(
    &[NAME, string("Request"), string("Limit"), AGE],
    |o, ctx| {
        let status = &o["status"];
        let mut names: Vec<&String> = status["hard"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k)
            .collect();
        names.sort();
        // `limits.*` resources go to the Limit column, everything else to Request
        let (limits, requests): (Vec<String>, Vec<String>) = names
            .into_iter()
            .map(|name| {
                let used = quantity(&status["used"][name]);
                let hard = quantity(&status["hard"][name]);
                format!("{name}: {used}/{hard}")
            })
            .partition(|line| line.starts_with("limits."));
        vec![
            name_of(o),
            json!(requests.join(", ")),
            json!(limits.join(", ")),
            ctx.age(o),
        ]
    },
);

pub(super) const COMPONENT_STATUS: Printer = Printer::new(
    &[NAME, string("Status"), string("Message"), string("Error")],
    |o, _| {
        let healthy = items(&o["conditions"])
            .iter()
            .find(|c| c["type"] == "Healthy");
        let (status, message, error) = match healthy {
            Some(c) if c["status"] == "True" => ("Healthy", &c["message"], &c["error"]),
            Some(c) => ("Unhealthy", &c["message"], &c["error"]),
            None => ("Unknown", &Value::Null, &Value::Null),
        };
        vec![
            name_of(o),
            json!(status),
            json!(str_of(message)),
            json!(str_of(error)),
        ]
    },
);

#[cfg(test)]
mod tests {
    use super::super::tests::{cells, column_names};
    use serde_json::{Value, json};

    fn pod(spec: Value, status: Value) -> Value {
        json!({
            "metadata": {"name": "web-0", "creationTimestamp": "2024-05-01T11:00:00Z"},
            "spec": spec,
            "status": status,
        })
    }

    fn pod_cells(spec: Value, status: Value) -> Vec<Value> {
        cells("", "v1", "pods", pod(spec, status))
    }

    #[test]
    fn running_pod_with_restarts_shows_last_restart_age() {
        let cells = pod_cells(
            json!({"containers": [{"name": "app"}, {"name": "log"}], "nodeName": "n1",
                   "readinessGates": [{"conditionType": "example.com/lb"}]}),
            json!({
                "phase": "Running", "podIP": "10.0.0.5",
                "conditions": [{"type": "Ready", "status": "True"}, {"type": "example.com/lb", "status": "True"}],
                "containerStatuses": [
                    {"name": "app", "ready": true, "restartCount": 2, "state": {"running": {}},
                     "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2024-05-01T11:55:00Z"}}},
                    {"name": "log", "ready": true, "restartCount": 1, "state": {"running": {}},
                     "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2024-05-01T11:30:00Z"}}},
                ],
            }),
        );
        assert_eq!(
            cells,
            json!([
                "web-0",
                "2/2",
                "Running",
                "3 (5m ago)",
                "60m",
                "10.0.0.5",
                "n1",
                "<none>",
                "1/1"
            ])
            .as_array()
            .unwrap()
            .clone()
        );
    }

    #[test]
    fn waiting_container_reason_wins() {
        let cells = pod_cells(
            json!({"containers": [{"name": "app"}]}),
            json!({"phase": "Running", "containerStatuses": [
                {"name": "app", "ready": false, "restartCount": 4,
                 "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}),
        );
        assert_eq!(
            cells[1..4],
            [json!("0/1"), json!("CrashLoopBackOff"), json!("4")]
        );
    }

    #[test]
    fn terminated_without_reason_shows_exit_code_or_signal() {
        let status = |terminated: Value| {
            json!({"phase": "Running", "containerStatuses": [
                {"name": "app", "state": {"terminated": terminated}}]})
        };
        let spec = json!({"containers": [{"name": "app"}]});
        assert_eq!(
            pod_cells(spec.clone(), status(json!({"exitCode": 3})))[2],
            "ExitCode:3"
        );
        assert_eq!(
            pod_cells(spec.clone(), status(json!({"exitCode": 137, "signal": 9})))[2],
            "Signal:9"
        );
        assert_eq!(
            pod_cells(spec, status(json!({"exitCode": 0, "reason": "Completed"})))[2],
            "Completed"
        );
    }

    #[test]
    fn init_containers_name_the_status_until_done() {
        let spec = json!({"initContainers": [{"name": "a"}, {"name": "b"}], "containers": [{"name": "app"}]});
        let done = json!({"name": "a", "state": {"terminated": {"exitCode": 0}}});
        let running = json!({"name": "b", "state": {"running": {}}});
        let status = |init: Value| {
            json!({"phase": "Pending", "initContainerStatuses": init,
                   "containerStatuses": [{"name": "app", "state": {"waiting": {"reason": "PodInitializing"}}}]})
        };
        assert_eq!(
            pod_cells(spec.clone(), status(json!([done, running])))[2],
            "Init:1/2"
        );
        let crashing = json!({"name": "a", "restartCount": 3, "state": {"waiting": {"reason": "CrashLoopBackOff"}}});
        let cells = pod_cells(spec.clone(), status(json!([crashing])));
        assert_eq!(cells[2], "Init:CrashLoopBackOff");
        assert_eq!(cells[3], "3");
        let failed =
            json!({"name": "a", "state": {"terminated": {"exitCode": 2, "reason": "Error"}}});
        assert_eq!(pod_cells(spec, status(json!([failed])))[2], "Init:Error");
    }

    #[test]
    fn running_sidecars_count_as_containers() {
        let spec = json!({"initContainers": [{"name": "proxy", "restartPolicy": "Always"}],
                          "containers": [{"name": "app"}]});
        let cells = pod_cells(
            spec,
            json!({"phase": "Running", "conditions": [{"type": "Initialized", "status": "True"}],
                   "initContainerStatuses": [{"name": "proxy", "started": true, "ready": true, "restartCount": 1,
                                              "state": {"running": {}}}],
                   "containerStatuses": [{"name": "app", "ready": true, "state": {"running": {}}}]}),
        );
        assert_eq!(cells[1..4], [json!("2/2"), json!("Running"), json!("1")]);
    }

    #[test]
    fn deleted_pods_are_terminating_or_unknown_on_a_lost_node() {
        let mut p = pod(
            json!({"containers": [{"name": "app"}]}),
            json!({"phase": "Running"}),
        );
        p["metadata"]["deletionTimestamp"] = json!("2024-05-01T11:59:00Z");
        assert_eq!(cells("", "v1", "pods", p.clone())[2], "Terminating");
        p["status"]["reason"] = json!("NodeLost");
        assert_eq!(cells("", "v1", "pods", p.clone())[2], "Unknown");
        p["status"] = json!({"phase": "Succeeded"});
        assert_eq!(cells("", "v1", "pods", p)[2], "Succeeded");
    }

    #[test]
    fn scheduling_gated_and_pending_pods() {
        let cells = pod_cells(
            json!({"containers": [{"name": "app"}]}),
            json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}),
        );
        assert_eq!(
            cells[1..4],
            [json!("0/1"), json!("SchedulingGated"), json!("0")]
        );
        assert_eq!(
            cells[5..],
            [
                json!("<none>"),
                json!("<none>"),
                json!("<none>"),
                json!("<none>")
            ]
        );
    }

    #[test]
    fn completed_with_a_running_container_is_running_or_not_ready() {
        let status = |ready: &str| {
            json!({"phase": "Running", "conditions": [{"type": "Ready", "status": ready}], "containerStatuses": [
                {"name": "a", "ready": true, "state": {"running": {}}},
                {"name": "b", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]})
        };
        let spec = json!({"containers": [{"name": "a"}, {"name": "b"}]});
        assert_eq!(pod_cells(spec.clone(), status("True"))[2], "Running");
        assert_eq!(pod_cells(spec, status("False"))[2], "NotReady");
    }

    #[test]
    fn nodes_print_status_roles_and_wide_info() {
        let node = json!({
            "metadata": {"name": "n1", "creationTimestamp": "2024-04-01T12:00:00Z", "labels": {
                "node-role.kubernetes.io/control-plane": "", "kubernetes.io/role": "master",
                "node-role.kubernetes.io/": "x", "kubernetes.io/hostname": "n1"}},
            "spec": {"unschedulable": true},
            "status": {
                "conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}],
                "addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "192.168.1.10"}],
                "nodeInfo": {"kubeletVersion": "v1.33.0", "osImage": "Debian GNU/Linux 12 (bookworm)",
                             "kernelVersion": "6.1.0-18-amd64", "containerRuntimeVersion": "containerd://1.7.13"},
            },
        });
        assert_eq!(
            cells("", "v1", "nodes", node),
            [
                "n1",
                "Ready,SchedulingDisabled",
                "control-plane,master",
                "30d",
                "v1.33.0",
                "192.168.1.10",
                "<none>",
                "Debian GNU/Linux 12 (bookworm)",
                "6.1.0-18-amd64",
                "containerd://1.7.13",
            ]
        );
        let bare = json!({"metadata": {"name": "n2"}, "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}});
        let c = cells("", "v1", "nodes", bare);
        assert_eq!(
            c[1..4],
            [json!("NotReady"), json!("<none>"), json!("<unknown>")]
        );
        assert_eq!(c[7], "<unknown>");
        assert_eq!(cells("", "v1", "nodes", json!({}))[1], "Unknown");
    }

    #[test]
    fn services_print_ips_ports_and_selector() {
        let svc = json!({
            "metadata": {"name": "lb", "creationTimestamp": "2024-05-01T11:58:00Z"},
            "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                     "externalIPs": ["1.2.3.4"], "selector": {"app": "web"},
                     "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}, {"port": 53, "protocol": "UDP"}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "5.6.7.8"}, {"hostname": "lb.example.com"}]}},
        });
        assert_eq!(
            cells("", "v1", "services", svc),
            [
                "lb",
                "LoadBalancer",
                "10.96.0.10",
                "5.6.7.8,lb.example.com,1.2.3.4",
                "80:30080/TCP,53/UDP",
                "2m",
                "app=web"
            ]
        );
        let pending = json!({"spec": {"type": "LoadBalancer"}});
        assert_eq!(cells("", "v1", "services", pending)[3], "<pending>");
        let external = json!({"spec": {"type": "ExternalName", "externalName": "db.example.com"}});
        let c = cells("", "v1", "services", external);
        assert_eq!(
            c[2..5],
            [json!("<none>"), json!("db.example.com"), json!("<none>")]
        );
    }

    #[test]
    fn endpoints_show_three_addresses_then_a_count() {
        let ep = json!({"subsets": [
            {"addresses": [{"ip": "10.0.0.1"}, {"ip": "fd00::2"}], "ports": [{"port": 80}, {"port": 443}]},
            {"addresses": [{"ip": "10.0.0.3"}]},
        ]});
        assert_eq!(
            cells("", "v1", "endpoints", ep)[1],
            "10.0.0.1:80,[fd00::2]:80,10.0.0.1:443 + 2 more..."
        );
        assert_eq!(cells("", "v1", "endpoints", json!({}))[1], "<none>");
    }

    #[test]
    fn volumes_and_claims() {
        let pv = json!({
            "metadata": {"name": "pv1", "annotations": {"volume.beta.kubernetes.io/storage-class": "old"}},
            "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteMany", "ReadWriteOnce"],
                     "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "fast",
                     "claimRef": {"namespace": "default", "name": "data"}, "volumeMode": "Filesystem"},
            "status": {"phase": "Bound"},
        });
        assert_eq!(
            cells("", "v1", "persistentvolumes", pv)[1..9],
            [
                json!("10Gi"),
                json!("RWO,RWX"),
                json!("Retain"),
                json!("Bound"),
                json!("default/data"),
                json!("old"),
                json!("<unset>"),
                json!("")
            ]
        );
        let pending = json!({"spec": {"storageClassName": "fast", "resources": {"requests": {"storage": "1Gi"}}}, "status": {"phase": "Pending"}});
        let c = cells("", "v1", "persistentvolumeclaims", pending);
        assert_eq!(
            c[1..6],
            [
                json!("Pending"),
                json!(""),
                json!(""),
                json!(""),
                json!("fast")
            ]
        );
        assert_eq!(c[8], "<unset>");
    }

    #[test]
    fn quotas_split_requests_and_limits() {
        let quota = json!({"status": {
            "hard": {"pods": "10", "limits.cpu": "2", "requests.memory": "1Gi"},
            "used": {"pods": "3", "limits.cpu": "500m"},
        }});
        let c = cells("", "v1", "resourcequotas", quota);
        assert_eq!(c[1], "pods: 3/10, requests.memory: 0/1Gi");
        assert_eq!(c[2], "limits.cpu: 500m/2");
    }

    #[test]
    fn core_column_names_match_upstream() {
        assert_eq!(
            column_names("", "v1", "podtemplates"),
            ["Name", "Containers", "Images", "Pod Labels"]
        );
        assert_eq!(
            column_names("", "v1", "componentstatuses"),
            ["Name", "Status", "Message", "Error"]
        );
        assert_eq!(
            column_names("", "v1", "replicationcontrollers"),
            [
                "Name",
                "Desired",
                "Current",
                "Ready",
                "Age",
                "Containers",
                "Images",
                "Selector"
            ]
        );
        assert_eq!(
            column_names("", "v1", "limitranges"),
            ["Name", "Created At"]
        );
    }
}
