//! The etcd v3 backend, for production: upstream's key layout, several endpoints with
//! TLS client certificates, and watches that survive a member restart.
//!
//! Writes are etcd transactions comparing the key's mod revision (upstream's etcd3
//! store does the same). A watch whose stream breaks is re-established from the
//! revision after its last delivered event; if that revision has been compacted
//! meanwhile, the caller gets [`StorageError::Compacted`] (upstream's 410): events are
//! never skipped silently.

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, PutOptions, Txn, TxnOp,
    TxnOpResponse,
};
use tokio::sync::mpsc;

use super::{
    CasOutcome, KeyValue, RangePage, Result, Revision, Storage, StorageError, WatchEvent,
    WatchOptions, WatchStream, prefix_end,
};

/// How to reach an etcd cluster.
#[derive(Clone, Debug)]
pub struct EtcdConfig {
    /// Member URLs, e.g. `https://10.0.0.1:2379` (`--etcd-servers`).
    pub endpoints: Vec<String>,
    /// CA bundle that signed the members' serving certificates (`--etcd-cafile`).
    pub ca_file: Option<PathBuf>,
    /// Client certificate (`--etcd-certfile`).
    pub cert_file: Option<PathBuf>,
    /// Client key (`--etcd-keyfile`).
    pub key_file: Option<PathBuf>,
    /// Deadline for each request.
    pub request_timeout: Duration,
    /// Deadline to establish a connection.
    pub dial_timeout: Duration,
    /// How long a broken watch keeps trying to resume before reporting the outage.
    pub watch_resume_timeout: Duration,
}

impl Default for EtcdConfig {
    fn default() -> Self {
        EtcdConfig {
            endpoints: vec!["http://127.0.0.1:2379".into()],
            ca_file: None,
            cert_file: None,
            key_file: None,
            request_timeout: Duration::from_secs(10),
            dial_timeout: Duration::from_secs(5),
            watch_resume_timeout: Duration::from_secs(60),
        }
    }
}

/// A store over an etcd v3 cluster. Cloning shares the connection.
#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
    kv: etcd_client::KvClient,
    config: EtcdConfig,
}

/// Largest gRPC message we accept: a full list of a big collection is one range
/// response (10,000 pods are ~20 MiB), as upstream raises the client's receive limit.
const MAX_MESSAGE_BYTES: usize = i32::MAX as usize;

/// Maps an etcd error to ours, recognising etcd's compaction and future-revision errors.
fn etcd_error(e: etcd_client::Error, requested: Option<Revision>) -> StorageError {
    let text = e.to_string();
    if text.contains("required revision has been compacted") {
        return StorageError::Compacted {
            requested: requested.unwrap_or(0),
            compacted: 0,
        };
    }
    if text.contains("required revision is a future revision") {
        return StorageError::FutureRevision {
            requested: requested.unwrap_or(0),
            current: 0,
        };
    }
    // Everything else (no leader, timeouts, a member down) is transient from our side.
    StorageError::Unavailable(text)
}

fn to_kv(kv: &etcd_client::KeyValue) -> Result<KeyValue> {
    Ok(KeyValue {
        key: std::str::from_utf8(kv.key())
            .map_err(|e| StorageError::Internal(format!("non-UTF-8 key in etcd: {e}")))?
            .to_owned(),
        value: Bytes::copy_from_slice(kv.value()),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
    })
}

