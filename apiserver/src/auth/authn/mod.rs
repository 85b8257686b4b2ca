//! Authentication, in upstream's order: a verified x509 client certificate (see
//! [`x509`], read by the TLS layer), then a bearer token tried against the static
//! token file, service-account JWTs and bootstrap tokens; a request with no
//! credentials is anonymous when `--anonymous-auth` allows it. A bearer token nobody
//! accepts is a 401, never anonymous. Every authenticated user gets
//! `system:authenticated`.

pub mod bootstrap_token;
pub mod service_account;
pub mod token_file;
pub mod x509;

use std::sync::Arc;

use apimachinery::resources::{self, ResourceInfo};
use serde_json::Value;

use self::service_account::{Claims, ServiceAccountKeys};
use self::token_file::TokenFile;
use crate::auth::UserInfo;
use crate::registry::{Registry, meta};

/// A bound token whose object has been deleting for longer than this is refused
/// (upstream's grace for objects on their way out).
const DELETION_GRACE_SECONDS: i64 = 60;

/// The configured authenticators.
#[derive(Clone)]
pub struct Authenticator {
    registry: Registry,
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
    ) -> Result<UserInfo, Unauthenticated> {
        if let Some(user) = certificate_user {
            return Ok(user.with_authenticated_group());
        }
        let token = authorization.and_then(|header| {
            let (scheme, token) = header.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim())
                .filter(|t| !t.is_empty())
        });
        match token {
            Some(token) => self
                .authenticate_token(token, &self.api_audiences)
                .await
                .map(UserInfo::with_authenticated_group),
            None if self.anonymous => Ok(UserInfo::anonymous()),
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
    ) -> Result<UserInfo, Unauthenticated> {
        if let Some(user) = self.token_file.as_ref().and_then(|f| f.authenticate(token)) {
            return Ok(user);
        }
        if let Some(keys) = &self.service_accounts
            && token.matches('.').count() == 2
            && !token.starts_with('.')
        {
            let claims = keys
                .verify(token, audiences)
                .map_err(|e| Unauthenticated(format!("invalid service account token: {e}")))?;
            return self.service_account_user(&claims).await;
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
                return Ok(user);
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
