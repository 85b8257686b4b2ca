//! Service-account tokens: RS256 JWTs that the TokenRequest API signs and the
//! authenticator verifies, with upstream's claims (`iss`, `sub`, `aud`, `exp`, `iat`,
//! `nbf`, `jti` and the `kubernetes.io` claim naming the namespace, service account
//! and the pod, secret or node the token is bound to), and the OIDC discovery
//! documents that publish the verifying keys.
//!
//! This module signs and checks signatures and times; that the service account and
//! bound object still exist with the same uid is checked by the authenticator against
//! the store. Legacy tokens (issuer `kubernetes/serviceaccount`, kept in Secrets of
//! type `kubernetes.io/service-account-token` by the token controller) are verified
//! with the same keys and checked against their Secret and service account here, as
//! upstream's legacy validator, which also records their use in a label.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The issuer rkube uses when none is given (kubeadm's default).
pub const DEFAULT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// The group of every service account.
pub const SERVICE_ACCOUNTS_GROUP: &str = "system:serviceaccounts";
/// The prefix of a service account's user name.
pub const USER_PREFIX: &str = "system:serviceaccount:";

/// A reference to an object in the `kubernetes.io` claim.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    /// Its name.
    pub name: String,
    /// Its uid.
    pub uid: String,
}

/// The `kubernetes.io` private claim.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubernetesClaim {
    /// The service account's namespace.
    pub namespace: String,
    /// The service account.
    pub serviceaccount: ObjectRef,
    /// The pod the token is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<ObjectRef>,
    /// The secret the token is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<ObjectRef>,
    /// The node the token is bound to (or the pod's node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<ObjectRef>,
}

/// A bound service-account token's claims.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The issuer.
    pub iss: String,
    /// `system:serviceaccount:<namespace>:<name>`.
    pub sub: String,
    /// The audiences.
    pub aud: Vec<String>,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// The token's id (the credential id upstream reports as `JTI=<jti>`).
    #[serde(default)]
    pub jti: String,
    /// What the token is for.
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: KubernetesClaim,
}

/// The signing key, the keys that verify, and the issuer.
pub struct ServiceAccountKeys {
    issuer: String,
    kid: String,
    signing: EncodingKey,
    verifying: Vec<(String, DecodingKey, RsaPublicKey)>,
}

/// A key pair in PEM: PKCS#8 private key and SPKI public key.
pub struct KeyPairPem {
    /// The private key.
    pub private_pem: String,
    /// The public key.
    pub public_pem: String,
}

/// Generates an RSA 2048 key pair, as kubeadm's `sa.key`.
pub fn generate_key_pair() -> Result<KeyPairPem, String> {
    let mut rng = rsa::rand_core::OsRng;
    let key = RsaPrivateKey::new(&mut rng, 2048).map_err(|e| e.to_string())?;
    let private_pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| e.to_string())?
        .to_string();
    let public_pem = key
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| e.to_string())?;
    Ok(KeyPairPem {
        private_pem,
        public_pem,
    })
}

fn read_private(pem: &str) -> Result<RsaPrivateKey, String> {
    RsaPrivateKey::from_pkcs8_pem(pem)
        .or_else(|_| RsaPrivateKey::from_pkcs1_pem(pem))
        .map_err(|e| format!("not an RSA private key in PEM: {e}"))
}

/// The public keys in a PEM file: SPKI public keys, or the public half of private keys.
fn read_public_keys(pem: &str) -> Result<Vec<RsaPublicKey>, String> {
    let mut keys = Vec::new();
    for block in pem_blocks(pem) {
        let key = if block.contains("PUBLIC KEY") {
            RsaPublicKey::from_public_key_pem(&block)
                .or_else(|_| {
                    <RsaPublicKey as rsa::pkcs1::DecodeRsaPublicKey>::from_pkcs1_pem(&block)
                })
                .map_err(|e| format!("not an RSA public key: {e}"))?
        } else {
            read_private(&block)?.to_public_key()
        };
        keys.push(key);
    }
    if keys.is_empty() {
        return Err("no key found".into());
    }
    Ok(keys)
}

