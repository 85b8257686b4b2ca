//! The ServiceCIDR controller against a real apiserver: ServiceCIDRs get the
//! protection finalizer and `Ready=True`; one still holding a Service's ClusterIP that
//! no other ServiceCIDR covers stays `Ready=False`/`Terminating` until the Service is
//! gone, while one inside another ServiceCIDR goes once its grace period is over.

mod support;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::{IPAddress, ServiceCIDR};
use kube::api::{Api, PostParams};
use serde_json::json;
use support::{Spec, cluster, wait_for};

const FINALIZER: &str = "networking.k8s.io/service-cidr-finalizer";

fn ready(cidr: &ServiceCIDR) -> Option<(String, String, String)> {
    let conditions = cidr.status.as_ref()?.conditions.as_ref()?;
    let c = conditions.iter().find(|c| c.type_ == "Ready")?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

fn protected(cidr: &ServiceCIDR) -> bool {
    cidr.metadata
        .finalizers
        .iter()
        .flatten()
        .any(|f| f == FINALIZER)
}

async fn wait_ready(cidrs: &Api<ServiceCIDR>, name: &str) -> ServiceCIDR {
    wait_for(&format!("{name} protected and ready"), || {
        let cidrs = cidrs.clone();
        async move {
            let cidr = cidrs.get(name).await.unwrap();
            let ready = ready(&cidr)?;
            (protected(&cidr) && ready.0 == "True" && ready.2 == "Kubernetes Service CIDR is ready")
                .then_some(cidr)
        }
    })
    .await
}

async fn create_cidr(cidrs: &Api<ServiceCIDR>, name: &str, range: &str) {
    let cidr: ServiceCIDR =
        serde_json::from_value(json!({"metadata": {"name": name}, "spec": {"cidrs": [range]}}))
            .unwrap();
    cidrs.create(&PostParams::default(), &cidr).await.unwrap();
}

async fn create_service(services: &Api<Service>, name: &str, ip: &str) {
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"clusterIP": ip, "ports": [{"port": 80}]}
    }))
    .unwrap();
    services
        .create(&PostParams::default(), &service)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_cidrs_are_protected_while_they_alone_hold_cluster_ips() {
    let mut spec = Spec::new(&["service-cidr"]);
    spec.scheduler = false;
    let c = cluster(spec).await;
    let cidrs: Api<ServiceCIDR> = Api::all(c.admin.clone());
    let services: Api<Service> = Api::namespaced(c.admin.clone(), "default");
    let ips: Api<IPAddress> = Api::all(c.admin.clone());

    // the apiserver's default ServiceCIDR is protected like any other
    let default = wait_ready(&cidrs, "kubernetes").await;
    assert_eq!(
        default.spec.unwrap().cidrs.unwrap(),
        vec!["10.96.0.0/12".to_owned()]
    );

    // a ServiceCIDR alone holding a Service's address stays while the Service does
    create_cidr(&cidrs, "extra", "10.200.0.0/24").await;
    wait_ready(&cidrs, "extra").await;
    create_service(&services, "pinned", "10.200.0.10").await;
    ips.get("10.200.0.10").await.unwrap();
    cidrs.delete("extra", &Default::default()).await.unwrap();
    let held = wait_for("extra terminating", || {
        let cidrs = cidrs.clone();
        async move {
            let cidr = cidrs.get("extra").await.unwrap();
            (ready(&cidr)?.1 == "Terminating").then_some(cidr)
        }
    })
    .await;
    assert!(held.metadata.deletion_timestamp.is_some());
    assert!(protected(&held), "the finalizer stays");
    assert_eq!(
        ready(&held).unwrap(),
        (
            "False".to_owned(),
            "Terminating".to_owned(),
            "There are still IPAddresses referencing the ServiceCIDR, please remove them or create a new ServiceCIDR".to_owned()
        )
    );
    // the Service goes, its IPAddress with it, and then the ServiceCIDR
    services
        .delete("pinned", &Default::default())
        .await
        .unwrap();
    wait_for("extra gone", || {
        let cidrs = cidrs.clone();
        async move {
            cidrs
                .get_opt("extra")
                .await
                .unwrap()
                .is_none()
                .then_some(())
        }
    })
    .await;

    // a ServiceCIDR inside another may go while Services use its addresses
    create_cidr(&cidrs, "outer", "10.201.0.0/16").await;
    create_cidr(&cidrs, "inner", "10.201.5.0/24").await;
    wait_ready(&cidrs, "outer").await;
    wait_ready(&cidrs, "inner").await;
    create_service(&services, "covered", "10.201.5.10").await;
    cidrs.delete("inner", &Default::default()).await.unwrap();
    wait_for("inner gone", || {
        let cidrs = cidrs.clone();
        async move {
            cidrs
                .get_opt("inner")
                .await
                .unwrap()
                .is_none()
                .then_some(())
        }
    })
    .await;
    assert!(services.get_opt("covered").await.unwrap().is_some());
    assert!(ips.get_opt("10.201.5.10").await.unwrap().is_some());
    let outer = cidrs.get("outer").await.unwrap();
    assert_eq!(ready(&outer).unwrap().0, "True");
}
