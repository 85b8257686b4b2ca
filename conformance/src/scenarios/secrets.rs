//! As upstream's test/e2e/common/node/secrets.go (the API parts).

use serde_json::json;

use super::fail;
use crate::Cluster;

/// "Secrets should patch a secret": create, find by label, patch data and labels,
/// delete the collection by label.
pub fn patch_a_secret(cluster: &Cluster) -> Result<(), String> {
    let ns = cluster.namespace("secret-patch").map_err(fail)?;
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "test-secret", "labels": {"testsecret-constant": "true"}}, "type": "Opaque", "data": {"key": "dmFsdWU="}});
    cluster.create(&ns, &secret).map_err(fail)?;
    let patch =
        json!({"metadata": {"labels": {"testsecret": "true"}}, "data": {"key": "dmFsdWUy"}});
    cluster
        .kubectl(&[
            "patch",
            "-n",
            &ns,
            "secret",
            "test-secret",
            "--type=merge",
            "-p",
            &patch.to_string(),
        ])
        .map_err(fail)?;
    let got = cluster
        .get_json(&format!("/api/v1/namespaces/{ns}/secrets/test-secret"))
        .map_err(fail)?;
    if got["data"]["key"] != "dmFsdWUy" || got["metadata"]["labels"]["testsecret"] != "true" {
        return Err(format!("the patch did not land: {got}"));
    }
    cluster
        .kubectl(&[
            "delete",
            "-n",
            &ns,
            "secrets",
            "-l",
            "testsecret-constant=true",
        ])
        .map_err(fail)?;
    let after = cluster
        .get_json(&format!(
            "/api/v1/namespaces/{ns}/secrets?labelSelector=testsecret-constant%3Dtrue"
        ))
        .map_err(fail)?;
    if after["items"].as_array().is_some_and(|i| !i.is_empty()) {
        return Err(format!("delete by label left {after}"));
    }
    Ok(())
}

/// "Secrets should fail to create secret due to empty secret key".
pub fn empty_key_is_refused(cluster: &Cluster) -> Result<(), String> {
    let ns = cluster.namespace("secret-empty-key").map_err(fail)?;
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "secret-emptykey-test"}, "data": {"": "dmFsdWUtMQ=="}});
    match cluster.create(&ns, &secret) {
        Ok(_) => Err("a Secret with an empty key was created".into()),
        Err(crate::ClusterError::Failed { stderr, .. })
            if stderr.contains("a valid config key must consist of") =>
        {
            Ok(())
        }
        Err(e) => Err(format!("unexpected refusal: {e}")),
    }
}
