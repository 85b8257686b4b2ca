//! Authorization: the `--authorization-mode` chain (upstream's union authorizer).
//! Each mode answers Allow, Deny or NoOpinion for a user and a [`RequestInfo`]; the
//! first Allow or Deny decides, and NoOpinion from all of them is a denial whose
//! reasons are joined. As upstream, `system:masters` is allowed before any mode is
//! asked.
//!
//! - [`rbac`]: Role/ClusterRole rules through RoleBindings/ClusterRoleBindings, from an
//!   in-memory index that follows the store;
//! - [`node`]: the Node authorizer (a kubelet reaches its own node's objects only);
//! - [`bootstrap_policy`]: upstream's default roles and bindings, reconciled at start;
//! - [`escalation`]: no one grants through RBAC what they do not hold themselves.

pub mod bootstrap_policy;
pub mod escalation;
pub mod node;
pub mod rbac;

use std::sync::Arc;

use super::request_info::RequestInfo;
use super::{MASTERS_GROUP, UserInfo};

/// An authorizer's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The request may go on.
    Allow,
    /// The request is refused, whatever later authorizers would say.
    Deny,
    /// This authorizer does not decide; the next one is asked.
    NoOpinion,
}

/// One `--authorization-mode` entry.
#[async_trait::async_trait]
pub trait Authorize: Send + Sync {
    /// The decision for `user` doing `request`, with a reason (empty when none).
    async fn authorize(&self, user: &UserInfo, request: &RequestInfo) -> (Decision, String);

    /// The rules this authorizer grants `user` in `namespace`, for
    /// SelfSubjectRulesReview; `incomplete` when it cannot list them.
    async fn rules_for(&self, user: &UserInfo, namespace: &str) -> RulesAnswer {
        let _ = (user, namespace);
        RulesAnswer {
            incomplete: true,
            ..Default::default()
        }
    }
}

/// What an authorizer can say of a user's rules in a namespace.
#[derive(Clone, Debug, Default)]
pub struct RulesAnswer {
    /// Resource rules.
    pub resource_rules: Vec<rbac::PolicyRule>,
    /// Non-resource rules.
    pub non_resource_rules: Vec<rbac::PolicyRule>,
    /// Whether the list may miss rules.
    pub incomplete: bool,
    /// Errors met while listing them.
    pub evaluation_errors: Vec<String>,
}

/// `AlwaysAllow`: every request is allowed.
pub struct AlwaysAllow;

#[async_trait::async_trait]
impl Authorize for AlwaysAllow {
    async fn authorize(&self, _: &UserInfo, _: &RequestInfo) -> (Decision, String) {
        (Decision::Allow, String::new())
    }

    async fn rules_for(&self, _: &UserInfo, _: &str) -> RulesAnswer {
        let everything = rbac::PolicyRule {
            verbs: vec!["*".into()],
            api_groups: vec!["*".into()],
            resources: vec!["*".into()],
            ..Default::default()
        };
        let urls = rbac::PolicyRule {
            verbs: vec!["*".into()],
            non_resource_urls: vec!["*".into()],
            ..Default::default()
        };
        RulesAnswer {
            resource_rules: vec![everything],
            non_resource_rules: vec![urls],
            ..Default::default()
        }
    }
}

/// `AlwaysDeny`: every request is refused.
pub struct AlwaysDeny;

#[async_trait::async_trait]
impl Authorize for AlwaysDeny {
    async fn authorize(&self, _: &UserInfo, _: &RequestInfo) -> (Decision, String) {
        (Decision::NoOpinion, "Everything is forbidden.".into())
    }
}

/// The configured chain of authorizers.
#[derive(Clone)]
pub struct Authorizer {
    modes: Vec<Arc<dyn Authorize>>,
}

impl Authorizer {
    /// A chain of `modes`, asked in order.
    pub fn new(modes: Vec<Arc<dyn Authorize>>) -> Self {
        Authorizer { modes }
    }

    /// Everyone may do everything (`--authorization-mode=AlwaysAllow`).
    pub fn always_allow() -> Self {
        Authorizer::new(vec![Arc::new(AlwaysAllow)])
    }

    /// Whether `user` may do `request`, with the reason of a refusal.
    pub async fn authorize(&self, user: &UserInfo, request: &RequestInfo) -> (Decision, String) {
        if user.in_group(MASTERS_GROUP) {
            return (Decision::Allow, String::new());
        }
        let mut reasons = Vec::new();
        for mode in &self.modes {
            let (decision, reason) = mode.authorize(user, request).await;
            match decision {
                Decision::NoOpinion => {
                    if !reason.is_empty() {
                        reasons.push(reason);
                    }
                }
                decided => return (decided, reason),
            }
        }
        (Decision::NoOpinion, reasons.join(", "))
    }

    /// Whether `user` may do `request`.
    pub async fn allows(&self, user: &UserInfo, request: &RequestInfo) -> bool {
        self.authorize(user, request).await.0 == Decision::Allow
    }

    /// The union of every mode's rules for `user` in `namespace`
    /// (SelfSubjectRulesReview).
    pub async fn rules_for(&self, user: &UserInfo, namespace: &str) -> RulesAnswer {
        let mut answer = RulesAnswer::default();
        if user.in_group(MASTERS_GROUP) {
            return AlwaysAllow.rules_for(user, namespace).await;
        }
        for mode in &self.modes {
            let part = mode.rules_for(user, namespace).await;
            answer.resource_rules.extend(part.resource_rules);
            answer.non_resource_rules.extend(part.non_resource_rules);
            answer.evaluation_errors.extend(part.evaluation_errors);
            answer.incomplete |= part.incomplete;
        }
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn masters_pass_and_no_opinion_denies_with_reasons() {
        let chain = Authorizer::new(vec![Arc::new(AlwaysDeny)]);
        let pods = RequestInfo::resource("list", "", "pods", "", "dev", "");
        let jane = UserInfo::new("jane", &["system:authenticated"]);
        assert_eq!(
            chain.authorize(&jane, &pods).await,
            (Decision::NoOpinion, "Everything is forbidden.".to_owned())
        );
        let admin = UserInfo::new("admin", &[MASTERS_GROUP]);
        assert!(chain.allows(&admin, &pods).await);
        assert!(Authorizer::always_allow().allows(&jane, &pods).await);
    }
}
