//! What the collector watches (upstream's `GetDeletableResources`, REST mapper and
//! `resyncMonitors`): discovery of every resource that supports delete, list and
//! watch in each group's preferred version (custom resources included, events left
//! out), and one metadata-only watch per such resource feeding the graph's changes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use futures::StreamExt;
use kube::api::{ApiResource, DynamicObject};
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::sync::mpsc::UnboundedSender;

use super::graph::{Change, ChangeKind, Identity, ObjectState};

/// A resource the apiserver serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resource {
    /// Group ("" for the core group).
    pub group: String,
    /// Version.
    pub version: String,
    /// Kind.
    pub kind: String,
    /// The plural (URL) name.
    pub plural: String,
    /// Whether its objects live in namespaces.
    pub namespaced: bool,
    /// The verbs it supports.
    pub verbs: Vec<String>,
}

impl Resource {
    /// The `apiVersion` of its objects.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The kube-rs description of it, for dynamic requests.
    pub fn api_resource(&self) -> ApiResource {
        ApiResource {
            group: self.group.clone(),
            version: self.version.clone(),
            api_version: self.api_version(),
            kind: self.kind.clone(),
            plural: self.plural.clone(),
        }
    }

    /// Whether the collector watches it: delete, list and watch supported, and not
    /// one of the ignored resources (events, as upstream's defaults).
    pub fn collectable(&self) -> bool {
        let ignored =
            self.plural == "events" && (self.group.is_empty() || self.group == "events.k8s.io");
        !ignored
            && ["delete", "list", "watch"]
                .iter()
                .all(|v| self.verbs.iter().any(|have| have == v))
    }
}

/// Splits an `apiVersion` into group and version.
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((group, version)) => (group, version),
        None => ("", api_version),
    }
}

/// What discovery found.
#[derive(Clone, Debug, Default)]
pub struct Discovered {
    /// Every served resource of every version, by (group, version, kind).
    pub by_kind: HashMap<(String, String, String), Resource>,
    /// The resources to watch: preferred versions only, collectable ones.
    pub watched: Vec<Resource>,
    /// Groups (or core versions) that could not be read this time.
    pub failed_groups: HashSet<String>,
}

impl Discovered {
    /// Keeps what `previous` knew of the groups that could not be read now, so a
    /// passing discovery failure neither stops their watches nor their mapping (as
    /// upstream keeps the resources of groups whose lookup failed).
    pub fn keep_failed_from(&mut self, previous: &Discovered) {
        if self.failed_groups.is_empty() {
            return;
        }
        for (key, resource) in &previous.by_kind {
            if self.failed_groups.contains(&resource.group) {
                self.by_kind
                    .entry(key.clone())
                    .or_insert_with(|| resource.clone());
            }
        }
        for resource in &previous.watched {
            if self.failed_groups.contains(&resource.group) && !self.watched.contains(resource) {
                self.watched.push(resource.clone());
            }
        }
    }

    /// The resource serving objects of `api_version` and `kind` (upstream's REST
    /// mapping).
    pub fn resolve(&self, api_version: &str, kind: &str) -> Option<&Resource> {
        let (group, version) = split_api_version(api_version);
        self.by_kind
            .get(&(group.to_owned(), version.to_owned(), kind.to_owned()))
    }
}

fn resources_of(
    group: &str,
    version: &str,
    list: &k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResourceList,
) -> Vec<Resource> {
    list.resources
        .iter()
        // subresources (pods/status) are not objects of their own
        .filter(|r| !r.name.contains('/'))
        .map(|r| Resource {
            group: r
                .group
                .clone()
                .filter(|g| !g.is_empty())
                .unwrap_or_else(|| group.to_owned()),
            version: r
                .version
                .clone()
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| version.to_owned()),
            kind: r.kind.clone(),
            plural: r.name.clone(),
            namespaced: r.namespaced,
            verbs: r.verbs.clone(),
        })
        .collect()
}

