//! The hand-kept tables the generic walk needs, because a `generated.proto` does not say
//! everything the Go structs' JSON tags do: which proto field is an inlined (embedded) Go
//! struct, which proto names differ from the JSON names, which messages have a custom
//! JSON form, and which scalar fields are pointers whose zero value means something.
//!
//! Messages are named by their *versionless* name: the proto full name without its
//! version segment (`api.apps.DeploymentSpec` for `api.apps.v1.DeploymentSpec` and
//! `api.apps.v1beta2.DeploymentSpec`), so one row covers every version of a kind. Field
//! names are the proto names (`xKubernetesPreserveUnknownFields`, not the JSON name).

use std::borrow::Cow;

/// A message's name without its version segment (`v1`, `v2`, `v1beta1`, `v1alpha3`).
pub(crate) fn versionless(full_name: &str) -> Cow<'_, str> {
    if !full_name.split('.').any(is_version) {
        return Cow::Borrowed(full_name);
    }
    let segments: Vec<&str> = full_name.split('.').filter(|s| !is_version(s)).collect();
    Cow::Owned(segments.join("."))
}

/// `v1`, `v2`, `v1beta1`, `v1alpha3`: what Kubernetes names versions.
fn is_version(segment: &str) -> bool {
    let Some(rest) = segment.strip_prefix('v') else {
        return false;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return false;
    }
    let tail = &rest[digits..];
    tail.is_empty()
        || ["alpha", "beta"].iter().any(|stage| {
            tail.strip_prefix(stage)
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
}

/// Fields holding a Go struct embedded with `json:",inline"`: their message's fields are
/// written into the parent object, as `encoding/json` flattens embedded structs. The proto
/// keeps them as an ordinary nested message named after the embedded type.
const INLINED: &[(&str, &str)] = &[
    ("api.core.Volume", "volumeSource"),
    ("api.core.PersistentVolumeSpec", "persistentVolumeSource"),
    ("api.core.Probe", "handler"),
    ("api.core.EphemeralContainer", "ephemeralContainerCommon"),
    // the `name` of the ConfigMap or Secret referred to
    ("api.core.ConfigMapEnvSource", "localObjectReference"),
    ("api.core.ConfigMapKeySelector", "localObjectReference"),
    ("api.core.ConfigMapProjection", "localObjectReference"),
    ("api.core.ConfigMapVolumeSource", "localObjectReference"),
    ("api.core.SecretEnvSource", "localObjectReference"),
    ("api.core.SecretKeySelector", "localObjectReference"),
    ("api.core.SecretProjection", "localObjectReference"),
    ("api.networking.IngressRule", "ingressRuleValue"),
    ("api.extensions.IngressRule", "ingressRuleValue"),
    (
        "api.admissionregistration.NamedRuleWithOperations",
        "ruleWithOperations",
    ),
    ("api.admissionregistration.RuleWithOperations", "rule"),
    (
        "api.resource.DeviceAllocationConfiguration",
        "deviceConfiguration",
    ),
    (
        "api.resource.DeviceClaimConfiguration",
        "deviceConfiguration",
    ),
    (
        "api.resource.DeviceClassConfiguration",
        "deviceConfiguration",
    ),
];

/// Whether `field` of `message` (a versionless name) is an embedded Go struct.
pub(crate) fn is_inlined(message: &str, field: &str) -> bool {
    INLINED.iter().any(|&(m, f)| m == message && f == field)
}

/// Proto field names that go-to-protobuf derived from a Go field name its lowerCamel rule
/// mangles (`UID` → `uID`), or from a Go name whose JSON tag says otherwise.
const RENAMED: &[(&str, &str, &str)] = &[
    ("api.authentication.BoundObjectReference", "uID", "uid"),
    (
        "api.networking.IngressClassParametersReference",
        "aPIGroup",
        "apiGroup",
    ),
    (
        "api.admissionregistration.MutatingWebhookConfiguration",
        "Webhooks",
        "webhooks",
    ),
    (
        "api.admissionregistration.ValidatingWebhookConfiguration",
        "Webhooks",
        "webhooks",
    ),
    (
        "api.admissionregistration.Validation",
        "Expression",
        "expression",
    ),
    (
        "api.admissionregistration.Variable",
        "Expression",
        "expression",
    ),
    ("api.admissionregistration.Variable", "Name", "name"),
    (
        "apiextensions_apiserver.pkg.apis.apiextensions.JSONSchemaProps",
        "ref",
        "$ref",
    ),
    (
        "apiextensions_apiserver.pkg.apis.apiextensions.JSONSchemaProps",
        "schema",
        "$schema",
    ),
];

/// The JSON name of `field` of `message` (a versionless name).
pub(crate) fn json_name<'a>(message: &str, field: &'a str) -> Cow<'a, str> {
    if let Some(&(_, _, json)) = RENAMED
        .iter()
        .find(|&&(m, f, _)| m == message && f == field)
    {
        return Cow::Borrowed(json);
    }
    // JSONSchemaProps' `x-kubernetes-*` extensions: `xKubernetesListMapKeys` →
    // `x-kubernetes-list-map-keys`
    if let Some(rest) = field.strip_prefix("xKubernetes") {
        let mut json = String::from("x-kubernetes");
        for c in rest.chars() {
            if c.is_ascii_uppercase() {
                json.push('-');
                json.push(c.to_ascii_lowercase());
            } else {
                json.push(c);
            }
        }
        return Cow::Owned(json);
    }
    Cow::Borrowed(field)
}

