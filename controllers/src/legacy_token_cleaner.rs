//! The legacy service-account token cleaner: once a day, auto-generated legacy token
//! Secrets that nobody used for `--legacy-service-account-token-clean-up-period`
//! (default one year) are labelled `kubernetes.io/legacy-token-invalid-since` (the
//! apiserver then refuses their tokens), and deleted when that label is itself older
//! than the period, as upstream's `legacy-serviceaccount-token-cleaner-controller`.
//!
//! Only Secrets of type `kubernetes.io/service-account-token` that their service
//! account lists in `secrets` (auto-generated ones), that no pod in their namespace
//! refers to, that were created and last used (label
//! `kubernetes.io/legacy-token-last-used`) before the period are touched; and nothing
//! is, until the apiserver has been tracking token use (the `since` date of ConfigMap
//! `kube-system/kube-apiserver-legacy-service-account-token-tracking`) for the period.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Pod, PodSpec, Secret, ServiceAccount};
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use serde_json::json;

use crate::Context;
use crate::informers::Informer;

/// The controller's name.
pub const NAME: &str = "legacy-serviceaccount-token-cleaner-controller";
/// Its service account (bound to `system:controller:legacy-service-account-token-cleaner`).
pub const SERVICE_ACCOUNT: &str = "legacy-service-account-token-cleaner";
/// How often the tokens are looked at (upstream's `DefaultCleanerSyncInterval`).
pub const SYNC_INTERVAL: Duration = Duration::from_secs(24 * 3600);
/// The ConfigMap in which the apiserver records since when it tracks token use.
pub const TRACKING_CONFIG_MAP: &str = "kube-apiserver-legacy-service-account-token-tracking";
/// Its key holding the date.
const TRACKING_SINCE_KEY: &str = "since";
/// The label with the day a token was last used (kept by the apiserver).
pub const LAST_USED_LABEL: &str = "kubernetes.io/legacy-token-last-used";
/// The label with the day a token was marked invalid.
pub const INVALID_SINCE_LABEL: &str = "kubernetes.io/legacy-token-invalid-since";
const SECRET_TYPE: &str = "kubernetes.io/service-account-token";
const NAME_ANNOTATION: &str = "kubernetes.io/service-account.name";
const UID_ANNOTATION: &str = "kubernetes.io/service-account.uid";

/// What to do with one token Secret.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Label it invalid since this day.
    MarkInvalid(String),
    /// Delete it.
    Delete,
}

/// A UTC day as `YYYY-MM-DD` (dates in this form compare as strings, as upstream's).
fn day(t: jiff::Timestamp) -> String {
    t.to_zoned(jiff::tz::TimeZone::UTC).date().to_string()
}

/// Whether `text` is a well-formed `YYYY-MM-DD` date.
fn is_date(text: &str) -> bool {
    text.len() == 10 && text.parse::<jiff::civil::Date>().is_ok()
}

/// The earliest instant tokens may be cleaned given the tracking ConfigMap's `since`
/// day: midnight after it, plus the period (upstream's `latestPossibleTrackedSinceTime`).
pub fn cleaning_starts(since: &str, period: Duration) -> Result<jiff::Timestamp, String> {
    let date: jiff::civil::Date = since
        .parse()
        .map_err(|e| format!("error parsing trackedSince time: {e}"))?;
    let midnight = date
        .tomorrow()
        .map_err(|e| e.to_string())?
        .to_zoned(jiff::tz::TimeZone::UTC)
        .map_err(|e| e.to_string())?
        .timestamp();
    let period = jiff::SignedDuration::try_from(period).map_err(|e| e.to_string())?;
    midnight.checked_add(period).map_err(|e| e.to_string())
}