/// Discovers the served resources. A group that cannot be read is left out (as
/// upstream tolerates partial discovery failures); only failing to list the groups
/// at all is an error.
pub async fn discover(client: &kube::Client) -> Result<Discovered, kube::Error> {
    let mut found = Discovered::default();
    let mut failed = HashSet::new();
    let mut record = |resources: Vec<Resource>, preferred: bool| {
        for r in resources {
            if preferred && r.collectable() {
                found.watched.push(r.clone());
            }
            found
                .by_kind
                .insert((r.group.clone(), r.version.clone(), r.kind.clone()), r);
        }
    };
    let core = client.list_core_api_versions().await?;
    for (i, version) in core.versions.iter().enumerate() {
        match client.list_core_api_resources(version).await {
            Ok(list) => record(resources_of("", version, &list), i == 0),
            Err(e) => {
                tracing::info!(version, error = %e, "failed to discover core resources");
                failed.insert(String::new());
            }
        }
    }
    let groups = client.list_api_groups().await?;
    for group in &groups.groups {
        let preferred = group
            .preferred_version
            .as_ref()
            .map(|v| v.version.clone())
            .or_else(|| group.versions.first().map(|v| v.version.clone()));
        for version in &group.versions {
            match client
                .list_api_group_resources(&version.group_version)
                .await
            {
                Ok(list) => record(
                    resources_of(&group.name, &version.version, &list),
                    preferred.as_deref() == Some(version.version.as_str()),
                ),
                Err(e) => {
                    tracing::info!(
                        group_version = %version.group_version,
                        error = %e,
                        "failed to discover some groups"
                    );
                    failed.insert(group.name.clone());
                }
            }
        }
    }
    found.failed_groups = failed;
    Ok(found)
}

/// What the watches tell the graph.
#[derive(Clone, Debug)]
pub enum Message {
    /// A change of an object.
    Change(Box<Change>),
    /// A watch has delivered its first list (all of it sent before this).
    Synced,
}

/// The key of one watched object.
type ObjectKey = (String, String);

/// One cached object of a watch: its uid and state.
type Cached = (String, ObjectState);

/// Reads a metadata-only object into its identity and state.
fn read(
    resource: &Resource,
    object: &PartialObjectMeta<DynamicObject>,
) -> (ObjectKey, Identity, ObjectState) {
    let meta = &object.metadata;
    let namespace = meta.namespace.clone().unwrap_or_default();
    let name = meta.name.clone().unwrap_or_default();
    let identity = Identity {
        api_version: resource.api_version(),
        kind: resource.kind.clone(),
        namespace: namespace.clone(),
        name: name.clone(),
        uid: meta.uid.clone().unwrap_or_default(),
    };
    ((namespace, name), identity, ObjectState::from_meta(meta))
}

fn identity_of(resource: &Resource, key: &ObjectKey, uid: &str) -> Identity {
    Identity {
        api_version: resource.api_version(),
        kind: resource.kind.clone(),
        namespace: key.0.clone(),
        name: key.1.clone(),
        uid: uid.to_owned(),
    }
}

/// The watch of one resource: keeps its own cache of uids and states so that updates
/// carry the old state and a relist reports what vanished meanwhile as deleted.
struct Monitor {
    resource: Resource,
    cache: BTreeMap<ObjectKey, Cached>,
    relist: Option<BTreeMap<ObjectKey, Cached>>,
    changes: UnboundedSender<Message>,
    /// Whether the first list was delivered.
    synced: bool,
}

impl Monitor {
    fn send(
        &self,
        kind: ChangeKind,
        identity: Identity,
        object: ObjectState,
        old: Option<ObjectState>,
    ) {
        let _ = self.changes.send(Message::Change(Box::new(Change {
            kind,
            is_virtual: false,
            identity,
            object,
            old,
        })));
    }

    /// Records that `key` is now `(uid, state)`.
    fn apply(&mut self, key: ObjectKey, identity: Identity, state: ObjectState) {
        match self
            .cache
            .insert(key.clone(), (identity.uid.clone(), state.clone()))
        {
            None => self.send(ChangeKind::Added, identity, state, None),
            Some((old_uid, old)) if old_uid != identity.uid => {
                // the object was replaced while the watch was down
                let gone = identity_of(&self.resource, &key, &old_uid);
                self.send(ChangeKind::Deleted, gone, old, None);
                self.send(ChangeKind::Added, identity, state, None);
            }
            Some((_, old)) => {
                if old != state {
                    self.send(ChangeKind::Updated, identity, state, Some(old));
                }
            }
        }
    }

