//! The CSR signing controller (`csrsigning`), as upstream's `signer` and `authority`
//! packages: approved requests for the built-in signers
//! (`kubernetes.io/kube-apiserver-client`, `kubernetes.io/kube-apiserver-client-kubelet`,
//! `kubernetes.io/kubelet-serving`, `kubernetes.io/legacy-unknown`) are checked against
//! their signer's rules, then issued a certificate by the CA of
//! `--cluster-signing-{cert,key}-file` (or the signer's own pair) into
//! `status.certificate`. A request breaking its signer's rules gets the `Failed`
//! condition (`SignerValidationFailure`). The certificate lives for
//! `spec.expirationSeconds` (at least 10 minutes) up to `--cluster-signing-duration`
//! and never past the CA; it starts 5 minutes back, and a long-lived one (8 hours or
//! more) ends 5 minutes early so that its lifetime is the one asked for.
//!
//! The CA files are read again on each signing and swapped in when they change and
//! load (upstream's dynamic CA provider); a broken replacement keeps the last good CA.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition,
};
use kube::api::{Api, PostParams};
use rcgen::{ExtendedKeyUsagePurpose, KeyUsagePurpose};

use super::approver::{same_set, validate_kubelet_client};
use super::{
    APISERVER_CLIENT_SIGNER, Error, KUBELET_CLIENT_SIGNER, KUBELET_SERVING_SIGNER,
    LEGACY_UNKNOWN_SIGNER, Request, has_true_condition, is_approved, parse_request,
};
use crate::Context;

/// The controller's name.
pub const NAME: &str = "certificatesigningrequest-signing-controller";
const WORKERS: usize = 5;
/// How far back certificates start (less than the shortest lifetime).
const BACKDATE: Duration = Duration::from_secs(5 * 60);
/// Lifetimes under this are not shortened by the backdate.
const SHORT: Duration = Duration::from_secs(8 * 3600);
/// The shortest lifetime honoured (twice the backdate).
const MIN_DURATION: Duration = Duration::from_secs(10 * 60);

/// A CA certificate and key file pair.
#[derive(Clone, Debug, Default)]
pub struct SigningFiles {
    /// The PEM CA certificate.
    pub cert_file: Option<PathBuf>,
    /// Its PEM private key.
    pub key_file: Option<PathBuf>,
}

impl SigningFiles {
    fn any(&self) -> bool {
        self.cert_file.is_some() || self.key_file.is_some()
    }
}

/// The signing controller's flags (upstream's `CSRSigningControllerConfiguration`).
#[derive(Clone, Debug)]
pub struct SigningConfig {
    /// `--cluster-signing-cert-file` / `--cluster-signing-key-file`: the CA of every
    /// signer, unless per-signer files are given.
    pub cluster: SigningFiles,
    /// `--cluster-signing-kubelet-serving-{cert,key}-file`.
    pub kubelet_serving: SigningFiles,
    /// `--cluster-signing-kubelet-client-{cert,key}-file`.
    pub kubelet_client: SigningFiles,
    /// `--cluster-signing-kube-apiserver-client-{cert,key}-file`.
    pub kube_apiserver_client: SigningFiles,
    /// `--cluster-signing-legacy-unknown-{cert,key}-file`.
    pub legacy_unknown: SigningFiles,
    /// `--cluster-signing-duration`: the longest lifetime issued (default one year).
    pub duration: Duration,
}

impl Default for SigningConfig {
    fn default() -> Self {
        SigningConfig {
            cluster: SigningFiles::default(),
            kubelet_serving: SigningFiles::default(),
            kubelet_client: SigningFiles::default(),
            kube_apiserver_client: SigningFiles::default(),
            legacy_unknown: SigningFiles::default(),
            duration: Duration::from_secs(365 * 24 * 3600),
        }
    }
}

