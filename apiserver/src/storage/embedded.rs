//! The embedded backend: one SQLite file holding an etcd-like revision log, the
//! default store of `rkube up` (kine's model, k3s's default, made faster).
//!
//! Layout: `log` holds every write still in history, keyed by revision (a deletion is a
//! tombstone row); `current` maps each live key to its latest revision, so reads at the
//! latest revision never scan history; `meta` holds the format marker, the head
//! revision and the compacted revision.
//!
//! Writes go to one writer thread that commits whatever requests are waiting in a
//! single transaction (group commit): one fsync serves many concurrent writers, as
//! etcd's batching does. The fsync is pipelined: SQLite commits to the WAL without
//! syncing (`synchronous=NORMAL`), and a syncer thread `fdatasync`s the WAL before it
//! acknowledges the batch, while the writer already commits the next one. An
//! acknowledged write therefore survives a process kill and a power cut; WAL frames are
//! checksummed, so a torn tail after a power cut is ignored on recovery. Reads use a
//! small pool of connections, each read inside one transaction so it sees one snapshot.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};

use async_trait::async_trait;
use bytes::Bytes;
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use tokio::sync::oneshot;

use super::local_watch::{CommittedBatch, History, HistoryPage, WatchHub};
use super::{
    CasOutcome, KeyValue, RangePage, Result, Revision, Storage, StorageError, WatchEvent,
    WatchOptions, WatchStream, prefix_end,
};

/// The value of the `format` row in `meta`: tells an rkube store from any other file.
const FORMAT: &str = "rkube-embedded-store/1";

const SCHEMA: &str = "
CREATE TABLE meta (name TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE log (
    revision INTEGER PRIMARY KEY,
    key BLOB NOT NULL,
    create_revision INTEGER NOT NULL,
    prev_revision INTEGER NOT NULL,
    deleted INTEGER NOT NULL,
    value BLOB NOT NULL
);
CREATE INDEX log_key_revision ON log (key, revision);
CREATE TABLE current (key BLOB PRIMARY KEY, revision INTEGER NOT NULL, create_revision INTEGER NOT NULL) WITHOUT ROWID;
";

/// How durable each commit is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// fsync every batch before acknowledging it: survives power loss. The default.
    Full,
    /// fsync at checkpoints only: survives a process kill, may lose the last
    /// acknowledged commits on power loss.
    Normal,
}

/// Settings of the embedded store.
#[derive(Clone, Debug)]
pub struct EmbeddedConfig {
    /// fsync policy.
    pub durability: Durability,
    /// Most write requests committed in one transaction.
    pub max_batch: usize,
    /// Read connections.
    pub readers: usize,
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        EmbeddedConfig {
            durability: Durability::Full,
            max_batch: 256,
            readers: 4,
        }
    }
}

/// The embedded store. Cloning shares the same file, writer and watchers.
#[derive(Clone)]
pub struct EmbeddedStore {
    readers: Arc<Readers>,
    writer: mpsc::Sender<WriteRequest>,
    hub: WatchHub,
}

fn sql_error(e: rusqlite::Error) -> StorageError {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase) | Some(rusqlite::ErrorCode::DatabaseCorrupt) => {
            StorageError::Corrupt(format!("embedded store is damaged: {e}"))
        }
        _ => StorageError::Internal(e.to_string()),
    }
}

