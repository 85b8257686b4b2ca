//! The scenarios, one module per upstream test file (test/e2e/apimachinery/*.go).

mod apps;
mod auth;
mod certificates;
mod chunking;
mod configmap;
mod crd_publish_openapi;
mod custom_resource_definition;
mod discovery;
mod field_validation;
mod namespaces;
mod resource_quota;
mod scheduling;
mod secrets;
mod server_version;
mod services;
mod watch;

use crate::Cluster;

/// One scenario: an upstream conformance test's codename and our check of it.
pub struct Scenario {
    /// The upstream codename, e.g. `[sig-api-machinery] server version should find the server version [Conformance]`.
    pub codename: &'static str,
    /// Runs the scenario; `Err` says what differs from upstream.
    pub run: fn(&Cluster) -> Result<(), String>,
}

/// Every scenario, in the order they run.
pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        codename: "[sig-scheduling] SchedulerPredicates [Serial] validates that NodeSelector is respected if not matching [Conformance]",
        run: scheduling::node_selector_not_matching,
    },
    Scenario {
        codename: "[sig-api-machinery] server version should find the server version [Conformance]",
        run: server_version::find_the_server_version,
    },
    Scenario {
        codename: "[sig-api-machinery] Discovery should validate PreferredVersion for each APIGroup [Conformance]",
        run: discovery::preferred_version_for_each_group,
    },
    Scenario {
        codename: "[sig-api-machinery] Discovery should locate the groupVersion and a resource within each APIGroup [Conformance]",
        run: discovery::group_version_and_a_resource_in_each_group,
    },
    Scenario {
        codename: "[sig-api-machinery] FieldValidation should detect unknown and duplicate fields of a typed object [Conformance]",
        run: field_validation::unknown_and_duplicate_fields,
    },
    Scenario {
        codename: "[sig-api-machinery] FieldValidation should detect unknown metadata fields of a typed object [Conformance]",
        run: field_validation::unknown_metadata_fields,
    },
    Scenario {
        codename: "[sig-api-machinery] FieldValidation should create/apply a CR with unknown fields for CRD with no validation schema [Conformance]",
        run: field_validation::unknown_fields_cr_without_schema,
    },
    Scenario {
        codename: "[sig-api-machinery] FieldValidation should create/apply a valid CR for CRD with validation schema [Conformance]",
        run: field_validation::valid_cr_with_schema,
    },
    Scenario {
        codename: "[sig-api-machinery] FieldValidation should create/apply an invalid CR with extra properties for CRD with validation schema [Conformance]",
        run: field_validation::extra_properties_cr_with_schema,
    },
    Scenario {
        codename: "[sig-api-machinery] FieldValidation should detect unknown metadata fields in both the root and embedded object of a CR [Conformance]",
        run: field_validation::unknown_metadata_fields_of_cr,
    },
    Scenario {
        codename: "[sig-api-machinery] FieldValidation should detect duplicates in a CR when preserving unknown fields [Conformance]",
        run: field_validation::duplicates_in_cr_preserving_unknown_fields,
    },
    Scenario {
        codename: "[sig-api-machinery] CustomResourceDefinition resources [Privileged:ClusterAdmin] Simple CustomResourceDefinition creating/deleting custom resource definition objects works [Conformance]",
        run: custom_resource_definition::create_and_delete,
    },
    Scenario {
        codename: "[sig-api-machinery] CustomResourceDefinition resources [Privileged:ClusterAdmin] should include custom resource definition resources in discovery documents [Conformance]",
        run: custom_resource_definition::in_discovery,
    },
    Scenario {
        codename: "[sig-api-machinery] CustomResourcePublishOpenAPI [Privileged:ClusterAdmin] works for CRD with validation schema [Conformance]",
        run: crd_publish_openapi::with_validation_schema,
    },
    Scenario {
        codename: "[sig-api-machinery] CustomResourcePublishOpenAPI [Privileged:ClusterAdmin] works for CRD without validation schema [Conformance]",
        run: crd_publish_openapi::without_validation_schema,
    },
    Scenario {
        codename: "[sig-api-machinery] CustomResourcePublishOpenAPI [Privileged:ClusterAdmin] works for CRD preserving unknown fields at the schema root [Conformance]",
        run: crd_publish_openapi::preserving_unknown_fields_at_root,
    },
    Scenario {
        codename: "[sig-api-machinery] CustomResourcePublishOpenAPI [Privileged:ClusterAdmin] works for CRD preserving unknown fields in an embedded object [Conformance]",
        run: crd_publish_openapi::preserving_unknown_fields_in_embedded_object,
    },
    Scenario {
        codename: "[sig-api-machinery] CustomResourcePublishOpenAPI [Privileged:ClusterAdmin] works for multiple CRDs of different groups [Conformance]",
        run: crd_publish_openapi::multiple_crds_of_different_groups,
    },
    Scenario {
        codename: "[sig-api-machinery] CustomResourcePublishOpenAPI [Privileged:ClusterAdmin] works for multiple CRDs of same group but different versions [Conformance]",
        run: crd_publish_openapi::multiple_crds_of_same_group_different_versions,
    },
    Scenario {
        codename: "[sig-api-machinery] CustomResourcePublishOpenAPI [Privileged:ClusterAdmin] works for multiple CRDs of same group and version but different kinds [Conformance]",
        run: crd_publish_openapi::multiple_crds_of_same_group_and_version,
    },
    Scenario {
        codename: "[sig-api-machinery] CustomResourcePublishOpenAPI [Privileged:ClusterAdmin] updates the published spec when one version gets renamed [Conformance]",
        run: crd_publish_openapi::version_renamed,
    },
    Scenario {
        codename: "[sig-api-machinery] CustomResourcePublishOpenAPI [Privileged:ClusterAdmin] removes definition from spec when one version gets changed to not be served [Conformance]",
        run: crd_publish_openapi::version_unserved,
    },
    Scenario {
        codename: "[sig-node] ConfigMap should run through a ConfigMap lifecycle [Conformance]",
        run: configmap::lifecycle,
    },
    Scenario {
        codename: "[sig-node] ConfigMap should fail to create ConfigMap with empty key [Conformance]",
        run: configmap::empty_key_is_refused,
    },
    Scenario {
        codename: "[sig-node] Secrets should patch a secret [Conformance]",
        run: secrets::patch_a_secret,
    },
    Scenario {
        codename: "[sig-node] Secrets should fail to create secret due to empty secret key [Conformance]",
        run: secrets::empty_key_is_refused,
    },
    Scenario {
        codename: "[sig-api-machinery] Namespaces [Serial] should patch a Namespace [Conformance]",
        run: namespaces::patch_a_namespace,
    },
    Scenario {
        codename: "[sig-api-machinery] Namespaces [Serial] should apply an update to a Namespace [Conformance]",
        run: namespaces::update_a_namespace,
    },
    Scenario {
        codename: "[sig-api-machinery] Namespaces [Serial] should apply changes to a namespace status [Conformance]",
        run: namespaces::apply_changes_to_namespace_status,
    },
    Scenario {
        codename: "[sig-api-machinery] Namespaces [Serial] should apply a finalizer to a Namespace [Conformance]",
        run: namespaces::apply_a_finalizer_to_a_namespace,
    },
    Scenario {
        codename: "[sig-api-machinery] Watchers should be able to start watching from a specific resource version [Conformance]",
        run: watch::from_a_specific_resource_version,
    },
    Scenario {
        codename: "[sig-api-machinery] Watchers should observe add, update, and delete watch notifications on configmaps [Conformance]",
        run: watch::add_update_delete_notifications,
    },
    Scenario {
        codename: "[sig-api-machinery] Watchers should observe an object deletion if it stops meeting the requirements of the selector [Conformance]",
        run: watch::deletion_when_the_selector_stops_matching,
    },
    Scenario {
        codename: "[sig-api-machinery] Servers with support for API chunking should return chunks of results for list calls [Conformance]",
        run: chunking::chunks_of_results,
    },
    Scenario {
        codename: "[sig-network] Services should find a service from listing all namespaces [Conformance]",
        run: services::find_from_all_namespaces,
    },
    Scenario {
        codename: "[sig-network] Services should delete a collection of services [Conformance]",
        run: services::delete_a_collection,
    },
    Scenario {
        codename: "[sig-auth] Certificates API [Privileged:ClusterAdmin] should support CSR API operations [Conformance]",
        run: certificates::csr_api_operations,
    },
    Scenario {
        codename: "[sig-auth] SubjectReview should support SubjectReview API operations [Conformance]",
        run: auth::subject_review,
    },
    Scenario {
        codename: "[sig-auth] ServiceAccounts should guarantee kube-root-ca.crt exist in any namespace [Conformance]",
        run: auth::root_ca_configmap,
    },
    Scenario {
        codename: "[sig-auth] ServiceAccounts ServiceAccountIssuerDiscovery should support OIDC discovery of service account issuer [Conformance]",
        run: auth::oidc_discovery,
    },
    Scenario {
        codename: "[sig-auth] ServiceAccounts should allow opting out of API token automount [Conformance]",
        run: auth::automount_opt_out,
    },
    Scenario {
        codename: "[sig-apps] ReplicaSet should adopt matching pods on creation and release no longer matching pods [Conformance]",
        run: apps::rs_adopt_and_release,
    },
    Scenario {
        codename: "[sig-apps] ReplicationController should adopt matching pods on creation [Conformance]",
        run: apps::rc_adopt,
    },
    Scenario {
        codename: "[sig-apps] ReplicationController should release no longer matching pods [Conformance]",
        run: apps::rc_release,
    },
    Scenario {
        codename: "[sig-apps] Deployment deployment should delete old replica sets [Conformance]",
        run: apps::deployment_deletes_old_replica_sets,
    },
    Scenario {
        codename: "[sig-apps] Deployment RollingUpdateDeployment should delete old pods and create new ones [Conformance]",
        run: apps::rolling_update_deployment,
    },
    Scenario {
        codename: "[sig-apps] Deployment Deployment should have a working scale subresource [Conformance]",
        run: apps::deployment_scale_subresource,
    },
    Scenario {
        codename: "[sig-apps] ReplicaSet Replicaset should have a working scale subresource [Conformance]",
        run: apps::rs_scale_subresource,
    },
    Scenario {
        codename: "[sig-apps] DisruptionController should observe PodDisruptionBudget status updated [Conformance]",
        run: apps::pdb_status_updated,
    },
    Scenario {
        codename: "[sig-apps] DisruptionController should block an eviction until the PDB is updated to allow it [Conformance]",
        run: apps::pdb_blocks_eviction_until_updated,
    },
    Scenario {
        codename: "[sig-apps] ReplicaSet should list and delete a collection of ReplicaSets [Conformance]",
        run: apps::rs_list_and_delete_collection,
    },
    Scenario {
        codename: "[sig-api-machinery] ResourceQuota should create a ResourceQuota and ensure its status is promptly calculated. [Conformance]",
        run: resource_quota::status_promptly_calculated,
    },
    Scenario {
        codename: "[sig-api-machinery] ResourceQuota should create a ResourceQuota and capture the life of a configMap. [Conformance]",
        run: resource_quota::life_of_a_config_map,
    },
    Scenario {
        codename: "[sig-api-machinery] ResourceQuota should create a ResourceQuota and capture the life of a secret. [Conformance]",
        run: resource_quota::life_of_a_secret,
    },
    Scenario {
        codename: "[sig-api-machinery] ResourceQuota should create a ResourceQuota and capture the life of a pod. [Conformance]",
        run: resource_quota::life_of_a_pod,
    },
];

/// A short token no other run uses (lowercase letters and digits), for names of
/// cluster-wide objects such as CRDs.
fn token() -> String {
    Cluster::unique_name("t")
        .chars()
        .skip(1)
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_lowercase()
}

/// Polls `check` every half second for up to 30 s, until it says `Ok`; then its last
/// complaint is the failure.
fn poll(mut check: impl FnMut() -> Result<(), String>) -> Result<(), String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        match check() {
            Ok(()) => return Ok(()),
            Err(why) if std::time::Instant::now() > deadline => {
                return Err(format!("after 30 s: {why}"));
            }
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(500)),
        }
    }
}

/// Turns any displayable error into a scenario failure.
fn fail(e: impl std::fmt::Display) -> String {
    e.to_string()
}
