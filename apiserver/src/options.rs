//! kube-apiserver's command-line flags, named as upstream's (`--secure-port`,
//! `--etcd-servers`, `--tls-cert-file`, ...), plus rkube's `--storage-url` for the
//! embedded store. Parsed with clap, so an unknown flag is clap's usage error.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::Parser;

/// The embedded store used when neither `--etcd-servers` nor `--storage-url` is given.
pub const DEFAULT_STORAGE_URL: &str = "sqlite:///var/lib/rkube/store.db";

/// Where generated certificates go by default, as upstream's `--cert-dir`.
pub const DEFAULT_CERT_DIR: &str = "/var/run/kubernetes";

/// kube-apiserver's options: the subset of upstream's flags that rkube honours today.
#[derive(Clone, Debug, PartialEq, Eq, Parser)]
#[command(
    name = "kube-apiserver",
    version,
    about = "The Kubernetes API server validates and configures data for the api objects"
)]
pub struct ServerOptions {
    /// The port on which to serve HTTPS with authentication and authorization.
    #[arg(long, default_value_t = 6443)]
    pub secure_port: u16,

    /// The IP address on which to listen for the --secure-port port.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind_address: IpAddr,

    /// The IP address on which to advertise the apiserver to members of the cluster
    /// (discovery's serverAddressByClientCIDRs). Defaults to --bind-address, or
    /// 127.0.0.1 when that is unspecified.
    #[arg(long)]
    pub advertise_address: Option<IpAddr>,

    /// List of etcd servers to connect with (scheme://ip:port), comma separated.
    #[arg(long, value_delimiter = ',', conflicts_with = "storage_url")]
    pub etcd_servers: Vec<String>,

    /// SSL Certificate Authority file used to secure etcd communication.
    #[arg(long)]
    pub etcd_cafile: Option<PathBuf>,

    /// SSL certification file used to secure etcd communication.
    #[arg(long)]
    pub etcd_certfile: Option<PathBuf>,

    /// SSL key file used to secure etcd communication.
    #[arg(long)]
    pub etcd_keyfile: Option<PathBuf>,

    /// rkube's embedded or in-memory store instead of etcd, e.g.
    /// sqlite:///var/lib/rkube/store.db or memory:// [default: sqlite:///var/lib/rkube/store.db]
    #[arg(long)]
    pub storage_url: Option<String>,

    /// File containing the default x509 Certificate for HTTPS. If neither this nor
    /// --tls-private-key-file is given, a CA, a serving certificate and an admin client
    /// certificate are generated under --cert-dir.
    #[arg(long, requires = "tls_private_key_file")]
    pub tls_cert_file: Option<PathBuf>,

    /// File containing the default x509 private key matching --tls-cert-file.
    #[arg(long, requires = "tls_cert_file")]
    pub tls_private_key_file: Option<PathBuf>,

    /// If set, any request presenting a client certificate signed by one of the
    /// authorities in this file is authenticated with the certificate's CommonName as
    /// user and its Organizations as groups. Defaults to the generated CA.
    #[arg(long)]
    pub client_ca_file: Option<PathBuf>,

    /// A CIDR notation IP range from which to assign service cluster IPs.
    #[arg(long, default_value = "10.96.0.0/12", value_parser = parse_service_cidr)]
    pub service_cluster_ip_range: (std::net::Ipv4Addr, u8),

    /// A port range to reserve for services with NodePort visibility, inclusive at both ends.
    #[arg(long, default_value = "30000-32767", value_parser = parse_port_range)]
    pub service_node_port_range: (u16, u16),

    /// The directory where the TLS certs are located. If --tls-cert-file and
    /// --tls-private-key-file are provided, this flag will be ignored.
    #[arg(long, default_value = DEFAULT_CERT_DIR)]
    pub cert_dir: PathBuf,

