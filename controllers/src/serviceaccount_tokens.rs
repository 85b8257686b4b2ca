//! The service-account token controller: fills the Secrets of type
//! `kubernetes.io/service-account-token` that users create for a service account
//! (annotation `kubernetes.io/service-account.name`) with a legacy token, the root CA
//! bundle and the namespace, and deletes such Secrets once their service account is
//! gone, as upstream's `serviceaccount-token-controller` (`TokensController`).
//!
//! As in v1.33 (LegacyServiceAccountTokenNoAutoGeneration is GA) it never creates token
//! Secrets itself. A token is an RS256 JWT signed with
//! `--service-account-private-key-file`, issuer `kubernetes/serviceaccount`, no
//! audience and no expiry; the apiserver accepts it while the Secret holds it and the
//! service account lives with the uid it names. Upstream runs this controller with the
//! manager's root credentials, and only with a private key; here it writes with the
//! manager's own client (`system:kube-controller-manager` may get, create, update and
//! delete Secrets and ServiceAccounts).

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use rsa::RsaPrivateKey;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Context;
use crate::informers::{Change, Informer};
use crate::workqueue::WorkQueue;

/// The controller's name.
pub const NAME: &str = "serviceaccount-token-controller";
/// The Secret type this controller fills.
pub const SECRET_TYPE: &str = "kubernetes.io/service-account-token";
/// The annotation naming a token Secret's service account.
pub const NAME_ANNOTATION: &str = "kubernetes.io/service-account.name";
/// The annotation with the service account's uid, set by this controller.
pub const UID_ANNOTATION: &str = "kubernetes.io/service-account.uid";
/// The issuer of legacy tokens (upstream's `serviceaccount.LegacyIssuer`).
pub const LEGACY_ISSUER: &str = "kubernetes/serviceaccount";
/// The data keys of a token Secret.
const TOKEN_KEY: &str = "token";
const CA_KEY: &str = "ca.crt";
const NAMESPACE_KEY: &str = "namespace";
/// Upstream's `maxRetries`.
const MAX_RETRIES: u32 = 10;
/// Tries at removing a deleted Secret's reference from its service account on
/// conflicts (upstream's `RemoveTokenBackoff` steps).
const REMOVE_REFERENCE_TRIES: usize = 10;

/// Why a sync failed (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request failed.
    #[error(transparent)]
    Kube(#[from] kube::Error),
}

/// A legacy token's claims, as upstream's `LegacyClaims` (go-jose orders them by name).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyClaims {
    /// Always [`LEGACY_ISSUER`].
    pub iss: String,
    /// The service account's namespace.
    #[serde(rename = "kubernetes.io/serviceaccount/namespace")]
    pub namespace: String,
    /// The Secret the token is kept in.
    #[serde(rename = "kubernetes.io/serviceaccount/secret.name")]
    pub secret_name: String,
    /// The service account's name.
    #[serde(rename = "kubernetes.io/serviceaccount/service-account.name")]
    pub service_account_name: String,
    /// The service account's uid.
    #[serde(rename = "kubernetes.io/serviceaccount/service-account.uid")]
    pub service_account_uid: String,
    /// `system:serviceaccount:<namespace>:<name>`.
    pub sub: String,
}

impl LegacyClaims {
    /// The claims of a token for service account `namespace/name` (uid `uid`) kept in
    /// Secret `secret`.
    pub fn new(namespace: &str, name: &str, uid: &str, secret: &str) -> LegacyClaims {
        LegacyClaims {
            iss: LEGACY_ISSUER.to_owned(),
            namespace: namespace.to_owned(),
            secret_name: secret.to_owned(),
            service_account_name: name.to_owned(),
            service_account_uid: uid.to_owned(),
            sub: format!("system:serviceaccount:{namespace}:{name}"),
        }
    }
}

/// Signs legacy tokens with the service-account private key.
pub struct TokenSigner {
    key: EncodingKey,
    kid: String,
}

