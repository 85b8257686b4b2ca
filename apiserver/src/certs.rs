//! The cluster's certificates when none are given, kept under the cert dir with
//! kubeadm's file names and reused while valid:
//!
//! - the cluster CA and the apiserver's serving certificate;
//! - client certificates for the admin (CN `kubernetes-admin`, O `system:masters`, as
//!   kubeadm's `admin.conf`), the scheduler (`system:kube-scheduler`), the controller
//!   manager (`system:kube-controller-manager`) and this node's kubelet
//!   (`system:node:<host>`, O `system:nodes`), each with a kubeconfig;
//! - the service-account signing key pair (`sa.key`, `sa.pub`);
//! - the front-proxy CA and its client certificate (for aggregated API servers).
//!
//! Keys and kubeconfigs are written 0600. Existing files are used as they are and
//! never overwritten (one expiring or missing an address gets a warning; one that is
//! not usable stops the start): to renew a certificate, replace or remove its files.

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType,
};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

/// The CA's file names under the cert dir, as kubeadm's.
pub const CA_CERT: &str = "ca.crt";
/// The CA's private key.
pub const CA_KEY: &str = "ca.key";
/// The apiserver's serving certificate.
pub const SERVING_CERT: &str = "apiserver.crt";
/// The serving certificate's private key.
pub const SERVING_KEY: &str = "apiserver.key";
/// The admin client certificate.
pub const ADMIN_CERT: &str = "admin.crt";
/// The admin client certificate's private key.
pub const ADMIN_KEY: &str = "admin.key";

/// The service-account signing key (PKCS#8 PEM, RSA 2048).
pub const SA_KEY: &str = "sa.key";
/// The service-account verifying key (SPKI PEM).
pub const SA_PUB: &str = "sa.pub";
/// The front-proxy CA.
pub const FRONT_PROXY_CA_CERT: &str = "front-proxy-ca.crt";
/// The front-proxy CA's key.
pub const FRONT_PROXY_CA_KEY: &str = "front-proxy-ca.key";
/// The front-proxy client certificate.
pub const FRONT_PROXY_CLIENT_CERT: &str = "front-proxy-client.crt";
/// The front-proxy client key.
pub const FRONT_PROXY_CLIENT_KEY: &str = "front-proxy-client.key";

/// The admin user, as kubeadm's `admin.conf`.
pub const ADMIN_USER: &str = "kubernetes-admin";
/// The group that RBAC lets do anything (upstream's `system:masters`).
pub const ADMIN_GROUP: &str = "system:masters";

/// The kubeconfig's cluster and context name.
pub const KUBECONFIG_CLUSTER: &str = "rkube";
/// The kubeconfig's user name.
pub const KUBECONFIG_USER: &str = "rkube-admin";

const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
const LEAF_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);
/// A certificate closer than this to its end is renewed instead of reused.
const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);
/// Allowance for clocks a little behind ours.
const BACKDATE: Duration = Duration::from_secs(3600);

/// Errors from this module.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file or directory could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file exists but cannot be used; it is never overwritten.
    #[error(
        "{path} exists but {reason}; existing files are never overwritten: replace or remove it"
    )]
    Unusable {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A certificate could not be generated.
    #[error("cannot generate the {name} certificate: {source}")]
    Generate {
        /// Which certificate.
        name: &'static str,
        /// The cause.
        source: rcgen::Error,
    },
}

/// The certificates of a cluster, in PEM.
#[derive(Clone, Debug)]
pub struct Pki {
    /// The directory they are kept in.
    pub dir: PathBuf,
    /// The CA certificate: clients trust it, and it signs client certificates.
    pub ca_cert_pem: String,
    /// The apiserver's serving certificate.
    pub serving_cert_pem: String,
    /// The serving certificate's private key.
    pub serving_key_pem: String,
    /// The admin client certificate.
    pub admin_cert_pem: String,
    /// The admin client certificate's private key.
    pub admin_key_pem: String,
    /// The component client certificates (scheduler, controller manager, kubelet).
    pub clients: Vec<ClientCredential>,
    /// The service-account signing key.
    pub service_account_key_pem: String,
}

