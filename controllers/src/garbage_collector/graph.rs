//! The dependency graph (upstream's `GraphBuilder.uidToNode` and
//! `processGraphChanges`): one node per object uid with the ownerReferences it
//! declares and the dependents that point at it. Owners that have not been seen (yet)
//! are "virtual" nodes, whose existence the attemptToDelete workers verify.
//!
//! Processing a change is pure: it updates the graph and says which uids the
//! attemptToDelete / attemptToOrphan queues must look at and which owner coordinates
//! are now known to be absent, so the rules can be tested without a cluster.

use std::collections::{BTreeSet, HashMap};

/// The finalizer of a foreground deletion (`metav1.FinalizerDeleteDependents`).
pub const FOREGROUND: &str = "foregroundDeletion";
/// The finalizer of an orphaning deletion (`metav1.FinalizerOrphanDependents`).
pub const ORPHAN: &str = "orphan";

/// Where an object is: its type, namespace ("" when cluster-scoped or unknown), name
/// and uid (upstream's `objectReference`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identity {
    /// `apiVersion`, as `apps/v1` or `v1`.
    pub api_version: String,
    /// `kind`.
    pub kind: String,
    /// The namespace, "" for cluster-scoped objects.
    pub namespace: String,
    /// The name.
    pub name: String,
    /// The uid.
    pub uid: String,
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "[{}/{}, namespace: {}, name: {}, uid: {}]",
            self.api_version, self.kind, self.namespace, self.name, self.uid
        )
    }
}

/// One ownerReference, as far as the collector cares.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OwnerRef {
    /// The owner's `apiVersion`.
    pub api_version: String,
    /// The owner's `kind`.
    pub kind: String,
    /// The owner's name.
    pub name: String,
    /// The owner's uid.
    pub uid: String,
    /// `blockOwnerDeletion`: a foreground deletion of the owner waits for this
    /// dependent.
    pub block_owner_deletion: bool,
}

impl OwnerRef {
    /// Reads the ownerReferences of an object's metadata.
    pub fn from_meta(
        refs: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference],
    ) -> Vec<OwnerRef> {
        refs.iter()
            .map(|r| OwnerRef {
                api_version: r.api_version.clone(),
                kind: r.kind.clone(),
                name: r.name.clone(),
                uid: r.uid.clone(),
                block_owner_deletion: r.block_owner_deletion.unwrap_or(false),
            })
            .collect()
    }

    /// Whether this reference names `owner` (apiVersion, kind, name and uid; the
    /// namespace is the dependent's business).
    pub fn matches(&self, owner: &Identity) -> bool {
        self.uid == owner.uid
            && self.api_version == owner.api_version
            && self.kind == owner.kind
            && self.name == owner.name
    }

    /// The owner this reference names, seen from a dependent in `namespace`.
    pub fn identity(&self, namespace: &str) -> Identity {
        Identity {
            api_version: self.api_version.clone(),
            kind: self.kind.clone(),
            namespace: namespace.to_owned(),
            name: self.name.clone(),
            uid: self.uid.clone(),
        }
    }
}

/// What the collector reads of an object: its metadata's relevant parts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectState {
    /// `metadata.ownerReferences`.
    pub owners: Vec<OwnerRef>,
    /// Whether `metadata.deletionTimestamp` is set.
    pub being_deleted: bool,
    /// `metadata.finalizers`.
    pub finalizers: Vec<String>,
    /// `metadata.resourceVersion`.
    pub resource_version: String,
}

impl ObjectState {
    /// Reads the state out of an object's metadata.
    pub fn from_meta(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Self {
        ObjectState {
            owners: OwnerRef::from_meta(meta.owner_references.as_deref().unwrap_or_default()),
            being_deleted: meta.deletion_timestamp.is_some(),
            finalizers: meta.finalizers.clone().unwrap_or_default(),
            resource_version: meta.resource_version.clone().unwrap_or_default(),
        }
    }

    /// Whether the finalizer is present.
    pub fn has_finalizer(&self, finalizer: &str) -> bool {
        self.finalizers.iter().any(|f| f == finalizer)
    }

    /// Being deleted and held by `finalizer` (upstream's `deletionStartsWithFinalizer`
    /// without the transition).
    fn deleting_with(&self, finalizer: &str) -> bool {
        self.being_deleted && self.has_finalizer(finalizer)
    }
}

/// What happened to an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    /// It was seen for the first time.
    Added,
    /// It changed.
    Updated,
    /// It went away.
    Deleted,
}

