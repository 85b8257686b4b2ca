//! Server-side apply and field ownership (upstream's k8s.io/apimachinery
//! `util/managedfields` over sigs.k8s.io/structured-merge-diff): every write records
//! which manager owns which fields in `metadata.managedFields`, and an apply
//! (`application/apply-patch+yaml`) merges a partial object by the kind's schema,
//! refusing to take fields another manager owns unless forced.
//!
//! The two entry points are [`track_update`] (create, update, and the other patches:
//! the writer takes whatever it changed, from everyone) and [`apply`]. Both work on
//! the objects as JSON, with the kind's [`typed::Schema`] saying how lists and maps
//! merge and are owned.

pub(crate) mod fieldpath;
pub(crate) mod typed;

use apimachinery::errors::{Status, StatusCause, StatusError, StatusReason, cause_type};
use serde_json::{Map, Value, json};

use self::fieldpath::{Path, PathElement, Set, path_string};
use self::typed::Schema;
use crate::registry::meta;

/// Who writes: the field manager, the API version it writes through and the
/// subresource (`""`, `"status"`, `"scale"`).
#[derive(Clone, Debug)]
pub(crate) struct Writer {
    pub(crate) manager: String,
    pub(crate) api_version: String,
    pub(crate) subresource: &'static str,
}

/// The most update managers an object keeps before the oldest are merged into
/// `ancient-changes` buckets (upstream's DefaultMaxUpdateManagers).
const MAX_UPDATE_MANAGERS: usize = 10;

/// The manager that owns an untracked object's fields when it is first applied to.
const BEFORE_FIRST_APPLY: &str = "before-first-apply";

/// The annotation client-side apply keeps, and which applies by `kubectl` keep in step.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Operation {
    Apply,
    Update,
}

/// One `managedFields` entry.
#[derive(Clone, Debug)]
struct Entry {
    manager: String,
    operation: Operation,
    api_version: String,
    time: Option<String>,
    subresource: String,
    set: Set,
}

impl Entry {
    /// Upstream's identity of an entry: an apply manager is one entry whatever the
    /// version it applied through; an update manager is one per version.
    fn same_manager(
        &self,
        manager: &str,
        operation: Operation,
        api_version: &str,
        subresource: &str,
    ) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource == subresource
            && (operation == Operation::Apply || self.api_version == api_version)
    }

    /// The identifier upstream sorts conflicting managers by: the entry as JSON without
    /// its fields and time (and without the version, for an apply).
    fn identifier(&self) -> String {
        let mut id = Map::new();
        id.insert("manager".into(), self.manager.clone().into());
        id.insert("operation".into(), self.operation_name().into());
        if self.operation == Operation::Update {
            id.insert("apiVersion".into(), self.api_version.clone().into());
        }
        if !self.subresource.is_empty() {
            id.insert("subresource".into(), self.subresource.clone().into());
        }
        Value::Object(id).to_string()
    }

    fn operation_name(&self) -> &'static str {
        match self.operation {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }

    /// How a conflict names the manager: `"kubectl-client-side-apply" using apps/v1`.
    fn describe(&self) -> String {
        let mut text = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            text.push_str(&format!(" with subresource {:?}", self.subresource));
        }
        if self.operation == Operation::Update {
            text.push_str(&format!(" using {}", self.api_version));
        }
        text
    }
}

/// Reads `metadata.managedFields`; `Err` when an entry is not one upstream accepts.
fn decode(value: Option<&Value>) -> Result<Vec<Entry>, String> {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let Value::Array(items) = value else {
        return Err("managedFields must be a list".into());
    };
    let mut entries = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let text = |key: &str| {
            item.get(key)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        let operation = match text("operation").as_str() {
            "Apply" => Operation::Apply,
            "Update" => Operation::Update,
            _ => return Err("operation must be `Apply` or `Update`".into()),
        };
        if text("apiVersion").is_empty() {
            return Err("apiVersion must not be empty".into());
        }
        match text("fieldsType").as_str() {
            "FieldsV1" => {}
            "" => return Err(format!("missing fieldsType in managed fields entry {i}")),
            other => {
                return Err(format!(
                    "invalid fieldsType {other:?} in managed fields entry {i}"
                ));
            }
        }
        let set = match item.get("fieldsV1") {
            None | Some(Value::Null) => Set::new(),
            Some(fields) => Set::from_fields_v1(fields)?,
        };
        entries.push(Entry {
            manager: text("manager"),
            operation,
            api_version: text("apiVersion"),
            time: item.get("time").and_then(Value::as_str).map(str::to_owned),
            subresource: text("subresource"),
            set,
        });
    }
    Ok(entries)
}

