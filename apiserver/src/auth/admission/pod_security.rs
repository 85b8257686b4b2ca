//! PodSecurity: the built-in admission plugin enforcing the Pod Security Standards
//! (`privileged`, `baseline`, `restricted`) that a namespace selects through its
//! `pod-security.kubernetes.io/{enforce,audit,warn}[-version]` labels, as upstream's
//! `pod-security-admission` library does inside kube-apiserver.
//!
//! - Pods (creates, significant updates, and writes through subresources other than the
//!   read-only or status ones, e.g. `ephemeralcontainers`) are refused when they violate
//!   the `enforce` level (`pods "x" is forbidden: violates PodSecurity "restricted:latest":
//!   ...`) and warned about when they violate the `warn` level.
//! - Workloads embedding a pod template (deployments, jobs, ...) are only warned about.
//! - Namespaces must carry valid labels; tightening a namespace's `enforce` level warns
//!   about the existing pods that would violate it.
//!
//! The checks, their order (baseline checks by ID, then restricted checks by ID, with the
//! baseline checks a restricted check supersedes left out) and their messages follow
//! upstream's policy package for v1.33, including the per-version variants a
//! `-version` label selects. No exemptions are configured (upstream's default) and audit
//! annotations are not recorded.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use apimachinery::errors::{FieldError, StatusError, go_quote};
use apimachinery::resources::ResourceInfo;
use serde_json::{Map, Value};

use super::{Attributes, Operation, Plugin};
use crate::auth::filter::add_warning;
use crate::registry::informer::Informer;
use crate::registry::{ListParams, Registry};

/// The label selecting the enforced level.
pub const ENFORCE_LEVEL_LABEL: &str = "pod-security.kubernetes.io/enforce";
/// The label selecting the enforced policy version.
pub const ENFORCE_VERSION_LABEL: &str = "pod-security.kubernetes.io/enforce-version";
/// The label selecting the audited level.
pub const AUDIT_LEVEL_LABEL: &str = "pod-security.kubernetes.io/audit";
/// The label selecting the audited policy version.
pub const AUDIT_VERSION_LABEL: &str = "pod-security.kubernetes.io/audit-version";
/// The label selecting the warned level.
pub const WARN_LEVEL_LABEL: &str = "pod-security.kubernetes.io/warn";
/// The label selecting the warned policy version.
pub const WARN_VERSION_LABEL: &str = "pod-security.kubernetes.io/warn-version";

/// At most this many existing pods are checked when a namespace's enforce level tightens.
const NAMESPACE_MAX_PODS_TO_CHECK: usize = 3000;
/// The time budget of that check.
const NAMESPACE_POD_CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// A Pod Security Standards level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Everything is allowed.
    Privileged,
    /// Known privilege escalations are refused.
    Baseline,
    /// Current pod hardening practice is required.
    Restricted,
}

impl Level {
    /// Upstream's `ParseLevel`: an unknown level reads as `restricted`, with an error.
    pub fn parse(value: &str) -> Result<Level, (Level, &'static str)> {
        match value {
            "privileged" => Ok(Level::Privileged),
            "baseline" => Ok(Level::Baseline),
            "restricted" => Ok(Level::Restricted),
            _ => Err((
                Level::Restricted,
                "must be one of privileged, baseline, restricted",
            )),
        }
    }