/// One change for the graph: from a watch, or "virtual" (a worker found that an
/// object the graph holds does not exist).
#[derive(Clone, Debug)]
pub struct Change {
    /// What happened.
    pub kind: ChangeKind,
    /// Whether a worker, not a watch, reports it (only deletions are virtual).
    pub is_virtual: bool,
    /// The object.
    pub identity: Identity,
    /// Its state now (its last state for a deletion).
    pub object: ObjectState,
    /// Its previous state, for updates from a watch.
    pub old: Option<ObjectState>,
}

/// One object of the graph.
#[derive(Clone, Debug, Default)]
pub struct Node {
    /// Where it is (for a virtual node, as its dependents name it).
    pub identity: Identity,
    /// Its ownerReferences, as last seen.
    pub owners: Vec<OwnerRef>,
    /// The uids of the objects whose ownerReferences name it.
    pub dependents: BTreeSet<String>,
    /// It has a deletionTimestamp (one-way).
    pub being_deleted: bool,
    /// It is deleted in the foreground: it waits for its dependents (one-way).
    pub deleting_dependents: bool,
    /// Only its dependents know of it; no watch has shown it yet.
    pub is_virtual: bool,
}

/// What processing a change asks of the workers.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Effects {
    /// Uids for the attemptToDelete queue.
    pub attempt_to_delete: Vec<String>,
    /// Uids for the attemptToDelete queue, after their retry delay.
    pub attempt_to_delete_later: Vec<String>,
    /// Uids for the attemptToOrphan queue.
    pub attempt_to_orphan: Vec<String>,
    /// Owners now known not to exist (for the absent-owner cache).
    pub absent: Vec<Identity>,
}

impl Effects {
    fn delete(&mut self, uid: &str) {
        if !self.attempt_to_delete.iter().any(|u| u == uid) {
            self.attempt_to_delete.push(uid.to_owned());
        }
    }
}

/// A dependent, as the workers see it when deciding about its owner.
#[derive(Clone, Debug)]
pub struct DependentView {
    /// The dependent.
    pub identity: Identity,
    /// Whether its reference to the owner has blockOwnerDeletion.
    pub blocking: bool,
    /// Whether it is itself waiting for its own dependents.
    pub deleting_dependents: bool,
}

/// A copy of one node and its dependents, for a worker.
#[derive(Clone, Debug)]
pub struct NodeView {
    /// The node.
    pub node: Node,
    /// Its dependents still in the graph.
    pub dependents: Vec<DependentView>,
}

impl NodeView {
    /// The dependents whose reference to this node blocks its deletion (upstream's
    /// `blockingDependents`).
    pub fn blocking_dependents(&self) -> impl Iterator<Item = &DependentView> {
        self.dependents.iter().filter(|d| d.blocking)
    }
}

/// The graph.
#[derive(Debug, Default)]
pub struct Graph {
    nodes: HashMap<String, Node>,
}

impl Graph {
    /// The node of `uid`.
    pub fn get(&self, uid: &str) -> Option<&Node> {
        self.nodes.get(uid)
    }

    /// How many nodes the graph holds.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the graph is empty.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// A copy of `uid`'s node with its dependents, for a worker.
    pub fn view(&self, uid: &str) -> Option<NodeView> {
        let node = self.nodes.get(uid)?;
        let dependents = node
            .dependents
            .iter()
            .filter_map(|d| self.nodes.get(d))
            .map(|d| DependentView {
                identity: d.identity.clone(),
                blocking: d
                    .owners
                    .iter()
                    .any(|o| o.uid == node.identity.uid && o.block_owner_deletion),
                deleting_dependents: d.deleting_dependents,
            })
            .collect();
        Some(NodeView {
            node: node.clone(),
            dependents,
        })
    }