/// The signers to run and their files, as upstream's `startCSRSigningController`: the
/// cluster pair for all, or per-signer pairs (never both); `Ok(empty)` when no file
/// is given.
pub fn signers(config: &SigningConfig) -> Result<Vec<(&'static str, SigningFiles)>, String> {
    let specific = [
        (KUBELET_SERVING_SIGNER, &config.kubelet_serving),
        (KUBELET_CLIENT_SIGNER, &config.kubelet_client),
        (APISERVER_CLIENT_SIGNER, &config.kube_apiserver_client),
        (LEGACY_UNKNOWN_SIGNER, &config.legacy_unknown),
    ];
    let any_specific = specific.iter().any(|(_, f)| f.any());
    let missing_single = config.cluster.cert_file.is_none() || config.cluster.key_file.is_none();
    if missing_single && !any_specific {
        return Ok(Vec::new());
    }
    if !missing_single && any_specific {
        return Err("cannot specify default and per controller certs at the same time".into());
    }
    let mut out = Vec::new();
    for (signer, files) in specific {
        let files = if any_specific { files } else { &config.cluster };
        if files.any() {
            out.push((signer, files.clone()));
        } else {
            tracing::info!(
                controller = signer,
                "Skipping CSR signer controller because specific files were specified for other signers and not this one"
            );
        }
    }
    Ok(out)
}

/// A loaded CA (upstream's `CertificateAuthority`).
pub struct Authority {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    /// The CA certificate's NotAfter, in Unix seconds.
    not_after: i64,
    raw: (String, String),
}

impl Authority {
    /// Loads a CA from its PEM certificate and key.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Authority, String> {
        let key = rcgen::KeyPair::from_pem(key_pem).map_err(|e| format!("reading key: {e}"))?;
        let der = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
            .map_err(|e| format!("reading certificate: {e}"))?
            .1
            .contents;
        let (_, cert) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| format!("reading certificate: {e}"))?;
        let not_after = cert.validity().not_after.timestamp();
        let issuer = rcgen::Issuer::from_ca_cert_pem(cert_pem, key)
            .map_err(|e| format!("reading certificate: {e}"))?;
        Ok(Authority {
            issuer,
            not_after,
            raw: (cert_pem.to_owned(), key_pem.to_owned()),
        })
    }
}

/// A signer's CA, re-read from its files when they change.
struct CaProvider {
    files: (PathBuf, PathBuf),
    current: Mutex<Arc<Authority>>,
}

fn read_pair(files: &SigningFiles) -> Result<(PathBuf, PathBuf, String, String), String> {
    let cert = files.cert_file.clone().unwrap_or_default();
    let key = files.key_file.clone().unwrap_or_default();
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
    };
    let (cert_pem, key_pem) = (read(&cert)?, read(&key)?);
    Ok((cert, key, cert_pem, key_pem))
}

impl CaProvider {
    fn load(files: &SigningFiles) -> Result<CaProvider, String> {
        let (cert, key, cert_pem, key_pem) = read_pair(files)?;
        let authority = Authority::from_pem(&cert_pem, &key_pem)?;
        Ok(CaProvider {
            files: (cert, key),
            current: Mutex::new(Arc::new(authority)),
        })
    }

    fn current(&self) -> Arc<Authority> {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let files = SigningFiles {
            cert_file: Some(self.files.0.clone()),
            key_file: Some(self.files.1.clone()),
        };
        if let Ok((_, _, cert_pem, key_pem)) = read_pair(&files)
            && (cert_pem.as_str(), key_pem.as_str())
                != (current.raw.0.as_str(), current.raw.1.as_str())
        {
            match Authority::from_pem(&cert_pem, &key_pem) {
                Ok(fresh) => {
                    tracing::info!(cert = %self.files.0.display(), "loaded a new signing CA");
                    *current = Arc::new(fresh);
                }
                Err(e) => {
                    tracing::warn!(cert = %self.files.0.display(), error = %e, "keeping the last good signing CA")
                }
            }
        }
        current.clone()
    }
}