impl TokenSigner {
    /// A signer from an RSA private key in PEM (PKCS#8 or PKCS#1), as
    /// `--service-account-private-key-file` holds.
    pub fn new(private_pem: &str) -> Result<TokenSigner, String> {
        let private = RsaPrivateKey::from_pkcs8_pem(private_pem)
            .or_else(|_| RsaPrivateKey::from_pkcs1_pem(private_pem))
            .map_err(|e| format!("not an RSA private key in PEM: {e}"))?;
        // upstream's key id: unpadded base64url SHA-256 of the public key's DER
        let public_der = private
            .to_public_key()
            .to_public_key_der()
            .map_err(|e| e.to_string())?;
        let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(public_der.as_bytes()));
        let pkcs8 = private
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| e.to_string())?;
        let key = EncodingKey::from_rsa_pem(pkcs8.as_bytes()).map_err(|e| e.to_string())?;
        Ok(TokenSigner { key, kid })
    }

    /// The key id in the tokens' header.
    pub fn key_id(&self) -> &str {
        &self.kid
    }

    /// A signed token with `claims`.
    pub fn sign(&self, claims: &LegacyClaims) -> Result<String, String> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key).map_err(|e| e.to_string())
    }
}

/// The service account a token Secret names (name, uid — either may be empty), or
/// `None` for another type of Secret (upstream's `serviceAccountNameAndUID`).
fn account_of(secret: &Secret) -> Option<(&str, &str)> {
    if secret.type_.as_deref() != Some(SECRET_TYPE) {
        return None;
    }
    let annotation = |key: &str| {
        secret
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(key))
            .map(String::as_str)
            .unwrap_or_default()
    };
    Some((annotation(NAME_ANNOTATION), annotation(UID_ANNOTATION)))
}

/// Whether `secret` is a token of `account` (upstream's `IsServiceAccountToken`): its
/// name annotation names it and its uid annotation, when set, is its uid.
pub fn is_token_of(secret: &Secret, namespace: &str, name: &str, uid: &str) -> bool {
    let Some((sa_name, sa_uid)) = account_of(secret) else {
        return false;
    };
    secret.metadata.namespace.as_deref() == Some(namespace)
        && sa_name == name
        && (sa_uid.is_empty() || sa_uid == uid)
}

/// What a token Secret lacks (upstream's `secretUpdateNeeded`): the CA (when one is
/// configured and the Secret's differs), the namespace, the token.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Needs {
    /// `ca.crt` differs from the root CA bundle.
    pub ca: bool,
    /// `namespace` is empty.
    pub namespace: bool,
    /// `token` is empty.
    pub token: bool,
}

impl Needs {
    /// Whether anything is missing.
    pub fn any(&self) -> bool {
        self.ca || self.namespace || self.token
    }
}

/// What `secret` lacks given the root CA bundle.
pub fn needs(secret: &Secret, root_ca: &[u8]) -> Needs {
    let empty = BTreeMap::new();
    let data = secret.data.as_ref().unwrap_or(&empty);
    let value = |key: &str| data.get(key).map(|b| b.0.as_slice()).unwrap_or_default();
    Needs {
        ca: !root_ca.is_empty() && value(CA_KEY) != root_ca,
        namespace: value(NAMESPACE_KEY).is_empty(),
        token: value(TOKEN_KEY).is_empty(),
    }
}

/// The Secret filled in: what it lacks, and the service account's annotations
/// (upstream's `generateTokenIfNeeded`); `None` when nothing lacks.
pub fn filled(
    secret: &Secret,
    account: &ServiceAccount,
    root_ca: &[u8],
    signer: &TokenSigner,
) -> Result<Option<Secret>, String> {
    let needs = needs(secret, root_ca);
    if !needs.any() {
        return Ok(None);
    }
    let namespace = secret.metadata.namespace.clone().unwrap_or_default();
    let account_name = account.metadata.name.clone().unwrap_or_default();
    let account_uid = account.metadata.uid.clone().unwrap_or_default();
    let mut updated = secret.clone();
    let data = updated.data.get_or_insert_with(BTreeMap::new);
    if needs.ca {
        data.insert(CA_KEY.to_owned(), ByteString(root_ca.to_vec()));
    }
    if needs.namespace {
        data.insert(
            NAMESPACE_KEY.to_owned(),
            ByteString(namespace.clone().into_bytes()),
        );
    }
    if needs.token {
        let claims = LegacyClaims::new(
            &namespace,
            &account_name,
            &account_uid,
            secret.metadata.name.as_deref().unwrap_or_default(),
        );
        let token = signer.sign(&claims)?;
        data.insert(TOKEN_KEY.to_owned(), ByteString(token.into_bytes()));
    }
    let annotations = updated
        .metadata
        .annotations
        .get_or_insert_with(BTreeMap::new);
    annotations.insert(NAME_ANNOTATION.to_owned(), account_name);
    annotations.insert(UID_ANNOTATION.to_owned(), account_uid);
    Ok(Some(updated))
}

