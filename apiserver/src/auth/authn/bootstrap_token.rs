//! Bootstrap token authentication: a token `<id>.<secret>` is the Secret
//! `kube-system/bootstrap-token-<id>` of type `bootstrap.kubernetes.io/token`, allowed
//! for authentication (`usage-bootstrap-authentication: true`) and not expired. The
//! user is `system:bootstrap:<id>` in `system:bootstrappers` and the secret's
//! `auth-extra-groups`, as upstream's bootstrap authenticator.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use crate::auth::UserInfo;

/// The group of every bootstrap token's user.
pub const BOOTSTRAPPERS_GROUP: &str = "system:bootstrappers";
/// The Secret type of bootstrap tokens.
pub const SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";

/// The id and secret of a token shaped like a bootstrap token (`[a-z0-9]{6}.[a-z0-9]{16}`).
pub fn parse(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.split_once('.')?;
    let ok = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    (ok(id, 6) && ok(secret, 16)).then_some((id, secret))
}

/// The name of the Secret that holds token `id`.
pub fn secret_name(id: &str) -> String {
    format!("bootstrap-token-{id}")
}

fn data<'a>(secret: &'a Value, key: &str) -> Option<String> {
    let encoded = secret["data"][key].as_str()?;
    String::from_utf8(STANDARD.decode(encoded).ok()?).ok()
}

/// The user the token `id.token_secret` authenticates as, given its Secret.
pub fn authenticate(secret: &Value, id: &str, token_secret: &str) -> Option<UserInfo> {
    if secret["type"].as_str() != Some(SECRET_TYPE)
        || !secret["metadata"]["deletionTimestamp"].is_null()
    {
        return None;
    }
    if data(secret, "token-id").as_deref() != Some(id) {
        return None;
    }
    let stored = data(secret, "token-secret")?;
    if !super::constant_time_eq(stored.as_bytes(), token_secret.as_bytes()) {
        return None;
    }
    if data(secret, "usage-bootstrap-authentication").as_deref() != Some("true") {
        return None;
    }
    if let Some(expiration) = data(secret, "expiration") {
        let expires: jiff::Timestamp = expiration.parse().ok()?;
        if expires <= jiff::Timestamp::now() {
            return None;
        }
    }
    let mut groups = vec![BOOTSTRAPPERS_GROUP.to_owned()];
    if let Some(extra) = data(secret, "auth-extra-groups") {
        for group in extra.split(',').map(str::trim).filter(|g| !g.is_empty()) {
            // upstream refuses the token when a group is outside system:bootstrappers:
            if !group.starts_with("system:bootstrappers:") {
                return None;
            }
            if !groups.iter().any(|g| g == group) {
                groups.push(group.to_owned());
            }
        }
    }
    Some(UserInfo {
        name: format!("system:bootstrap:{id}"),
        groups,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64(s: &str) -> String {
        STANDARD.encode(s)
    }

    fn secret(extra: &[(&str, &str)]) -> Value {
        let mut data = json!({
            "token-id": b64("abcdef"),
            "token-secret": b64("0123456789abcdef"),
            "usage-bootstrap-authentication": b64("true"),
        });
        for (k, v) in extra {
            data[*k] = b64(v).into();
        }
        json!({"type": SECRET_TYPE, "metadata": {"name": "bootstrap-token-abcdef"}, "data": data})
    }

    #[test]
    fn a_valid_token_authenticates_with_its_groups() {
        assert_eq!(
            parse("abcdef.0123456789abcdef"),
            Some(("abcdef", "0123456789abcdef"))
        );
        assert_eq!(parse("ABCDEF.0123456789abcdef"), None);
        assert_eq!(parse("abcdef.short"), None);
        let user = authenticate(
            &secret(&[(
                "auth-extra-groups",
                "system:bootstrappers:kubeadm:default-node-token",
            )]),
            "abcdef",
            "0123456789abcdef",
        )
        .unwrap();
        assert_eq!(user.name, "system:bootstrap:abcdef");
        assert_eq!(
            user.groups,
            [
                BOOTSTRAPPERS_GROUP,
                "system:bootstrappers:kubeadm:default-node-token"
            ]
        );
    }

    #[test]
    fn wrong_secret_expired_or_unusable_tokens_are_refused() {
        assert!(authenticate(&secret(&[]), "abcdef", "0123456789abcdee").is_none());
        assert!(
            authenticate(
                &secret(&[("expiration", "2020-01-01T00:00:00Z")]),
                "abcdef",
                "0123456789abcdef"
            )
            .is_none()
        );
        assert!(
            authenticate(
                &secret(&[("usage-bootstrap-authentication", "false")]),
                "abcdef",
                "0123456789abcdef"
            )
            .is_none()
        );
        assert!(
            authenticate(
                &secret(&[("auth-extra-groups", "system:masters")]),
                "abcdef",
                "0123456789abcdef"
            )
            .is_none()
        );
        let mut wrong_type = secret(&[]);
        wrong_type["type"] = "Opaque".into();
        assert!(authenticate(&wrong_type, "abcdef", "0123456789abcdef").is_none());
    }
}