/// Upstream's `getCSRVerificationFuncForSignerName`: whether `signer` is a signer this
/// controller checks requests for, and the result of its checks.
pub fn check_for_signer(
    signer: &str,
    request: &Request,
    usages: &[String],
) -> Option<Result<(), String>> {
    let set: BTreeSet<String> = usages.iter().cloned().collect();
    match signer {
        KUBELET_SERVING_SIGNER => Some(validate_kubelet_serving(request, &set)),
        KUBELET_CLIENT_SIGNER => Some(validate_kubelet_client(request, &set)),
        APISERVER_CLIENT_SIGNER => Some(validate_apiserver_client_usages(usages)),
        // no restrictions, for compatibility (the v1 API refuses this signer)
        LEGACY_UNKNOWN_SIGNER => Some(Ok(())),
        _ => None,
    }
}

const KUBELET_SERVING_USAGES: [&str; 3] = ["digital signature", "key encipherment", "server auth"];
const KUBELET_SERVING_USAGES_NO_RSA: [&str; 2] = ["digital signature", "server auth"];

/// Upstream's `ValidateKubeletServingCSR`, with its messages.
pub fn validate_kubelet_serving(
    request: &Request,
    usages: &BTreeSet<String>,
) -> Result<(), String> {
    if request.organizations != ["system:nodes"] {
        return Err("subject organization is not system:nodes".into());
    }
    if request.dns_names.is_empty() && request.ip_addresses.is_empty() {
        return Err("DNS or IP subjectAltName is required".into());
    }
    if !request.email_addresses.is_empty() {
        return Err("Email subjectAltNames are not allowed".into());
    }
    if !request.uris.is_empty() {
        return Err("URI subjectAltNames are not allowed".into());
    }
    if !same_set(usages, &KUBELET_SERVING_USAGES)
        && !same_set(usages, &KUBELET_SERVING_USAGES_NO_RSA)
    {
        return Err(format!(
            "usages did not match [{}]",
            KUBELET_SERVING_USAGES.join(" ")
        ));
    }
    if !request.common_name.starts_with("system:node:") {
        return Err("subject common name does not begin with system:node:".into());
    }
    Ok(())
}

/// Upstream's `validAPIServerClientUsages`.
pub fn validate_apiserver_client_usages(usages: &[String]) -> Result<(), String> {
    let mut client_auth = false;
    for usage in usages {
        match usage.as_str() {
            "digital signature" | "key encipherment" => {}
            "client auth" => client_auth = true,
            other => return Err(format!("invalid usage for client certificate: {other}")),
        }
    }
    if !client_auth {
        return Err("missing required usage for client certificate: client auth".into());
    }
    Ok(())
}

/// Upstream's `signer.duration`: the requested lifetime, at least 10 minutes, at most
/// `ttl`; `ttl` when none is asked for.
pub fn duration(expiration_seconds: Option<i32>, ttl: Duration) -> Duration {
    let Some(seconds) = expiration_seconds else {
        return ttl;
    };
    let requested = Duration::from_secs(u64::try_from(seconds).unwrap_or(0));
    if requested > ttl {
        ttl
    } else if requested < MIN_DURATION {
        MIN_DURATION
    } else {
        requested
    }
}

