//! The k8s-openapi type behind each built-in kind served at a GA version, reduced to what
//! the apiserver needs at run time: the type's OpenAPI schema, which `/openapi/v2` and
//! `/openapi/v3` serve and [`crate::schema`] compiles into each kind's shape (for
//! `fieldValidation`'s unknown fields). Resources stay JSON values everywhere else.

use std::borrow::Cow;

use k8s_openapi::schemars::{JsonSchema, Schema, SchemaGenerator};
use k8s_openapi::{ListableResource, Resource, api, apiextensions_apiserver, kube_aggregator};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// One built-in kind and its k8s-openapi type, as functions over JSON.
pub(crate) struct TypedKind {
    /// The API group; empty for core.
    pub(crate) group: &'static str,
    /// The version the type belongs to.
    pub(crate) version: &'static str,
    /// The kind (`ConfigMap`).
    pub(crate) kind: &'static str,
    /// The list kind (`ConfigMapList`); `None` for kinds that are never listed (reviews,
    /// `Scale`, `Eviction`...).
    pub(crate) list_kind: Option<&'static str>,
    /// The schema's name as upstream's OpenAPI names it (`io.k8s.api.core.v1.ConfigMap`).
    pub(crate) schema_name: fn() -> Cow<'static, str>,
    /// Registers the type's schema (and every schema it refers to) with the generator and
    /// returns a reference to it.
    pub(crate) schema: fn(&mut SchemaGenerator) -> Schema,
}

fn schema_of<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

const fn single<T>() -> TypedKind
where
    T: Resource + JsonSchema + Serialize + DeserializeOwned,
{
    TypedKind {
        group: T::GROUP,
        version: T::VERSION,
        kind: T::KIND,
        list_kind: None,
        schema_name: T::schema_name,
        schema: schema_of::<T>,
    }
}

const fn listable<T>() -> TypedKind
where
    T: ListableResource + JsonSchema + Serialize + DeserializeOwned,
{
    TypedKind {
        list_kind: Some(T::LIST_KIND),
        ..single::<T>()
    }
}

/// Every kind k8s-openapi (v1.33) defines at a GA version. Alpha and beta versions are
/// left out: the server does not serve them (see `apimachinery::resources`).
pub(crate) static KINDS: &[TypedKind] = &[
    single::<api::core::v1::Binding>(),
    listable::<api::core::v1::ComponentStatus>(),
    listable::<api::core::v1::ConfigMap>(),
    listable::<api::core::v1::Endpoints>(),
    listable::<api::core::v1::Event>(),
    listable::<api::core::v1::LimitRange>(),
    listable::<api::core::v1::Namespace>(),
    listable::<api::core::v1::Node>(),
    listable::<api::core::v1::PersistentVolume>(),
    listable::<api::core::v1::PersistentVolumeClaim>(),
    listable::<api::core::v1::Pod>(),
    listable::<api::core::v1::PodTemplate>(),
    listable::<api::core::v1::ReplicationController>(),
    listable::<api::core::v1::ResourceQuota>(),
    listable::<api::core::v1::Secret>(),
    listable::<api::core::v1::Service>(),
    listable::<api::core::v1::ServiceAccount>(),
    listable::<api::admissionregistration::v1::MutatingWebhookConfiguration>(),
    listable::<api::admissionregistration::v1::ValidatingAdmissionPolicy>(),
    listable::<api::admissionregistration::v1::ValidatingAdmissionPolicyBinding>(),
    listable::<api::admissionregistration::v1::ValidatingWebhookConfiguration>(),
    listable::<apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>(),
    listable::<kube_aggregator::pkg::apis::apiregistration::v1::APIService>(),
    listable::<api::apps::v1::ControllerRevision>(),
    listable::<api::apps::v1::DaemonSet>(),
    listable::<api::apps::v1::Deployment>(),
    listable::<api::apps::v1::ReplicaSet>(),
    listable::<api::apps::v1::StatefulSet>(),
    single::<api::authentication::v1::SelfSubjectReview>(),
    single::<api::authentication::v1::TokenRequest>(),
    single::<api::authentication::v1::TokenReview>(),
    single::<api::authorization::v1::LocalSubjectAccessReview>(),
    single::<api::authorization::v1::SelfSubjectAccessReview>(),
    single::<api::authorization::v1::SelfSubjectRulesReview>(),
    single::<api::authorization::v1::SubjectAccessReview>(),
    listable::<api::autoscaling::v1::HorizontalPodAutoscaler>(),
    single::<api::autoscaling::v1::Scale>(),
    listable::<api::autoscaling::v2::HorizontalPodAutoscaler>(),
    listable::<api::batch::v1::CronJob>(),
    listable::<api::batch::v1::Job>(),
    listable::<api::certificates::v1::CertificateSigningRequest>(),
    listable::<api::coordination::v1::Lease>(),
    listable::<api::discovery::v1::EndpointSlice>(),
    listable::<api::events::v1::Event>(),
    listable::<api::flowcontrol::v1::FlowSchema>(),
    listable::<api::flowcontrol::v1::PriorityLevelConfiguration>(),
    listable::<api::networking::v1::IPAddress>(),
    listable::<api::networking::v1::Ingress>(),
    listable::<api::networking::v1::IngressClass>(),
    listable::<api::networking::v1::NetworkPolicy>(),
    listable::<api::networking::v1::ServiceCIDR>(),
    listable::<api::node::v1::RuntimeClass>(),
    single::<api::policy::v1::Eviction>(),
    listable::<api::policy::v1::PodDisruptionBudget>(),
    listable::<api::rbac::v1::ClusterRole>(),
    listable::<api::rbac::v1::ClusterRoleBinding>(),
    listable::<api::rbac::v1::Role>(),
    listable::<api::rbac::v1::RoleBinding>(),
    listable::<api::scheduling::v1::PriorityClass>(),
    listable::<api::storage::v1::CSIDriver>(),
    listable::<api::storage::v1::CSINode>(),
    listable::<api::storage::v1::CSIStorageCapacity>(),
    listable::<api::storage::v1::StorageClass>(),
    listable::<api::storage::v1::VolumeAttachment>(),
];

/// The typed kind for a group, version and kind, if k8s-openapi has one.
pub(crate) fn find(group: &str, version: &str, kind: &str) -> Option<&'static TypedKind> {
    KINDS
        .iter()
        .find(|k| k.group == group && k.version == version && k.kind == kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_served_resource_has_a_typed_kind() {
        for r in apimachinery::resources::RESOURCES {
            assert!(find(r.group, r.version, r.kind).is_some(), "{r:?}");
        }
    }
}
