//! Printers of `storage.k8s.io`: storage classes, volume attachments, CSI drivers, CSI
//! nodes and CSI storage capacities.

use serde_json::{Value, json};

use super::{
    AGE, Column, NAME, Printer, boolean, count, integer, items, join, name_of, quantity, str_of,
    string,
};

/// The annotations that mark the default storage class (GA and beta).
const DEFAULT_CLASS: [&str; 2] = [
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",
];

pub(super) const STORAGE_CLASS: Printer = Printer::new(
    &[
        NAME,
        string("Provisioner"),
        string("ReclaimPolicy"),
        string("VolumeBindingMode"),
        string("AllowVolumeExpansion"),
        AGE,
    ],
    |o, ctx| {
        let name = str_of(&o["metadata"]["name"]);
        let annotations = &o["metadata"]["annotations"];
        let is_default = DEFAULT_CLASS.iter().any(|a| annotations[*a] == "true");
        vec![
            json!(if is_default {
                format!("{name} (default)")
            } else {
                name.to_owned()
            }),
            json!(str_of(&o["provisioner"])),
            json!(o["reclaimPolicy"].as_str().unwrap_or("Delete")),
            json!(o["volumeBindingMode"].as_str().unwrap_or("Immediate")),
            json!(o["allowVolumeExpansion"] == true),
            ctx.age(o),
        ]
    },
);

pub(super) const VOLUME_ATTACHMENT: Printer = Printer::new(
    &[
        NAME,
        Column {
            format: "name",
            ..string("Attacher")
        },
        string("PV"),
        string("Node"),
        boolean("Attached"),
        AGE,
    ],
    |o, ctx| {
        let spec = &o["spec"];
        vec![
            name_of(o),
            json!(str_of(&spec["attacher"])),
            json!(str_of(&spec["source"]["persistentVolumeName"])),
            json!(str_of(&spec["nodeName"])),
            json!(o["status"]["attached"] == true),
            ctx.age(o),
        ]
    },
);

pub(super) const CSI_DRIVER: Printer = Printer::new(
    &[
        NAME,
        boolean("AttachRequired"),
        boolean("PodInfoOnMount"),
        boolean("StorageCapacity"),
        string("TokenRequests"),
        boolean("RequiresRepublish"),
        string("Modes"),
        AGE,
    ],
    |o, ctx| {
        let spec = &o["spec"];
        let flag = |field: &str, unset: bool| json!(spec[field].as_bool().unwrap_or(unset));
        let tokens = match &spec["tokenRequests"] {
            Value::Null => "<unset>".to_owned(),
            requests => items(requests)
                .iter()
                .map(|t| str_of(&t["audience"]))
                .collect::<Vec<_>>()
                .join(","),
        };
        let modes = match join(&spec["volumeLifecycleModes"], ",") {
            m if m.is_empty() => "<none>".to_owned(),
            m => m,
        };
        vec![
            name_of(o),
            flag("attachRequired", true),
            flag("podInfoOnMount", false),
            flag("storageCapacity", false),
            json!(tokens),
            flag("requiresRepublish", false),
            json!(modes),
            ctx.age(o),
        ]
    },
);

pub(super) const CSI_NODE: Printer = Printer::new(&[NAME, integer("Drivers"), AGE], |o, ctx| {
    vec![name_of(o), json!(count(&o["spec"]["drivers"])), ctx.age(o)]
});

pub(super) const CSI_STORAGE_CAPACITY: Printer = Printer::new(
    &[NAME, string("StorageClassName"), string("Capacity")],
    |o, _| {
        let capacity = match &o["capacity"] {
            Value::Null => "<unset>".to_owned(),
            c => quantity(c),
        };
        vec![
            name_of(o),
            json!(str_of(&o["storageClassName"])),
            json!(capacity),
        ]
    },
);

#[cfg(test)]
mod tests {
    use super::super::tests::cells;
    use serde_json::json;

    const ST: &str = "storage.k8s.io";

    #[test]
    fn default_storage_class_is_marked() {
        let sc = json!({"metadata": {"name": "standard", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
                        "provisioner": "rancher.io/local-path", "volumeBindingMode": "WaitForFirstConsumer"});
        assert_eq!(
            cells(ST, "v1", "storageclasses", sc)[..5],
            [
                json!("standard (default)"),
                json!("rancher.io/local-path"),
                json!("Delete"),
                json!("WaitForFirstConsumer"),
                json!(false)
            ]
        );
    }

    #[test]
    fn csi_objects() {
        let driver = json!({"spec": {"podInfoOnMount": true, "volumeLifecycleModes": ["Persistent", "Ephemeral"],
                                     "tokenRequests": [{"audience": "vault"}]}});
        assert_eq!(
            cells(ST, "v1", "csidrivers", driver)[1..7],
            [
                json!(true),
                json!(true),
                json!(false),
                json!("vault"),
                json!(false),
                json!("Persistent,Ephemeral")
            ]
        );
        let va = json!({"spec": {"attacher": "csi.example.com", "nodeName": "n1", "source": {"persistentVolumeName": "pv1"}},
                        "status": {"attached": true}});
        assert_eq!(
            cells(ST, "v1", "volumeattachments", va)[1..5],
            [
                json!("csi.example.com"),
                json!("pv1"),
                json!("n1"),
                json!(true)
            ]
        );
        let cap =
            json!({"metadata": {"name": "c"}, "storageClassName": "fast", "capacity": "1.5Gi"});
        assert_eq!(
            cells(ST, "v1", "csistoragecapacities", cap),
            ["c", "fast", "1536Mi"]
        );
        assert_eq!(
            cells(ST, "v1", "csinodes", json!({"spec": {"drivers": [{}, {}]}}))[1],
            2
        );
    }
}