/// The x509 key usages and (sorted, as Go's enum order) extended key usages of the
/// API's usage names (upstream's `keyUsagesFromStrings`).
pub fn key_usages(
    usages: &[String],
) -> Result<(Vec<KeyUsagePurpose>, Vec<ExtendedKeyUsagePurpose>), String> {
    let mut key = Vec::new();
    let mut extended: Vec<(u8, ExtendedKeyUsagePurpose)> = Vec::new();
    let mut unrecognized = Vec::new();
    for usage in usages {
        let k = match usage.as_str() {
            "signing" | "digital signature" => Some(KeyUsagePurpose::DigitalSignature),
            "content commitment" => Some(KeyUsagePurpose::ContentCommitment),
            "key encipherment" => Some(KeyUsagePurpose::KeyEncipherment),
            "key agreement" => Some(KeyUsagePurpose::KeyAgreement),
            "data encipherment" => Some(KeyUsagePurpose::DataEncipherment),
            "cert sign" => Some(KeyUsagePurpose::KeyCertSign),
            "crl sign" => Some(KeyUsagePurpose::CrlSign),
            "encipher only" => Some(KeyUsagePurpose::EncipherOnly),
            "decipher only" => Some(KeyUsagePurpose::DecipherOnly),
            _ => None,
        };
        if let Some(k) = k {
            if !key.contains(&k) {
                key.push(k);
            }
            continue;
        }
        let e = match usage.as_str() {
            "any" => (0, ExtendedKeyUsagePurpose::Any),
            "server auth" => (1, ExtendedKeyUsagePurpose::ServerAuth),
            "client auth" => (2, ExtendedKeyUsagePurpose::ClientAuth),
            "code signing" => (3, ExtendedKeyUsagePurpose::CodeSigning),
            "email protection" | "s/mime" => (4, ExtendedKeyUsagePurpose::EmailProtection),
            "ipsec end system" => (
                5,
                ExtendedKeyUsagePurpose::Other(vec![1, 3, 6, 1, 5, 5, 7, 3, 5]),
            ),
            "ipsec tunnel" => (
                6,
                ExtendedKeyUsagePurpose::Other(vec![1, 3, 6, 1, 5, 5, 7, 3, 6]),
            ),
            "ipsec user" => (
                7,
                ExtendedKeyUsagePurpose::Other(vec![1, 3, 6, 1, 5, 5, 7, 3, 7]),
            ),
            "timestamping" => (8, ExtendedKeyUsagePurpose::TimeStamping),
            "ocsp signing" => (9, ExtendedKeyUsagePurpose::OcspSigning),
            "microsoft sgc" => (
                10,
                ExtendedKeyUsagePurpose::Other(vec![1, 3, 6, 1, 4, 1, 311, 10, 3, 3]),
            ),
            "netscape sgc" => (
                11,
                ExtendedKeyUsagePurpose::Other(vec![2, 16, 840, 1, 113_730, 4, 1]),
            ),
            other => {
                unrecognized.push(format!("{other:?}"));
                continue;
            }
        };
        if !extended.iter().any(|(rank, _)| *rank == e.0) {
            extended.push(e);
        }
    }
    if !unrecognized.is_empty() {
        return Err(format!(
            "unrecognized usage values: [{}]",
            unrecognized.join(" ")
        ));
    }
    extended.sort_by_key(|(rank, _)| *rank);
    Ok((key, extended.into_iter().map(|(_, e)| e).collect()))
}

/// The validity (Unix seconds) of a certificate issued at `now` for `ttl` by a CA
/// ending at `signer_not_after` (upstream's `PermissiveSigningPolicy`).
pub fn validity(now: i64, ttl: Duration, signer_not_after: i64) -> Result<(i64, i64), String> {
    let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    let not_before = now.saturating_sub(secs(BACKDATE));
    let mut not_after = if ttl < SHORT {
        now.saturating_add(secs(ttl))
    } else {
        now.saturating_add(secs(ttl).saturating_sub(secs(BACKDATE)))
    };
    if not_after >= signer_not_after {
        not_after = signer_not_after;
    }
    if not_before >= signer_not_after {
        return Err(format!(
            "the signer has expired: NotAfter={}",
            go_time(signer_not_after)
        ));
    }
    if now >= signer_not_after {
        return Err(format!(
            "refusing to sign a certificate that expired in the past: NotAfter={}",
            go_time(signer_not_after)
        ));
    }
    Ok((not_before, not_after))
}

fn go_time(unix: i64) -> String {
    jiff::Timestamp::from_second(unix)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S +0000 UTC").to_string())
        .unwrap_or_else(|_| unix.to_string())
}

/// Seconds since the Unix epoch as rcgen's time.
macro_rules! at {
    ($unix:expr) => {
        rcgen::date_time_ymd(1970, 1, 1) + Duration::from_secs(u64::try_from($unix).unwrap_or(0))
    };
}

