//! As upstream's test/e2e/apimachinery/chunking.go: paged lists return every item once,
//! in order, with continue tokens and remainingItemCount.

use serde_json::json;

use super::fail;
use crate::Cluster;

/// "Servers with support for API chunking should return chunks of results for list calls".
pub fn chunks_of_results(cluster: &Cluster) -> Result<(), String> {
    let ns = cluster.namespace("chunking").map_err(fail)?;
    let total = 40;
    let items: Vec<_> = (0..total)
        .map(|i| json!({"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": format!("template-{i:04}")}, "template": {"spec": {"containers": [{"name": "test", "image": "busybox"}]}}}))
        .collect();
    cluster
        .create(
            &ns,
            &json!({"apiVersion": "v1", "kind": "List", "items": items}),
        )
        .map_err(fail)?;
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let path = format!(
            "/api/v1/namespaces/{ns}/podtemplates?limit=17{}",
            if token.is_empty() {
                String::new()
            } else {
                format!("&continue={token}")
            }
        );
        let page = cluster.get_json(&path).map_err(fail)?;
        let names: Vec<String> = page["items"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|i| i["metadata"]["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let remaining = total - seen.len() - names.len();
        seen.extend(names);
        match page["metadata"]["continue"].as_str() {
            Some(next) if !next.is_empty() => {
                if page["metadata"]["remainingItemCount"].as_u64() != Some(remaining as u64) {
                    return Err(format!(
                        "remainingItemCount {} where {remaining} remain",
                        page["metadata"]["remainingItemCount"]
                    ));
                }
                token = next.to_owned();
            }
            _ => break,
        }
    }
    let expected: Vec<String> = (0..total).map(|i| format!("template-{i:04}")).collect();
    if seen != expected {
        return Err(format!("paged list returned {seen:?}"));
    }
    Ok(())
}
