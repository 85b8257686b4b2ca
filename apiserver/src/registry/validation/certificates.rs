//! certificates.k8s.io/v1 CertificateSigningRequests, as upstream's
//! pkg/apis/certificates/validation: the request must be a PEM `CERTIFICATE REQUEST`
//! whose signature holds, usages known and not repeated, the signerName a domain and
//! path, `expirationSeconds` at least ten minutes, conditions well-formed (Approved
//! and Denied exclusive, neither removable once set) and `status.certificate` only
//! CERTIFICATE PEM blocks, which no update may replace once issued.
//!
//! Upstream tolerates some of these in objects already stored with them (old API
//! versions wrote them); only the v1 API is served here, so every object is held to
//! them. Which part of the object each endpoint may change is the strategy's
//! (`merge_update`); [`validate_status_update`] adds what only the status endpoint
//! forbids.

use apimachinery::errors::{BadValue, FieldError};
use apimachinery::labels::{is_dns1123_label, is_dns1123_subdomain};
use base64::Engine;
use serde_json::Value;
use x509_parser::prelude::FromDer;

/// Every key usage a request may ask for, in upstream's (sorted) order.
const KNOWN_USAGES: &[&str] = &[
    "any",
    "cert sign",
    "client auth",
    "code signing",
    "content commitment",
    "crl sign",
    "data encipherment",
    "decipher only",
    "digital signature",
    "email protection",
    "encipher only",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "key agreement",
    "key encipherment",
    "microsoft sgc",
    "netscape sgc",
    "ocsp signing",
    "s/mime",
    "server auth",
    "signing",
    "timestamping",
];

/// The signer v1beta1 defaulted to, refused by v1.
const LEGACY_UNKNOWN_SIGNER: &str = "kubernetes.io/legacy-unknown";

/// Condition types that may only be `True`, and may not be removed once present.
const TRUE_ONLY_CONDITIONS: &[&str] = &["Approved", "Denied", "Failed"];

const DNS1123_SUBDOMAIN_MAX_LENGTH: usize = 253;
const DNS1123_LABEL_MAX_LENGTH: usize = 63;

/// A new (or updated) CertificateSigningRequest.
pub fn validate(plural: &str, csr: &Value) -> Vec<FieldError> {
    if plural != "certificatesigningrequests" {
        return Vec::new();
    }
    let mut errors = Vec::new();
    let request = bytes_field(csr.pointer("/spec/request"));
    if let Err(why) = check_request(request.as_deref()) {
        errors.push(FieldError::invalid(
            "spec.request",
            go_bytes(request.as_deref()),
            why,
        ));
    }
    let usages: Vec<&str> = csr
        .pointer("/spec/usages")
        .and_then(Value::as_array)
        .map(|u| u.iter().map(|u| u.as_str().unwrap_or("")).collect())
        .unwrap_or_default();
    if usages.is_empty() {
        errors.push(FieldError::required("spec.usages", ""));
    }
    for (i, usage) in usages.iter().enumerate() {
        if !KNOWN_USAGES.contains(usage) {
            errors.push(FieldError::not_supported(
                format!("spec.usages[{i}]"),
                *usage,
                KNOWN_USAGES,
            ));
        }
    }
    for (i, usage) in usages.iter().enumerate() {
        if usages[..i].contains(usage) {
            errors.push(FieldError::duplicate(format!("spec.usages[{i}]"), *usage));
        }
    }
    let signer = csr
        .pointer("/spec/signerName")
        .and_then(Value::as_str)
        .unwrap_or("");
    if signer == LEGACY_UNKNOWN_SIGNER {
        errors.push(FieldError::invalid(
            "spec.signerName",
            signer,
            "the legacy signerName is not allowed via this API version",
        ));
    } else {
        errors.extend(validate_signer_name("spec.signerName", signer));
    }
    if let Some(seconds) = csr
        .pointer("/spec/expirationSeconds")
        .and_then(Value::as_i64)
        && seconds < 600
    {
        errors.push(FieldError::invalid(
            "spec.expirationSeconds",
            seconds,
            "may not specify a duration less than 600 seconds (10 minutes)",
        ));
    }
    errors.extend(validate_conditions(csr));
    if let Some(certificate) = bytes_field(csr.pointer("/status/certificate"))
        && let Err(why) = check_certificate(&certificate)
    {
        errors.push(FieldError::invalid(
            "status.certificate",
            "<certificate data>",
            why,
        ));
    }
    errors
}

