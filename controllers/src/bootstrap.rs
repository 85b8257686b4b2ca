//! The bootstrap token controllers, as upstream's `pkg/controller/bootstrap` (both off
//! by default):
//!
//! - the bootstrap signer (`bootstrapsigner`) keeps `kube-public/cluster-info` signed:
//!   for each bootstrap token Secret in kube-system allowed to sign
//!   (`usage-bootstrap-signing: true`, unexpired, named after its id) the ConfigMap
//!   carries `jws-kubeconfig-<token-id>`, a detached HS256 JWS over its `kubeconfig`
//!   (RFC 7515 appendix F: `header..signature`), which a joining node checks with the
//!   token it was given; signatures of tokens gone are removed;
//! - the token cleaner (`tokencleaner`) deletes bootstrap token Secrets in kube-system
//!   once their `expiration` has passed, looking again when it comes.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, DeleteParams, PostParams, Preconditions};

use crate::Context;
use crate::informers::{Change, key_of, split_key};
use crate::workqueue::WorkQueue;

/// The bootstrap signer's name.
pub const SIGNER_NAME: &str = "bootstrap-signer-controller";
/// Its service account.
pub const SIGNER_SERVICE_ACCOUNT: &str = "bootstrap-signer";
/// The token cleaner's name.
pub const CLEANER_NAME: &str = "token-cleaner-controller";
/// Its service account.
pub const CLEANER_SERVICE_ACCOUNT: &str = "token-cleaner";

const TOKEN_SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";
const TOKEN_NAMESPACE: &str = "kube-system";
const CLUSTER_INFO_NAMESPACE: &str = "kube-public";
const CLUSTER_INFO: &str = "cluster-info";
const KUBECONFIG_KEY: &str = "kubeconfig";
const SIGNATURE_PREFIX: &str = "jws-kubeconfig-";
const SECRET_PREFIX: &str = "bootstrap-token-";

/// A detached JWS over `content` with HS256 keyed by the token secret and `kid` the
/// token id, as upstream's `jws.ComputeDetachedSignature` (go-jose writes the
/// protected header with sorted keys).
pub fn detached_signature(
    content: &str,
    token_id: &str,
    token_secret: &str,
) -> Result<String, String> {
    let header = serde_json::json!({ "alg": "HS256", "kid": token_id }).to_string();
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(content)
    );
    // zero-padded to 32 bytes as upstream does for go-jose (HMAC pads short keys with
    // zeros itself, so the signature is that of the bare secret)
    let mut key = token_secret.as_bytes().to_vec();
    if key.len() < 32 {
        key.resize(32, 0);
    }
    let key = jsonwebtoken::EncodingKey::from_secret(&key);
    let signature = jsonwebtoken::crypto::sign(
        signing_input.as_bytes(),
        &key,
        jsonwebtoken::Algorithm::HS256,
    )
    .map_err(|e| format!("can't HS256-sign the given token: {e}"))?;
    let protected = signing_input.split('.').next().unwrap_or_default();
    Ok(format!("{protected}..{signature}"))
}

fn data(secret: &Secret, key: &str) -> String {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|v| String::from_utf8_lossy(&v.0).into_owned())
        .unwrap_or_default()
}

