//! Conversion of custom resources between their CRD's versions (upstream's
//! apiextensions-apiserver `conversion` package). With strategy `None` only
//! `apiVersion` changes; with `Webhook` the objects go to the CRD's conversion webhook
//! as a `ConversionReview` (apiextensions.k8s.io/v1) over HTTPS, and the answer is
//! checked as upstream checks it: the request's uid, a `Success` result, one object
//! per object sent, each in the desired version and of the same kind, and no
//! metadata changed except labels and annotations.
//!
//! Objects are converted where they cross the storage boundary: to the storage version
//! when written, to the requested version when read (before the version's schema
//! prunes and defaults them). Those places are synchronous (inside the store's
//! compare-and-swap), so the webhook call is waited for on the spot.

use std::time::Duration;

use apimachinery::errors::StatusError;
use serde_json::{Value, json};

use super::Served;
use crate::auth::admission::webhook::{Target, post};
use crate::registry::Registry;

/// Upstream's conversion webhook timeout.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(30);

/// Converts each of `objects` not already in `desired` (`group/version`) to it.
pub(crate) fn convert(
    registry: &Registry,
    served: &Served,
    objects: &mut [&mut Value],
    desired: &str,
) -> Result<(), StatusError> {
    let mut pending: Vec<&mut Value> = objects
        .iter_mut()
        .map(|o| &mut **o)
        .filter(|o| o.get("apiVersion").and_then(Value::as_str) != Some(desired))
        .collect();
    if pending.is_empty() {
        return Ok(());
    }
    let Some(client) = &served.conversion_webhook else {
        for object in pending {
            if let Some(map) = object.as_object_mut() {
                map.insert("apiVersion".into(), desired.into());
            }
        }
        return Ok(());
    };
    let from = go_gvk(&pending[0]);
    let sent: Vec<Value> = pending.iter().map(|o| (**o).clone()).collect();
    let uid = uuid::Uuid::new_v4().to_string();
    let review = json!({
        "kind": "ConversionReview",
        "apiVersion": "apiextensions.k8s.io/v1",
        "request": {"uid": uid, "desiredAPIVersion": desired, "objects": sent},
    });
    let failed = |e: String| {
        StatusError::internal_error(format!("conversion webhook for {from} failed: {e}"))
    };
    let registry = registry.clone();
    let client = client.clone();
    let answer = wait_for(async move {
        let target = Target::of_client_config(&registry, &client).await?;
        post(&target, WEBHOOK_TIMEOUT, review.to_string().into_bytes()).await
    })
    .ok_or_else(|| failed("the call could not be made".into()))?
    .map_err(failed)?;
    let converted = check_answer(&answer, &uid, &sent, desired).map_err(failed)?;
    for (object, converted) in pending.iter_mut().zip(converted) {
        **object = converted;
    }
    Ok(())
}

/// The converted objects of a webhook's answer, after upstream's checks; the
/// originals' metadata is kept but for labels and annotations.
fn check_answer(
    answer: &Value,
    uid: &str,
    sent: &[Value],
    desired: &str,
) -> Result<Vec<Value>, String> {
    let response = answer
        .get("response")
        .filter(|r| r.is_object())
        .ok_or("conversion webhook response was absent")?;
    let got = response.get("uid").and_then(Value::as_str).unwrap_or("");
    if got != uid {
        return Err(format!("expected response uid {uid:?}, got {got:?}"));
    }
    let result = &response["result"];
    if result.get("status").and_then(Value::as_str) != Some("Success") {
        return Err(result
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("the webhook did not report success")
            .to_owned());
    }
    let converted = response
        .get("convertedObjects")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if converted.len() != sent.len() {
        return Err(format!(
            "returned {} objects, expected {}",
            converted.len(),
            sent.len()
        ));
    }
    converted
        .into_iter()
        .zip(sent)
        .enumerate()
        .map(|(i, (mut object, original))| {
            let api_version = object.get("apiVersion").and_then(Value::as_str).unwrap_or("");
            if api_version != desired {
                return Err(format!(
                    "invalid converted object at index {i}: invalid apiVersion {api_version:?}, expected {desired:?}"
                ));
            }
            let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
            let expected = original.get("kind").and_then(Value::as_str).unwrap_or("");
            if kind != expected {
                return Err(format!(
                    "invalid converted object at index {i}: invalid kind {kind:?}, expected {expected:?}"
                ));
            }
            // only labels and annotations may change
            let mut metadata = original.get("metadata").cloned().unwrap_or(json!({}));
            for field in ["labels", "annotations"] {
                match object.pointer(&format!("/metadata/{field}")) {
                    Some(value) if !value.is_null() => metadata[field] = value.clone(),
                    _ => {
                        if let Some(map) = metadata.as_object_mut() {
                            map.remove(field);
                        }
                    }
                }
            }
            object["metadata"] = metadata;
            Ok(object)
        })
        .collect()
}

/// Go's `GroupVersionKind.String()` of an object: `stable.example.com/v1, Kind=CronTab`.
fn go_gvk(object: &Value) -> String {
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    format!("{group}/{version}, Kind={kind}")
}

/// Runs `future` to completion from synchronous code: on a multi-threaded runtime
/// in place (other workers carry on), elsewhere on a thread of its own with its own
/// runtime. `None` if that runtime could not start or the future panicked.
fn wait_for<F>(future: F) -> Option<F::Output>
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    use tokio::runtime::{Handle, RuntimeFlavor};
    if let Ok(handle) = Handle::try_current()
        && handle.runtime_flavor() == RuntimeFlavor::MultiThread
    {
        return Some(tokio::task::block_in_place(|| handle.block_on(future)));
    }
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()
                    .map(|runtime| runtime.block_on(future))
            })
            .join()
            .ok()
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent() -> Vec<Value> {
        vec![json!({"apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": "w", "uid": "u1", "labels": {"a": "1"}}, "spec": {"size": 1}})]
    }

    fn answer(objects: Value) -> Value {
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
            "response": {"uid": "x", "result": {"status": "Success"}, "convertedObjects": objects}})
    }

    #[test]
    fn answers_are_checked_and_only_labels_and_annotations_may_change() {
        let converted = check_answer(
            &answer(json!([{"apiVersion": "example.com/v2", "kind": "Widget",
                "metadata": {"name": "renamed", "labels": {"b": "2"}}, "spec": {"sizeV2": 1}}])),
            "x",
            &sent(),
            "example.com/v2",
        )
        .unwrap();
        assert_eq!(
            converted[0]["metadata"],
            json!({"name": "w", "uid": "u1", "labels": {"b": "2"}})
        );
        assert_eq!(converted[0]["spec"], json!({"sizeV2": 1}));

        let wrong_version = check_answer(
            &answer(json!([{"apiVersion": "example.com/v1", "kind": "Widget"}])),
            "x",
            &sent(),
            "example.com/v2",
        );
        assert_eq!(
            wrong_version.unwrap_err(),
            r#"invalid converted object at index 0: invalid apiVersion "example.com/v1", expected "example.com/v2""#
        );
        assert_eq!(
            check_answer(&answer(json!([])), "x", &sent(), "example.com/v2").unwrap_err(),
            "returned 0 objects, expected 1"
        );
        assert_eq!(
            check_answer(&answer(json!([])), "other", &sent(), "example.com/v2").unwrap_err(),
            r#"expected response uid "other", got "x""#
        );
        let failure =
            json!({"response": {"uid": "x", "result": {"status": "Failure", "message": "no way"}}});
        assert_eq!(
            check_answer(&failure, "x", &sent(), "example.com/v2").unwrap_err(),
            "no way"
        );
    }
}