    /// Applies one change (upstream's `processGraphChanges`).
    pub fn process(&mut self, change: &Change) -> Effects {
        let mut fx = Effects::default();
        let uid = change.identity.uid.clone();
        // a watch showing a virtual node makes it a real one; dependents that named it
        // by other coordinates are checked again
        if !change.is_virtual
            && let Some(existing) = self.nodes.get(&uid)
            && existing.is_virtual
        {
            if existing.identity != change.identity {
                let (_, mismatching) = self.partition_dependents(existing, &change.identity);
                for dep in mismatching {
                    fx.delete(&dep);
                }
            }
            if let Some(existing) = self.nodes.get_mut(&uid) {
                existing.identity = change.identity.clone();
                existing.is_virtual = false;
            }
        }
        match change.kind {
            ChangeKind::Added | ChangeKind::Updated => {
                if !self.nodes.contains_key(&uid) {
                    let node = Node {
                        identity: change.identity.clone(),
                        owners: change.object.owners.clone(),
                        dependents: BTreeSet::new(),
                        being_deleted: change.object.being_deleted,
                        deleting_dependents: change.object.deleting_with(FOREGROUND),
                        is_virtual: false,
                    };
                    self.nodes.insert(uid.clone(), node);
                    let owners = change.object.owners.clone();
                    self.add_dependent_to_owners(&uid, &owners, &mut fx);
                } else {
                    let old_owners = match self.nodes.get_mut(&uid) {
                        Some(node) => {
                            // the same object seen through another version of its
                            // resource (the preferred version changed)
                            if !change.is_virtual {
                                node.identity.api_version = change.identity.api_version.clone();
                                node.identity.kind = change.identity.kind.clone();
                            }
                            node.owners.clone()
                        }
                        None => Vec::new(),
                    };
                    let new_owners = &change.object.owners;
                    let (added, removed, changed) = diff_references(&old_owners, new_owners);
                    if !added.is_empty() || !removed.is_empty() || !changed.is_empty() {
                        // an owner waiting for its blocking dependents may now be free
                        self.unblocked_owners(&removed, &changed, &mut fx);
                        if let Some(node) = self.nodes.get_mut(&uid) {
                            node.owners = new_owners.clone();
                        }
                        self.add_dependent_to_owners(&uid, &added, &mut fx);
                        self.remove_dependent_from_owners(&uid, &removed);
                    }
                    if change.object.being_deleted
                        && let Some(node) = self.nodes.get_mut(&uid)
                    {
                        node.being_deleted = true;
                    }
                }
                self.transitions(&uid, change.old.as_ref(), &change.object, &mut fx);
            }
            ChangeKind::Deleted => self.delete(change, &mut fx),
        }
        fx
    }

    fn delete(&mut self, change: &Change, fx: &mut Effects) {
        let uid = &change.identity.uid;
        let Some(existing) = self.nodes.get(uid) else {
            return;
        };
        let deleted = &change.identity;
        let mut remove = true;
        if change.is_virtual {
            if existing.is_virtual {
                // the dependents may disagree about where this owner is: only the
                // coordinates verified absent are absent
                let (matching, mismatching) = self.partition_dependents(existing, deleted);
                if !mismatching.is_empty() {
                    remove = false;
                    if !matching.is_empty() {
                        fx.absent.push(deleted.clone());
                        for dep in &matching {
                            fx.delete(dep);
                        }
                    }
                    if existing.identity == *deleted
                        && let Some(alternate) = self.alternate_identity(&mismatching, deleted)
                    {
                        if let Some(node) = self.nodes.get_mut(uid) {
                            node.identity = alternate;
                        }
                        fx.attempt_to_delete_later.push(uid.clone());
                    }
                }
            } else if existing.identity != *deleted {
                // a real node is not removed by a virtual deletion of other coordinates
                remove = false;
                let (matching, _) = self.partition_dependents(existing, deleted);
                if !matching.is_empty() {
                    fx.absent.push(deleted.clone());
                    for dep in &matching {
                        fx.delete(dep);
                    }
                }
            }
        }
        if !remove {
            return;
        }
        let Some(node) = self.nodes.remove(uid) else {
            return;
        };
        for owner in &node.owners {
            if let Some(owner_node) = self.nodes.get_mut(&owner.uid) {
                owner_node.dependents.remove(uid);
            }
        }
        if !node.dependents.is_empty() {
            fx.absent.push(deleted.clone());
        }
        for dep in &node.dependents {
            fx.delete(dep);
        }
        // an owner deleting in the foreground may have been waiting for this one
        for owner in &node.owners {
            if self
                .nodes
                .get(&owner.uid)
                .is_some_and(|o| o.deleting_dependents)
            {
                fx.delete(&owner.uid);
            }
        }
    }

