//! Printers of `certificates.k8s.io`: certificate signing requests.

use serde_json::{Value, json};

use super::{AGE, NAME, Printer, human_duration, items, name_of, str_of, string};

pub(super) const CERTIFICATE_SIGNING_REQUEST: Printer = Printer::new(
    &[
        NAME,
        AGE,
        string("SignerName"),
        string("Requestor"),
        string("RequestedDuration"),
        string("Condition"),
    ],
    |o, ctx| {
        let spec = &o["spec"];
        let signer = match str_of(&spec["signerName"]) {
            "" => "<none>",
            s => s,
        };
        let requested = spec["expirationSeconds"]
            .as_i64()
            .map_or_else(|| "<none>".to_owned(), human_duration);
        vec![
            name_of(o),
            ctx.age(o),
            json!(signer),
            json!(str_of(&spec["username"])),
            json!(requested),
            json!(csr_condition(o)),
        ]
    },
);

/// Upstream's `extractCSRStatus`: Denied over Approved over Pending, then `,Failed` and
/// `,Issued` once a certificate is there.
fn csr_condition(csr: &Value) -> String {
    let conditions = items(&csr["status"]["conditions"]);
    let has = |kind: &str| conditions.iter().any(|c| c["type"] == kind);
    let mut status = if has("Denied") {
        "Denied"
    } else if has("Approved") {
        "Approved"
    } else {
        "Pending"
    }
    .to_owned();
    if has("Failed") {
        status.push_str(",Failed");
    }
    if !str_of(&csr["status"]["certificate"]).is_empty() {
        status.push_str(",Issued");
    }
    status
}

#[cfg(test)]
mod tests {
    use super::super::tests::cells;
    use serde_json::json;

    #[test]
    fn csrs_print_signer_duration_and_condition() {
        let csr = json!({
            "metadata": {"name": "csr-1", "creationTimestamp": "2024-05-01T11:59:00Z"},
            "spec": {"signerName": "kubernetes.io/kube-apiserver-client-kubelet", "username": "system:node:n1",
                     "expirationSeconds": 86400},
            "status": {"conditions": [{"type": "Approved", "status": "True"}], "certificate": "LS0t"},
        });
        assert_eq!(
            cells(
                "certificates.k8s.io",
                "v1",
                "certificatesigningrequests",
                csr
            ),
            [
                "csr-1",
                "60s",
                "kubernetes.io/kube-apiserver-client-kubelet",
                "system:node:n1",
                "24h",
                "Approved,Issued"
            ]
        );
    }
}
