//! User impersonation (`Impersonate-User`, `Impersonate-Group`, `Impersonate-Uid`,
//! `Impersonate-Extra-<key>`), what `kubectl --as` and `--as-group` send. Each
//! impersonated attribute must be allowed to the real user by the `impersonate` verb
//! (on `users`, `groups`, `serviceaccounts`, `uids` or `userextras/<key>`), as
//! upstream's impersonation filter; the request then runs as the impersonated user.

use apimachinery::errors::{StatusError, forbidden_resource_message};
use apimachinery::resources::GroupResource;
use axum::http::HeaderMap;

use super::authn::service_account;
use super::authz::Authorizer;
use super::request_info::RequestInfo;
use super::{AUTHENTICATED_GROUP, UserInfo};

const USER_HEADER: &str = "impersonate-user";
const GROUP_HEADER: &str = "impersonate-group";
const UID_HEADER: &str = "impersonate-uid";
const EXTRA_PREFIX: &str = "impersonate-extra-";

/// Whether a request asks to impersonate anyone.
pub fn requested(headers: &HeaderMap) -> bool {
    headers.keys().any(|k| {
        let k = k.as_str();
        k == USER_HEADER || k == GROUP_HEADER || k == UID_HEADER || k.starts_with(EXTRA_PREFIX)
    })
}

fn values(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_owned)
        .collect()
}

/// The user `real` impersonates through `headers`, once every attribute is authorized.
pub async fn impersonate(
    authorizer: &Authorizer,
    real: &UserInfo,
    headers: &HeaderMap,
) -> Result<UserInfo, StatusError> {
    let user = values(headers, USER_HEADER)
        .into_iter()
        .next()
        .unwrap_or_default();
    let groups = values(headers, GROUP_HEADER);
    let uid = values(headers, UID_HEADER).into_iter().next();
    let mut extra: Vec<(String, String)> = Vec::new();
    for name in headers.keys() {
        if let Some(key) = name.as_str().strip_prefix(EXTRA_PREFIX) {
            // upstream unescapes percent-encoded keys (they may hold `/`)
            let key = crate::http::percent_decode(key).to_ascii_lowercase();
            for value in values(headers, name.as_str()) {
                extra.push((key.clone(), value));
            }
        }
    }
    if user.is_empty() {
        return Err(StatusError::internal_error(format!(
            "requested {} without impersonating a user",
            describe(&groups, uid.as_deref(), &extra)
        )));
    }

    // What must be allowed: the user (or service account), each group, uid and extra.
    let mut checks: Vec<RequestInfo> = Vec::new();
    let mut impersonated = UserInfo {
        name: user.clone(),
        ..Default::default()
    };
    match service_account::split_user_name(&user) {
        Some((namespace, name)) => {
            checks.push(RequestInfo::resource(
                "impersonate",
                "",
                "serviceaccounts",
                "",
                namespace,
                name,
            ));
            if groups.is_empty() {
                impersonated.groups = service_account::groups(namespace);
            }
        }
        None => checks.push(RequestInfo::resource(
            "impersonate",
            "",
            "users",
            "",
            "",
            &user,
        )),
    }
    for group in &groups {
        checks.push(RequestInfo::resource(
            "impersonate",
            "",
            "groups",
            "",
            "",
            group,
        ));
        if !impersonated.groups.contains(group) {
            impersonated.groups.push(group.clone());
        }
    }
    if let Some(uid) = &uid {
        checks.push(RequestInfo::resource(
            "impersonate",
            "authentication.k8s.io",
            "uids",
            "",
            "",
            uid,
        ));
        impersonated.uid = uid.clone();
    }
    for (key, value) in &extra {
        checks.push(RequestInfo::resource(
            "impersonate",
            "authentication.k8s.io",
            "userextras",
            key,
            "",
            value,
        ));
        impersonated
            .extra
            .entry(key.clone())
            .or_default()
            .push(value.clone());
    }
    for check in checks {
        if !authorizer.allows(real, &check).await {
            let resource = if check.subresource.is_empty() {
                check.resource.clone()
            } else {
                format!("{}/{}", check.resource, check.subresource)
            };
            let why = forbidden_resource_message(
                &real.name,
                "impersonate",
                &resource,
                &check.api_group,
                Some(check.namespace.as_str()).filter(|n| !n.is_empty()),
            );
            return Err(StatusError::forbidden(
                &GroupResource {
                    group: check.api_group.clone(),
                    resource: check.resource.clone(),
                },
                &check.name,
                why,
            ));
        }
    }
    // an impersonated (non-anonymous) user is authenticated too, as upstream
    if !impersonated.is_anonymous() && !impersonated.in_group(AUTHENTICATED_GROUP) {
        impersonated.groups.push(AUTHENTICATED_GROUP.to_owned());
    }
    Ok(impersonated)
}

fn describe(groups: &[String], uid: Option<&str>, extra: &[(String, String)]) -> String {
    let mut parts = Vec::new();
    for group in groups {
        parts.push(format!("{GROUP_HEADER}={group}"));
    }
    if let Some(uid) = uid {
        parts.push(format!("{UID_HEADER}={uid}"));
    }
    for (k, v) in extra {
        parts.push(format!("{EXTRA_PREFIX}{k}={v}"));
    }
    format!("[{}]", parts.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::authz::AlwaysDeny;
    use std::sync::Arc;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        map
    }

    #[tokio::test]
    async fn allowed_impersonation_becomes_the_user() {
        let allow = Authorizer::always_allow();
        let real = UserInfo::new("admin", &[]);
        let h = headers(&[
            ("Impersonate-User", "jane"),
            ("Impersonate-Group", "dev"),
            ("Impersonate-Group", "ops"),
        ]);
        assert!(requested(&h));
        let user = impersonate(&allow, &real, &h).await.unwrap();
        assert_eq!(user.name, "jane");
        assert_eq!(user.groups, ["dev", "ops", AUTHENTICATED_GROUP]);
        let sa = impersonate(
            &allow,
            &real,
            &headers(&[("Impersonate-User", "system:serviceaccount:dev:ci")]),
        )
        .await
        .unwrap();
        assert_eq!(
            sa.groups,
            [
                "system:serviceaccounts",
                "system:serviceaccounts:dev",
                AUTHENTICATED_GROUP
            ]
        );
    }

    #[tokio::test]
    async fn refused_impersonation_reads_like_upstream() {
        let deny = Authorizer::new(vec![Arc::new(AlwaysDeny)]);
        let real = UserInfo::new("jane", &[AUTHENTICATED_GROUP]);
        let err = impersonate(&deny, &real, &headers(&[("Impersonate-User", "bob")]))
            .await
            .unwrap_err();
        assert_eq!(err.http_status(), 403);
        assert_eq!(
            err.status().message,
            r#"users "bob" is forbidden: User "jane" cannot impersonate resource "users" in API group "" at the cluster scope"#
        );
        let err = impersonate(&deny, &real, &headers(&[("Impersonate-Group", "dev")]))
            .await
            .unwrap_err();
        assert_eq!(err.http_status(), 500);
    }
}