/// Every Secret a pod refers to (upstream's `VisitPodSecretNames`): image pull
/// secrets, environment of every container, secret and projected volumes, and the
/// secret references of volume plugins.
pub fn pod_secret_names(spec: &PodSpec, names: &mut HashSet<String>) {
    let mut add = |name: Option<&String>| {
        if let Some(name) = name.filter(|n| !n.is_empty()) {
            names.insert(name.clone());
        }
    };
    for pull in spec.image_pull_secrets.iter().flatten() {
        add(Some(&pull.name));
    }
    let containers = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    let envs = containers
        .map(|c| (c.env.as_ref(), c.env_from.as_ref()))
        .chain(
            spec.ephemeral_containers
                .iter()
                .flatten()
                .map(|c| (c.env.as_ref(), c.env_from.as_ref())),
        );
    for (env, env_from) in envs {
        for from in env_from.into_iter().flatten() {
            add(from.secret_ref.as_ref().map(|r| &r.name));
        }
        for var in env.into_iter().flatten() {
            add(var
                .value_from
                .as_ref()
                .and_then(|v| v.secret_key_ref.as_ref())
                .map(|r| &r.name));
        }
    }
    for volume in spec.volumes.iter().flatten() {
        add(volume.secret.as_ref().and_then(|s| s.secret_name.as_ref()));
        for source in volume
            .projected
            .as_ref()
            .and_then(|p| p.sources.as_ref())
            .into_iter()
            .flatten()
        {
            add(source.secret.as_ref().map(|s| &s.name));
        }
        add(volume.azure_file.as_ref().map(|a| &a.secret_name));
        add(volume
            .cephfs
            .as_ref()
            .and_then(|c| c.secret_ref.as_ref())
            .map(|r| &r.name));
        add(volume
            .cinder
            .as_ref()
            .and_then(|c| c.secret_ref.as_ref())
            .map(|r| &r.name));
        add(volume
            .flex_volume
            .as_ref()
            .and_then(|f| f.secret_ref.as_ref())
            .map(|r| &r.name));
        add(volume
            .rbd
            .as_ref()
            .and_then(|r| r.secret_ref.as_ref())
            .map(|r| &r.name));
        add(volume.scale_io.as_ref().map(|s| &s.secret_ref.name));
        add(volume
            .iscsi
            .as_ref()
            .and_then(|i| i.secret_ref.as_ref())
            .map(|r| &r.name));
        add(volume
            .storageos
            .as_ref()
            .and_then(|s| s.secret_ref.as_ref())
            .map(|r| &r.name));
        add(volume
            .csi
            .as_ref()
            .and_then(|c| c.node_publish_secret_ref.as_ref())
            .map(|r| &r.name));
    }
}

/// What upstream's `evaluateSATokens` does with one Secret, given its service account
/// (`None` when missing or of another uid), whether a pod refers to it, the period
/// and now. `None`: leave it.
pub fn plan(
    secret: &Secret,
    account: Option<&ServiceAccount>,
    mounted: bool,
    period: Duration,
    now: jiff::Timestamp,
) -> Option<Action> {
    if secret.type_.as_deref() != Some(SECRET_TYPE) || secret.metadata.deletion_timestamp.is_some()
    {
        return None;
    }
    let horizon = now
        .checked_sub(jiff::SignedDuration::try_from(period).ok()?)
        .ok()?;
    // created within the period: kept
    let created = secret.metadata.creation_timestamp.as_ref()?.0;
    if created >= horizon {
        return None;
    }
    let preserve_used_on_or_after = day(horizon);
    let labels = secret.metadata.labels.clone().unwrap_or_default();
    // no label: not used since tracking started
    if let Some(last_used) = labels.get(LAST_USED_LABEL) {
        if !is_date(last_used) || *last_used >= preserve_used_on_or_after {
            return None;
        }
    }
    // only tokens their account lists are auto-generated ones
    let name = secret.metadata.name.as_deref().unwrap_or_default();
    let listed = account
        .and_then(|a| a.secrets.as_ref())
        .is_some_and(|refs| refs.iter().any(|r| r.name.as_deref() == Some(name)));
    if !listed || mounted {
        return None;
    }
    match labels.get(INVALID_SINCE_LABEL) {
        Some(since) if is_date(since) => {
            (*since < preserve_used_on_or_after).then_some(Action::Delete)
        }
        _ => Some(Action::MarkInvalid(day(now))),
    }
}

struct Cleaner {
    cx: Context,
    period: Duration,
    accounts: Informer<ServiceAccount>,
    secrets: Informer<Secret>,
    pods: Informer<Pod>,
}

impl Cleaner {
    /// The Secret's service account from the cache, when it has the uid the Secret
    /// names (upstream's `getServiceAccount`).
    fn account(&self, secret: &Secret) -> Option<Arc<ServiceAccount>> {
        let annotations = secret.metadata.annotations.as_ref()?;
        let name = annotations.get(NAME_ANNOTATION).filter(|n| !n.is_empty())?;
        let namespace = secret.metadata.namespace.as_deref().unwrap_or_default();
        let account = self.accounts.get(namespace, name)?;
        match annotations.get(UID_ANNOTATION).filter(|u| !u.is_empty()) {
            Some(uid) if account.metadata.uid.as_ref() != Some(uid) => None,
            _ => Some(account),
        }
    }

