//! Crash safety of the embedded store: a process writing with many concurrent writers
//! is SIGKILLed mid-loop; reopening the file must show every write it acknowledged.
//!
//! The test re-runs its own binary as the writer (selected by an environment variable),
//! so the kill hits a real separate process holding the store open.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use apiserver::storage::Storage;
use apiserver::storage::embedded::{EmbeddedConfig, EmbeddedStore};

const WRITER_ENV: &str = "RKUBE_DURABILITY_WRITER_STORE";
const TEST_NAME: &str = "acknowledged_writes_survive_sigkill";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill() {
    if let Ok(path) = std::env::var(WRITER_ENV) {
        return run_writer(&path).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
        .env(WRITER_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the writer process");
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut acknowledged = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(key) = line.strip_prefix("ack ") {
                acknowledged.push(key.to_owned());
            }
        }
        acknowledged
    });
    // Let it write for a while, then kill it without warning.
    let started = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("SIGKILL the writer");
    let status = child.wait().unwrap();
    assert!(!status.success(), "the writer was killed, not finished");
    let acknowledged = reader.join().unwrap();
    assert!(
        acknowledged.len() > 50,
        "the writer made progress in {:?}: {}",
        started.elapsed(),
        acknowledged.len()
    );

    let store =
        EmbeddedStore::open(&path, EmbeddedConfig::default()).expect("reopen after the crash");
    for key in &acknowledged {
        let kv = store
            .get(key, None)
            .await
            .unwrap_or_else(|e| panic!("acknowledged {key} lost: {e}"));
        assert_eq!(kv.value, format!("value of {key}").into_bytes());
    }
    eprintln!(
        "{} acknowledged writes all present after SIGKILL",
        acknowledged.len()
    );
}

/// The child: 16 concurrent writers creating keys forever, printing each acknowledgement.
async fn run_writer(path: &str) {
    let store = EmbeddedStore::open(path, EmbeddedConfig::default()).expect("open store");
    let mut tasks = Vec::new();
    for w in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0.. {
                let key = format!("/registry/durability/w{w}-{i}");
                store
                    .create(&key, format!("value of {key}").into())
                    .await
                    .expect("create");
                // One write per line, flushed before the next write starts.
                println!("ack {key}");
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
}