/// Writes entries in upstream's order (applies first, then oldest first); `None` when
/// there are none, so the object carries no `managedFields` at all.
fn encode(mut entries: Vec<Entry>) -> Option<Value> {
    entries.retain(|e| !e.set.is_empty());
    if entries.is_empty() {
        return None;
    }
    entries.sort_by(|a, b| {
        (
            a.operation_name(),
            a.time.as_deref().unwrap_or(""),
            &a.manager,
            &a.api_version,
            &a.subresource,
        )
            .cmp(&(
                b.operation_name(),
                b.time.as_deref().unwrap_or(""),
                &b.manager,
                &b.api_version,
                &b.subresource,
            ))
    });
    let encoded = entries
        .into_iter()
        .map(|e| {
            let mut entry = Map::new();
            entry.insert("manager".into(), e.manager.clone().into());
            entry.insert("operation".into(), e.operation_name().into());
            entry.insert("apiVersion".into(), e.api_version.clone().into());
            if let Some(time) = &e.time {
                entry.insert("time".into(), time.clone().into());
            }
            entry.insert("fieldsType".into(), "FieldsV1".into());
            entry.insert("fieldsV1".into(), e.set.to_fields_v1());
            if !e.subresource.is_empty() {
                entry.insert("subresource".into(), e.subresource.clone().into());
            }
            Value::Object(entry)
        })
        .collect();
    Some(Value::Array(encoded))
}

fn set_managed_fields(object: &mut Value, entries: Vec<Entry>) {
    match encode(entries) {
        Some(encoded) => meta::set_meta(object, "managedFields", encoded),
        None => meta::remove_meta(object, "managedFields"),
    }
}

fn annotation<'a>(object: &'a Value, name: &str) -> Option<&'a str> {
    object
        .get("metadata")
        .and_then(|m| m.get("annotations"))
        .and_then(|a| a.get(name))
        .and_then(Value::as_str)
}

fn managed_fields_of(object: &Value) -> Option<&Value> {
    object.get("metadata").and_then(|m| m.get("managedFields"))
}

/// The paths no manager owns (upstream's StripMetaManager): identity and system
/// fields the server sets (and `metadata.managedFields` with anything under it).
fn strip_system_fields(mut set: Set) -> Set {
    let field = |name: &str| PathElement::Field(name.to_owned());
    for top in ["apiVersion", "kind", "metadata"] {
        set.remove(&[field(top)]);
    }
    for name in [
        "name",
        "namespace",
        "creationTimestamp",
        "selfLink",
        "uid",
        "clusterName",
        "generation",
        "resourceVersion",
    ] {
        set.remove(&[field("metadata"), field(name)]);
    }
    set.remove_subtree(&[field("metadata"), field("managedFields")]);
    set
}

/// The object a create is compared with: upstream compares with the Go type's zero
/// value, whose `metadata`, `spec` and `status` are already there (empty), so creating
/// them is not itself a change.
fn zero_object() -> Value {
    json!({"metadata": {}, "spec": {}, "status": {}})
}

/// What a write added or modified, and what it removed, outside the reset fields.
fn changed_and_removed(comparison: typed::Comparison, reset: &Set) -> (Set, Set) {
    let typed::Comparison {
        added,
        modified,
        removed,
    } = comparison;
    let changed = if modified.is_empty() {
        added
    } else {
        added.union(&modified)
    };
    if reset.is_empty() {
        return (changed, removed);
    }
    (
        changed.recursive_difference(reset),
        removed.recursive_difference(reset),
    )
}

/// Each other manager loses what the write changed or removed (updates always win).
fn take_from_others(entries: &mut [Entry], changed: &Set, removed: &Set, skip: Option<usize>) {
    for (i, entry) in entries.iter_mut().enumerate() {
        if Some(i) != skip {
            entry.set = entry.set.difference(changed).difference(removed);
        }
    }
}