/// A component's client certificate.
#[derive(Clone, Debug)]
pub struct ClientCredential {
    /// The file stem (`scheduler`, `controller-manager`, `kubelet`).
    pub name: String,
    /// The user (CommonName).
    pub user: String,
    /// The certificate.
    pub cert_pem: String,
    /// Its key.
    pub key_pem: String,
}

/// The component clients `ensure` makes, as (file stem, user, group).
fn component_clients(node_name: &str) -> Vec<(String, String, Option<String>)> {
    vec![
        ("scheduler".into(), "system:kube-scheduler".into(), None),
        (
            "controller-manager".into(),
            "system:kube-controller-manager".into(),
            None,
        ),
        (
            "kubelet".into(),
            format!("system:node:{node_name}"),
            Some("system:nodes".into()),
        ),
    ]
}

/// This machine's node name: its host name, else `localhost`.
pub fn node_name() -> String {
    hostname().unwrap_or_else(|| "localhost".to_owned())
}

impl Pki {
    /// The path of one of this PKI's files, e.g. `pki.path(CA_CERT)`.
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// The admin kubeconfig for an apiserver at `server` (e.g. `https://127.0.0.1:6443`).
    pub fn admin_kubeconfig(&self, server: &str) -> String {
        kubeconfig(
            server,
            &self.ca_cert_pem,
            &self.admin_cert_pem,
            &self.admin_key_pem,
        )
    }

    /// The kubeconfig of component `name` (`scheduler`, `controller-manager`,
    /// `kubelet`) for an apiserver at `server`.
    pub fn client_kubeconfig(&self, name: &str, server: &str) -> Option<String> {
        let client = self.clients.iter().find(|c| c.name == name)?;
        Some(kubeconfig(
            server,
            &self.ca_cert_pem,
            &client.cert_pem,
            &client.key_pem,
        ))
    }
}

/// The names the serving certificate must cover: loopback, `localhost`, this host's
/// name, the in-cluster `kubernetes.default.svc` names and the first service IP
/// (10.96.0.1, upstream's default range), plus `extra` addresses.
pub fn serving_hosts(extra: &[IpAddr]) -> Vec<String> {
    let mut hosts: Vec<String> = [
        "127.0.0.1",
        "::1",
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "10.96.0.1",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    if let Some(hostname) = hostname() {
        hosts.push(hostname);
    }
    for ip in extra {
        if !ip.is_unspecified() {
            hosts.push(ip.to_string());
        }
    }
    let mut seen = std::collections::HashSet::new();
    hosts.retain(|h| seen.insert(h.clone()));
    hosts
}

/// This machine's host name, when it is a usable DNS name.
fn hostname() -> Option<String> {
    let name = fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| fs::read_to_string("/etc/hostname").ok())?;
    let name = name.trim().to_ascii_lowercase();
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    valid.then_some(name)
}