impl EmbeddedStore {
    /// Opens (or creates) the store at `path`. A damaged file or one that is not an
    /// rkube store is refused with [`StorageError::Corrupt`], never reset.
    pub fn open(path: impl AsRef<Path>, config: EmbeddedConfig) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let lock = lock_file(&path)?;
        let writer_conn = open_connection(&path, false)?;
        init_or_check(&writer_conn, &path)?;
        // Durability::Full syncs the WAL itself (the syncer below), off the writer's path.
        writer_conn
            .execute_batch("PRAGMA synchronous = NORMAL;")
            .map_err(sql_error)?;
        // Checkpoints run on their own thread (below), so commits never wait for one.
        writer_conn
            .execute_batch("PRAGMA wal_autocheckpoint = 0; PRAGMA cache_size = -65536;")
            .map_err(sql_error)?;
        let checkpointer_conn = open_connection(&path, false)?;
        let mut readers = Vec::new();
        for _ in 0..config.readers.max(1) {
            readers.push(Mutex::new(open_connection(&path, true)?));
        }
        let readers = Arc::new(Readers {
            connections: readers,
            next: AtomicUsize::new(0),
        });
        let hub = WatchHub::new(4096);
        let (sender, receiver) = mpsc::channel();
        let acknowledger = match config.durability {
            Durability::Normal => Acknowledger::Direct(hub.clone()),
            Durability::Full => {
                let (jobs, pending) = mpsc::channel();
                let mut wal_path = path.as_os_str().to_owned();
                wal_path.push("-wal");
                let wal_path = PathBuf::from(wal_path);
                let hub = hub.clone();
                std::thread::Builder::new()
                    .name("embedded-store-syncer".into())
                    .spawn(move || run_syncer(&wal_path, pending, &hub))
                    .map_err(|e| {
                        StorageError::Internal(format!("starting the syncer thread: {e}"))
                    })?;
                Acknowledger::AfterSync(jobs)
            }
        };
        let mut writer = Writer::new(writer_conn, acknowledger, config.max_batch.max(1))?;
        let (stop_checkpoints, stopped) = mpsc::channel::<()>();
        let checkpointer = std::thread::Builder::new()
            .name("embedded-store-checkpointer".into())
            .spawn(move || run_checkpointer(checkpointer_conn, stopped))
            .map_err(|e| {
                StorageError::Internal(format!("starting the checkpointer thread: {e}"))
            })?;
        std::thread::Builder::new()
            .name("embedded-store-writer".into())
            .spawn(move || {
                writer.run(receiver);
                // Last writer gone: final checkpoint, then release the file lock.
                drop(stop_checkpoints);
                let _ = checkpointer.join();
                drop(lock);
            })
            .map_err(|e| StorageError::Internal(format!("starting the writer thread: {e}")))?;
        Ok(EmbeddedStore {
            readers,
            writer: sender,
            hub,
        })
    }

    async fn write(&self, op: WriteOp) -> Result<WriteOutcome> {
        let (reply, outcome) = oneshot::channel();
        self.writer
            .send(WriteRequest { op, reply })
            .map_err(|_| StorageError::Unavailable("embedded store writer has stopped".into()))?;
        outcome
            .await
            .map_err(|_| StorageError::Unavailable("embedded store writer has stopped".into()))?
    }

    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || f(&mut readers.get()))
            .await
            .map_err(|e| StorageError::Internal(format!("read task failed: {e}")))?
    }
}

/// Copies committed WAL frames into the database file in the background. A PASSIVE
/// checkpoint never blocks the writer or readers; the WAL file is reused from its start
/// once everything in it has been copied. On stop, a final TRUNCATE checkpoint leaves a
/// compact file behind.
fn run_checkpointer(conn: Connection, stop: mpsc::Receiver<()>) {
    let interval = std::time::Duration::from_millis(250);
    loop {
        match stop.recv_timeout(interval) {
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::warn!(error = %e, "embedded store checkpoint failed");
                }
            }
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
                return;
            }
        }
    }
}

/// Takes an exclusive lock beside the database so two processes never write one store.
fn lock_file(path: &Path) -> Result<File> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = PathBuf::from(lock_path);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| StorageError::Internal(format!("opening {}: {e}", lock_path.display())))?;
    file.try_lock().map_err(|_| {
        StorageError::Unavailable(format!(
            "embedded store {} is in use by another process",
            path.display()
        ))
    })?;
    Ok(file)
}

fn open_connection(path: &Path, read_only: bool) -> Result<Connection> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags).map_err(|e| {
        StorageError::Corrupt(format!("opening embedded store {}: {e}", path.display()))
    })?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(sql_error)?;
    Ok(conn)
}

