//! PrioritySort: the QueueSort plugin of upstream's default profile (`queuesort`):
//! higher `spec.priority` first; equal priorities in the order they entered the queue.

use std::sync::Arc;

use crate::framework::registry::Handle;
use crate::framework::{Plugin, QueueSortPlugin, QueuedPodInfo};

/// The plugin's name.
pub const NAME: &str = "PrioritySort";

/// Orders the active queue by priority, then by queue timestamp.
#[derive(Debug, Default)]
pub struct PrioritySort;

impl Plugin for PrioritySort {
    fn name(&self) -> &'static str {
        NAME
    }

    fn as_queue_sort(&self) -> Option<&dyn QueueSortPlugin> {
        Some(self)
    }
}

impl QueueSortPlugin for PrioritySort {
    fn less(&self, a: &QueuedPodInfo, b: &QueuedPodInfo) -> bool {
        // `PodInfo::priority` is 0 for a pod without `spec.priority`, as upstream's
        // corev1helpers.PodPriority.
        let (pa, pb) = (a.pod_info.priority(), b.pod_info.priority());
        pa > pb || (pa == pb && a.timestamp < b.timestamp)
    }
}

/// The constructor; the plugin takes no arguments.
pub fn new(_args: Option<&serde_json::Value>, _handle: &Handle) -> Result<Arc<dyn Plugin>, String> {
    Ok(Arc::new(PrioritySort))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::PodInfo;
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::json;
    use std::time::{Duration, Instant};

    fn queued(priority: Option<i32>, at: Instant) -> QueuedPodInfo {
        let mut spec = json!({"containers": []});
        if let Some(p) = priority {
            spec["priority"] = json!(p);
        }
        let p: Pod =
            serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": spec})).unwrap();
        let mut q = QueuedPodInfo::new(Arc::new(PodInfo::new(p)));
        q.timestamp = at;
        q
    }

    #[test]
    fn higher_priority_goes_first() {
        let pl = PrioritySort;
        let t = Instant::now();
        // the lower-priority pod was queued earlier; priority still wins
        let low = queued(Some(1), t);
        let high = queued(Some(100), t + Duration::from_secs(1));
        assert!(pl.less(&high, &low));
        assert!(!pl.less(&low, &high));
    }

    #[test]
    fn equal_priorities_keep_queue_order() {
        let pl = PrioritySort;
        let t = Instant::now();
        let first = queued(Some(5), t);
        let second = queued(Some(5), t + Duration::from_millis(1));
        assert!(pl.less(&first, &second));
        assert!(!pl.less(&second, &first));
        // a pod is not before itself
        assert!(!pl.less(&first, &first));
    }

    #[test]
    fn missing_priority_counts_as_zero() {
        let pl = PrioritySort;
        let t = Instant::now();
        let none = queued(None, t);
        let negative = queued(Some(-1), t);
        let zero = queued(Some(0), t + Duration::from_millis(1));
        assert!(pl.less(&none, &negative));
        assert!(pl.less(&none, &zero), "same priority, earlier timestamp");
    }

    #[test]
    fn constructor_exposes_queue_sort() {
        let pl = new(None, &Handle::default()).unwrap();
        assert_eq!(pl.name(), NAME);
        assert!(pl.as_queue_sort().is_some());
        assert!(pl.events_to_register().is_empty());
    }
}