fn pem_blocks(pem: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in pem.lines() {
        if line.starts_with("-----BEGIN ") {
            current = Some(format!("{line}\n"));
        } else if let Some(block) = &mut current {
            block.push_str(line);
            block.push('\n');
            if line.starts_with("-----END ") {
                blocks.extend(current.take());
            }
        }
    }
    blocks
}

/// Upstream's key id: the unpadded base64url SHA-256 of the public key's DER.
fn key_id(key: &RsaPublicKey) -> Result<String, String> {
    let der = key.to_public_key_der().map_err(|e| e.to_string())?;
    Ok(URL_SAFE_NO_PAD.encode(Sha256::digest(der.as_bytes())))
}

impl ServiceAccountKeys {
    /// Keys from a private key PEM (signs, and verifies) and further public keys PEM
    /// (verify only), for tokens of `issuer`.
    pub fn new(
        issuer: &str,
        private_pem: &str,
        extra_public_pem: Option<&str>,
    ) -> Result<Self, String> {
        let private = read_private(private_pem)?;
        let public = private.to_public_key();
        let kid = key_id(&public)?;
        let pkcs8 = private
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| e.to_string())?;
        let signing = EncodingKey::from_rsa_pem(pkcs8.as_bytes()).map_err(|e| e.to_string())?;
        let mut publics = vec![public];
        if let Some(extra) = extra_public_pem {
            for key in read_public_keys(extra)? {
                if !publics.contains(&key) {
                    publics.push(key);
                }
            }
        }
        let mut verifying = Vec::new();
        for key in publics {
            let n = URL_SAFE_NO_PAD.encode(key.n().to_bytes_be());
            let e = URL_SAFE_NO_PAD.encode(key.e().to_bytes_be());
            let decoding = DecodingKey::from_rsa_components(&n, &e).map_err(|e| e.to_string())?;
            verifying.push((key_id(&key)?, decoding, key));
        }
        Ok(ServiceAccountKeys {
            issuer: issuer.to_owned(),
            kid,
            signing,
            verifying,
        })
    }

    /// Keys read from files.
    pub fn load(
        issuer: &str,
        signing_key_file: &Path,
        key_files: &[&Path],
    ) -> Result<Self, String> {
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
        };
        let private = read(signing_key_file)?;
        let mut extra = String::new();
        for file in key_files {
            extra.push_str(&read(file)?);
            extra.push('\n');
        }
        Self::new(
            issuer,
            &private,
            (!extra.trim().is_empty()).then_some(extra.as_str()),
        )
        .map_err(|e| format!("{}: {e}", signing_key_file.display()))
    }

    /// The issuer (`iss`) of the tokens signed here.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Signs `claims`.
    pub fn sign(&self, claims: &Claims) -> Result<String, String> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.signing).map_err(|e| e.to_string())
    }

    /// The claims of `token` when it is a token of ours: signed by one of our keys,
    /// from our issuer, for one of `audiences`, and within its validity.
    pub fn verify(&self, token: &str, audiences: &[String]) -> Result<Claims, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
        if header.alg != Algorithm::RS256 {
            return Err(format!("unexpected signing algorithm {:?}", header.alg));
        }
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(audiences);
        validation.validate_nbf = true;
        validation.leeway = 60;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let candidates = self
            .verifying
            .iter()
            .filter(|(kid, _, _)| header.kid.as_deref().is_none_or(|k| k == kid));
        let mut last = "no verifying key matches the token's key id".to_owned();
        for (_, key, _) in candidates {
            match jsonwebtoken::decode::<Claims>(token, key, &validation) {
                Ok(data) => return Ok(data.claims),
                Err(e) => last = e.to_string(),
            }
        }
        Err(last)
    }

    /// The OIDC discovery document (`/.well-known/openid-configuration`).
    pub fn openid_configuration(&self) -> Value {
        json!({
            "issuer": self.issuer,
            "jwks_uri": format!("{}/openid/v1/jwks", self.issuer.trim_end_matches('/')),
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        })
    }

    /// The verifying keys as a JSON Web Key Set (`/openid/v1/jwks`).
    pub fn jwks(&self) -> Value {
        let keys: Vec<Value> = self
            .verifying
            .iter()
            .map(|(kid, _, key)| {
                json!({
                    "use": "sig",
                    "kty": "RSA",
                    "kid": kid,
                    "alg": "RS256",
                    "n": URL_SAFE_NO_PAD.encode(key.n().to_bytes_be()),
                    "e": URL_SAFE_NO_PAD.encode(key.e().to_bytes_be()),
                })
            })
            .collect();
        json!({ "keys": keys })
    }
}