/// Creates the schema in an empty file, or checks that an existing one is ours and sound.
fn init_or_check(conn: &Connection, path: &Path) -> Result<()> {
    let not_ours = |why: String| {
        StorageError::Corrupt(format!(
            "{} is not a usable rkube embedded store: {why}",
            path.display()
        ))
    };
    let tables: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
        .map_err(|e| not_ours(e.to_string()))?;
    if tables == 0 {
        conn.execute_batch("PRAGMA journal_mode = WAL;")
            .map_err(sql_error)?;
        conn.execute_batch(&format!("BEGIN; {SCHEMA} COMMIT;"))
            .map_err(sql_error)?;
        conn.execute(
            "INSERT INTO meta (name, value) VALUES ('format', ?1), ('revision', 0), ('compacted', 0)",
            [FORMAT],
        )
        .map_err(sql_error)?;
        return Ok(());
    }
    let format: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE name = 'format'", [], |r| {
            r.get(0)
        })
        .optional()
        .map_err(|e| not_ours(format!("no format marker ({e})")))?;
    match format.as_deref() {
        Some(FORMAT) => {}
        Some(other) => return Err(not_ours(format!("unknown format {other:?}"))),
        None => return Err(not_ours("no format marker".into())),
    }
    let check: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(|e| not_ours(e.to_string()))?;
    if check != "ok" {
        return Err(not_ours(format!("integrity check failed: {check}")));
    }
    conn.execute_batch("PRAGMA journal_mode = WAL;")
        .map_err(sql_error)?;
    Ok(())
}

fn meta(conn: &Connection, name: &str) -> rusqlite::Result<i64> {
    // every read asks for the head revision: the statement is parsed once per connection
    conn.prepare_cached("SELECT value FROM meta WHERE name = ?1")?
        .query_row([name], |r| r.get(0))
}

fn key_string(bytes: Vec<u8>) -> rusqlite::Result<String> {
    String::from_utf8(bytes).map_err(|e| rusqlite::Error::Utf8Error(0, e.utf8_error()))
}

/// The pool of read-only connections.
struct Readers {
    connections: Vec<Mutex<Connection>>,
    next: AtomicUsize,
}

impl Readers {
    fn get(&self) -> MutexGuard<'_, Connection> {
        let n = self.connections.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for i in 0..n {
            if let Ok(guard) = self.connections[(start + i) % n].try_lock() {
                return guard;
            }
        }
        // All busy: wait for our turn on one of them. A poisoned connection is still
        // sound (SQLite rolls back whatever the panicking reader had open).
        self.connections[start % n]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

/// Checks a requested revision against the snapshot's head and compacted revisions.
fn check_revision(conn: &Connection, revision: Option<Revision>) -> Result<(Revision, bool)> {
    let head = meta(conn, "revision").map_err(sql_error)?;
    match revision {
        None => Ok((head, true)),
        Some(r) => {
            let compacted = meta(conn, "compacted").map_err(sql_error)?;
            if r < compacted {
                Err(StorageError::Compacted {
                    requested: r,
                    compacted,
                })
            } else if r > head {
                Err(StorageError::FutureRevision {
                    requested: r,
                    current: head,
                })
            } else {
                Ok((r, r == head))
            }
        }
    }
}

fn get_at(conn: &mut Connection, key: &str, revision: Option<Revision>) -> Result<KeyValue> {
    let tx = conn.transaction().map_err(sql_error)?;
    let (at, latest) = check_revision(&tx, revision)?;
    let found = if latest {
        tx.prepare_cached(
            "SELECT c.create_revision, c.revision, l.value FROM current c JOIN log l ON l.revision = c.revision
             WHERE c.key = ?1",
        )
        .and_then(|mut s| {
            s.query_row([key.as_bytes()], |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, Vec<u8>>(2)?))).optional()
        })
    } else {
        tx.prepare_cached(
            "SELECT create_revision, revision, value, deleted FROM log
             WHERE key = ?1 AND revision <= ?2 ORDER BY revision DESC LIMIT 1",
        )
        .and_then(|mut s| {
            s.query_row(params![key.as_bytes(), at], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get::<_, Vec<u8>>(2)?, r.get::<_, bool>(3)?))
            })
            .optional()
        })
        .map(|row| row.filter(|r| !r.3).map(|(c, m, v, _)| (c, m, v)))
    }
    .map_err(sql_error)?;
    let (create_revision, mod_revision, value) = found.ok_or_else(|| StorageError::NotFound {
        key: key.to_owned(),
    })?;
    Ok(KeyValue {
        key: key.to_owned(),
        value: Bytes::from(value),
        create_revision,
        mod_revision,
    })
}

