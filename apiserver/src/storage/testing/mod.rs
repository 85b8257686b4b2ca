//! The storage conformance suite, generic over `S: Storage` and run against every
//! backend (as upstream's k8s.io/apiserver/pkg/storage/testing/store_tests.go):
//! CRUD, compare-and-swap conflicts, preconditions, paging, watch ordering, watch from
//! an old revision, 410 after compaction, and concurrent writers with no lost update.
//!
//! Each case works under its own key prefix, so one store (e.g. one etcd) can run them
//! all; compaction only ever drops revisions older than the case's own writes.
//!
//! [`etcd_cluster`] starts real etcd members for the etcd runs and the benchmarks.

pub mod etcd_cluster;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;

use super::{
    CasOutcome, ContinueToken, KeyValue, ListOptions, Preconditions, Storage, StorageError,
    WatchEvent, WatchOptions, WatchStream,
};

static NEXT_PREFIX: AtomicUsize = AtomicUsize::new(0);

fn fresh_prefix(case: &str) -> String {
    let n = NEXT_PREFIX.fetch_add(1, Ordering::Relaxed);
    format!("/registry/suite-{}-{n}/{case}/", std::process::id())
}

fn object(name: &str, uid: &str, n: u64) -> Bytes {
    Bytes::from(format!(
        r#"{{"metadata":{{"name":"{name}","uid":"{uid}"}},"n":{n}}}"#
    ))
}

fn counter_of(kv: &KeyValue) -> u64 {
    serde_json::from_slice::<serde_json::Value>(&kv.value)
        .ok()
        .and_then(|v| v["n"].as_u64())
        .unwrap_or(0)
}

/// Waits for the next watch event, failing the test after a few seconds of silence.
pub async fn next_event(stream: &mut WatchStream) -> Result<WatchEvent, StorageError> {
    match tokio::time::timeout(Duration::from_secs(10), stream.next()).await {
        Ok(Some(item)) => item,
        Ok(None) => panic!("watch stream ended"),
        Err(_) => panic!("no watch event within 10s"),
    }
}

/// The next event that is not a bookmark.
async fn next_change(stream: &mut WatchStream) -> Result<WatchEvent, StorageError> {
    loop {
        match next_event(stream).await {
            Ok(WatchEvent::Bookmark(_)) => continue,
            other => return other,
        }
    }
}

/// Runs every case of the suite; `make` builds a store (a fresh one or a shared one).
pub async fn run_suite<S, F, Fut>(make: F)
where
    S: Storage,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    crud(&make().await).await;
    get_at_old_and_future_revisions(&make().await).await;
    compare_and_swap_conflicts(&make().await).await;
    preconditions(&make().await).await;
    unchanged_update_writes_nothing(&make().await).await;
    update_ignoring_not_found_creates(&make().await).await;
    paging_is_consistent(&make().await).await;
    count(&make().await).await;
    watch_delivers_in_order(&make().await).await;
    watch_from_old_revision(&make().await).await;
    watch_from_zero_sends_initial_state(&make().await).await;
    watch_sends_bookmarks(&make().await).await;
    slow_watcher_misses_nothing(&make().await).await;
    compaction_expires_old_revisions(&make().await).await;
    concurrent_writers_lose_no_update(Arc::new(make().await)).await;
}

