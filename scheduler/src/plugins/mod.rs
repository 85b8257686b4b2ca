//! The in-tree plugins of upstream's default profile, one module per plugin with its
//! tests beside it, and the registry that maps their names to constructors.

pub mod default_binder;
pub mod default_preemption;
pub mod image_locality;
pub mod inter_pod_affinity;
pub mod node_affinity;
pub mod node_name;
pub mod node_ports;
pub mod node_resources;
pub mod node_unschedulable;
pub mod node_volume_limits;
pub mod pod_topology_spread;
pub mod priority_sort;
pub mod scheduling_gates;
pub mod taint_toleration;
pub mod volume_binding;
pub mod volume_restrictions;
pub mod volume_zone;

use std::collections::BTreeMap;

use crate::framework::registry::PluginFactory;

/// Upstream's `NewInTreeRegistry`: every plugin built so far.
pub fn registry() -> BTreeMap<&'static str, PluginFactory> {
    let entries: [(&'static str, PluginFactory); 19] = [
        (scheduling_gates::NAME, scheduling_gates::new),
        (priority_sort::NAME, priority_sort::new),
        (node_unschedulable::NAME, node_unschedulable::new),
        (node_name::NAME, node_name::new),
        (node_ports::NAME, node_ports::new),
        (node_affinity::NAME, node_affinity::new),
        (taint_toleration::NAME, taint_toleration::new),
        (node_resources::fit::NAME, node_resources::fit::new),
        (
            node_resources::balanced_allocation::NAME,
            node_resources::balanced_allocation::new,
        ),
        (image_locality::NAME, image_locality::new),
        (inter_pod_affinity::NAME, inter_pod_affinity::new),
        (pod_topology_spread::NAME, pod_topology_spread::new),
        (volume_restrictions::NAME, volume_restrictions::new),
        (node_volume_limits::NAME, node_volume_limits::new),
        (volume_binding::NAME, volume_binding::new),
        (volume_zone::NAME, volume_zone::new),
        (default_binder::NAME, default_binder::new),
        (default_preemption::NAME, default_preemption::new),
        // keeps the array length honest when a plugin is added
        ("", |_, _| Err("no such plugin".to_owned())),
    ];
    entries
        .into_iter()
        .filter(|(name, _)| !name.is_empty())
        .collect()
}
