//! Upstream's legacy-token-tracking controller
//! (pkg/controlplane/controller/legacytokentracking): the ConfigMap
//! `kube-system/kube-apiserver-legacy-service-account-token-tracking` records in
//! `data.since` the UTC date from which the apiservers label legacy service-account
//! token Secrets with their last use. The controller manager's legacy token cleaner
//! waits until that date is a clean-up period old before it judges a token unused.
//!
//! The ConfigMap is made when missing (so again after a deletion) and its date
//! rewritten when it does not parse; an existing readable date is never moved, since
//! it is when tracking began.

use std::time::Duration;

use apimachinery::errors::StatusError;
use apimachinery::resources::{self, ResourceInfo};
use serde_json::{Value, json};

use super::Registry;

/// The ConfigMap's name, in `kube-system`.
pub const CONFIG_MAP: &str = "kube-apiserver-legacy-service-account-token-tracking";
/// Its key holding the date.
const SINCE_KEY: &str = "since";
/// The date's layout (Go's `time.DateOnly`).
const DATE_FORMAT: &str = "%Y-%m-%d";
/// How often the ConfigMap is checked again.
const INTERVAL: Duration = Duration::from_secs(60);

fn config_maps() -> Result<&'static ResourceInfo, StatusError> {
    resources::find("", "v1", "configmaps")
        .ok_or_else(|| StatusError::internal_error("the resource table lacks configmaps"))
}

fn today() -> String {
    jiff::Timestamp::now().strftime(DATE_FORMAT).to_string()
}

/// Whether `data.since` holds a date upstream's parser reads.
fn since_is_readable(config_map: &Value) -> bool {
    config_map
        .pointer("/data/since")
        .and_then(Value::as_str)
        .is_some_and(|since| jiff::civil::Date::strptime(DATE_FORMAT, since).is_ok())
}

/// One round: the ConfigMap exists with a readable date.
async fn sync(registry: &Registry) -> Result<(), StatusError> {
    let resource = config_maps()?;
    match registry
        .get(resource, Some("kube-system"), CONFIG_MAP)
        .await
    {
        Err(e) if e.is_not_found() => {
            let object = json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": CONFIG_MAP, "namespace": "kube-system"},
                "data": {SINCE_KEY: today()},
            });
            match registry
                .create(resource, Some("kube-system"), object, false)
                .await
            {
                Err(e) if !e.is_already_exists() => Err(e),
                _ => Ok(()),
            }
        }
        Err(e) => Err(e),
        Ok(current) if since_is_readable(&current) => Ok(()),
        Ok(_) => {
            let written = registry
                .write(
                    resource,
                    Some("kube-system"),
                    CONFIG_MAP,
                    false,
                    |current| {
                        let mut updated = current.clone();
                        if !updated["data"].is_object() {
                            updated["data"] = json!({});
                        }
                        updated["data"][SINCE_KEY] = json!(today());
                        Ok(updated)
                    },
                )
                .await;
            match written {
                // gone meanwhile: the next round makes it
                Err(e) if !e.is_not_found() && !e.is_conflict() => Err(e),
                _ => Ok(()),
            }
        }
    }
}

/// Makes the ConfigMap now (waiting for the first round, as upstream's apiserver
/// starts with it), then checks it every minute for the life of the runtime.
pub async fn start(registry: Registry) {
    if let Err(e) = sync(&registry).await {
        tracing::info!(error = %e.0.message, "error creating the legacy token tracking ConfigMap");
    }
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(INTERVAL).await;
            if let Err(e) = sync(&registry).await {
                tracing::info!(error = %e.0.message, "error syncing the legacy token tracking ConfigMap");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_go_date_only() {
        assert!(since_is_readable(&json!({"data": {"since": "2024-02-29"}})));
        assert!(!since_is_readable(
            &json!({"data": {"since": "2023-02-29"}})
        ));
        assert!(!since_is_readable(&json!({"data": {"since": "yesterday"}})));
        assert!(!since_is_readable(&json!({"data": {}})));
        assert!(since_is_readable(&json!({"data": {"since": today()}})));
    }
}
