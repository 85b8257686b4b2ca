//! The in-memory backend, for unit tests: a multi-version map with the same revision,
//! history and compaction semantics as etcd, lost when the process ends.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use bytes::Bytes;

use super::local_watch::{CommittedBatch, History, HistoryPage, WatchHub};
use super::{
    CasOutcome, KeyValue, RangePage, Result, Revision, Storage, StorageError, WatchEvent,
    WatchOptions, WatchStream, prefix_end,
};

/// One write in the history: a version of a key or its deletion.
#[derive(Clone, Debug)]
struct Record {
    key: String,
    value: Bytes,
    create_revision: Revision,
    prev_revision: Revision,
    deleted: bool,
}

#[derive(Default)]
struct State {
    revision: Revision,
    compacted: Revision,
    /// Every write still in history, by revision.
    log: BTreeMap<Revision, Record>,
    /// The revisions of each key's writes still in history, ascending.
    keys: BTreeMap<String, Vec<Revision>>,
}

impl State {
    fn check_revision(&self, revision: Option<Revision>) -> Result<Revision> {
        match revision {
            None => Ok(self.revision),
            Some(r) if r < self.compacted => Err(StorageError::Compacted {
                requested: r,
                compacted: self.compacted,
            }),
            Some(r) if r > self.revision => Err(StorageError::FutureRevision {
                requested: r,
                current: self.revision,
            }),
            Some(r) => Ok(r),
        }
    }

    /// The live version of `key` at `at`, with its revision.
    fn version_at(&self, key: &str, revisions: &[Revision], at: Revision) -> Option<KeyValue> {
        let index = revisions.partition_point(|r| *r <= at);
        let revision = *revisions.get(index.checked_sub(1)?)?;
        let record = self.log.get(&revision)?;
        (!record.deleted).then(|| KeyValue {
            key: key.to_owned(),
            value: record.value.clone(),
            create_revision: record.create_revision,
            mod_revision: revision,
        })
    }

    fn latest(&self, key: &str) -> Option<KeyValue> {
        self.version_at(key, self.keys.get(key)?, self.revision)
    }

    fn append(&mut self, record: Record) -> Revision {
        self.revision += 1;
        self.keys
            .entry(record.key.clone())
            .or_default()
            .push(self.revision);
        self.log.insert(self.revision, record);
        self.revision
    }

    fn event(&self, revision: Revision, record: &Record) -> WatchEvent {
        let kv = KeyValue {
            key: record.key.clone(),
            value: record.value.clone(),
            create_revision: record.create_revision,
            mod_revision: revision,
        };
        if record.deleted {
            WatchEvent::Deleted(kv)
        } else if record.create_revision == revision {
            WatchEvent::Added(kv)
        } else {
            let prev_value = self.log.get(&record.prev_revision).map(|p| p.value.clone());
            WatchEvent::Modified { kv, prev_value }
        }
    }
}

struct Shared {
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-written (each
        // write is a few infallible inserts), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl History for Shared {
    fn events_after(
        &self,
        start: &str,
        end: &str,
        after: Revision,
        max: usize,
    ) -> Result<HistoryPage> {
        let state = self.lock();
        if after < state.compacted {
            return Err(StorageError::Compacted {
                requested: after,
                compacted: state.compacted,
            });
        }
        let mut events = Vec::new();
        let mut scanned_to = state.revision;
        for (revision, record) in state.log.range(after + 1..) {
            if record.key.as_str() >= start && record.key.as_str() < end {
                events.push(state.event(*revision, record));
                if events.len() >= max {
                    scanned_to = *revision;
                    break;
                }
            }
        }
        Ok(HistoryPage {
            events,
            scanned_to,
            current: state.revision,
        })
    }
}

/// The in-memory store. Cloning shares the same data.
#[derive(Clone)]
pub struct MemoryStore {
    shared: Arc<Shared>,
    hub: WatchHub,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store at revision 0.
    pub fn new() -> Self {
        MemoryStore {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
            }),
            hub: WatchHub::new(1024),
        }
    }
}

#[async_trait]
impl Storage for MemoryStore {
    async fn get(&self, key: &str, revision: Option<Revision>) -> Result<KeyValue> {
        let state = self.shared.lock();
        let at = state.check_revision(revision)?;
        state
            .keys
            .get(key)
            .and_then(|revisions| state.version_at(key, revisions, at))
            .ok_or_else(|| StorageError::NotFound {
                key: key.to_owned(),
            })
    }

