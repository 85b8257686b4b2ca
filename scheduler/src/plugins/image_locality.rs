//! ImageLocality: upstream's `imagelocality` Score plugin. Nodes that already hold the
//! pod's container images score higher, in proportion to the images' sizes; an image
//! found on many nodes counts for less, so that pods do not all pile onto the few nodes
//! that pulled it first (upstream's "node heating problem").

use std::sync::Arc;

use crate::framework::registry::Handle;
use crate::framework::types::normalized_image_name;
use crate::framework::{
    CycleState, MAX_NODE_SCORE, NodeInfo, Plugin, PodInfo, ScorePlugin, Status,
};

/// The plugin's name.
pub const NAME: &str = "ImageLocality";

const MB: i64 = 1024 * 1024;
/// Below this summed size a node scores 0 (upstream's `minThreshold`): small images are
/// cheap to pull anyway.
const MIN_THRESHOLD: i64 = 23 * MB;
/// The summed size per container at which a node gets the full score (upstream's
/// `maxContainerThreshold`).
const MAX_CONTAINER_THRESHOLD: i64 = 1000 * MB;

/// Scores nodes by the images of the pod they already have.
#[derive(Debug, Default)]
pub struct ImageLocality;

/// An image's size scaled by the share of nodes that have it (upstream's
/// `scaledImageScore`), with upstream's float arithmetic and truncation.
fn scaled_image_score(size: i64, nodes_with_image: usize, total_nodes: usize) -> i64 {
    let spread = nodes_with_image as f64 / total_nodes as f64;
    (size as f64 * spread) as i64
}

/// The node's score from the summed scaled sizes (upstream's `calculatePriority`): the
/// sum clamped to [23 MB, 1000 MB × containers], mapped linearly onto 0..=100.
pub fn calculate_priority(sum_scores: i64, num_containers: usize) -> i64 {
    let max_threshold = MAX_CONTAINER_THRESHOLD * num_containers as i64;
    let sum = if sum_scores < MIN_THRESHOLD {
        MIN_THRESHOLD
    } else if sum_scores > max_threshold {
        max_threshold
    } else {
        sum_scores
    };
    if max_threshold == MIN_THRESHOLD {
        // unreachable with whole containers; keeps the division defined
        return 0;
    }
    MAX_NODE_SCORE * (sum - MIN_THRESHOLD) / (max_threshold - MIN_THRESHOLD)
}

impl Plugin for ImageLocality {
    fn name(&self) -> &'static str {
        NAME
    }

    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
}