    /// The tracking start day the apiserver recorded.
    async fn tracked_since(&self) -> Result<String, String> {
        let api: Api<ConfigMap> = Api::namespaced(self.cx.client.clone(), "kube-system");
        let map = api
            .get(TRACKING_CONFIG_MAP)
            .await
            .map_err(|e| e.to_string())?;
        map.data
            .and_then(|d| d.get(TRACKING_SINCE_KEY).cloned())
            .ok_or_else(|| "configMap does not have since label".to_owned())
    }

    /// One pass over every token Secret (upstream's `evaluateSATokens`).
    async fn evaluate(&self) {
        let now = jiff::Timestamp::now();
        let starts = match self.tracked_since().await {
            Ok(since) => cleaning_starts(&since, self.period),
            Err(e) => Err(e),
        };
        match starts {
            Err(e) => {
                tracing::error!(controller = NAME, error = %e, "getting latest possible tracked_since time");
                return;
            }
            // not tracking long enough
            Ok(starts) if now < starts => return,
            Ok(_) => {}
        }
        let mut mounted_by_namespace: HashMap<String, HashSet<String>> = HashMap::new();
        for secret in self.secrets.list() {
            if secret.type_.as_deref() != Some(SECRET_TYPE) {
                continue;
            }
            let namespace = secret.metadata.namespace.clone().unwrap_or_default();
            let name = secret.metadata.name.clone().unwrap_or_default();
            let mounted = mounted_by_namespace
                .entry(namespace.clone())
                .or_insert_with(|| {
                    let mut names = HashSet::new();
                    for pod in self.pods.list_namespace(&namespace) {
                        if let Some(spec) = &pod.spec {
                            pod_secret_names(spec, &mut names);
                        }
                    }
                    names
                })
                .contains(&name);
            let account = self.account(&secret);
            let Some(action) = plan(&secret, account.as_deref(), mounted, self.period, now) else {
                continue;
            };
            let api: Api<Secret> = Api::namespaced(self.cx.client.clone(), &namespace);
            match action {
                Action::MarkInvalid(since) => {
                    tracing::info!(secret = %format!("{namespace}/{name}"), invalid_since = %since, "mark the auto-generated service account token as invalid");
                    let patch = json!({"metadata": {
                        "uid": secret.metadata.uid,
                        "labels": {INVALID_SINCE_LABEL: since},
                    }});
                    if let Err(e) = api
                        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                    {
                        tracing::error!(secret = %format!("{namespace}/{name}"), error = %e, "failed to label legacy service account token secret with invalid since date");
                    }
                }
                Action::Delete => {
                    tracing::info!(secret = %format!("{namespace}/{name}"), "delete auto-generated service account token");
                    let params = DeleteParams {
                        preconditions: Some(Preconditions {
                            uid: None,
                            resource_version: secret.metadata.resource_version.clone(),
                        }),
                        ..DeleteParams::default()
                    };
                    match api.delete(&name, &params).await {
                        Ok(_) => {}
                        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                        Err(e) => {
                            tracing::error!(secret = %format!("{namespace}/{name}"), error = %e, "deleting legacy service account token")
                        }
                    }
                }
            }
        }
    }
}

