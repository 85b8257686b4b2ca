//! What the controller integration tests share: a real in-process kube-apiserver
//! (embedded store, RBAC, admission) with the controller manager running the
//! controllers a test names (as their own service accounts, as `rkube up` runs them),
//! optionally the scheduler, and fake nodes whose kubelets the `fake-kubelet` crate
//! plays (bound pods become Running and Ready; no container runs).

#![allow(dead_code)]

use std::future::Future;
use std::time::{Duration, Instant};

use apiserver::{Server, ServerOptions};
use fake_kubelet::FakeKubelet;
use kube::Client;

/// How long a test waits for the cluster to reach a state.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// A running cluster; dropping it stops everything.
pub struct Cluster {
    /// A cluster-admin client.
    pub admin: Client,
    /// The fake kubelets of the nodes made by [`Cluster::add_nodes`].
    pub kubelet: FakeKubelet,
    manager_config: kube::Config,
    ca_pem: String,
    dir: tempfile::TempDir,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn client_config(kubeconfig: &str) -> kube::Config {
    let kubeconfig = kube::config::Kubeconfig::from_yaml(kubeconfig).unwrap();
    kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap()
}

/// What a test's cluster runs.
pub struct Spec {
    /// `--controllers` of the manager (the service-account controller is always added:
    /// the ServiceAccount admission plugin needs each namespace's `default` account).
    pub controllers: Vec<String>,
    /// Settings of the controllers.
    pub settings: controllers::Settings,
    /// Whether kube-scheduler runs (pods stay unbound otherwise).
    pub scheduler: bool,
}

impl Spec {
    /// The named controllers with default settings, with the scheduler.
    pub fn new(controllers: &[&str]) -> Spec {
        Spec {
            controllers: controllers.iter().map(|c| (*c).to_owned()).collect(),
            settings: controllers::Settings::default(),
            scheduler: true,
        }
    }
}

/// Starts an apiserver and what `spec` asks for.
pub async fn cluster(spec: Spec) -> Cluster {
    // RUST_LOG=controllers=debug shows the controllers' side when a test fails
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    let mut options = ServerOptions::defaults();
    options.secure_port = 0;
    options.bind_address = [127, 0, 0, 1].into();
    options.storage_url = Some(format!(
        "sqlite://{}",
        dir.path().join("store.db").display()
    ));
    options.cert_dir = dir.path().join("pki");
    options.authorization_mode = vec!["Node".into(), "RBAC".into()];
    let server = Server::bind(&options).await.unwrap();
    let pki = server.pki().unwrap();
    let url = server.client_url();
    let mut admin_config = client_config(&server.admin_kubeconfig().unwrap()).await;
    // tests see the apiserver's answers as they are: kube-rs would otherwise retry a
    // 429 (an eviction a budget refuses) for minutes
    admin_config.default_retry = false;
    let admin = Client::try_from(admin_config).unwrap();
    let manager_config =
        client_config(&pki.client_kubeconfig("controller-manager", &url).unwrap()).await;
    let scheduler_config = client_config(&pki.client_kubeconfig("scheduler", &url).unwrap()).await;
    let ca_pem = pki.ca_cert_pem.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.serve(async move {
        let _ = stopped.await;
    }));
    let mut cluster = Cluster {
        kubelet: FakeKubelet::start(admin.clone(), &[]),
        admin,
        manager_config,
        ca_pem,
        dir,
        tasks: Vec::new(),
        _stop: stop,
    };
    let mut wanted = spec.controllers.clone();
    if !wanted
        .iter()
        .any(|c| c == "serviceaccount" || c == "serviceaccount-controller")
    {
        wanted.push("serviceaccount-controller".to_owned());
    }
    let manager = cluster.start_manager(wanted, spec.settings, None);
    cluster.tasks.push(manager);
    if spec.scheduler {
        let client = Client::try_from(scheduler_config).unwrap();
        let mut config = scheduler::config::KubeSchedulerConfiguration::default();
        config.set_defaults(&scheduler::registered);
        config.leader_election.leader_elect = false;
        cluster.tasks.push(tokio::spawn(async move {
            if let Err(e) =
                scheduler::run_with_client(client, config, None, std::future::pending()).await
            {
                tracing::error!(error = %e, "scheduler stopped");
            }
        }));
    }
    cluster
}

