//! Kills the leader of a 3-member etcd cluster during a write loop: every write the
//! store acknowledged must be there afterwards, and a watch started before the kill
//! must have delivered each of them exactly once, in order.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use apiserver::storage::etcd::{EtcdConfig, EtcdStore};
use apiserver::storage::testing::etcd_cluster::EtcdCluster;
use apiserver::storage::testing::next_event;
use apiserver::storage::{ListOptions, Storage, StorageError, WatchEvent, WatchOptions};

const PREFIX: &str = "/registry/failover/";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_the_leader_being_killed() {
    let mut cluster = EtcdCluster::start(3)
        .await
        .expect("start a 3-member etcd cluster");
    let config = EtcdConfig {
        endpoints: cluster.endpoints(),
        request_timeout: Duration::from_secs(3),
        dial_timeout: Duration::from_secs(2),
        ..Default::default()
    };
    let store = Arc::new(EtcdStore::connect(config).await.expect("connect"));
    let start = store.current_revision().await.unwrap();
    let mut watch = store
        .watch(PREFIX, start, WatchOptions::default())
        .await
        .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (store, stop) = (store.clone(), stop.clone());
        tokio::spawn(async move {
            let mut acknowledged = BTreeSet::new();
            let mut failures = 0;
            let mut i = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("{PREFIX}{i:06}");
                match store.create(&key, format!("value-{i}").into()).await {
                    Ok(_) => {
                        acknowledged.insert(key);
                        i += 1;
                    }
                    // An earlier attempt whose answer was lost did land: the write exists.
                    Err(StorageError::AlreadyExists { .. }) => i += 1,
                    Err(_) => {
                        failures += 1;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
            (acknowledged, failures)
        })
    };

    tokio::time::sleep(Duration::from_secs(2)).await;
    let leader = cluster.leader().await.expect("find the leader");
    cluster.kill(leader);
    tokio::time::sleep(Duration::from_secs(4)).await;
    cluster
        .restart(leader)
        .await
        .expect("restart the old leader");
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let (acknowledged, failures) = writer.await.unwrap();
    eprintln!(
        "{} writes acknowledged, {failures} failed attempts during the failover",
        acknowledged.len()
    );
    assert!(acknowledged.len() > 20, "the write loop made progress");

    let listed = store
        .list(PREFIX, &ListOptions::default())
        .await
        .expect("list after failover");
    let present: BTreeSet<String> = listed.items.iter().map(|kv| kv.key.clone()).collect();
    let lost: Vec<_> = acknowledged.difference(&present).collect();
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");

    // The watch saw every key that exists, once each, in revision order.
    let mut seen = BTreeSet::new();
    let mut last_revision = start;
    while seen.len() < present.len() {
        match next_event(&mut watch)
            .await
            .expect("watch resumed after the failover")
        {
            WatchEvent::Added(kv) => {
                assert!(kv.mod_revision > last_revision, "events in revision order");
                last_revision = kv.mod_revision;
                assert!(seen.insert(kv.key.clone()), "{} delivered twice", kv.key);
            }
            WatchEvent::Bookmark(_) => {}
            other => panic!("unexpected event {other:?}"),
        }
    }
    assert_eq!(seen, present);
}