impl EtcdStore {
    /// Connects to the cluster; the client balances over every endpoint and routes
    /// around members that are down.
    pub async fn connect(config: EtcdConfig) -> Result<Self> {
        let mut options = ConnectOptions::new()
            .with_timeout(config.request_timeout)
            .with_connect_timeout(config.dial_timeout)
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5))
            .with_require_leader(true);
        if config.ca_file.is_some() || config.cert_file.is_some() {
            let read = |p: &PathBuf| {
                std::fs::read(p)
                    .map_err(|e| StorageError::Unavailable(format!("reading {}: {e}", p.display())))
            };
            let mut tls = etcd_client::TlsOptions::new();
            if let Some(ca) = &config.ca_file {
                tls = tls.ca_certificate(etcd_client::Certificate::from_pem(read(ca)?));
            }
            match (&config.cert_file, &config.key_file) {
                (Some(cert), Some(key)) => {
                    tls = tls.identity(etcd_client::Identity::from_pem(read(cert)?, read(key)?));
                }
                (None, None) => {}
                _ => {
                    return Err(StorageError::Unavailable(
                        "etcd client certificate and key must be given together".into(),
                    ));
                }
            }
            options = options.with_tls(tls);
        }
        let client = Client::connect(&config.endpoints, Some(options))
            .await
            .map_err(|e| etcd_error(e, None))?;
        let kv = client
            .kv_client()
            .max_decoding_message_size(MAX_MESSAGE_BYTES);
        Ok(EtcdStore { client, kv, config })
    }

    /// The underlying client, for tools that need raw etcd access (benchmarks).
    pub fn client(&self) -> &Client {
        &self.client
    }

    async fn cas(
        &self,
        key: &str,
        expected: Revision,
        then: TxnOp,
    ) -> Result<(bool, etcd_client::TxnResponse)> {
        let txn = Txn::new()
            .when([Compare::mod_revision(key, CompareOp::Equal, expected)])
            .and_then([then])
            .or_else([TxnOp::get(key, None)]);
        let response = self
            .kv
            .clone()
            .txn(txn)
            .await
            .map_err(|e| etcd_error(e, None))?;
        Ok((response.succeeded(), response))
    }
}

/// The current state from the `or_else` get of a failed compare.
fn stale_state(response: &etcd_client::TxnResponse) -> Result<CasOutcome> {
    for op in response.op_responses() {
        if let TxnOpResponse::Get(get) = op {
            return Ok(CasOutcome::Stale(get.kvs().first().map(to_kv).transpose()?));
        }
    }
    Ok(CasOutcome::Stale(None))
}

fn header_revision(response: &etcd_client::TxnResponse) -> Result<Revision> {
    response
        .header()
        .map(|h| h.revision())
        .ok_or_else(|| StorageError::Internal("etcd response without header".into()))
}

#[async_trait]
impl Storage for EtcdStore {
    async fn get(&self, key: &str, revision: Option<Revision>) -> Result<KeyValue> {
        let options = revision.map(|r| GetOptions::new().with_revision(r));
        let response = self
            .kv
            .clone()
            .get(key, options)
            .await
            .map_err(|e| etcd_error(e, revision))?;
        match response.kvs().first() {
            Some(kv) => to_kv(kv),
            None => Err(StorageError::NotFound {
                key: key.to_owned(),
            }),
        }
    }

    async fn range(
        &self,
        start: &str,
        end: &str,
        revision: Option<Revision>,
        limit: usize,
    ) -> Result<RangePage> {
        let mut options = GetOptions::new().with_range(end);
        if let Some(r) = revision {
            options = options.with_revision(r);
        }
        if limit > 0 {
            options = options.with_limit(limit as i64);
        }
        let response = self
            .kv
            .clone()
            .get(start, Some(options))
            .await
            .map_err(|e| etcd_error(e, revision))?;
        let items = response
            .kvs()
            .iter()
            .map(to_kv)
            .collect::<Result<Vec<_>>>()?;
        let at = match revision {
            Some(r) => r,
            None => response.header().map(|h| h.revision()).unwrap_or_default(),
        };
        // etcd's count is every key in the range, not just this page.
        let remaining = (response.count() - items.len() as i64).max(0);
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
        // A create needs nothing back; an update asks for the previous version only to
        // learn the key's create revision.
        let options = (expected != 0).then(|| PutOptions::new().with_prev_key());
        let put = TxnOp::put(key, value.to_vec(), options);
        let (succeeded, response) = self.cas(key, expected, put).await?;
        if !succeeded {
            return stale_state(&response);
        }
        let revision = header_revision(&response)?;
        let create_revision = response
            .op_responses()
            .into_iter()
            .find_map(|op| match op {
                TxnOpResponse::Put(put) => put.prev_key().map(|p| p.create_revision()),
                _ => None,
            })
            .unwrap_or(revision);
        Ok(CasOutcome::Written(KeyValue {
            key: key.to_owned(),
            value,
            create_revision,
            mod_revision: revision,
        }))
    }