/// Loads the certificates under `dir`, generating whatever is missing, expiring within
/// 30 days, not signed by the CA, or (for the serving certificate) not covering every
/// name in `hosts`. A new CA means new leaves too.
pub fn ensure(dir: &Path, hosts: &[String]) -> Result<Pki, CertError> {
    create_dir(dir)?;
    let (ca_cert_pem, ca_key) = ensure_ca(dir)?;
    let ca_der = first_cert_der(&ca_cert_pem).unwrap_or_default();
    let issuer = Issuer::from_ca_cert_pem(&ca_cert_pem, ca_key)
        .map_err(|source| CertError::Generate { name: "CA", source })?;

    let (serving_cert_pem, serving_key_pem) =
        ensure_leaf(dir, SERVING_CERT, SERVING_KEY, &ca_der, &issuer, || {
            leaf_params(
                "kube-apiserver",
                None,
                hosts,
                ExtendedKeyUsagePurpose::ServerAuth,
            )
        })
        .map_err(|e| e.named("serving"))?;
    let (admin_cert_pem, admin_key_pem) =
        ensure_leaf(dir, ADMIN_CERT, ADMIN_KEY, &ca_der, &issuer, || {
            leaf_params(
                ADMIN_USER,
                Some(ADMIN_GROUP),
                &[],
                ExtendedKeyUsagePurpose::ClientAuth,
            )
        })
        .map_err(|e| e.named("admin client"))?;

    let mut clients = Vec::new();
    for (name, user, group) in component_clients(&node_name()) {
        let (cert_pem, key_pem) = ensure_leaf(
            dir,
            &format!("{name}.crt"),
            &format!("{name}.key"),
            &ca_der,
            &issuer,
            || {
                leaf_params(
                    &user,
                    group.as_deref(),
                    &[],
                    ExtendedKeyUsagePurpose::ClientAuth,
                )
            },
        )
        .map_err(|e| e.named("component client"))?;
        clients.push(ClientCredential {
            name,
            user,
            cert_pem,
            key_pem,
        });
    }

    let (proxy_ca_pem, proxy_ca_key) = ensure_ca_files(
        dir,
        FRONT_PROXY_CA_CERT,
        FRONT_PROXY_CA_KEY,
        "front-proxy-ca",
    )?;
    let proxy_ca_der = first_cert_der(&proxy_ca_pem).unwrap_or_default();
    let proxy_issuer = Issuer::from_ca_cert_pem(&proxy_ca_pem, proxy_ca_key).map_err(|source| {
        CertError::Generate {
            name: "front-proxy CA",
            source,
        }
    })?;
    ensure_leaf(
        dir,
        FRONT_PROXY_CLIENT_CERT,
        FRONT_PROXY_CLIENT_KEY,
        &proxy_ca_der,
        &proxy_issuer,
        || {
            leaf_params(
                "front-proxy-client",
                None,
                &[],
                ExtendedKeyUsagePurpose::ClientAuth,
            )
        },
    )
    .map_err(|e| e.named("front-proxy client"))?;

    let service_account_key_pem = ensure_service_account_key(dir)?;

    Ok(Pki {
        dir: dir.to_owned(),
        ca_cert_pem,
        serving_cert_pem,
        serving_key_pem,
        admin_cert_pem,
        admin_key_pem,
        clients,
        service_account_key_pem,
    })
}

/// The service-account key pair, generated when `sa.key` is missing or unreadable as
/// an RSA key; an existing one is never replaced while it parses (tokens signed with
/// it stay valid).
fn ensure_service_account_key(dir: &Path) -> Result<String, CertError> {
    let key_path = dir.join(SA_KEY);
    if let Some(pem) = read_optional(&key_path)? {
        return match crate::auth::authn::service_account::ServiceAccountKeys::new(
            "check", &pem, None,
        ) {
            Ok(_) => Ok(pem),
            Err(reason) => Err(CertError::Unusable {
                path: key_path,
                reason,
            }),
        };
    }
    let pair =
        crate::auth::authn::service_account::generate_key_pair().map_err(|e| CertError::Write {
            path: key_path.clone(),
            source: std::io::Error::other(e),
        })?;
    write_private_file(&key_path, pair.private_pem.as_bytes())?;
    write_file(&dir.join(SA_PUB), pair.public_pem.as_bytes(), 0o644)?;
    Ok(pair.private_pem)
}

/// An error from a step that does not know which certificate it works on.
enum LeafError {
    Cert(CertError),
    Rcgen(rcgen::Error),
}

impl LeafError {
    fn named(self, name: &'static str) -> CertError {
        match self {
            LeafError::Cert(e) => e,
            LeafError::Rcgen(source) => CertError::Generate { name, source },
        }
    }
}

impl From<CertError> for LeafError {
    fn from(e: CertError) -> Self {
        LeafError::Cert(e)
    }
}

impl From<rcgen::Error> for LeafError {
    fn from(e: rcgen::Error) -> Self {
        LeafError::Rcgen(e)
    }
}

