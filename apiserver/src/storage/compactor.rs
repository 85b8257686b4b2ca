//! Periodic compaction, as upstream's apiserver compactor
//! (k8s.io/apiserver/pkg/storage/etcd3/compact.go): every interval, compact history up
//! to the revision seen at the previous tick, so at least one interval of history stays
//! available to watches and paged lists.

use std::sync::Arc;
use std::time::Duration;

use super::Storage;

/// Upstream's default `--etcd-compaction-interval`.
pub const DEFAULT_COMPACTION_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// Starts the compaction loop on the current tokio runtime; abort the handle to stop it.
pub fn spawn_compactor(
    storage: Arc<dyn Storage>,
    interval: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await; // the first tick is immediate
        let mut previous = storage.current_revision().await.unwrap_or(0);
        loop {
            ticker.tick().await;
            if previous > 0
                && let Err(e) = storage.compact(previous).await
            {
                tracing::warn!(revision = previous, error = %e, "compaction failed");
            }
            match storage.current_revision().await {
                Ok(rev) => previous = rev,
                Err(e) => tracing::warn!(error = %e, "reading the revision for compaction failed"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::StorageError;
    use crate::storage::memory::MemoryStore;

    #[tokio::test]
    async fn compacts_to_the_revision_seen_one_interval_earlier() {
        let store = Arc::new(MemoryStore::new());
        let first = store.create("/registry/a", "1".into()).await.unwrap();
        let compactor = spawn_compactor(store.clone(), Duration::from_millis(100));
        // After the first interval, history up to the revision seen at start is dropped.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let second = store.create("/registry/b", "2".into()).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            match store.get("/registry/a", Some(first.mod_revision - 1)).await {
                Err(StorageError::Compacted { .. }) => break,
                _ if tokio::time::Instant::now() > deadline => {
                    panic!("history was never compacted")
                }
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        // The newer write's revision stays readable for at least one more interval.
        assert!(
            store
                .get("/registry/b", Some(second.mod_revision))
                .await
                .is_ok()
        );
        compactor.abort();
    }
}