/// The issuer of legacy tokens, the ones the token controller puts in Secrets of type
/// `kubernetes.io/service-account-token` (upstream's `serviceaccount.LegacyIssuer`).
pub const LEGACY_ISSUER: &str = "kubernetes/serviceaccount";
/// The label the authenticator keeps on a legacy token's Secret: the day (UTC,
/// `YYYY-MM-DD`) the token was last used (upstream's `LastUsedLabelKey`).
pub const LAST_USED_LABEL: &str = "kubernetes.io/legacy-token-last-used";
/// The label the legacy token cleaner puts on an unused auto-generated token's Secret;
/// while it is there the token is refused (upstream's `InvalidSinceLabelKey`).
pub const INVALID_SINCE_LABEL: &str = "kubernetes.io/legacy-token-invalid-since";
/// The warning a request authenticated by an auto-generated legacy token gets
/// (upstream's legacy validator): the Secret is one its service account lists.
pub const AUTO_GENERATED_TOKEN_WARNING: &str = "Use tokens from the TokenRequest API or manually created secret-based tokens instead of auto-generated secret-based tokens.";

/// A legacy (secret-based) token's claims: no audience, no expiry, the Secret it is
/// kept in (upstream's `legacyPrivateClaims` and `sub`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyClaims {
    /// The issuer, [`LEGACY_ISSUER`].
    #[serde(default)]
    pub iss: String,
    /// The service account's namespace.
    #[serde(rename = "kubernetes.io/serviceaccount/namespace", default)]
    pub namespace: String,
    /// The Secret the token is kept in.
    #[serde(rename = "kubernetes.io/serviceaccount/secret.name", default)]
    pub secret_name: String,
    /// The service account's name.
    #[serde(rename = "kubernetes.io/serviceaccount/service-account.name", default)]
    pub service_account_name: String,
    /// The service account's uid.
    #[serde(rename = "kubernetes.io/serviceaccount/service-account.uid", default)]
    pub service_account_uid: String,
    /// `system:serviceaccount:<namespace>:<name>`.
    #[serde(default)]
    pub sub: String,
}

impl LegacyClaims {
    /// Upstream's legacy validator's claim checks: every claim is present and the
    /// subject names the same service account.
    pub fn check(&self) -> Result<(), String> {
        let missing = [
            (self.sub.as_str(), "sub claim is missing"),
            (self.namespace.as_str(), "namespace claim is missing"),
            (self.secret_name.as_str(), "secretName claim is missing"),
            (
                self.service_account_name.as_str(),
                "serviceAccountName claim is missing",
            ),
            (
                self.service_account_uid.as_str(),
                "serviceAccountUID claim is missing",
            ),
        ];
        if let Some((_, why)) = missing.iter().find(|(value, _)| value.is_empty()) {
            return Err((*why).to_owned());
        }
        match split_user_name(&self.sub) {
            Some((namespace, name))
                if namespace == self.namespace && name == self.service_account_name =>
            {
                Ok(())
            }
            _ => Err("sub claim is invalid".to_owned()),
        }
    }
}

/// The `iss` of a compact JWT, read without verifying anything (upstream's
/// `hasCorrectIssuer`): it only picks which authenticator looks at the token.
pub fn unverified_issuer(token: &str) -> Option<String> {
    if token.trim_start().starts_with('{') {
        return None;
    }
    let mut parts = token.split('.');
    let (_, payload, _, None) = (parts.next()?, parts.next()?, parts.next()?, parts.next()) else {
        return None;
    };
    #[derive(Deserialize)]
    struct Issuer {
        #[serde(default)]
        iss: String,
    }
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice::<Issuer>(&bytes).ok().map(|i| i.iss)
}

