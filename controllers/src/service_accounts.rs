//! The service-account controller: every namespace that is not terminating has a
//! ServiceAccount named `default` (pods that name no account run as it, and the
//! ServiceAccount admission plugin refuses pods whose account is missing). A deleted
//! `default` account is created again.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{ObjectMeta, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Controller, watcher};
use kube::{Api, Client};

/// The controller's name (and its service account's).
pub const NAME: &str = "service-account-controller";
/// The account every namespace gets.
pub const DEFAULT_ACCOUNT: &str = "default";

struct Context {
    reader: Client,
    writer: Client,
}

/// Whether a namespace is on its way out (no new objects are accepted in it).
pub fn terminating(namespace: &Namespace) -> bool {
    namespace.metadata.deletion_timestamp.is_some()
        || namespace.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating")
}

async fn reconcile(
    namespace: Arc<Namespace>,
    context: Arc<Context>,
) -> Result<Action, kube::Error> {
    let Some(name) = namespace.metadata.name.as_deref() else {
        return Ok(Action::await_change());
    };
    if terminating(&namespace) {
        return Ok(Action::await_change());
    }
    let accounts: Api<ServiceAccount> = Api::namespaced(context.reader.clone(), name);
    if accounts.get_opt(DEFAULT_ACCOUNT).await?.is_some() {
        return Ok(Action::await_change());
    }
    let account = ServiceAccount {
        metadata: ObjectMeta {
            name: Some(DEFAULT_ACCOUNT.to_owned()),
            ..Default::default()
        },
        ..Default::default()
    };
    let writer: Api<ServiceAccount> = Api::namespaced(context.writer.clone(), name);
    match writer.create(&PostParams::default(), &account).await {
        Ok(_) => {
            tracing::debug!(namespace = name, "created the default service account");
            Ok(Action::await_change())
        }
        // created meanwhile, or the namespace began terminating
        Err(kube::Error::Api(e)) if e.code == 409 || e.code == 403 => Ok(Action::await_change()),
        Err(e) => Err(e),
    }
}

fn retry(_: Arc<Namespace>, error: &kube::Error, _: Arc<Context>) -> Action {
    tracing::warn!(%error, "service-account controller: retrying");
    Action::requeue(Duration::from_secs(2))
}

/// Runs the controller: reads through `reader`, creates through `writer`.
pub async fn run(reader: Client, writer: Client) {
    let namespaces: Api<Namespace> = Api::all(reader.clone());
    let accounts: Api<ServiceAccount> = Api::all(reader.clone());
    Controller::new(namespaces, watcher::Config::default())
        .watches(
            accounts,
            watcher::Config::default().fields(&format!("metadata.name={DEFAULT_ACCOUNT}")),
            |account| {
                account
                    .metadata
                    .namespace
                    .map(|ns| ObjectRef::<Namespace>::new(&ns))
            },
        )
        .run(reconcile, retry, Arc::new(Context { reader, writer }))
        .for_each(|_| async {})
        .await;
}