/// Messages whose JSON is not an object of their fields: Go types with their own
/// `MarshalJSON` (times, quantities, int-or-string, raw JSON) or named slice types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Special {
    /// `metav1.Time`: RFC 3339 in UTC to the second.
    Time,
    /// `metav1.MicroTime`: RFC 3339 in UTC to the microsecond.
    MicroTime,
    /// `metav1.Duration`: Go's duration string (`1h0m0s`).
    Duration,
    /// `resource.Quantity`: its canonical string.
    Quantity,
    /// `intstr.IntOrString`: a number or a string.
    IntOrString,
    /// `runtime.RawExtension`: embedded JSON, or an embedded protobuf object.
    RawExtension,
    /// apiextensions `JSON` and `metav1.FieldsV1`: embedded JSON.
    RawJson,
    /// `JSONSchemaPropsOrArray`: a schema or a list of schemas.
    SchemaOrArray,
    /// `JSONSchemaPropsOrBool`: a schema or a boolean.
    SchemaOrBool,
    /// `JSONSchemaPropsOrStringArray`: a schema or a list of property names.
    SchemaOrStringArray,
    /// `ExtraValue`, `metav1.Verbs`: Go `[]string` types, wrapped in `items` by the proto.
    Items,
}

/// The special JSON form of `message` (a versionless name), if it has one.
pub(crate) fn special(message: &str) -> Option<Special> {
    Some(match message {
        "apimachinery.pkg.apis.meta.Time" => Special::Time,
        "apimachinery.pkg.apis.meta.MicroTime" => Special::MicroTime,
        "apimachinery.pkg.apis.meta.Duration" => Special::Duration,
        "apimachinery.pkg.api.resource.Quantity" => Special::Quantity,
        "apimachinery.pkg.util.intstr.IntOrString" => Special::IntOrString,
        "apimachinery.pkg.runtime.RawExtension" => Special::RawExtension,
        "apiextensions_apiserver.pkg.apis.apiextensions.JSON"
        | "apimachinery.pkg.apis.meta.FieldsV1" => Special::RawJson,
        "apiextensions_apiserver.pkg.apis.apiextensions.JSONSchemaPropsOrArray" => {
            Special::SchemaOrArray
        }
        "apiextensions_apiserver.pkg.apis.apiextensions.JSONSchemaPropsOrBool" => {
            Special::SchemaOrBool
        }
        "apiextensions_apiserver.pkg.apis.apiextensions.JSONSchemaPropsOrStringArray" => {
            Special::SchemaOrStringArray
        }
        "api.authentication.ExtraValue"
        | "api.authorization.ExtraValue"
        | "api.certificates.ExtraValue"
        | "apimachinery.pkg.apis.meta.Verbs" => Special::Items,
        _ => return None,
    })
}

