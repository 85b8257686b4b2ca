//! Shared informers (client-go's `SharedInformerFactory`): one watch per resource for
//! the whole manager, a local cache every controller reads instead of the apiserver,
//! and handlers told of each add, update (with the old object) and delete. Handlers
//! run on the watch task and must be quick: controllers only enqueue keys in them.

use std::any::{Any, TypeId};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use futures::StreamExt;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;

/// One change an informer saw.
pub enum Change<'a, K> {
    /// A new object (or one present at the first list).
    Added(&'a Arc<K>),
    /// An object changed (a relist may report an unchanged one).
    Updated {
        /// What the cache held before.
        old: &'a Arc<K>,
        /// The object now.
        new: &'a Arc<K>,
    },
    /// An object went away (its last known state).
    Deleted(&'a Arc<K>),
}

type Handler<K> = Box<dyn Fn(&Change<'_, K>) + Send + Sync>;

/// Objects by namespace ("" for cluster-scoped ones), then by name.
type Objects<K> = HashMap<String, BTreeMap<String, Arc<K>>>;

struct Inner<K> {
    objects: RwLock<Objects<K>>,
    handlers: RwLock<Vec<Handler<K>>>,
    synced: AtomicBool,
    synced_notify: tokio::sync::Notify,
    started: AtomicBool,
}

/// The shared cache and handlers of one resource.
pub struct Informer<K> {
    inner: Arc<Inner<K>>,
}

impl<K> Clone for Informer<K> {
    fn clone(&self) -> Self {
        Informer {
            inner: self.inner.clone(),
        }
    }
}

impl<K> Default for Informer<K> {
    fn default() -> Self {
        Informer {
            inner: Arc::new(Inner {
                objects: RwLock::new(HashMap::new()),
                handlers: RwLock::new(Vec::new()),
                synced: AtomicBool::new(false),
                synced_notify: tokio::sync::Notify::new(),
                started: AtomicBool::new(false),
            }),
        }
    }
}

impl<K> Informer<K>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Default,
{
    /// The cached object `namespace/name` ("" namespace for cluster-scoped ones).
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<K>> {
        let objects = self.inner.objects.read().unwrap_or_else(|e| e.into_inner());
        objects.get(namespace)?.get(name).cloned()
    }

    /// Every cached object.
    pub fn list(&self) -> Vec<Arc<K>> {
        let objects = self.inner.objects.read().unwrap_or_else(|e| e.into_inner());
        objects.values().flat_map(|m| m.values().cloned()).collect()
    }

    /// The cached objects of one namespace.
    pub fn list_namespace(&self, namespace: &str) -> Vec<Arc<K>> {
        let objects = self.inner.objects.read().unwrap_or_else(|e| e.into_inner());
        objects
            .get(namespace)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Calls `handler` for every later change; objects already cached are reported to
    /// it as added, as client-go does for a handler added after the informer started.
    pub fn add_handler(&self, handler: impl Fn(&Change<'_, K>) + Send + Sync + 'static) {
        let mut handlers = self
            .inner
            .handlers
            .write()
            .unwrap_or_else(|e| e.into_inner());
        for object in self.list() {
            handler(&Change::Added(&object));
        }
        handlers.push(Box::new(handler));
    }

    /// Whether the first full list has been cached.
    pub fn has_synced(&self) -> bool {
        self.inner.synced.load(Ordering::Acquire)
    }

    /// Waits for the first full list.
    pub async fn wait_synced(&self) {
        loop {
            let notified = self.inner.synced_notify.notified();
            if self.has_synced() {
                return;
            }
            notified.await;
        }
    }

    fn notify(&self, change: &Change<'_, K>) {
        let handlers = self
            .inner
            .handlers
            .read()
            .unwrap_or_else(|e| e.into_inner());
        for handler in handlers.iter() {
            handler(change);
        }
    }

    /// Caches `object`, telling the handlers.
    fn apply(&self, object: K) {
        let namespace = object.namespace().unwrap_or_default();
        let name = object.name_any();
        let object = Arc::new(object);
        let old = {
            let mut objects = self
                .inner
                .objects
                .write()
                .unwrap_or_else(|e| e.into_inner());
            objects
                .entry(namespace)
                .or_default()
                .insert(name, object.clone())
        };
        match old {
            Some(old) => self.notify(&Change::Updated {
                old: &old,
                new: &object,
            }),
            None => self.notify(&Change::Added(&object)),
        }
    }

    /// Forgets `namespace/name`, telling the handlers.
    fn remove(&self, namespace: &str, name: &str) {
        let old = {
            let mut objects = self
                .inner
                .objects
                .write()
                .unwrap_or_else(|e| e.into_inner());
            let Some(names) = objects.get_mut(namespace) else {
                return;
            };
            let old = names.remove(name);
            if names.is_empty() {
                objects.remove(namespace);
            }
            old
        };
        if let Some(old) = old {
            self.notify(&Change::Deleted(&old));
        }
    }

    /// Keeps the cache in step with the apiserver through `api` until dropped; a relist
    /// removes what vanished meanwhile.
    pub async fn run(self, api: kube::Api<K>, config: watcher::Config) {
        if self.inner.started.swap(true, Ordering::AcqRel) {
            return;
        }
        let mut relisted: Option<HashSet<(String, String)>> = None;
        let mut stream = watcher::watcher(api, config).default_backoff().boxed();
        while let Some(event) = stream.next().await {
            match event {
                Ok(Event::Init) => relisted = Some(HashSet::new()),
                Ok(Event::InitApply(object)) => {
                    if let Some(seen) = relisted.as_mut() {
                        seen.insert((object.namespace().unwrap_or_default(), object.name_any()));
                    }
                    self.apply(object);
                }
                Ok(Event::InitDone) => {
                    if let Some(seen) = relisted.take() {
                        let gone: Vec<(String, String)> = {
                            let objects =
                                self.inner.objects.read().unwrap_or_else(|e| e.into_inner());
                            objects
                                .iter()
                                .flat_map(|(ns, names)| {
                                    names.keys().map(move |n| (ns.clone(), n.clone()))
                                })
                                .filter(|key| !seen.contains(key))
                                .collect()
                        };
                        for (namespace, name) in gone {
                            self.remove(&namespace, &name);
                        }
                    }
                    self.inner.synced.store(true, Ordering::Release);
                    self.inner.synced_notify.notify_waiters();
                }
                Ok(Event::Apply(object)) => self.apply(object),
                Ok(Event::Delete(object)) => {
                    self.remove(&object.namespace().unwrap_or_default(), &object.name_any())
                }
                Err(e) => {
                    tracing::debug!(error = %e, kind = %K::kind(&Default::default()), "watch failed; retrying")
                }
            }
        }
    }
}

/// One informer per resource type, shared by every controller; [`Factory::start`]
/// starts the watches of those that were asked for.
#[derive(Clone)]
pub struct Factory {
    client: kube::Client,
    informers: Arc<Mutex<HashMap<TypeId, Box<dyn Any + Send + Sync>>>>,
    starters: Arc<Mutex<Vec<Starter>>>,
}

type Starter = Box<dyn FnOnce() -> tokio::task::JoinHandle<()> + Send>;

impl Factory {
    /// Informers reading through `client` (the manager's own identity).
    pub fn new(client: kube::Client) -> Factory {
        Factory {
            client,
            informers: Arc::default(),
            starters: Arc::default(),
        }
    }

    /// The informer of `K`, created on first use; its watch starts with
    /// [`Factory::start`] (or at once when the factory has started).
    pub fn informer<K>(&self) -> Informer<K>
    where
        K: Resource<DynamicType = ()>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug
            + Send
            + Sync
            + 'static,
    {
        let mut informers = self.informers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(existing) = informers.get(&TypeId::of::<K>()) {
            if let Some(informer) = existing.downcast_ref::<Informer<K>>() {
                return informer.clone();
            }
        }
        let informer = Informer::<K>::default();
        informers.insert(TypeId::of::<K>(), Box::new(informer.clone()));
        let client = self.client.clone();
        let running = informer.clone();
        self.starters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Box::new(move || {
                tokio::spawn(running.run(kube::Api::all(client), watcher::Config::default()))
            }));
        informer
    }

    /// Starts every informer asked for so far; the watches stop when the returned
    /// guard is dropped.
    pub fn start(&self) -> Watches {
        let starters: Vec<Starter> =
            std::mem::take(&mut *self.starters.lock().unwrap_or_else(|e| e.into_inner()));
        Watches(starters.into_iter().map(|start| start()).collect())
    }
}

/// The running watches; dropping this stops them.
pub struct Watches(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Watches {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// The work-queue key of a namespaced object: `namespace/name`, as client-go's
/// `MetaNamespaceKeyFunc`.
pub fn key_of<K: Resource>(object: &K) -> String {
    let meta = object.meta();
    match meta.namespace.as_deref() {
        Some(ns) if !ns.is_empty() => {
            format!("{ns}/{}", meta.name.as_deref().unwrap_or_default())
        }
        _ => meta.name.clone().unwrap_or_default(),
    }
}

/// Splits a key made by [`key_of`] into namespace and name.
pub fn split_key(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or(("", key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::ObjectMeta;

    fn pod(ns: &str, name: &str, rv: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                namespace: Some(ns.into()),
                name: Some(name.into()),
                resource_version: Some(rv.into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn handlers_see_adds_updates_with_the_old_object_and_deletes() {
        let informer = Informer::<Pod>::default();
        informer.apply(pod("a", "p", "1"));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        informer.add_handler(move |c| {
            let entry = match c {
                Change::Added(p) => {
                    format!("add {}", p.metadata.resource_version.as_deref().unwrap())
                }
                Change::Updated { old, new } => format!(
                    "update {}->{}",
                    old.metadata.resource_version.as_deref().unwrap(),
                    new.metadata.resource_version.as_deref().unwrap()
                ),
                Change::Deleted(p) => {
                    format!("delete {}", p.metadata.resource_version.as_deref().unwrap())
                }
            };
            log.lock().unwrap().push(entry);
        });
        informer.apply(pod("a", "p", "2"));
        informer.apply(pod("b", "q", "3"));
        informer.remove("a", "p");
        informer.remove("a", "missing");
        assert_eq!(
            *seen.lock().unwrap(),
            ["add 1", "update 1->2", "add 3", "delete 2"]
        );
        assert!(informer.get("a", "p").is_none());
        assert_eq!(informer.list_namespace("b").len(), 1);
        assert_eq!(informer.list().len(), 1);
    }

    #[test]
    fn keys_split_back_into_namespace_and_name() {
        let p = pod("ns", "name", "1");
        assert_eq!(key_of(&p), "ns/name");
        assert_eq!(split_key("ns/name"), ("ns", "name"));
        assert_eq!(split_key("node-1"), ("", "node-1"));
    }
}