fn ensure_ca(dir: &Path) -> Result<(String, KeyPair), CertError> {
    ensure_ca_files(dir, CA_CERT, CA_KEY, "rkube-ca")
}

fn ensure_ca_files(
    dir: &Path,
    cert_file: &str,
    key_file: &str,
    common_name: &str,
) -> Result<(String, KeyPair), CertError> {
    let (cert_path, key_path) = (dir.join(cert_file), dir.join(key_file));
    match (read_optional(&cert_path)?, read_optional(&key_path)?) {
        (Some(cert_pem), Some(key_pem)) => {
            if let (Some(der), Ok(key)) = (first_cert_der(&cert_pem), KeyPair::from_pem(&key_pem))
                && let Ok((_, cert)) = x509_parser::parse_x509_certificate(&der)
                && cert.is_ca()
                && matches_key(&cert, &key)
            {
                if !fresh(&cert) {
                    tracing::warn!(cert = %cert_path.display(), "the CA expires within 30 days: replace it");
                }
                return Ok((cert_pem, key));
            }
            return Err(CertError::Unusable {
                path: cert_path,
                reason: format!("is not a CA certificate matching {}", key_path.display()),
            });
        }
        (Some(_), None) | (None, Some(_)) => {
            return Err(CertError::Unusable {
                path: cert_path,
                reason: format!("and {} do not both exist", key_path.display()),
            });
        }
        (None, None) => {}
    }
    let generate = || -> Result<(String, KeyPair), rcgen::Error> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(common_name, None);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        set_validity(&mut params, CA_VALIDITY);
        let cert = params.self_signed(&key)?;
        Ok((cert.pem(), key))
    };
    let (cert_pem, key) =
        generate().map_err(|source| CertError::Generate { name: "CA", source })?;
    write_private_file(&key_path, key.serialize_pem().as_bytes())?;
    write_file(&cert_path, cert_pem.as_bytes(), 0o644)?;
    Ok((cert_pem, key))
}

fn ensure_leaf(
    dir: &Path,
    cert_file: &str,
    key_file: &str,
    ca_der: &[u8],
    issuer: &Issuer<'_, KeyPair>,
    params: impl Fn() -> Result<(CertificateParams, Vec<String>), rcgen::Error>,
) -> Result<(String, String), LeafError> {
    let (cert_path, key_path) = (dir.join(cert_file), dir.join(key_file));
    let (wanted, hosts) = params()?;
    match (read_optional(&cert_path)?, read_optional(&key_path)?) {
        (Some(cert_pem), Some(key_pem)) => {
            return match check_leaf(&cert_pem, &key_pem, ca_der, &hosts) {
                Ok(warnings) => {
                    for warning in warnings {
                        tracing::warn!(cert = %cert_path.display(), "{warning}: replace the files to renew it");
                    }
                    Ok((cert_pem, key_pem))
                }
                Err(reason) => Err(CertError::Unusable {
                    path: cert_path,
                    reason,
                }
                .into()),
            };
        }
        (Some(_), None) | (None, Some(_)) => {
            return Err(CertError::Unusable {
                path: cert_path,
                reason: format!("and {} do not both exist", key_path.display()),
            }
            .into());
        }
        (None, None) => {}
    }
    let key = KeyPair::generate()?;
    let cert_pem = wanted.signed_by(&key, issuer)?.pem();
    let key_pem = key.serialize_pem();
    write_private_file(&key_path, key_pem.as_bytes())?;
    write_file(&cert_path, cert_pem.as_bytes(), 0o644)?;
    Ok((cert_pem, key_pem))
}

