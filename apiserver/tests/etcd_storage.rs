//! The storage suite against real etcd (Debian's `etcd-server`), started by the test.

use std::time::Duration;

use apiserver::storage::etcd::{EtcdConfig, EtcdStore};
use apiserver::storage::testing::etcd_cluster::EtcdCluster;
use apiserver::storage::testing::run_suite;
use apiserver::storage::{Storage, WatchOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn storage_suite_on_etcd() {
    let cluster = EtcdCluster::start(1).await.expect("start etcd");
    let config = EtcdConfig {
        endpoints: cluster.endpoints(),
        ..Default::default()
    };
    let store = EtcdStore::connect(config).await.expect("connect");
    run_suite(|| {
        let store = store.clone();
        async move { store }
    })
    .await;
}

/// A watch on a member that restarts resumes from its last revision without losing
/// or repeating an event.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_resumes_after_the_member_restarts() {
    let mut cluster = EtcdCluster::start(1).await.expect("start etcd");
    let config = EtcdConfig {
        endpoints: cluster.endpoints(),
        ..Default::default()
    };
    let store = EtcdStore::connect(config).await.expect("connect");
    let start = store.current_revision().await.unwrap();
    let mut watch = store
        .watch("/registry/restart/", start, WatchOptions::default())
        .await
        .unwrap();
    let mut revisions = Vec::new();
    for i in 0..5 {
        revisions.push(
            store
                .create(&format!("/registry/restart/{i}"), "x".into())
                .await
                .unwrap()
                .mod_revision,
        );
    }
    cluster.kill(0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.restart(0).await.expect("restart");
    for i in 5..10 {
        let kv = loop {
            match store
                .create(&format!("/registry/restart/{i}"), "x".into())
                .await
            {
                Ok(kv) => break kv,
                Err(e) => {
                    eprintln!("retrying create after restart: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        revisions.push(kv.mod_revision);
    }
    for expected in revisions {
        let event = apiserver::storage::testing::next_event(&mut watch)
            .await
            .expect("event");
        assert_eq!(event.revision(), expected);
    }
}

/// etcd serving HTTPS with client-certificate authentication, as production clusters
/// run: the store connects with `--etcd-cafile/--etcd-certfile/--etcd-keyfile`, and a
/// client without a certificate is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_client_certificates() {
    let cluster = EtcdCluster::start_tls(1)
        .await
        .expect("start etcd with TLS");
    let tls = cluster.tls().expect("tls files").clone();
    assert!(cluster.endpoints()[0].starts_with("https://"));
    let config = EtcdConfig {
        endpoints: cluster.endpoints(),
        ca_file: Some(tls.ca.clone()),
        cert_file: Some(tls.client_cert.clone()),
        key_file: Some(tls.client_key.clone()),
        ..Default::default()
    };
    let store = EtcdStore::connect(config)
        .await
        .expect("connect with client certificate");
    let kv = store
        .create("/registry/tls/a", "x".into())
        .await
        .expect("create over TLS");
    assert_eq!(store.get("/registry/tls/a", None).await.unwrap(), kv);

    // Same CA, no client certificate: etcd refuses the request.
    let anonymous = EtcdConfig {
        endpoints: cluster.endpoints(),
        ca_file: Some(tls.ca.clone()),
        request_timeout: Duration::from_secs(3),
        ..Default::default()
    };
    let refused = match EtcdStore::connect(anonymous).await {
        Err(_) => true,
        Ok(store) => store.get("/registry/tls/a", None).await.is_err(),
    };
    assert!(refused, "a client without a certificate must be refused");
}

/// `--storage-url etcd://host:port,host:port` reaches etcd through `storage::open`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_connects_to_etcd_by_url() {
    let cluster = EtcdCluster::start(1).await.expect("start etcd");
    let hosts: Vec<String> = cluster
        .endpoints()
        .iter()
        .map(|e| e.trim_start_matches("http://").to_owned())
        .collect();
    let store = apiserver::storage::open(&format!("etcd://{}", hosts.join(",")))
        .await
        .expect("open etcd://");
    let kv = store.create("/registry/url/a", "x".into()).await.unwrap();
    assert_eq!(store.get("/registry/url/a", None).await.unwrap(), kv);
}