    /// Ordered list of plug-ins to do authorization on secure port: AlwaysAllow,
    /// AlwaysDeny, RBAC, Node, comma separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "AlwaysAllow",
        value_parser = ["AlwaysAllow", "AlwaysDeny", "RBAC", "Node"]
    )]
    pub authorization_mode: Vec<String>,

    /// Enables anonymous requests to the secure port. Anonymous requests are those not
    /// rejected by another authentication method; they get the user
    /// system:anonymous and the group system:unauthenticated.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub anonymous_auth: bool,

    /// If set, the file that will be used to secure the secure port of the API server
    /// via token authentication (CSV: token,user,uid,"group1,group2").
    #[arg(long)]
    pub token_auth_file: Option<PathBuf>,

    /// Enable to allow secrets of type 'bootstrap.kubernetes.io/token' in the
    /// 'kube-system' namespace to be used for TLS bootstrapping authentication.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub enable_bootstrap_token_auth: bool,

    /// Identifier of the service account token issuer (the `iss` of the tokens it
    /// signs).
    #[arg(long, default_value = crate::auth::authn::service_account::DEFAULT_ISSUER)]
    pub service_account_issuer: String,

    /// Path to the file that contains the current private key of the service account
    /// token issuer. Defaults to the generated `sa.key` under --cert-dir.
    #[arg(long)]
    pub service_account_signing_key_file: Option<PathBuf>,

    /// Files of PEM-encoded public (or private) RSA keys that verify service-account
    /// tokens, besides the signing key's own.
    #[arg(long, value_delimiter = ',')]
    pub service_account_key_file: Vec<PathBuf>,

    /// Identifiers of the API. Tokens must be for at least one of these. Defaults to
    /// --service-account-issuer.
    #[arg(long, value_delimiter = ',')]
    pub api_audiences: Vec<String>,

    /// Admission plugins that should be enabled in addition to default enabled ones
    /// (NamespaceLifecycle, LimitRanger, ServiceAccount, TaintNodesByCondition,
    /// RuntimeClass, PodSecurity, Priority, DefaultTolerationSeconds,
    /// DefaultStorageClass, StorageObjectInUseProtection, PersistentVolumeClaimResize,
    /// CertificateApproval, CertificateSigning, CertificateSubjectRestriction,
    /// DefaultIngressClass, MutatingAdmissionWebhook, ValidatingAdmissionPolicy,
    /// ValidatingAdmissionWebhook, ResourceQuota); NodeRestriction is off by default.
    /// The order of plugins in this flag does not matter.
    #[arg(long, value_delimiter = ',')]
    pub enable_admission_plugins: Vec<String>,

    /// Admission plugins that should be disabled although they are in the default
    /// enabled plugins list.
    #[arg(long, value_delimiter = ',')]
    pub disable_admission_plugins: Vec<String>,
}

fn parse_service_cidr(text: &str) -> Result<(std::net::Ipv4Addr, u8), String> {
    crate::registry::services::ServiceNetwork::parse_cidr(text).ok_or_else(|| {
        format!(
            "invalid CIDR {text:?}: an IPv4 range with a prefix of 8 to 30 bits, e.g. 10.96.0.0/12"
        )
    })
}

fn parse_port_range(text: &str) -> Result<(u16, u16), String> {
    crate::registry::services::ServiceNetwork::parse_port_range(text)
        .ok_or_else(|| format!("invalid port range {text:?}: e.g. 30000-32767"))
}

impl ServerOptions {
    /// The service network these options describe.
    pub fn service_network(&self) -> crate::registry::services::ServiceNetwork {
        crate::registry::services::ServiceNetwork {
            cidr: self.service_cluster_ip_range,
            node_ports: self.service_node_port_range,
        }
    }