fn range_at(
    conn: &mut Connection,
    start: &str,
    end: &str,
    revision: Option<Revision>,
    limit: usize,
) -> Result<RangePage> {
    let tx = conn.transaction().map_err(sql_error)?;
    let (at, latest) = check_revision(&tx, revision)?;
    // Ask for one more than the limit to learn whether anything remains.
    let sql_limit = if limit == 0 { -1 } else { limit as i64 + 1 };
    let row = |r: &rusqlite::Row<'_>| {
        Ok(KeyValue {
            key: key_string(r.get(0)?)?,
            create_revision: r.get(1)?,
            mod_revision: r.get(2)?,
            value: Bytes::from(r.get::<_, Vec<u8>>(3)?),
        })
    };
    let mut items: Vec<KeyValue> = if latest {
        let mut stmt = tx
            .prepare_cached(
                "SELECT c.key, c.create_revision, c.revision, l.value FROM current c
                 JOIN log l ON l.revision = c.revision
                 WHERE c.key >= ?1 AND c.key < ?2 ORDER BY c.key LIMIT ?3",
            )
            .map_err(sql_error)?;
        stmt.query_map(params![start.as_bytes(), end.as_bytes(), sql_limit], row)
            .and_then(|rows| rows.collect())
            .map_err(sql_error)?
    } else {
        // The newest row of each key at or before `at` (SQLite returns the bare columns
        // of the row holding the MAX), keeping only live ones.
        let mut stmt = tx
            .prepare_cached(
                "SELECT key, create_revision, revision, value FROM (
                    SELECT key, create_revision, MAX(revision) AS revision, value, deleted FROM log
                    WHERE key >= ?1 AND key < ?2 AND revision <= ?3 GROUP BY key
                 ) WHERE deleted = 0 ORDER BY key LIMIT ?4",
            )
            .map_err(sql_error)?;
        stmt.query_map(
            params![start.as_bytes(), end.as_bytes(), at, sql_limit],
            row,
        )
        .and_then(|rows| rows.collect())
        .map_err(sql_error)?
    };
    let mut remaining = 0;
    if limit > 0 && items.len() > limit {
        items.truncate(limit);
        let after = items.last().map(|kv| kv.key.clone()).unwrap_or_default();
        remaining = if latest {
            tx.query_row(
                "SELECT count(*) FROM current WHERE key > ?1 AND key < ?2",
                params![after.as_bytes(), end.as_bytes()],
                |r| r.get(0),
            )
        } else {
            tx.query_row(
                "SELECT count(*) FROM (
                    SELECT MAX(revision), deleted FROM log
                    WHERE key > ?1 AND key < ?2 AND revision <= ?3 GROUP BY key
                 ) WHERE deleted = 0",
                params![after.as_bytes(), end.as_bytes(), at],
                |r| r.get(0),
            )
        }
        .map_err(sql_error)?;
    }
    Ok(RangePage {
        items,
        revision: at,
        remaining,
    })
}

impl History for Readers {
    fn events_after(
        &self,
        start: &str,
        end: &str,
        after: Revision,
        max: usize,
    ) -> Result<HistoryPage> {
        let mut conn = self.get();
        let tx = conn.transaction().map_err(sql_error)?;
        let head = meta(&tx, "revision").map_err(sql_error)?;
        let compacted = meta(&tx, "compacted").map_err(sql_error)?;
        if after < compacted {
            return Err(StorageError::Compacted {
                requested: after,
                compacted,
            });
        }
        let mut stmt = tx
            .prepare_cached(
                "SELECT l.revision, l.key, l.create_revision, l.deleted, l.value, p.value FROM log l
                 LEFT JOIN log p ON p.revision = l.prev_revision
                 WHERE l.revision > ?1 AND l.key >= ?2 AND l.key < ?3 ORDER BY l.revision LIMIT ?4",
            )
            .map_err(sql_error)?;
        let events: Vec<WatchEvent> = stmt
            .query_map(
                params![after, start.as_bytes(), end.as_bytes(), max as i64],
                |r| {
                    let revision: Revision = r.get(0)?;
                    let create_revision: Revision = r.get(2)?;
                    let deleted: bool = r.get(3)?;
                    let prev: Option<Vec<u8>> = r.get(5)?;
                    let key = key_string(r.get(1)?)?;
                    Ok(if deleted {
                        let value = Bytes::from(prev.unwrap_or_default());
                        WatchEvent::Deleted(KeyValue {
                            key,
                            value,
                            create_revision,
                            mod_revision: revision,
                        })
                    } else {
                        let kv = KeyValue {
                            key,
                            value: Bytes::from(r.get::<_, Vec<u8>>(4)?),
                            create_revision,
                            mod_revision: revision,
                        };
                        if create_revision == revision {
                            WatchEvent::Added(kv)
                        } else {
                            WatchEvent::Modified {
                                kv,
                                prev_value: prev.map(Bytes::from),
                            }
                        }
                    })
                },
            )
            .and_then(|rows| rows.collect())
            .map_err(sql_error)?;
        let scanned_to = if events.len() >= max {
            events.last().map_or(head, |e| e.revision())
        } else {
            head
        };
        Ok(HistoryPage {
            events,
            scanned_to,
            current: head,
        })
    }
}

