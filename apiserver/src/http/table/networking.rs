//! Printers of `networking.k8s.io` (ingresses, ingress classes, network policies, IP
//! addresses, service CIDRs) and of `discovery.k8s.io` endpoint slices.

use serde_json::{Value, json};

use super::core::load_balancer_ingress;
use super::{
    AGE, NAME, Printer, format_selector, int_of, items, join, list_with_more, name_of, str_of,
    string,
};

pub(super) const INGRESS: Printer = Printer::new(
    &[
        NAME,
        string("Class"),
        string("Hosts"),
        string("Address"),
        string("Ports"),
        AGE,
    ],
    |o, ctx| {
        let spec = &o["spec"];
        let ports = if items(&spec["tls"]).is_empty() {
            "80"
        } else {
            "80, 443"
        };
        vec![
            name_of(o),
            json!(spec["ingressClassName"].as_str().unwrap_or("<none>")),
            json!(ingress_hosts(items(&spec["rules"]))),
            json!(load_balancer_ingress(&o["status"]["loadBalancer"])),
            json!(ports),
            ctx.age(o),
        ]
    },
);

/// Upstream's `formatHosts`: the first three hosts (`*` for none); when rules remain
/// after those, how many rules there are beyond three.
fn ingress_hosts(rules: &[Value]) -> String {
    const MAX: usize = 3;
    let mut hosts = Vec::new();
    let mut more = false;
    for rule in rules {
        if hosts.len() == MAX {
            more = true;
            break;
        }
        match str_of(&rule["host"]) {
            "" => {}
            host => hosts.push(host),
        }
    }
    if hosts.is_empty() {
        return "*".into();
    }
    let shown = hosts.join(",");
    if more {
        format!("{shown} + {} more...", rules.len() - MAX)
    } else {
        shown
    }
}

pub(super) const INGRESS_CLASS: Printer = Printer::new(
    &[NAME, string("Controller"), string("Parameters"), AGE],
    |o, ctx| {
        let parameters = match &o["spec"]["parameters"] {
            Value::Null => "<none>".to_owned(),
            p => match p["apiGroup"].as_str() {
                Some(group) => format!("{}.{group}/{}", str_of(&p["kind"]), str_of(&p["name"])),
                None => format!("{}/{}", str_of(&p["kind"]), str_of(&p["name"])),
            },
        };
        vec![
            name_of(o),
            json!(str_of(&o["spec"]["controller"])),
            json!(parameters),
            ctx.age(o),
        ]
    },
);

pub(super) const NETWORK_POLICY: Printer =
    Printer::new(&[NAME, string("Pod-Selector"), AGE], |o, ctx| {
        vec![
            name_of(o),
            json!(format_selector(&o["spec"]["podSelector"])),
            ctx.age(o),
        ]
    });

/// Upstream declares two columns here but prints a third (the age) cell; kubectl shows
/// only the declared ones, so the age is left out.
pub(super) const IP_ADDRESS: Printer = Printer::new(&[NAME, string("ParentRef")], |o, _| {
    let parent = match &o["spec"]["parentRef"] {
        Value::Null => "<none>".to_owned(),
        r => {
            let resource = match (str_of(&r["resource"]), str_of(&r["group"])) {
                (resource, "") => resource.to_lowercase(),
                (resource, group) => format!("{resource}.{group}").to_lowercase(),
            };
            match str_of(&r["namespace"]) {
                "" => format!("{resource}/{}", str_of(&r["name"])),
                ns => format!("{resource}/{ns}/{}", str_of(&r["name"])),
            }
        }
    };
    vec![name_of(o), json!(parent)]
});

pub(super) const SERVICE_CIDR: Printer = Printer::new(&[NAME, string("CIDRs"), AGE], |o, ctx| {
    vec![
        name_of(o),
        json!(join(&o["spec"]["cidrs"], ",")),
        ctx.age(o),
    ]
});

