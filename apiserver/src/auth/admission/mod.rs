//! Admission: the plugins a write passes after authorization, in upstream's order:
//! every mutating step first (they may change the object), then every validating step
//! (they may only refuse). Each plugin is a unit behind [`Plugin`]; the chain is built
//! from `--enable-admission-plugins` / `--disable-admission-plugins` over upstream's
//! default set, always in upstream's fixed plugin order whatever the flag order.
//!
//! The registry calls the chain inside its write path (create, update, delete) with
//! the stored object as `old`; requests the server makes for itself (no user) are not
//! admitted, as upstream's loopback privileged writes.

pub mod certificates;
pub mod default_tolerations;
pub mod defaults_of_classes;
pub mod limit_ranger;
pub mod node_restriction;
pub mod pod_security;
pub mod priority;
pub mod resource_quota;
pub mod rules;
pub mod service_account;
pub mod validating_policy;
pub mod webhook;

use std::sync::Arc;

use apimachinery::errors::StatusError;
use apimachinery::resources::ResourceInfo;
use serde_json::Value;

use super::UserInfo;
use super::authz::Authorizer;
use super::authz::rbac::Rbac;
use crate::registry::Registry;

/// What a write does, as upstream's admission operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// A create.
    Create,
    /// An update or patch.
    Update,
    /// A delete.
    Delete,
}

impl Operation {
    /// Upstream's name (`CREATE`, `UPDATE`, `DELETE`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
        }
    }
}

/// What a plugin is told about a write.
pub struct Attributes<'a> {
    /// The operation.
    pub operation: Operation,
    /// The resource written.
    pub resource: &'static ResourceInfo,
    /// The subresource ("" for the main resource, `status`, ...).
    pub subresource: &'a str,
    /// The namespace ("" when cluster-scoped).
    pub namespace: &'a str,
    /// The object's name (may be empty on create with generateName).
    pub name: &'a str,
    /// The stored object, for updates and deletes.
    pub old: Option<&'a Value>,
    /// Who writes.
    pub user: &'a UserInfo,
    /// Whether the write is a dry run (plugins with side effects must not act).
    pub dry_run: bool,
}

impl Attributes<'_> {
    /// Whether this is a write of `group`/`plural` (the main resource or `subresource`).
    pub fn is(&self, group: &str, plural: &str, subresource: &str) -> bool {
        self.resource.group == group
            && self.resource.plural == plural
            && self.subresource == subresource
    }

    /// A 403 `<resource> "<name>" is forbidden: <why>`, as upstream's
    /// `admission.NewForbidden`.
    pub fn forbidden(&self, why: impl std::fmt::Display) -> StatusError {
        StatusError::forbidden(&self.resource.group_resource(), self.name, why)
    }
}

/// One admission plugin. A plugin overrides the steps it takes part in.
#[async_trait::async_trait]
pub trait Plugin: Send + Sync {
    /// Upstream's name (`ServiceAccount`, `Priority`, ...).
    fn name(&self) -> &'static str;

    /// Whether the validating step runs before the object's own validation, as RBAC's
    /// escalation check does upstream (in the roles' storage, ahead of the strategy):
    /// an escalating role that is also invalid is refused as forbidden, not invalid.
    fn validates_before_the_object(&self) -> bool {
        false
    }

    /// The mutating step: may change `object`, or refuse.
    async fn mutate(
        &self,
        attributes: &Attributes<'_>,
        object: &mut Value,
    ) -> Result<(), StatusError> {
        let _ = (attributes, object);
        Ok(())
    }

    /// The validating step: may only refuse. `object` is what will be stored (the
    /// stored object itself for deletes).
    async fn validate(
        &self,
        attributes: &Attributes<'_>,
        object: &Value,
    ) -> Result<(), StatusError> {
        let _ = (attributes, object);
        Ok(())
    }
}

/// What plugins may use: the registry for lookups, the authorizer and RBAC's index.
#[derive(Clone)]
pub struct Context {
    /// The registry (reads; writes only for side effects like quota charging).
    pub registry: Registry,
    /// The authorizer.
    pub authorizer: Authorizer,
    /// RBAC, when it is an authorization mode.
    pub rbac: Option<Arc<Rbac>>,
}

/// Upstream's plugins in upstream's order (`AllOrderedPlugins`), those rkube has.
pub const ORDERED_PLUGINS: &[&str] = &[
    "NamespaceLifecycle",
    "LimitRanger",
    "ServiceAccount",
    "NodeRestriction",
    "TaintNodesByCondition",
    "RuntimeClass",
    "PodSecurity",
    "Priority",
    "DefaultTolerationSeconds",
    "DefaultStorageClass",
    "StorageObjectInUseProtection",
    "PersistentVolumeClaimResize",
    "CertificateApproval",
    "CertificateSigning",
    "CertificateSubjectRestriction",
    "DefaultIngressClass",
    "MutatingAdmissionWebhook",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionWebhook",
    "ResourceQuota",
];

/// The plugins on when no flag changes them (upstream's default set, those rkube has).
pub fn default_plugins() -> impl Iterator<Item = &'static str> {
    ORDERED_PLUGINS
        .iter()
        .copied()
        .filter(|name| !OFF_BY_DEFAULT.contains(name))
}

/// The plugins upstream has but leaves off unless enabled.
const OFF_BY_DEFAULT: &[&str] = &["NodeRestriction"];

/// The configured chain.
#[derive(Clone, Default)]
pub struct Chain {
    plugins: Vec<Arc<dyn Plugin>>,
}

impl Chain {
    /// A chain of these plugins, in this order.
    pub fn new(plugins: Vec<Arc<dyn Plugin>>) -> Self {
        Chain { plugins }
    }