impl ServiceAccountKeys {
    /// The claims of a legacy token signed by one of our verifying keys (the same keys
    /// as bound tokens', as upstream's `--service-account-key-file`). Legacy tokens
    /// carry no audience and never expire; what they name is checked against the
    /// store by the authenticator.
    pub fn verify_legacy(&self, token: &str) -> Result<LegacyClaims, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
        if header.alg != Algorithm::RS256 {
            return Err(format!("unexpected signing algorithm {:?}", header.alg));
        }
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[LEGACY_ISSUER]);
        validation.validate_aud = false;
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.set_required_spec_claims(&["iss"]);
        let candidates = self
            .verifying
            .iter()
            .filter(|(kid, _, _)| header.kid.as_deref().is_none_or(|k| k == kid));
        let mut last = "invalid signature, no keys found".to_owned();
        for (_, key, _) in candidates {
            match jsonwebtoken::decode::<LegacyClaims>(token, key, &validation) {
                Ok(data) => return Ok(data.claims),
                Err(e) => last = e.to_string(),
            }
        }
        Err(last)
    }
}

/// Whether a legacy token's Secret still vouches for `token` (upstream's legacy
/// validator): not being deleted and its `data.token` the very token. `Err` says why
/// not.
pub fn check_legacy_secret(secret: &Value, token: &str) -> Result<(), String> {
    if !secret["metadata"]["deletionTimestamp"].is_null() {
        return Err("Token has been invalidated".to_owned());
    }
    let stored = secret["data"]["token"]
        .as_str()
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .unwrap_or_default();
    if !super::constant_time_eq(&stored, token.as_bytes()) {
        return Err("Token does not match server's copy".to_owned());
    }
    Ok(())
}

/// Why a legacy token is refused when the legacy token cleaner marked its Secret
/// invalid (upstream's message), or `None`.
pub fn marked_invalid(secret: &Value, claims: &LegacyClaims) -> Option<String> {
    secret["metadata"]["labels"][INVALID_SINCE_LABEL]
        .as_str()
        .filter(|s| !s.is_empty())?;
    Some(format!(
        "the token in secret {ns}/{secret} for service account {ns}/{sa} has been marked invalid. Use tokens from the TokenRequest API or manually created secret-based tokens, or remove the '{INVALID_SINCE_LABEL}' label from the secret to temporarily allow use of this token",
        ns = claims.namespace,
        secret = claims.secret_name,
        sa = claims.service_account_name,
    ))
}

/// The day to record in a legacy token Secret's last-used label, unless it already
/// says today (or tomorrow, a clock ahead of ours), as upstream's
/// `patchSecretWithLastUsedDate`: at most one write a day per token.
pub fn last_used_update(secret: &Value, now: jiff::Timestamp) -> Option<String> {
    let day = |t: jiff::Timestamp| t.to_zoned(jiff::tz::TimeZone::UTC).date().to_string();
    let today = day(now);
    let tomorrow = now
        .checked_add(jiff::SignedDuration::from_hours(24))
        .map(day)
        .unwrap_or_default();
    let current = secret["metadata"]["labels"][LAST_USED_LABEL]
        .as_str()
        .unwrap_or_default();
    (current != today && current != tomorrow).then_some(today)
}