/// Issues the certificate `request` asks for (upstream's `CertificateAuthority.Sign`):
/// its subject and subjectAltNames, the given usages, no other extension, not a CA.
pub fn sign(
    authority: &Authority,
    request: &Request,
    usages: &[String],
    ttl: Duration,
    now: i64,
) -> Result<String, String> {
    use x509_parser::prelude::FromDer;
    let (_, csr) =
        x509_parser::certification_request::X509CertificationRequest::from_der(&request.der)
            .map_err(|e| format!("unable to parse certificate request: {e}"))?;
    csr.verify_signature()
        .map_err(|e| format!("unable to verify certificate request signature: {e}"))?;
    let info = &csr.certification_request_info;
    let public_key = rcgen::SubjectPublicKeyInfo::from_der(info.subject_pki.raw)
        .map_err(|e| format!("unsupported public key: {e}"))?;
    // the subject is copied as the request spells it once the certificate is made
    // (rcgen keeps one value per attribute type: a second group would be lost)
    let mut params = rcgen::CertificateParams::default();
    let ia5 = |s: &str| {
        rcgen::string::Ia5String::try_from(s).map_err(|e| format!("invalid subjectAltName: {e}"))
    };
    for name in &request.dns_names {
        params
            .subject_alt_names
            .push(rcgen::SanType::DnsName(ia5(name)?));
    }
    for ip in &request.ip_addresses {
        params
            .subject_alt_names
            .push(rcgen::SanType::IpAddress(*ip));
    }
    for email in &request.email_addresses {
        params
            .subject_alt_names
            .push(rcgen::SanType::Rfc822Name(ia5(email)?));
    }
    for uri in &request.uris {
        params
            .subject_alt_names
            .push(rcgen::SanType::URI(ia5(uri)?));
    }
    let (key_usages, extended) = key_usages(usages)?;
    params.key_usages = key_usages;
    params.extended_key_usages = extended;
    params.is_ca = rcgen::IsCa::ExplicitNoCa;
    params.use_authority_key_identifier_extension = true;
    let mut serial = [0u8; 16];
    rand::Rng::fill(&mut rand::rng(), &mut serial[..]);
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    let (not_before, not_after) = validity(now, ttl, authority.not_after)?;
    params.not_before = at!(not_before);
    params.not_after = at!(not_after);
    let certificate = params
        .signed_by(&public_key, &authority.issuer)
        .map_err(|e| format!("failed to sign certificate: {e}"))?;
    let der = with_subject(
        certificate.der(),
        info.subject.as_raw(),
        authority.issuer.key(),
    )
    .ok_or_else(|| "failed to sign certificate: cannot set its subject".to_owned())?;
    Ok(pem_encode("CERTIFICATE", &der))
}

/// One DER TLV at the start of `input`: the whole TLV, its header length, what follows.
fn der_tlv(input: &[u8]) -> Option<(&[u8], usize, &[u8])> {
    let first = *input.get(1)?;
    let (length, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return None;
        }
        let mut length = 0usize;
        for i in 0..count {
            length = (length << 8) | usize::from(*input.get(2 + i)?);
        }
        (length, 2 + count)
    };
    let end = header.checked_add(length)?;
    (input.len() >= end).then(|| (&input[..end], header, &input[end..]))
}

