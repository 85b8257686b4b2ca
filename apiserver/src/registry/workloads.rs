//! Pods and the workloads that template them: upstream's defaults
//! (pkg/apis/core/v1/defaults.go `SetDefaults_Pod`, `SetDefaults_PodSpec`,
//! `SetDefaults_Container`; pkg/apis/apps/v1/defaults.go;
//! pkg/apis/batch/v1/defaults.go) and the first of
//! their validation rules (pkg/apis/core/validation `ValidatePodSpec`,
//! pkg/apis/apps/validation `ValidateDeploymentSpec`), with upstream's messages.
//! Admission defaults (service account, priority, default tolerations) come with the
//! admission chain.

use apimachinery::errors::FieldError;
use apimachinery::labels;
use apimachinery::resources::ResourceInfo;
use serde_json::{Map, Value, json};

/// Where the pod spec lives in each kind that carries one.
fn pod_spec_path(resource: &ResourceInfo) -> Option<&'static str> {
    match (resource.group, resource.plural) {
        ("", "pods") => Some("/spec"),
        ("", "podtemplates") => Some("/template/spec"),
        ("", "replicationcontrollers")
        | ("apps", "deployments")
        | ("apps", "replicasets")
        | ("apps", "statefulsets")
        | ("apps", "daemonsets")
        | ("batch", "jobs") => Some("/spec/template/spec"),
        ("batch", "cronjobs") => Some("/spec/jobTemplate/spec/template/spec"),
        _ => None,
    }
}

fn field_path(pointer: &str) -> String {
    pointer.trim_start_matches('/').replace('/', ".")
}

fn insert_default(map: &mut Map<String, Value>, key: &str, value: Value) {
    map.entry(key.to_owned()).or_insert(value);
}

/// Upstream's `SetDefaults_Container` pull policy: Always for `:latest` or no tag.
fn pull_policy(image: &str) -> &'static str {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    match last.split_once(':') {
        Some((_, "latest")) | None if !image.contains('@') => "Always",
        _ => "IfNotPresent",
    }
}

fn container_defaults(container: &mut Map<String, Value>) {
    insert_default(
        container,
        "terminationMessagePath",
        json!("/dev/termination-log"),
    );
    insert_default(container, "terminationMessagePolicy", json!("File"));
    let image = container
        .get("image")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    insert_default(container, "imagePullPolicy", json!(pull_policy(&image)));
    insert_default(container, "resources", json!({}));
    if let Some(ports) = container.get_mut("ports").and_then(Value::as_array_mut) {
        for port in ports.iter_mut().filter_map(Value::as_object_mut) {
            insert_default(port, "protocol", json!("TCP"));
        }
    }
}

fn pod_spec_defaults(spec: &mut Map<String, Value>, is_pod: bool) {
    insert_default(spec, "dnsPolicy", json!("ClusterFirst"));
    insert_default(spec, "restartPolicy", json!("Always"));
    insert_default(spec, "terminationGracePeriodSeconds", json!(30));
    insert_default(spec, "securityContext", json!({}));
    insert_default(spec, "schedulerName", json!("default-scheduler"));
    if is_pod {
        insert_default(spec, "enableServiceLinks", json!(true));
    }
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        if let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) {
            for container in containers.iter_mut().filter_map(Value::as_object_mut) {
                container_defaults(container);
            }
        }
    }
}

/// Upstream's `SetDefaults_Pod`: a container or init container limiting a resource
/// it does not request requests its limit. Pods only, not templates, so a workload's
/// pods get it when they are created (and quota charges the request).
fn requests_from_limits(spec: &mut Map<String, Value>) {
    for list in ["initContainers", "containers"] {
        let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) else {
            continue;
        };
        for container in containers.iter_mut() {
            let Some(resources) = container
                .get_mut("resources")
                .and_then(Value::as_object_mut)
            else {
                continue;
            };
            let Some(limits) = resources.get("limits").and_then(Value::as_object).cloned() else {
                continue;
            };
            if limits.is_empty() {
                continue;
            }
            let requests = resources.entry("requests").or_insert_with(|| json!({}));
            if requests.is_null() {
                *requests = json!({});
            }
            if let Some(requests) = requests.as_object_mut() {
                for (name, limit) in limits {
                    requests.entry(name).or_insert(limit);
                }
            }
        }
    }
}