/// Starts the cleaner (upstream refuses a period that is not positive).
pub fn start(cx: Context) -> futures::future::BoxFuture<'static, ()> {
    let period = cx.settings.legacy_service_account_token_clean_up_period;
    if period.is_zero() {
        tracing::error!(
            controller = NAME,
            "invalid CleanUpPeriod: {period:?}; the controller does not run"
        );
        return Box::pin(async {});
    }
    let cleaner = Cleaner {
        period,
        accounts: cx.informers.informer::<ServiceAccount>(),
        secrets: cx.informers.informer::<Secret>(),
        pods: cx.informers.informer::<Pod>(),
        cx,
    };
    Box::pin(async move {
        cleaner.accounts.wait_synced().await;
        cleaner.secrets.wait_synced().await;
        cleaner.pods.wait_synced().await;
        loop {
            cleaner.evaluate().await;
            tokio::time::sleep(SYNC_INTERVAL).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PERIOD: Duration = Duration::from_secs(365 * 24 * 3600);

    fn now() -> jiff::Timestamp {
        "2025-06-15T12:00:00Z".parse().unwrap()
    }

    fn secret(created: &str, labels: serde_json::Value) -> Secret {
        serde_json::from_value(json!({
            "metadata": {
                "name": "builder-token-abcde",
                "namespace": "dev",
                "creationTimestamp": created,
                "labels": labels,
                "annotations": {NAME_ANNOTATION: "builder", UID_ANNOTATION: "u1"},
            },
            "type": SECRET_TYPE,
        }))
        .unwrap()
    }

    fn account(listing: bool) -> ServiceAccount {
        let secrets = if listing {
            json!([{"name": "builder-token-abcde"}])
        } else {
            json!([])
        };
        serde_json::from_value(json!({
            "metadata": {"name": "builder", "namespace": "dev", "uid": "u1"},
            "secrets": secrets,
        }))
        .unwrap()
    }

    #[test]
    fn an_old_unused_auto_generated_token_is_marked_then_deleted() {
        let old = secret("2023-01-01T00:00:00Z", json!({}));
        let sa = account(true);
        assert_eq!(
            plan(&old, Some(&sa), false, PERIOD, now()),
            Some(Action::MarkInvalid("2025-06-15".into()))
        );
        // marked recently: kept a further period
        let marked = secret(
            "2023-01-01T00:00:00Z",
            json!({INVALID_SINCE_LABEL: "2025-01-01"}),
        );
        assert_eq!(plan(&marked, Some(&sa), false, PERIOD, now()), None);
        let long_marked = secret(
            "2023-01-01T00:00:00Z",
            json!({INVALID_SINCE_LABEL: "2024-06-01"}),
        );
        assert_eq!(
            plan(&long_marked, Some(&sa), false, PERIOD, now()),
            Some(Action::Delete)
        );
        // a malformed mark is replaced by today's
        let malformed = secret(
            "2023-01-01T00:00:00Z",
            json!({INVALID_SINCE_LABEL: "yesterday"}),
        );
        assert_eq!(
            plan(&malformed, Some(&sa), false, PERIOD, now()),
            Some(Action::MarkInvalid("2025-06-15".into()))
        );
    }

    #[test]
    fn recent_used_manual_or_mounted_tokens_are_kept() {
        let sa = account(true);
        let recent = secret("2025-01-01T00:00:00Z", json!({}));
        assert_eq!(plan(&recent, Some(&sa), false, PERIOD, now()), None);
        let used = secret(
            "2023-01-01T00:00:00Z",
            json!({LAST_USED_LABEL: "2025-02-01"}),
        );
        assert_eq!(plan(&used, Some(&sa), false, PERIOD, now()), None);
        let used_long_ago = secret(
            "2023-01-01T00:00:00Z",
            json!({LAST_USED_LABEL: "2023-02-01"}),
        );
        assert!(plan(&used_long_ago, Some(&sa), false, PERIOD, now()).is_some());
        let unreadable = secret("2023-01-01T00:00:00Z", json!({LAST_USED_LABEL: "soon"}));
        assert_eq!(plan(&unreadable, Some(&sa), false, PERIOD, now()), None);
        let old = secret("2023-01-01T00:00:00Z", json!({}));
        // a manually created token (not in the account's list), no account, mounted
        assert_eq!(
            plan(&old, Some(&account(false)), false, PERIOD, now()),
            None
        );
        assert_eq!(plan(&old, None, false, PERIOD, now()), None);
        assert_eq!(plan(&old, Some(&sa), true, PERIOD, now()), None);
        let mut opaque = old.clone();
        opaque.type_ = Some("Opaque".into());
        assert_eq!(plan(&opaque, Some(&sa), false, PERIOD, now()), None);
    }

    #[test]
    fn cleaning_waits_for_a_period_of_tracking() {
        let starts = cleaning_starts("2024-06-15", PERIOD).unwrap();
        assert_eq!(starts, "2025-06-16T00:00:00Z".parse().unwrap());
        assert!(now() < starts);
        assert!(cleaning_starts("2024-06-13", PERIOD).unwrap() <= now());
        assert!(cleaning_starts("not a date", PERIOD).is_err());
        // an absurd period does not overflow
        assert!(cleaning_starts("2024-06-13", Duration::MAX).is_err());
    }

    #[test]
    fn pods_refer_to_secrets_in_many_places() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {
                "imagePullSecrets": [{"name": "pull"}],
                "containers": [{"name": "c", "env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "env", "key": "k"}}}]}],
                "initContainers": [{"name": "i", "envFrom": [{"secretRef": {"name": "env-from"}}]}],
                "volumes": [
                    {"name": "v1", "secret": {"secretName": "volume"}},
                    {"name": "v2", "projected": {"sources": [{"secret": {"name": "projected"}}]}},
                    {"name": "v3", "csi": {"driver": "d", "nodePublishSecretRef": {"name": "csi"}}},
                ],
            },
        }))
        .unwrap();
        let mut names = HashSet::new();
        pod_secret_names(pod.spec.as_ref().unwrap(), &mut names);
        let mut names: Vec<_> = names.into_iter().collect();
        names.sort();
        assert_eq!(
            names,
            ["csi", "env", "env-from", "projected", "pull", "volume"]
        );
    }
}