/// A service account's queue key: `namespace/name/uid`.
fn account_key(account: &ServiceAccount) -> String {
    format!(
        "{}/{}/{}",
        account.metadata.namespace.as_deref().unwrap_or_default(),
        account.metadata.name.as_deref().unwrap_or_default(),
        account.metadata.uid.as_deref().unwrap_or_default()
    )
}

/// A token Secret's queue key: `namespace/name/uid/account-name/account-uid` (enough
/// to clean up after it once it is gone, as upstream's `secretQueueKey`).
fn secret_key(secret: &Secret) -> Option<String> {
    let (sa_name, sa_uid) = account_of(secret)?;
    if sa_name.contains('/') {
        // no service account has such a name, and upstream's lookup of it fails
        // without ever deleting the Secret: leave it alone
        return None;
    }
    Some(format!(
        "{}/{}/{}/{sa_name}/{sa_uid}",
        secret.metadata.namespace.as_deref().unwrap_or_default(),
        secret.metadata.name.as_deref().unwrap_or_default(),
        secret.metadata.uid.as_deref().unwrap_or_default(),
    ))
}

/// The parts of a key; `None` when one that must be set is empty.
fn parse_key(key: &str, parts: usize, required: usize) -> Option<Vec<&str>> {
    let split: Vec<&str> = key.splitn(parts, '/').collect();
    (split.len() == parts && split.iter().take(required).all(|p| !p.is_empty())).then_some(split)
}

struct Controller {
    client: kube::Client,
    signer: TokenSigner,
    root_ca: Vec<u8>,
    accounts: Informer<ServiceAccount>,
    secrets: Informer<Secret>,
}

/// Whether an error means "gone" or "changed meanwhile": nothing to retry.
fn gone_or_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404 || s.code == 409)
}

