//! As upstream's test/e2e/auth/certificates.go: the CertificateSigningRequest API's
//! discovery, its main resource's verbs, and its `approval` and `status` subresources.

use base64::Engine;
use serde_json::{Value, json};

use super::{fail, token};
use crate::Cluster;

const CSRS: &str = "/apis/certificates.k8s.io/v1/certificatesigningrequests";

/// Sends `body` with `method` to `path`, expecting `want` back; the answer's JSON.
fn send(
    cluster: &Cluster,
    method: &str,
    path: &str,
    content_type: &str,
    body: &Value,
    want: u16,
) -> Result<Value, String> {
    let answer = cluster
        .request(method, path, content_type, &body.to_string())
        .map_err(fail)?;
    if answer.status != want {
        return Err(format!(
            "{method} {path}: {} instead of {want}: {}",
            answer.status, answer.body
        ));
    }
    Ok(answer.json())
}

/// The names of the CSRs of `signer`.
fn names_of(cluster: &Cluster, signer: &str) -> Result<(Vec<String>, String), String> {
    let list = cluster
        .get_json(&format!("{CSRS}?fieldSelector=spec.signerName%3D{signer}"))
        .map_err(fail)?;
    let names = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["metadata"]["name"].as_str().map(str::to_owned))
        .collect();
    let version = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    Ok((names, version))
}