/// The token id in a Secret's name (`bootstrap-token-<[a-z0-9]{6}>`).
fn token_id_of_name(name: &str) -> Option<&str> {
    let id = name.strip_prefix(SECRET_PREFIX)?;
    (id.len() == 6
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
    .then_some(id)
}

/// Upstream's `GetExpiration`: the time left, or whether the token has expired (an
/// unreadable expiration counts as expired); `(None, false)` without one.
pub fn expiration(secret: &Secret, now: jiff::Timestamp) -> (Option<std::time::Duration>, bool) {
    let text = data(secret, "expiration");
    if text.is_empty() {
        return (None, false);
    }
    let Ok(at) = text.parse::<jiff::Timestamp>() else {
        return (None, true);
    };
    let left = at.duration_since(now);
    if left <= jiff::SignedDuration::ZERO {
        return (None, true);
    }
    (std::time::Duration::try_from(left).ok(), false)
}

/// The token id and secret of a Secret that may sign cluster-info (upstream's
/// `validateSecretForSigning`).
pub fn signing_token(secret: &Secret, now: jiff::Timestamp) -> Option<(String, String)> {
    let name_id = token_id_of_name(secret.metadata.name.as_deref().unwrap_or_default())?;
    let id = data(secret, "token-id");
    if id.is_empty() || id != name_id {
        return None;
    }
    let token_secret = data(secret, "token-secret");
    if token_secret.is_empty() || expiration(secret, now).1 {
        return None;
    }
    (data(secret, "usage-bootstrap-signing") == "true").then_some((id, token_secret))
}

fn is_token_secret(secret: &Secret) -> bool {
    secret.type_.as_deref() == Some(TOKEN_SECRET_TYPE)
        && secret.metadata.namespace.as_deref() == Some(TOKEN_NAMESPACE)
}

/// cluster-info's data with the signatures of `tokens` (id → secret), or `None` when
/// it needs no change.
pub fn signed_data(
    current: &BTreeMap<String, String>,
    tokens: &BTreeMap<String, String>,
) -> Option<BTreeMap<String, String>> {
    let content = current.get(KUBECONFIG_KEY)?;
    let mut updated: BTreeMap<String, String> = current
        .iter()
        .filter(|(k, _)| !k.starts_with(SIGNATURE_PREFIX))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (id, secret) in tokens {
        match detached_signature(content, id, secret) {
            Ok(signature) => {
                updated.insert(format!("{SIGNATURE_PREFIX}{id}"), signature);
            }
            Err(e) => tracing::error!(error = %e, "cannot sign cluster-info"),
        }
    }
    (updated != *current).then_some(updated)
}

struct Signer {
    client: kube::Client,
    config_maps: crate::informers::Informer<ConfigMap>,
    secrets: crate::informers::Informer<Secret>,
}

impl Signer {
    async fn sign(&self) -> Result<(), kube::Error> {
        let Some(cm) = self.config_maps.get(CLUSTER_INFO_NAMESPACE, CLUSTER_INFO) else {
            return Ok(());
        };
        let now = jiff::Timestamp::now();
        let mut tokens = BTreeMap::new();
        for secret in self.secrets.list_namespace(TOKEN_NAMESPACE) {
            if !is_token_secret(&secret) {
                continue;
            }
            if let Some((id, token_secret)) = signing_token(&secret, now) {
                tokens.entry(id).or_insert(token_secret);
            }
        }
        let current = cm.data.clone().unwrap_or_default();
        let Some(updated) = signed_data(&current, &tokens) else {
            return Ok(());
        };
        let mut cm = (*cm).clone();
        cm.data = Some(updated);
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), CLUSTER_INFO_NAMESPACE);
        match api.replace(CLUSTER_INFO, &PostParams::default(), &cm).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Starts the bootstrap signer.
pub fn start_signer(cx: Context) -> futures::future::BoxFuture<'static, ()> {
    let signer = Arc::new(Signer {
        client: cx.client.clone(),
        config_maps: cx.informers.informer::<ConfigMap>(),
        secrets: cx.informers.informer::<Secret>(),
    });
    // one key: every change collapses into one signing of cluster-info
    let key = format!("{CLUSTER_INFO_NAMESPACE}/{CLUSTER_INFO}");
    let queue = WorkQueue::<String>::new();
    let (q, k) = (queue.clone(), key.clone());
    signer.config_maps.add_handler(move |change| {
        let (Change::Added(cm) | Change::Updated { new: cm, .. }) = change else {
            return;
        };
        if key_of(&***cm) == k {
            q.add(k.clone());
        }
    });
    let (q, k) = (queue.clone(), key);
    signer.secrets.add_handler(move |change| {
        let (Change::Added(s) | Change::Updated { new: s, .. } | Change::Deleted(s)) = change;
        if is_token_secret(s) {
            q.add(k.clone());
        }
    });
    Box::pin(async move {
        signer.config_maps.wait_synced().await;
        signer.secrets.wait_synced().await;
        queue
            .run(1, None, SIGNER_NAME, move |_key: String| {
                let signer = signer.clone();
                async move { signer.sign().await }
            })
            .await;
    })
}

struct Cleaner {
    client: kube::Client,
    secrets: crate::informers::Informer<Secret>,
    queue: Arc<WorkQueue<String>>,
}

impl Cleaner {
    async fn sync(&self, key: &str) -> Result<(), kube::Error> {
        let (namespace, name) = split_key(key);
        let Some(secret) = self.secrets.get(namespace, name) else {
            return Ok(());
        };
        if secret.type_.as_deref() != Some(TOKEN_SECRET_TYPE) {
            return Ok(());
        }
        match expiration(&secret, jiff::Timestamp::now()) {
            (_, true) => {
                tracing::info!(secret = %key, "Deleting expired secret");
                let params = DeleteParams {
                    preconditions: secret.metadata.uid.clone().map(|uid| Preconditions {
                        uid: Some(uid),
                        resource_version: None,
                    }),
                    ..DeleteParams::default()
                };
                let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
                match api.delete(name, &params).await {
                    // gone already, or a new Secret of that name (uid precondition)
                    Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                    Err(e) => tracing::info!(secret = %key, error = %e, "Error deleting secret"),
                    Ok(_) => {}
                }
            }
            (Some(left), false) => self.queue.add_after(key.to_owned(), left),
            (None, false) => {}
        }
        Ok(())
    }
}