impl super::Authenticator {
    /// The user of a legacy token (issuer [`LEGACY_ISSUER`]) meant for one of
    /// `audiences`, as upstream's JWT authenticator with the legacy validator: signed
    /// by one of our keys, valid for the API's audiences only, its Secret alive and
    /// holding this very token, its service account alive with the uid the token
    /// names. The Secret's last-used label is kept (at most one write a day); a token
    /// the token controller generated (its Secret listed by the account) is warned
    /// about.
    pub(super) async fn legacy_service_account_user(
        &self,
        keys: &ServiceAccountKeys,
        token: &str,
        audiences: &[String],
    ) -> Result<super::Authenticated, super::Unauthenticated> {
        use super::Unauthenticated;
        let claims = keys
            .verify_legacy(token)
            .map_err(|e| Unauthenticated(format!("invalid legacy service account token: {e}")))?;
        // a legacy token is for the API's own audiences only
        if !self.api_audiences.is_empty()
            && !audiences.iter().any(|a| self.api_audiences.contains(a))
        {
            // Go's %q of a string slice: ["a" "b"]
            let go_list = |list: &[String]| {
                let quoted: Vec<String> = list.iter().map(|a| format!("{a:?}")).collect();
                format!("[{}]", quoted.join(" "))
            };
            return Err(Unauthenticated(format!(
                "token audiences {} is invalid for the target audiences {}",
                go_list(&self.api_audiences),
                go_list(audiences)
            )));
        }
        claims.check().map_err(Unauthenticated)?;
        let namespace = claims.namespace.as_str();
        let secret = self
            .registry
            .get(super::resource("secrets"), Some(namespace), &claims.secret_name)
            .await
            .map_err(|e| {
                tracing::debug!(secret = %claims.secret_name, %namespace, error = %e, "could not retrieve legacy token's secret");
                Unauthenticated("Token has been invalidated".to_owned())
            })?;
        check_legacy_secret(&secret, token).map_err(Unauthenticated)?;
        let account = self
            .registry
            .get(
                super::resource("serviceaccounts"),
                Some(namespace),
                &claims.service_account_name,
            )
            .await
            .map_err(|e| Unauthenticated(e.to_string()))?;
        if !account["metadata"]["deletionTimestamp"].is_null() {
            return Err(Unauthenticated(format!(
                "ServiceAccount {namespace}/{} has been deleted",
                claims.service_account_name
            )));
        }
        let uid = account["metadata"]["uid"].as_str().unwrap_or_default();
        if uid != claims.service_account_uid {
            return Err(Unauthenticated(format!(
                "ServiceAccount UID ({uid}) does not match claim ({})",
                claims.service_account_uid
            )));
        }
        // the use of a token the cleaner marked invalid is recorded too
        self.note_legacy_token_use(&secret).await;
        if let Some(why) = marked_invalid(&secret, &claims) {
            return Err(Unauthenticated(why));
        }
        let auto_generated = account["secrets"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|r| r["name"].as_str() == Some(claims.secret_name.as_str()));
        Ok(super::Authenticated {
            user: crate::auth::UserInfo {
                name: claims.sub.clone(),
                uid: claims.service_account_uid.clone(),
                groups: groups(namespace),
                ..Default::default()
            },
            warnings: auto_generated
                .then(|| AUTO_GENERATED_TOKEN_WARNING.to_owned())
                .into_iter()
                .collect(),
        })
    }

    /// Labels a legacy token's Secret with today's date unless it says so already
    /// (upstream's merge patch with the Secret's uid as precondition); failures are
    /// only logged, as upstream's.
    async fn note_legacy_token_use(&self, secret: &Value) {
        let Some(today) = last_used_update(secret, jiff::Timestamp::now()) else {
            return;
        };
        let namespace = secret["metadata"]["namespace"].as_str().unwrap_or_default();
        let name = secret["metadata"]["name"].as_str().unwrap_or_default();
        let uid = secret["metadata"]["uid"].clone();
        let resource = super::resource("secrets");
        let written = self
            .registry
            .write(resource, Some(namespace), name, false, |current| {
                if current["metadata"]["uid"] != uid {
                    return Err(apimachinery::errors::StatusError::conflict(
                        &resource.group_resource(),
                        name,
                        "the secret's uid changed",
                    ));
                }
                let mut updated = current.clone();
                if !updated["metadata"]["labels"].is_object() {
                    updated["metadata"]["labels"] = json!({});
                }
                updated["metadata"]["labels"][LAST_USED_LABEL] = today.clone().into();
                Ok(updated)
            })
            .await;
        if let Err(e) = written {
            tracing::error!(secret = %name, %namespace, error = %e, "failed to label legacy service account token with last-used date");
        }
    }
}

/// The namespace and name of a service account's user name.
pub fn split_user_name(user: &str) -> Option<(&str, &str)> {
    let rest = user.strip_prefix(USER_PREFIX)?;
    let (namespace, name) = rest.split_once(':')?;
    (!namespace.is_empty() && !name.is_empty() && !name.contains(':')).then_some((namespace, name))
}