fn condition_types(csr: &Value) -> Vec<&str> {
    csr["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["type"].as_str())
        .collect()
}

/// "[sig-auth] Certificates API should support CSR API operations".
pub fn csr_api_operations(cluster: &Cluster) -> Result<(), String> {
    let b64 = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
    let key = rcgen::KeyPair::generate().map_err(fail)?;
    let mut params =
        rcgen::CertificateParams::new(vec!["e2e.example.com".to_owned()]).map_err(fail)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "e2e.example.com");
    let request = params
        .serialize_request(&key)
        .and_then(|r| r.pem())
        .map_err(fail)?;
    let certificate = params.self_signed(&key).map_err(fail)?.pem();
    let signer = format!("example.com/e2e-{}", token());
    let template = json!({
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"generateName": "e2e-example-csr-"},
        "spec": {
            "request": b64(&request),
            "signerName": signer,
            "expirationSeconds": 3600,
            "usages": ["digital signature", "key encipherment", "server auth"]
        }
    });

    // discovery
    let groups = cluster.get_json("/apis").map_err(fail)?;
    let served = groups["groups"].as_array().into_iter().flatten().any(|g| {
        g["name"] == "certificates.k8s.io"
            && g["versions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|v| v["version"] == "v1")
    });
    if !served {
        return Err("certificates.k8s.io/v1 missing from /apis".into());
    }
    let group = cluster
        .get_json("/apis/certificates.k8s.io")
        .map_err(fail)?;
    if !group["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|v| v["version"] == "v1")
    {
        return Err(format!(
            "v1 missing from /apis/certificates.k8s.io: {group}"
        ));
    }
    let resources = cluster
        .get_json("/apis/certificates.k8s.io/v1")
        .map_err(fail)?;
    for name in [
        "certificatesigningrequests",
        "certificatesigningrequests/approval",
        "certificatesigningrequests/status",
    ] {
        if !resources["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|r| r["name"] == name)
        {
            return Err(format!("{name} missing from /apis/certificates.k8s.io/v1"));
        }
    }

    // create, get, list
    let json_type = "application/json";
    let mut created = Value::Null;
    for _ in 0..3 {
        created = send(cluster, "POST", CSRS, json_type, &template, 201)?;
    }
    let name = created["metadata"]["name"]
        .as_str()
        .ok_or("the created CSR has no name")?
        .to_owned();
    let path = format!("{CSRS}/{name}");
    let gotten = cluster.get_json(&path).map_err(fail)?;
    if gotten["metadata"]["uid"] != created["metadata"]["uid"]
        || gotten["spec"]["expirationSeconds"] != 3600
    {
        return Err(format!("got {gotten}, created {created}"));
    }
    let (names, listed_at) = names_of(cluster, &signer)?;
    if names.len() != 3 {
        return Err(format!("filtered list should have 3 items: {names:?}"));
    }

    // patch and update, seen by a watch from the list
    let merge = "application/merge-patch+json";
    let patched = send(
        cluster,
        "PATCH",
        &path,
        merge,
        &json!({"metadata": {"annotations": {"patched": "true"}}}),
        200,
    )?;
    if patched["metadata"]["annotations"]["patched"] != "true" {
        return Err(format!("patched object lacks the annotation: {patched}"));
    }
    let mut to_update = patched.clone();
    to_update["metadata"]["annotations"]["updated"] = json!("true");
    let updated = send(cluster, "PUT", &path, json_type, &to_update, 200)?;
    if updated["metadata"]["annotations"]["updated"] != "true" {
        return Err(format!("updated object lacks the annotation: {updated}"));
    }
    let events = cluster
        .kubectl(&[
            "get",
            "--raw",
            &format!(
                "{CSRS}?watch=1&resourceVersion={listed_at}&timeoutSeconds=1&fieldSelector=metadata.name%3D{name}"
            ),
        ])
        .map_err(fail)?;
    let mut saw_patch = false;
    for line in events.lines().filter(|l| !l.trim().is_empty()) {
        let event: Value = serde_json::from_str(line).map_err(fail)?;
        if event["type"] != "MODIFIED" {
            return Err(format!("watch event {} instead of MODIFIED", event["type"]));
        }
        saw_patch |= event["object"]["metadata"]["annotations"]["patched"] == "true";
    }
    if !saw_patch {
        return Err(format!(
            "no watch event with the patched annotation: {events}"
        ));
    }

    // the approval subresource
    let approval = format!("{path}/approval");
    let gotten = cluster.get_json(&approval).map_err(fail)?;
    if gotten["kind"] != "CertificateSigningRequest"
        || gotten["apiVersion"] != "certificates.k8s.io/v1"
        || gotten["metadata"]["uid"] != created["metadata"]["uid"]
    {
        return Err(format!("GET approval: {gotten}"));
    }
    let patched = send(
        cluster,
        "PATCH",
        &approval,
        merge,
        &json!({"metadata": {"annotations": {"patchedapproval": "true"}},
                "status": {"conditions": [{"type": "ApprovalPatch", "status": "True", "reason": "e2e"}]}}),
        200,
    )?;
    if condition_types(&patched) != ["ApprovalPatch"]
        || patched["metadata"]["annotations"]["patchedapproval"] != "true"
    {
        return Err(format!(
            "patched approval lacks the condition or annotation: {patched}"
        ));
    }
    let mut to_approve = patched.clone();
    to_approve["status"]["conditions"]
        .as_array_mut()
        .ok_or("no conditions")?
        .push(
            json!({"type": "Approved", "status": "True", "reason": "E2E",
                     "message": "Set from an e2e test"}),
        );
    let approved = send(cluster, "PUT", &approval, json_type, &to_approve, 200)?;
    if condition_types(&approved) != ["ApprovalPatch", "Approved"] {
        return Err(format!("updated approval lacks Approved: {approved}"));
    }

    // the status subresource
    let status = format!("{path}/status");
    let gotten = cluster.get_json(&status).map_err(fail)?;
    if gotten["kind"] != "CertificateSigningRequest"
        || gotten["metadata"]["uid"] != created["metadata"]["uid"]
    {
        return Err(format!("GET status: {gotten}"));
    }
    let patched = send(
        cluster,
        "PATCH",
        &status,
        merge,
        &json!({"metadata": {"annotations": {"patchedstatus": "true"}},
                "status": {"certificate": b64(&certificate)}}),
        200,
    )?;
    if patched["status"]["certificate"] != b64(&certificate)
        || patched["metadata"]["annotations"]["patchedstatus"] != "true"
    {
        return Err(format!(
            "patched status lacks the certificate or annotation: {patched}"
        ));
    }
    let mut to_update = patched.clone();
    to_update["status"]["conditions"]
        .as_array_mut()
        .ok_or("no conditions")?
        .push(
            json!({"type": "StatusUpdate", "status": "True", "reason": "E2E",
                     "message": "Set from an e2e test"}),
        );
    let updated = send(cluster, "PUT", &status, json_type, &to_update, 200)?;
    if condition_types(&updated) != ["ApprovalPatch", "Approved", "StatusUpdate"] {
        return Err(format!("updated status lacks StatusUpdate: {updated}"));
    }

    // delete one, then the collection
    send(cluster, "DELETE", &path, json_type, &json!({}), 200)?;
    let gone = cluster.request("GET", &path, json_type, "").map_err(fail)?;
    if gone.status != 404 {
        return Err(format!("GET after delete: {} {}", gone.status, gone.body));
    }
    let (names, _) = names_of(cluster, &signer)?;
    if names.len() != 2 {
        return Err(format!("filtered list should have 2 items: {names:?}"));
    }
    send(
        cluster,
        "DELETE",
        &format!("{CSRS}?fieldSelector=spec.signerName%3D{signer}"),
        json_type,
        &json!({}),
        200,
    )?;
    let (names, _) = names_of(cluster, &signer)?;
    if !names.is_empty() {
        return Err(format!("filtered list should be empty: {names:?}"));
    }
    Ok(())
}
