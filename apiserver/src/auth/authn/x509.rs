//! x509 client-certificate authentication: the TLS layer has verified the chain
//! against `--client-ca-file`; the leaf's CommonName is the user and its Organizations
//! the groups, as upstream's x509 authenticator.

use x509_parser::certificate::X509Certificate;

use crate::auth::UserInfo;

/// The user a verified client certificate (DER) names, or None when it does not parse
/// or has no CommonName.
pub fn user_from_certificate(der: &[u8]) -> Option<UserInfo> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    user_of(&cert)
}

fn user_of(cert: &X509Certificate<'_>) -> Option<UserInfo> {
    let subject = cert.subject();
    let name = subject.iter_common_name().next()?.as_str().ok()?.to_owned();
    if name.is_empty() {
        return None;
    }
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok())
        .map(str::to_owned)
        .collect();
    Some(UserInfo {
        name,
        groups,
        ..Default::default()
    })
}
