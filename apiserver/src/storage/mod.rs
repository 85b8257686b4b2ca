//! The storage layer under the registry, shaped like upstream's `storage.Interface`
//! (k8s.io/apiserver/pkg/storage/interfaces.go): a revisioned key-value store with
//! compare-and-swap writes, paged lists, watches and compaction.
//!
//! Backends implement a handful of primitives (`get`, `range`, `compare_and_put`,
//! `compare_and_delete`, `watch_after`, `count`, `compact`, `current_revision`); the
//! upstream semantics built on them (create, `guaranteed_update` with preconditions
//! and retries, delete, paged lists with continue tokens, watch from "now" with the
//! initial state) are provided methods written once here, so every backend behaves the
//! same way. The revision is the resourceVersion, as with etcd.
//!
//! Backends: [`embedded`] (one SQLite file, the default for `rkube up`), [`etcd`]
//! (etcd v3 in production) and [`memory`] (unit tests). [`open`] picks one by URL.

pub mod cacher;
mod compactor;
mod continue_token;
pub mod embedded;
pub mod etcd;
mod local_watch;
pub mod memory;
pub mod testing;

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;

pub use compactor::{DEFAULT_COMPACTION_INTERVAL, spawn_compactor};
pub use continue_token::ContinueToken;

/// A revision of the store: etcd's revision, exposed to clients as resourceVersion.
pub type Revision = i64;

/// One stored value with its revisions, like etcd's `mvccpb.KeyValue`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    /// The full key, e.g. `/registry/pods/default/web`.
    pub key: String,
    /// The serialized object.
    pub value: Bytes,
    /// Revision at which the key was (last) created.
    pub create_revision: Revision,
    /// Revision of the last write to the key; for a DELETED watch event, the deletion's.
    pub mod_revision: Revision,
}

/// Conditions a write or delete must meet, as upstream's `storage.Preconditions`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Preconditions {
    /// The object's `metadata.uid` must equal this.
    pub uid: Option<String>,
    /// The object's resourceVersion (its mod revision) must equal this.
    pub resource_version: Option<Revision>,
}

/// How to list: at which revision and how many at once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// Read at this exact revision; `None` reads the latest state.
    pub revision: Option<Revision>,
    /// At most this many items; `None` or `Some(0)` means all of them.
    pub limit: Option<usize>,
    /// The continue token of a previous page; it carries its own revision.
    pub continue_token: Option<String>,
}

/// One page of a list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListResult {
    /// The items, ordered by key.
    pub items: Vec<KeyValue>,
    /// The revision the list was read at (the list's resourceVersion).
    pub revision: Revision,
    /// Present when more items remain: pass it back to get the next page.
    pub continue_token: Option<String>,
    /// How many items remain after this page, when known (`remainingItemCount`).
    pub remaining: Option<i64>,
}

/// One page of a raw key range, the primitive lists are built on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangePage {
    /// The items, ordered by key.
    pub items: Vec<KeyValue>,
    /// The revision the range was read at.
    pub revision: Revision,
    /// How many keys in the range were not returned because of the limit.
    pub remaining: i64,
}

/// The outcome of a compare-and-swap write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CasOutcome {
    /// The write happened; for a delete, this is the last state with the deletion's
    /// revision as `mod_revision`.
    Written(KeyValue),
    /// The key's revision was not the expected one; this is its current state.
    Stale(Option<KeyValue>),
}

/// One watch event, as upstream's `watch.Event` at the storage level.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchEvent {
    /// The key was created.
    Added(KeyValue),
    /// The key was updated; `prev_value` is its previous value when still known.
    Modified {
        /// The new state.
        kv: KeyValue,
        /// The value before this write.
        prev_value: Option<Bytes>,
    },
    /// The key was deleted: the value is its last state, `mod_revision` the deletion's.
    Deleted(KeyValue),
    /// Every event up to this revision has been delivered.
    Bookmark(Revision),
}

