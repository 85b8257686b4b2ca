//! Service-account tokens: RS256 JWTs that the TokenRequest API signs and the
//! authenticator verifies, with upstream's claims (`iss`, `sub`, `aud`, `exp`, `iat`,
//! `nbf`, `jti` and the `kubernetes.io` claim naming the namespace, service account
//! and the pod, secret or node the token is bound to), and the OIDC discovery
//! documents that publish the verifying keys.
//!
//! This module only signs and checks signatures and times; that the service account
//! and bound object still exist with the same uid is checked by the authenticator
//! against the store.

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