/// Gives `owned` to the writer's update entry (one per manager, version and
/// subresource), stamped now.
fn record_update(entries: &mut Vec<Entry>, writer: &Writer, owned: Set) {
    if owned.is_empty() {
        return;
    }
    let time = Some(meta::now_rfc3339());
    match entries.iter_mut().find(|e| {
        e.same_manager(
            &writer.manager,
            Operation::Update,
            &writer.api_version,
            writer.subresource,
        )
    }) {
        Some(entry) => {
            entry.set = entry.set.union(&owned);
            entry.time = time;
        }
        None => entries.push(Entry {
            manager: writer.manager.clone(),
            operation: Operation::Update,
            api_version: writer.api_version.clone(),
            time,
            subresource: writer.subresource.to_owned(),
            set: owned,
        }),
    }
}

/// Keeps at most [`MAX_UPDATE_MANAGERS`] update entries: the oldest of one version
/// are merged into an `ancient-changes` bucket of that version.
fn cap_update_managers(entries: &mut Vec<Entry>) {
    let updates = |entries: &Vec<Entry>| {
        entries
            .iter()
            .filter(|e| e.operation == Operation::Update)
            .count()
    };
    if updates(entries) <= MAX_UPDATE_MANAGERS {
        return;
    }
    let mut order: Vec<usize> = (0..entries.len())
        .filter(|i| entries[*i].operation == Operation::Update)
        .collect();
    order.sort_by(|a, b| {
        let (a, b) = (&entries[*a], &entries[*b]);
        (a.time.as_deref().unwrap_or(""), a.identifier())
            .cmp(&(b.time.as_deref().unwrap_or(""), b.identifier()))
    });
    let mut removed = vec![false; entries.len()];
    let mut bucket_of: Vec<(String, usize)> = Vec::new();
    let mut count = order.len();
    for i in order {
        if count <= MAX_UPDATE_MANAGERS {
            break;
        }
        let version = entries[i].api_version.clone();
        match bucket_of
            .iter()
            .find(|(v, _)| *v == version)
            .map(|(_, b)| *b)
        {
            Some(bucket) => {
                // the older entry of this version becomes (or already is) the bucket
                let merged = entries[bucket].set.union(&entries[i].set);
                let time = entries[i].time.clone();
                let bucket_entry = &mut entries[bucket];
                bucket_entry.manager = "ancient-changes".into();
                bucket_entry.set = merged;
                bucket_entry.time = time;
                removed[i] = true;
                count -= 1;
            }
            None => bucket_of.push((version, i)),
        }
    }
    let mut index = 0;
    entries.retain(|_| {
        let keep = !removed[index];
        index += 1;
        keep
    });
}

/// The managedFields a create, update or non-apply patch starts from (upstream's
/// decodeLiveOrNew): a subresource write always keeps the live ones; `[]` (or `[{}]`)
/// in the request resets them; valid ones in the request replace them (how kubectl
/// hands client-side-apply fields over to server-side apply); anything else keeps the
/// live ones.
fn starting_entries(live: Option<&Value>, requested: &Value, subresource: &str) -> Vec<Entry> {
    let live_entries = || decode(live.and_then(managed_fields_of)).unwrap_or_default();
    if !subresource.is_empty() {
        return live_entries();
    }
    match managed_fields_of(requested) {
        Some(Value::Array(items))
            if items.is_empty()
                || (items.len() == 1 && items[0].as_object().is_some_and(Map::is_empty)) =>
        {
            Vec::new()
        }
        Some(value) => match decode(Some(value)) {
            Ok(entries) if !entries.is_empty() => entries,
            _ => live_entries(),
        },
        None => live_entries(),
    }
}