/// Create, get, update, delete, with upstream's error for each misuse.
pub async fn crud<S: Storage>(store: &S) {
    let p = fresh_prefix("crud");
    let key = format!("{p}web");
    let created = store
        .create(&key, object("web", "u1", 1))
        .await
        .expect("create");
    assert_eq!(created.create_revision, created.mod_revision);
    assert_eq!(created.key, key);

    let got = store.get(&key, None).await.expect("get");
    assert_eq!(got, created);

    let err = store
        .create(&key, object("web", "u1", 9))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StorageError::AlreadyExists { .. }),
        "second create: {err:?}"
    );
    assert_eq!(
        counter_of(&store.get(&key, None).await.unwrap()),
        1,
        "failed create changed nothing"
    );

    let updated = store
        .guaranteed_update(&key, &Preconditions::default(), false, &|cur| {
            Ok(object("web", "u1", counter_of(cur.expect("present")) + 1))
        })
        .await
        .expect("update");
    assert!(updated.mod_revision > created.mod_revision);
    assert_eq!(updated.create_revision, created.create_revision);
    assert_eq!(counter_of(&updated), 2);

    let deleted = store
        .delete(&key, &Preconditions::default())
        .await
        .expect("delete");
    assert_eq!(counter_of(&deleted), 2, "delete returns the last state");
    assert!(
        deleted.mod_revision > updated.mod_revision,
        "delete carries its own revision"
    );
    assert!(matches!(
        store.get(&key, None).await,
        Err(StorageError::NotFound { .. })
    ));
    assert!(matches!(
        store.delete(&key, &Preconditions::default()).await,
        Err(StorageError::NotFound { .. })
    ));
    let err = store
        .guaranteed_update(&key, &Preconditions::default(), false, &|_| {
            Ok(object("web", "u1", 5))
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, StorageError::NotFound { .. }),
        "update of a missing key: {err:?}"
    );

    // A key can be created again after deletion, with a new create revision.
    let again = store
        .create(&key, object("web", "u2", 1))
        .await
        .expect("re-create");
    assert!(again.create_revision > deleted.mod_revision);
}

/// Reads at an exact past revision see the past; reads past the head are refused.
pub async fn get_at_old_and_future_revisions<S: Storage>(store: &S) {
    let p = fresh_prefix("revisions");
    let key = format!("{p}a");
    let v1 = store.create(&key, object("a", "u", 1)).await.unwrap();
    let v2 = store
        .guaranteed_update(&key, &Preconditions::default(), false, &|_| {
            Ok(object("a", "u", 2))
        })
        .await
        .unwrap();
    assert_eq!(
        counter_of(&store.get(&key, Some(v1.mod_revision)).await.unwrap()),
        1
    );
    assert_eq!(
        counter_of(&store.get(&key, Some(v2.mod_revision)).await.unwrap()),
        2
    );
    let head = store.current_revision().await.unwrap();
    assert!(head >= v2.mod_revision);
    let err = store.get(&key, Some(head + 1000)).await.unwrap_err();
    assert!(
        matches!(err, StorageError::FutureRevision { .. }),
        "future read: {err:?}"
    );
    // Before it was created, the key did not exist.
    assert!(matches!(
        store.get(&key, Some(v1.mod_revision - 1)).await,
        Err(StorageError::NotFound { .. })
    ));
}

/// A write expecting a stale revision is refused and told the current state.
pub async fn compare_and_swap_conflicts<S: Storage>(store: &S) {
    let p = fresh_prefix("cas");
    let key = format!("{p}a");
    let v1 = store.create(&key, object("a", "u", 1)).await.unwrap();
    let v2 = match store
        .compare_and_put(&key, v1.mod_revision, object("a", "u", 2))
        .await
        .unwrap()
    {
        CasOutcome::Written(kv) => kv,
        other => panic!("fresh CAS failed: {other:?}"),
    };
    match store
        .compare_and_put(&key, v1.mod_revision, object("a", "u", 3))
        .await
        .unwrap()
    {
        CasOutcome::Stale(Some(current)) => assert_eq!(current, v2),
        other => panic!("stale CAS succeeded: {other:?}"),
    }
    match store
        .compare_and_delete(&key, v1.mod_revision)
        .await
        .unwrap()
    {
        CasOutcome::Stale(Some(current)) => assert_eq!(current, v2),
        other => panic!("stale CAS delete succeeded: {other:?}"),
    }
    match store
        .compare_and_put(&format!("{p}missing"), 5, object("m", "u", 1))
        .await
        .unwrap()
    {
        CasOutcome::Stale(None) => {}
        other => panic!("CAS on a missing key: {other:?}"),
    }
    assert_eq!(counter_of(&store.get(&key, None).await.unwrap()), 2);
}