/// What no update may do: remove an Approved, Denied or Failed condition, or replace
/// an issued certificate.
pub fn validate_update(plural: &str, new: &Value, old: &Value) -> Vec<FieldError> {
    if plural != "certificatesigningrequests" {
        return Vec::new();
    }
    let mut errors = Vec::new();
    for kind in TRUE_ONLY_CONDITIONS {
        if conditions_of(new, kind).len() < conditions_of(old, kind).len() {
            errors.push(FieldError::forbidden(
                "status.conditions",
                format!("updates may not remove a condition of type {kind:?}"),
            ));
        }
    }
    let old_certificate = bytes_field(old.pointer("/status/certificate")).unwrap_or_default();
    let new_certificate = bytes_field(new.pointer("/status/certificate")).unwrap_or_default();
    if new_certificate != old_certificate && !old_certificate.is_empty() {
        errors.push(FieldError::forbidden(
            "status.certificate",
            "updates may not modify existing certificate content",
        ));
    }
    errors
}

/// What the status endpoint may not do on top of [`validate_update`]: approving and
/// denying are the approval endpoint's (upstream's `ValidateCertificateSigningRequestStatusUpdate`).
pub fn validate_status_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for kind in ["Approved", "Denied"] {
        let (before, after) = (conditions_of(old, kind), conditions_of(new, kind));
        if after.len() > before.len() {
            errors.push(FieldError::forbidden(
                "status.conditions",
                format!("updates may not add a condition of type {kind:?}"),
            ));
        } else if after.len() == before.len() && after != before {
            errors.push(FieldError::forbidden(
                "status.conditions",
                format!("updates may not modify a condition of type {kind:?}"),
            ));
        }
    }
    errors
}

/// Upstream's `ValidateSignerName`: `<domain>/<path>`, the domain of DNS labels with
/// at least one dot, the path of DNS subdomains, 571 bytes at most.
pub fn validate_signer_name(path: &str, signer: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if signer.is_empty() {
        errors.push(FieldError::required(path, ""));
        return errors;
    }
    let segments: Vec<&str> = signer.split('/').collect();
    let [domain, name] = segments[..] else {
        errors.push(FieldError::invalid(
            path,
            signer,
            "must be a fully qualified domain and path of the form 'example.com/signer-name'",
        ));
        return errors;
    };
    if domain.len() > DNS1123_SUBDOMAIN_MAX_LENGTH {
        errors.push(FieldError::too_long(
            path,
            DNS1123_SUBDOMAIN_MAX_LENGTH as i64,
        ));
    }
    let labels: Vec<&str> = domain.split('.').collect();
    // the first bad label is enough: the next would read the same
    if let Some((label, why)) = labels
        .iter()
        .map(|l| (l, is_dns1123_label(l)))
        .find(|(_, why)| !why.is_empty())
    {
        for why in why {
            errors.push(FieldError::invalid(
                path,
                domain,
                format!("validating label {label:?}: {why}"),
            ));
        }
    }
    if labels.len() < 2 {
        errors.push(FieldError::invalid(
            path,
            domain,
            "should be a domain with at least two segments separated by dots",
        ));
    }
    if let Some((label, why)) = name
        .split('.')
        .map(|l| (l, is_dns1123_subdomain(l)))
        .find(|(_, why)| !why.is_empty())
    {
        for why in why {
            errors.push(FieldError::invalid(
                path,
                name,
                format!("validating label {label:?}: {why}"),
            ));
        }
    }
    let max =
        DNS1123_SUBDOMAIN_MAX_LENGTH + DNS1123_SUBDOMAIN_MAX_LENGTH + DNS1123_LABEL_MAX_LENGTH + 2;
    if signer.len() > max {
        errors.push(FieldError::too_long(path, max as i64));
    }
    errors
}

/// Upstream's condition rules: a type and a status, `True` only for Approved, Denied
/// and Failed, Approved and Denied never both, no type twice.
fn validate_conditions(csr: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let conditions = csr
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let (mut approved, mut denied) = (false, false);
    let mut seen: Vec<&str> = Vec::new();
    for (i, condition) in conditions.iter().enumerate() {
        let path = format!("status.conditions[{i}]");
        let kind = condition.get("type").and_then(Value::as_str).unwrap_or("");
        let status = condition
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or("");
        if kind.is_empty() {
            errors.push(FieldError::required(format!("{path}.type"), ""));
        }
        let allowed: &[&str] = if TRUE_ONLY_CONDITIONS.contains(&kind) {
            &["True"]
        } else {
            &["False", "True", "Unknown"]
        };
        if status.is_empty() {
            errors.push(FieldError::required(format!("{path}.status"), ""));
        } else if !allowed.contains(&status) {
            errors.push(FieldError::not_supported(
                format!("{path}.status"),
                status,
                allowed,
            ));
        }
        let exclusive = match kind {
            "Approved" => {
                approved = true;
                denied
            }
            "Denied" => {
                denied = true;
                approved
            }
            _ => false,
        };
        if exclusive {
            errors.push(FieldError::invalid(
                format!("{path}.type"),
                kind,
                "Approved and Denied conditions are mutually exclusive",
            ));
        }
        if seen.contains(&kind) {
            errors.push(FieldError::duplicate(format!("{path}.type"), kind));
        }
        seen.push(kind);
    }
    errors
}