impl WatchEvent {
    /// The revision this event happened at.
    pub fn revision(&self) -> Revision {
        match self {
            WatchEvent::Added(kv) | WatchEvent::Modified { kv, .. } | WatchEvent::Deleted(kv) => {
                kv.mod_revision
            }
            WatchEvent::Bookmark(rev) => *rev,
        }
    }

    /// The key this event is about (none for bookmarks).
    pub fn key(&self) -> Option<&str> {
        self.key_value().map(|kv| kv.key.as_str())
    }

    /// The object's state this event carries (none for bookmarks).
    pub fn key_value(&self) -> Option<&KeyValue> {
        match self {
            WatchEvent::Added(kv) | WatchEvent::Modified { kv, .. } | WatchEvent::Deleted(kv) => {
                Some(kv)
            }
            WatchEvent::Bookmark(_) => None,
        }
    }
}

/// Watch settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchOptions {
    /// Send a [`WatchEvent::Bookmark`] this often when the watch is otherwise quiet.
    pub progress_notify: Option<Duration>,
}

/// A stream of watch events. It ends after yielding an error (e.g. [`StorageError::Compacted`]).
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchEvent, StorageError>> + Send>>;

/// The function `guaranteed_update` calls with the current state (`None` when absent)
/// to compute the new value. It may be called several times when writers race.
pub type UpdateFn<'a> =
    &'a (dyn Fn(Option<&KeyValue>) -> Result<Bytes, StorageError> + Send + Sync);

/// Errors of the storage layer; the HTTP edge turns them into `metav1.Status`.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The key does not exist (at the requested revision).
    #[error("key not found: {key}")]
    NotFound {
        /// The key.
        key: String,
    },
    /// Create found the key present.
    #[error("key exists: {key}")]
    AlreadyExists {
        /// The key.
        key: String,
    },
    /// A compare-and-swap found another revision than expected.
    #[error("resource version conflicts: {key}")]
    Conflict {
        /// The key.
        key: String,
    },
    /// A precondition (uid or resourceVersion) did not hold; upstream answers 409.
    #[error("Precondition failed: {message}")]
    PreconditionFailed {
        /// The key.
        key: String,
        /// Which precondition failed, in upstream's words.
        message: String,
    },
    /// The requested revision is older than the compacted one; upstream answers 410.
    #[error("too old resource version: {requested} ({compacted})")]
    Compacted {
        /// The revision asked for.
        requested: Revision,
        /// The oldest revision still available.
        compacted: Revision,
    },
    /// The requested revision is newer than the store's; upstream answers "Too large resource version".
    #[error("Too large resource version: {requested}, current: {current}")]
    FutureRevision {
        /// The revision asked for.
        requested: Revision,
        /// The store's current revision.
        current: Revision,
    },
    /// A continue token could not be decoded; upstream answers 400.
    #[error("continue key is not valid: {0}")]
    InvalidContinue(String),
    /// A continue token's revision has been compacted; upstream answers 410 ResourceExpired.
    #[error(
        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list."
    )]
    ContinueExpired,
    /// The update function refused the update; the caller's own error is inside.
    #[error("{0}")]
    Aborted(Box<dyn std::error::Error + Send + Sync>),
    /// The store could not be reached (etcd down, connection lost).
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The store's file is damaged or is not an rkube store.
    #[error("{0}")]
    Corrupt(String),
    /// Anything else the backend reported.
    #[error("storage internal error: {0}")]
    Internal(String),
}