/// uid and resourceVersion preconditions guard updates and deletes.
pub async fn preconditions<S: Storage>(store: &S) {
    let p = fresh_prefix("preconditions");
    let key = format!("{p}a");
    let v1 = store.create(&key, object("a", "uid-1", 1)).await.unwrap();
    let wrong_uid = Preconditions {
        uid: Some("uid-2".into()),
        resource_version: None,
    };
    let err = store
        .guaranteed_update(&key, &wrong_uid, false, &|_| Ok(object("a", "uid-1", 2)))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Precondition failed: UID in precondition: uid-2, UID in object meta: uid-1"
    );
    let err = store.delete(&key, &wrong_uid).await.unwrap_err();
    assert!(matches!(err, StorageError::PreconditionFailed { .. }));

    let right = Preconditions {
        uid: Some("uid-1".into()),
        resource_version: Some(v1.mod_revision),
    };
    let v2 = store
        .guaranteed_update(&key, &right, false, &|_| Ok(object("a", "uid-1", 2)))
        .await
        .unwrap();
    // The resourceVersion precondition is now stale.
    let err = store.delete(&key, &right).await.unwrap_err();
    assert!(
        matches!(err, StorageError::PreconditionFailed { .. }),
        "stale rv delete: {err:?}"
    );
    assert_eq!(
        store.get(&key, None).await.unwrap(),
        v2,
        "refused writes change nothing"
    );
    let current = Preconditions {
        uid: Some("uid-1".into()),
        resource_version: Some(v2.mod_revision),
    };
    store
        .delete(&key, &current)
        .await
        .expect("delete with matching preconditions");

    // An update function's own error aborts the update and reaches the caller.
    let key = format!("{p}b");
    store.create(&key, object("b", "u", 1)).await.unwrap();
    let err = store
        .guaranteed_update(&key, &Preconditions::default(), false, &|_| {
            Err(StorageError::Aborted("admission said no".into()))
        })
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "admission said no");
}

/// An update that changes no byte writes nothing and keeps the revision, as upstream.
pub async fn unchanged_update_writes_nothing<S: Storage>(store: &S) {
    let p = fresh_prefix("noop");
    let key = format!("{p}a");
    let v1 = store.create(&key, object("a", "u", 1)).await.unwrap();
    let head = store.current_revision().await.unwrap();
    let same = store
        .guaranteed_update(&key, &Preconditions::default(), false, &|cur| {
            Ok(cur.unwrap().value.clone())
        })
        .await
        .unwrap();
    assert_eq!(same, v1);
    assert_eq!(
        store.current_revision().await.unwrap(),
        head,
        "no revision was spent"
    );
}

/// With `ignore_not_found`, the update function sees `None` and may create the key.
pub async fn update_ignoring_not_found_creates<S: Storage>(store: &S) {
    let p = fresh_prefix("upsert");
    let key = format!("{p}a");
    let kv = store
        .guaranteed_update(&key, &Preconditions::default(), true, &|cur| {
            assert!(cur.is_none());
            Ok(object("a", "u", 7))
        })
        .await
        .unwrap();
    assert_eq!(kv.create_revision, kv.mod_revision);
    assert_eq!(counter_of(&store.get(&key, None).await.unwrap()), 7);
}