    /// Links `uid` under each of `owners`, creating virtual nodes for unknown owners
    /// (which the workers then verify), and queues `uid` itself when a reference may
    /// be wrong (another namespace, other coordinates).
    fn add_dependent_to_owners(&mut self, uid: &str, owners: &[OwnerRef], fx: &mut Effects) {
        let Some(dependent) = self.nodes.get(uid).map(|n| n.identity.clone()) else {
            return;
        };
        let mut suspicious = false;
        for owner in owners {
            match self.nodes.get_mut(&owner.uid) {
                None => {
                    let mut node = Node {
                        identity: owner.identity(&dependent.namespace),
                        is_virtual: true,
                        ..Node::default()
                    };
                    node.dependents.insert(uid.to_owned());
                    self.nodes.insert(owner.uid.clone(), node);
                    fx.delete(&owner.uid);
                }
                Some(node) => {
                    node.dependents.insert(uid.to_owned());
                    if node.deleting_dependents {
                        // a dependent seen after its owner's foreground deletion began
                        // (watches deliver in any order): it is due for deletion too
                        suspicious = true;
                    }
                    if suspicious {
                        continue;
                    }
                    let owner_namespaced = !node.identity.namespace.is_empty();
                    let other_namespace = node.identity.namespace != dependent.namespace;
                    // an owner in another namespace, one named by other coordinates,
                    // or an unverified owner that may be a namespaced object named by
                    // a cluster-scoped one
                    suspicious = !owner.matches(&node.identity)
                        || (other_namespace && (owner_namespaced || node.is_virtual));
                }
            }
        }
        if suspicious {
            fx.delete(uid);
        }
    }

    fn remove_dependent_from_owners(&mut self, uid: &str, owners: &[OwnerRef]) {
        for owner in owners {
            if let Some(node) = self.nodes.get_mut(&owner.uid) {
                node.dependents.remove(uid);
            }
        }
    }

    /// Owners deleting in the foreground whose blocking reference from this dependent
    /// went away or stopped blocking (upstream's `addUnblockedOwnersToDeleteQueue`).
    fn unblocked_owners(
        &self,
        removed: &[OwnerRef],
        changed: &[(OwnerRef, OwnerRef)],
        fx: &mut Effects,
    ) {
        let waiting = |uid: &str| self.nodes.get(uid).is_some_and(|n| n.deleting_dependents);
        for r in removed {
            if r.block_owner_deletion && waiting(&r.uid) {
                fx.delete(&r.uid);
            }
        }
        for (old, new) in changed {
            if old.block_owner_deletion && !new.block_owner_deletion && waiting(&new.uid) {
                fx.delete(&new.uid);
            }
        }
    }

    /// Starts orphaning or foreground deletion when an object's deletion with that
    /// finalizer begins (upstream's `processTransitions`).
    fn transitions(
        &mut self,
        uid: &str,
        old: Option<&ObjectState>,
        new: &ObjectState,
        fx: &mut Effects,
    ) {
        let starts = |finalizer: &str| {
            new.deleting_with(finalizer) && !old.is_some_and(|o| o.deleting_with(finalizer))
        };
        if starts(ORPHAN) {
            fx.attempt_to_orphan.push(uid.to_owned());
            return;
        }
        if starts(FOREGROUND)
            && let Some(node) = self.nodes.get_mut(uid)
        {
            node.deleting_dependents = true;
            let dependents: Vec<String> = node.dependents.iter().cloned().collect();
            for dep in dependents {
                fx.delete(&dep);
            }
            fx.delete(uid);
        }
    }

