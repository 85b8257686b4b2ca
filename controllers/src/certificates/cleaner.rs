//! The CSR cleaner (`csrcleaner`), as upstream's `cleaner.go`: every hour, requests
//! are deleted that were approved and issued more than an hour ago, denied or failed
//! more than an hour ago, left pending for a day, or whose issued certificate has
//! expired. Automated approval and short-lived certificates would otherwise pile
//! requests up without bound.

use std::time::Duration;

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams};

use super::is_issued;
use crate::Context;

/// The controller's name.
pub const NAME: &str = "certificatesigningrequest-cleaner-controller";
/// How often every request is looked at.
const POLLING_INTERVAL: Duration = Duration::from_secs(3600);
const APPROVED_EXPIRATION: Duration = Duration::from_secs(3600);
const DENIED_EXPIRATION: Duration = Duration::from_secs(3600);
const PENDING_EXPIRATION: Duration = Duration::from_secs(24 * 3600);

/// Why a request is cleaned (for the log), or `None` to keep it.
pub fn reason_to_clean(csr: &CertificateSigningRequest, now: jiff::Timestamp) -> Option<String> {
    let conditions = csr
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    let older = |t: Option<&Time>, d: Duration| t.is_some_and(|t| older_than(t, d, now));
    let issued = is_issued(csr);
    for c in conditions {
        if c.type_ == "Approved"
            && issued
            && older(c.last_update_time.as_ref(), APPROVED_EXPIRATION)
        {
            return Some("it is more than 1h0m0s old and approved".into());
        }
    }
    for c in conditions {
        if c.type_ == "Denied" && older(c.last_update_time.as_ref(), DENIED_EXPIRATION) {
            return Some("it is more than 1h0m0s old and denied".into());
        }
    }
    for c in conditions {
        if c.type_ == "Failed" && older(c.last_update_time.as_ref(), DENIED_EXPIRATION) {
            return Some("it is more than 1h0m0s old and failed".into());
        }
    }
    if conditions.is_empty() && older(csr.metadata.creation_timestamp.as_ref(), PENDING_EXPIRATION)
    {
        return Some("it is more than 24h0m0s old and unhandled".into());
    }
    if issued && conditions.iter().any(|c| c.type_ == "Approved") && certificate_expired(csr, now) {
        return Some("the associated certificate is expired".into());
    }
    None
}

/// Whether `t` is more than `d` before `now`.
fn older_than(t: &Time, d: Duration, now: jiff::Timestamp) -> bool {
    let Ok(d) = jiff::SignedDuration::try_from(d) else {
        return false;
    };
    now.checked_sub(d).is_ok_and(|limit| t.0 < limit)
}

/// Whether the first certificate of `status.certificate` is past its NotAfter; an
/// unreadable one is not.
fn certificate_expired(csr: &CertificateSigningRequest, now: jiff::Timestamp) -> bool {
    let Some(pem) = csr.status.as_ref().and_then(|s| s.certificate.as_ref()) else {
        return false;
    };
    let Ok((_, block)) = x509_parser::pem::parse_x509_pem(&pem.0) else {
        return false;
    };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(&block.contents) else {
        return false;
    };
    now.as_second() > cert.validity().not_after.timestamp()
}

/// Starts the cleaner.
pub fn start(cx: Context) -> futures::future::BoxFuture<'static, ()> {
    let requests = cx.informers.informer::<CertificateSigningRequest>();
    Box::pin(async move {
        requests.wait_synced().await;
        let api: Api<CertificateSigningRequest> = Api::all(cx.client.clone());
        loop {
            let now = jiff::Timestamp::now();
            for csr in requests.list() {
                let Some(reason) = reason_to_clean(&csr, now) else {
                    continue;
                };
                let name = csr.metadata.name.clone().unwrap_or_default();
                tracing::info!(csr = %name, "Cleaning CSR as {reason}");
                match api.delete(&name, &DeleteParams::default()).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Err(e) => {
                        tracing::error!(csr = %name, error = %e, "Error while attempting to clean CSR")
                    }
                }
            }
            tokio::time::sleep(POLLING_INTERVAL).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(now: jiff::Timestamp, ago_secs: i64) -> String {
        (now - jiff::SignedDuration::from_secs(ago_secs)).to_string()
    }

    fn csr(
        created_ago: i64,
        conditions: serde_json::Value,
        cert: Option<&str>,
    ) -> CertificateSigningRequest {
        let now = jiff::Timestamp::now();
        let mut status = json!({"conditions": conditions});
        if let Some(cert) = cert {
            use base64::Engine;
            status["certificate"] = base64::engine::general_purpose::STANDARD
                .encode(cert)
                .into();
        }
        serde_json::from_value(json!({
            "metadata": {"name": "x", "creationTimestamp": at(now, created_ago)},
            "spec": {"request": "", "signerName": "s"},
            "status": status
        }))
        .unwrap()
    }

    fn condition(kind: &str, ago: i64) -> serde_json::Value {
        json!({"type": kind, "status": "True", "lastUpdateTime": at(jiff::Timestamp::now(), ago)})
    }

    /// A certificate valid from `from` to `to` seconds from now.
    fn certificate(from: i64, to: i64) -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["x".to_owned()]).unwrap();
        let now = jiff::Timestamp::now().as_second();
        let t = |s: i64| rcgen::date_time_ymd(1970, 1, 1) + Duration::from_secs((now + s) as u64);
        params.not_before = t(from);
        params.not_after = t(to);
        params.self_signed(&key).unwrap().pem()
    }

    // upstream's TestCleanerWithApprovedExpiredCSR cases
    #[test]
    fn requests_are_cleaned_by_state_and_age() {
        let now = jiff::Timestamp::now();
        let valid = certificate(-600, 3600);
        let expired = certificate(-7200, -60);
        let cases = [
            ("recent pending", csr(3600, json!([]), None), false),
            ("pending over a day", csr(25 * 3600, json!([]), None), true),
            (
                "recently approved, not issued",
                csr(7200, json!([condition("Approved", 60)]), None),
                false,
            ),
            (
                "approved long ago, not issued",
                csr(7200, json!([condition("Approved", 7200)]), None),
                false,
            ),
            (
                "recently issued",
                csr(7200, json!([condition("Approved", 60)]), Some(&valid)),
                false,
            ),
            (
                "issued over an hour ago",
                csr(7200, json!([condition("Approved", 3700)]), Some(&valid)),
                true,
            ),
            (
                "recently denied",
                csr(7200, json!([condition("Denied", 60)]), None),
                false,
            ),
            (
                "denied over an hour ago",
                csr(7200, json!([condition("Denied", 3700)]), None),
                true,
            ),
            (
                "recently failed",
                csr(7200, json!([condition("Failed", 60)]), None),
                false,
            ),
            (
                "failed over an hour ago",
                csr(7200, json!([condition("Failed", 3700)]), None),
                true,
            ),
            (
                "issued, expired certificate",
                csr(7200, json!([condition("Approved", 60)]), Some(&expired)),
                true,
            ),
            (
                "expired certificate, never approved",
                csr(600, json!([condition("Denied", 60)]), Some(&expired)),
                false,
            ),
            (
                "approved without a time",
                csr(
                    7200,
                    json!([{"type": "Approved", "status": "True"}]),
                    Some(&valid),
                ),
                false,
            ),
        ];
        for (what, csr, cleaned) in cases {
            assert_eq!(reason_to_clean(&csr, now).is_some(), cleaned, "{what}");
        }
    }
}