/// Results of the storage layer.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// A revisioned key-value store with upstream `storage.Interface` semantics.
///
/// Required methods are a backend's primitives; provided methods hold the semantics
/// shared by every backend.
#[async_trait]
pub trait Storage: Send + Sync + 'static {
    /// The value at `key`, at the latest revision or exactly at `revision`.
    async fn get(&self, key: &str, revision: Option<Revision>) -> Result<KeyValue>;

    /// Keys in `[start, end)` (byte order), at most `limit` of them (0: all), at the
    /// latest revision or exactly at `revision`.
    async fn range(
        &self,
        start: &str,
        end: &str,
        revision: Option<Revision>,
        limit: usize,
    ) -> Result<RangePage>;

    /// Writes `value` if the key's mod revision is `expected` (0: the key must be absent).
    async fn compare_and_put(
        &self,
        key: &str,
        expected: Revision,
        value: Bytes,
    ) -> Result<CasOutcome>;

    /// Deletes the key if its mod revision is `expected`.
    async fn compare_and_delete(&self, key: &str, expected: Revision) -> Result<CasOutcome>;

    /// Events for keys under `prefix` with a revision greater than `after`.
    /// Fails with [`StorageError::Compacted`] when `after` is older than the history kept.
    async fn watch_after(
        &self,
        prefix: &str,
        after: Revision,
        options: WatchOptions,
    ) -> Result<WatchStream>;

    /// How many keys exist under `prefix`.
    async fn count(&self, prefix: &str) -> Result<i64>;

    /// Drops history older than `revision`; later reads and watches before it get 410.
    async fn compact(&self, revision: Revision) -> Result<()>;

    /// The store's latest revision.
    async fn current_revision(&self) -> Result<Revision>;

    /// Creates `key`; fails with [`StorageError::AlreadyExists`] if it is present.
    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue> {
        match self.compare_and_put(key, 0, value).await? {
            CasOutcome::Written(kv) => Ok(kv),
            CasOutcome::Stale(_) => Err(StorageError::AlreadyExists {
                key: key.to_owned(),
            }),
        }
    }

    /// Lists the keys under `prefix` (which should end in `/`), paged with continue
    /// tokens that carry the list's revision, as upstream's `GetList`.
    async fn list(&self, prefix: &str, options: &ListOptions) -> Result<ListResult> {
        let end = prefix_end(prefix);
        let (start, revision) = match &options.continue_token {
            Some(token) => {
                let token = ContinueToken::decode(token)?;
                (format!("{prefix}{}", token.start), Some(token.revision))
            }
            None => (prefix.to_owned(), options.revision.filter(|r| *r > 0)),
        };
        let limit = options.limit.unwrap_or(0);
        let page = match self.range(&start, &end, revision, limit).await {
            Err(StorageError::Compacted { .. }) if options.continue_token.is_some() => {
                return Err(StorageError::ContinueExpired);
            }
            other => other?,
        };
        let continue_token = match page.items.last() {
            Some(last) if page.remaining > 0 => {
                // The next page starts just after the last key returned.
                let next = format!("{}\u{0}", &last.key[prefix.len().min(last.key.len())..]);
                Some(
                    ContinueToken {
                        revision: page.revision,
                        start: next,
                    }
                    .encode(),
                )
            }
            _ => None,
        };
        let remaining = continue_token.as_ref().map(|_| page.remaining);
        Ok(ListResult {
            items: page.items,
            revision: page.revision,
            continue_token,
            remaining,
        })
    }

    /// Reads, transforms and writes `key` with compare-and-swap, retrying when another
    /// writer got there first, as upstream's `GuaranteedUpdate`. Preconditions are
    /// checked against every state read. When `update` returns the current bytes
    /// unchanged, nothing is written and the current state is returned.
    async fn guaranteed_update(
        &self,
        key: &str,
        preconditions: &Preconditions,
        ignore_not_found: bool,
        update: UpdateFn<'_>,
    ) -> Result<KeyValue> {
        let mut current = match self.get(key, None).await {
            Ok(kv) => Some(kv),
            Err(StorageError::NotFound { .. }) => None,
            Err(e) => return Err(e),
        };
        loop {
            if current.is_none() && !ignore_not_found {
                return Err(StorageError::NotFound {
                    key: key.to_owned(),
                });
            }
            if let Some(kv) = &current {
                check_preconditions(key, preconditions, kv)?;
            }
            let new_value = update(current.as_ref())?;
            if let Some(kv) = &current
                && kv.value == new_value
            {
                return Ok(kv.clone());
            }
            let expected = current.as_ref().map_or(0, |kv| kv.mod_revision);
            match self.compare_and_put(key, expected, new_value).await? {
                CasOutcome::Written(kv) => return Ok(kv),
                CasOutcome::Stale(latest) => current = latest,
            }
        }
    }

    /// Deletes `key` if the preconditions hold, retrying on races; returns the last state
    /// with the deletion's revision.
    async fn delete(&self, key: &str, preconditions: &Preconditions) -> Result<KeyValue> {
        let mut current = self.get(key, None).await?;
        loop {
            check_preconditions(key, preconditions, &current)?;
            match self.compare_and_delete(key, current.mod_revision).await? {
                CasOutcome::Written(kv) => return Ok(kv),
                CasOutcome::Stale(Some(latest)) => current = latest,
                CasOutcome::Stale(None) => {
                    return Err(StorageError::NotFound {
                        key: key.to_owned(),
                    });
                }
            }
        }
    }

    /// Watches keys under `prefix` for changes after `after`. With `after == 0` the
    /// watch starts now and first sends an ADDED event per existing key, as upstream's
    /// etcd3 watcher does for resourceVersion 0.
    async fn watch(
        &self,
        prefix: &str,
        after: Revision,
        options: WatchOptions,
    ) -> Result<WatchStream> {
        if after != 0 {
            return self.watch_after(prefix, after, options).await;
        }
        let initial = self.range(prefix, &prefix_end(prefix), None, 0).await?;
        let rest = self.watch_after(prefix, initial.revision, options).await?;
        let added = futures::stream::iter(
            initial
                .items
                .into_iter()
                .map(|kv| Ok(WatchEvent::Added(kv))),
        );
        Ok(Box::pin(futures::StreamExt::chain(added, rest)))
    }
}