/// Scalar (and int-or-string) fields whose zero value is kept. Go's protobuf encoder
/// writes every non-pointer scalar, so `""`, `0` and `false` arrive for fields nobody
/// set and are dropped, as `omitempty` drops them from JSON; these are the exceptions:
///
/// - optional pointer fields where nil and zero differ (`replicas: 0` scales to zero,
///   absent gets the default of 1; `gracePeriodSeconds: 0` deletes at once);
/// - required fields without `omitempty` whose zero is a meaningful value that
///   validation or a reader checks for (`PriorityClass.value: 0`, `exitCode: 0`).
///
/// Keyed by versionless message name; extend it when a kind grows such a field.
const KEEP_ZERO: &[(&str, &[&str])] = &[
    // core
    (
        "api.core.PodSpec",
        &[
            "terminationGracePeriodSeconds",
            "activeDeadlineSeconds",
            "automountServiceAccountToken",
            "shareProcessNamespace",
            "priority",
            "enableServiceLinks",
            "setHostnameAsFQDN",
            "hostUsers",
        ],
    ),
    (
        "api.core.PodSecurityContext",
        &["runAsUser", "runAsGroup", "runAsNonRoot", "fsGroup"],
    ),
    (
        "api.core.SecurityContext",
        &[
            "privileged",
            "runAsUser",
            "runAsGroup",
            "runAsNonRoot",
            "readOnlyRootFilesystem",
            "allowPrivilegeEscalation",
        ],
    ),
    ("api.core.WindowsSecurityContextOptions", &["hostProcess"]),
    ("api.core.Probe", &["terminationGracePeriodSeconds"]),
    (
        "api.core.ConfigMapVolumeSource",
        &["defaultMode", "optional"],
    ),
    ("api.core.SecretVolumeSource", &["defaultMode", "optional"]),
    ("api.core.ProjectedVolumeSource", &["defaultMode"]),
    ("api.core.DownwardAPIVolumeSource", &["defaultMode"]),
    ("api.core.KeyToPath", &["mode"]),
    ("api.core.DownwardAPIVolumeFile", &["mode"]),
    ("api.core.ConfigMapEnvSource", &["optional"]),
    ("api.core.SecretEnvSource", &["optional"]),
    ("api.core.ConfigMapKeySelector", &["optional"]),
    ("api.core.SecretKeySelector", &["optional"]),
    ("api.core.ConfigMapProjection", &["optional"]),
    ("api.core.SecretProjection", &["optional"]),
    ("api.core.ClusterTrustBundleProjection", &["optional"]),
    ("api.core.CSIVolumeSource", &["readOnly"]),
    ("api.core.FCVolumeSource", &["lun"]),
    ("api.core.ISCSIVolumeSource", &["lun"]),
    ("api.core.ISCSIPersistentVolumeSource", &["lun"]),
    (
        "api.core.ServiceAccountTokenProjection",
        &["expirationSeconds"],
    ),
    // `storageClassName: ""` asks for no class, absent for the default one
    (
        "api.core.PersistentVolumeClaimSpec",
        &["storageClassName", "volumeAttributesClassName"],
    ),
    ("api.core.ServiceAccount", &["automountServiceAccountToken"]),
    ("api.core.Secret", &["immutable"]),
    ("api.core.ConfigMap", &["immutable"]),
    ("api.core.ServiceSpec", &["allocateLoadBalancerNodePorts"]),
    ("api.core.ClientIPConfig", &["timeoutSeconds"]),
    // 0 evicts at once, absent tolerates forever
    ("api.core.Toleration", &["tolerationSeconds"]),
    ("api.core.TopologySpreadConstraint", &["minDomains"]),
    ("api.core.ReplicationControllerSpec", &["replicas"]),
    ("api.core.SleepAction", &["seconds"]),
    ("api.core.LinuxContainerUser", &["uid", "gid"]),
    (
        "api.core.ContainerStatus",
        &["ready", "restartCount", "started"],
    ),
    ("api.core.ContainerStateTerminated", &["exitCode"]),
    ("api.core.NodeFeatures", &["supplementalGroupsPolicy"]),
    (
        "api.core.NodeRuntimeHandlerFeatures",
        &["recursiveReadOnlyMounts", "userNamespaces"],
    ),
    ("api.core.NodeSwapStatus", &["capacity"]),
    // apps
    (
        "api.apps.DeploymentSpec",
        &[
            "replicas",
            "revisionHistoryLimit",
            "progressDeadlineSeconds",
        ],
    ),
    ("api.apps.ReplicaSetSpec", &["replicas"]),
    (
        "api.apps.StatefulSetSpec",
        &["replicas", "revisionHistoryLimit"],
    ),
    ("api.apps.DaemonSetSpec", &["revisionHistoryLimit"]),
    (
        "api.apps.RollingUpdateDeployment",
        &["maxUnavailable", "maxSurge"],
    ),
    (
        "api.apps.RollingUpdateDaemonSet",
        &["maxUnavailable", "maxSurge"],
    ),
    (
        "api.apps.RollingUpdateStatefulSetStrategy",
        &["partition", "maxUnavailable"],
    ),
    (
        "api.apps.DeploymentStatus",
        &["terminatingReplicas", "collisionCount"],
    ),
    (
        "api.apps.ReplicaSetStatus",
        &["replicas", "terminatingReplicas"],
    ),
    (
        "api.apps.StatefulSetStatus",
        &["replicas", "availableReplicas", "collisionCount"],
    ),
    (
        "api.apps.DaemonSetStatus",
        &[
            "currentNumberScheduled",
            "numberMisscheduled",
            "desiredNumberScheduled",
            "numberReady",
            "collisionCount",
        ],
    ),
    // batch
    (
        "api.batch.JobSpec",
        &[
            "parallelism",
            "completions",
            "activeDeadlineSeconds",
            "backoffLimit",
            "backoffLimitPerIndex",
            "maxFailedIndexes",
            "manualSelector",
            "ttlSecondsAfterFinished",
            "suspend",
        ],
    ),
    ("api.batch.JobStatus", &["ready", "terminating"]),
    (
        "api.batch.CronJobSpec",
        &[
            "startingDeadlineSeconds",
            "suspend",
            "successfulJobsHistoryLimit",
            "failedJobsHistoryLimit",
        ],
    ),
    ("api.batch.SuccessPolicyRule", &["succeededCount"]),
    // autoscaling (v1 and v2 share the versionless names)
    (
        "api.autoscaling.HorizontalPodAutoscalerSpec",
        &[
            "minReplicas",
            "maxReplicas",
            "targetCPUUtilizationPercentage",
        ],
    ),
    (
        "api.autoscaling.HorizontalPodAutoscalerStatus",
        &[
            "observedGeneration",
            "desiredReplicas",
            "currentCPUUtilizationPercentage",
        ],
    ),
    (
        "api.autoscaling.HPAScalingRules",
        &["stabilizationWindowSeconds"],
    ),
    ("api.autoscaling.MetricTarget", &["averageUtilization"]),
    ("api.autoscaling.MetricValueStatus", &["averageUtilization"]),
    // policy: `minAvailable: 0` and `maxUnavailable: 0` are common and meaningful
    (
        "api.policy.PodDisruptionBudgetSpec",
        &["minAvailable", "maxUnavailable"],
    ),
    (
        "api.policy.PodDisruptionBudgetStatus",
        &[
            "disruptionsAllowed",
            "currentHealthy",
            "desiredHealthy",
            "expectedPods",
        ],
    ),
    // coordination: a released lease has `holderIdentity: ""`
    (
        "api.coordination.LeaseSpec",
        &["holderIdentity", "leaseDurationSeconds", "leaseTransitions"],
    ),
    // networking
    ("api.networking.NetworkPolicyPort", &["port", "endPort"]),
    // discovery: EndpointSlice ports of unnamed Service ports are named ""
    (
        "api.discovery.EndpointConditions",
        &["ready", "serving", "terminating"],
    ),
    ("api.discovery.EndpointPort", &["name", "port"]),
    ("api.events.EventSeries", &["count"]),
    ("api.scheduling.PriorityClass", &["value"]),
    // storage
    ("api.storage.StorageClass", &["allowVolumeExpansion"]),
    (
        "api.storage.CSIDriverSpec",
        &[
            "attachRequired",
            "podInfoOnMount",
            "storageCapacity",
            "requiresRepublish",
            "seLinuxMount",
            "nodeAllocatableUpdatePeriodSeconds",
        ],
    ),
    ("api.storage.VolumeAttachmentStatus", &["attached"]),
    ("api.storage.VolumeError", &["errorCode"]),
    ("api.storage.VolumeNodeResources", &["count"]),
    ("api.storage.TokenRequest", &["expirationSeconds"]),
    // auth
    (
        "api.certificates.CertificateSigningRequestSpec",
        &["expirationSeconds"],
    ),
    (
        "api.authentication.TokenRequestSpec",
        &["expirationSeconds"],
    ),
    ("api.authorization.SubjectAccessReviewStatus", &["allowed"]),
    // admission registration
    (
        "api.admissionregistration.MutatingWebhook",
        &["timeoutSeconds"],
    ),
    (
        "api.admissionregistration.ValidatingWebhook",
        &["timeoutSeconds"],
    ),
    ("api.admissionregistration.ServiceReference", &["port"]),
    // flowcontrol: v1 made the shares pointers so that 0 can be asked for
    (
        "api.flowcontrol.LimitedPriorityLevelConfiguration",
        &[
            "nominalConcurrencyShares",
            "lendablePercent",
            "borrowingLimitPercent",
        ],
    ),
    (
        "api.flowcontrol.ExemptPriorityLevelConfiguration",
        &["nominalConcurrencyShares", "lendablePercent"],
    ),
    // meta: `gracePeriodSeconds: 0` deletes at once, absent waits the default period
    (
        "apimachinery.pkg.apis.meta.DeleteOptions",
        &[
            "gracePeriodSeconds",
            "orphanDependents",
            "ignoreStoreReadErrorWithClusterBreakingPotential",
        ],
    ),
    (
        "apimachinery.pkg.apis.meta.Preconditions",
        &["uid", "resourceVersion"],
    ),
    (
        "apimachinery.pkg.apis.meta.ObjectMeta",
        &["deletionGracePeriodSeconds"],
    ),
    (
        "apimachinery.pkg.apis.meta.OwnerReference",
        &["controller", "blockOwnerDeletion"],
    ),
    (
        "apimachinery.pkg.apis.meta.ListMeta",
        &["remainingItemCount"],
    ),
    // apiextensions
    (
        "apiextensions_apiserver.pkg.apis.apiextensions.JSONSchemaProps",
        &[
            "maximum",
            "minimum",
            "maxLength",
            "minLength",
            "maxItems",
            "minItems",
            "multipleOf",
            "maxProperties",
            "minProperties",
            "xKubernetesPreserveUnknownFields",
        ],
    ),
    (
        "apiextensions_apiserver.pkg.apis.apiextensions.CustomResourceDefinitionVersion",
        &["served", "storage"],
    ),
    (
        "apiextensions_apiserver.pkg.apis.apiextensions.ServiceReference",
        &["port"],
    ),
    (
        "apiextensions_apiserver.pkg.apis.apiextensions.ValidationRule",
        &["optionalOldSelf"],
    ),
    // apiregistration
    (
        "kube_aggregator.pkg.apis.apiregistration.APIServiceSpec",
        &["groupPriorityMinimum", "versionPriority"],
    ),
    (
        "kube_aggregator.pkg.apis.apiregistration.ServiceReference",
        &["port"],
    ),
];