/// Whether a leaf on disk can be used: it must parse, match its key and be signed by
/// the CA; one about to expire or not covering every wanted host is still used, with
/// the warnings returned.
fn check_leaf(
    cert_pem: &str,
    key_pem: &str,
    ca_der: &[u8],
    hosts: &[String],
) -> Result<Vec<String>, String> {
    let (Some(der), Ok(key)) = (first_cert_der(cert_pem), KeyPair::from_pem(key_pem)) else {
        return Err("is not a PEM certificate with its PEM key".into());
    };
    let (Ok((_, cert)), Ok((_, ca))) = (
        x509_parser::parse_x509_certificate(&der),
        x509_parser::parse_x509_certificate(ca_der),
    ) else {
        return Err("is not a certificate".into());
    };
    if !matches_key(&cert, &key) {
        return Err("does not match its key".into());
    }
    if cert.verify_signature(Some(ca.public_key())).is_err() {
        return Err("was not signed by the cluster CA".into());
    }
    let mut warnings = Vec::new();
    if !fresh(&cert) {
        warnings.push("the certificate expires within 30 days".to_owned());
    }
    let names = subject_alt_names(&cert);
    let missing: Vec<&str> = hosts
        .iter()
        .filter(|h| !names.contains(h))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        warnings.push(format!(
            "the certificate does not cover {}",
            missing.join(", ")
        ));
    }
    Ok(warnings)
}

/// The DNS names and IP addresses (as text) a certificate covers.
fn subject_alt_names(cert: &X509Certificate<'_>) -> Vec<String> {
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some((*dns).to_owned()),
            GeneralName::IPAddress(bytes) => match bytes.len() {
                4 => <[u8; 4]>::try_from(*bytes)
                    .ok()
                    .map(|b| IpAddr::from(b).to_string()),
                16 => <[u8; 16]>::try_from(*bytes)
                    .ok()
                    .map(|b| IpAddr::from(b).to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

fn fresh(cert: &X509Certificate<'_>) -> bool {
    let now = unix_now();
    let validity = cert.validity();
    validity.not_before.timestamp() <= now + BACKDATE.as_secs() as i64
        && validity.not_after.timestamp() > now + RENEW_BEFORE.as_secs() as i64
}

fn matches_key(cert: &X509Certificate<'_>, key: &KeyPair) -> bool {
    cert.public_key().raw == key.subject_public_key_info().as_slice()
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn leaf_params(
    common_name: &str,
    organization: Option<&str>,
    hosts: &[String],
    usage: ExtendedKeyUsagePurpose,
) -> Result<(CertificateParams, Vec<String>), rcgen::Error> {
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(common_name, organization);
    let mut covered = Vec::new();
    for host in hosts {
        let san = match host.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(host.clone().try_into()?),
        };
        params.subject_alt_names.push(san);
        covered.push(host.clone());
    }
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![usage];
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, LEAF_VALIDITY);
    Ok((params, covered))
}

fn distinguished_name(common_name: &str, organization: Option<&str>) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    if let Some(organization) = organization {
        name.push(DnType::OrganizationName, organization);
    }
    name.push(DnType::CommonName, common_name);
    name
}

fn set_validity(params: &mut CertificateParams, validity: Duration) {
    let now = rcgen::date_time_ymd(1970, 1, 1)
        + SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
    params.not_before = now - BACKDATE;
    params.not_after = now + validity;
}

/// The DER of the first certificate in a PEM text.
fn first_cert_der(pem: &str) -> Option<Vec<u8>> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()?
        .ok()
        .map(|der| der.to_vec())
}

/// A kubeconfig with one cluster, one user and one context, all credentials embedded.
/// Values are written as YAML double-quoted scalars (JSON string syntax, which YAML
/// accepts) so any server address is quoted correctly.
pub fn kubeconfig(
    server: &str,
    ca_cert_pem: &str,
    client_cert_pem: &str,
    client_key_pem: &str,
) -> String {
    let q = |s: &str| serde_json::Value::from(s).to_string();
    let b64 = |s: &str| STANDARD.encode(s.as_bytes());
    format!(
        "apiVersion: v1\n\
         kind: Config\n\
         clusters:\n\
         - name: {cluster}\n  \
           cluster:\n    \
             certificate-authority-data: {ca}\n    \
             server: {server}\n\
         contexts:\n\
         - name: {cluster}\n  \
           context:\n    \
             cluster: {cluster}\n    \
             user: {user}\n\
         current-context: {cluster}\n\
         preferences: {{}}\n\
         users:\n\
         - name: {user}\n  \
           user:\n    \
             client-certificate-data: {cert}\n    \
             client-key-data: {key}\n",
        cluster = q(KUBECONFIG_CLUSTER),
        user = q(KUBECONFIG_USER),
        server = q(server),
        ca = b64(ca_cert_pem),
        cert = b64(client_cert_pem),
        key = b64(client_key_pem),
    )
}