    /// The label value.
    pub fn as_str(&self) -> &'static str {
        match self {
            Level::Privileged => "privileged",
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A policy version: `latest` or `v1.<minor>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    /// The newest checks.
    Latest,
    /// The checks as of `v1.<minor>`.
    V1(u64),
}

impl Version {
    /// Upstream's `ParseVersion`: anything but `latest` or `v1.x` reads as `latest`, with
    /// an error.
    pub fn parse(value: &str) -> Result<Version, (Version, &'static str)> {
        const ERROR: &str = r#"must be "latest" or "v1.x""#;
        if value == "latest" {
            return Ok(Version::Latest);
        }
        let Some(minor) = value.strip_prefix("v1.") else {
            return Err((Version::Latest, ERROR));
        };
        let digits_only = !minor.is_empty() && minor.bytes().all(|b| b.is_ascii_digit());
        let leading_zero = minor.len() > 1 && minor.starts_with('0');
        if !digits_only || leading_zero {
            return Err((Version::Latest, ERROR));
        }
        match minor.parse::<u64>() {
            Ok(n) if n <= i64::MAX as u64 => Ok(Version::V1(n)),
            _ => Err((Version::Latest, ERROR)),
        }
    }

    /// The minor version checks are selected by (`latest` is newer than any).
    fn minor(&self) -> u64 {
        match self {
            Version::Latest => u64::MAX,
            Version::V1(minor) => *minor,
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Version::Latest => f.write_str("latest"),
            Version::V1(minor) => write!(f, "v1.{minor}"),
        }
    }
}

/// A level at a version, printed `restricted:latest`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LevelVersion {
    /// The level.
    pub level: Level,
    /// The version.
    pub version: Version,
}

impl LevelVersion {
    const PRIVILEGED: LevelVersion = LevelVersion {
        level: Level::Privileged,
        version: Version::Latest,
    };
}

impl fmt::Display for LevelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.level, self.version)
    }
}

/// What a namespace's labels select for each mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Violations are refused.
    pub enforce: LevelVersion,
    /// Violations are recorded in the audit log.
    pub audit: LevelVersion,
    /// Violations are answered with a warning.
    pub warn: LevelVersion,
}

impl Default for Policy {
    /// kube-apiserver's default configuration: privileged:latest for every mode.
    fn default() -> Self {
        Policy {
            enforce: LevelVersion::PRIVILEGED,
            audit: LevelVersion::PRIVILEGED,
            warn: LevelVersion::PRIVILEGED,
        }
    }
}

/// Upstream's `PolicyToEvaluate` over the default policy: a usable policy always, plus
/// one error per invalid label. An invalid enforce level fails closed (`restricted`), an
/// invalid audit or warn level fails open (`privileged`), an invalid version reads as
/// `latest`.
pub fn policy_from_labels(labels: Option<&Map<String, Value>>) -> (Policy, Vec<FieldError>) {
    let mut policy = Policy::default();
    let mut errors = Vec::new();
    let Some(labels) = labels else {
        return (policy, errors);
    };
    let label = |key: &str| labels.get(key).map(|v| v.as_str().unwrap_or(""));
    let mut invalid = |key: &str, value: &str, message: &str| {
        errors.push(FieldError::invalid(
            format!("metadata.labels[{key}]"),
            value,
            message,
        ));
    };
    let modes: [(&str, &str, &mut LevelVersion, Level); 3] = [
        (
            ENFORCE_LEVEL_LABEL,
            ENFORCE_VERSION_LABEL,
            &mut policy.enforce,
            Level::Restricted,
        ),
        (
            AUDIT_LEVEL_LABEL,
            AUDIT_VERSION_LABEL,
            &mut policy.audit,
            Level::Privileged,
        ),
        (
            WARN_LEVEL_LABEL,
            WARN_VERSION_LABEL,
            &mut policy.warn,
            Level::Privileged,
        ),
    ];
    for (level_key, version_key, target, on_error) in modes {
        if let Some(value) = label(level_key) {
            target.level = match Level::parse(value) {
                Ok(level) => level,
                Err((_, message)) => {
                    invalid(level_key, value, message);
                    on_error
                }
            };
        }
        if let Some(value) = label(version_key) {
            target.version = match Version::parse(value) {
                Ok(version) => version,
                Err((fallback, message)) => {
                    invalid(version_key, value, message);
                    fallback
                }
            };
        }
    }
    (policy, errors)
}

/// One failed check: a short reason and, when there is one, the detail naming the
/// offending fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// e.g. `host namespaces`.
    pub reason: String,
    /// e.g. `hostNetwork=true`; may be empty.
    pub detail: String,
}

/// Upstream's `ForbiddenDetail`: `reason (detail), reason, ...`.
pub fn forbidden_detail(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(|v| {
            if v.detail.is_empty() {
                v.reason.clone()
            } else {
                format!("{} ({})", v.reason, v.detail)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Upstream's `ForbiddenReason`: the reasons only.
pub fn forbidden_reason(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(|v| v.reason.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The pod(-template) under evaluation: its metadata and spec.
struct Pod<'a> {
    metadata: &'a Value,
    spec: &'a Value,
}

static NULL: Value = Value::Null;

impl<'a> Pod<'a> {
    fn of(metadata: Option<&'a Value>, spec: Option<&'a Value>) -> Self {
        Pod {
            metadata: metadata.unwrap_or(&NULL),
            spec: spec.unwrap_or(&NULL),
        }
    }

    /// Every container: init containers, containers, then ephemeral containers.
    fn containers(&self) -> impl Iterator<Item = &'a Value> + use<'a> {
        let spec = self.spec;
        list(spec, "initContainers")
            .iter()
            .chain(list(spec, "containers"))
            .chain(list(spec, "ephemeralContainers"))
    }

    fn security_context(&self) -> Option<&'a Value> {
        present(self.spec, "securityContext")
    }

    fn annotations(&self) -> Option<&'a Map<String, Value>> {
        self.metadata.get("annotations").and_then(Value::as_object)
    }

    fn annotation(&self, key: &str) -> Option<&'a str> {
        self.annotations()
            .and_then(|a| a.get(key))
            .map(|v| v.as_str().unwrap_or(""))
    }

    fn is_windows(&self) -> bool {
        present(self.spec, "os").is_some_and(|os| text(os, "name") == "windows")
    }
}

/// A field that is set (present and not null).
fn present<'a>(object: &'a Value, key: &str) -> Option<&'a Value> {
    object.get(key).filter(|v| !v.is_null())
}

/// A string field, `""` when unset.
fn text<'a>(object: &'a Value, key: &str) -> &'a str {
    object.get(key).and_then(Value::as_str).unwrap_or("")
}

/// A list field, empty when unset.
fn list<'a>(object: &'a Value, key: &str) -> &'a [Value] {
    object
        .get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn container_name(container: &Value) -> String {
    text(container, "name").to_owned()
}

fn container_security_context(container: &Value) -> Option<&Value> {
    present(container, "securityContext")
}

/// A boolean field of a security context, `None` when unset.
fn flag(security_context: Option<&Value>, key: &str) -> Option<bool> {
    security_context
        .and_then(|sc| sc.get(key))
        .and_then(Value::as_bool)
}

/// `"a", "b"`.
fn join_quote<S: AsRef<str>>(items: &[S]) -> String {
    if items.is_empty() {
        return String::new();
    }
    let inner: Vec<&str> = items.iter().map(AsRef::as_ref).collect();
    format!("\"{}\"", inner.join("\", \""))
}

fn pluralize(singular: &'static str, plural: &'static str, count: usize) -> &'static str {
    if count == 1 { singular } else { plural }
}

/// `container "a"` / `containers "a", "b"`.
fn containers_phrase(names: &[String]) -> String {
    format!(
        "{} {}",
        pluralize("container", "containers", names.len()),
        join_quote(names)
    )
}

fn sorted(set: &BTreeSet<String>) -> Vec<String> {
    set.iter().cloned().collect()
}

fn violation(reason: impl Into<String>, detail: impl Into<String>) -> Option<Violation> {
    Some(Violation {
        reason: reason.into(),
        detail: detail.into(),
    })
}

// ---------------------------------------------------------------------------------------
// Baseline checks
// ---------------------------------------------------------------------------------------

fn allowed_app_armor_type(profile: Option<&Value>) -> bool {
    matches!(
        profile.map(|p| text(p, "type")),
        None | Some("RuntimeDefault") | Some("Localhost")
    )
}

fn app_armor_profile(pod: &Pod<'_>) -> Option<Violation> {
    const ANNOTATION_PREFIX: &str = "container.apparmor.security.beta.kubernetes.io/";
    let mut setters: Vec<String> = Vec::new();
    let mut bad_values = BTreeSet::new();
    if let Some(profile) = pod
        .security_context()
        .and_then(|sc| present(sc, "appArmorProfile"))
        && !allowed_app_armor_type(Some(profile))
    {
        setters.push("pod".into());
        bad_values.insert(text(profile, "type").to_owned());
    }
    let mut bad_containers = Vec::new();
    for container in pod.containers() {
        if let Some(profile) =
            container_security_context(container).and_then(|sc| present(sc, "appArmorProfile"))
            && !allowed_app_armor_type(Some(profile))
        {
            bad_containers.push(container_name(container));
            bad_values.insert(text(profile, "type").to_owned());
        }
    }
    if !bad_containers.is_empty() {
        setters.push(containers_phrase(&bad_containers));
    }
    let mut bad_annotations: Vec<String> = pod
        .annotations()
        .into_iter()
        .flatten()
        .filter_map(|(key, value)| {
            let value = value.as_str().unwrap_or("");
            let allowed =
                value.is_empty() || value == "runtime/default" || value.starts_with("localhost/");
            (key.starts_with(ANNOTATION_PREFIX) && !allowed)
                .then(|| format!("{key}={}", go_quote(value)))
        })
        .collect();
    let mut values = sorted(&bad_values);
    if !bad_annotations.is_empty() {
        bad_annotations.sort();
        setters.push(pluralize("annotation", "annotations", bad_annotations.len()).into());
        values.extend(bad_annotations);
    }
    if setters.is_empty() {
        return None;
    }
    violation(
        pluralize(
            "forbidden AppArmor profile",
            "forbidden AppArmor profiles",
            values.len(),
        ),
        format!(
            "{} must not set AppArmor profile type to {}",
            setters.join(" and "),
            join_quote(&values)
        ),
    )
}

fn capabilities_baseline(pod: &Pod<'_>) -> Option<Violation> {
    const ALLOWED: &[&str] = &[
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    ];
    let mut bad_containers = Vec::new();
    let mut bad_capabilities = BTreeSet::new();
    for container in pod.containers() {
        let Some(capabilities) =
            container_security_context(container).and_then(|sc| present(sc, "capabilities"))
        else {
            continue;
        };
        let mut valid = true;
        for added in list(capabilities, "add") {
            let added = added.as_str().unwrap_or("");
            if !ALLOWED.contains(&added) {
                valid = false;
                bad_capabilities.insert(added.to_owned());
            }
        }
        if !valid {
            bad_containers.push(container_name(container));
        }
    }
    if bad_containers.is_empty() {
        return None;
    }
    violation(
        "non-default capabilities",
        format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers_phrase(&bad_containers),
            join_quote(&sorted(&bad_capabilities))
        ),
    )
}

fn host_namespaces(pod: &Pod<'_>) -> Option<Violation> {
    // sorted, as upstream lists them from a set
    let used: Vec<&str> = ["hostIPC", "hostNetwork", "hostPID"]
        .into_iter()
        .filter(|key| pod.spec.get(*key).and_then(Value::as_bool) == Some(true))
        .collect();
    if used.is_empty() {
        return None;
    }
    violation("host namespaces", used.join(", "))
}

fn host_path_volumes(pod: &Pod<'_>) -> Option<Violation> {
    let volumes: Vec<String> = list(pod.spec, "volumes")
        .iter()
        .filter(|v| present(v, "hostPath").is_some())
        .map(|v| text(v, "name").to_owned())
        .collect();
    if volumes.is_empty() {
        return None;
    }
    violation(
        "hostPath volumes",
        format!(
            "{} {}",
            pluralize("volume", "volumes", volumes.len()),
            join_quote(&volumes)
        ),
    )
}

fn host_ports(pod: &Pod<'_>) -> Option<Violation> {
    let mut bad_containers = Vec::new();
    let mut ports = BTreeSet::new();
    for container in pod.containers() {
        let mut valid = true;
        for port in list(container, "ports") {
            let host_port = port.get("hostPort").and_then(Value::as_i64).unwrap_or(0);
            if host_port != 0 {
                valid = false;
                ports.insert(host_port.to_string());
            }
        }
        if !valid {
            bad_containers.push(container_name(container));
        }
    }
    if bad_containers.is_empty() {
        return None;
    }
    violation(
        "hostPort",
        format!(
            "{} {} {} {}",
            containers_phrase(&bad_containers),
            pluralize("uses", "use", bad_containers.len()),
            pluralize("hostPort", "hostPorts", ports.len()),
            sorted(&ports).join(", ")
        ),
    )
}

fn privileged(pod: &Pod<'_>) -> Option<Violation> {
    let bad: Vec<String> = pod
        .containers()
        .filter(|c| flag(container_security_context(c), "privileged") == Some(true))
        .map(container_name)
        .collect();
    if bad.is_empty() {
        return None;
    }
    violation(
        "privileged",
        format!(
            "{} must not set securityContext.privileged=true",
            containers_phrase(&bad)
        ),
    )
}

fn proc_mount(pod: &Pod<'_>) -> Option<Violation> {
    let mut bad_containers = Vec::new();
    let mut types = BTreeSet::new();
    for container in pod.containers() {
        let Some(mount) =
            container_security_context(container).and_then(|sc| present(sc, "procMount"))
        else {
            continue;
        };
        let mount = mount.as_str().unwrap_or("");
        if mount != "Default" {
            bad_containers.push(container_name(container));
            types.insert(mount.to_owned());
        }
    }
    if bad_containers.is_empty() {
        return None;
    }
    violation(
        "procMount",
        format!(
            "{} must not set securityContext.procMount to {}",
            containers_phrase(&bad_containers),
            join_quote(&sorted(&types))
        ),
    )
}

fn se_linux_options(pod: &Pod<'_>) -> Option<Violation> {
    const ALLOWED_TYPES: &[&str] = &["", "container_t", "container_init_t", "container_kvm_t"];
    let mut bad_types = BTreeSet::new();
    let mut set_user = false;
    let mut set_role = false;
    let mut valid = |options: &Value| {
        let mut ok = true;
        let kind = text(options, "type");
        if !ALLOWED_TYPES.contains(&kind) {
            ok = false;
            bad_types.insert(kind.to_owned());
        }
        if !text(options, "user").is_empty() {
            ok = false;
            set_user = true;
        }
        if !text(options, "role").is_empty() {
            ok = false;
            set_role = true;
        }
        ok
    };
    let mut setters: Vec<String> = Vec::new();
    if let Some(options) = pod
        .security_context()
        .and_then(|sc| present(sc, "seLinuxOptions"))
        && !valid(options)
    {
        setters.push("pod".into());
    }
    let mut bad_containers = Vec::new();
    for container in pod.containers() {
        if let Some(options) =
            container_security_context(container).and_then(|sc| present(sc, "seLinuxOptions"))
            && !valid(options)
        {
            bad_containers.push(container_name(container));
        }
    }
    if !bad_containers.is_empty() {
        setters.push(containers_phrase(&bad_containers));
    }
    if setters.is_empty() {
        return None;
    }
    let mut data = Vec::new();
    if !bad_types.is_empty() {
        data.push(format!(
            "{} {}",
            pluralize("type", "types", bad_types.len()),
            join_quote(&sorted(&bad_types))
        ));
    }
    if set_user {
        data.push("user may not be set".to_owned());
    }
    if set_role {
        data.push("role may not be set".to_owned());
    }
    violation(
        "seLinuxOptions",
        format!(
            "{} set forbidden securityContext.seLinuxOptions: {}",
            setters.join(" and "),
            data.join("; ")
        ),
    )
}

fn valid_seccomp_type(profile: &Value) -> bool {
    matches!(text(profile, "type"), "RuntimeDefault" | "Localhost")
}

/// v1.0–v1.18: the alpha seccomp annotations.
fn seccomp_profile_baseline_v1_0(pod: &Pod<'_>) -> Option<Violation> {
    const POD_KEY: &str = "seccomp.security.alpha.kubernetes.io/pod";
    const CONTAINER_PREFIX: &str = "container.seccomp.security.alpha.kubernetes.io/";
    let valid =
        |v: &str| v == "runtime/default" || v == "docker/default" || v.starts_with("localhost/");
    let mut forbidden = BTreeSet::new();
    if let Some(value) = pod.annotation(POD_KEY)
        && !valid(value)
    {
        forbidden.insert(format!("{POD_KEY}={}", go_quote(value)));
    }
    for container in pod.containers() {
        let key = format!("{CONTAINER_PREFIX}{}", text(container, "name"));
        if let Some(value) = pod.annotation(&key)
            && !valid(value)
        {
            forbidden.insert(format!("{key}={}", go_quote(value)));
        }
    }
    if forbidden.is_empty() {
        return None;
    }
    violation(
        "seccompProfile",
        format!(
            "forbidden {} {}",
            pluralize("annotation", "annotations", forbidden.len()),
            sorted(&forbidden).join(", ")
        ),
    )
}

/// v1.19+: the `seccompProfile` fields, which may only name allowed profiles.
fn seccomp_profile_baseline_v1_19(pod: &Pod<'_>) -> Option<Violation> {
    let mut setters: Vec<String> = Vec::new();
    let mut bad_values = BTreeSet::new();
    if let Some(profile) = pod
        .security_context()
        .and_then(|sc| present(sc, "seccompProfile"))
        && !valid_seccomp_type(profile)
    {
        setters.push("pod".into());
        bad_values.insert(text(profile, "type").to_owned());
    }
    let mut bad_containers = Vec::new();
    for container in pod.containers() {
        if let Some(profile) =
            container_security_context(container).and_then(|sc| present(sc, "seccompProfile"))
            && !valid_seccomp_type(profile)
        {
            bad_containers.push(container_name(container));
            bad_values.insert(text(profile, "type").to_owned());
        }
    }
    if !bad_containers.is_empty() {
        setters.push(containers_phrase(&bad_containers));
    }
    if setters.is_empty() {
        return None;
    }
    violation(
        "seccompProfile",
        format!(
            "{} must not set securityContext.seccompProfile.type to {}",
            setters.join(" and "),
            join_quote(&sorted(&bad_values))
        ),
    )
}

const SYSCTLS_V1_0: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_unprivileged_port_start",
];
const SYSCTLS_ADDED_V1_27: &[&str] = &["net.ipv4.ip_local_reserved_ports"];
const SYSCTLS_ADDED_V1_29: &[&str] = &[
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
];
const SYSCTLS_ADDED_V1_32: &[&str] = &["net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"];

fn sysctls_with(pod: &Pod<'_>, allowed: &[&[&str]]) -> Option<Violation> {
    let forbidden: Vec<&str> = pod
        .security_context()
        .map(|sc| list(sc, "sysctls"))
        .unwrap_or(&[])
        .iter()
        .map(|s| text(s, "name"))
        .filter(|name| !allowed.iter().any(|set| set.contains(name)))
        .collect();
    if forbidden.is_empty() {
        return None;
    }
    violation("forbidden sysctls", forbidden.join(", "))
}

fn sysctls_v1_0(pod: &Pod<'_>) -> Option<Violation> {
    sysctls_with(pod, &[SYSCTLS_V1_0])
}

fn sysctls_v1_27(pod: &Pod<'_>) -> Option<Violation> {
    sysctls_with(pod, &[SYSCTLS_V1_0, SYSCTLS_ADDED_V1_27])
}

fn sysctls_v1_29(pod: &Pod<'_>) -> Option<Violation> {
    sysctls_with(
        pod,
        &[SYSCTLS_V1_0, SYSCTLS_ADDED_V1_27, SYSCTLS_ADDED_V1_29],
    )
}

fn sysctls_v1_32(pod: &Pod<'_>) -> Option<Violation> {
    sysctls_with(
        pod,
        &[
            SYSCTLS_V1_0,
            SYSCTLS_ADDED_V1_27,
            SYSCTLS_ADDED_V1_29,
            SYSCTLS_ADDED_V1_32,
        ],
    )
}

fn windows_host_process(pod: &Pod<'_>) -> Option<Violation> {
    let host_process = |sc: Option<&Value>| {
        sc.and_then(|sc| present(sc, "windowsOptions"))
            .and_then(|w| w.get("hostProcess"))
            .and_then(Value::as_bool)
            == Some(true)
    };
    let bad_containers: Vec<String> = pod
        .containers()
        .filter(|c| host_process(container_security_context(c)))
        .map(container_name)
        .collect();
    let mut setters: Vec<String> = Vec::new();
    if host_process(pod.security_context()) {
        setters.push("pod".into());
    }
    if !bad_containers.is_empty() {
        setters.push(containers_phrase(&bad_containers));
    }
    if setters.is_empty() {
        return None;
    }
    violation(
        "hostProcess",
        format!(
            "{} must not set securityContext.windowsOptions.hostProcess=true",
            setters.join(" and ")
        ),
    )
}

// ---------------------------------------------------------------------------------------
// Restricted checks
// ---------------------------------------------------------------------------------------

fn allow_privilege_escalation_v1_8(pod: &Pod<'_>) -> Option<Violation> {
    let bad: Vec<String> = pod
        .containers()
        .filter(|c| flag(container_security_context(c), "allowPrivilegeEscalation") != Some(false))
        .map(container_name)
        .collect();
    if bad.is_empty() {
        return None;
    }
    violation(
        "allowPrivilegeEscalation != false",
        format!(
            "{} must set securityContext.allowPrivilegeEscalation=false",
            containers_phrase(&bad)
        ),
    )
}

/// v1.25+: Windows pods cannot set the field, so they pass.
fn allow_privilege_escalation_v1_25(pod: &Pod<'_>) -> Option<Violation> {
    if pod.is_windows() {
        return None;
    }
    allow_privilege_escalation_v1_8(pod)
}

fn capabilities_restricted_v1_22(pod: &Pod<'_>) -> Option<Violation> {
    let mut missing_drop_all = Vec::new();
    let mut adding_forbidden = Vec::new();
    let mut forbidden = BTreeSet::new();
    for container in pod.containers() {
        let Some(capabilities) =
            container_security_context(container).and_then(|sc| present(sc, "capabilities"))
        else {
            missing_drop_all.push(container_name(container));
            continue;
        };
        if !list(capabilities, "drop")
            .iter()
            .any(|c| c.as_str() == Some("ALL"))
        {
            missing_drop_all.push(container_name(container));
        }
        let mut added_forbidden = false;
        for added in list(capabilities, "add") {
            let added = added.as_str().unwrap_or("");
            if added != "NET_BIND_SERVICE" {
                added_forbidden = true;
                forbidden.insert(added.to_owned());
            }
        }
        if added_forbidden {
            adding_forbidden.push(container_name(container));
        }
    }
    let mut details = Vec::new();
    if !missing_drop_all.is_empty() {
        details.push(format!(
            r#"{} must set securityContext.capabilities.drop=["ALL"]"#,
            containers_phrase(&missing_drop_all)
        ));
    }
    if !adding_forbidden.is_empty() {
        details.push(format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers_phrase(&adding_forbidden),
            join_quote(&sorted(&forbidden))
        ));
    }
    if details.is_empty() {
        return None;
    }
    violation("unrestricted capabilities", details.join("; "))
}

/// v1.25+: Windows pods pass.
fn capabilities_restricted_v1_25(pod: &Pod<'_>) -> Option<Violation> {
    if pod.is_windows() {
        return None;
    }
    capabilities_restricted_v1_22(pod)
}

/// The volume sources the restricted level allows.
const ALLOWED_VOLUME_SOURCES: &[&str] = &[
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

/// The volume sources the restricted level names when refusing them, in upstream's order.
const RESTRICTED_VOLUME_SOURCES: &[&str] = &[
    "hostPath",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "nfs",
    "iscsi",
    "glusterfs",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "fc",
    "azureFile",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "portworxVolume",
    "scaleIO",
    "storageos",
];

fn restricted_volumes(pod: &Pod<'_>) -> Option<Violation> {
    let mut bad_volumes = Vec::new();
    let mut bad_types = BTreeSet::new();
    for volume in list(pod.spec, "volumes") {
        if ALLOWED_VOLUME_SOURCES
            .iter()
            .any(|source| present(volume, source).is_some())
        {
            continue;
        }
        bad_volumes.push(text(volume, "name").to_owned());
        let kind = RESTRICTED_VOLUME_SOURCES
            .iter()
            .find(|source| present(volume, source).is_some())
            .copied()
            .unwrap_or("unknown");
        bad_types.insert(kind.to_owned());
    }
    if bad_volumes.is_empty() {
        return None;
    }
    violation(
        "restricted volume types",
        format!(
            "{} {} {} {} {}",
            pluralize("volume", "volumes", bad_volumes.len()),
            join_quote(&bad_volumes),
            pluralize("uses", "use", bad_volumes.len()),
            pluralize(
                "restricted volume type",
                "restricted volume types",
                bad_types.len()
            ),
            join_quote(&sorted(&bad_types))
        ),
    )
}

fn run_as_non_root(pod: &Pod<'_>) -> Option<Violation> {
    let mut setters: Vec<String> = Vec::new();
    let mut pod_non_root = false;
    match flag(pod.security_context(), "runAsNonRoot") {
        Some(false) => setters.push("pod".into()),
        Some(true) => pod_non_root = true,
        None => {}
    }
    let mut explicitly_bad = Vec::new();
    let mut implicitly_bad = Vec::new();
    for container in pod.containers() {
        match flag(container_security_context(container), "runAsNonRoot") {
            Some(false) => explicitly_bad.push(container_name(container)),
            Some(true) => {}
            None if !pod_non_root => implicitly_bad.push(container_name(container)),
            None => {}
        }
    }
    if !explicitly_bad.is_empty() {
        setters.push(containers_phrase(&explicitly_bad));
    }
    if !setters.is_empty() {
        return violation(
            "runAsNonRoot != true",
            format!(
                "{} must not set securityContext.runAsNonRoot=false",
                setters.join(" and ")
            ),
        );
    }
    if !implicitly_bad.is_empty() {
        return violation(
            "runAsNonRoot != true",
            format!(
                "pod or {} must set securityContext.runAsNonRoot=true",
                containers_phrase(&implicitly_bad)
            ),
        );
    }
    None
}

fn run_as_user_v1_23(pod: &Pod<'_>) -> Option<Violation> {
    let is_root = |sc: Option<&Value>| {
        sc.and_then(|sc| sc.get("runAsUser"))
            .and_then(Value::as_i64)
            == Some(0)
    };
    let mut setters: Vec<String> = Vec::new();
    if is_root(pod.security_context()) {
        setters.push("pod".into());
    }
    let bad: Vec<String> = pod
        .containers()
        .filter(|c| is_root(container_security_context(c)))
        .map(container_name)
        .collect();
    if !bad.is_empty() {
        setters.push(containers_phrase(&bad));
    }
    if setters.is_empty() {
        return None;
    }
    violation(
        "runAsUser=0",
        format!("{} must not set runAsUser=0", setters.join(" and ")),
    )
}

fn seccomp_profile_restricted_v1_19(pod: &Pod<'_>) -> Option<Violation> {
    let mut setters: Vec<String> = Vec::new();
    let mut bad_values = BTreeSet::new();
    let mut pod_set = false;
    if let Some(profile) = pod
        .security_context()
        .and_then(|sc| present(sc, "seccompProfile"))
    {
        if valid_seccomp_type(profile) {
            pod_set = true;
        } else {
            setters.push("pod".into());
            bad_values.insert(text(profile, "type").to_owned());
        }
    }
    let mut explicitly_bad = Vec::new();
    let mut implicitly_bad = Vec::new();
    for container in pod.containers() {
        match container_security_context(container).and_then(|sc| present(sc, "seccompProfile")) {
            Some(profile) => {
                if !valid_seccomp_type(profile) {
                    explicitly_bad.push(container_name(container));
                    bad_values.insert(text(profile, "type").to_owned());
                }
            }
            None if !pod_set => implicitly_bad.push(container_name(container)),
            None => {}
        }
    }
    if !explicitly_bad.is_empty() {
        setters.push(containers_phrase(&explicitly_bad));
    }
    if !setters.is_empty() {
        return violation(
            "seccompProfile",
            format!(
                "{} must not set securityContext.seccompProfile.type to {}",
                setters.join(" and "),
                join_quote(&sorted(&bad_values))
            ),
        );
    }
    if !implicitly_bad.is_empty() {
        return violation(
            "seccompProfile",
            format!(
                r#"pod or {} must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost""#,
                containers_phrase(&implicitly_bad)
            ),
        );
    }
    None
}

/// v1.25+: Windows pods pass.
fn seccomp_profile_restricted_v1_25(pod: &Pod<'_>) -> Option<Violation> {
    if pod.is_windows() {
        return None;
    }
    seccomp_profile_restricted_v1_19(pod)
}

// ---------------------------------------------------------------------------------------
// The check registry
// ---------------------------------------------------------------------------------------

type CheckFn = fn(&Pod<'_>) -> Option<Violation>;

/// One check: its ID, level, its variants by the first minor version they apply to
/// (increasing), and the baseline checks it supersedes at the restricted level.
struct Check {
    id: &'static str,
    level: Level,
    versions: &'static [(u64, CheckFn)],
    overrides: &'static [&'static str],
}

impl Check {
    /// The variant in force at `minor`, if the check exists then.
    fn at(&self, minor: u64) -> Option<CheckFn> {
        self.versions
            .iter()
            .rev()
            .find(|(first, _)| *first <= minor)
            .map(|(_, f)| *f)
    }
}

/// Every check: baseline ones sorted by ID, then restricted ones sorted by ID (the order
/// upstream reports violations in).
const CHECKS: &[Check] = &[
    Check {
        id: "appArmorProfile",
        level: Level::Baseline,
        versions: &[(0, app_armor_profile)],
        overrides: &[],
    },
    Check {
        id: "capabilities_baseline",
        level: Level::Baseline,
        versions: &[(0, capabilities_baseline)],
        overrides: &[],
    },
    Check {
        id: "hostNamespaces",
        level: Level::Baseline,
        versions: &[(0, host_namespaces)],
        overrides: &[],
    },
    Check {
        id: "hostPathVolumes",
        level: Level::Baseline,
        versions: &[(0, host_path_volumes)],
        overrides: &[],
    },
    Check {
        id: "hostPorts",
        level: Level::Baseline,
        versions: &[(0, host_ports)],
        overrides: &[],
    },
    Check {
        id: "privileged",
        level: Level::Baseline,
        versions: &[(0, privileged)],
        overrides: &[],
    },
    Check {
        id: "procMount",
        level: Level::Baseline,
        versions: &[(0, proc_mount)],
        overrides: &[],
    },
    Check {
        id: "seLinuxOptions",
        level: Level::Baseline,
        versions: &[(0, se_linux_options)],
        overrides: &[],
    },
    Check {
        id: "seccompProfile_baseline",
        level: Level::Baseline,
        versions: &[
            (0, seccomp_profile_baseline_v1_0),
            (19, seccomp_profile_baseline_v1_19),
        ],
        overrides: &[],
    },
    Check {
        id: "sysctls",
        level: Level::Baseline,
        versions: &[
            (0, sysctls_v1_0),
            (27, sysctls_v1_27),
            (29, sysctls_v1_29),
            (32, sysctls_v1_32),
        ],
        overrides: &[],
    },
    Check {
        id: "windowsHostProcess",
        level: Level::Baseline,
        versions: &[(0, windows_host_process)],
        overrides: &[],
    },
    Check {
        id: "allowPrivilegeEscalation",
        level: Level::Restricted,
        versions: &[
            (8, allow_privilege_escalation_v1_8),
            (25, allow_privilege_escalation_v1_25),
        ],
        overrides: &[],
    },
    Check {
        id: "capabilities_restricted",
        level: Level::Restricted,
        versions: &[
            (22, capabilities_restricted_v1_22),
            (25, capabilities_restricted_v1_25),
        ],
        overrides: &["capabilities_baseline"],
    },
    Check {
        id: "restrictedVolumes",
        level: Level::Restricted,
        versions: &[(0, restricted_volumes)],
        overrides: &["hostPathVolumes"],
    },
    Check {
        id: "runAsNonRoot",
        level: Level::Restricted,
        versions: &[(0, run_as_non_root)],
        overrides: &[],
    },
    Check {
        id: "runAsUser",
        level: Level::Restricted,
        versions: &[(23, run_as_user_v1_23)],
        overrides: &[],
    },
    Check {
        id: "seccompProfile_restricted",
        level: Level::Restricted,
        versions: &[
            (19, seccomp_profile_restricted_v1_19),
            (25, seccomp_profile_restricted_v1_25),
        ],
        overrides: &["seccompProfile_baseline"],
    },
];

/// Evaluates a pod's metadata and spec against a level and version: the violations, in
/// upstream's order (none at `privileged`).
pub fn evaluate(
    lv: LevelVersion,
    metadata: Option<&Value>,
    spec: Option<&Value>,
) -> Vec<Violation> {
    if lv.level == Level::Privileged {
        return Vec::new();
    }
    let minor = lv.version.minor();
    let pod = Pod::of(metadata, spec);
    let mut overridden: HashSet<&str> = HashSet::new();
    if lv.level == Level::Restricted {
        for check in CHECKS {
            if check.level == Level::Restricted && check.at(minor).is_some() {
                overridden.extend(check.overrides.iter().copied());
            }
        }
    }
    CHECKS
        .iter()
        .filter(|check| check.level <= lv.level && !overridden.contains(check.id))
        .filter_map(|check| check.at(minor))
        .filter_map(|f| f(&pod))
        .collect()
}

/// Evaluates a whole pod object.
pub fn evaluate_pod(lv: LevelVersion, pod: &Value) -> Vec<Violation> {
    evaluate(lv, pod.get("metadata"), pod.get("spec"))
}

// ---------------------------------------------------------------------------------------
// Which writes are evaluated
// ---------------------------------------------------------------------------------------

/// Pod subresources whose writes cannot change what the policy looks at.
const IGNORED_POD_SUBRESOURCES: &[&str] = &[
    "exec",
    "attach",
    "binding",
    "eviction",
    "log",
    "portforward",
    "proxy",
    "status",
];

/// Upstream's `isSignificantPodUpdate`: only images, the seccomp annotations and added
/// containers can change on a pod, so only those updates are evaluated.
pub fn is_significant_pod_update(pod: &Value, old: &Value) -> bool {
    const POD_SECCOMP: &str = "seccomp.security.alpha.kubernetes.io/pod";
    let new_pod = Pod::of(pod.get("metadata"), pod.get("spec"));
    let old_pod = Pod::of(old.get("metadata"), old.get("spec"));
    let annotation = |p: &Pod<'_>, key: &str| p.annotation(key).unwrap_or("").to_owned();
    if annotation(&new_pod, POD_SECCOMP) != annotation(&old_pod, POD_SECCOMP) {
        return true;
    }
    let container_changed = |c: &Value, old_c: &Value| {
        if text(c, "image") != text(old_c, "image") {
            return true;
        }
        let key = format!(
            "container.seccomp.security.alpha.kubernetes.io/{}",
            text(c, "name")
        );
        annotation(&new_pod, &key) != annotation(&old_pod, &key)
    };
    for field in ["containers", "initContainers"] {
        let (new_list, old_list) = (list(new_pod.spec, field), list(old_pod.spec, field));
        if new_list.len() != old_list.len() {
            return true;
        }
        if new_list
            .iter()
            .zip(old_list)
            .any(|(c, old_c)| container_changed(c, old_c))
        {
            return true;
        }
    }
    let old_ephemeral = list(old_pod.spec, "ephemeralContainers");
    list(new_pod.spec, "ephemeralContainers").iter().any(|c| {
        match old_ephemeral
            .iter()
            .find(|o| text(o, "name") == text(c, "name"))
        {
            None => true,
            Some(old_c) => container_changed(c, old_c),
        }
    })
}

/// The pod template a workload embeds, as (metadata, spec); `None` when the resource
/// embeds none or this object has none.
fn pod_template<'a>(resource: &ResourceInfo, object: &'a Value) -> Option<&'a Value> {
    let template = match (resource.group, resource.plural) {
        ("", "podtemplates") => object.get("template"),
        ("", "replicationcontrollers")
        | ("apps", "replicasets")
        | ("apps", "deployments")
        | ("apps", "statefulsets")
        | ("apps", "daemonsets")
        | ("batch", "jobs") => object.get("spec").and_then(|s| s.get("template")),
        ("batch", "cronjobs") => object
            .get("spec")
            .and_then(|s| s.get("jobTemplate"))
            .and_then(|j| j.get("spec"))
            .and_then(|s| s.get("template")),
        _ => None,
    };
    template.filter(|t| !t.is_null())
}

/// The PodSecurity admission plugin.
pub struct PodSecurity {
    registry: Registry,
    namespaces: Option<Arc<Informer>>,
}

impl PodSecurity {
    /// The plugin, following namespaces through an informer.
    pub fn new(registry: &Registry) -> Self {
        let namespaces = apimachinery::resources::find("", "v1", "namespaces")
            .map(|resource| Informer::start(registry.clone(), resource));
        PodSecurity {
            registry: registry.clone(),
            namespaces,
        }
    }

    /// A namespace's labels: from the informer, else read from the store (a namespace
    /// created a moment ago may not have reached the informer yet). `None` when the
    /// namespace cannot be found.
    async fn namespace_labels(&self, name: &str) -> Option<Option<Map<String, Value>>> {
        let labels_of = |ns: &Value| {
            ns.get("metadata")
                .and_then(|m| m.get("labels"))
                .and_then(Value::as_object)
                .cloned()
        };
        if let Some(ns) = self.namespaces.as_ref().and_then(|i| i.get("", name)) {
            return Some(labels_of(&ns));
        }
        let resource = apimachinery::resources::find("", "v1", "namespaces")?;
        let ns = self.registry.get(resource, None, name).await.ok()?;
        Some(labels_of(&ns))
    }

    async fn validate_pod(&self, a: &Attributes<'_>, pod: &Value) -> Result<(), StatusError> {
        if IGNORED_POD_SUBRESOURCES.contains(&a.subresource) || a.namespace.is_empty() {
            return Ok(());
        }
        // a missing namespace is refused by the namespace lifecycle check with its own
        // message; nothing to evaluate against here
        let Some(labels) = self.namespace_labels(a.namespace).await else {
            return Ok(());
        };
        let (policy, errors) = policy_from_labels(labels.as_ref());
        if errors.is_empty()
            && policy.enforce.level == Level::Privileged
            && policy.warn.level == Level::Privileged
            && policy.audit.level == Level::Privileged
        {
            return Ok(());
        }
        if a.operation == Operation::Update
            && let Some(old) = a.old
            && !is_significant_pod_update(pod, old)
        {
            return Ok(());
        }
        let enforced = evaluate_pod(policy.enforce, pod);
        if !enforced.is_empty() {
            return Err(a.forbidden(format!(
                "violates PodSecurity {}: {}",
                go_quote(&policy.enforce.to_string()),
                forbidden_detail(&enforced)
            )));
        }
        // the enforce evaluation passed, so an identical warn level passes too
        if policy.warn != policy.enforce {
            warn(policy.warn, &evaluate_pod(policy.warn, pod));
        }
        Ok(())
    }

    async fn validate_pod_controller(
        &self,
        a: &Attributes<'_>,
        template: &Value,
    ) -> Result<(), StatusError> {
        if !a.subresource.is_empty() || a.namespace.is_empty() {
            return Ok(());
        }
        let Some(labels) = self.namespace_labels(a.namespace).await else {
            return Ok(());
        };
        let (policy, errors) = policy_from_labels(labels.as_ref());
        if errors.is_empty()
            && policy.warn.level == Level::Privileged
            && policy.audit.level == Level::Privileged
        {
            return Ok(());
        }
        let violations = evaluate(policy.warn, template.get("metadata"), template.get("spec"));
        warn(policy.warn, &violations);
        Ok(())
    }

    async fn validate_namespace(
        &self,
        a: &Attributes<'_>,
        namespace: &Value,
    ) -> Result<(), StatusError> {
        if !a.subresource.is_empty() {
            return Ok(());
        }
        let labels_of = |ns: &Value| {
            ns.get("metadata")
                .and_then(|m| m.get("labels"))
                .and_then(Value::as_object)
                .cloned()
        };
        let (policy, errors) = policy_from_labels(labels_of(namespace).as_ref());
        let invalid = || StatusError::invalid(&a.resource.group_kind(), a.name, &errors);
        match a.operation {
            Operation::Create => {
                if errors.is_empty() {
                    Ok(())
                } else {
                    Err(invalid())
                }
            }
            Operation::Update => {
                let Some(old) = a.old else {
                    return if errors.is_empty() {
                        Ok(())
                    } else {
                        Err(invalid())
                    };
                };
                let (old_policy, old_errors) = policy_from_labels(labels_of(old).as_ref());
                if !errors.is_empty() && (old_errors.is_empty() || errors != old_errors) {
                    return Err(invalid());
                }
                let (new, old) = (policy.enforce, old_policy.enforce);
                if new == old
                    || new.level == Level::Privileged
                    || (new.version == old.version && new.level <= old.level)
                {
                    return Ok(());
                }
                let name = namespace
                    .get("metadata")
                    .map(|m| text(m, "name"))
                    .filter(|n| !n.is_empty())
                    .unwrap_or(a.name);
                for warning in self.evaluate_pods_in_namespace(name, new).await {
                    add_warning(warning);
                }
                Ok(())
            }
            Operation::Delete => Ok(()),
        }
    }

    /// The warnings a tightened enforce level gives about the namespace's existing pods.
    async fn evaluate_pods_in_namespace(
        &self,
        namespace: &str,
        enforce: LevelVersion,
    ) -> Vec<String> {
        let listed = match apimachinery::resources::find("", "v1", "pods") {
            Some(pods) => {
                self.registry
                    .list(pods, Some(namespace), &ListParams::default())
                    .await
            }
            None => Err(StatusError::internal_error("pods are not served")),
        };
        let Ok(listed) = listed else {
            return vec!["failed to list pods while checking new PodSecurity enforce level".into()];
        };
        let pods = prioritize_pods(list(&listed, "items"));
        pod_warnings(
            namespace,
            enforce,
            &pods,
            Instant::now() + NAMESPACE_POD_CHECK_TIMEOUT,
        )
    }
}

/// Adds upstream's warning for violations of the warn level, if any.
fn warn(lv: LevelVersion, violations: &[Violation]) {
    if violations.is_empty() {
        return;
    }
    add_warning(format!(
        "would violate PodSecurity {}: {}",
        go_quote(&lv.to_string()),
        forbidden_detail(violations)
    ));
}

/// Pods in evaluation order: one pod per controller first (and pods without one), the
/// other replicas after.
fn prioritize_pods(pods: &[Value]) -> Vec<&Value> {
    let mut first = Vec::new();
    let mut duplicates = Vec::new();
    let mut seen = HashSet::new();
    for pod in pods {
        let controller = pod
            .get("metadata")
            .map(|m| list(m, "ownerReferences"))
            .unwrap_or(&[])
            .iter()
            .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
            .map(|r| text(r, "uid"));
        match controller {
            None => first.push(pod),
            Some(uid) if seen.insert(uid) => first.push(pod),
            Some(_) => duplicates.push(pod),
        }
    }
    first.extend(duplicates);
    first
}

/// Upstream's `EvaluatePodsInNamespace` over prioritized pods: pods sharing the same
/// reasons are grouped under the lexically first pod's name.
fn pod_warnings(
    namespace: &str,
    enforce: LevelVersion,
    pods: &[&Value],
    deadline: Instant,
) -> Vec<String> {
    let total = pods.len();
    let candidates = &pods[..total.min(NAMESPACE_MAX_PODS_TO_CHECK)];
    let mut checked = candidates.len();
    let mut order: Vec<String> = Vec::new();
    let mut groups: HashMap<String, (String, usize)> = HashMap::new();
    for (i, pod) in candidates.iter().enumerate() {
        let violations = evaluate_pod(enforce, pod);
        if !violations.is_empty() {
            let reason = forbidden_reason(&violations);
            let name = pod
                .get("metadata")
                .map(|m| text(m, "name"))
                .unwrap_or("")
                .to_owned();
            match groups.get_mut(&reason) {
                None => {
                    order.push(reason.clone());
                    groups.insert(reason, (name, 1));
                }
                Some((first, count)) => {
                    if name < *first {
                        *first = name;
                    }
                    *count += 1;
                }
            }
        }
        if Instant::now() >= deadline {
            checked = i + 1;
            break;
        }
    }
    let mut warnings = Vec::new();
    if checked < total {
        warnings.push(format!(
            "new PodSecurity enforce level only checked against the first {checked} of {total} existing pods"
        ));
    }
    if !order.is_empty() {
        warnings.push(format!(
            "existing pods in namespace {} violate the new PodSecurity enforce level {}",
            go_quote(namespace),
            go_quote(&enforce.to_string())
        ));
    }
    let mut decorated: Vec<String> = order
        .into_iter()
        .map(|reason| {
            let (name, count) = groups.get(&reason).cloned().unwrap_or_default();
            match count {
                0 => reason,
                1 => format!("{name}: {reason}"),
                2 => format!("{name} (and 1 other pod): {reason}"),
                n => format!("{name} (and {} other pods): {reason}", n - 1),
            }
        })
        .collect();
    decorated.sort();
    warnings.extend(decorated);
    warnings
}

#[async_trait::async_trait]
impl Plugin for PodSecurity {
    fn name(&self) -> &'static str {
        "PodSecurity"
    }

    async fn validate(&self, a: &Attributes<'_>, object: &Value) -> Result<(), StatusError> {
        if !matches!(a.operation, Operation::Create | Operation::Update) {
            return Ok(());
        }
        if a.resource.group.is_empty() && a.resource.plural == "namespaces" {
            return self.validate_namespace(a, object).await;
        }
        if a.resource.group.is_empty() && a.resource.plural == "pods" {
            return self.validate_pod(a, object).await;
        }
        match pod_template(a.resource, object) {
            Some(template) => self.validate_pod_controller(a, template).await,
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lv(level: Level) -> LevelVersion {
        LevelVersion {
            level,
            version: Version::Latest,
        }
    }

    fn detail(level: Level, pod: &Value) -> String {
        forbidden_detail(&evaluate_pod(lv(level), pod))
    }

    fn pod(spec: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": spec})
    }

    fn restricted_container(name: &str) -> Value {
        json!({
            "name": name,
            "image": "pause",
            "securityContext": {
                "allowPrivilegeEscalation": false,
                "capabilities": {"drop": ["ALL"]},
                "runAsNonRoot": true,
                "seccompProfile": {"type": "RuntimeDefault"}
            }
        })
    }

    #[test]
    fn checks_are_sorted_by_id_within_their_level() {
        for level in [Level::Baseline, Level::Restricted] {
            let ids: Vec<&str> = CHECKS
                .iter()
                .filter(|c| c.level == level)
                .map(|c| c.id)
                .collect();
            let mut sorted_ids = ids.clone();
            sorted_ids.sort();
            assert_eq!(ids, sorted_ids);
        }
        let first_restricted = CHECKS
            .iter()
            .position(|c| c.level == Level::Restricted)
            .unwrap();
        assert!(
            CHECKS[first_restricted..]
                .iter()
                .all(|c| c.level == Level::Restricted)
        );
    }

    #[test]
    fn plain_pod_violates_restricted_only() {
        let p = pod(json!({"containers": [{"name": "c", "image": "pause"}]}));
        assert_eq!(
            detail(Level::Restricted, &p),
            r#"allowPrivilegeEscalation != false (container "c" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container "c" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or container "c" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container "c" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")"#
        );
        assert!(evaluate_pod(lv(Level::Baseline), &p).is_empty());
        assert!(evaluate_pod(lv(Level::Privileged), &p).is_empty());
    }

    #[test]
    fn compliant_restricted_pod_passes() {
        let p = pod(json!({
            "containers": [restricted_container("a")],
            "initContainers": [restricted_container("i")],
            "volumes": [{"name": "v", "emptyDir": {}}, {"name": "s", "secret": {"secretName": "s"}}]
        }));
        assert!(evaluate_pod(lv(Level::Restricted), &p).is_empty());
        // pod-level settings cover containers that leave them unset
        let p = pod(json!({
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "Localhost", "localhostProfile": "p"}},
            "containers": [{"name": "a", "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}}]
        }));
        assert!(evaluate_pod(lv(Level::Restricted), &p).is_empty());
    }

    #[test]
    fn baseline_messages() {
        let p = pod(json!({
            "hostNetwork": true,
            "hostPID": true,
            "hostIPC": true,
            "securityContext": {
                "sysctls": [{"name": "kernel.msgmax", "value": "1"}, {"name": "net.ipv4.tcp_rmem", "value": "1"}],
                "seLinuxOptions": {"type": "spc_t"},
                "windowsOptions": {"hostProcess": true}
            },
            "containers": [
                {"name": "a", "ports": [{"containerPort": 80, "hostPort": 80}, {"containerPort": 8080, "hostPort": 8080}],
                 "securityContext": {"privileged": true, "capabilities": {"add": ["SYS_ADMIN", "NET_RAW", "CHOWN"]},
                                     "procMount": "Unmasked", "seccompProfile": {"type": "Unconfined"},
                                     "appArmorProfile": {"type": "Unconfined"}, "seLinuxOptions": {"user": "u"}}},
                {"name": "b", "securityContext": {"privileged": true, "windowsOptions": {"hostProcess": true}}}
            ],
            "volumes": [{"name": "h", "hostPath": {"path": "/"}}]
        }));
        let mut p = p;
        p["metadata"]["annotations"] =
            json!({"container.apparmor.security.beta.kubernetes.io/a": "unconfined"});
        assert_eq!(
            detail(Level::Baseline, &p),
            concat!(
                r#"forbidden AppArmor profiles (container "a" and annotation must not set AppArmor profile type to "Unconfined", "container.apparmor.security.beta.kubernetes.io/a="unconfined""), "#,
                r#"non-default capabilities (container "a" must not include "NET_RAW", "SYS_ADMIN" in securityContext.capabilities.add), "#,
                r#"host namespaces (hostIPC, hostNetwork, hostPID), "#,
                r#"hostPath volumes (volume "h"), "#,
                r#"hostPort (container "a" uses hostPorts 80, 8080), "#,
                r#"privileged (containers "a", "b" must not set securityContext.privileged=true), "#,
                r#"procMount (container "a" must not set securityContext.procMount to "Unmasked"), "#,
                r#"seLinuxOptions (pod and container "a" set forbidden securityContext.seLinuxOptions: type "spc_t"; user may not be set), "#,
                r#"seccompProfile (container "a" must not set securityContext.seccompProfile.type to "Unconfined"), "#,
                r#"forbidden sysctls (kernel.msgmax), "#,
                r#"hostProcess (pod and container "b" must not set securityContext.windowsOptions.hostProcess=true)"#
            )
        );
    }

    #[test]
    fn restricted_supersedes_overlapping_baseline_checks() {
        let p = pod(json!({
            "securityContext": {"runAsNonRoot": true, "runAsUser": 0, "seccompProfile": {"type": "Unconfined"}},
            "containers": [{"name": "c", "securityContext": {
                "allowPrivilegeEscalation": true,
                "capabilities": {"add": ["SYS_ADMIN"]},
                "runAsNonRoot": false
            }}],
            "volumes": [{"name": "h", "hostPath": {"path": "/"}}, {"name": "n", "nfs": {"server": "s", "path": "/"}}]
        }));
        assert_eq!(
            detail(Level::Restricted, &p),
            concat!(
                r#"allowPrivilegeEscalation != false (container "c" must set securityContext.allowPrivilegeEscalation=false), "#,
                r#"unrestricted capabilities (container "c" must set securityContext.capabilities.drop=["ALL"]; container "c" must not include "SYS_ADMIN" in securityContext.capabilities.add), "#,
                r#"restricted volume types (volumes "h", "n" use restricted volume types "hostPath", "nfs"), "#,
                r#"runAsNonRoot != true (container "c" must not set securityContext.runAsNonRoot=false), "#,
                r#"runAsUser=0 (pod must not set runAsUser=0), "#,
                r#"seccompProfile (pod must not set securityContext.seccompProfile.type to "Unconfined")"#
            )
        );
    }

    #[test]
    fn versions_select_the_checks_of_their_time() {
        let p = pod(json!({
            "securityContext": {"sysctls": [{"name": "net.ipv4.tcp_keepalive_time", "value": "1"}]},
            "containers": [{"name": "c", "securityContext": {"runAsNonRoot": true, "runAsUser": 0}}]
        }));
        let at = |level, minor| LevelVersion {
            level,
            version: Version::V1(minor),
        };
        assert_eq!(
            forbidden_detail(&evaluate_pod(at(Level::Baseline, 28), &p)),
            "forbidden sysctls (net.ipv4.tcp_keepalive_time)"
        );
        assert!(evaluate_pod(at(Level::Baseline, 29), &p).is_empty());
        // before v1.8 only the checks that existed then apply
        assert_eq!(
            forbidden_reason(&evaluate_pod(at(Level::Restricted, 0), &p)),
            "forbidden sysctls"
        );
        assert_eq!(
            forbidden_reason(&evaluate_pod(at(Level::Restricted, 33), &p)),
            "allowPrivilegeEscalation != false, unrestricted capabilities, runAsUser=0, seccompProfile"
        );
        // windows pods are exempt from some restricted checks from v1.25
        let mut windows = p.clone();
        windows["spec"]["os"] = json!({"name": "windows"});
        windows["spec"]["securityContext"] = json!({});
        assert_eq!(
            forbidden_reason(&evaluate_pod(at(Level::Restricted, 33), &windows)),
            "runAsUser=0"
        );
    }

    #[test]
    fn label_parsing() {
        let labels = |v: Value| v.as_object().cloned();
        let (policy, errors) = policy_from_labels(None);
        assert_eq!(policy, Policy::default());
        assert!(errors.is_empty());

        let (policy, errors) = policy_from_labels(
            labels(json!({
                ENFORCE_LEVEL_LABEL: "baseline",
                ENFORCE_VERSION_LABEL: "v1.29",
                WARN_LEVEL_LABEL: "restricted"
            }))
            .as_ref(),
        );
        assert!(errors.is_empty());
        assert_eq!(policy.enforce.to_string(), "baseline:v1.29");
        assert_eq!(policy.warn.to_string(), "restricted:latest");
        assert_eq!(policy.audit.to_string(), "privileged:latest");

        let (policy, errors) = policy_from_labels(
            labels(json!({
                ENFORCE_LEVEL_LABEL: "bogus",
                AUDIT_LEVEL_LABEL: "bogus",
                WARN_VERSION_LABEL: "v1.01"
            }))
            .as_ref(),
        );
        assert_eq!(policy.enforce.level, Level::Restricted);
        assert_eq!(policy.audit.level, Level::Privileged);
        assert_eq!(policy.warn.version, Version::Latest);
        let messages: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            messages,
            vec![
                r#"metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: "bogus": must be one of privileged, baseline, restricted"#,
                r#"metadata.labels[pod-security.kubernetes.io/audit]: Invalid value: "bogus": must be one of privileged, baseline, restricted"#,
                r#"metadata.labels[pod-security.kubernetes.io/warn-version]: Invalid value: "v1.01": must be "latest" or "v1.x""#,
            ]
        );
        assert_eq!(Version::parse("v1.0"), Ok(Version::V1(0)));
        assert!(Version::parse("v2.1").is_err());
        assert!(Version::parse("v1.").is_err());
        assert!(Version::parse("v1.+1").is_err());
    }

    #[test]
    fn significant_updates() {
        let old = json!({"metadata": {"name": "x"}, "spec": {"containers": [{"name": "c", "image": "a"}]}});
        let mut labels_only = old.clone();
        labels_only["metadata"]["labels"] = json!({"a": "b"});
        assert!(!is_significant_pod_update(&labels_only, &old));
        let mut image = old.clone();
        image["spec"]["containers"][0]["image"] = json!("b");
        assert!(is_significant_pod_update(&image, &old));
        let mut ephemeral = old.clone();
        ephemeral["spec"]["ephemeralContainers"] = json!([{"name": "debug", "image": "busybox"}]);
        assert!(is_significant_pod_update(&ephemeral, &old));
        assert!(!is_significant_pod_update(&ephemeral, &ephemeral));
    }

    #[test]
    fn existing_pod_warnings_are_grouped() {
        let pods: Vec<Value> = ["b", "a", "c"]
            .iter()
            .map(|n| json!({"metadata": {"name": n}, "spec": {"hostNetwork": true, "containers": [{"name": "c"}]}}))
            .chain(std::iter::once(json!({"metadata": {"name": "d"}, "spec": {"containers": [{"name": "c", "securityContext": {"privileged": true}}]}})))
            .collect();
        let refs: Vec<&Value> = pods.iter().collect();
        let warnings = pod_warnings(
            "ns",
            lv(Level::Baseline),
            &refs,
            Instant::now() + Duration::from_secs(60),
        );
        assert_eq!(
            warnings,
            vec![
                r#"existing pods in namespace "ns" violate the new PodSecurity enforce level "baseline:latest""#,
                "a (and 2 other pods): host namespaces",
                "d: privileged",
            ]
        );
    }

    #[tokio::test]
    async fn plugin_enforces_namespace_labels() {
        let registry = crate::registry::validation::tester::registry().await;
        let namespaces = apimachinery::resources::find("", "v1", "namespaces").unwrap();
        let pods = apimachinery::resources::find("", "v1", "pods").unwrap();
        registry
            .create(
                namespaces,
                None,
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {
                    "name": "locked",
                    "labels": {ENFORCE_LEVEL_LABEL: "restricted"}
                }}),
                false,
            )
            .await
            .unwrap();
        let plugin = PodSecurity::new(&registry);
        for _ in 0..100 {
            if plugin
                .namespaces
                .as_ref()
                .is_some_and(|i| i.get("", "locked").is_some())
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let user = crate::auth::UserInfo::new("jane", &[]);
        let attributes = |namespace| Attributes {
            operation: Operation::Create,
            resource: pods,
            subresource: "",
            namespace,
            name: "x",
            old: None,
            user: &user,
            dry_run: false,
        };
        let bad = pod(json!({"containers": [{"name": "c", "image": "pause"}]}));
        let err = plugin
            .validate(&attributes("locked"), &bad)
            .await
            .unwrap_err();
        assert_eq!(err.http_status(), 403);
        assert_eq!(
            err.status().message,
            r#"pods "x" is forbidden: violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false (container "c" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container "c" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or container "c" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container "c" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")"#
        );
        let good = pod(json!({"containers": [restricted_container("c")]}));
        plugin.validate(&attributes("locked"), &good).await.unwrap();
        // an unlabelled namespace is privileged
        plugin.validate(&attributes("default"), &bad).await.unwrap();

        // invalid labels are refused on namespaces
        let ns_attributes = Attributes {
            operation: Operation::Create,
            resource: namespaces,
            subresource: "",
            namespace: "",
            name: "bad",
            old: None,
            user: &user,
            dry_run: false,
        };
        let err = plugin
            .validate(
                &ns_attributes,
                &json!({"metadata": {"name": "bad", "labels": {ENFORCE_LEVEL_LABEL: "strict"}}}),
            )
            .await
            .unwrap_err();
        assert_eq!(err.http_status(), 422);
        assert_eq!(
            err.status().message,
            r#"Namespace "bad" is invalid: metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: "strict": must be one of privileged, baseline, restricted"#
        );
    }
}
