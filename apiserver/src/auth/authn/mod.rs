//! Authentication, in upstream's order: a verified x509 client certificate (see
//! [`x509`], read by the TLS layer), then a bearer token tried against the static
//! token file, service-account JWTs (bound ones and legacy secret-based ones) and
//! bootstrap tokens; a request with no credentials is anonymous when
//! `--anonymous-auth` allows it. A bearer token nobody accepts is a 401, never
//! anonymous. Every authenticated user gets `system:authenticated`. As upstream, a
//! token that authenticated is remembered for 10 s, so a revoked token (its pod
//! deleted) stops working within that time, and so are the warnings its use gives
//! (a legacy auto-generated token's), replayed on every request as upstream's cache
//! does.

pub mod bootstrap_token;
pub mod service_account;
pub mod token_file;
pub mod x509;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apimachinery::resources::{self, ResourceInfo};
use serde_json::Value;
use sha2::{Digest, Sha256};

use self::service_account::{Claims, ServiceAccountKeys};
use self::token_file::TokenFile;
use crate::auth::UserInfo;
use crate::registry::{Registry, meta};

/// A bound token whose object has been deleting for longer than this is refused
/// (upstream's grace for objects on their way out).
const DELETION_GRACE_SECONDS: i64 = 60;

/// How long a token that authenticated is remembered (upstream's
/// `--authentication-token-cache-ttl`-like success cache of 10 s): the signature, the
/// store lookups and the bound objects' checks are not redone for every request.
const TOKEN_CACHE_TTL: Duration = Duration::from_secs(10);
/// At most this many tokens are remembered; beyond, the cache starts over.
const TOKEN_CACHE_ENTRIES: usize = 4096;

/// Tokens that authenticated recently, by a digest of token and audiences.
#[derive(Default)]
struct TokenCache {
    entries: Mutex<HashMap<[u8; 32], (Instant, Authenticated)>>,
}

impl TokenCache {
    fn key(token: &str, audiences: &[String]) -> [u8; 32] {
        let mut digest = Sha256::new();
        digest.update(token.as_bytes());
        for audience in audiences {
            digest.update([0]);
            digest.update(audience.as_bytes());
        }
        digest.finalize().into()
    }

    fn get(&self, key: &[u8; 32]) -> Option<Authenticated> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(key)
            .filter(|(until, _)| *until > Instant::now())
            .map(|(_, found)| found.clone())
    }

    fn put(&self, key: [u8; 32], found: &Authenticated, until: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= TOKEN_CACHE_ENTRIES {
            let now = Instant::now();
            entries.retain(|_, (t, _)| *t > now);
            if entries.len() >= TOKEN_CACHE_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key, (until, found.clone()));
    }
}

/// The configured authenticators.
#[derive(Clone)]
pub struct Authenticator {
    registry: Registry,
    cache: Arc<TokenCache>,
    /// `--token-auth-file`.
    pub token_file: Option<Arc<TokenFile>>,
    /// Service-account token keys (`--service-account-key-file` and signing key).
    pub service_accounts: Option<Arc<ServiceAccountKeys>>,
    /// The audiences a token must be for (`--api-audiences`, else the issuer).
    pub api_audiences: Vec<String>,
    /// `--enable-bootstrap-token-auth`.
    pub bootstrap_tokens: bool,
    /// `--anonymous-auth`.
    pub anonymous: bool,
}

/// Who a request is, and the warnings its credentials give (upstream's authenticators
/// add them to the request's warning recorder): a `Warning` header on the response.
#[derive(Clone, Debug, PartialEq)]
pub struct Authenticated {
    /// The user the credentials name.
    pub user: UserInfo,
    /// The texts of the `Warning` headers to answer with.
    pub warnings: Vec<String>,
}

impl From<UserInfo> for Authenticated {
    fn from(user: UserInfo) -> Self {
        Authenticated {
            user,
            warnings: Vec::new(),
        }
    }
}

/// Why a request could not be authenticated: upstream answers all of them with the
/// same 401, so the reason is only logged.
#[derive(Debug)]
pub struct Unauthenticated(pub String);

fn resource(plural: &str) -> &'static ResourceInfo {
    resources::find("", "v1", plural).expect("core resources are in the table")
}

impl Authenticator {
    /// An authenticator that knows only client certificates and anonymous requests.
    pub fn new(registry: Registry) -> Self {
        Authenticator {
            registry,
            cache: Arc::new(TokenCache::default()),
            token_file: None,
            service_accounts: None,
            api_audiences: Vec::new(),
            bootstrap_tokens: false,
            anonymous: true,
        }
    }