impl ScorePlugin for ImageLocality {
    fn score(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> (i64, Status) {
        let Some(spec) = pod.pod.spec.as_ref() else {
            return (0, Status::success());
        };
        let snapshot = &state.snapshot;
        let init = spec.init_containers.as_deref().unwrap_or(&[]);
        // Upstream counts init containers too (since v1.27), in the sum and in the
        // threshold.
        let mut sum = 0;
        for container in init.iter().chain(spec.containers.iter()) {
            let name = normalized_image_name(container.image.as_deref().unwrap_or(""));
            if let Some(size) = node.images.get(&name) {
                // The node has the image, so it counts at least itself even if the
                // snapshot lags behind the node info it was handed.
                let with_image = snapshot
                    .image_node_counts
                    .get(&name)
                    .copied()
                    .unwrap_or(1)
                    .max(1);
                let total = snapshot.len().max(with_image);
                sum += scaled_image_score(*size, with_image, total);
            }
        }
        let containers = init.len() + spec.containers.len();
        (calculate_priority(sum, containers), Status::success())
    }
}

/// The constructor; the plugin takes no arguments.
pub fn new(_args: Option<&serde_json::Value>, _handle: &Handle) -> Result<Arc<dyn Plugin>, String> {
    Ok(Arc::new(ImageLocality))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::Snapshot;
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::json;

    fn pod(containers: &[&str], init: &[&str]) -> PodInfo {
        let c: Vec<_> = containers
            .iter()
            .enumerate()
            .map(|(i, im)| json!({"name": format!("c{i}"), "image": im}))
            .collect();
        let ic: Vec<_> = init
            .iter()
            .enumerate()
            .map(|(i, im)| json!({"name": format!("i{i}"), "image": im}))
            .collect();
        let p: Pod = serde_json::from_value(
            json!({"metadata": {"name": "p"}, "spec": {"containers": c, "initContainers": ic}}),
        )
        .unwrap();
        PodInfo::new(p)
    }

    fn node(name: &str, images: serde_json::Value) -> NodeInfo {
        NodeInfo::new(
            serde_json::from_value(
                json!({"metadata": {"name": name}, "status": {"images": images}}),
            )
            .unwrap(),
        )
    }

    /// Upstream's test nodes: node1 holds 40 MB, 300 MB and 2000 MB images; node2 250 MB
    /// and 10 MB ones; node3 none.
    fn nodes(with_empty: bool) -> Vec<NodeInfo> {
        let mut v = vec![
            node(
                "machine1",
                json!([
                    {"names": ["gcr.io/40:latest", "gcr.io/40:v1", "gcr.io/40:v1"], "sizeBytes": 40 * MB},
                    {"names": ["gcr.io/300:latest", "gcr.io/300:v1"], "sizeBytes": 300 * MB},
                    {"names": ["gcr.io/2000:latest"], "sizeBytes": 2000 * MB}
                ]),
            ),
            node(
                "machine2",
                json!([
                    {"names": ["gcr.io/250:latest"], "sizeBytes": 250 * MB},
                    {"names": ["gcr.io/10:latest", "gcr.io/10:v1"], "sizeBytes": 10 * MB}
                ]),
            ),
        ];
        if with_empty {
            v.push(node("machine3", json!([])));
        }
        v
    }

    fn scores(p: &PodInfo, nodes: Vec<NodeInfo>) -> Vec<i64> {
        let state = CycleState::new(Arc::new(Snapshot::from_nodes(nodes)));
        state
            .snapshot
            .nodes
            .iter()
            .map(|n| {
                let (score, status) = ImageLocality.score(&state, p, n);
                assert!(status.is_success());
                score
            })
            .collect()
    }

    /// The expected score from sizes in MB, with upstream's formula written out.
    fn expect(sum_bytes: i64, containers: i64) -> i64 {
        let max = 1000 * MB * containers;
        let s = sum_bytes.clamp(23 * MB, max);
        100 * (s - 23 * MB) / (max - 23 * MB)
    }

    #[test]
    fn two_images_spread_on_two_nodes_prefer_the_larger() {
        // node1: 40 MB / 2 < 23 MB → 0; node2: 100 * (125 - 23) / (2000 - 23) = 5
        assert_eq!(
            scores(&pod(&["gcr.io/40", "gcr.io/250"], &[]), nodes(false)),
            vec![0, 5]
        );
    }

    #[test]
    fn two_images_on_one_node() {
        // node1: 100 * ((40 + 300) / 2 - 23) / (2000 - 23) = 7
        assert_eq!(
            scores(&pod(&["gcr.io/40", "gcr.io/300"], &[]), nodes(false)),
            vec![7, 0]
        );
    }

    #[test]
    fn sums_are_clamped_to_the_thresholds() {
        // node1: 2000 / 2 = 1000 MB of 2000 → 49; node2: 10 / 2 < 23 → 0
        assert_eq!(
            scores(&pod(&["gcr.io/2000", "gcr.io/10"], &[]), nodes(false)),
            vec![49, 0]
        );
        // with a third node the 2000 MB image counts a third
        let got = scores(&pod(&["gcr.io/2000", "gcr.io/10"], &[]), nodes(true));
        assert_eq!(got, vec![expect(2000 * MB / 3, 2), 0, 0]);
        assert_eq!(got[0], 32);
        // one container of 2000 MB on one of one node: above the max → 100
        let single = vec![node(
            "m",
            json!([{"names": ["gcr.io/2000:latest"], "sizeBytes": 2000 * MB}]),
        )];
        assert_eq!(scores(&pod(&["gcr.io/2000"], &[]), single), vec![100]);
    }

    #[test]
    fn init_containers_count() {
        // the 300 MB image only in an init container: (300 + 40) / 2 over 3 containers' max
        let got = scores(
            &pod(&["gcr.io/40", "gcr.io/10"], &["gcr.io/300"]),
            nodes(false),
        );
        assert_eq!(got, vec![expect((300 * MB + 40 * MB) / 2, 3), 0]);
        assert_eq!(got[0], 4);
    }

    #[test]
    fn images_with_tags_and_digests_match_exactly() {
        let n = vec![node(
            "m",
            json!([
                {"names": ["gcr.io/300:v1", "gcr.io/300@sha256:abc"], "sizeBytes": 300 * MB}
            ]),
        )];
        assert_eq!(
            scores(&pod(&["gcr.io/300:v1"], &[]), n.clone()),
            vec![expect(300 * MB, 1)]
        );
        assert_eq!(
            scores(&pod(&["gcr.io/300@sha256:abc"], &[]), n.clone()),
            vec![expect(300 * MB, 1)]
        );
        // no tag means :latest, which this node does not have
        assert_eq!(scores(&pod(&["gcr.io/300"], &[]), n), vec![0]);
    }

    #[test]
    fn calculate_priority_edges() {
        assert_eq!(calculate_priority(0, 1), 0);
        assert_eq!(calculate_priority(23 * MB, 1), 0);
        assert_eq!(calculate_priority(1000 * MB, 1), 100);
        assert_eq!(calculate_priority(5000 * MB, 1), 100);
        assert_eq!(calculate_priority(0, 0), 0, "a pod without containers");
    }

    #[test]
    fn constructor() {
        let pl = new(None, &Handle::default()).unwrap();
        assert_eq!(pl.name(), NAME);
        assert!(pl.as_score().is_some() && pl.as_filter().is_none());
    }
}