impl Cluster {
    /// Starts a controller manager running `controllers`; with `lease`, it elects a
    /// leader first. Aborting the task kills it (no lease release).
    pub fn start_manager(
        &self,
        controllers: Vec<String>,
        settings: controllers::Settings,
        lease: Option<component_base::leader_election::Config>,
    ) -> tokio::task::JoinHandle<()> {
        let mut options = controllers::Options::new(
            self.manager_config.clone(),
            self.dir.path().join("controller-tokens"),
            self.ca_pem.clone(),
        );
        options.controllers = controllers;
        options.settings = controllers::Settings {
            root_ca_pem: self.ca_pem.clone(),
            ..settings
        };
        options.leader_election = lease.map(|config| controllers::LeaderElection { config });
        tokio::spawn(async move {
            if let Err(e) = controllers::run(options, std::future::pending()).await {
                tracing::error!(error = %e, "controller manager stopped");
            }
        })
    }

    /// Creates fake nodes `<prefix>-0` ... with 4 CPUs and 16 GiB each, played by the
    /// fake kubelet.
    pub async fn add_nodes(&self, prefix: &str, count: usize) -> Vec<String> {
        let mut names = Vec::new();
        for i in 0..count {
            let name = format!("{prefix}-{i}");
            fake_kubelet::create_node(&self.admin, &name, "4", "16Gi", serde_json::json!({}))
                .await
                .unwrap();
            self.kubelet.add_node(&name);
            names.push(name);
        }
        names
    }

    /// Removes the not-ready taint TaintNodesByCondition puts on new nodes (what the
    /// node-lifecycle controller does when it runs).
    pub async fn untaint(&self, node: &str) {
        use kube::api::{Api, Patch, PatchParams};
        let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(self.admin.clone());
        nodes
            .patch(
                node,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"spec": {"taints": null}})),
            )
            .await
            .unwrap();
    }

    /// Creates a namespace.
    pub async fn namespace(&self, name: &str) {
        use kube::api::{Api, PostParams};
        let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(self.admin.clone());
        let ns = serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap();
        namespaces
            .create(&PostParams::default(), &ns)
            .await
            .unwrap();
    }
}

/// Polls `check` every 100 ms until it returns `Some`, failing the test with `what`
/// after [`DEADLINE`].
pub async fn wait_for<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    wait_for_within(what, DEADLINE, check).await
}

impl Cluster {
    /// The cluster CA's certificate and key files (`pki/ca.crt`, `pki/ca.key`): what
    /// `rkube up` gives the CSR signing controller as `--cluster-signing-{cert,key}-file`.
    pub fn ca_files(&self) -> (std::path::PathBuf, std::path::PathBuf) {
        let pki = self.dir.path().join("pki");
        (
            pki.join(apiserver::certs::CA_CERT),
            pki.join(apiserver::certs::CA_KEY),
        )
    }

    /// The cluster CA certificate (PEM).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// A client authenticated by a client certificate the cluster CA issues for `user`
    /// in `groups` (as a kubelet's own certificate would be).
    pub async fn client_as(&self, user: &str, groups: &[&str]) -> Client {
        let kubeconfig = self.kubeconfig_as(user, groups);
        let mut config = client_config(&kubeconfig).await;
        config.default_retry = false;
        Client::try_from(config).unwrap()
    }
}

// ---- set-up and look-ups the controller tests share ----

impl Cluster {
    /// Waits for the `default` ServiceAccount of `namespace`: until the service-account
    /// controller has made it, the ServiceAccount admission plugin refuses pods there.
    pub async fn wait_default_account(&self, namespace: &str) {
        use k8s_openapi::api::core::v1::ServiceAccount;
        let accounts: kube::Api<ServiceAccount> =
            kube::Api::namespaced(self.admin.clone(), namespace);
        wait_for(
            &format!("the default service account of {namespace}"),
            || {
                let accounts = accounts.clone();
                async move { accounts.get_opt("default").await.ok().flatten() }
            },
        )
        .await;
    }