    /// The user a request authenticates as, given the user its client certificate
    /// named (if any) and its `Authorization` header value (if any).
    pub async fn authenticate(
        &self,
        certificate_user: Option<UserInfo>,
        authorization: Option<&str>,
    ) -> Result<Authenticated, Unauthenticated> {
        if let Some(user) = certificate_user {
            return Ok(user.with_authenticated_group().into());
        }
        let token = authorization.and_then(|header| {
            let (scheme, token) = header.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim())
                .filter(|t| !t.is_empty())
        });
        match token {
            Some(token) => {
                let found = self.authenticate_token(token, &self.api_audiences).await?;
                Ok(Authenticated {
                    user: found.user.with_authenticated_group(),
                    warnings: found.warnings,
                })
            }
            None if self.anonymous => Ok(UserInfo::anonymous().into()),
            None => Err(Unauthenticated(
                "no credentials and anonymous auth is off".into(),
            )),
        }
    }

    /// The user a bearer token names, for a token meant for one of `audiences` (the
    /// API's audiences for requests; TokenReview may ask for others).
    pub async fn authenticate_token(
        &self,
        token: &str,
        audiences: &[String],
    ) -> Result<Authenticated, Unauthenticated> {
        let key = TokenCache::key(token, audiences);
        if let Some(found) = self.cache.get(&key) {
            return Ok(found);
        }
        let (found, valid_until) = self.authenticate_token_uncached(token, audiences).await?;
        let until = Instant::now() + TOKEN_CACHE_TTL;
        self.cache
            .put(key, &found, valid_until.map_or(until, |v| v.min(until)));
        Ok(found)
    }

    /// [`Authenticator::authenticate_token`] without the cache; also says until when a
    /// service-account token is valid.
    async fn authenticate_token_uncached(
        &self,
        token: &str,
        audiences: &[String],
    ) -> Result<(Authenticated, Option<Instant>), Unauthenticated> {
        if let Some(user) = self.token_file.as_ref().and_then(|f| f.authenticate(token)) {
            return Ok((user.into(), None));
        }
        if let Some(keys) = &self.service_accounts
            && token.matches('.').count() == 2
            && !token.starts_with('.')
        {
            if service_account::unverified_issuer(token).as_deref()
                == Some(service_account::LEGACY_ISSUER)
            {
                return self
                    .legacy_service_account_user(keys, token, audiences)
                    .await
                    .map(|found| (found, None));
            }
            let claims = keys
                .verify(token, audiences)
                .map_err(|e| Unauthenticated(format!("invalid service account token: {e}")))?;
            let left = claims.exp - jiff::Timestamp::now().as_second();
            let until = Instant::now() + Duration::from_secs(left.max(0) as u64);
            return self
                .service_account_user(&claims)
                .await
                .map(|user| (user.into(), Some(until)));
        }
        if self.bootstrap_tokens
            && let Some((id, secret)) = bootstrap_token::parse(token)
        {
            let found = self
                .registry
                .get(
                    resource("secrets"),
                    Some("kube-system"),
                    &bootstrap_token::secret_name(id),
                )
                .await;
            if let Ok(object) = found
                && let Some(user) = bootstrap_token::authenticate(&object, id, secret)
            {
                return Ok((user.into(), None));
            }
        }
        Err(Unauthenticated("invalid bearer token".into()))
    }

    /// A verified service-account token's user, once its service account and bound
    /// object are found alive with the uids the token names.
    async fn service_account_user(&self, claims: &Claims) -> Result<UserInfo, Unauthenticated> {
        let k8s = &claims.kubernetes;
        let namespace = k8s.namespace.as_str();
        let expected_sub = format!(
            "{}{namespace}:{}",
            service_account::USER_PREFIX,
            k8s.serviceaccount.name
        );
        if claims.sub != expected_sub {
            return Err(Unauthenticated(
                "token subject does not match its claims".into(),
            ));
        }
        let account = self
            .live(
                resource("serviceaccounts"),
                Some(namespace),
                &k8s.serviceaccount.name,
                &k8s.serviceaccount.uid,
            )
            .await?;
        let mut user = UserInfo {
            name: expected_sub,
            uid: meta::meta_str(&account, "uid")
                .unwrap_or_default()
                .to_owned(),
            groups: service_account::groups(namespace),
            ..Default::default()
        };
        if let Some(pod) = &k8s.pod {
            self.live(resource("pods"), Some(namespace), &pod.name, &pod.uid)
                .await?;
            user.extra.insert(
                "authentication.kubernetes.io/pod-name".into(),
                vec![pod.name.clone()],
            );
            user.extra.insert(
                "authentication.kubernetes.io/pod-uid".into(),
                vec![pod.uid.clone()],
            );
        }
        if let Some(secret) = &k8s.secret {
            self.live(
                resource("secrets"),
                Some(namespace),
                &secret.name,
                &secret.uid,
            )
            .await?;
        }
        if let Some(node) = &k8s.node {
            // a pod-bound token names its pod's node too; only a node binding is checked
            if k8s.pod.is_none() {
                self.live(resource("nodes"), None, &node.name, &node.uid)
                    .await?;
            }
            user.extra.insert(
                "authentication.kubernetes.io/node-name".into(),
                vec![node.name.clone()],
            );
            user.extra.insert(
                "authentication.kubernetes.io/node-uid".into(),
                vec![node.uid.clone()],
            );
        }
        if !claims.jti.is_empty() {
            user.extra.insert(
                "authentication.kubernetes.io/credential-id".into(),
                vec![format!("JTI={}", claims.jti)],
            );
        }
        Ok(user)
    }

    /// The object a token refers to, when it exists with `uid` and is not long gone.
    async fn live(
        &self,
        resource: &'static ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        uid: &str,
    ) -> Result<Value, Unauthenticated> {
        let object = self
            .registry
            .get(resource, namespace, name)
            .await
            .map_err(|e| Unauthenticated(format!("{} {name}: {e}", resource.plural)))?;
        if meta::meta_str(&object, "uid") != Some(uid) {
            return Err(Unauthenticated(format!(
                "{} {name}: uid does not match the token's",
                resource.plural
            )));
        }
        if let Some(deleted) = meta::meta_str(&object, "deletionTimestamp")
            && let Ok(at) = deleted.parse::<jiff::Timestamp>()
            && at.as_second() + DELETION_GRACE_SECONDS < jiff::Timestamp::now().as_second()
        {
            return Err(Unauthenticated(format!(
                "{} {name} is being deleted",
                resource.plural
            )));
        }
        Ok(object)
    }
}

/// Byte-wise equality in time independent of where the inputs differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
