//! The service-account token controller against a real apiserver: a Secret of type
//! `kubernetes.io/service-account-token` a user creates for a service account is filled
//! with a legacy token, the CA bundle and the namespace; the token authenticates as the
//! service account; Secrets of missing accounts are deleted; deleting the account
//! deletes its token Secrets, after which the token no longer authenticates. The
//! legacy token cleaner marks unused auto-generated tokens invalid and deletes those
//! marked long ago, leaving used, manual and mounted ones.

mod support;

use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, ServiceAccount};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use support::{Spec, wait_for};

const NAME_ANNOTATION: &str = "kubernetes.io/service-account.name";
const UID_ANNOTATION: &str = "kubernetes.io/service-account.uid";
const LAST_USED_LABEL: &str = "kubernetes.io/legacy-token-last-used";

/// Aborts the extra manager when the test ends.
struct Abort(tokio::task::JoinHandle<()>);

impl Drop for Abort {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A client that presents `token` as its bearer token (through a token file, as
/// kubeconfigs allow).
async fn client_with_token(
    c: &support::Cluster,
    dir: &tempfile::TempDir,
    token: &str,
) -> kube::Client {
    let path = dir.path().join("token");
    std::fs::write(&path, token).unwrap();
    let mut kubeconfig = kube::config::Kubeconfig::read_from(c.admin_kubeconfig_file()).unwrap();
    for named in &mut kubeconfig.auth_infos {
        named.auth_info = Some(kube::config::AuthInfo {
            token_file: Some(path.display().to_string()),
            ..Default::default()
        });
    }
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    config.default_retry = false;
    kube::Client::try_from(config).unwrap()
}

/// Who the apiserver says the client is (a SelfSubjectReview), or the error code.
async fn whoami(client: &kube::Client) -> Result<SelfSubjectReview, u16> {
    let reviews: Api<SelfSubjectReview> = Api::all(client.clone());
    let review: SelfSubjectReview = serde_json::from_value(json!({})).unwrap();
    reviews
        .create(&PostParams::default(), &review)
        .await
        .map_err(|e| match e {
            kube::Error::Api(s) => s.code,
            other => panic!("unexpected error {other}"),
        })
}

fn token_secret(name: &str, account: &str) -> Secret {
    serde_json::from_value(json!({
        "metadata": {"name": name, "annotations": {NAME_ANNOTATION: account}},
        "type": "kubernetes.io/service-account-token",
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_secret_is_filled_authenticates_and_goes_with_its_account() {
    let c = support::cluster(Spec {
        scheduler: false,
        ..Spec::new(&[])
    })
    .await;
    // the key exists once the apiserver runs: a second manager runs the controller
    // with it, as `rkube up` passes it as --service-account-private-key-file
    let settings = controllers::Settings {
        service_account_private_key_pem: std::fs::read_to_string(c.service_account_key_file())
            .unwrap(),
        ..controllers::Settings::default()
    };
    let _manager = Abort(c.start_manager(vec!["serviceaccount-token".to_owned()], settings, None));
    c.namespace("dev").await;
    let accounts: Api<ServiceAccount> = Api::namespaced(c.admin.clone(), "dev");
    let account: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "builder"}})).unwrap();
    let account = accounts
        .create(&PostParams::default(), &account)
        .await
        .unwrap();
    let account_uid = account.metadata.uid.clone().unwrap();
    let secrets: Api<Secret> = Api::namespaced(c.admin.clone(), "dev");
    secrets
        .create(
            &PostParams::default(),
            &token_secret("builder-token", "builder"),
        )
        .await
        .unwrap();
    // a token Secret of an account that does not exist is deleted
    let orphan = secrets
        .create(
            &PostParams::default(),
            &token_secret("ghost-token", "ghost"),
        )
        .await
        .unwrap();

    let filled = wait_for("the token Secret filled in", || {
        let secrets = secrets.clone();
        async move {
            let s = secrets.get("builder-token").await.unwrap();
            let data = s.data.as_ref()?;
            (data.contains_key("token") && data.contains_key("ca.crt")).then_some(s)
        }
    })
    .await;
    let data = filled.data.as_ref().unwrap();
    assert_eq!(data["namespace"].0, b"dev");
    assert_eq!(data["ca.crt"].0, c.ca_pem().as_bytes());
    assert_eq!(
        filled.metadata.annotations.as_ref().unwrap()[UID_ANNOTATION],
        account_uid
    );
    let token = String::from_utf8(data["token"].0.clone()).unwrap();
    assert_eq!(token.split('.').count(), 3, "a compact JWT");

    wait_for("the orphan token Secret deleted", || {
        let secrets = secrets.clone();
        let uid = orphan.metadata.uid.clone();
        async move {
            match secrets.get_opt("ghost-token").await.unwrap() {
                Some(s) if s.metadata.uid == uid => None,
                _ => Some(()),
            }
        }
    })
    .await;

    // the token authenticates as the service account
    let dir = tempfile::tempdir().unwrap();
    let client = client_with_token(&c, &dir, &token).await;
    let review = whoami(&client)
        .await
        .expect("the legacy token authenticates");
    let user = review.status.unwrap().user_info.unwrap();
    assert_eq!(
        user.username.as_deref(),
        Some("system:serviceaccount:dev:builder")
    );
    assert_eq!(user.uid.as_deref(), Some(account_uid.as_str()));
    let groups = user.groups.unwrap_or_default();
    for group in [
        "system:serviceaccounts",
        "system:serviceaccounts:dev",
        "system:authenticated",
    ] {
        assert!(groups.iter().any(|g| g == group), "{group} in {groups:?}");
    }
    // legacy tokens carry no credential id
    assert!(user.extra.unwrap_or_default().is_empty());
    // its use is recorded on the Secret
    let used = secrets.get("builder-token").await.unwrap();
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .to_string();
    assert_eq!(
        used.metadata
            .labels
            .unwrap_or_default()
            .get(LAST_USED_LABEL),
        Some(&today)
    );
    // a token that is not the Secret's copy is refused
    let mut forged = token.clone();
    forged.push_str("x");
    let forged_client = client_with_token(&c, &tempfile::tempdir().unwrap(), &forged).await;
    assert_eq!(whoami(&forged_client).await.err(), Some(401));

    // deleting the account deletes its token Secrets, and the token stops working
    accounts
        .delete("builder", &Default::default())
        .await
        .unwrap();
    wait_for("the account's token Secret deleted", || {
        let secrets = secrets.clone();
        async move {
            secrets
                .get_opt("builder-token")
                .await
                .unwrap()
                .is_none()
                .then_some(())
        }
    })
    .await;
    // (an authenticated token is remembered for 10 s, as upstream's cache)
    wait_for("the token refused", || {
        let client = client.clone();
        async move { (whoami(&client).await.err() == Some(401)).then_some(()) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_secret_of_a_recreated_account_is_deleted() {
    let c = support::cluster(Spec {
        scheduler: false,
        ..Spec::new(&[])
    })
    .await;
    let settings = controllers::Settings {
        service_account_private_key_pem: std::fs::read_to_string(c.service_account_key_file())
            .unwrap(),
        ..controllers::Settings::default()
    };
    let _manager = Abort(c.start_manager(
        vec!["serviceaccount-token-controller".to_owned()],
        settings,
        None,
    ));
    c.namespace("dev").await;
    let accounts: Api<ServiceAccount> = Api::namespaced(c.admin.clone(), "dev");
    let account: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "builder"}})).unwrap();
    accounts
        .create(&PostParams::default(), &account)
        .await
        .unwrap();
    // a Secret claiming an older account of that name (another uid) is not the
    // current account's token: it is deleted, not filled
    let mut stale = token_secret("stale-token", "builder");
    stale
        .metadata
        .annotations
        .as_mut()
        .unwrap()
        .insert(UID_ANNOTATION.to_owned(), "some-older-uid".to_owned());
    let secrets: Api<Secret> = Api::namespaced(c.admin.clone(), "dev");
    secrets
        .create(&PostParams::default(), &stale)
        .await
        .unwrap();
    wait_for("the stale token Secret deleted", || {
        let secrets = secrets.clone();
        async move {
            secrets
                .get_opt("stale-token")
                .await
                .unwrap()
                .is_none()
                .then_some(())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cleaner_marks_unused_auto_generated_tokens_and_deletes_long_marked_ones() {
    const INVALID_SINCE: &str = "kubernetes.io/legacy-token-invalid-since";
    let c = support::cluster(Spec {
        scheduler: false,
        ..Spec::new(&[])
    })
    .await;
    // the apiserver made its tracking ConfigMap, dated today, at start
    let maps: Api<ConfigMap> = Api::namespaced(c.admin.clone(), "kube-system");
    let name = "kube-apiserver-legacy-service-account-token-tracking";
    let tracking = maps.get(name).await.unwrap();
    let started = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let since = &tracking.data.unwrap()["since"];
    assert!(
        *since == started.to_string() || *since == started.yesterday().unwrap().to_string(),
        "{since}"
    );
    // pretend it has tracked token use for long
    maps.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"since": "2020-01-01"}})),
    )
    .await
    .unwrap();
    c.namespace("dev").await;
    c.wait_default_account("dev").await;
    let accounts: Api<ServiceAccount> = Api::namespaced(c.admin.clone(), "dev");
    let account: ServiceAccount = serde_json::from_value(json!({
        "metadata": {"name": "builder"},
        "secrets": [
            {"name": "unused-token"}, {"name": "marked-token"},
            {"name": "mounted-token"}, {"name": "used-token"},
        ],
    }))
    .unwrap();
    accounts
        .create(&PostParams::default(), &account)
        .await
        .unwrap();
    let secrets: Api<Secret> = Api::namespaced(c.admin.clone(), "dev");
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .to_string();
    for (name, labels) in [
        ("unused-token", json!({})),
        ("marked-token", json!({INVALID_SINCE: "2020-01-01"})),
        ("mounted-token", json!({})),
        ("used-token", json!({LAST_USED_LABEL: today})),
        // not in the account's list: made by hand, never cleaned
        ("manual-token", json!({})),
    ] {
        let mut secret = token_secret(name, "builder");
        secret.metadata.labels = serde_json::from_value(labels).unwrap();
        secrets
            .create(&PostParams::default(), &secret)
            .await
            .unwrap();
    }
    let pods: Api<Pod> = Api::namespaced(c.admin.clone(), "dev");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "mounts"},
        "spec": {
            "containers": [{"name": "c", "image": "busybox"}],
            "volumes": [{"name": "t", "secret": {"secretName": "mounted-token"}}],
        },
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    // with a period of 2 s, the Secrets qualify once older than that
    let period = std::time::Duration::from_secs(2);
    let created = secrets
        .get("manual-token")
        .await
        .unwrap()
        .metadata
        .creation_timestamp
        .unwrap()
        .0;
    wait_for("the token Secrets older than the period", || async move {
        (jiff::Timestamp::now().duration_since(created) > jiff::SignedDuration::from_secs(3))
            .then_some(())
    })
    .await;
    let settings = controllers::Settings {
        legacy_service_account_token_clean_up_period: period,
        ..controllers::Settings::default()
    };
    let _manager = Abort(c.start_manager(
        vec!["legacy-service-account-token-cleaner".to_owned()],
        settings,
        None,
    ));

    wait_for("the long-marked token deleted", || {
        let secrets = secrets.clone();
        async move {
            secrets
                .get_opt("marked-token")
                .await
                .unwrap()
                .is_none()
                .then_some(())
        }
    })
    .await;
    wait_for("the unused token marked invalid", || {
        let secrets = secrets.clone();
        let today = today.clone();
        async move {
            let s = secrets.get("unused-token").await.unwrap();
            (s.metadata.labels?.get(INVALID_SINCE)? == &today).then_some(())
        }
    })
    .await;
    // one pass saw every Secret: the used, mounted and manual ones are left alone
    for name in ["used-token", "mounted-token", "manual-token"] {
        let s = secrets.get(name).await.unwrap();
        let labels = s.metadata.labels.unwrap_or_default();
        assert!(!labels.contains_key(INVALID_SINCE), "{name}: {labels:?}");
    }
}