    async fn compare_and_delete(&self, key: &str, expected: Revision) -> Result<CasOutcome> {
        let delete = TxnOp::delete(key, Some(etcd_client::DeleteOptions::new().with_prev_key()));
        let (succeeded, response) = self.cas(key, expected, delete).await?;
        if !succeeded {
            return stale_state(&response);
        }
        let revision = header_revision(&response)?;
        let previous = response.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Delete(delete) => delete.prev_kvs().first().cloned(),
            _ => None,
        });
        match previous {
            Some(prev) => Ok(CasOutcome::Written(KeyValue {
                mod_revision: revision,
                ..to_kv(&prev)?
            })),
            None => Ok(CasOutcome::Stale(None)),
        }
    }

    async fn watch_after(
        &self,
        prefix: &str,
        after: Revision,
        options: WatchOptions,
    ) -> Result<WatchStream> {
        let (tx, rx) = mpsc::channel(1024);
        let watcher = ResumingWatch {
            client: self.client.clone(),
            prefix: prefix.to_owned(),
            last: after,
            options,
            resume_timeout: self.config.watch_resume_timeout,
            tx,
        };
        tokio::spawn(watcher.run());
        Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
    }

    async fn count(&self, prefix: &str) -> Result<i64> {
        let options = GetOptions::new()
            .with_range(prefix_end(prefix))
            .with_count_only();
        let response = self
            .kv
            .clone()
            .get(prefix, Some(options))
            .await
            .map_err(|e| etcd_error(e, None))?;
        Ok(response.count())
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        match self.kv.clone().compact(revision, None).await {
            Ok(_) => Ok(()),
            // Already compacted at or past this revision: the goal is met.
            Err(e)
                if e.to_string()
                    .contains("required revision has been compacted") =>
            {
                Ok(())
            }
            Err(e) => Err(etcd_error(e, Some(revision))),
        }
    }

    async fn current_revision(&self) -> Result<Revision> {
        // A count-only read of a key nobody writes costs nothing and carries the header.
        let response = self
            .kv
            .clone()
            .get(
                "/registry/.rkube-revision-probe",
                Some(GetOptions::new().with_count_only()),
            )
            .await
            .map_err(|e| etcd_error(e, None))?;
        response
            .header()
            .map(|h| h.revision())
            .ok_or_else(|| StorageError::Internal("etcd response without header".into()))
    }
}

/// One logical watch over as many etcd watch streams as outages require.
struct ResumingWatch {
    client: Client,
    prefix: String,
    /// Every event up to this revision has been delivered.
    last: Revision,
    options: WatchOptions,
    resume_timeout: Duration,
    tx: mpsc::Sender<Result<WatchEvent>>,
}

/// Why one etcd stream ended.
enum StreamEnd {
    /// The consumer went away.
    Closed,
    /// The history we need is gone: report 410.
    Compacted(Revision),
    /// The connection broke: resume.
    Broken(String),
}