enum WriteOp {
    Put {
        key: String,
        expected: Revision,
        value: Bytes,
    },
    Delete {
        key: String,
        expected: Revision,
    },
    Compact {
        revision: Revision,
    },
}

enum WriteOutcome {
    Cas(CasOutcome),
    Compacted,
}

struct WriteRequest {
    op: WriteOp,
    reply: oneshot::Sender<Result<WriteOutcome>>,
}

/// A committed batch's answers and events, delivered once the batch is durable.
struct Acknowledgement {
    replies: Vec<(oneshot::Sender<Result<WriteOutcome>>, Result<WriteOutcome>)>,
    events: Option<CommittedBatch>,
}

impl Acknowledgement {
    fn deliver(self, hub: &WatchHub) {
        for (reply, outcome) in self.replies {
            let _ = reply.send(outcome);
        }
        if let Some(batch) = self.events {
            hub.publish(batch);
        }
    }
}

/// Where the writer sends committed batches.
enum Acknowledger {
    /// Answer at once (Durability::Normal).
    Direct(WatchHub),
    /// Hand over to the syncer, which answers after fdatasync (Durability::Full).
    AfterSync(mpsc::Sender<Acknowledgement>),
}

/// Makes committed batches durable, then acknowledges them in commit order. One
/// `fdatasync` covers every batch waiting, so the writer never waits for the disk.
fn run_syncer(wal_path: &Path, pending: mpsc::Receiver<Acknowledgement>, hub: &WatchHub) {
    let mut wal: Option<File> = None;
    while let Ok(first) = pending.recv() {
        let mut batches = vec![first];
        while let Ok(more) = pending.try_recv() {
            batches.push(more);
        }
        let synced = match &wal {
            Some(file) => file.sync_data(),
            None => File::open(wal_path)
                .and_then(|file| file.sync_data().map(|()| wal.insert(file)).map(|_| ())),
        };
        for mut batch in batches {
            if let Err(e) = &synced {
                // The commit is visible but may not be durable: tell the writers so.
                tracing::error!(error = %e, "embedded store fsync failed");
                for (_, outcome) in &mut batch.replies {
                    *outcome = Err(StorageError::Internal(format!(
                        "fsync of the write-ahead log failed: {e}"
                    )));
                }
            }
            batch.deliver(hub);
        }
    }
}

/// The single writer: owns the read-write connection and the head revision.
struct Writer {
    conn: Connection,
    acknowledger: Acknowledger,
    max_batch: usize,
    revision: Revision,
    compacted: Revision,
}

impl Writer {
    fn new(conn: Connection, acknowledger: Acknowledger, max_batch: usize) -> Result<Self> {
        let revision = meta(&conn, "revision").map_err(sql_error)?;
        let compacted = meta(&conn, "compacted").map_err(sql_error)?;
        Ok(Writer {
            conn,
            acknowledger,
            max_batch,
            revision,
            compacted,
        })
    }

    fn run(&mut self, receiver: mpsc::Receiver<WriteRequest>) {
        while let Ok(first) = receiver.recv() {
            let mut batch = vec![first];
            while batch.len() < self.max_batch {
                match receiver.try_recv() {
                    Ok(request) => batch.push(request),
                    Err(_) => break,
                }
            }
            self.commit(batch);
        }
    }