/// The conditions of type `kind`, in order.
fn conditions_of<'a>(csr: &'a Value, kind: &str) -> Vec<&'a Value> {
    csr.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|c| c.get("type").and_then(Value::as_str) == Some(kind))
        .collect()
}

/// A `[]byte` field (base64 in JSON); `None` when absent or null. Text that is not
/// base64 is kept as its own bytes, so it fails the checks instead of vanishing.
fn bytes_field(value: Option<&Value>) -> Option<Vec<u8>> {
    let text = value?.as_str()?;
    Some(
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .unwrap_or_else(|_| text.as_bytes().to_vec()),
    )
}

/// Go's `%#v` of a byte slice, as upstream's field error prints the request.
fn go_bytes(bytes: Option<&[u8]>) -> BadValue {
    let Some(bytes) = bytes else {
        return BadValue::Display("[]byte(nil)".to_owned());
    };
    let hex: Vec<String> = bytes.iter().map(|b| format!("{b:#x}")).collect();
    BadValue::Display(format!("[]byte{{{}}}", hex.join(", ")))
}

/// Upstream's `ParseCSR` and `CheckSignature`, with Go's messages.
fn check_request(pem: Option<&[u8]>) -> Result<(), String> {
    let block = pem
        .and_then(|pem| x509_parser::pem::parse_x509_pem(pem).ok())
        .map(|(_, block)| block)
        .filter(|block| block.label == "CERTIFICATE REQUEST")
        .ok_or("PEM block type must be CERTIFICATE REQUEST")?;
    let (_, request) =
        x509_parser::certification_request::X509CertificationRequest::from_der(&block.contents)
            .map_err(|_| "x509: malformed certificate request")?;
    request.verify_signature().map_err(|_| {
        let key = &request
            .certification_request_info
            .subject_pki
            .algorithm
            .algorithm;
        if *key == x509_parser::oid_registry::OID_PKCS1_RSAENCRYPTION {
            "crypto/rsa: verification error"
        } else if *key == x509_parser::oid_registry::OID_KEY_TYPE_EC_PUBLIC_KEY {
            "x509: ECDSA verification failure"
        } else {
            "x509: Ed25519 verification failure"
        }
        .to_owned()
    })
}