/// A DER TLV of `tag` around `content`.
fn der_wrap(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let length = content.len();
    if length < 0x80 {
        out.push(length as u8);
    } else {
        let bytes: Vec<u8> = length
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// The certificate `cert` (DER) with `subject` (a DER Name) as its subject, signed
/// again by `key`.
fn with_subject(cert: &[u8], subject: &[u8], key: &rcgen::KeyPair) -> Option<Vec<u8>> {
    use rcgen::SigningKey;
    let (outer, header, _) = der_tlv(cert)?;
    let (tbs, tbs_header, rest) = der_tlv(&outer[header..])?;
    let (signature_algorithm, _, _) = der_tlv(rest)?;
    // TBSCertificate: [0] version, serialNumber, signature, issuer, validity, subject, ...
    let fields = &tbs[tbs_header..];
    let mut cursor = fields;
    if cursor.first() == Some(&0xa0) {
        cursor = der_tlv(cursor)?.2;
    }
    for _ in 0..4 {
        cursor = der_tlv(cursor)?.2;
    }
    let before = fields.len() - cursor.len();
    let after = der_tlv(cursor)?.2;
    let mut new_fields = fields[..before].to_vec();
    new_fields.extend_from_slice(subject);
    new_fields.extend_from_slice(after);
    let new_tbs = der_wrap(0x30, &new_fields);
    let mut bits = vec![0u8];
    bits.extend(key.sign(&new_tbs).ok()?);
    let mut body = new_tbs;
    body.extend_from_slice(signature_algorithm);
    body.extend(der_wrap(0x03, &bits));
    Some(der_wrap(0x30, &body))
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in text.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

struct Signer {
    signer_name: &'static str,
    ca: CaProvider,
}

struct Controller {
    client: kube::Client,
    ttl: Duration,
    signers: Vec<Signer>,
}

impl Controller {
    async fn handle(&self, csr: Arc<CertificateSigningRequest>) -> Result<(), Error> {
        // unapproved or failed requests are not for us
        if !is_approved(&csr) || has_true_condition(&csr, "Failed") {
            return Ok(());
        }
        let Some(signer) = self
            .signers
            .iter()
            .find(|s| s.signer_name == csr.spec.signer_name)
        else {
            return Ok(());
        };
        let name = csr.metadata.name.clone().unwrap_or_default();
        let request = parse_request(&csr.spec.request.0).map_err(|reason| Error::Parse {
            name: name.clone(),
            reason,
        })?;
        let usages = csr.spec.usages.clone().unwrap_or_default();
        let mut updated = (*csr).clone();
        match check_for_signer(signer.signer_name, &request, &usages) {
            None => return Ok(()),
            Some(Err(message)) => {
                let now = super::now();
                updated
                    .status
                    .get_or_insert_with(Default::default)
                    .conditions
                    .get_or_insert_with(Vec::new)
                    .push(CertificateSigningRequestCondition {
                        type_: "Failed".into(),
                        status: "True".into(),
                        reason: Some("SignerValidationFailure".into()),
                        message: Some(message),
                        last_update_time: Some(now.clone()),
                        last_transition_time: Some(now),
                    });
            }
            Some(Ok(())) => {
                let authority = signer.ca.current();
                let ttl = duration(csr.spec.expiration_seconds, self.ttl);
                let pem = sign(
                    &authority,
                    &request,
                    &usages,
                    ttl,
                    jiff::Timestamp::now().as_second(),
                )
                .map_err(Error::Sign)?;
                updated
                    .status
                    .get_or_insert_with(Default::default)
                    .certificate = Some(k8s_openapi::ByteString(pem.into_bytes()));
            }
        }
        let api: Api<CertificateSigningRequest> = Api::all(self.client.clone());
        match api
            .replace_status(&name, &PostParams::default(), &updated)
            .await
        {
            Ok(_) => Ok(()),
            // changed or gone meanwhile: the change brings a new sync
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// Starts the signers whose CA files are given; with none, nothing runs (upstream
/// skips the controller).
pub fn start(cx: Context) -> futures::future::BoxFuture<'static, ()> {
    let config = cx.settings.csr_signing.clone();
    let wanted = match signers(&config) {
        Ok(wanted) if wanted.is_empty() => {
            tracing::info!("Skipping CSR signer controller because no csr cert/key was specified");
            return Box::pin(async {});
        }
        Ok(wanted) => wanted,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the CSR signer controller");
            return Box::pin(async {});
        }
    };
    let mut signers = Vec::new();
    for (signer_name, files) in wanted {
        match CaProvider::load(&files) {
            Ok(ca) => signers.push(Signer { signer_name, ca }),
            Err(e) => tracing::error!(
                error = %e,
                "failed to start {signer_name} certificate controller"
            ),
        }
    }
    if signers.is_empty() {
        return Box::pin(async {});
    }
    let controller = Arc::new(Controller {
        client: cx.client.clone(),
        ttl: config.duration,
        signers,
    });
    super::run_csr_controller(&cx, NAME, WORKERS, move |csr| {
        let controller = controller.clone();
        async move { controller.handle(csr).await }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certificates::tests::csr_pem;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    fn files(name: &str) -> SigningFiles {
        SigningFiles {
            cert_file: Some(format!("{name}.crt").into()),
            key_file: Some(format!("{name}.key").into()),
        }
    }

    #[test]
    fn the_cluster_pair_serves_every_signer_unless_per_signer_files_are_given() {
        assert!(signers(&SigningConfig::default()).unwrap().is_empty());
        let cluster = SigningConfig {
            cluster: files("ca"),
            ..SigningConfig::default()
        };
        let names: Vec<_> = signers(&cluster).unwrap().iter().map(|s| s.0).collect();
        assert_eq!(
            names,
            [
                KUBELET_SERVING_SIGNER,
                KUBELET_CLIENT_SIGNER,
                APISERVER_CLIENT_SIGNER,
                LEGACY_UNKNOWN_SIGNER
            ]
        );
        let specific = SigningConfig {
            kube_apiserver_client: files("client"),
            ..SigningConfig::default()
        };
        let found = signers(&specific).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, APISERVER_CLIENT_SIGNER);
        assert_eq!(found[0].1.cert_file, Some("client.crt".into()));
        let both = SigningConfig {
            cluster: files("ca"),
            kubelet_client: files("k"),
            ..SigningConfig::default()
        };
        assert_eq!(
            signers(&both).unwrap_err(),
            "cannot specify default and per controller certs at the same time"
        );
    }

    #[test]
    fn each_signer_checks_its_requests_as_upstream() {
        let serving = parse_request(
            csr_pem("system:node:n1", &["system:nodes"], &["n1", "10.0.0.1"]).as_bytes(),
        )
        .unwrap();
        let usages = strings(&["digital signature", "key encipherment", "server auth"]);
        assert_eq!(
            check_for_signer(KUBELET_SERVING_SIGNER, &serving, &usages),
            Some(Ok(()))
        );
        let no_san =
            parse_request(csr_pem("system:node:n1", &["system:nodes"], &[]).as_bytes()).unwrap();
        assert_eq!(
            check_for_signer(KUBELET_SERVING_SIGNER, &no_san, &usages),
            Some(Err("DNS or IP subjectAltName is required".into()))
        );
        assert_eq!(
            check_for_signer(
                KUBELET_SERVING_SIGNER,
                &serving,
                &strings(&["server auth", "client auth"])
            ),
            Some(Err(
                "usages did not match [digital signature key encipherment server auth]".into()
            ))
        );
        // a kubelet client certificate may carry no SANs
        assert_eq!(
            check_for_signer(
                KUBELET_CLIENT_SIGNER,
                &serving,
                &strings(&["digital signature", "client auth"])
            ),
            Some(Err("DNS subjectAltNames are not allowed".into()))
        );
        let anyone = parse_request(csr_pem("alice", &["devs"], &["a.example"]).as_bytes()).unwrap();
        assert_eq!(
            check_for_signer(
                APISERVER_CLIENT_SIGNER,
                &anyone,
                &strings(&["client auth", "key encipherment"])
            ),
            Some(Ok(()))
        );
        assert_eq!(
            check_for_signer(
                APISERVER_CLIENT_SIGNER,
                &anyone,
                &strings(&["client auth", "server auth"])
            ),
            Some(Err(
                "invalid usage for client certificate: server auth".into()
            ))
        );
        assert_eq!(
            check_for_signer(
                APISERVER_CLIENT_SIGNER,
                &anyone,
                &strings(&["digital signature"])
            ),
            Some(Err(
                "missing required usage for client certificate: client auth".into()
            ))
        );
        assert_eq!(
            check_for_signer(LEGACY_UNKNOWN_SIGNER, &anyone, &[]),
            Some(Ok(()))
        );
        assert_eq!(check_for_signer("example.com/other", &anyone, &[]), None);
    }

    #[test]
    fn the_lifetime_is_the_request_s_within_bounds() {
        let year = Duration::from_secs(365 * 24 * 3600);
        assert_eq!(duration(None, year), year);
        assert_eq!(duration(Some(3600), year), Duration::from_secs(3600));
        assert_eq!(duration(Some(60), year), MIN_DURATION);
        assert_eq!(duration(Some(-5), year), MIN_DURATION);
        assert_eq!(duration(Some(i32::MAX), year), year);
    }

    #[test]
    fn validity_is_backdated_and_capped_by_the_ca() {
        let now = 1_000_000;
        // short: ends exactly ttl after now
        assert_eq!(
            validity(now, Duration::from_secs(3600), i64::MAX),
            Ok((now - 300, now + 3600))
        );
        // long: backdated end, so the lifetime is the ttl
        let day = Duration::from_secs(86400);
        assert_eq!(
            validity(now, day, i64::MAX),
            Ok((now - 300, now + 86400 - 300))
        );
        assert_eq!(validity(now, day, now + 100), Ok((now - 300, now + 100)));
        assert!(
            validity(now, day, now)
                .unwrap_err()
                .starts_with("refusing to sign a certificate that expired in the past")
        );
        assert!(
            validity(now, day, now - 400)
                .unwrap_err()
                .starts_with("the signer has expired")
        );
    }

    #[test]
    fn usages_map_to_key_and_sorted_extended_usages() {
        let (key, ext) = key_usages(&strings(&[
            "client auth",
            "server auth",
            "digital signature",
            "signing",
        ]))
        .unwrap();
        assert_eq!(key, [KeyUsagePurpose::DigitalSignature]);
        assert_eq!(
            ext,
            [
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth
            ]
        );
        assert_eq!(
            key_usages(&strings(&["client auth", "bogus", "x y"])).unwrap_err(),
            r#"unrecognized usage values: ["bogus" "x y"]"#
        );
    }

    #[test]
    fn an_issued_certificate_carries_the_request_s_subject_and_the_ca_s_signature() {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::default();
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "test-ca");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_pem = ca_params.self_signed(&ca_key).unwrap().pem();
        let authority = Authority::from_pem(&ca_pem, &ca_key.serialize_pem()).unwrap();
        let request =
            parse_request(csr_pem("alice", &["devs", "ops"], &["alice.example"]).as_bytes())
                .unwrap();
        let now = jiff::Timestamp::now().as_second();
        let pem = sign(
            &authority,
            &request,
            &strings(&["digital signature", "client auth"]),
            Duration::from_secs(3600),
            now,
        )
        .unwrap();
        let der = x509_parser::pem::parse_x509_pem(pem.as_bytes())
            .unwrap()
            .1
            .contents;
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let cn: Vec<_> = cert
            .subject()
            .iter_common_name()
            .map(|a| a.as_str().unwrap())
            .collect();
        let orgs: Vec<_> = cert
            .subject()
            .iter_organization()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(cn, ["alice"]);
        assert_eq!(orgs, ["devs", "ops"]);
        let ca_der = x509_parser::pem::parse_x509_pem(ca_pem.as_bytes())
            .unwrap()
            .1
            .contents;
        let (_, ca) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
        cert.verify_signature(Some(ca.public_key())).unwrap();
        assert_eq!(cert.issuer(), ca.subject());
        assert!(!cert.is_ca());
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth);
        assert_eq!(cert.validity().not_after.timestamp(), now + 3600);
        assert_eq!(cert.validity().not_before.timestamp(), now - 300);
        // a tampered request is refused
        let mut bad = request.clone();
        let last = bad.der.len() - 1;
        bad.der[last] ^= 0xff;
        assert!(
            sign(
                &authority,
                &bad,
                &strings(&["client auth"]),
                Duration::from_secs(3600),
                now
            )
            .is_err()
        );
    }
}