/// Whether a zero `field` of `message` (a versionless name) is kept.
pub(crate) fn keeps_zero(message: &str, field: &str) -> bool {
    KEEP_ZERO
        .iter()
        .any(|&(m, fields)| m == message && fields.contains(&field))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_dropped_from_message_names() {
        assert_eq!(
            versionless("api.apps.v1.DeploymentSpec"),
            "api.apps.DeploymentSpec"
        );
        assert_eq!(
            versionless("api.resource.v1beta2.DeviceRequest"),
            "api.resource.DeviceRequest"
        );
        assert_eq!(
            versionless("apimachinery.pkg.apis.meta.v1.Time"),
            "apimachinery.pkg.apis.meta.Time"
        );
        assert_eq!(
            versionless("apimachinery.pkg.util.intstr.IntOrString"),
            "apimachinery.pkg.util.intstr.IntOrString"
        );
        assert!(!is_version("volumes"));
        assert!(!is_version("v1beta"));
    }

    #[test]
    fn json_names_follow_the_go_tags() {
        let props = "apiextensions_apiserver.pkg.apis.apiextensions.JSONSchemaProps";
        assert_eq!(
            json_name(props, "xKubernetesPreserveUnknownFields"),
            "x-kubernetes-preserve-unknown-fields"
        );
        assert_eq!(json_name(props, "ref"), "$ref");
        assert_eq!(json_name(props, "schema"), "$schema");
        assert_eq!(json_name("api.core.DaemonEndpoint", "Port"), "Port");
        assert_eq!(
            json_name("api.authentication.BoundObjectReference", "uID"),
            "uid"
        );
    }
}