    /// Splits `owner`'s dependents into those naming it as `identity` and those
    /// naming it otherwise (a dependent may be in both).
    fn partition_dependents(
        &self,
        owner: &Node,
        identity: &Identity,
    ) -> (Vec<String>, Vec<String>) {
        let namespaced = !identity.namespace.is_empty();
        let mut matching = Vec::new();
        let mut mismatching = Vec::new();
        for dep_uid in &owner.dependents {
            let Some(dep) = self.nodes.get(dep_uid) else {
                continue;
            };
            let (mut found_match, mut found_mismatch) = (false, false);
            if namespaced && dep.identity.namespace != identity.namespace {
                found_mismatch = true;
            } else {
                for r in dep.owners.iter().filter(|r| r.uid == identity.uid) {
                    if r.matches(identity) {
                        found_match = true;
                    } else {
                        found_mismatch = true;
                    }
                }
            }
            if found_match {
                matching.push(dep_uid.clone());
            }
            if found_mismatch {
                mismatching.push(dep_uid.clone());
            }
        }
        (matching, mismatching)
    }

    /// Another set of coordinates the dependents give the owner `absent` names
    /// (upstream's `getAlternateOwnerIdentity`), the first in a stable order.
    fn alternate_identity(&self, dependents: &[String], absent: &Identity) -> Option<Identity> {
        let cluster_scoped = absent.namespace.is_empty();
        // kind and apiVersion first, so that kinds sort together whatever their scope
        let order = |i: &Identity| {
            (
                i.kind.clone(),
                i.api_version.clone(),
                i.namespace.clone(),
                i.name.clone(),
                i.uid.clone(),
            )
        };
        let mut candidates: Vec<Identity> = Vec::new();
        for dep in dependents.iter().filter_map(|d| self.nodes.get(d)) {
            for r in dep.owners.iter().filter(|r| r.uid == absent.uid) {
                if r.matches(absent)
                    && (cluster_scoped || absent.namespace == dep.identity.namespace)
                {
                    continue;
                }
                let mut candidate = r.identity(&dep.identity.namespace);
                if cluster_scoped
                    && candidate.api_version == absent.api_version
                    && candidate.kind == absent.kind
                {
                    // that kind is known to be cluster-scoped
                    candidate.namespace.clear();
                }
                if candidate != *absent && !candidates.contains(&candidate) {
                    candidates.push(candidate);
                }
            }
        }
        candidates.sort_by_key(order);
        // the first one after the absent identity, else the first
        let absent_key = order(absent);
        let following = candidates.iter().position(|c| order(c) > absent_key);
        match following {
            Some(i) => candidates.into_iter().nth(i),
            None => candidates.into_iter().next(),
        }
    }
}