    async fn range(
        &self,
        start: &str,
        end: &str,
        revision: Option<Revision>,
        limit: usize,
    ) -> Result<RangePage> {
        let state = self.shared.lock();
        let at = state.check_revision(revision)?;
        let mut items = Vec::new();
        let mut remaining = 0;
        if start < end {
            for (key, revisions) in state.keys.range::<str, _>((
                std::ops::Bound::Included(start),
                std::ops::Bound::Excluded(end),
            )) {
                if let Some(kv) = state.version_at(key, revisions, at) {
                    if limit == 0 || items.len() < limit {
                        items.push(kv);
                    } else {
                        remaining += 1;
                    }
                }
            }
        }
        Ok(RangePage {
            items,
            revision: at,
            remaining,
        })
    }

    async fn compare_and_put(
        &self,
        key: &str,
        expected: Revision,
        value: Bytes,
    ) -> Result<CasOutcome> {
        let mut state = self.shared.lock();
        let current = state.latest(key);
        if current.as_ref().map_or(0, |kv| kv.mod_revision) != expected {
            return Ok(CasOutcome::Stale(current));
        }
        let create_revision = current
            .as_ref()
            .map_or(state.revision + 1, |kv| kv.create_revision);
        let record = Record {
            key: key.to_owned(),
            value: value.clone(),
            create_revision,
            prev_revision: expected,
            deleted: false,
        };
        let revision = state.append(record.clone());
        let event = state.event(revision, &record);
        // Publishing under the lock keeps the channel in revision order.
        self.hub.publish(CommittedBatch {
            events: vec![event],
            revision,
        });
        Ok(CasOutcome::Written(KeyValue {
            key: key.to_owned(),
            value,
            create_revision,
            mod_revision: revision,
        }))
    }

    async fn compare_and_delete(&self, key: &str, expected: Revision) -> Result<CasOutcome> {
        let mut state = self.shared.lock();
        let Some(current) = state.latest(key) else {
            return Ok(CasOutcome::Stale(None));
        };
        if current.mod_revision != expected {
            return Ok(CasOutcome::Stale(Some(current)));
        }
        let record = Record {
            key: key.to_owned(),
            value: current.value.clone(),
            create_revision: current.create_revision,
            prev_revision: current.mod_revision,
            deleted: true,
        };
        let revision = state.append(record.clone());
        let event = state.event(revision, &record);
        self.hub.publish(CommittedBatch {
            events: vec![event],
            revision,
        });
        Ok(CasOutcome::Written(KeyValue {
            mod_revision: revision,
            ..current
        }))
    }

    async fn watch_after(
        &self,
        prefix: &str,
        after: Revision,
        options: WatchOptions,
    ) -> Result<WatchStream> {
        {
            let state = self.shared.lock();
            if after < state.compacted {
                return Err(StorageError::Compacted {
                    requested: after,
                    compacted: state.compacted,
                });
            }
        }
        Ok(self.hub.watch(
            self.shared.clone(),
            prefix.to_owned(),
            prefix_end(prefix),
            after,
            options,
        ))
    }

    async fn count(&self, prefix: &str) -> Result<i64> {
        let end = prefix_end(prefix);
        Ok(self.range(prefix, &end, None, 0).await?.items.len() as i64)
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let mut state = self.shared.lock();
        let revision = revision.min(state.revision);
        if revision <= state.compacted {
            return Ok(());
        }
        let State { log, keys, .. } = &mut *state;
        keys.retain(|_, revisions| {
            // Keep the newest version at or before the compaction revision (reads at
            // later revisions may need it) unless it is a deletion.
            let keep_from = revisions.partition_point(|r| *r <= revision);
            let mut drop_until = keep_from.saturating_sub(1);
            if let Some(r) = revisions.get(drop_until)
                && *r <= revision
                && log.get(r).is_some_and(|rec| rec.deleted)
            {
                drop_until += 1;
            }
            for r in revisions.drain(..drop_until) {
                log.remove(&r);
            }
            !revisions.is_empty()
        });
        state.compacted = revision;
        Ok(())
    }

    async fn current_revision(&self) -> Result<Revision> {
        Ok(self.shared.lock().revision)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn storage_suite() {
        crate::storage::testing::run_suite(|| async { MemoryStore::new() }).await;
    }
}