#[async_trait]
impl<S: Storage + ?Sized> Storage for Arc<S> {
    async fn get(&self, key: &str, revision: Option<Revision>) -> Result<KeyValue> {
        (**self).get(key, revision).await
    }
    async fn range(
        &self,
        start: &str,
        end: &str,
        revision: Option<Revision>,
        limit: usize,
    ) -> Result<RangePage> {
        (**self).range(start, end, revision, limit).await
    }
    async fn compare_and_put(
        &self,
        key: &str,
        expected: Revision,
        value: Bytes,
    ) -> Result<CasOutcome> {
        (**self).compare_and_put(key, expected, value).await
    }
    async fn compare_and_delete(&self, key: &str, expected: Revision) -> Result<CasOutcome> {
        (**self).compare_and_delete(key, expected).await
    }
    async fn watch_after(
        &self,
        prefix: &str,
        after: Revision,
        options: WatchOptions,
    ) -> Result<WatchStream> {
        (**self).watch_after(prefix, after, options).await
    }
    async fn count(&self, prefix: &str) -> Result<i64> {
        (**self).count(prefix).await
    }
    async fn compact(&self, revision: Revision) -> Result<()> {
        (**self).compact(revision).await
    }
    async fn current_revision(&self) -> Result<Revision> {
        (**self).current_revision().await
    }
}

/// The end of the key range holding every key that starts with `prefix` (etcd's
/// `GetPrefixRangeEnd`): the prefix with its last byte below 0xff incremented.
pub fn prefix_end(prefix: &str) -> String {
    let mut bytes = prefix.as_bytes().to_vec();
    while let Some(last) = bytes.pop() {
        // Keys are ASCII paths in practice; stay within ASCII so the bound is valid UTF-8.
        if last < 0x7f {
            bytes.push(last + 1);
            return String::from_utf8(bytes).unwrap_or_else(|_| "\u{7f}".to_owned());
        }
    }
    // Every byte was 0x7f or above: the range runs to the end of the keyspace.
    "\u{7f}".repeat(prefix.len().max(1) + 1)
}

/// Checks `preconditions` against the stored object, with upstream's messages.
pub fn check_preconditions(key: &str, preconditions: &Preconditions, kv: &KeyValue) -> Result<()> {
    if let Some(uid) = &preconditions.uid {
        let actual = object_uid(&kv.value).unwrap_or_default();
        if &actual != uid {
            return Err(StorageError::PreconditionFailed {
                key: key.to_owned(),
                message: format!("UID in precondition: {uid}, UID in object meta: {actual}"),
            });
        }
    }
    if let Some(rv) = preconditions.resource_version
        && rv != kv.mod_revision
    {
        return Err(StorageError::PreconditionFailed {
            key: key.to_owned(),
            message: format!(
                "ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                kv.mod_revision
            ),
        });
    }
    Ok(())
}