/// References added, removed and changed (same uid, other fields) between two
/// ownerReference lists (upstream's `referencesDiffs`).
#[allow(clippy::type_complexity)]
fn diff_references(
    old: &[OwnerRef],
    new: &[OwnerRef],
) -> (Vec<OwnerRef>, Vec<OwnerRef>, Vec<(OwnerRef, OwnerRef)>) {
    let added = new
        .iter()
        .filter(|n| !old.iter().any(|o| o.uid == n.uid))
        .cloned()
        .collect();
    let removed = old
        .iter()
        .filter(|o| !new.iter().any(|n| n.uid == o.uid))
        .cloned()
        .collect();
    let changed = old
        .iter()
        .filter_map(|o| {
            let n = new.iter().find(|n| n.uid == o.uid)?;
            (n != o).then(|| (o.clone(), n.clone()))
        })
        .collect();
    (added, removed, changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(kind: &str, ns: &str, name: &str, uid: &str) -> Identity {
        Identity {
            api_version: "v1".into(),
            kind: kind.into(),
            namespace: ns.into(),
            name: name.into(),
            uid: uid.into(),
        }
    }

    fn owner_ref(owner: &Identity, block: bool) -> OwnerRef {
        OwnerRef {
            api_version: owner.api_version.clone(),
            kind: owner.kind.clone(),
            name: owner.name.clone(),
            uid: owner.uid.clone(),
            block_owner_deletion: block,
        }
    }

    fn state(owners: Vec<OwnerRef>) -> ObjectState {
        ObjectState {
            owners,
            ..ObjectState::default()
        }
    }

    fn change(kind: ChangeKind, identity: &Identity, object: ObjectState) -> Change {
        Change {
            kind,
            is_virtual: false,
            identity: identity.clone(),
            object,
            old: None,
        }
    }

    #[test]
    fn a_dependent_of_an_unknown_owner_creates_a_virtual_owner_to_verify() {
        let mut g = Graph::default();
        let owner = id("ConfigMap", "ns", "owner", "o1");
        let dep = id("Secret", "ns", "dep", "d1");
        let fx = g.process(&change(
            ChangeKind::Added,
            &dep,
            state(vec![owner_ref(&owner, false)]),
        ));
        assert_eq!(fx.attempt_to_delete, vec!["o1".to_string()]);
        let virtual_owner = g.get("o1").unwrap();
        assert!(virtual_owner.is_virtual);
        assert_eq!(virtual_owner.identity, owner);
        assert!(virtual_owner.dependents.contains("d1"));

        // the owner's watch then shows it: it becomes real, nothing to do
        let fx = g.process(&change(ChangeKind::Added, &owner, state(vec![])));
        assert_eq!(fx, Effects::default());
        assert!(!g.get("o1").unwrap().is_virtual);
    }

    #[test]
    fn a_dependent_of_a_known_owner_needs_no_work() {
        let mut g = Graph::default();
        let owner = id("ConfigMap", "ns", "owner", "o1");
        let dep = id("Secret", "ns", "dep", "d1");
        g.process(&change(ChangeKind::Added, &owner, state(vec![])));
        let fx = g.process(&change(
            ChangeKind::Added,
            &dep,
            state(vec![owner_ref(&owner, false)]),
        ));
        assert_eq!(fx, Effects::default());
        assert_eq!(g.view("o1").unwrap().dependents.len(), 1);
    }

    #[test]
    fn an_owner_in_another_namespace_makes_the_dependent_suspect() {
        let mut g = Graph::default();
        let owner = id("ConfigMap", "other", "owner", "o1");
        let dep = id("Secret", "ns", "dep", "d1");
        g.process(&change(ChangeKind::Added, &owner, state(vec![])));
        let fx = g.process(&change(
            ChangeKind::Added,
            &dep,
            state(vec![owner_ref(&owner, false)]),
        ));
        assert_eq!(fx.attempt_to_delete, vec!["d1".to_string()]);
    }

    #[test]
    fn deleting_an_owner_queues_its_dependents_and_records_it_absent() {
        let mut g = Graph::default();
        let owner = id("ConfigMap", "ns", "owner", "o1");
        let a = id("Secret", "ns", "a", "d1");
        let b = id("Secret", "ns", "b", "d2");
        g.process(&change(ChangeKind::Added, &owner, state(vec![])));
        g.process(&change(
            ChangeKind::Added,
            &a,
            state(vec![owner_ref(&owner, false)]),
        ));
        g.process(&change(
            ChangeKind::Added,
            &b,
            state(vec![owner_ref(&owner, false)]),
        ));
        let fx = g.process(&change(ChangeKind::Deleted, &owner, state(vec![])));
        assert_eq!(
            fx.attempt_to_delete,
            vec!["d1".to_string(), "d2".to_string()]
        );
        assert_eq!(fx.absent, vec![owner.clone()]);
        assert!(g.get("o1").is_none());
    }

    #[test]
    fn deleting_a_dependent_unlinks_it_and_wakes_a_foreground_owner() {
        let mut g = Graph::default();
        let owner = id("ConfigMap", "ns", "owner", "o1");
        let dep = id("Secret", "ns", "a", "d1");
        g.process(&change(ChangeKind::Added, &owner, state(vec![])));
        g.process(&change(
            ChangeKind::Added,
            &dep,
            state(vec![owner_ref(&owner, true)]),
        ));
        let deleting = ObjectState {
            being_deleted: true,
            finalizers: vec![FOREGROUND.into()],
            ..ObjectState::default()
        };
        let fx = g.process(&change(ChangeKind::Updated, &owner, deleting));
        assert!(g.get("o1").unwrap().deleting_dependents);
        assert_eq!(
            fx.attempt_to_delete,
            vec!["d1".to_string(), "o1".to_string()]
        );
        assert_eq!(g.view("o1").unwrap().blocking_dependents().count(), 1);

        let fx = g.process(&change(
            ChangeKind::Deleted,
            &dep,
            state(vec![owner_ref(&owner, true)]),
        ));
        assert_eq!(fx.attempt_to_delete, vec!["o1".to_string()]);
        assert!(g.get("o1").unwrap().dependents.is_empty());
        assert_eq!(g.view("o1").unwrap().blocking_dependents().count(), 0);
    }

    #[test]
    fn a_dependent_seen_after_its_owners_foreground_deletion_began_is_queued() {
        let mut g = Graph::default();
        let owner = id("ConfigMap", "ns", "owner", "o1");
        let deleting = ObjectState {
            being_deleted: true,
            finalizers: vec![FOREGROUND.into()],
            ..ObjectState::default()
        };
        let fx = g.process(&change(ChangeKind::Added, &owner, deleting));
        assert_eq!(fx.attempt_to_delete, vec!["o1".to_string()]);
        let dep = id("Secret", "ns", "late", "d1");
        let fx = g.process(&change(
            ChangeKind::Added,
            &dep,
            state(vec![owner_ref(&owner, false)]),
        ));
        assert_eq!(fx.attempt_to_delete, vec!["d1".to_string()]);
    }

    #[test]
    fn an_orphaning_deletion_starts_once() {
        let mut g = Graph::default();
        let owner = id("ConfigMap", "ns", "owner", "o1");
        g.process(&change(ChangeKind::Added, &owner, state(vec![])));
        let orphaning = ObjectState {
            being_deleted: true,
            finalizers: vec![ORPHAN.into()],
            ..ObjectState::default()
        };
        let mut c = change(ChangeKind::Updated, &owner, orphaning.clone());
        c.old = Some(state(vec![]));
        assert_eq!(g.process(&c).attempt_to_orphan, vec!["o1".to_string()]);
        // a later update of an object already orphaning starts nothing new
        c.old = Some(orphaning);
        assert!(g.process(&c).attempt_to_orphan.is_empty());
        assert!(g.get("o1").unwrap().being_deleted);
    }

    #[test]
    fn dropping_a_blocking_reference_wakes_the_waiting_owner() {
        let mut g = Graph::default();
        let owner = id("ConfigMap", "ns", "owner", "o1");
        let other = id("ConfigMap", "ns", "other", "o2");
        let dep = id("Secret", "ns", "a", "d1");
        let deleting = ObjectState {
            being_deleted: true,
            finalizers: vec![FOREGROUND.into()],
            ..ObjectState::default()
        };
        g.process(&change(ChangeKind::Added, &owner, deleting));
        g.process(&change(ChangeKind::Added, &other, state(vec![])));
        g.process(&change(
            ChangeKind::Added,
            &dep,
            state(vec![owner_ref(&owner, true), owner_ref(&other, false)]),
        ));
        let fx = g.process(&change(
            ChangeKind::Updated,
            &dep,
            state(vec![owner_ref(&other, false)]),
        ));
        assert_eq!(fx.attempt_to_delete, vec!["o1".to_string()]);
        assert!(g.get("o1").unwrap().dependents.is_empty());
        assert!(g.get("o2").unwrap().dependents.contains("d1"));
    }

    #[test]
    fn a_virtual_deletion_removes_a_virtual_owner_and_queues_its_dependents() {
        let mut g = Graph::default();
        let owner = id("ConfigMap", "ns", "ghost", "o1");
        let dep = id("Secret", "ns", "a", "d1");
        g.process(&change(
            ChangeKind::Added,
            &dep,
            state(vec![owner_ref(&owner, false)]),
        ));
        let mut c = change(ChangeKind::Deleted, &owner, ObjectState::default());
        c.is_virtual = true;
        let fx = g.process(&c);
        assert_eq!(fx.attempt_to_delete, vec!["d1".to_string()]);
        assert_eq!(fx.absent, vec![owner]);
        assert!(g.get("o1").is_none());
    }

    #[test]
    fn a_virtual_deletion_of_other_coordinates_keeps_a_real_node() {
        let mut g = Graph::default();
        let owner = id("ConfigMap", "ns", "owner", "o1");
        let dep = id("Secret", "ns", "a", "d1");
        g.process(&change(ChangeKind::Added, &owner, state(vec![])));
        g.process(&change(
            ChangeKind::Added,
            &dep,
            state(vec![owner_ref(&owner, false)]),
        ));
        let mut wrong = owner.clone();
        wrong.kind = "Secret".into();
        let mut c = change(ChangeKind::Deleted, &wrong, ObjectState::default());
        c.is_virtual = true;
        let fx = g.process(&c);
        assert!(g.get("o1").is_some());
        // d1 names the owner as a ConfigMap, so it is not among the matching ones
        assert!(fx.attempt_to_delete.is_empty());
    }

    #[test]
    fn a_virtual_owner_named_two_ways_is_tried_again_by_the_other_name() {
        let mut g = Graph::default();
        let as_map = id("ConfigMap", "ns", "owner", "o1");
        let mut as_secret = as_map.clone();
        as_secret.kind = "Secret".into();
        let a = id("Pod", "ns", "a", "d1");
        let b = id("Pod", "ns", "b", "d2");
        g.process(&change(
            ChangeKind::Added,
            &a,
            state(vec![owner_ref(&as_map, false)]),
        ));
        g.process(&change(
            ChangeKind::Added,
            &b,
            state(vec![owner_ref(&as_secret, false)]),
        ));
        // the virtual owner carries the first coordinates seen
        assert_eq!(g.get("o1").unwrap().identity, as_map);
        let mut c = change(ChangeKind::Deleted, &as_map, ObjectState::default());
        c.is_virtual = true;
        let fx = g.process(&c);
        // a's reference is verified absent; the node stays, renamed, for b's to be checked
        assert_eq!(fx.attempt_to_delete, vec!["d1".to_string()]);
        assert_eq!(fx.absent, vec![as_map]);
        assert_eq!(fx.attempt_to_delete_later, vec!["o1".to_string()]);
        assert_eq!(g.get("o1").unwrap().identity, as_secret);
    }

    #[test]
    fn an_object_seen_through_another_version_takes_that_api_version() {
        let mut g = Graph::default();
        let old = Identity {
            api_version: "example.com/v1beta1".into(),
            ..id("Widget", "ns", "w", "w1")
        };
        g.process(&change(ChangeKind::Added, &old, state(vec![])));
        let new = Identity {
            api_version: "example.com/v1".into(),
            ..old.clone()
        };
        g.process(&change(ChangeKind::Updated, &new, state(vec![])));
        assert_eq!(g.get("w1").unwrap().identity, new);
    }

    #[test]
    fn references_diff_finds_added_removed_and_changed() {
        let a = owner_ref(&id("A", "", "a", "1"), false);
        let b = owner_ref(&id("B", "", "b", "2"), true);
        let mut b2 = b.clone();
        b2.block_owner_deletion = false;
        let c = owner_ref(&id("C", "", "c", "3"), false);
        let (added, removed, changed) =
            diff_references(&[a.clone(), b.clone()], &[b2.clone(), c.clone()]);
        assert_eq!(added, vec![c]);
        assert_eq!(removed, vec![a]);
        assert_eq!(changed, vec![(b, b2)]);
    }
}