/// Upstream's `validateCertificate`: one or more CERTIFICATE PEM blocks, each holding
/// a certificate (an empty field is no certificate, which is fine).
fn check_certificate(pem: &[u8]) -> Result<(), String> {
    if pem.is_empty() {
        return Ok(());
    }
    let mut blocks = 0;
    for block in x509_parser::pem::Pem::iter_from_buffer(pem) {
        let Ok(block) = block else {
            break;
        };
        if block.label != "CERTIFICATE" {
            return Err(format!(
                "only CERTIFICATE PEM blocks are allowed, found {:?}",
                block.label
            ));
        }
        x509_parser::parse_x509_certificate(&block.contents)
            .map_err(|_| "x509: malformed certificate".to_owned())?;
        blocks += 1;
    }
    if blocks == 0 {
        return Err("must contain at least one CERTIFICATE PEM block".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    fn request_pem() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["node-1".to_owned()]).unwrap();
        params.serialize_request(&key).unwrap().pem().unwrap()
    }

    fn csr(request: &str, extra: Value) -> Value {
        let mut csr = json!({
            "metadata": {"name": "c"},
            "spec": {"request": b64(request.as_bytes()), "signerName": "example.com/signer",
                     "usages": ["client auth"]}
        });
        merge(&mut csr, extra);
        csr
    }

    fn merge(into: &mut Value, from: Value) {
        match (into, from) {
            (Value::Object(into), Value::Object(from)) => {
                for (k, v) in from {
                    merge(into.entry(k).or_insert(Value::Null), v);
                }
            }
            (into, from) => *into = from,
        }
    }

    fn messages(errors: &[FieldError]) -> Vec<String> {
        errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_well_formed_request_passes() {
        assert!(
            validate(
                "certificatesigningrequests",
                &csr(&request_pem(), json!({}))
            )
            .is_empty()
        );
    }

    #[test]
    fn requests_usages_signers_and_durations_get_upstreams_messages() {
        let bad = csr(
            "hello",
            json!({"spec": {"usages": ["client auth", "flying", "client auth"],
                    "signerName": "kubernetes.io/legacy-unknown", "expirationSeconds": 599}}),
        );
        assert_eq!(
            messages(&validate("certificatesigningrequests", &bad)),
            [
                "spec.request: Invalid value: []byte{0x68, 0x65, 0x6c, 0x6c, 0x6f}: PEM block type must be CERTIFICATE REQUEST".to_owned(),
                format!("spec.usages[1]: Unsupported value: \"flying\": supported values: {}",
                    KNOWN_USAGES.iter().map(|u| format!("{u:?}")).collect::<Vec<_>>().join(", ")),
                "spec.usages[2]: Duplicate value: \"client auth\"".to_owned(),
                "spec.signerName: Invalid value: \"kubernetes.io/legacy-unknown\": the legacy signerName is not allowed via this API version".to_owned(),
                "spec.expirationSeconds: Invalid value: 599: may not specify a duration less than 600 seconds (10 minutes)".to_owned(),
            ]
        );
        let no_usages = csr(&request_pem(), json!({"spec": {"usages": []}}));
        assert_eq!(
            messages(&validate("certificatesigningrequests", &no_usages)),
            ["spec.usages: Required value"]
        );
    }

    #[test]
    fn a_tampered_request_fails_its_signature() {
        let pem = request_pem();
        let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        let mut der = block.contents.clone();
        // flip a bit of the subject's common name, inside the signed part
        let at = der.windows(6).position(|w| w == b"node-1").unwrap();
        der[at] ^= 1;
        let tampered = format!(
            "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
            b64(&der)
        );
        let errors = validate("certificatesigningrequests", &csr(&tampered, json!({})));
        assert_eq!(errors.len(), 1, "{:?}", messages(&errors));
        assert!(
            errors[0]
                .to_string()
                .ends_with(": x509: ECDSA verification failure"),
            "{}",
            errors[0]
        );
    }

    #[test]
    fn signer_names_are_a_domain_and_a_path() {
        for (name, want) in [
            ("", vec!["spec.signerName: Required value"]),
            (
                "example.com",
                vec![
                    "spec.signerName: Invalid value: \"example.com\": must be a fully qualified domain and path of the form 'example.com/signer-name'",
                ],
            ),
            (
                "example/signer",
                vec![
                    "spec.signerName: Invalid value: \"example\": should be a domain with at least two segments separated by dots",
                ],
            ),
            (
                "Example.com/signer",
                vec![
                    "spec.signerName: Invalid value: \"Example.com\": validating label \"Example\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
                ],
            ),
            ("example.com/a.b", vec![]),
        ] {
            assert_eq!(
                messages(&validate_signer_name("spec.signerName", name)),
                want,
                "{name}"
            );
        }
    }

    #[test]
    fn conditions_and_certificates_follow_upstreams_rules() {
        let both = csr(
            &request_pem(),
            json!({"status": {"conditions": [
                {"type": "Approved", "status": "True"},
                {"type": "Denied", "status": "False"},
                {"type": "Approved", "status": "True"},
                {"type": "", "status": ""}
            ], "certificate": b64(b"not pem")}}),
        );
        assert_eq!(
            messages(&validate("certificatesigningrequests", &both)),
            [
                "status.conditions[1].status: Unsupported value: \"False\": supported values: \"True\"",
                "status.conditions[1].type: Invalid value: \"Denied\": Approved and Denied conditions are mutually exclusive",
                "status.conditions[2].type: Invalid value: \"Approved\": Approved and Denied conditions are mutually exclusive",
                "status.conditions[2].type: Duplicate value: \"Approved\"",
                "status.conditions[3].type: Required value",
                "status.conditions[3].status: Required value",
                "status.certificate: Invalid value: \"<certificate data>\": must contain at least one CERTIFICATE PEM block",
            ]
        );
    }

    #[test]
    fn updates_keep_verdicts_and_issued_certificates() {
        let approved = json!({"status": {"conditions": [{"type": "Approved", "status": "True"}],
            "certificate": b64(b"one")}});
        let cleared = json!({"status": {"conditions": [], "certificate": b64(b"two")}});
        assert_eq!(
            messages(&validate_update(
                "certificatesigningrequests",
                &cleared,
                &approved
            )),
            [
                "status.conditions: Forbidden: updates may not remove a condition of type \"Approved\"",
                "status.certificate: Forbidden: updates may not modify existing certificate content",
            ]
        );
        let pending = json!({"status": {}});
        assert_eq!(
            messages(&validate_status_update(&approved, &pending)),
            ["status.conditions: Forbidden: updates may not add a condition of type \"Approved\""]
        );
        assert!(validate_status_update(&approved, &approved).is_empty());
    }
}
