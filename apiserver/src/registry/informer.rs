//! An in-process informer: every object of one resource, kept in memory and following
//! the store through the registry's watch (client-go's shared informer, without the
//! network). The authorizers and admission plugins read their inputs (RBAC objects,
//! pods for the Node authorizer, namespaces, quotas) from these instead of reading the
//! store on every request.
//!
//! A reader sees a state that may be a few milliseconds behind the store, as upstream's
//! informer-backed authorizers and admission plugins do.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use apimachinery::resources::ResourceInfo;
use futures::StreamExt;
use serde_json::Value;
use tokio::sync::watch;

use super::{Registry, decode, meta};
use crate::storage::WatchEvent;

/// How long a broken watch waits before it is opened again.
const RESTART_DELAY: Duration = Duration::from_millis(500);

/// The objects of one resource, keyed `namespace/name` (`name` when cluster-scoped).
pub struct Informer {
    resource: &'static ResourceInfo,
    objects: RwLock<HashMap<String, Arc<Value>>>,
    /// Bumped by every change, so derived indexes know when to rebuild.
    generation: AtomicU64,
    synced: watch::Sender<bool>,
}

impl Informer {
    /// Starts following `resource` through `registry`; the task ends with the runtime.
    pub fn start(registry: Registry, resource: &'static ResourceInfo) -> Arc<Informer> {
        let informer = Arc::new(Informer {
            resource,
            objects: RwLock::new(HashMap::new()),
            generation: AtomicU64::new(0),
            synced: watch::Sender::new(false),
        });
        let weak = Arc::downgrade(&informer);
        tokio::spawn(async move {
            loop {
                let Some(informer) = weak.upgrade() else {
                    return;
                };
                if let Err(e) = informer.follow(&registry).await {
                    tracing::debug!(resource = resource.plural, error = %e, "informer watch ended");
                }
                drop(informer);
                tokio::time::sleep(RESTART_DELAY).await;
            }
        });
        informer
    }

    /// Lists then watches until the watch ends.
    async fn follow(&self, registry: &Registry) -> Result<(), String> {
        let mut stream = registry
            .watch_with_initial_events(self.resource, None, Some("0"), true)
            .await
            .map_err(|e| e.to_string())?;
        let mut initial: Option<HashMap<String, Arc<Value>>> = Some(HashMap::new());
        while let Some(event) = stream.next().await {
            let event = event.map_err(|e| e.to_string())?;
            if event.initial_events_end {
                if let Some(objects) = initial.take() {
                    *self.objects.write().unwrap_or_else(|p| p.into_inner()) = objects;
                    self.generation.fetch_add(1, Ordering::SeqCst);
                    self.synced.send_replace(true);
                }
                continue;
            }
            let (kv, deleted) = match &event.event {
                WatchEvent::Added(kv) | WatchEvent::Modified { kv, .. } => (kv, false),
                WatchEvent::Deleted(kv) => (kv, true),
                WatchEvent::Bookmark(_) => continue,
            };
            let Ok(object) = decode(kv) else { continue };
            let key = object_key(&object);
            match &mut initial {
                Some(objects) => {
                    objects.insert(key, Arc::new(object));
                }
                None => {
                    let mut objects = self.objects.write().unwrap_or_else(|p| p.into_inner());
                    if deleted {
                        objects.remove(&key);
                    } else {
                        objects.insert(key, Arc::new(object));
                    }
                    drop(objects);
                    self.generation.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
        Ok(())
    }

    /// Waits until the first full list is in, at most `timeout`; whether it is.
    pub async fn wait_synced(&self, timeout: Duration) -> bool {
        let mut synced = self.synced.subscribe();
        tokio::time::timeout(timeout, synced.wait_for(|s| *s))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// A number that changes whenever the objects do.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Every object.
    pub fn list(&self) -> Vec<Arc<Value>> {
        let objects = self.objects.read().unwrap_or_else(|p| p.into_inner());
        objects.values().cloned().collect()
    }

    /// The objects of one namespace.
    pub fn list_namespace(&self, namespace: &str) -> Vec<Arc<Value>> {
        let objects = self.objects.read().unwrap_or_else(|p| p.into_inner());
        objects
            .values()
            .filter(|o| meta::namespace(o) == namespace)
            .cloned()
            .collect()
    }

    /// One object.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<Value>> {
        let key = if namespace.is_empty() {
            name.to_owned()
        } else {
            format!("{namespace}/{name}")
        };
        let objects = self.objects.read().unwrap_or_else(|p| p.into_inner());
        objects.get(&key).cloned()
    }
}

fn object_key(object: &Value) -> String {
    let namespace = meta::namespace(object);
    if namespace.is_empty() {
        meta::name(object).to_owned()
    } else {
        format!("{namespace}/{}", meta::name(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::validation::tester::registry;
    use serde_json::json;

    #[tokio::test]
    async fn follows_creates_and_deletes() {
        let registry = registry().await;
        let configmaps = apimachinery::resources::find("", "v1", "configmaps").unwrap();
        registry
            .create(
                configmaps,
                Some("default"),
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}),
                false,
            )
            .await
            .unwrap();
        let informer = Informer::start(registry.clone(), configmaps);
        assert!(informer.wait_synced(Duration::from_secs(5)).await);
        assert!(informer.get("default", "a").is_some());
        let before = informer.generation();
        registry
            .create(
                configmaps,
                Some("default"),
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b"}}),
                false,
            )
            .await
            .unwrap();
        for _ in 0..100 {
            if informer.get("default", "b").is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(informer.get("default", "b").is_some());
        assert!(informer.generation() > before);
        assert_eq!(informer.list_namespace("default").len(), 2);
        assert!(informer.list_namespace("other").is_empty());
    }
}