    /// Adds `count` fake nodes `<prefix>-0` ... without the not-ready taint, so the
    /// scheduler places pods on them at once.
    pub async fn add_ready_nodes(&self, prefix: &str, count: usize) -> Vec<String> {
        let nodes = self.add_nodes(prefix, count).await;
        for node in &nodes {
            self.untaint(node).await;
        }
        nodes
    }

    /// A kubeconfig for a user the cluster CA issues a client certificate to, in
    /// `groups` (`system:masters` for an administrator).
    pub fn kubeconfig_as(&self, user: &str, groups: &[&str]) -> String {
        let ca_key = std::fs::read_to_string(self.ca_files().1).unwrap();
        let issuer = rcgen::Issuer::from_ca_cert_pem(
            &self.ca_pem,
            rcgen::KeyPair::from_pem(&ca_key).unwrap(),
        )
        .unwrap();
        let mut params = rcgen::CertificateParams::default();
        for group in groups {
            params
                .distinguished_name
                .push(rcgen::DnType::OrganizationName, *group);
        }
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, user);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        apiserver::certs::kubeconfig(
            &self.manager_config.cluster_url.to_string(),
            &self.ca_pem,
            &cert.pem(),
            &key.serialize_pem(),
        )
    }

    /// Writes a cluster-admin kubeconfig (a `system:masters` client certificate) into
    /// the cluster's temporary directory, for stock kubectl.
    pub fn admin_kubeconfig_file(&self) -> std::path::PathBuf {
        let path = self.dir.path().join("admin.kubeconfig");
        std::fs::write(
            &path,
            self.kubeconfig_as("kubectl-admin", &["system:masters"]),
        )
        .unwrap();
        path
    }
}

/// A cluster running `controllers` and the scheduler, with `nodes` schedulable nodes
/// and the `default` namespace ready for pods.
pub async fn ready_cluster(controllers: &[&str], nodes: usize) -> Cluster {
    let c = cluster(Spec::new(controllers)).await;
    c.add_ready_nodes("node", nodes).await;
    c.wait_default_account("default").await;
    c
}

/// Runs stock `kubectl` (from PATH) against `kubeconfig`; a missing kubectl fails the
/// test rather than skipping it.
pub fn kubectl(kubeconfig: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .env_remove("KUBECONFIG")
        .output()
        .unwrap_or_else(|e| panic!("kubectl must be on PATH to run this test: {e}"))
}

/// Decodes `object` and creates it through `api`.
pub async fn create<K>(api: &kube::Api<K>, object: serde_json::Value) -> K
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let object: K = serde_json::from_value(object).unwrap();
    api.create(&kube::api::PostParams::default(), &object)
        .await
        .unwrap()
}

/// The uid of the object's controller (its ownerReference with `controller: true`).
pub fn controller_uid<K: kube::Resource>(object: &K) -> Option<&str> {
    object
        .meta()
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
        .map(|r| r.uid.as_str())
}

/// The events in `default` with `reason` about the object with `uid`.
pub async fn events_about(
    admin: &Client,
    uid: &str,
    reason: &str,
) -> Vec<k8s_openapi::api::core::v1::Event> {
    let events: kube::Api<k8s_openapi::api::core::v1::Event> =
        kube::Api::namespaced(admin.clone(), "default");
    events
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| {
            e.involved_object.uid.as_deref() == Some(uid) && e.reason.as_deref() == Some(reason)
        })
        .collect()
}

/// The objects `api` lists whose controller is the object with `uid`, those being
/// deleted included.
pub async fn controlled_by<K>(api: &kube::Api<K>, uid: &str) -> Vec<K>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|o| controller_uid(o) == Some(uid))
        .collect()
}

impl Cluster {
    /// The apiserver's service-account signing key (`pki/sa.key`): what `rkube up`
    /// gives the manager as `--service-account-private-key-file`.
    pub fn service_account_key_file(&self) -> std::path::PathBuf {
        self.dir.path().join("pki").join(apiserver::certs::SA_KEY)
    }
}

/// [`wait_for`] with its own deadline, for states that come no sooner than a clock
/// says (a CronJob's next minute).
pub async fn wait_for_within<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(start.elapsed() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