    /// Applies a batch in one transaction, then answers and publishes. If the commit
    /// fails, every request in the batch gets the error and nothing is published.
    fn commit(&mut self, batch: Vec<WriteRequest>) {
        let start_revision = self.revision;
        let start_compacted = self.compacted;
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut events = Vec::new();
        let result = (|| -> rusqlite::Result<()> {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            for request in &batch {
                let outcome = match &request.op {
                    WriteOp::Put {
                        key,
                        expected,
                        value,
                    } => apply_put(&tx, &mut self.revision, key, *expected, value, &mut events),
                    WriteOp::Delete { key, expected } => {
                        apply_delete(&tx, &mut self.revision, key, *expected, &mut events)
                    }
                    WriteOp::Compact { revision } => {
                        apply_compact(&tx, self.revision, &mut self.compacted, *revision)
                    }
                };
                outcomes.push(outcome);
            }
            if self.revision != start_revision {
                tx.execute(
                    "UPDATE meta SET value = ?1 WHERE name = 'revision'",
                    [self.revision],
                )?;
            }
            tx.commit()
        })();
        match result {
            Ok(()) => {
                let acknowledgement = Acknowledgement {
                    replies: batch.into_iter().map(|r| r.reply).zip(outcomes).collect(),
                    events: (!events.is_empty()).then(|| CommittedBatch {
                        events,
                        revision: self.revision,
                    }),
                };
                match &self.acknowledger {
                    Acknowledger::Direct(hub) => acknowledgement.deliver(hub),
                    Acknowledger::AfterSync(syncer) => {
                        if let Err(mpsc::SendError(lost)) = syncer.send(acknowledgement) {
                            // The syncer is gone: nothing can be made durable any more.
                            for (reply, _) in lost.replies {
                                let _ = reply.send(Err(StorageError::Unavailable(
                                    "embedded store syncer has stopped".into(),
                                )));
                            }
                        }
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "embedded store commit failed");
                self.revision = start_revision;
                self.compacted = start_compacted;
                for request in batch {
                    let _ = request
                        .reply
                        .send(Err(StorageError::Internal(format!("commit failed: {e}"))));
                }
            }
        }
    }
}

/// The live state of `key` inside the writer's transaction.
fn current_of(tx: &rusqlite::Transaction<'_>, key: &str) -> rusqlite::Result<Option<KeyValue>> {
    tx.prepare_cached(
        "SELECT c.create_revision, c.revision, l.value FROM current c JOIN log l ON l.revision = c.revision
         WHERE c.key = ?1",
    )?
    .query_row([key.as_bytes()], |r| {
        Ok(KeyValue {
            key: key.to_owned(),
            create_revision: r.get(0)?,
            mod_revision: r.get(1)?,
            value: Bytes::from(r.get::<_, Vec<u8>>(2)?),
        })
    })
    .optional()
}

fn apply_put(
    tx: &rusqlite::Transaction<'_>,
    revision: &mut Revision,
    key: &str,
    expected: Revision,
    value: &Bytes,
    events: &mut Vec<WatchEvent>,
) -> Result<WriteOutcome> {
    let current = current_of(tx, key).map_err(sql_error)?;
    if current.as_ref().map_or(0, |kv| kv.mod_revision) != expected {
        return Ok(WriteOutcome::Cas(CasOutcome::Stale(current)));
    }
    let new_revision = *revision + 1;
    let create_revision = current
        .as_ref()
        .map_or(new_revision, |kv| kv.create_revision);
    tx.prepare_cached(
        "INSERT INTO log (revision, key, create_revision, prev_revision, deleted, value) VALUES (?1, ?2, ?3, ?4, 0, ?5)",
    )
    .and_then(|mut s| s.execute(params![new_revision, key.as_bytes(), create_revision, expected, value.as_ref()]))
    .and_then(|_| tx.prepare_cached(
        "INSERT INTO current (key, revision, create_revision) VALUES (?1, ?2, ?3)
         ON CONFLICT (key) DO UPDATE SET revision = excluded.revision",
    ))
    .and_then(|mut s| s.execute(params![key.as_bytes(), new_revision, create_revision]))
    .map_err(sql_error)?;
    *revision = new_revision;
    let kv = KeyValue {
        key: key.to_owned(),
        value: value.clone(),
        create_revision,
        mod_revision: new_revision,
    };
    events.push(match current {
        None => WatchEvent::Added(kv.clone()),
        Some(prev) => WatchEvent::Modified {
            kv: kv.clone(),
            prev_value: Some(prev.value),
        },
    });
    Ok(WriteOutcome::Cas(CasOutcome::Written(kv)))
}

fn apply_delete(
    tx: &rusqlite::Transaction<'_>,
    revision: &mut Revision,
    key: &str,
    expected: Revision,
    events: &mut Vec<WatchEvent>,
) -> Result<WriteOutcome> {
    let current = match current_of(tx, key).map_err(sql_error)? {
        Some(kv) if kv.mod_revision == expected => kv,
        other => return Ok(WriteOutcome::Cas(CasOutcome::Stale(other))),
    };
    let new_revision = *revision + 1;
    // The tombstone keeps no value: its previous row (kept until the tombstone itself
    // is compacted) holds the last state for DELETED events.
    tx.prepare_cached(
        "INSERT INTO log (revision, key, create_revision, prev_revision, deleted, value) VALUES (?1, ?2, ?3, ?4, 1, x'')",
    )
    .and_then(|mut s| s.execute(params![new_revision, key.as_bytes(), current.create_revision, current.mod_revision]))
    .and_then(|_| tx.prepare_cached("DELETE FROM current WHERE key = ?1"))
    .and_then(|mut s| s.execute([key.as_bytes()]))
    .map_err(sql_error)?;
    *revision = new_revision;
    let deleted = KeyValue {
        mod_revision: new_revision,
        ..current
    };
    events.push(WatchEvent::Deleted(deleted.clone()));
    Ok(WriteOutcome::Cas(CasOutcome::Written(deleted)))
}

fn apply_compact(
    tx: &rusqlite::Transaction<'_>,
    head: Revision,
    compacted: &mut Revision,
    revision: Revision,
) -> Result<WriteOutcome> {
    let revision = revision.min(head);
    if revision <= *compacted {
        return Ok(WriteOutcome::Compacted);
    }
    // Keep, per key, the newest row at or before the compaction revision (reads at
    // later revisions need it) unless it is a tombstone; drop everything older.
    tx.execute(
        "DELETE FROM log WHERE revision <= ?1 AND (deleted = 1 OR revision <
            (SELECT MAX(newer.revision) FROM log newer WHERE newer.key = log.key AND newer.revision <= ?1))",
        [revision],
    )
    .and_then(|_| tx.execute("UPDATE meta SET value = ?1 WHERE name = 'compacted'", [revision]))
    .map_err(sql_error)?;
    *compacted = revision;
    Ok(WriteOutcome::Compacted)
}