pub(super) const ENDPOINT_SLICE: Printer = Printer::new(
    &[
        NAME,
        string("AddressType"),
        string("Ports"),
        string("Endpoints"),
        AGE,
    ],
    |o, ctx| {
        const MAX: usize = 3;
        let ports: Vec<String> = items(&o["ports"])
            .iter()
            .map(|p| match (&p["port"], p["name"].as_str()) {
                (Value::Number(_), _) => int_of(&p["port"]).to_string(),
                (_, Some(name)) => name.to_owned(),
                _ => "*".to_owned(),
            })
            .collect();
        let addresses: Vec<String> = items(&o["endpoints"])
            .iter()
            .flat_map(|e| items(&e["addresses"]))
            .map(|a| str_of(a).to_owned())
            .collect();
        vec![
            name_of(o),
            json!(str_of(&o["addressType"])),
            json!(list_with_more(&ports, MAX)),
            json!(list_with_more(&addresses, MAX)),
            ctx.age(o),
        ]
    },
);

#[cfg(test)]
mod tests {
    use super::super::tests::cells;
    use serde_json::json;

    const NET: &str = "networking.k8s.io";

    #[test]
    fn ingresses_print_class_hosts_address_and_ports() {
        let ing = json!({
            "spec": {"ingressClassName": "nginx", "tls": [{"hosts": ["a.example.com"]}],
                     "rules": [{"host": "a.example.com"}, {}, {"host": "c.example.com"}, {"host": "d.example.com"}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "5.6.7.8"}, {"ip": "1.2.3.4"}]}},
        });
        let c = cells(NET, "v1", "ingresses", ing);
        assert_eq!(
            c[1..5],
            [
                json!("nginx"),
                json!("a.example.com,c.example.com,d.example.com"),
                json!("1.2.3.4,5.6.7.8"),
                json!("80, 443")
            ]
        );
        let five = json!({"spec": {"rules": [{"host": "a"}, {}, {"host": "c"}, {"host": "d"}, {"host": "e"}]}});
        assert_eq!(cells(NET, "v1", "ingresses", five)[2], "a,c,d + 2 more...");
        let c = cells(NET, "v1", "ingresses", json!({"spec": {"rules": [{}]}}));
        assert_eq!(
            c[1..5],
            [json!("<none>"), json!("*"), json!(""), json!("80")]
        );
    }

    #[test]
    fn classes_policies_addresses_and_cidrs() {
        let class = json!({"spec": {"controller": "k8s.io/ingress-nginx",
                                    "parameters": {"apiGroup": "k8s.example.com", "kind": "IngressParameters", "name": "external-lb"}}});
        assert_eq!(
            cells(NET, "v1", "ingressclasses", class)[1..3],
            [
                json!("k8s.io/ingress-nginx"),
                json!("IngressParameters.k8s.example.com/external-lb")
            ]
        );
        let np = json!({"spec": {"podSelector": {"matchLabels": {"role": "db"}}}});
        assert_eq!(cells(NET, "v1", "networkpolicies", np)[1], "role=db");
        assert_eq!(
            cells(
                NET,
                "v1",
                "networkpolicies",
                json!({"spec": {"podSelector": {}}})
            )[1],
            "<none>"
        );
        let ip = json!({"metadata": {"name": "10.96.0.1"},
                        "spec": {"parentRef": {"group": "", "resource": "services", "namespace": "default", "name": "kubernetes"}}});
        assert_eq!(
            cells(NET, "v1", "ipaddresses", ip),
            ["10.96.0.1", "services/default/kubernetes"]
        );
        let cidr = json!({"spec": {"cidrs": ["10.96.0.0/16", "fd00::/108"]}});
        assert_eq!(
            cells(NET, "v1", "servicecidrs", cidr)[1],
            "10.96.0.0/16,fd00::/108"
        );
    }

    #[test]
    fn endpoint_slices_list_ports_and_addresses() {
        let slice = json!({
            "addressType": "IPv4",
            "ports": [{"port": 80, "name": "http"}, {"name": "metrics"}, {}],
            "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2", "10.0.0.3"]}, {"addresses": ["10.0.0.4"]}],
        });
        assert_eq!(
            cells("discovery.k8s.io", "v1", "endpointslices", slice)[1..4],
            [
                json!("IPv4"),
                json!("80,metrics,*"),
                json!("10.0.0.1,10.0.0.2,10.0.0.3 + 1 more...")
            ]
        );
        let empty = cells(
            "discovery.k8s.io",
            "v1",
            "endpointslices",
            json!({"addressType": "IPv4"}),
        );
        assert_eq!(empty[2..4], [json!("<unset>"), json!("<unset>")]);
    }
}