fn object_at<'a>(object: &'a mut Value, pointer: &str) -> Option<&'a mut Map<String, Value>> {
    object.pointer_mut(pointer).and_then(Value::as_object_mut)
}

/// Upstream's defaults for pods and workloads, applied on create and update.
pub fn set_defaults(resource: &ResourceInfo, object: &mut Value) {
    if let Some(path) = pod_spec_path(resource)
        && let Some(spec) = object_at(object, path)
    {
        let is_pod = resource.group.is_empty() && resource.plural == "pods";
        pod_spec_defaults(spec, is_pod);
        if is_pod {
            requests_from_limits(spec);
        }
    }
    let Some(spec) = object_at(object, "/spec") else {
        return;
    };
    match (resource.group, resource.plural) {
        ("apps", "deployments") => {
            insert_default(spec, "replicas", json!(1));
            insert_default(spec, "revisionHistoryLimit", json!(10));
            insert_default(spec, "progressDeadlineSeconds", json!(600));
            let strategy = spec.entry("strategy").or_insert_with(|| json!({}));
            if let Some(strategy) = strategy.as_object_mut() {
                insert_default(strategy, "type", json!("RollingUpdate"));
                if strategy.get("type") == Some(&json!("RollingUpdate")) {
                    let rolling = strategy.entry("rollingUpdate").or_insert_with(|| json!({}));
                    if let Some(rolling) = rolling.as_object_mut() {
                        insert_default(rolling, "maxUnavailable", json!("25%"));
                        insert_default(rolling, "maxSurge", json!("25%"));
                    }
                }
            }
        }
        ("apps", "replicasets") | ("", "replicationcontrollers") => {
            insert_default(spec, "replicas", json!(1))
        }
        ("apps", "statefulsets") => {
            insert_default(spec, "replicas", json!(1));
            insert_default(spec, "podManagementPolicy", json!("OrderedReady"));
            insert_default(spec, "revisionHistoryLimit", json!(10));
            insert_default(
                spec,
                "updateStrategy",
                json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
            );
            insert_default(
                spec,
                "persistentVolumeClaimRetentionPolicy",
                json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
            );
        }
        ("apps", "daemonsets") => {
            insert_default(spec, "revisionHistoryLimit", json!(10));
            insert_default(
                spec,
                "updateStrategy",
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}),
            );
        }
        ("batch", "jobs") => {
            insert_default(spec, "parallelism", json!(1));
            if !spec.contains_key("completions") && spec.get("parallelism") == Some(&json!(1)) {
                spec.insert("completions".into(), json!(1));
            }
            // upstream's SetDefaults_Job: with a per-index limit the global one is
            // unbounded, and with a pod failure policy replacements wait for Failed
            let per_index = spec
                .get("backoffLimitPerIndex")
                .is_some_and(|v| !v.is_null());
            insert_default(
                spec,
                "backoffLimit",
                json!(if per_index { i32::MAX } else { 6 }),
            );
            insert_default(spec, "completionMode", json!("NonIndexed"));
            insert_default(spec, "suspend", json!(false));
            let failure_policy = spec.get("podFailurePolicy").is_some_and(|v| !v.is_null());
            insert_default(
                spec,
                "podReplacementPolicy",
                json!(if failure_policy {
                    "Failed"
                } else {
                    "TerminatingOrFailed"
                }),
            );
        }
        ("batch", "cronjobs") => {
            insert_default(spec, "concurrencyPolicy", json!("Allow"));
            insert_default(spec, "suspend", json!(false));
            insert_default(spec, "successfulJobsHistoryLimit", json!(3));
            insert_default(spec, "failedJobsHistoryLimit", json!(1));
        }
        _ => {}
    }
}

fn validate_containers(spec: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let containers = spec.get("containers").and_then(Value::as_array);
    if containers.is_none_or(Vec::is_empty) {
        errors.push(FieldError::required(format!("{path}.containers"), ""));
    }
    let mut names = std::collections::HashSet::new();
    for list in ["initContainers", "containers"] {
        for (i, container) in spec
            .get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let at = format!("{path}.{list}[{i}]");
            match container
                .get("name")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
            {
                None => errors.push(FieldError::required(format!("{at}.name"), "")),
                Some(name) => {
                    for message in labels::is_dns1123_label(name) {
                        errors.push(FieldError::invalid(format!("{at}.name"), name, message));
                    }
                    if !names.insert(name.to_owned()) {
                        errors.push(FieldError::duplicate(format!("{at}.name"), name));
                    }
                }
            }
            if container
                .get("image")
                .and_then(Value::as_str)
                .is_none_or(|i| i.trim().is_empty())
            {
                errors.push(FieldError::required(format!("{at}.image"), ""));
            }
        }
    }
    const RESTART: &[&str] = &["Always", "OnFailure", "Never"];
    if let Some(policy) = spec.get("restartPolicy").and_then(Value::as_str)
        && !RESTART.contains(&policy)
    {
        errors.push(FieldError::not_supported(
            format!("{path}.restartPolicy"),
            policy,
            RESTART,
        ));
    }
}

