//! A CRD in two versions of different shapes converted by a webhook the test runs
//! (ConversionReview v1 over HTTPS): v1 has `spec.cronSpec`, v2 `spec.schedule`.
//! Objects written in either version are stored in v1 and read back in either; a
//! webhook that answers Failure makes the read fail with upstream's message.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Body;
use base64::Engine as _;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::pki_types::PrivateKeyDer;
use serde_json::{Value, json};
use tokio_rustls::TlsAcceptor;

use super::harness::Kubectl;

/// The test's conversion webhook: its port, CA bundle and how many reviews it got.
pub struct Webhook {
    pub port: u16,
    pub ca_bundle: String,
    pub calls: Arc<AtomicUsize>,
}

/// Converts one object: v1 `spec.cronSpec` ⇄ v2 `spec.schedule`; a `fail` label makes
/// the whole review fail.
fn convert(object: &Value, desired: &str) -> Result<Value, String> {
    if object.pointer("/metadata/labels/fail").is_some() {
        return Err("this object may not be converted".into());
    }
    let mut converted = object.clone();
    let spec = converted["spec"]
        .as_object_mut()
        .cloned()
        .unwrap_or_default();
    let mut new_spec = serde_json::Map::new();
    for (key, value) in spec {
        let key = match (desired, key.as_str()) {
            ("conv.example.com/v2", "cronSpec") => "schedule".to_owned(),
            ("conv.example.com/v1", "schedule") => "cronSpec".to_owned(),
            _ => key,
        };
        new_spec.insert(key, value);
    }
    converted["spec"] = Value::Object(new_spec);
    converted["apiVersion"] = desired.into();
    Ok(converted)
}

fn review_answer(review: &Value) -> Value {
    let request = &review["request"];
    let desired = request["desiredAPIVersion"].as_str().unwrap_or("");
    let objects = request["objects"].as_array().cloned().unwrap_or_default();
    let converted: Result<Vec<Value>, String> =
        objects.iter().map(|o| convert(o, desired)).collect();
    let response = match converted {
        Ok(objects) => json!({"uid": request["uid"], "result": {"status": "Success"},
            "convertedObjects": objects}),
        Err(message) => json!({"uid": request["uid"],
            "result": {"status": "Failure", "message": message}}),
    };
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview", "response": response})
}

/// Starts the webhook on 127.0.0.1 with a self-signed certificate.
pub async fn start_webhook() -> Webhook {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let ca_bundle = base64::engine::general_purpose::STANDARD.encode(certified.cert.pem());
    let key = PrivateKeyDer::try_from(certified.signing_key.serialize_der()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, counted) = (acceptor.clone(), counted.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service =
                    hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                        let counted = counted.clone();
                        async move {
                            counted.fetch_add(1, Ordering::SeqCst);
                            let body =
                                axum::body::to_bytes(Body::new(request.into_body()), 1 << 24)
                                    .await
                                    .unwrap_or_default();
                            let review: Value =
                                serde_json::from_slice(&body).unwrap_or(Value::Null);
                            Ok::<_, std::convert::Infallible>(
                                hyper::Response::builder()
                                    .header("content-type", "application/json")
                                    .body(Body::from(review_answer(&review).to_string()))
                                    .unwrap(),
                            )
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    Webhook {
        port,
        ca_bundle,
        calls,
    }
}

fn crd(webhook: &Webhook) -> String {
    format!(
        r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {{name: gadgets.conv.example.com}}
spec:
  group: conv.example.com
  scope: Namespaced
  names: {{plural: gadgets, kind: Gadget}}
  conversion:
    strategy: Webhook
    webhook:
      conversionReviewVersions: [v1]
      clientConfig:
        url: https://127.0.0.1:{port}/convert
        caBundle: {ca}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              cronSpec: {{type: string}}
  - name: v2
    served: true
    storage: false
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              schedule: {{type: string}}
"#,
        port = webhook.port,
        ca = webhook.ca_bundle
    )
}

/// Writes and reads in both versions through the webhook.
pub fn webhook_conversion(kubectl: &Kubectl, webhook: &Webhook) {
    kubectl.ok_with(&["apply", "-f", "-"], &crd(webhook));
    kubectl.wait_established("gadgets.conv.example.com");
    kubectl.ok_with(
        &["create", "-f", "-"],
        "apiVersion: conv.example.com/v1\nkind: Gadget\nmetadata: {name: old, namespace: default}\nspec: {cronSpec: '*/1 * * * *'}\n",
    );
    let before = webhook.calls.load(Ordering::SeqCst);
    // read in v2: converted by the webhook
    assert_eq!(
        kubectl.jsonpath(&["gadgets.v2.conv.example.com", "old"], "{.spec.schedule}"),
        "*/1 * * * *"
    );
    assert!(webhook.calls.load(Ordering::SeqCst) > before);
    // written in v2, stored in v1, read in both
    kubectl.ok_with(
        &["create", "-f", "-"],
        "apiVersion: conv.example.com/v2\nkind: Gadget\nmetadata: {name: new, namespace: default}\nspec: {schedule: '*/2 * * * *'}\n",
    );
    assert_eq!(
        kubectl.jsonpath(&["gadgets.v1.conv.example.com", "new"], "{.spec.cronSpec}"),
        "*/2 * * * *"
    );
    assert_eq!(
        kubectl.jsonpath(&["gadgets.v2.conv.example.com", "new"], "{.spec.schedule}"),
        "*/2 * * * *"
    );
    assert_eq!(
        kubectl.jsonpath(&["gadgets.v2.conv.example.com", "new"], "{.apiVersion}"),
        "conv.example.com/v2"
    );
    // a list in v2 converts every item
    assert_eq!(
        kubectl.jsonpath(
            &["gadgets.v2.conv.example.com"],
            "{.items[*].spec.schedule}"
        ),
        "*/2 * * * * */1 * * * *"
    );
    // patched in v2 (the patch sees the v2 shape)
    kubectl.ok(&[
        "patch",
        "gadgets.v2.conv.example.com",
        "new",
        "--type=merge",
        "-p",
        r#"{"spec":{"schedule":"*/3 * * * *"}}"#,
    ]);
    assert_eq!(
        kubectl.jsonpath(&["gadgets.v1.conv.example.com", "new"], "{.spec.cronSpec}"),
        "*/3 * * * *"
    );
    // the webhook's failure is the request's
    kubectl.ok(&["label", "gadgets.v1.conv.example.com", "old", "fail=yes"]);
    let err = kubectl.fails(&["get", "gadgets.v2.conv.example.com", "old"], "");
    assert!(
        err.contains("conversion webhook for conv.example.com/v1, Kind=Gadget failed: this object may not be converted"),
        "{err}"
    );
    kubectl.ok(&["delete", "crd", "gadgets.conv.example.com"]);
}
