//! Per-cycle data that plugins write in PreFilter/PreScore and read in Filter/Score,
//! keyed by a name each plugin owns (upstream's `CycleState`), typed through `Any`.

use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;

use super::Snapshot;

/// A value kept in the cycle state. Cloned when preemption evaluates what-ifs.
pub trait StateData: Any + Send + Sync {
    /// A boxed copy.
    fn clone_data(&self) -> Box<dyn StateData>;
    /// For downcasting.
    fn as_any(&self) -> &dyn Any;
    /// For downcasting.
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl<T: Any + Send + Sync + Clone> StateData for T {
    fn clone_data(&self) -> Box<dyn StateData> {
        Box::new(self.clone())
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// One scheduling cycle's data.
#[derive(Default)]
pub struct CycleState {
    data: HashMap<&'static str, Box<dyn StateData>>,
    /// The cluster as this cycle sees it (every node, with its pods).
    pub snapshot: Arc<Snapshot>,
    /// Filter plugins whose PreFilter returned Skip for this pod.
    pub skip_filter_plugins: Skipped,
    /// Score plugins whose PreScore returned Skip for this pod.
    pub skip_score_plugins: Skipped,
}

/// A handful of plugin names, looked up once per plugin per node: a short list
/// compares faster than hashing the name each time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Skipped(Vec<&'static str>);

impl Skipped {
    /// Adds a plugin.
    pub fn insert(&mut self, plugin: &'static str) {
        if !self.contains(plugin) {
            self.0.push(plugin);
        }
    }

    /// Whether the plugin was added.
    pub fn contains(&self, plugin: &str) -> bool {
        self.0.iter().any(|p| *p == plugin)
    }
}

impl Clone for CycleState {
    fn clone(&self) -> Self {
        CycleState {
            data: self
                .data
                .iter()
                .map(|(k, v)| (*k, (**v).clone_data()))
                .collect(),
            snapshot: self.snapshot.clone(),
            skip_filter_plugins: self.skip_filter_plugins.clone(),
            skip_score_plugins: self.skip_score_plugins.clone(),
        }
    }
}

impl CycleState {
    /// A state over `snapshot`.
    pub fn new(snapshot: Arc<Snapshot>) -> CycleState {
        CycleState {
            snapshot,
            ..CycleState::default()
        }
    }

    /// Stores `value` under `key` (by convention the plugin's name, or a name derived
    /// from it).
    pub fn write<T: StateData>(&mut self, key: &'static str, value: T) {
        self.data.insert(key, Box::new(value));
    }

    /// The value under `key`, if it is a `T`.
    pub fn read<T: 'static>(&self, key: &str) -> Option<&T> {
        (**self.data.get(key)?).as_any().downcast_ref()
    }

    /// The value under `key` for change, if it is a `T`.
    pub fn read_mut<T: 'static>(&mut self, key: &str) -> Option<&mut T> {
        (**self.data.get_mut(key)?).as_any_mut().downcast_mut()
    }

    /// Removes the value under `key`.
    pub fn delete(&mut self, key: &str) {
        self.data.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq)]
    struct Counted(u32);

    #[test]
    fn values_are_typed_and_clones_are_independent() {
        let mut state = CycleState::default();
        state.write("PreFilterFoo", Counted(1));
        assert_eq!(state.read::<Counted>("PreFilterFoo"), Some(&Counted(1)));
        assert_eq!(state.read::<String>("PreFilterFoo"), None, "wrong type");
        assert_eq!(state.read::<Counted>("other"), None);
        let mut copy = state.clone();
        copy.read_mut::<Counted>("PreFilterFoo").unwrap().0 = 7;
        assert_eq!(state.read::<Counted>("PreFilterFoo"), Some(&Counted(1)));
        assert_eq!(copy.read::<Counted>("PreFilterFoo"), Some(&Counted(7)));
        copy.delete("PreFilterFoo");
        assert!(copy.read::<Counted>("PreFilterFoo").is_none());
    }
}