/// Starts the token cleaner.
pub fn start_cleaner(cx: Context) -> futures::future::BoxFuture<'static, ()> {
    let queue = WorkQueue::<String>::new();
    let cleaner = Arc::new(Cleaner {
        client: cx.client.clone(),
        secrets: cx.informers.informer::<Secret>(),
        queue: queue.clone(),
    });
    let q = queue.clone();
    cleaner.secrets.add_handler(move |change| {
        let (Change::Added(s) | Change::Updated { new: s, .. }) = change else {
            return;
        };
        if is_token_secret(s) {
            q.add(key_of(&***s));
        }
    });
    Box::pin(async move {
        cleaner.secrets.wait_synced().await;
        queue
            .run(1, None, CLEANER_NAME, move |key: String| {
                let cleaner = cleaner.clone();
                async move { cleaner.sync(&key).await }
            })
            .await;
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn token(name: &str, data: serde_json::Value) -> Secret {
        use base64::engine::general_purpose::STANDARD;
        let data: serde_json::Map<String, serde_json::Value> = data
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), STANDARD.encode(v.as_str().unwrap()).into()))
            .collect();
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "kube-system"},
            "type": TOKEN_SECRET_TYPE,
            "data": data,
        }))
        .unwrap()
    }

    // upstream's jws_test.go vectors
    #[test]
    fn the_detached_signature_matches_upstream() {
        let content = "Hello from the other side. I must have called a thousand times.";
        let header = "eyJhbGciOiJIUzI1NiIsImtpZCI6Impvc2h1YSJ9";
        for (content, secret, signature) in [
            (
                content,
                "my voice is my passcode",
                "VShe2taLd-YTrmWuRkcL_8QTNDHYxQIEBsAYYiIj1_8",
            ),
            (
                "",
                "my voice is my passcode",
                "7Ui1ALizW4jXphVUB7xUqC9vLYLL9RZeOFfVLoB7Tgk",
            ),
            (content, "", "UfkqvDGiIFxrMnFseDj9LYJOLNrvjW8aHhF71mvvAs8"),
            (
                content,
                "my voice is my passcode. my voice is my passcode",
                "SFoKn0-YxqnvpSExt4LuCZ_7pvIBdX3SoUO_NsTpkdg",
            ),
        ] {
            assert_eq!(
                detached_signature(content, "joshua", secret).unwrap(),
                format!("{header}..{signature}")
            );
        }
    }

    #[test]
    fn only_unexpired_signing_tokens_named_after_their_id_sign() {
        let now = jiff::Timestamp::now();
        let later = (now + jiff::SignedDuration::from_hours(1)).to_string();
        let earlier = (now - jiff::SignedDuration::from_hours(1)).to_string();
        let good = json!({"token-id": "abcdef", "token-secret": "0123456789abcdef", "usage-bootstrap-signing": "true"});
        assert_eq!(
            signing_token(&token("bootstrap-token-abcdef", good.clone()), now),
            Some(("abcdef".into(), "0123456789abcdef".into()))
        );
        let mut future = good.clone();
        future["expiration"] = later.clone().into();
        assert!(signing_token(&token("bootstrap-token-abcdef", future), now).is_some());
        let mut past = good.clone();
        past["expiration"] = earlier.into();
        assert!(signing_token(&token("bootstrap-token-abcdef", past), now).is_none());
        let mut garbage = good.clone();
        garbage["expiration"] = "tomorrow".into();
        assert!(signing_token(&token("bootstrap-token-abcdef", garbage), now).is_none());
        assert!(signing_token(&token("bootstrap-token-zzzzzz", good.clone()), now).is_none());
        assert!(signing_token(&token("token-abcdef", good.clone()), now).is_none());
        let mut no_usage = good.clone();
        no_usage["usage-bootstrap-signing"] = "false".into();
        assert!(signing_token(&token("bootstrap-token-abcdef", no_usage), now).is_none());
    }

    #[test]
    fn expiration_is_time_left_or_expired() {
        let now = jiff::Timestamp::now();
        let soon = (now + jiff::SignedDuration::from_secs(90)).to_string();
        let (left, expired) = expiration(
            &token("bootstrap-token-abcdef", json!({"expiration": soon})),
            now,
        );
        assert!(!expired);
        assert!(left.is_some_and(|l| l.as_secs() >= 89 && l.as_secs() <= 90));
        assert_eq!(
            expiration(&token("bootstrap-token-abcdef", json!({})), now),
            (None, false)
        );
        assert_eq!(
            expiration(
                &token("bootstrap-token-abcdef", json!({"expiration": "x"})),
                now
            ),
            (None, true)
        );
    }

    #[test]
    fn cluster_info_gets_one_signature_per_token_and_loses_stale_ones() {
        let current: BTreeMap<String, String> = [
            ("kubeconfig".to_owned(), "Hello, world!".to_owned()),
            ("jws-kubeconfig-old123".to_owned(), "stale".to_owned()),
        ]
        .into();
        let tokens: BTreeMap<String, String> = [("abc123".to_owned(), "def456".to_owned())].into();
        let updated = signed_data(&current, &tokens).unwrap();
        assert_eq!(updated.len(), 2);
        assert!(updated.contains_key("jws-kubeconfig-abc123"));
        assert!(!updated.contains_key("jws-kubeconfig-old123"));
        // signed already: no change
        assert_eq!(signed_data(&updated, &tokens), None);
        // no kubeconfig: nothing to sign
        assert_eq!(signed_data(&BTreeMap::new(), &tokens), None);
    }
}