    fn handle(&mut self, event: Event<PartialObjectMeta<DynamicObject>>) {
        match event {
            Event::Apply(object) => {
                let (key, identity, state) = read(&self.resource, &object);
                self.apply(key, identity, state);
            }
            Event::Delete(object) => {
                let (key, identity, state) = read(&self.resource, &object);
                self.cache.remove(&key);
                self.send(ChangeKind::Deleted, identity, state, None);
            }
            Event::Init => self.relist = Some(BTreeMap::new()),
            Event::InitApply(object) => {
                let (key, identity, state) = read(&self.resource, &object);
                self.relist
                    .get_or_insert_with(BTreeMap::new)
                    .insert(key.clone(), (identity.uid.clone(), state.clone()));
                self.apply(key, identity, state);
            }
            Event::InitDone => {
                let listed = self.relist.take().unwrap_or_default();
                let vanished: Vec<ObjectKey> = self
                    .cache
                    .keys()
                    .filter(|k| !listed.contains_key(*k))
                    .cloned()
                    .collect();
                for key in vanished {
                    if let Some((uid, state)) = self.cache.remove(&key) {
                        let identity = identity_of(&self.resource, &key, &uid);
                        self.send(ChangeKind::Deleted, identity, state, None);
                    }
                }
                if !self.synced {
                    self.synced = true;
                    let _ = self.changes.send(Message::Synced);
                }
            }
        }
    }
}

/// Watches `resource` (metadata only) until aborted, sending its changes.
pub async fn watch(client: kube::Client, resource: Resource, changes: UnboundedSender<Message>) {
    // an Api of PartialObjectMeta lists and watches metadata only
    let api: kube::Api<PartialObjectMeta<DynamicObject>> =
        kube::Api::all_with(client, &resource.api_resource());
    let mut monitor = Monitor {
        resource,
        cache: BTreeMap::new(),
        relist: None,
        changes,
        synced: false,
    };
    let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
    futures::pin_mut!(stream);
    while let Some(event) = stream.next().await {
        match event {
            Ok(event) => monitor.handle(event),
            Err(e) => tracing::debug!(
                resource = %monitor.resource.plural,
                group = %monitor.resource.group,
                error = %e,
                "garbage collector watch failed; retrying"
            ),
        }
    }
}