fn as_label_map(value: Option<&Value>) -> Option<labels::Labels> {
    value?.as_object().map(|m| {
        m.iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
            .collect()
    })
}

/// Validation of pods and workloads (a first subset of upstream's rules).
pub fn validate(resource: &ResourceInfo, object: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if let Some(path) = pod_spec_path(resource) {
        // A missing spec is Go's zero value: an empty spec, reported field by field.
        let empty = json!({});
        let spec = object.pointer(path).unwrap_or(&empty);
        validate_containers(spec, &field_path(path), &mut errors);
    }
    if resource.group == "apps"
        && ["deployments", "replicasets", "statefulsets", "daemonsets"].contains(&resource.plural)
    {
        if let Some(replicas) = object.pointer("/spec/replicas").and_then(Value::as_i64)
            && replicas < 0
        {
            errors.push(FieldError::invalid(
                "spec.replicas",
                replicas,
                "must be greater than or equal to 0",
            ));
        }
        let selector = object.pointer("/spec/selector");
        let match_labels = as_label_map(selector.and_then(|s| s.get("matchLabels")));
        let has_expressions = selector
            .and_then(|s| s.get("matchExpressions"))
            .and_then(Value::as_array)
            .is_some_and(|e| !e.is_empty());
        match (&match_labels, has_expressions) {
            (None, false) => errors.push(FieldError::required("spec.selector", "")),
            (Some(m), false) if m.is_empty() => errors.push(FieldError::invalid(
                "spec.selector",
                "{}",
                "empty selector is invalid for deployment",
            )),
            _ => {
                let template = as_label_map(object.pointer("/spec/template/metadata/labels"))
                    .unwrap_or_default();
                let matches = match_labels
                    .iter()
                    .flatten()
                    .all(|(k, v)| template.get(k) == Some(v));
                if !matches {
                    let shown: Vec<String> = template
                        .iter()
                        .map(|(k, v)| format!("{k:?}:{v:?}"))
                        .collect();
                    errors.push(FieldError::invalid(
                        "spec.template.metadata.labels",
                        format!("map[string]string{{{}}}", shown.join(", ")),
                        "`selector` does not match template `labels`",
                    ));
                }
            }
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use apimachinery::resources::find;

    #[test]
    fn pods_get_upstreams_defaults() {
        let pods = find("", "v1", "pods").unwrap();
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "nginx", "ports": [{"containerPort": 80}]}, {"name": "d", "image": "busybox:1.36"}]}});
        set_defaults(pods, &mut pod);
        assert_eq!(pod["spec"]["restartPolicy"], "Always");
        assert_eq!(pod["spec"]["dnsPolicy"], "ClusterFirst");
        assert_eq!(pod["spec"]["terminationGracePeriodSeconds"], 30);
        assert_eq!(pod["spec"]["enableServiceLinks"], true);
        assert_eq!(pod["spec"]["containers"][0]["imagePullPolicy"], "Always");
        assert_eq!(
            pod["spec"]["containers"][1]["imagePullPolicy"],
            "IfNotPresent"
        );
        assert_eq!(pod["spec"]["containers"][0]["ports"][0]["protocol"], "TCP");
        assert_eq!(
            pod["spec"]["containers"][0]["terminationMessagePolicy"],
            "File"
        );
        assert!(validate(pods, &pod).is_empty());
    }

    #[test]
    fn pods_request_what_they_limit_but_templates_do_not() {
        let pods = find("", "v1", "pods").unwrap();
        let spec = json!({
            "initContainers": [{"name": "i", "image": "x", "resources": {"limits": {"cpu": "1"}}}],
            "containers": [
                {"name": "a", "image": "x", "resources": {"requests": {"cpu": "100m"}, "limits": {"cpu": "1", "memory": "1Gi"}}},
                {"name": "b", "image": "x"}
            ]
        });
        let mut pod = json!({"metadata": {"name": "p"}, "spec": spec.clone()});
        set_defaults(pods, &mut pod);
        let containers = &pod["spec"]["containers"];
        // a stated request stays, a missing one is the limit
        assert_eq!(
            containers[0]["resources"]["requests"],
            json!({"cpu": "100m", "memory": "1Gi"})
        );
        assert_eq!(containers[1]["resources"], json!({}));
        assert_eq!(
            pod["spec"]["initContainers"][0]["resources"]["requests"],
            json!({"cpu": "1"})
        );
        let deployments = find("apps", "v1", "deployments").unwrap();
        let mut deployment = json!({"spec": {"template": {"spec": spec}}});
        set_defaults(deployments, &mut deployment);
        assert!(
            deployment["spec"]["template"]["spec"]["initContainers"][0]["resources"]
                .get("requests")
                .is_none()
        );
    }

    #[test]
    fn jobs_default_their_limits_by_their_policies() {
        let jobs = find("batch", "v1", "jobs").unwrap();
        let template = json!({"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}});
        let mut plain = json!({"spec": {"template": template.clone()}});
        set_defaults(jobs, &mut plain);
        assert_eq!(plain["spec"]["backoffLimit"], 6);
        assert_eq!(plain["spec"]["podReplacementPolicy"], "TerminatingOrFailed");
        let mut per_index = json!({"spec": {"completionMode": "Indexed", "completions": 3,
            "backoffLimitPerIndex": 1, "template": template.clone()}});
        set_defaults(jobs, &mut per_index);
        assert_eq!(per_index["spec"]["backoffLimit"], i32::MAX);
        let mut with_policy = json!({"spec": {"template": template,
            "podFailurePolicy": {"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}]}}});
        set_defaults(jobs, &mut with_policy);
        assert_eq!(with_policy["spec"]["podReplacementPolicy"], "Failed");
        assert_eq!(with_policy["spec"]["backoffLimit"], 6);
    }

    #[test]
    fn pull_policy_follows_the_tag() {
        assert_eq!(pull_policy("nginx"), "Always");
        assert_eq!(pull_policy("nginx:latest"), "Always");
        assert_eq!(pull_policy("registry:5000/app"), "Always");
        assert_eq!(pull_policy("registry:5000/app:v1"), "IfNotPresent");
        assert_eq!(pull_policy("app@sha256:abc"), "IfNotPresent");
    }

    #[test]
    fn deployments_need_a_matching_selector() {
        let deployments = find("apps", "v1", "deployments").unwrap();
        let mut d = json!({"metadata": {"name": "web"}, "spec": {"template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}});
        set_defaults(deployments, &mut d);
        assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        let errors = validate(deployments, &d);
        assert_eq!(errors.len(), 1);
        assert_eq!(
            format!("{}: {}", errors[0].field, errors[0].body()),
            "spec.selector: Required value"
        );
        d["spec"]["selector"] = json!({"matchLabels": {"app": "other"}});
        let errors = validate(deployments, &d);
        assert!(
            errors[0]
                .body()
                .contains("`selector` does not match template `labels`"),
            "{errors:?}"
        );
        d["spec"]["selector"] = json!({"matchLabels": {"app": "web"}});
        assert!(validate(deployments, &d).is_empty());
    }

    #[test]
    fn containers_need_names_and_images() {
        let pods = find("", "v1", "pods").unwrap();
        let errors = validate(
            pods,
            &json!({"spec": {"containers": [{"name": "Bad_Name"}, {"name": "x", "image": "i"}, {"name": "x", "image": "i"}]}}),
        );
        let fields: Vec<String> = errors.iter().map(|e| e.field.clone()).collect();
        assert!(
            fields.contains(&"spec.containers[0].name".to_owned()),
            "{fields:?}"
        );
        assert!(
            fields.contains(&"spec.containers[0].image".to_owned()),
            "{fields:?}"
        );
        assert!(
            fields.contains(&"spec.containers[2].name".to_owned()),
            "duplicate: {fields:?}"
        );
        let errors = validate(pods, &json!({"spec": {}}));
        assert_eq!(
            format!("{}: {}", errors[0].field, errors[0].body()),
            "spec.containers: Required value"
        );
    }
}