impl Controller {
    /// The service account `namespace/name` with `uid` (any uid when empty): from the
    /// cache, else (with `fetch`) from the apiserver (upstream's `getServiceAccount`).
    async fn account(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        fetch: bool,
    ) -> Result<Option<ServiceAccount>, kube::Error> {
        let matches = |a: &ServiceAccount| uid.is_empty() || a.metadata.uid.as_deref() == Some(uid);
        if let Some(account) = self.accounts.get(namespace, name)
            && matches(&account)
        {
            return Ok(Some((*account).clone()));
        }
        if !fetch {
            return Ok(None);
        }
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), namespace);
        match api.get_opt(name).await? {
            Some(account) if matches(&account) => Ok(Some(account)),
            _ => Ok(None),
        }
    }

    /// A service account's change: once it is gone, its tokens go too.
    async fn sync_account(&self, key: &str) -> Result<(), Error> {
        let Some(parts) = parse_key(key, 3, 3) else {
            tracing::error!(%key, "invalid serviceaccount key");
            return Ok(());
        };
        let (namespace, name, uid) = (parts[0], parts[1], parts[2]);
        if self.account(namespace, name, uid, false).await?.is_some() {
            // v1.33 creates no token for a live service account
            return Ok(());
        }
        tracing::debug!(%namespace, serviceaccount = %name, "service account deleted, removing tokens");
        let mut failed = None;
        for secret in self.secrets.list_namespace(namespace) {
            if !is_token_of(&secret, namespace, name, uid) {
                continue;
            }
            let secret_name = secret.metadata.name.as_deref().unwrap_or_default();
            let secret_uid = secret.metadata.uid.as_deref().unwrap_or_default();
            if let Err(e) = self.delete_token(namespace, secret_name, secret_uid).await {
                tracing::error!(%namespace, serviceaccount = %name, error = %e, "error deleting serviceaccount tokens");
                failed = Some(e);
            }
        }
        failed.map_or(Ok(()), |e| Err(e.into()))
    }

    /// Deletes a token Secret, provided it is still the one with `uid`.
    async fn delete_token(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
    ) -> Result<(), kube::Error> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let params = DeleteParams {
            preconditions: (!uid.is_empty()).then(|| Preconditions {
                uid: Some(uid.to_owned()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(name, &params).await {
            Ok(_) => Ok(()),
            // already gone, or another Secret of that name now
            Err(e) if gone_or_conflict(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// A token Secret's change: filled in while its service account lives, deleted
    /// once it does not, and un-referenced from its account once deleted.
    async fn sync_secret(&self, key: &str) -> Result<(), Error> {
        let Some(parts) = parse_key(key, 5, 4) else {
            // a token Secret naming no service account is left alone, as upstream's
            tracing::debug!(%key, "invalid secret key");
            return Ok(());
        };
        let (namespace, name, uid, sa_name, sa_uid) =
            (parts[0], parts[1], parts[2], parts[3], parts[4]);
        let cached = self
            .secrets
            .get(namespace, name)
            .filter(|s| s.metadata.uid.as_deref() == Some(uid));
        let Some(secret) = cached else {
            if self
                .account(namespace, sa_name, sa_uid, false)
                .await?
                .is_some()
                && let Err(e) = self
                    .remove_reference(namespace, sa_name, sa_uid, name)
                    .await
            {
                // logged only, as upstream's
                tracing::error!(%namespace, serviceaccount = %sa_name, secret = %name, error = %e, "removing secret reference");
            }
            return Ok(());
        };
        let Some(account) = self.account(namespace, sa_name, sa_uid, true).await? else {
            tracing::debug!(%namespace, secret = %name, "service account does not exist, deleting token");
            return self
                .delete_token(namespace, name, uid)
                .await
                .map_err(Error::from);
        };
        self.fill(&secret, &account).await
    }

    /// Fills in what the Secret lacks, on a fresh copy that is as new as the cache's
    /// (else the newer version brings another sync).
    async fn fill(&self, cached: &Secret, account: &ServiceAccount) -> Result<(), Error> {
        if !needs(cached, &self.root_ca).any() {
            return Ok(());
        }
        let namespace = cached.metadata.namespace.as_deref().unwrap_or_default();
        let name = cached.metadata.name.as_deref().unwrap_or_default();
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let Some(live) = api.get_opt(name).await? else {
            return Ok(());
        };
        if live.metadata.resource_version != cached.metadata.resource_version {
            tracing::debug!(%namespace, secret = %name, "secret is not up to date, skipping token population");
            return Ok(());
        }
        let updated = match filled(&live, account, &self.root_ca, &self.signer) {
            Ok(updated) => updated,
            Err(e) => {
                // as upstream's generateTokenIfNeeded: a signing failure is not retried
                tracing::error!(%namespace, secret = %name, error = %e, "error generating token");
                return Ok(());
            }
        };
        let Some(updated) = updated else {
            return Ok(());
        };
        match api.replace(name, &PostParams::default(), &updated).await {
            Ok(_) => Ok(()),
            Err(e) if gone_or_conflict(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Drops a deleted Secret from its service account's `secrets` (upstream's
    /// `removeSecretReference`, retried on conflicts).
    async fn remove_reference(
        &self,
        namespace: &str,
        sa_name: &str,
        sa_uid: &str,
        secret: &str,
    ) -> Result<(), kube::Error> {
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), namespace);
        let mut tries = 0;
        loop {
            tries += 1;
            let Some(mut account) = api.get_opt(sa_name).await? else {
                return Ok(());
            };
            if !sa_uid.is_empty() && account.metadata.uid.as_deref() != Some(sa_uid) {
                return Ok(());
            }
            let Some(refs) = account.secrets.as_mut() else {
                return Ok(());
            };
            let before = refs.len();
            refs.retain(|r| r.name.as_deref() != Some(secret));
            if refs.len() == before {
                return Ok(());
            }
            match api.replace(sa_name, &PostParams::default(), &account).await {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
                Err(kube::Error::Api(s)) if s.code == 409 && tries < REMOVE_REFERENCE_TRIES => {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Starts the controller (upstream's `startServiceAccountTokenController`): without a
/// private key it does not run.
pub fn start(cx: Context) -> futures::future::BoxFuture<'static, ()> {
    let worker_count = cx.settings.concurrent_serviceaccount_token_syncs;
    let pem = cx.settings.service_account_private_key_pem.clone();
    if pem.trim().is_empty() {
        tracing::info!(
            controller = NAME,
            "Controller is disabled because there is no private key"
        );
        return Box::pin(async {});
    }
    let signer = match TokenSigner::new(&pem) {
        Ok(signer) => signer,
        Err(e) => {
            tracing::error!(controller = NAME, error = %e, "error reading key for service account token controller");
            return Box::pin(async {});
        }
    };
    let controller = Arc::new(Controller {
        // upstream's root client: the manager's own credentials
        client: cx.reader.clone(),
        signer,
        root_ca: cx.settings.root_ca_pem.clone().into_bytes(),
        accounts: cx.informers.informer::<ServiceAccount>(),
        secrets: cx.informers.informer::<Secret>(),
    });
    let account_queue = WorkQueue::<String>::new();
    let secret_queue = WorkQueue::<String>::new();
    let q = account_queue.clone();
    controller.accounts.add_handler(move |change| {
        // only a deletion has work for v1.33's controller
        if let Change::Deleted(account) = change {
            q.add(account_key(account));
        }
    });
    let q = secret_queue.clone();
    controller.secrets.add_handler(move |change| {
        let (Change::Added(s) | Change::Updated { new: s, .. } | Change::Deleted(s)) = change;
        if let Some(key) = secret_key(s) {
            q.add(key);
        }
    });
    Box::pin(async move {
        controller.accounts.wait_synced().await;
        controller.secrets.wait_synced().await;
        let c = controller.clone();
        let accounts = account_queue.run(
            worker_count,
            Some(MAX_RETRIES),
            "serviceaccount_tokens_service",
            move |key: String| {
                let c = c.clone();
                async move { c.sync_account(&key).await }
            },
        );
        let secrets = secret_queue.run(
            worker_count,
            Some(MAX_RETRIES),
            "serviceaccount_tokens_secret",
            move |key: String| {
                let c = controller.clone();
                async move { c.sync_secret(&key).await }
            },
        );
        futures::future::join(accounts, secrets).await;
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

    fn signer() -> &'static TokenSigner {
        static SIGNER: OnceLock<TokenSigner> = OnceLock::new();
        SIGNER.get_or_init(|| {
            let key = RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
            let pem = key.to_pkcs8_pem(LineEnding::LF).unwrap();
            TokenSigner::new(&pem).unwrap()
        })
    }

    fn secret(annotations: &[(&str, &str)], data: &[(&str, &str)]) -> Secret {
        serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "builder-token",
                "namespace": "dev",
                "uid": "s1",
                "annotations": annotations.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
            },
            "type": SECRET_TYPE,
            "data": data.iter().map(|(k, v)| (k.to_string(), base64::engine::general_purpose::STANDARD.encode(v))).collect::<BTreeMap<_, _>>(),
        }))
        .unwrap()
    }

    fn account() -> ServiceAccount {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "builder", "namespace": "dev", "uid": "u1"},
        }))
        .unwrap()
    }

    fn payload(token: &str) -> serde_json::Value {
        let part = token.split('.').nth(1).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    #[test]
    fn legacy_tokens_carry_upstreams_claims_and_key_id() {
        let token = signer()
            .sign(&LegacyClaims::new("dev", "builder", "u1", "builder-token"))
            .unwrap();
        let claims = payload(&token);
        assert_eq!(
            claims,
            serde_json::json!({
                "iss": "kubernetes/serviceaccount",
                "kubernetes.io/serviceaccount/namespace": "dev",
                "kubernetes.io/serviceaccount/secret.name": "builder-token",
                "kubernetes.io/serviceaccount/service-account.name": "builder",
                "kubernetes.io/serviceaccount/service-account.uid": "u1",
                "sub": "system:serviceaccount:dev:builder",
            })
        );
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::RS256);
        assert_eq!(header.kid.as_deref(), Some(signer().key_id()));
        assert_eq!(signer().key_id().len(), 43);
        assert!(TokenSigner::new("not a key").is_err());
    }

    #[test]
    fn an_empty_secret_is_filled_with_token_ca_namespace_and_uid() {
        let empty = secret(&[(NAME_ANNOTATION, "builder")], &[]);
        assert_eq!(
            needs(&empty, b"CA"),
            Needs {
                ca: true,
                namespace: true,
                token: true
            }
        );
        let updated = filled(&empty, &account(), b"CA", signer())
            .unwrap()
            .unwrap();
        let data = updated.data.as_ref().unwrap();
        assert_eq!(data["ca.crt"].0, b"CA");
        assert_eq!(data["namespace"].0, b"dev");
        let token = String::from_utf8(data["token"].0.clone()).unwrap();
        assert_eq!(
            payload(&token)["kubernetes.io/serviceaccount/service-account.uid"],
            "u1"
        );
        let annotations = updated.metadata.annotations.as_ref().unwrap();
        assert_eq!(annotations[UID_ANNOTATION], "u1");
        assert_eq!(annotations[NAME_ANNOTATION], "builder");
        // a complete Secret is left as it is; a new CA bundle replaces the old one
        assert!(
            filled(&updated, &account(), b"CA", signer())
                .unwrap()
                .is_none()
        );
        assert!(
            filled(&updated, &account(), b"", signer())
                .unwrap()
                .is_none()
        );
        let rotated = filled(&updated, &account(), b"CA2", signer())
            .unwrap()
            .unwrap();
        assert_eq!(rotated.data.as_ref().unwrap()["ca.crt"].0, b"CA2");
        // the token is not re-signed
        assert_eq!(rotated.data.as_ref().unwrap()["token"].0, token.as_bytes());
    }

    #[test]
    fn tokens_belong_to_the_named_account_of_the_same_uid() {
        let unclaimed = secret(&[(NAME_ANNOTATION, "builder")], &[]);
        assert!(is_token_of(&unclaimed, "dev", "builder", "u1"));
        assert!(!is_token_of(&unclaimed, "dev", "other", "u1"));
        assert!(!is_token_of(&unclaimed, "prod", "builder", "u1"));
        let claimed = secret(&[(NAME_ANNOTATION, "builder"), (UID_ANNOTATION, "u1")], &[]);
        assert!(is_token_of(&claimed, "dev", "builder", "u1"));
        assert!(!is_token_of(&claimed, "dev", "builder", "u2"));
        let mut opaque = claimed.clone();
        opaque.type_ = Some("Opaque".into());
        assert!(!is_token_of(&opaque, "dev", "builder", "u1"));
        assert_eq!(secret_key(&opaque), None);
    }

    #[test]
    fn queue_keys_round_trip() {
        let claimed = secret(&[(NAME_ANNOTATION, "builder"), (UID_ANNOTATION, "u1")], &[]);
        let key = secret_key(&claimed).unwrap();
        assert_eq!(key, "dev/builder-token/s1/builder/u1");
        assert_eq!(
            parse_key(&key, 5, 4).unwrap(),
            ["dev", "builder-token", "s1", "builder", "u1"]
        );
        // a Secret that names no account has nothing to sync
        let unnamed = secret(&[], &[]);
        assert!(parse_key(&secret_key(&unnamed).unwrap(), 5, 4).is_none());
        let unclaimed = secret(&[(NAME_ANNOTATION, "builder")], &[]);
        assert!(parse_key(&secret_key(&unclaimed).unwrap(), 5, 4).is_some());
        assert_eq!(account_key(&account()), "dev/builder/u1");
        assert!(parse_key("dev/builder/", 3, 3).is_none());
    }
}
