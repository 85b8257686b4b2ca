//! ServiceCIDRs against an in-process apiserver: the `kubernetes` ServiceCIDR holds
//! `--service-cluster-ip-range` and is Ready from the start (upstream's
//! kubernetes-service-cidr-controller), and a Service may ask for a ClusterIP of any
//! other ServiceCIDR (upstream's MetaAllocator), but not for one outside them all.

use apiserver::{Server, ServerOptions};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::{IPAddress, ServiceCIDR};
use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kubernetes_service_cidr_holds_the_configured_range() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = ServerOptions::defaults();
    options.secure_port = 0;
    options.bind_address = [127, 0, 0, 1].into();
    options.storage_url = Some("memory://".into());
    options.cert_dir = dir.path().to_owned();
    options.service_cluster_ip_range = ([10, 100, 0, 0].into(), 16);
    let server = Server::bind(&options).await.unwrap();
    let kubeconfig = server.admin_kubeconfig().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve(async move {
        let _ = stopped.await;
    }));
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    let client = Client::try_from(config).unwrap();

    // there from the start: the server waits for the first round before serving
    let cidrs: Api<ServiceCIDR> = Api::all(client.clone());
    let default = cidrs.get("kubernetes").await.unwrap();
    assert_eq!(
        default.spec.unwrap().cidrs.unwrap(),
        vec!["10.100.0.0/16".to_owned()]
    );
    let conditions = default.status.unwrap().conditions.unwrap();
    assert_eq!(conditions.len(), 1);
    assert_eq!(conditions[0].type_, "Ready");
    assert_eq!(conditions[0].status, "True");
    assert_eq!(
        conditions[0].message,
        "Kubernetes default Service CIDR is ready"
    );
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let kubernetes = services.get("kubernetes").await.unwrap();
    assert_eq!(
        kubernetes.spec.unwrap().cluster_ip.as_deref(),
        Some("10.100.0.1")
    );

    // a ClusterIP of another ServiceCIDR is accepted and recorded as an IPAddress
    let extra: ServiceCIDR = serde_json::from_value(json!({
        "metadata": {"name": "extra"}, "spec": {"cidrs": ["10.200.0.0/24"]}
    }))
    .unwrap();
    cidrs.create(&PostParams::default(), &extra).await.unwrap();
    let service = |name: &str, ip: &str| -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"clusterIP": ip, "ports": [{"port": 80}]}
        }))
        .unwrap()
    };
    let created = services
        .create(&PostParams::default(), &service("in-extra", "10.200.0.10"))
        .await
        .unwrap();
    assert_eq!(
        created.spec.unwrap().cluster_ip.as_deref(),
        Some("10.200.0.10")
    );
    let ips: Api<IPAddress> = Api::all(client.clone());
    let claim = ips.get("10.200.0.10").await.unwrap();
    assert_eq!(claim.spec.unwrap().parent_ref.name, "in-extra");
    // the broadcast address and addresses outside every ServiceCIDR are refused
    for ip in ["10.200.0.255", "10.201.0.10"] {
        let err = services
            .create(&PostParams::default(), &service("outside", ip))
            .await
            .unwrap_err();
        match err {
            kube::Error::Api(status) => assert_eq!(status.code, 422, "{ip}: {status:?}"),
            other => panic!("{ip}: {other:?}"),
        }
    }
    // the spec is immutable
    let mut changed = cidrs.get("extra").await.unwrap();
    changed.spec.as_mut().unwrap().cidrs = Some(vec!["10.201.0.0/24".to_owned()]);
    match cidrs
        .replace("extra", &PostParams::default(), &changed)
        .await
        .unwrap_err()
    {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 422);
            assert!(
                status.message.ends_with(
                    "spec.cidrs: Invalid value: []string{\"10.201.0.0/24\"}: field is immutable"
                ),
                "{}",
                status.message
            );
        }
        other => panic!("{other:?}"),
    }

    let _ = stop.send(());
    serving.await.unwrap().unwrap();
}