/// Reads `metadata.uid` from a stored JSON object without decoding the rest of it.
fn object_uid(value: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Object {
        metadata: Option<Metadata>,
    }
    #[derive(serde::Deserialize)]
    struct Metadata {
        uid: Option<String>,
    }
    serde_json::from_slice::<Object>(value).ok()?.metadata?.uid
}

/// Errors from [`open`].
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The URL's scheme names no backend.
    #[error(
        "unsupported storage URL {0:?}: use sqlite://<path>, etcd://host:port[,host:port], https://host:port or memory://"
    )]
    UnsupportedUrl(String),
    /// The backend could not be opened.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Opens the backend named by `url`: `sqlite://<path>` (embedded), `memory://`,
/// `etcd://h1:2379,h2:2379` or `http(s)://h1:2379,...` (etcd; TLS settings through
/// [`etcd::EtcdConfig`] when opening etcd directly).
pub async fn open(url: &str) -> Result<Arc<dyn Storage>, OpenError> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        return Ok(Arc::new(embedded::EmbeddedStore::open(
            path,
            embedded::EmbeddedConfig::default(),
        )?));
    }
    if url.starts_with("memory://") {
        return Ok(Arc::new(memory::MemoryStore::new()));
    }
    if let Some(rest) = url.strip_prefix("etcd://") {
        let endpoints = rest.split(',').map(|e| format!("http://{e}")).collect();
        let config = etcd::EtcdConfig {
            endpoints,
            ..Default::default()
        };
        return Ok(Arc::new(etcd::EtcdStore::connect(config).await?));
    }
    if url.starts_with("http://") || url.starts_with("https://") {
        let endpoints = url.split(',').map(str::to_owned).collect();
        let config = etcd::EtcdConfig {
            endpoints,
            ..Default::default()
        };
        return Ok(Arc::new(etcd::EtcdStore::connect(config).await?));
    }
    Err(OpenError::UnsupportedUrl(url.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn open_picks_the_backend_by_url() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("store.db").display());
        let store = open(&url).await.expect("embedded");
        store
            .create("/registry/a", Bytes::from_static(b"1"))
            .await
            .unwrap();
        assert!(dir.path().join("store.db").exists());
        let memory = open("memory://").await.expect("memory");
        assert_eq!(memory.current_revision().await.unwrap(), 0);
        let err = open("postgres://x").await.err().expect("unsupported");
        assert!(
            err.to_string().starts_with("unsupported storage URL"),
            "{err}"
        );
    }

    #[test]
    fn prefix_end_increments_the_last_byte() {
        assert_eq!(prefix_end("/registry/pods/"), "/registry/pods0");
        assert_eq!(prefix_end("a"), "b");
    }

    #[test]
    fn uid_precondition_reads_metadata_uid() {
        let kv = KeyValue {
            key: "/k".into(),
            value: Bytes::from_static(br#"{"metadata":{"uid":"abc"}}"#),
            create_revision: 1,
            mod_revision: 2,
        };
        let ok = Preconditions {
            uid: Some("abc".into()),
            resource_version: Some(2),
        };
        assert!(check_preconditions("/k", &ok, &kv).is_ok());
        let bad_uid = Preconditions {
            uid: Some("xyz".into()),
            resource_version: None,
        };
        let err = check_preconditions("/k", &bad_uid, &kv).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Precondition failed: UID in precondition: xyz, UID in object meta: abc"
        );
        let bad_rv = Preconditions {
            uid: None,
            resource_version: Some(1),
        };
        assert!(matches!(
            check_preconditions("/k", &bad_rv, &kv),
            Err(StorageError::PreconditionFailed { .. })
        ));
    }
}
