//! Who a request comes from and what it may do, in the first form the request chain
//! has: x509 client-certificate authentication (CN is the user, O the groups, as
//! upstream's x509 authenticator) and an authorizer that lets anyone read the public
//! info paths (upstream's `system:public-info-viewer`) and authenticated users the rest.
//! RBAC and the other authenticators come later as entries in the same chain.

use x509_parser::certificate::X509Certificate;

/// The user name upstream gives requests that present no credentials.
pub const ANONYMOUS_USER: &str = "system:anonymous";
/// The group upstream gives requests that present no credentials.
pub const UNAUTHENTICATED_GROUP: &str = "system:unauthenticated";
/// The group upstream adds to every authenticated user.
pub const AUTHENTICATED_GROUP: &str = "system:authenticated";

/// An authenticated (or anonymous) user, as upstream's `user.Info`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserInfo {
    /// The user name.
    pub name: String,
    /// The groups the user belongs to.
    pub groups: Vec<String>,
}

impl UserInfo {
    /// The anonymous user, for requests without credentials.
    pub fn anonymous() -> Self {
        UserInfo {
            name: ANONYMOUS_USER.to_owned(),
            groups: vec![UNAUTHENTICATED_GROUP.to_owned()],
        }
    }

    /// Whether this is the anonymous user.
    pub fn is_anonymous(&self) -> bool {
        self.name == ANONYMOUS_USER
    }

    /// The user a verified client certificate (DER) names: CommonName as user,
    /// Organizations as groups, plus `system:authenticated`. None when the certificate
    /// does not parse or has no CommonName, which upstream rejects too.
    pub fn from_client_certificate(der: &[u8]) -> Option<Self> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        user_from_certificate(&cert)
    }
}

fn user_from_certificate(cert: &X509Certificate<'_>) -> Option<UserInfo> {
    let subject = cert.subject();
    let name = subject.iter_common_name().next()?.as_str().ok()?.to_owned();
    if name.is_empty() {
        return None;
    }
    let mut groups: Vec<String> = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok())
        .map(str::to_owned)
        .collect();
    groups.push(AUTHENTICATED_GROUP.to_owned());
    Some(UserInfo { name, groups })
}

/// Paths that upstream's default RBAC lets anyone read (`system:public-info-viewer`).
pub fn is_public_info_path(path: &str) -> bool {
    const PUBLIC: [&str; 5] = ["/healthz", "/livez", "/readyz", "/version", "/version/"];
    PUBLIC.contains(&path)
        || ["/healthz/", "/livez/", "/readyz/"]
            .iter()
            .any(|prefix| path.starts_with(prefix))
}

/// Whether `user` may make a non-resource request to `path`: public info paths for
/// everyone, everything else for authenticated users (until RBAC arrives).
pub fn authorize_path(user: &UserInfo, path: &str) -> bool {
    is_public_info_path(path) || !user.is_anonymous()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_may_read_health_and_version_only() {
        let anonymous = UserInfo::anonymous();
        for path in ["/healthz", "/livez", "/readyz", "/readyz/etcd", "/version"] {
            assert!(authorize_path(&anonymous, path), "{path}");
        }
        for path in ["/api", "/apis", "/api/v1/pods", "/healthzz"] {
            assert!(!authorize_path(&anonymous, path), "{path}");
        }
        let admin = UserInfo {
            name: "kubernetes-admin".into(),
            groups: vec!["system:masters".into()],
        };
        assert!(authorize_path(&admin, "/api"));
    }

    #[test]
    fn garbage_certificate_names_nobody() {
        assert_eq!(UserInfo::from_client_certificate(b"not der"), None);
    }
}
