//! The scenarios, one module per upstream test file (test/e2e/apimachinery/*.go).

mod auth;
mod chunking;
mod configmap;
mod custom_resource_definition;
mod discovery;
mod field_validation;
mod namespaces;
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
        codename: "[sig-api-machinery] CustomResourceDefinition resources [Privileged:ClusterAdmin] Simple CustomResourceDefinition creating/deleting custom resource definition objects works [Conformance]",
        run: custom_resource_definition::create_and_delete,
    },
    Scenario {
        codename: "[sig-api-machinery] CustomResourceDefinition resources [Privileged:ClusterAdmin] should include custom resource definition resources in discovery documents [Conformance]",
        run: custom_resource_definition::in_discovery,
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
        codename: "[sig-api-machinery] Watchers should be able to start watching from a specific resource version [Conformance]",
        run: watch::from_a_specific_resource_version,
    },
    Scenario {
        codename: "[sig-api-machinery] Watchers should observe add, update, and delete watch notifications on configmaps [Conformance]",
        run: watch::add_update_delete_notifications,
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
];

/// Turns any displayable error into a scenario failure.
fn fail(e: impl std::fmt::Display) -> String {
    e.to_string()
}