    /// Options with every default, as if no flag were given.
    pub fn defaults() -> Self {
        ServerOptions {
            secure_port: 6443,
            bind_address: IpAddr::from([0, 0, 0, 0]),
            advertise_address: None,
            etcd_servers: Vec::new(),
            etcd_cafile: None,
            etcd_certfile: None,
            etcd_keyfile: None,
            storage_url: None,
            tls_cert_file: None,
            tls_private_key_file: None,
            client_ca_file: None,
            cert_dir: PathBuf::from(DEFAULT_CERT_DIR),
            service_cluster_ip_range: crate::registry::services::DEFAULT_SERVICE_CIDR,
            service_node_port_range: crate::registry::services::DEFAULT_NODE_PORT_RANGE,
            authorization_mode: vec!["AlwaysAllow".to_owned()],
            anonymous_auth: true,
            token_auth_file: None,
            enable_bootstrap_token_auth: false,
            service_account_issuer: crate::auth::authn::service_account::DEFAULT_ISSUER.to_owned(),
            service_account_signing_key_file: None,
            service_account_key_file: Vec::new(),
            api_audiences: Vec::new(),
            enable_admission_plugins: Vec::new(),
            disable_admission_plugins: Vec::new(),
        }
    }

    /// The address advertised to clients: `--advertise-address`, else the bind address
    /// unless it is unspecified (0.0.0.0 or ::), else loopback.
    pub fn advertised_address(&self) -> IpAddr {
        match self.advertise_address {
            Some(address) => address,
            None if self.bind_address.is_unspecified() => IpAddr::from([127, 0, 0, 1]),
            None => self.bind_address,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_flags_gives_upstream_defaults() {
        let options = ServerOptions::try_parse_from(["kube-apiserver"]).unwrap();
        assert_eq!(options, ServerOptions::defaults());
    }

    #[test]
    fn upstream_flag_spellings_parse() {
        let options = ServerOptions::try_parse_from([
            "kube-apiserver",
            "--secure-port=7443",
            "--bind-address",
            "127.0.0.1",
            "--etcd-servers=https://10.0.0.1:2379,https://10.0.0.2:2379",
            "--etcd-cafile=/pki/etcd/ca.crt",
            "--tls-cert-file=/pki/apiserver.crt",
            "--tls-private-key-file=/pki/apiserver.key",
        ])
        .unwrap();
        assert_eq!(options.secure_port, 7443);
        assert_eq!(options.bind_address, IpAddr::from([127, 0, 0, 1]));
        assert_eq!(
            options.etcd_servers,
            ["https://10.0.0.1:2379", "https://10.0.0.2:2379"]
        );
        assert_eq!(options.etcd_cafile, Some(PathBuf::from("/pki/etcd/ca.crt")));
        assert_eq!(options.advertised_address(), IpAddr::from([127, 0, 0, 1]));
        let secured = ServerOptions::try_parse_from([
            "kube-apiserver",
            "--authorization-mode=Node,RBAC",
            "--anonymous-auth=false",
            "--enable-bootstrap-token-auth",
            "--api-audiences=a,b",
        ])
        .unwrap();
        assert_eq!(secured.authorization_mode, ["Node", "RBAC"]);
        assert!(!secured.anonymous_auth);
        assert!(secured.enable_bootstrap_token_auth);
        assert_eq!(secured.api_audiences, ["a", "b"]);
    }

    #[test]
    fn unknown_flag_is_a_usage_error_not_a_panic() {
        let err = ServerOptions::try_parse_from(["kube-apiserver", "--no-such-flag"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::UnknownArgument);
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for args in [
            ["kube-apiserver", "--secure-port=70000"],
            ["kube-apiserver", "--bind-address=not-an-ip"],
            ["kube-apiserver", "--tls-cert-file=/only/the/cert"],
            ["kube-apiserver", "--authorization-mode=Node,Magic"],
        ] {
            assert!(ServerOptions::try_parse_from(args).is_err(), "{args:?}");
        }
    }

    #[test]
    fn etcd_servers_and_storage_url_conflict() {
        let result = ServerOptions::try_parse_from([
            "kube-apiserver",
            "--etcd-servers=http://127.0.0.1:2379",
            "--storage-url=memory://",
        ]);
        assert!(result.is_err());
    }
}