impl ResumingWatch {
    async fn run(mut self) {
        let mut broken_since: Option<tokio::time::Instant> = None;
        let mut backoff = Duration::from_millis(100);
        loop {
            let delivered_before = self.last;
            let end = self.follow_one_stream().await;
            match end {
                StreamEnd::Closed => return,
                StreamEnd::Compacted(compacted) => {
                    let _ = self
                        .tx
                        .send(Err(StorageError::Compacted {
                            requested: self.last,
                            compacted,
                        }))
                        .await;
                    return;
                }
                StreamEnd::Broken(why) => {
                    if self.last > delivered_before {
                        // Progress was made on that stream: the outage clock restarts.
                        broken_since = None;
                        backoff = Duration::from_millis(100);
                    }
                    let since = *broken_since.get_or_insert_with(tokio::time::Instant::now);
                    if since.elapsed() > self.resume_timeout {
                        let _ = self
                            .tx
                            .send(Err(StorageError::Unavailable(format!("watch lost: {why}"))))
                            .await;
                        return;
                    }
                    tracing::debug!(prefix = %self.prefix, last = self.last, %why, "etcd watch broke; resuming");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    async fn follow_one_stream(&mut self) -> StreamEnd {
        let options = etcd_client::WatchOptions::new()
            .with_range(prefix_end(&self.prefix))
            .with_start_revision(self.last + 1)
            .with_prev_key();
        let mut stream = match self
            .client
            .watch_client()
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .watch(self.prefix.as_str(), Some(options))
            .await
        {
            Ok(stream) => stream,
            Err(e) => return StreamEnd::Broken(e.to_string()),
        };
        let period = self
            .options
            .progress_notify
            .unwrap_or(Duration::from_secs(3600));
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        let mut sent_since_tick = false;
        loop {
            tokio::select! {
                message = stream.message() => {
                    let response = match message {
                        Ok(Some(response)) => response,
                        Ok(None) => return StreamEnd::Broken("watch stream closed by etcd".into()),
                        Err(e) => return StreamEnd::Broken(e.to_string()),
                    };
                    if response.compact_revision() != 0 {
                        return StreamEnd::Compacted(response.compact_revision());
                    }
                    if response.canceled() {
                        return StreamEnd::Broken(format!("watch canceled: {}", response.cancel_reason()));
                    }
                    if response.events().is_empty() {
                        // A progress notification: everything up to the header revision is delivered.
                        if !response.created()
                            && let Some(rev) = response.header().map(|h| h.revision())
                            && rev >= self.last
                        {
                            self.last = rev;
                            if self.tx.send(Ok(WatchEvent::Bookmark(rev))).await.is_err() {
                                return StreamEnd::Closed;
                            }
                        }
                        continue;
                    }
                    for event in response.events() {
                        let converted = match convert_event(event) {
                            Ok(Some(ev)) => ev,
                            Ok(None) => continue,
                            Err(e) => {
                                let _ = self.tx.send(Err(e)).await;
                                return StreamEnd::Closed;
                            }
                        };
                        if converted.revision() <= self.last {
                            continue;
                        }
                        self.last = converted.revision();
                        if self.tx.send(Ok(converted)).await.is_err() {
                            return StreamEnd::Closed;
                        }
                        sent_since_tick = true;
                    }
                }
                _ = ticker.tick(), if self.options.progress_notify.is_some() => {
                    if !sent_since_tick && let Err(e) = stream.request_progress().await {
                        return StreamEnd::Broken(e.to_string());
                    }
                    sent_since_tick = false;
                }
                _ = self.tx.closed() => return StreamEnd::Closed,
            }
        }
    }
}

fn convert_event(event: &etcd_client::Event) -> Result<Option<WatchEvent>> {
    let Some(kv) = event.kv() else {
        return Ok(None);
    };
    let current = to_kv(kv)?;
    Ok(Some(match event.event_type() {
        EventType::Put if kv.create_revision() == kv.mod_revision() => WatchEvent::Added(current),
        EventType::Put => WatchEvent::Modified {
            kv: current,
            prev_value: event.prev_kv().map(|p| Bytes::copy_from_slice(p.value())),
        },
        EventType::Delete => {
            // etcd's delete event has no value; the previous version holds the last state.
            let prev = event.prev_kv().ok_or_else(|| {
                StorageError::Internal(format!(
                    "etcd delete event for {} without its previous value",
                    current.key
                ))
            })?;
            WatchEvent::Deleted(KeyValue {
                mod_revision: kv.mod_revision(),
                ..to_kv(prev)?
            })
        }
    }))
}
