//! Lease-based leader election compatible with client-go's `leaderelection` and
//! `resourcelock.LeaseLock`: candidates compete for one `coordination.k8s.io/v1` Lease;
//! the holder renews it every `retry_period` and loses leadership when it cannot renew
//! within `renew_deadline`; a candidate takes the lease once it has seen it unchanged
//! for `lease_duration` (by its own clock, as client-go's `observedTime`), or at once
//! when the holder released it on a clean stop.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::PostParams;

/// What an elector competes for and how.
#[derive(Clone, Debug)]
pub struct Config {
    /// The Lease's namespace (kube-system).
    pub namespace: String,
    /// The Lease's name (`kube-scheduler`, `kube-controller-manager`).
    pub name: String,
    /// This candidate's identity (upstream: `<hostname>_<uuid>`).
    pub identity: String,
    /// How long a lease is valid without renewal (15 s).
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew (10 s).
    pub renew_deadline: Duration,
    /// How often to try (2 s).
    pub retry_period: Duration,
}

/// The elector.
pub struct LeaderElector {
    api: kube::Api<Lease>,
    config: Config,
    /// The lease as last seen, and when it was first seen so (client-go's
    /// `observedRecord` and `observedTime`).
    observed: Option<(LeaseSpec, Instant)>,
}

/// Leadership ended.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("leaderelection lost")]
pub struct Lost;

fn now() -> MicroTime {
    MicroTime(jiff::Timestamp::now())
}

impl LeaderElector {
    /// An elector using `client`.
    pub fn new(client: kube::Client, config: Config) -> LeaderElector {
        LeaderElector {
            api: kube::Api::namespaced(client, &config.namespace),
            config,
            observed: None,
        }
    }

    /// The identity.
    pub fn identity(&self) -> &str {
        &self.config.identity
    }

    fn observe(&mut self, spec: &LeaseSpec) -> Instant {
        match &self.observed {
            Some((seen, at)) if seen == spec => *at,
            _ => {
                let at = Instant::now();
                self.observed = Some((spec.clone(), at));
                at
            }
        }
    }

    /// One attempt (client-go's `tryAcquireOrRenew`): true when this candidate holds the
    /// lease afterwards.
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let me = self.config.identity.clone();
        let duration_seconds = i32::try_from(self.config.lease_duration.as_secs()).unwrap_or(15);
        let Some(lease) = self.api.get_opt(&self.config.name).await? else {
            let spec = LeaseSpec {
                holder_identity: Some(me),
                lease_duration_seconds: Some(duration_seconds),
                acquire_time: Some(now()),
                renew_time: Some(now()),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            };
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(spec.clone()),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(created) => {
                    self.observe(&created.spec.unwrap_or(spec));
                    Ok(true)
                }
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        let old = lease.spec.clone().unwrap_or_default();
        let observed_at = self.observe(&old);
        let holder = old.holder_identity.clone().unwrap_or_default();
        let valid_for = Duration::from_secs(
            u64::try_from(old.lease_duration_seconds.unwrap_or(0)).unwrap_or(0),
        );
        let expired = observed_at + valid_for <= Instant::now();
        if !holder.is_empty() && holder != me && !expired {
            return Ok(false);
        }
        let leading = holder == me;
        let spec = LeaseSpec {
            holder_identity: Some(me),
            lease_duration_seconds: Some(duration_seconds),
            acquire_time: if leading {
                old.acquire_time.clone()
            } else {
                Some(now())
            },
            renew_time: Some(now()),
            lease_transitions: Some(if leading {
                old.lease_transitions.unwrap_or(0)
            } else {
                old.lease_transitions.unwrap_or(0) + 1
            }),
            ..old
        };
        let mut updated = lease;
        updated.spec = Some(spec);
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &updated)
            .await
        {
            Ok(written) => {
                if let Some(spec) = written.spec {
                    self.observe(&spec);
                }
                Ok(true)
            }
            // someone else wrote it first
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Waits until this candidate holds the lease.
    pub async fn acquire(&mut self) {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => {
                    tracing::info!(lease = %format!("{}/{}", self.config.namespace, self.config.name), identity = %self.config.identity, "successfully acquired lease");
                    return;
                }
                Ok(false) => {}
                Err(e) => tracing::info!(error = %e, "error retrieving resource lock"),
            }
            tokio::time::sleep(jittered(self.config.retry_period)).await;
        }
    }

    /// Renews every `retry_period`; returns [`Lost`] once renewing failed for
    /// `renew_deadline`.
    pub async fn keep_renewing(&mut self) -> Lost {
        let mut last_renewed = Instant::now();
        loop {
            tokio::time::sleep(self.config.retry_period).await;
            // a renewal hanging past the deadline must not let this replica lead on
            // while another takes the lease (client-go bounds it the same way)
            let left = self
                .config
                .renew_deadline
                .saturating_sub(last_renewed.elapsed());
            match tokio::time::timeout(left, self.try_acquire_or_renew()).await {
                Ok(Ok(true)) => last_renewed = Instant::now(),
                Ok(Ok(false)) => {
                    tracing::warn!("lease taken by another candidate");
                    return Lost;
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "failed to renew lease"),
                Err(_) => tracing::warn!("renewing the lease timed out"),
            }
            if last_renewed.elapsed() >= self.config.renew_deadline {
                tracing::warn!("failed to renew lease within the renew deadline");
                return Lost;
            }
        }
    }

    /// Gives the lease up so a standby takes over at once (client-go's
    /// `ReleaseOnCancel`).
    pub async fn release(&mut self) {
        let Ok(Some(lease)) = self.api.get_opt(&self.config.name).await else {
            return;
        };
        let old = lease.spec.clone().unwrap_or_default();
        if old.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return;
        }
        let mut released = lease;
        released.spec = Some(LeaseSpec {
            holder_identity: Some(String::new()),
            lease_duration_seconds: Some(1),
            acquire_time: Some(now()),
            renew_time: Some(now()),
            ..old
        });
        if let Err(e) = self
            .api
            .replace(&self.config.name, &PostParams::default(), &released)
            .await
        {
            tracing::info!(error = %e, "failed to release lease");
        }
    }

    /// Runs `lead` while this candidate leads: waits for the lease, then runs `lead`
    /// beside the renewal until `shutdown` (releasing the lease; Ok) or the lease is
    /// lost (Err: upstream's components exit then).
    pub async fn run<L, S>(mut self, lead: L, shutdown: S) -> Result<(), Lost>
    where
        L: std::future::Future<Output = ()>,
        S: std::future::Future<Output = ()>,
    {
        tokio::pin!(shutdown);
        tokio::select! {
            () = self.acquire() => {}
            () = &mut shutdown => return Ok(()),
        }
        tokio::pin!(lead);
        let result = {
            let renewing = self.keep_renewing();
            tokio::pin!(renewing);
            tokio::select! {
                lost = &mut renewing => Err(lost),
                () = &mut lead => Ok(()),
                () = &mut shutdown => Ok(()),
            }
        };
        if result.is_ok() {
            self.release().await;
        }
        result
    }
}

/// client-go's `wait.Jitter(retryPeriod, 1.2)`: up to 120% later, so candidates spread.
fn jittered(period: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    period + period.mul_f64(f64::from(nanos % 1000) / 1000.0 * 1.2)
}