/// Records a create (`live` is `None`), update or non-apply patch in `new`'s
/// managedFields: the writer owns what it added or changed, which every other manager
/// loses; fields it removed leave everyone. `reset` holds the fields this endpoint may
/// not write (a main endpoint's `status`), which nobody gains here.
pub(crate) fn track_update(
    schema: Schema<'_>,
    live: Option<&Value>,
    new: &mut Value,
    writer: &Writer,
    reset: &Set,
) {
    let mut entries = starting_entries(live, new, writer.subresource);
    meta::remove_meta(new, "managedFields");
    // an existing object nobody tracks stays untracked until someone applies
    if entries.is_empty() && live.is_some() {
        return;
    }
    let zero = zero_object();
    let mut old = live.cloned().unwrap_or(zero);
    meta::remove_meta(&mut old, "managedFields");
    let comparison = schema.compare(&old, new);
    let (changed, removed) = changed_and_removed(comparison, reset);
    take_from_others(&mut entries, &changed, &removed, None);
    record_update(&mut entries, writer, strip_system_fields(changed));
    cap_update_managers(&mut entries);
    set_managed_fields(new, entries);
}

/// Why an apply failed.
#[derive(Debug)]
pub(crate) enum ApplyError {
    /// The configuration does not fit the schema (upstream answers 500 for these).
    Schema(String),
    /// Other managers own fields the apply would change (409).
    Conflicts(Vec<(String, String, Path)>),
}

impl ApplyError {
    /// Upstream's answer; `object` names the object (`ns/name`) and `gvk` its kind
    /// (`apps/v1, Kind=Deployment`) in a schema error.
    pub(crate) fn to_status_error(&self, object: &str, gvk: &str) -> StatusError {
        match self {
            ApplyError::Schema(detail) => StatusError(Status::failure(
                500,
                StatusReason::Unknown,
                format!("failed to create typed patch object ({object}; {gvk}): {detail}"),
            )),
            ApplyError::Conflicts(conflicts) => {
                let causes = conflicts
                    .iter()
                    .map(|(_, manager, path)| StatusCause {
                        cause_type: cause_type::FIELD_MANAGER_CONFLICT.into(),
                        message: format!("conflict with {manager}"),
                        field: path_string(path),
                    })
                    .collect();
                StatusError::apply_conflict(causes, conflict_message(conflicts))
            }
        }
    }
}

/// `Apply failed with 1 conflict: conflict with "m" using v1: .data.x`, or for several
/// a block per manager (sorted by identifier) with a `- <path>` line per field.
fn conflict_message(conflicts: &[(String, String, Path)]) -> String {
    if let [(_, manager, path)] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with {manager}: {}",
            path_string(path)
        );
    }
    let mut sorted: Vec<&(String, String, Path)> = conflicts.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut lines = Vec::new();
    let mut last: Option<&str> = None;
    for (id, manager, path) in sorted {
        if last != Some(id.as_str()) {
            lines.push(format!("conflicts with {manager}:"));
            last = Some(id);
        }
        lines.push(format!("- {}", path_string(path)));
    }
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        lines.join("\n")
    )
}