/// Aborts a watch when dropped.
pub struct Running(tokio::task::JoinHandle<()>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The running watches, by (group, version, plural).
#[derive(Default)]
pub struct Monitors {
    running: HashMap<(String, String, String), Running>,
}

impl Monitors {
    /// Starts watches of new resources and stops those of resources gone (upstream's
    /// `resyncMonitors`).
    pub fn sync(
        &mut self,
        client: &kube::Client,
        wanted: &[Resource],
        changes: &UnboundedSender<Message>,
    ) {
        let key = |r: &Resource| (r.group.clone(), r.version.clone(), r.plural.clone());
        let wanted_keys: Vec<_> = wanted.iter().map(key).collect();
        self.running.retain(|k, _| wanted_keys.contains(k));
        for resource in wanted {
            self.running.entry(key(resource)).or_insert_with(|| {
                tracing::debug!(group = %resource.group, resource = %resource.plural, "garbage collector watching");
                Running(tokio::spawn(watch(client.clone(), resource.clone(), changes.clone())))
            });
        }
    }

    /// How many resources are watched.
    pub fn len(&self) -> usize {
        self.running.len()
    }

    /// Whether nothing is watched.
    pub fn is_empty(&self) -> bool {
        self.running.is_empty()
    }
}

/// A shared, replaceable discovery result.
pub type SharedDiscovery = Arc<std::sync::RwLock<Discovered>>;

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(group: &str, plural: &str, verbs: &[&str]) -> Resource {
        Resource {
            group: group.into(),
            version: "v1".into(),
            kind: "K".into(),
            plural: plural.into(),
            namespaced: true,
            verbs: verbs.iter().map(|v| (*v).to_owned()).collect(),
        }
    }

    #[test]
    fn only_deletable_listable_watchable_resources_but_events_are_collected() {
        let all = ["create", "delete", "get", "list", "watch"];
        assert!(resource("", "configmaps", &all).collectable());
        assert!(resource("example.com", "widgets", &all).collectable());
        assert!(!resource("", "events", &all).collectable());
        assert!(!resource("events.k8s.io", "events", &all).collectable());
        assert!(!resource("", "bindings", &["create"]).collectable());
        assert!(!resource("", "componentstatuses", &["get", "list"]).collectable());
    }

    #[test]
    fn a_group_that_failed_discovery_keeps_what_was_known() {
        let mut previous = Discovered::default();
        let widgets = resource("example.com", "widgets", &["delete", "list", "watch"]);
        let maps = resource("", "configmaps", &["delete", "list", "watch"]);
        for r in [&widgets, &maps] {
            previous.watched.push(r.clone());
            previous.by_kind.insert(
                (r.group.clone(), r.version.clone(), r.plural.clone()),
                r.clone(),
            );
        }
        let mut now = Discovered::default();
        now.failed_groups.insert("example.com".into());
        now.keep_failed_from(&previous);
        assert_eq!(now.watched, vec![widgets]);
        assert_eq!(now.by_kind.len(), 1);
    }

    #[test]
    fn api_versions_split_into_group_and_version() {
        assert_eq!(split_api_version("v1"), ("", "v1"));
        assert_eq!(split_api_version("apps/v1"), ("apps", "v1"));
        let mut d = Discovered::default();
        let mut r = resource("apps", "deployments", &["list"]);
        r.kind = "Deployment".into();
        d.by_kind
            .insert(("apps".into(), "v1".into(), "Deployment".into()), r.clone());
        assert_eq!(d.resolve("apps/v1", "Deployment"), Some(&r));
        assert_eq!(d.resolve("apps/v2", "Deployment"), None);
        assert_eq!(r.api_version(), "apps/v1");
    }

    #[test]
    fn a_monitor_reports_updates_with_the_old_state_and_vanished_objects_on_relist() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let res = resource("", "configmaps", &["list"]);
        let mut m = Monitor {
            resource: res.clone(),
            cache: BTreeMap::new(),
            relist: None,
            changes: tx,
            synced: false,
        };
        let obj = |name: &str, uid: &str, rv: &str| {
            let mut o: PartialObjectMeta<DynamicObject> = PartialObjectMeta {
                types: None,
                metadata: Default::default(),
                _phantom: std::marker::PhantomData,
            };
            o.metadata.namespace = Some("ns".into());
            o.metadata.name = Some(name.into());
            o.metadata.uid = Some(uid.into());
            o.metadata.resource_version = Some(rv.into());
            o
        };
        m.handle(Event::Init);
        m.handle(Event::InitApply(obj("a", "u1", "1")));
        m.handle(Event::InitApply(obj("b", "u2", "1")));
        m.handle(Event::InitDone);
        m.handle(Event::Apply(obj("a", "u1", "2")));
        m.handle(Event::Init);
        m.handle(Event::InitApply(obj("a", "u3", "5")));
        m.handle(Event::InitDone);
        let mut seen = Vec::new();
        let mut synced = 0;
        while let Ok(message) = rx.try_recv() {
            let c = match message {
                Message::Change(c) => *c,
                Message::Synced => {
                    // once, after the first list's changes
                    assert_eq!(seen.len(), 2);
                    synced += 1;
                    continue;
                }
            };
            seen.push((
                c.kind,
                c.identity.name.clone(),
                c.identity.uid.clone(),
                c.old.map(|o| o.resource_version),
            ));
        }
        assert_eq!(
            seen,
            vec![
                (ChangeKind::Added, "a".into(), "u1".into(), None),
                (ChangeKind::Added, "b".into(), "u2".into(), None),
                (
                    ChangeKind::Updated,
                    "a".into(),
                    "u1".into(),
                    Some("1".into())
                ),
                // a replaced while the watch was down: the old one deleted, the new one added
                (ChangeKind::Deleted, "a".into(), "u1".into(), None),
                (ChangeKind::Added, "a".into(), "u3".into(), None),
                // b vanished
                (ChangeKind::Deleted, "b".into(), "u2".into(), None),
            ]
        );
        assert_eq!(synced, 1);
    }
}