/// Writes a file readable by its owner only (keys, kubeconfigs), creating parent
/// directories, replacing it atomically so a reader never sees half of it.
pub fn write_private_file(path: &Path, contents: &[u8]) -> Result<(), CertError> {
    write_file(path, contents, 0o600)
}

fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), CertError> {
    let err = |source| CertError::Write {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir(parent)?;
    }
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(err)?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(err)?;
    fs::rename(&tmp, path).map_err(err)
}

fn create_dir(dir: &Path) -> Result<(), CertError> {
    fs::create_dir_all(dir).map_err(|source| CertError::Write {
        path: dir.to_owned(),
        source,
    })
}

fn read_optional(path: &Path) -> Result<Option<String>, CertError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CertError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pem: &str) -> Vec<u8> {
        first_cert_der(pem).unwrap()
    }

    #[test]
    fn generates_a_ca_a_serving_and_an_admin_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let hosts = serving_hosts(&[]);
        let pki = ensure(dir.path(), &hosts).unwrap();

        let ca_der = parse(&pki.ca_cert_pem);
        let (_, ca) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
        assert!(ca.is_ca());

        let serving_der = parse(&pki.serving_cert_pem);
        let (_, serving) = x509_parser::parse_x509_certificate(&serving_der).unwrap();
        serving.verify_signature(Some(ca.public_key())).unwrap();
        let names = subject_alt_names(&serving);
        for name in ["127.0.0.1", "localhost", "kubernetes.default.svc"] {
            assert!(
                names.iter().any(|n| n == name),
                "{name} missing from {names:?}"
            );
        }

        let admin_der = parse(&pki.admin_cert_pem);
        let (_, admin) = x509_parser::parse_x509_certificate(&admin_der).unwrap();
        admin.verify_signature(Some(ca.public_key())).unwrap();
        let cn: Vec<_> = admin
            .subject()
            .iter_common_name()
            .map(|a| a.as_str().unwrap())
            .collect();
        let orgs: Vec<_> = admin
            .subject()
            .iter_organization()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(cn, [ADMIN_USER]);
        assert_eq!(orgs, [ADMIN_GROUP]);

        for file in [
            CA_CERT,
            CA_KEY,
            SERVING_CERT,
            SERVING_KEY,
            ADMIN_CERT,
            ADMIN_KEY,
            SA_KEY,
            SA_PUB,
            FRONT_PROXY_CA_CERT,
            FRONT_PROXY_CA_KEY,
            FRONT_PROXY_CLIENT_CERT,
            FRONT_PROXY_CLIENT_KEY,
            "scheduler.crt",
            "controller-manager.key",
            "kubelet.crt",
        ] {
            assert!(pki.path(file).exists(), "{file}");
        }
        // each component's certificate names its user (and the kubelet its group)
        for (name, user, group) in [
            ("scheduler", "system:kube-scheduler", None),
            ("controller-manager", "system:kube-controller-manager", None),
            (
                "kubelet",
                &*format!("system:node:{}", node_name()),
                Some("system:nodes"),
            ),
        ] {
            let client = pki.clients.iter().find(|c| c.name == name).unwrap();
            let der = parse(&client.cert_pem);
            let user_info = crate::auth::UserInfo::from_client_certificate(&der).unwrap();
            assert_eq!(user_info.name, user);
            assert_eq!(user_info.groups.first().map(String::as_str), group);
            let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
            cert.verify_signature(Some(ca.public_key())).unwrap();
            assert!(
                pki.client_kubeconfig(name, "https://127.0.0.1:6443")
                    .is_some()
            );
        }
        crate::auth::authn::service_account::ServiceAccountKeys::new(
            "https://kubernetes.default.svc.cluster.local",
            &pki.service_account_key_pem,
            None,
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(pki.path(CA_KEY)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn certificates_on_disk_are_reused() {
        let dir = tempfile::tempdir().unwrap();
        let hosts = serving_hosts(&[]);
        let first = ensure(dir.path(), &hosts).unwrap();
        let second = ensure(dir.path(), &hosts).unwrap();
        assert_eq!(first.ca_cert_pem, second.ca_cert_pem);
        assert_eq!(first.serving_cert_pem, second.serving_cert_pem);
        assert_eq!(first.admin_key_pem, second.admin_key_pem);
        assert_eq!(
            first.service_account_key_pem,
            second.service_account_key_pem
        );
        assert_eq!(first.clients[2].key_pem, second.clients[2].key_pem);
    }

    #[test]
    fn existing_certificates_are_never_overwritten_even_for_a_new_host() {
        let dir = tempfile::tempdir().unwrap();
        let first = ensure(dir.path(), &serving_hosts(&[])).unwrap();
        let extra: IpAddr = "192.0.2.10".parse().unwrap();
        let second = ensure(dir.path(), &serving_hosts(&[extra])).unwrap();
        assert_eq!(first.serving_cert_pem, second.serving_cert_pem);
        // removed files are generated again, under the same CA, for the new host
        fs::remove_file(dir.path().join(SERVING_CERT)).unwrap();
        fs::remove_file(dir.path().join(SERVING_KEY)).unwrap();
        let third = ensure(dir.path(), &serving_hosts(&[extra])).unwrap();
        assert_eq!(first.ca_cert_pem, third.ca_cert_pem);
        assert_eq!(first.admin_cert_pem, third.admin_cert_pem);
        let der = parse(&third.serving_cert_pem);
        let (_, serving) = x509_parser::parse_x509_certificate(&der).unwrap();
        assert!(subject_alt_names(&serving).contains(&"192.0.2.10".to_owned()));
    }

    #[test]
    fn garbage_on_disk_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        for file in [CA_CERT, CA_KEY] {
            fs::write(dir.path().join(file), "not a pem").unwrap();
        }
        let err = ensure(dir.path(), &serving_hosts(&[])).unwrap_err();
        assert!(matches!(err, CertError::Unusable { .. }), "{err}");
        assert_eq!(
            fs::read_to_string(dir.path().join(CA_CERT)).unwrap(),
            "not a pem"
        );
        // a good CA and a damaged leaf: the leaf is refused, not replaced
        let fresh_dir = tempfile::tempdir().unwrap();
        ensure(fresh_dir.path(), &serving_hosts(&[])).unwrap();
        fs::write(fresh_dir.path().join(ADMIN_CERT), "not a pem").unwrap();
        assert!(ensure(fresh_dir.path(), &serving_hosts(&[])).is_err());
        assert_eq!(
            fs::read_to_string(fresh_dir.path().join(ADMIN_CERT)).unwrap(),
            "not a pem"
        );
    }

    #[test]
    fn kubeconfig_embeds_credentials_and_quotes_the_server() {
        let text = kubeconfig("https://[::1]:6443", "CA", "CERT", "KEY");
        assert!(
            text.contains("    server: \"https://[::1]:6443\"\n"),
            "{text}"
        );
        assert!(text.contains(&format!(
            "certificate-authority-data: {}\n",
            STANDARD.encode("CA")
        )));
        assert!(text.contains(&format!(
            "client-certificate-data: {}\n",
            STANDARD.encode("CERT")
        )));
        assert!(text.contains(&format!("client-key-data: {}\n", STANDARD.encode("KEY"))));
        assert!(text.contains("current-context: \"rkube\"\n"));
        assert!(text.contains("    user: \"rkube-admin\"\n"));
    }
}