#[async_trait]
impl Storage for EmbeddedStore {
    async fn get(&self, key: &str, revision: Option<Revision>) -> Result<KeyValue> {
        let key = key.to_owned();
        self.read(move |conn| get_at(conn, &key, revision)).await
    }

    async fn range(
        &self,
        start: &str,
        end: &str,
        revision: Option<Revision>,
        limit: usize,
    ) -> Result<RangePage> {
        let (start, end) = (start.to_owned(), end.to_owned());
        self.read(move |conn| range_at(conn, &start, &end, revision, limit))
            .await
    }

    async fn compare_and_put(
        &self,
        key: &str,
        expected: Revision,
        value: Bytes,
    ) -> Result<CasOutcome> {
        match self
            .write(WriteOp::Put {
                key: key.to_owned(),
                expected,
                value,
            })
            .await?
        {
            WriteOutcome::Cas(outcome) => Ok(outcome),
            WriteOutcome::Compacted => {
                Err(StorageError::Internal("unexpected writer reply".into()))
            }
        }
    }

    async fn compare_and_delete(&self, key: &str, expected: Revision) -> Result<CasOutcome> {
        match self
            .write(WriteOp::Delete {
                key: key.to_owned(),
                expected,
            })
            .await?
        {
            WriteOutcome::Cas(outcome) => Ok(outcome),
            WriteOutcome::Compacted => {
                Err(StorageError::Internal("unexpected writer reply".into()))
            }
        }
    }

    async fn watch_after(
        &self,
        prefix: &str,
        after: Revision,
        options: WatchOptions,
    ) -> Result<WatchStream> {
        let compacted = self
            .read(|conn| meta(conn, "compacted").map_err(sql_error))
            .await?;
        if after < compacted {
            return Err(StorageError::Compacted {
                requested: after,
                compacted,
            });
        }
        Ok(self.hub.watch(
            self.readers.clone(),
            prefix.to_owned(),
            prefix_end(prefix),
            after,
            options,
        ))
    }

    async fn count(&self, prefix: &str) -> Result<i64> {
        let (start, end) = (prefix.to_owned(), prefix_end(prefix));
        self.read(move |conn| {
            conn.query_row(
                "SELECT count(*) FROM current WHERE key >= ?1 AND key < ?2",
                params![start.as_bytes(), end.as_bytes()],
                |r| r.get(0),
            )
            .map_err(sql_error)
        })
        .await
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        self.write(WriteOp::Compact { revision }).await.map(|_| ())
    }