/// The groups of a service account in `namespace`.
pub fn groups(namespace: &str) -> Vec<String> {
    vec![
        SERVICE_ACCOUNTS_GROUP.to_owned(),
        format!("{SERVICE_ACCOUNTS_GROUP}:{namespace}"),
    ]
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::OnceLock;

    /// One generated key pair for every test (RSA generation is slow).
    pub(crate) fn test_keys() -> &'static KeyPairPem {
        static KEYS: OnceLock<KeyPairPem> = OnceLock::new();
        KEYS.get_or_init(|| generate_key_pair().unwrap())
    }

    fn claims(aud: &str, exp_in: i64) -> Claims {
        let now = jiff::Timestamp::now().as_second();
        Claims {
            iss: DEFAULT_ISSUER.into(),
            sub: "system:serviceaccount:dev:builder".into(),
            aud: vec![aud.into()],
            exp: now + exp_in,
            iat: now,
            nbf: now,
            jti: "id-1".into(),
            kubernetes: KubernetesClaim {
                namespace: "dev".into(),
                serviceaccount: ObjectRef {
                    name: "builder".into(),
                    uid: "u1".into(),
                },
                ..Default::default()
            },
        }
    }

    #[test]
    fn signed_tokens_verify_and_tampered_ones_do_not() {
        let keys = ServiceAccountKeys::new(DEFAULT_ISSUER, &test_keys().private_pem, None).unwrap();
        let audiences = vec![DEFAULT_ISSUER.to_owned()];
        let token = keys.sign(&claims(DEFAULT_ISSUER, 600)).unwrap();
        assert_eq!(
            keys.verify(&token, &audiences).unwrap(),
            claims(DEFAULT_ISSUER, 600)
        );
        // expired, wrong audience, garbage, another issuer's key
        let expired = keys.sign(&claims(DEFAULT_ISSUER, -3600)).unwrap();
        assert!(keys.verify(&expired, &audiences).is_err());
        let other_audience = keys.sign(&claims("vault", 600)).unwrap();
        assert!(keys.verify(&other_audience, &audiences).is_err());
        assert!(keys.verify("a.b.c", &audiences).is_err());
        let mut forged = token.clone();
        forged.pop();
        forged.push(if token.ends_with('A') { 'B' } else { 'A' });
        assert!(keys.verify(&forged, &audiences).is_err());
        let jwks = keys.jwks();
        assert_eq!(jwks["keys"][0]["kty"], "RSA");
        assert_eq!(jwks["keys"][0]["e"], "AQAB");
        assert_eq!(
            keys.openid_configuration()["jwks_uri"],
            format!("{DEFAULT_ISSUER}/openid/v1/jwks")
        );
    }

    /// A legacy token as the token controller signs it (RS256, our key id).
    pub(crate) fn legacy_token(keys: &ServiceAccountKeys, claims: &LegacyClaims) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(keys.kid.clone());
        jsonwebtoken::encode(&header, claims, &keys.signing).unwrap()
    }

    /// The claims of account dev/builder's token in Secret `builder-token`.
    pub(crate) fn legacy_claims(uid: &str) -> LegacyClaims {
        LegacyClaims {
            iss: LEGACY_ISSUER.into(),
            namespace: "dev".into(),
            secret_name: "builder-token".into(),
            service_account_name: "builder".into(),
            service_account_uid: uid.into(),
            sub: "system:serviceaccount:dev:builder".into(),
        }
    }

    #[test]
    fn legacy_tokens_verify_without_audience_or_expiry() {
        let keys = ServiceAccountKeys::new(DEFAULT_ISSUER, &test_keys().private_pem, None).unwrap();
        let token = legacy_token(&keys, &legacy_claims("u1"));
        assert_eq!(unverified_issuer(&token).as_deref(), Some(LEGACY_ISSUER));
        assert_eq!(keys.verify_legacy(&token).unwrap(), legacy_claims("u1"));
        // the payload carries upstream's claim names, no aud or exp
        let payload: Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(token.split('.').nth(1).unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            payload["kubernetes.io/serviceaccount/service-account.uid"],
            "u1"
        );
        assert_eq!(
            payload["kubernetes.io/serviceaccount/secret.name"],
            "builder-token"
        );
        assert!(payload.get("aud").is_none() && payload.get("exp").is_none());
        // a legacy token is no bound token, and a bound token no legacy one
        assert!(keys.verify(&token, &[DEFAULT_ISSUER.to_owned()]).is_err());
        let bound = keys.sign(&claims(DEFAULT_ISSUER, 600)).unwrap();
        assert_eq!(unverified_issuer(&bound).as_deref(), Some(DEFAULT_ISSUER));
        assert!(keys.verify_legacy(&bound).is_err());
        // tampered, or signed by a key we do not know
        let mut forged = token.clone();
        forged.pop();
        forged.push(if token.ends_with('A') { 'B' } else { 'A' });
        assert!(keys.verify_legacy(&forged).is_err());
        let other = generate_key_pair().unwrap();
        let stranger = ServiceAccountKeys::new(DEFAULT_ISSUER, &other.private_pem, None).unwrap();
        assert!(
            keys.verify_legacy(&legacy_token(&stranger, &legacy_claims("u1")))
                .is_err()
        );
        assert_eq!(unverified_issuer("not-a-jwt"), None);
        assert_eq!(unverified_issuer("{\"iss\":1}.a.b"), None);
    }

    #[test]
    fn legacy_claims_must_be_complete_and_agree_with_the_subject() {
        assert_eq!(legacy_claims("u1").check(), Ok(()));
        let mut missing = legacy_claims("u1");
        missing.secret_name.clear();
        assert_eq!(
            missing.check(),
            Err("secretName claim is missing".to_owned())
        );
        let mut other = legacy_claims("");
        assert_eq!(
            other.check(),
            Err("serviceAccountUID claim is missing".to_owned())
        );
        other = legacy_claims("u1");
        other.sub = "system:serviceaccount:dev:admin".into();
        assert_eq!(other.check(), Err("sub claim is invalid".to_owned()));
    }

    fn token_secret(token: &str, labels: Value) -> Value {
        json!({
            "metadata": {
                "name": "builder-token",
                "namespace": "dev",
                "labels": labels,
                "annotations": {"kubernetes.io/service-account.name": "builder"},
            },
            "type": "kubernetes.io/service-account-token",
            "data": {"token": base64::engine::general_purpose::STANDARD.encode(token)},
        })
    }

    #[test]
    fn a_legacy_secret_vouches_only_for_its_own_token() {
        let secret = token_secret("tok", json!({}));
        assert_eq!(check_legacy_secret(&secret, "tok"), Ok(()));
        assert_eq!(
            check_legacy_secret(&secret, "other"),
            Err("Token does not match server's copy".to_owned())
        );
        let mut deleting = secret.clone();
        deleting["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z".into();
        assert_eq!(
            check_legacy_secret(&deleting, "tok"),
            Err("Token has been invalidated".to_owned())
        );
        assert_eq!(marked_invalid(&secret, &legacy_claims("u1")), None);
        let marked = token_secret("tok", json!({INVALID_SINCE_LABEL: "2024-01-01"}));
        assert!(
            marked_invalid(&marked, &legacy_claims("u1"))
                .unwrap()
                .starts_with("the token in secret dev/builder-token for service account dev/builder has been marked invalid")
        );
    }

    #[test]
    fn the_last_used_label_is_written_at_most_once_a_day() {
        let now: jiff::Timestamp = "2024-03-10T23:30:00Z".parse().unwrap();
        let unlabelled = token_secret("tok", json!({}));
        assert_eq!(
            last_used_update(&unlabelled, now).as_deref(),
            Some("2024-03-10")
        );
        let today = token_secret("tok", json!({LAST_USED_LABEL: "2024-03-10"}));
        assert_eq!(last_used_update(&today, now), None);
        // a clock a little ahead already wrote tomorrow
        let tomorrow = token_secret("tok", json!({LAST_USED_LABEL: "2024-03-11"}));
        assert_eq!(last_used_update(&tomorrow, now), None);
        let old = token_secret("tok", json!({LAST_USED_LABEL: "2024-01-01"}));
        assert_eq!(last_used_update(&old, now).as_deref(), Some("2024-03-10"));
    }

    #[tokio::test]
    async fn the_authenticator_checks_a_legacy_token_against_its_secret_and_account() {
        use crate::registry::Registry;
        use crate::storage::memory::MemoryStore;
        let registry = Registry::new(std::sync::Arc::new(MemoryStore::new()));
        registry.ensure_system_namespaces().await.unwrap();
        let resource = |plural| apimachinery::resources::find("", "v1", plural).unwrap();
        registry
            .create(
                resource("namespaces"),
                None,
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "dev"}}),
                false,
            )
            .await
            .unwrap();
        let account = registry
            .create(
                resource("serviceaccounts"),
                Some("dev"),
                json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "builder", "namespace": "dev"}}),
                false,
            )
            .await
            .unwrap();
        let uid = account["metadata"]["uid"].as_str().unwrap().to_owned();
        let keys = ServiceAccountKeys::new(DEFAULT_ISSUER, &test_keys().private_pem, None).unwrap();
        let token = legacy_token(&keys, &legacy_claims(&uid));
        let mut secret = token_secret(&token, json!({}));
        secret["apiVersion"] = "v1".into();
        secret["kind"] = "Secret".into();
        registry
            .create(resource("secrets"), Some("dev"), secret, false)
            .await
            .unwrap();
        let mut authenticator = super::super::Authenticator::new(registry.clone());
        authenticator.service_accounts = Some(std::sync::Arc::new(keys));
        authenticator.api_audiences = vec![DEFAULT_ISSUER.to_owned()];
        let api = vec![DEFAULT_ISSUER.to_owned()];
        let found = authenticator
            .authenticate_token(&token, &api)
            .await
            .unwrap();
        // a Secret the user made: no warning
        assert!(found.warnings.is_empty());
        let user = found.user;
        assert_eq!(user.name, "system:serviceaccount:dev:builder");
        assert_eq!(user.uid, uid);
        assert_eq!(
            user.groups,
            ["system:serviceaccounts", "system:serviceaccounts:dev"]
        );
        // upstream gives legacy tokens no credential id
        assert!(user.extra.is_empty());
        // the use is recorded on the Secret
        let stored = registry
            .get(resource("secrets"), Some("dev"), "builder-token")
            .await
            .unwrap();
        let today = jiff::Timestamp::now()
            .to_zoned(jiff::tz::TimeZone::UTC)
            .date()
            .to_string();
        assert_eq!(stored["metadata"]["labels"][LAST_USED_LABEL], today);
        // only for the API's audiences
        assert!(
            authenticator
                .authenticate_token(&token, &["vault".to_owned()])
                .await
                .is_err()
        );
        // a token for an account of another uid, or whose Secret holds another token
        let stale = legacy_token(
            authenticator.service_accounts.as_ref().unwrap(),
            &legacy_claims("some-other-uid"),
        );
        assert!(
            authenticator
                .authenticate_token(&stale, &api)
                .await
                .is_err()
        );
        // one the token controller made, listed by the account, is warned about; and
        // the cache replays the warning
        registry
            .write(
                resource("serviceaccounts"),
                Some("dev"),
                "builder",
                false,
                |a| {
                    let mut a = a.clone();
                    a["secrets"] = json!([{"name": "builder-token"}]);
                    Ok(a)
                },
            )
            .await
            .unwrap();
        let (generated, _) = authenticator
            .authenticate_token_uncached(&token, &api)
            .await
            .unwrap();
        assert_eq!(generated.warnings, [AUTO_GENERATED_TOKEN_WARNING]);
        let key = super::super::TokenCache::key(&token, &api);
        authenticator.cache.put(
            key,
            &generated,
            std::time::Instant::now() + std::time::Duration::from_secs(10),
        );
        assert_eq!(
            authenticator
                .authenticate_token(&token, &api)
                .await
                .unwrap()
                .warnings,
            [AUTO_GENERATED_TOKEN_WARNING]
        );
        // once the cleaner marks it invalid, it is refused
        registry
            .write(
                resource("secrets"),
                Some("dev"),
                "builder-token",
                false,
                |s| {
                    let mut s = s.clone();
                    s["metadata"]["labels"][INVALID_SINCE_LABEL] = "2024-01-01".into();
                    Ok(s)
                },
            )
            .await
            .unwrap();
        // (the uncached path: the cache remembers the earlier success for 10 s)
        assert!(
            authenticator
                .authenticate_token_uncached(&token, &api)
                .await
                .is_err()
        );
    }

    #[test]
    fn user_names_split() {
        assert_eq!(
            split_user_name("system:serviceaccount:dev:builder"),
            Some(("dev", "builder"))
        );
        assert_eq!(split_user_name("system:serviceaccount:dev"), None);
        assert_eq!(split_user_name("jane"), None);
    }
}