/// Applies `config` to `live` (`None`: the object does not exist yet) and returns
/// the object to store, managedFields included (upstream's Updater.Apply with the
/// managers around it): the configuration is merged in by the schema, becomes the
/// applier's whole set, fields the applier stopped applying are removed unless someone
/// else owns them, and fields other managers own may only change with `force`.
pub(crate) fn apply(
    schema: Schema<'_>,
    live: Option<&Value>,
    config: &Value,
    writer: &Writer,
    reset: &Set,
    force: bool,
) -> Result<Value, ApplyError> {
    let mut old = live.cloned().unwrap_or_else(zero_object);
    let mut entries = decode(managed_fields_of(&old)).unwrap_or_default();
    meta::remove_meta(&mut old, "managedFields");
    if entries.is_empty() && live.is_some() {
        // an untracked object: whoever made it owns all of it
        let comparison = schema.compare(&zero_object(), &old);
        let owned = comparison
            .added
            .union(&comparison.modified)
            .recursive_difference(reset);
        let before = Writer {
            manager: BEFORE_FIRST_APPLY.into(),
            ..writer.clone()
        };
        record_update(&mut entries, &before, strip_system_fields(owned));
    }
    let applied = schema.field_set(config).map_err(ApplyError::Schema)?;
    let applied = strip_system_fields(applied.recursive_difference(reset));
    // a new object is the configuration alone (the zero object only stands for the
    // Go type's empty parts when ownership is computed)
    let mut merged = match live {
        Some(_) => schema.merge(&old, config),
        None => schema.merge(&json!({}), config),
    };

    let position = entries
        .iter()
        .position(|e| e.same_manager(&writer.manager, Operation::Apply, "", writer.subresource));
    let last_applied = position.map(|i| entries[i].set.recursive_difference(reset));
    let applier = match position {
        Some(i) => i,
        None => {
            entries.push(Entry {
                manager: writer.manager.clone(),
                operation: Operation::Apply,
                api_version: writer.api_version.clone(),
                time: None,
                subresource: writer.subresource.to_owned(),
                set: Set::new(),
            });
            entries.len() - 1
        }
    };
    entries[applier].set = applied.clone();
    entries[applier].api_version = writer.api_version.clone();

    // fields the applier owned and no longer applies go, unless someone else owns them
    if let Some(last) = last_applied.filter(|s| !s.is_empty()) {
        let owned = entries.iter().fold(Set::new(), |all, e| all.union(&e.set));
        let mut gone = Set::new();
        for path in last.paths() {
            if !owned.has_prefix(&path) {
                gone.insert(&path);
            }
        }
        if !gone.is_empty() {
            schema.remove(&mut merged, &gone);
        }
    }

    let comparison = schema.compare(&old, &merged);
    let unchanged = comparison.added.is_empty()
        && comparison.modified.is_empty()
        && comparison.removed.is_empty();
    let (changed, removed) = changed_and_removed(comparison, reset);
    let mut conflicts = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        if i == applier {
            continue;
        }
        for path in entry.set.intersection(&changed).paths() {
            conflicts.push((entry.identifier(), entry.describe(), path));
        }
    }
    if !conflicts.is_empty() && !force && !forgiven(schema, &old, writer, &conflicts) {
        return Err(ApplyError::Conflicts(conflicts));
    }
    take_from_others(&mut entries, &changed, &removed, Some(applier));

    let unchanged = unchanged && live.is_some();
    let mut result = if unchanged { old } else { merged };
    if !unchanged {
        entries[applier].time = Some(meta::now_rfc3339());
    }
    if writer.manager == "kubectl" {
        keep_last_applied_in_step(&mut result, config);
    }
    cap_update_managers(&mut entries);
    set_managed_fields(&mut result, entries);
    Ok(result)
}

/// kubectl's move from client-side to server-side apply (upstream's
/// LastAppliedManager): conflicts are forgiven when each is a field the
/// last-applied-configuration annotation set to the value it still has, since the same
/// user applied it before.
fn forgiven(
    schema: Schema<'_>,
    live: &Value,
    writer: &Writer,
    conflicts: &[(String, String, Path)],
) -> bool {
    if writer.manager != "kubectl" {
        return false;
    }
    let Some(last) =
        annotation(live, LAST_APPLIED).and_then(|text| serde_json::from_str::<Value>(text).ok())
    else {
        return false;
    };
    if last.get("apiVersion").and_then(Value::as_str) != Some(writer.api_version.as_str()) {
        return false;
    }
    let Ok(set) = schema.field_set(&last) else {
        return false;
    };
    let drift = schema.compare(&last, live);
    let stale = drift.added.union(&drift.modified).union(&drift.removed);
    let allowed = set.difference(&stale);
    conflicts.iter().all(|(_, _, path)| allowed.has(path))
}

/// After an apply by `kubectl`, an existing last-applied-configuration annotation is
/// rewritten to the configuration just applied (upstream's LastAppliedUpdater), so a
/// later client-side apply diffs against it. It is never added where it was not.
fn keep_last_applied_in_step(object: &mut Value, config: &Value) {
    let has = annotation(object, LAST_APPLIED).is_some_and(|t| !t.is_empty());
    if !has {
        return;
    }
    let mut config = config.clone();
    if let Some(annotations) = config
        .get_mut("metadata")
        .and_then(|m| m.get_mut("annotations"))
        .and_then(Value::as_object_mut)
    {
        annotations.remove(LAST_APPLIED);
    }
    let text = config.to_string();
    if let Some(annotations) = object
        .get_mut("metadata")
        .and_then(|m| m.get_mut("annotations"))
        .and_then(Value::as_object_mut)
    {
        // upstream drops the annotation rather than exceed the annotations' size limit
        if text.len() > 256 * 1024 {
            annotations.remove(LAST_APPLIED);
        } else {
            annotations.insert(LAST_APPLIED.into(), text.into());
        }
    }
}

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;
