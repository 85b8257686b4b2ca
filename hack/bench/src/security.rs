//! The price of security: pod create and get rate and p99 through a kube-apiserver with
//! authentication (a service-account token), Node,RBAC authorization over 1,000
//! RoleBindings and 1,000 ClusterRoleBindings of other users, and the default
//! admission chain; beside, in the same run, one with AlwaysAllow and no admission
//! reached with the admin's client certificate; and one with authentication and RBAC
//! but no admission, to tell the costs apart. All on the embedded store. Prints the
//! figures and the ratios to allow-all (target: at least 0.85).
//!
//! Run: `cargo run --release -p rkube-bench --bin bench-security` (see `--help`).

use anyhow::{Context, Result};
use apiserver::{Server, ServerOptions};
use base64::Engine;
use clap::Parser;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
use kube::api::{Api, PostParams};
use rkube_bench::{Figure, measure};

#[derive(Parser, Debug)]
#[command(about = "kube-apiserver secured (authn, RBAC, admission) beside allow-all")]
struct Args {
    /// Requests per figure.
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Interleaved rounds; each figure is the best of its rounds.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// RoleBindings (and as many ClusterRoleBindings) of other users.
    #[arg(long, default_value_t = 1000)]
    bindings: usize,
}

const NS: &str = "bench";

/// The pod every run creates (under its own names).
fn plain_pod() -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"labels": {"app": "bench"}},
        "spec": {"containers": [{"name": "app", "image": "registry.example/app:1.0",
                 "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]},
    }))
    .expect("a valid pod")
}

/// `template` named `name`.
fn pod(template: &Pod, name: &str) -> Pod {
    let mut pod = template.clone();
    pod.metadata.name = Some(name.to_owned());
    pod
}

/// The plain pod as the admission chain leaves it (service-account volume, tolerations,
/// priority...), without what the registry sets: for the allow-all run that tells the
/// cost of bigger pods from the cost of the secured path.
async fn admitted_pod(secured: &kube::Client) -> Result<Pod> {
    let api: Api<Pod> = Api::namespaced(secured.clone(), NS);
    let created = api
        .create(&PostParams::default(), &pod(&plain_pod(), "shape-probe"))
        .await?;
    let mut shape = plain_pod();
    shape.spec = created.spec;
    if let Some(spec) = shape.spec.as_mut() {
        spec.node_name = None;
    }
    Ok(shape)
}

fn options(dir: &std::path::Path, name: &str) -> ServerOptions {
    let mut options = ServerOptions::defaults();
    options.secure_port = 0;
    options.bind_address = [127, 0, 0, 1].into();
    options.storage_url = Some(format!(
        "sqlite://{}",
        dir.join(format!("{name}.db")).display()
    ));
    options.cert_dir = dir.join(format!("pki-{name}"));
    options
}

/// Starts a server; returns its URL, CA and admin client.
async fn start(
    options: ServerOptions,
) -> Result<(
    String,
    String,
    kube::Client,
    tokio::sync::oneshot::Sender<()>,
)> {
    let server = Server::bind(&options).await.context("bind the apiserver")?;
    let url = server.client_url();
    let ca = server.pki().context("generated PKI")?.ca_cert_pem.clone();
    let kubeconfig = server.admin_kubeconfig().context("admin kubeconfig")?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.serve(async move {
        let _ = stopped.await;
    }));
    Ok((url, ca, rkube_bench::client_of(&kubeconfig).await?, stop))
}

async fn create<K>(api: &Api<K>, value: serde_json::Value) -> Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let object: K = serde_json::from_value(value)?;
    match api.create(&PostParams::default(), &object).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Creates and gets pods, returning (create, get).
async fn run(
    client: kube::Client,
    template: &Pod,
    args: &Args,
    prefix: &str,
) -> Result<(Figure, Figure)> {
    let pods: Api<Pod> = Api::namespaced(client, NS);
    let api = pods.clone();
    let prefix_owned = prefix.to_owned();
    let template = std::sync::Arc::new(template.clone());
    let create = measure(args.concurrency, args.requests, move |i| {
        let (api, prefix, template) = (api.clone(), prefix_owned.clone(), template.clone());
        async move {
            api.create(
                &PostParams::default(),
                &pod(&template, &format!("{prefix}-{i}")),
            )
            .await?;
            Ok(())
        }
    })
    .await?;
    let n = args.requests;
    let prefix_owned = prefix.to_owned();
    let get = measure(args.concurrency, args.requests, move |i| {
        let (api, prefix) = (pods.clone(), prefix_owned.clone());
        async move {
            api.get(&format!("{prefix}-{}", (i * 7919) % n)).await?;
            Ok(())
        }
    })
    .await?;
    Ok((create, get))
}