    async fn current_revision(&self) -> Result<Revision> {
        self.read(|conn| meta(conn, "revision").map_err(sql_error))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn storage_suite() {
        let dir = tempfile::tempdir().unwrap();
        let n = AtomicUsize::new(0);
        crate::storage::testing::run_suite(|| {
            let path = dir
                .path()
                .join(format!("store-{}.db", n.fetch_add(1, Ordering::Relaxed)));
            async move { EmbeddedStore::open(path, EmbeddedConfig::default()).unwrap() }
        })
        .await;
    }

    #[tokio::test]
    async fn reopening_keeps_data_and_revision() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let written = {
            let store = EmbeddedStore::open(&path, EmbeddedConfig::default()).unwrap();
            store
                .create("/registry/a", Bytes::from_static(b"1"))
                .await
                .unwrap();
            let kv = store
                .create("/registry/b", Bytes::from_static(b"2"))
                .await
                .unwrap();
            store
                .delete("/registry/a", &Default::default())
                .await
                .unwrap();
            kv
        };
        // The writer thread releases the file when its channel closes; wait for it.
        let store = loop {
            match EmbeddedStore::open(&path, EmbeddedConfig::default()) {
                Ok(store) => break store,
                Err(StorageError::Unavailable(_)) => {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await
                }
                Err(e) => panic!("reopen: {e}"),
            }
        };
        assert_eq!(store.get("/registry/b", None).await.unwrap(), written);
        assert_eq!(store.current_revision().await.unwrap(), 3);
        assert!(matches!(
            store.get("/registry/a", None).await,
            Err(StorageError::NotFound { .. })
        ));
        let next = store
            .create("/registry/c", Bytes::from_static(b"3"))
            .await
            .unwrap();
        assert_eq!(
            next.mod_revision, 4,
            "revisions keep counting after a reopen"
        );
    }

    #[test]
    fn a_foreign_file_is_refused_not_reset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes.txt");
        let content = b"these are someone's notes, not a database".repeat(200);
        std::fs::write(&path, &content).unwrap();
        let err = EmbeddedStore::open(&path, EmbeddedConfig::default())
            .err()
            .expect("must refuse");
        assert!(matches!(err, StorageError::Corrupt(_)), "{err:?}");
        assert!(
            err.to_string()
                .contains("not a usable rkube embedded store"),
            "{err}"
        );
        assert_eq!(
            std::fs::read(&path).unwrap(),
            content,
            "the file is untouched"
        );
    }

    #[test]
    fn another_sqlite_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("other.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
            .unwrap();
        let err = EmbeddedStore::open(&path, EmbeddedConfig::default())
            .err()
            .expect("must refuse");
        assert!(err.to_string().contains("no format marker"), "{err}");
    }

    #[test]
    fn a_damaged_store_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        {
            let conn = Connection::open(&path).unwrap();
            init_or_check(&conn, &path).unwrap();
            conn.execute_batch("PRAGMA journal_mode = DELETE;").unwrap();
            for i in 0..200 {
                conn.execute(
                    "INSERT INTO log VALUES (?1, ?2, ?1, 0, 0, ?3)",
                    params![i + 1, format!("/k/{i}").into_bytes(), vec![7u8; 2000]],
                )
                .unwrap();
            }
        }
        // Overwrite a stretch in the middle of the file with garbage.
        let mut bytes = std::fs::read(&path).unwrap();
        let mid = bytes.len() / 2;
        for b in &mut bytes[mid..mid + 8192] {
            *b = 0xAB;
        }
        std::fs::write(&path, &bytes).unwrap();
        let err = EmbeddedStore::open(&path, EmbeddedConfig::default())
            .err()
            .expect("must refuse");
        assert!(matches!(err, StorageError::Corrupt(_)), "{err:?}");
    }

    #[test]
    fn a_second_process_cannot_open_a_store_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let _first = EmbeddedStore::open(&path, EmbeddedConfig::default()).unwrap();
        let err = EmbeddedStore::open(&path, EmbeddedConfig::default())
            .err()
            .expect("must refuse");
        assert!(err.to_string().contains("in use"), "{err}");
    }
}
