//! Who a request comes from and what it may do: the request chain's security stages,
//! in upstream's order.
//!
//! - [`authn`]: authentication (x509 client certificates, the static token file,
//!   bootstrap tokens, service-account JWTs, then anonymous), producing a [`UserInfo`];
//! - [`impersonation`]: `Impersonate-*` headers, themselves authorized;
//! - [`request_info`]: what a request asks for (verb, resource, namespace, name), as
//!   upstream's `RequestInfoFactory`;
//! - [`authz`]: authorization (Node, RBAC, AlwaysAllow/AlwaysDeny) over those attributes;
//! - [`reviews`]: the APIs that expose the above (TokenReview, the access reviews,
//!   SelfSubjectReview, TokenRequest);
//! - [`admission`]: the plugins every write passes, called from the registry's write
//!   path (`registry/admit.rs`) with the request's user;
//! - [`filter`]: the axum middleware that runs the stages for every request.

pub mod admission;
pub mod authn;
pub mod authz;
pub mod filter;
pub mod impersonation;
pub mod request_info;
pub mod reviews;

#[cfg(test)]
mod chain_tests;

use std::collections::BTreeMap;

/// The user name upstream gives requests that present no credentials.
pub const ANONYMOUS_USER: &str = "system:anonymous";
/// The group upstream gives requests that present no credentials.
pub const UNAUTHENTICATED_GROUP: &str = "system:unauthenticated";
/// The group upstream adds to every authenticated user.
pub const AUTHENTICATED_GROUP: &str = "system:authenticated";
/// The group that RBAC lets do anything (and that escalation checks let through).
pub const MASTERS_GROUP: &str = "system:masters";

/// An authenticated (or anonymous) user, as upstream's `user.Info`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserInfo {
    /// The user name.
    pub name: String,
    /// A unique id, when the authenticator knows one (service accounts, token file).
    pub uid: String,
    /// The groups the user belongs to.
    pub groups: Vec<String>,
    /// Further attributes (a bound token's pod, the credential id, ...).
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    /// A user with a name and groups, no uid or extra.
    pub fn new(name: impl Into<String>, groups: &[&str]) -> Self {
        UserInfo {
            name: name.into(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            ..Default::default()
        }
    }

    /// The anonymous user, for requests without credentials.
    pub fn anonymous() -> Self {
        UserInfo::new(ANONYMOUS_USER, &[UNAUTHENTICATED_GROUP])
    }

    /// Whether this is the anonymous user.
    pub fn is_anonymous(&self) -> bool {
        self.name == ANONYMOUS_USER
    }

    /// Whether the user is in `group`.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }

    /// The user as an authenticated one: `system:authenticated` added unless it, or
    /// `system:unauthenticated`, is already there (upstream's `AuthenticatedGroupAdder`).
    pub fn with_authenticated_group(mut self) -> Self {
        if !self.is_anonymous()
            && !self
                .groups
                .iter()
                .any(|g| g == AUTHENTICATED_GROUP || g == UNAUTHENTICATED_GROUP)
        {
            self.groups.push(AUTHENTICATED_GROUP.to_owned());
        }
        self
    }

    /// The user a verified client certificate (DER) names: CommonName as user,
    /// Organizations as groups (upstream's x509 authenticator). None when the
    /// certificate does not parse or has no CommonName, which upstream rejects too.
    pub fn from_client_certificate(der: &[u8]) -> Option<Self> {
        authn::x509::user_from_certificate(der)
    }

    /// The user as upstream's UserInfo JSON (`username`, `uid`, `groups`, `extra`), as
    /// TokenReview and SelfSubjectReview report it.
    pub fn to_json(&self) -> serde_json::Value {
        let mut user = serde_json::json!({ "username": self.name });
        if !self.uid.is_empty() {
            user["uid"] = self.uid.clone().into();
        }
        if !self.groups.is_empty() {
            user["groups"] = self.groups.clone().into();
        }
        if !self.extra.is_empty() {
            user["extra"] = serde_json::to_value(&self.extra).unwrap_or_default();
        }
        user
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authenticated_group_is_added_once() {
        let user = UserInfo::new("jane", &["dev"]).with_authenticated_group();
        assert_eq!(user.groups, ["dev", AUTHENTICATED_GROUP]);
        let again = user.clone().with_authenticated_group();
        assert_eq!(again, user);
        assert_eq!(
            UserInfo::anonymous().with_authenticated_group().groups,
            [UNAUTHENTICATED_GROUP]
        );
    }

    #[test]
    fn garbage_certificate_names_nobody() {
        assert_eq!(UserInfo::from_client_certificate(b"not der"), None);
    }
}