/// A server with Node,RBAC (and the default admission chain when `admission`), its
/// bindings, and a client with a service account's token.
async fn secured(
    dir: &std::path::Path,
    args: &Args,
    admission: bool,
) -> Result<(kube::Client, tokio::sync::oneshot::Sender<()>)> {
    let name = if admission { "secured" } else { "rbac-only" };
    let mut secured = options(dir, name);
    secured.authorization_mode = vec!["Node".into(), "RBAC".into()];
    if !admission {
        secured.disable_admission_plugins = apiserver::auth::admission::default_plugins()
            .map(str::to_owned)
            .collect();
    }
    let (url, ca, admin, stop) = start(secured).await?;
    create(
        &Api::<Namespace>::all(admin.clone()),
        serde_json::json!({"metadata": {"name": NS}}),
    )
    .await?;
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), NS);
    for name in ["default", "bench"] {
        create(&accounts, serde_json::json!({"metadata": {"name": name}})).await?;
    }
    let role_bindings: Api<RoleBinding> = Api::namespaced(admin.clone(), NS);
    let cluster_bindings: Api<ClusterRoleBinding> = Api::all(admin.clone());
    for i in 0..args.bindings {
        create(&role_bindings, serde_json::json!({"metadata": {"name": format!("other-{i}")},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": format!("user-{i}")}]}))
        .await?;
        create(&cluster_bindings, serde_json::json!({"metadata": {"name": format!("other-{i}")},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": format!("group-{i}")}]}))
        .await?;
    }
    create(
        &role_bindings,
        serde_json::json!({"metadata": {"name": "bench-edit"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
        "subjects": [{"kind": "ServiceAccount", "name": "bench", "namespace": NS}]}),
    )
    .await?;
    let request: TokenRequest = TokenRequest {
        spec: TokenRequestSpec {
            expiration_seconds: Some(3600),
            ..Default::default()
        },
        ..Default::default()
    };
    let token = accounts
        .create_token_request("bench", &PostParams::default(), &request)
        .await?
        .status
        .context("a token")?
        .token;
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {url}\n    certificate-authority-data: {}\ncontexts:\n- name: c\n  context: {{cluster: c, user: u}}\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: {token}\n",
        base64::engine::general_purpose::STANDARD.encode(&ca)
    );
    let client = rkube_bench::client_of(&kubeconfig).await?;
    // RBAC follows the store: wait until the binding lets the account in
    let probe: Api<Pod> = Api::namespaced(client.clone(), NS);
    for _ in 0..100 {
        if probe.list(&Default::default()).await.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    Ok((client, stop))
}

#[tokio::main]
async fn main() -> Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    let dir = tempfile::tempdir()?;

    // allow-all: no authorization, no admission, the admin's certificate
    let mut open = options(dir.path(), "open");
    open.disable_admission_plugins = apiserver::auth::admission::default_plugins()
        .map(str::to_owned)
        .collect();
    let (_, _, open_client, stop_open) = start(open).await?;
    create(
        &Api::<Namespace>::all(open_client.clone()),
        serde_json::json!({"metadata": {"name": NS}}),
    )
    .await?;

    // secured: Node,RBAC, the default admission chain, a service account's token;
    // and the same without admission, to tell the two costs apart
    let (secured_client, stop_secured) = secured(dir.path(), &args, true).await?;
    let (rbac_client, stop_rbac) = secured(dir.path(), &args, false).await?;
    let plain = plain_pod();
    let admitted = admitted_pod(&secured_client).await?;

    println!(
        "{} requests per figure at c{}, {} RoleBindings + {} ClusterRoleBindings of other users",
        args.requests, args.concurrency, args.bindings, args.bindings
    );
    let best = |a: Figure, b: Figure| if a.ops_per_sec >= b.ops_per_sec { a } else { b };
    let mut results: Vec<(&str, Figure, Figure)> = Vec::new();
    // interleaved rounds, the best of each kept, so machine noise falls on all alike
    // the fourth, allow-all creating pods shaped as admission leaves them, tells the cost
    // of the secured path from the cost of the bigger pods it makes
    let clients = [
        ("allow-all", &open_client, &plain),
        ("rbac-only", &rbac_client, &plain),
        ("secured", &secured_client, &plain),
        ("allow-all+admitted-shape", &open_client, &admitted),
    ];
    for round in 0..args.rounds.max(1) {
        for (name, client, template) in clients {
            let (create, get) = run(
                (*client).clone(),
                template,
                &args,
                &format!("{}-{round}", name.replace('+', "-")),
            )
            .await?;
            match results.iter_mut().find(|r| r.0 == name) {
                Some(r) => {
                    r.1 = best(r.1, create);
                    r.2 = best(r.2, get);
                }
                None => results.push((name, create, get)),
            }
        }
    }
    let (open_create, open_get) = (results[0].1, results[0].2);
    for (name, create, get) in &results {
        println!(
            "{name:<24} create {create}   {:.2}x of allow-all",
            create.ops_per_sec / open_create.ops_per_sec.max(1e-9)
        );
        println!(
            "{name:<24} get    {get}   {:.2}x of allow-all",
            get.ops_per_sec / open_get.ops_per_sec.max(1e-9)
        );
    }
    let _ = stop_open.send(());
    let _ = stop_secured.send(());
    let _ = stop_rbac.send(());
    Ok(())
}