    /// The chain `--enable-admission-plugins` and `--disable-admission-plugins` name:
    /// the default set plus the enabled minus the disabled, in upstream's order. With
    /// RBAC, RBAC's escalation check runs first among the validations.
    pub fn from_flags(
        enable: &[String],
        disable: &[String],
        context: Context,
    ) -> Result<Self, String> {
        let unknown: Vec<&String> = enable
            .iter()
            .chain(disable)
            .filter(|name| !ORDERED_PLUGINS.contains(&name.as_str()))
            .collect();
        if !unknown.is_empty() {
            let names: Vec<&str> = unknown.iter().map(|s| s.as_str()).collect();
            return Err(format!("admission-plugins [{}] not found", names.join(" ")));
        }
        let mut plugins: Vec<Arc<dyn Plugin>> = Vec::new();
        if context.rbac.is_some() {
            plugins.push(Arc::new(RbacEscalation {
                context: context.clone(),
            }));
        }
        for name in ORDERED_PLUGINS {
            let on = (!OFF_BY_DEFAULT.contains(name) || enable.iter().any(|e| e == name))
                && !disable.iter().any(|d| d == name);
            if !on {
                continue;
            }
            let plugin: Arc<dyn Plugin> = match *name {
                // the registry refuses creates in terminating or missing namespaces
                "NamespaceLifecycle" => continue,
                "LimitRanger" => Arc::new(limit_ranger::LimitRanger::new(&context.registry)),
                "PersistentVolumeClaimResize" => {
                    Arc::new(certificates::PersistentVolumeClaimResize {
                        context: context.clone(),
                    })
                }
                "CertificateApproval" => Arc::new(certificates::CertificateApproval {
                    context: context.clone(),
                }),
                "CertificateSigning" => Arc::new(certificates::CertificateSigning {
                    context: context.clone(),
                }),
                "CertificateSubjectRestriction" => {
                    Arc::new(certificates::CertificateSubjectRestriction)
                }
                "NodeRestriction" => Arc::new(node_restriction::NodeRestriction),
                "TaintNodesByCondition" => Arc::new(default_tolerations::TaintNodesByCondition),
                "ServiceAccount" => Arc::new(service_account::ServiceAccount::new(
                    context.registry.clone(),
                )),
                "DefaultTolerationSeconds" => {
                    Arc::new(default_tolerations::DefaultTolerationSeconds)
                }
                "DefaultStorageClass" => Arc::new(defaults_of_classes::DefaultStorageClass::new(
                    &context.registry,
                )),
                "StorageObjectInUseProtection" => {
                    Arc::new(defaults_of_classes::StorageObjectInUseProtection)
                }
                "RuntimeClass" => Arc::new(defaults_of_classes::RuntimeClass::new(
                    context.registry.clone(),
                )),
                "DefaultIngressClass" => Arc::new(defaults_of_classes::DefaultIngressClass::new(
                    &context.registry,
                )),
                "Priority" => Arc::new(priority::Priority::new(context.registry.clone())),
                "PodSecurity" => Arc::new(pod_security::PodSecurity::new(&context.registry)),
                "MutatingAdmissionWebhook" => {
                    Arc::new(webhook::Webhooks::mutating(&context.registry))
                }
                "ValidatingAdmissionWebhook" => {
                    Arc::new(webhook::Webhooks::validating(&context.registry))
                }
                "ResourceQuota" => {
                    Arc::new(resource_quota::ResourceQuota::new(context.registry.clone()))
                }
                "ValidatingAdmissionPolicy" => Arc::new(
                    validating_policy::ValidatingPolicies::new(&context.registry),
                ),
                _ => continue,
            };
            plugins.push(plugin);
        }
        Ok(Chain { plugins })
    }

    /// The plugins' names, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.plugins.iter().map(|p| p.name()).collect()
    }

    /// Runs every mutating step.
    pub async fn mutate(
        &self,
        attributes: &Attributes<'_>,
        object: &mut Value,
    ) -> Result<(), StatusError> {
        for plugin in &self.plugins {
            plugin.mutate(attributes, object).await?;
        }
        Ok(())
    }

    /// Runs the validating steps that come before the object's own validation.
    pub async fn validate_early(
        &self,
        attributes: &Attributes<'_>,
        object: &Value,
    ) -> Result<(), StatusError> {
        for plugin in self
            .plugins
            .iter()
            .filter(|p| p.validates_before_the_object())
        {
            plugin.validate(attributes, object).await?;
        }
        Ok(())
    }

    /// Runs the other validating steps, after the object's own validation.
    pub async fn validate(
        &self,
        attributes: &Attributes<'_>,
        object: &Value,
    ) -> Result<(), StatusError> {
        for plugin in self
            .plugins
            .iter()
            .filter(|p| !p.validates_before_the_object())
        {
            plugin.validate(attributes, object).await?;
        }
        Ok(())
    }
}

/// RBAC's escalation prevention, run before RBAC objects are validated.
struct RbacEscalation {
    context: Context,
}

#[async_trait::async_trait]
impl Plugin for RbacEscalation {
    fn name(&self) -> &'static str {
        "RBACEscalation"
    }

    fn validates_before_the_object(&self) -> bool {
        true
    }

    async fn validate(
        &self,
        attributes: &Attributes<'_>,
        object: &Value,
    ) -> Result<(), StatusError> {
        if attributes.operation == Operation::Delete || !attributes.subresource.is_empty() {
            return Ok(());
        }
        let Some(rbac) = &self.context.rbac else {
            return Ok(());
        };
        super::authz::escalation::check(
            &self.context.authorizer,
            rbac,
            attributes.user,
            attributes.resource,
            object,
            attributes.old,
        )
        .await
    }
}