/// Pages come from one snapshot: writes between pages do not show up.
pub async fn paging_is_consistent<S: Storage>(store: &S) {
    let p = fresh_prefix("paging");
    for i in 0..25 {
        store
            .create(
                &format!("{p}item-{i:02}"),
                object(&format!("item-{i:02}"), "u", i),
            )
            .await
            .unwrap();
    }
    // A neighbour prefix that must never leak into the list.
    store
        .create(
            &format!("{}x", p.trim_end_matches('/')),
            object("x", "u", 0),
        )
        .await
        .unwrap();

    let all = store.list(&p, &ListOptions::default()).await.unwrap();
    assert_eq!(all.items.len(), 25);
    assert!(all.continue_token.is_none() && all.remaining.is_none());
    assert!(
        all.items.windows(2).all(|w| w[0].key < w[1].key),
        "ordered by key"
    );

    let first = store
        .list(
            &p,
            &ListOptions {
                limit: Some(10),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(first.items.len(), 10);
    assert_eq!(first.remaining, Some(15));
    let token = first.continue_token.clone().expect("a continue token");
    assert_eq!(
        ContinueToken::decode(&token).unwrap().revision,
        first.revision
    );

    // Changes after the first page: a new item, a deleted item, an updated one.
    store
        .create(&format!("{p}item-99"), object("item-99", "u", 99))
        .await
        .unwrap();
    store
        .delete(&format!("{p}item-15"), &Preconditions::default())
        .await
        .unwrap();
    store
        .guaranteed_update(
            &format!("{p}item-12"),
            &Preconditions::default(),
            false,
            &|_| Ok(object("item-12", "u", 1000)),
        )
        .await
        .unwrap();

    let second = store
        .list(
            &p,
            &ListOptions {
                limit: Some(10),
                continue_token: Some(token),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        second.revision, first.revision,
        "later pages keep the first page's revision"
    );
    assert_eq!(second.items.len(), 10);
    assert_eq!(second.remaining, Some(5));
    assert!(
        second.items.iter().any(|kv| kv.key.ends_with("item-15")),
        "deleted later, still in the snapshot"
    );
    let item12 = second
        .items
        .iter()
        .find(|kv| kv.key.ends_with("item-12"))
        .unwrap();
    assert_eq!(
        counter_of(item12),
        12,
        "updated later, old value in the snapshot"
    );

    let third = store
        .list(
            &p,
            &ListOptions {
                limit: Some(10),
                continue_token: second.continue_token,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(third.items.len(), 5);
    assert!(third.continue_token.is_none() && third.remaining.is_none());
    assert!(!third.items.iter().any(|kv| kv.key.ends_with("item-99")));

    // An exact-revision list sees the old state; the latest sees the new one.
    let at_first = store
        .list(
            &p,
            &ListOptions {
                revision: Some(first.revision),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(at_first.items.len(), 25);
    let latest = store.list(&p, &ListOptions::default()).await.unwrap();
    assert_eq!(latest.items.len(), 25);
    assert!(latest.items.iter().any(|kv| kv.key.ends_with("item-99")));
    assert!(!latest.items.iter().any(|kv| kv.key.ends_with("item-15")));

    let err = store
        .list(
            &p,
            &ListOptions {
                continue_token: Some("garbage!".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StorageError::InvalidContinue(_)),
        "bad token: {err:?}"
    );
}

/// Count sees live keys under the prefix only.
pub async fn count<S: Storage>(store: &S) {
    let p = fresh_prefix("count");
    for i in 0..5 {
        store
            .create(&format!("{p}{i}"), object("c", "u", i))
            .await
            .unwrap();
    }
    store
        .delete(&format!("{p}3"), &Preconditions::default())
        .await
        .unwrap();
    assert_eq!(store.count(&p).await.unwrap(), 4);
}

/// Events arrive in revision order with the right types and payloads.
pub async fn watch_delivers_in_order<S: Storage>(store: &S) {
    let p = fresh_prefix("watch");
    let start = store.current_revision().await.unwrap();
    let mut watch = store
        .watch(&p, start, WatchOptions::default())
        .await
        .unwrap();
    let key = format!("{p}a");
    let created = store.create(&key, object("a", "u", 1)).await.unwrap();
    store
        .create(
            &format!("{}other/a", p.trim_end_matches('/')),
            object("o", "u", 1),
        )
        .await
        .unwrap();
    let updated = store
        .guaranteed_update(&key, &Preconditions::default(), false, &|_| {
            Ok(object("a", "u", 2))
        })
        .await
        .unwrap();
    let deleted = store.delete(&key, &Preconditions::default()).await.unwrap();

    assert_eq!(
        next_change(&mut watch).await.unwrap(),
        WatchEvent::Added(created.clone())
    );
    match next_change(&mut watch).await.unwrap() {
        WatchEvent::Modified { kv, prev_value } => {
            assert_eq!(kv, updated);
            assert_eq!(prev_value, Some(created.value.clone()));
        }
        other => panic!("expected MODIFIED, got {other:?}"),
    }
    match next_change(&mut watch).await.unwrap() {
        WatchEvent::Deleted(kv) => {
            assert_eq!(kv.value, updated.value, "DELETED carries the last state");
            assert_eq!(kv.mod_revision, deleted.mod_revision);
        }
        other => panic!("expected DELETED, got {other:?}"),
    }
    // Many writes arrive in order, none lost.
    let mut revisions = Vec::new();
    for i in 0..50 {
        revisions.push(
            store
                .create(&format!("{p}n-{i:02}"), object("n", "u", i))
                .await
                .unwrap()
                .mod_revision,
        );
    }
    for expected in revisions {
        assert_eq!(next_change(&mut watch).await.unwrap().revision(), expected);
    }
}

/// A watch from a past revision replays every change since, then follows live ones.
pub async fn watch_from_old_revision<S: Storage>(store: &S) {
    let p = fresh_prefix("watch-old");
    let start = store.current_revision().await.unwrap();
    let mut revisions = Vec::new();
    for i in 0..20 {
        revisions.push(
            store
                .create(&format!("{p}{i:02}"), object("n", "u", i))
                .await
                .unwrap()
                .mod_revision,
        );
    }
    let mut watch = store
        .watch(&p, start, WatchOptions::default())
        .await
        .unwrap();
    let live = store
        .create(&format!("{p}live"), object("n", "u", 99))
        .await
        .unwrap();
    revisions.push(live.mod_revision);
    for expected in &revisions {
        assert_eq!(next_change(&mut watch).await.unwrap().revision(), *expected);
    }
    // From the middle: only what came after.
    let mut watch = store
        .watch(&p, revisions[9], WatchOptions::default())
        .await
        .unwrap();
    assert_eq!(
        next_change(&mut watch).await.unwrap().revision(),
        revisions[10]
    );
}

/// Watch from 0 starts with an ADDED event for each existing key.
pub async fn watch_from_zero_sends_initial_state<S: Storage>(store: &S) {
    let p = fresh_prefix("watch-zero");
    for i in 0..3 {
        store
            .create(&format!("{p}{i}"), object("n", "u", i))
            .await
            .unwrap();
    }
    let mut watch = store.watch(&p, 0, WatchOptions::default()).await.unwrap();
    for i in 0..3 {
        match next_change(&mut watch).await.unwrap() {
            WatchEvent::Added(kv) => assert_eq!(kv.key, format!("{p}{i}")),
            other => panic!("expected initial ADDED, got {other:?}"),
        }
    }
    let live = store
        .create(&format!("{p}live"), object("n", "u", 9))
        .await
        .unwrap();
    assert_eq!(
        next_change(&mut watch).await.unwrap(),
        WatchEvent::Added(live)
    );
}

/// A watcher that reads nothing while thousands of writes land still gets every event,
/// in order, once it reads (in-process backends catch up from history when they lag).
pub async fn slow_watcher_misses_nothing<S: Storage>(store: &S) {
    let p = fresh_prefix("slow-watcher");
    let start = store.current_revision().await.unwrap();
    let mut watch = store
        .watch(&p, start, WatchOptions::default())
        .await
        .unwrap();
    let mut revisions = Vec::new();
    for i in 0..3000 {
        revisions.push(
            store
                .create(&format!("{p}{i:05}"), object("n", "u", i))
                .await
                .unwrap()
                .mod_revision,
        );
    }
    for expected in revisions {
        assert_eq!(next_change(&mut watch).await.unwrap().revision(), expected);
    }
}

/// A quiet watch asked for progress notifications sends bookmarks at a recent revision.
pub async fn watch_sends_bookmarks<S: Storage>(store: &S) {
    let p = fresh_prefix("bookmarks");
    let kv = store
        .create(&format!("{p}a"), object("n", "u", 1))
        .await
        .unwrap();
    let options = WatchOptions {
        progress_notify: Some(Duration::from_millis(200)),
    };
    let mut watch = store.watch(&p, kv.mod_revision, options).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no bookmark within 10s"
        );
        if let WatchEvent::Bookmark(rev) = next_event(&mut watch).await.unwrap() {
            assert!(
                rev >= kv.mod_revision,
                "bookmark {rev} older than the watch start {}",
                kv.mod_revision
            );
            break;
        }
    }
}

/// After compaction, reads, lists, continue tokens and watches from before it get 410.
pub async fn compaction_expires_old_revisions<S: Storage>(store: &S) {
    let p = fresh_prefix("compaction");
    let key = format!("{p}a");
    let v1 = store.create(&key, object("a", "u", 1)).await.unwrap();
    for i in 0..3 {
        store
            .create(&format!("{p}page-{i}"), object("p", "u", i))
            .await
            .unwrap();
    }
    let first = store
        .list(
            &p,
            &ListOptions {
                limit: Some(1),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let v2 = store
        .guaranteed_update(&key, &Preconditions::default(), false, &|_| {
            Ok(object("a", "u", 2))
        })
        .await
        .unwrap();
    let v3 = store
        .guaranteed_update(&key, &Preconditions::default(), false, &|_| {
            Ok(object("a", "u", 3))
        })
        .await
        .unwrap();
    store.compact(v2.mod_revision).await.expect("compact");
    // Compacting again at the same or an older revision is harmless.
    store.compact(v2.mod_revision).await.expect("compact again");

    let err = store.get(&key, Some(v1.mod_revision)).await.unwrap_err();
    assert!(
        matches!(err, StorageError::Compacted { requested, .. } if requested == v1.mod_revision),
        "read before compaction: {err:?}"
    );
    // The compaction revision itself is still readable, as are later ones.
    assert_eq!(
        counter_of(&store.get(&key, Some(v2.mod_revision)).await.unwrap()),
        2
    );
    assert_eq!(counter_of(&store.get(&key, None).await.unwrap()), 3);
    let at_v2 = store
        .list(
            &p,
            &ListOptions {
                revision: Some(v2.mod_revision),
                ..Default::default()
            },
        )
        .await;
    assert_eq!(at_v2.unwrap().items.len(), 4);

    let err = store
        .list(
            &p,
            &ListOptions {
                limit: Some(1),
                continue_token: first.continue_token,
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StorageError::ContinueExpired),
        "expired continue: {err:?}"
    );

    // A watch from before the compaction fails with 410, at once or as its first item.
    match store
        .watch_after(&p, v1.mod_revision - 1, WatchOptions::default())
        .await
    {
        Err(StorageError::Compacted { .. }) => {}
        Err(other) => panic!("unexpected watch error {other:?}"),
        Ok(mut watch) => {
            let err = next_event(&mut watch).await.unwrap_err();
            assert!(
                matches!(err, StorageError::Compacted { .. }),
                "watch from compacted: {err:?}"
            );
        }
    }
    // A watch from the compaction revision still gets everything after it.
    let mut watch = store
        .watch(&p, v2.mod_revision, WatchOptions::default())
        .await
        .unwrap();
    assert_eq!(
        next_change(&mut watch).await.unwrap().revision(),
        v3.mod_revision
    );
}

/// Many writers incrementing one counter through `guaranteed_update` lose no increment,
/// and concurrent creates all land.
pub async fn concurrent_writers_lose_no_update<S: Storage>(store: Arc<S>) {
    let p = fresh_prefix("concurrent");
    let key = format!("{p}counter");
    store.create(&key, object("counter", "u", 0)).await.unwrap();
    let writers = 16;
    let increments = 20;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        let key = key.clone();
        let p = p.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..increments {
                store
                    .guaranteed_update(&key, &Preconditions::default(), false, &|cur| {
                        Ok(object(
                            "counter",
                            "u",
                            counter_of(cur.expect("present")) + 1,
                        ))
                    })
                    .await
                    .expect("increment");
                store
                    .create(&format!("{p}w{w}-{i}"), object("w", "u", i))
                    .await
                    .expect("create");
            }
        }));
    }
    for task in tasks {
        task.await.expect("writer task");
    }
    assert_eq!(
        counter_of(&store.get(&key, None).await.unwrap()),
        (writers * increments) as u64
    );
    assert_eq!(
        store.count(&p).await.unwrap(),
        (writers * increments + 1) as i64
    );
}
