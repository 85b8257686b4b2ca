//! What the in-tree volume plugins of upstream's controller manager would do for a
//! volume or a class: v1.33 probes hostPath, NFS, local and CSI, of which only hostPath
//! deletes (under `/tmp` only) and provisions (when enabled, off by default); a
//! provisioner outside `kubernetes.io/` is external, and the in-tree cloud
//! provisioners have migrated to their CSI drivers.

use k8s_openapi::api::core::v1::PersistentVolume;

use super::index::{ANN_DYNAMICALLY_PROVISIONED, ANN_MIGRATED_TO, has_annotation};

/// The hostPath plugin's name.
pub const HOST_PATH_PLUGIN: &str = "kubernetes.io/host-path";

/// Who deletes a released volume with policy Delete.
#[derive(Debug, PartialEq, Eq)]
pub enum Deleter {
    /// An external provisioner (or CSI driver) does: the controller waits.
    External,
    /// The hostPath deleter removes this directory on the manager's host.
    HostPath(String),
}

/// In-tree provisioners migrated to CSI, with their drivers (upstream's csi-translation
/// library; migration is on for all of them in v1.33).
const MIGRATED: [(&str, &str); 7] = [
    ("kubernetes.io/aws-ebs", "ebs.csi.aws.com"),
    ("kubernetes.io/gce-pd", "pd.csi.storage.gke.io"),
    ("kubernetes.io/cinder", "cinder.csi.openstack.org"),
    ("kubernetes.io/azure-disk", "disk.csi.azure.com"),
    ("kubernetes.io/azure-file", "file.csi.azure.com"),
    ("kubernetes.io/vsphere-volume", "csi.vsphere.vmware.com"),
    ("kubernetes.io/portworx-volume", "pxd.portworx.com"),
];

/// The CSI driver an in-tree provisioner migrated to.
pub fn migrated_driver(provisioner: &str) -> Option<&'static str> {
    MIGRATED
        .iter()
        .find(|(plugin, _)| *plugin == provisioner)
        .map(|(_, driver)| *driver)
}

/// In-tree plugins the manager has that cannot delete.
const NOT_DELETABLE: [&str; 3] = [
    "kubernetes.io/nfs",
    "kubernetes.io/local-volume",
    "kubernetes.io/csi",
];

/// Upstream's `findDeletablePlugin` (with HonorPVReclaimPolicy on, as in v1.33): by the
/// plugin that provisioned the volume, else by its source. The error is the text
/// upstream puts in the VolumeFailedDelete event.
pub fn find_deleter(volume: &PersistentVolume) -> Result<Deleter, String> {
    let name = volume.metadata.name.as_deref().unwrap_or_default();
    let spec = volume.spec.clone().unwrap_or_default();
    let host_path = || match &spec.host_path {
        Some(h) => Ok(Deleter::HostPath(h.path.clone())),
        None => Err(format!(
            "failed to create deleter for volume {name:?}: spec.PersistentVolumeSource.HostPath is nil"
        )),
    };
    let provisioned_by = volume
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANN_DYNAMICALLY_PROVISIONED))
        .filter(|p| !p.is_empty());
    if let Some(plugin) = provisioned_by {
        if plugin == HOST_PATH_PLUGIN {
            return host_path();
        }
        if NOT_DELETABLE.contains(&plugin.as_str()) {
            return Err("no deletable volume plugin matched".to_owned());
        }
        if !plugin.starts_with("kubernetes.io/") || migrated_driver(plugin).is_some() {
            return Ok(Deleter::External);
        }
        return Err(format!("no volume plugin matched name: {plugin}"));
    }
    if has_annotation(&volume.metadata.annotations, ANN_MIGRATED_TO) || spec.csi.is_some() {
        return Ok(Deleter::External);
    }
    if spec.host_path.is_some() {
        return host_path();
    }
    let reason = if spec.nfs.is_some() || spec.local.is_some() {
        "no deletable volume plugin matched"
    } else {
        "no volume plugin matched"
    };
    Err(format!(
        "error getting deleter volume plugin for volume {name:?}: {reason}"
    ))
}

/// The hostPath deleter's guard: only paths matching `/tmp/.+` (anywhere in the path,
/// as upstream's unanchored pattern) are removed.
pub fn host_path_deletable(path: &str) -> Result<(), String> {
    let ok = path.match_indices("/tmp/").any(|(at, m)| {
        path[at + m.len()..]
            .chars()
            .next()
            .is_some_and(|c| c != '\n')
    });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "host_path deleter only supports /tmp/.+ but received provided {path}"
        ))
    }
}

/// Whether upstream has a recycler for the volume (hostPath and NFS run a scrubbing
/// pod; nothing else recycles).
pub fn has_recycler(volume: &PersistentVolume) -> bool {
    volume
        .spec
        .as_ref()
        .is_some_and(|s| s.host_path.is_some() || s.nfs.is_some())
}

/// What provisioning a claim of a class with this provisioner means.
#[derive(Debug, PartialEq, Eq)]
pub enum Provisioning {
    /// An external provisioner (this name) creates the volume.
    External(String),
    /// The in-tree hostPath plugin, whose provisioning is disabled.
    HostPathDisabled,
    /// No plugin: the ProvisioningFailed message.
    Failed(String),
}

/// Upstream's `findProvisionablePlugin` for a class's provisioner.
pub fn provisioning(provisioner: &str) -> Provisioning {
    if let Some(driver) = migrated_driver(provisioner) {
        return Provisioning::External(driver.to_owned());
    }
    if provisioner == HOST_PATH_PLUGIN {
        return Provisioning::HostPathDisabled;
    }
    if NOT_DELETABLE.contains(&provisioner) {
        // plugins upstream has that cannot provision (FindProvisionablePluginByName)
        return Provisioning::Failed("no provisionable volume plugin matched".to_owned());
    }
    if provisioner.starts_with("kubernetes.io/") {
        return Provisioning::Failed(format!("no volume plugin matched name: {provisioner}"));
    }
    Provisioning::External(provisioner.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pv(annotations: serde_json::Value, spec: serde_json::Value) -> PersistentVolume {
        serde_json::from_value(
            json!({"metadata": {"name": "pv1", "annotations": annotations}, "spec": spec}),
        )
        .unwrap()
    }

    #[test]
    fn deleters_follow_the_provisioner_then_the_source() {
        let host = pv(json!({}), json!({"hostPath": {"path": "/tmp/data"}}));
        assert_eq!(
            find_deleter(&host),
            Ok(Deleter::HostPath("/tmp/data".into()))
        );
        let nfs = pv(json!({}), json!({"nfs": {"server": "s", "path": "/"}}));
        assert_eq!(
            find_deleter(&nfs),
            Err("error getting deleter volume plugin for volume \"pv1\": no deletable volume plugin matched".into())
        );
        let iscsi = pv(
            json!({}),
            json!({"iscsi": {"targetPortal": "p", "iqn": "q", "lun": 0}}),
        );
        assert_eq!(
            find_deleter(&iscsi),
            Err(
                "error getting deleter volume plugin for volume \"pv1\": no volume plugin matched"
                    .into()
            )
        );
        let csi = pv(
            json!({}),
            json!({"csi": {"driver": "d", "volumeHandle": "h"}}),
        );
        assert_eq!(find_deleter(&csi), Ok(Deleter::External));
        let external = pv(
            json!({"pv.kubernetes.io/provisioned-by": "rancher.io/local-path"}),
            json!({"hostPath": {"path": "/opt/x"}}),
        );
        assert_eq!(find_deleter(&external), Ok(Deleter::External));
        let unknown = pv(
            json!({"pv.kubernetes.io/provisioned-by": "kubernetes.io/rbd"}),
            json!({}),
        );
        assert_eq!(
            find_deleter(&unknown),
            Err("no volume plugin matched name: kubernetes.io/rbd".into())
        );
    }

    #[test]
    fn the_host_path_deleter_only_removes_tmp_paths() {
        assert!(host_path_deletable("/tmp/x").is_ok());
        assert!(host_path_deletable("/var/tmp/x").is_ok());
        assert_eq!(
            host_path_deletable("/tmp/"),
            Err("host_path deleter only supports /tmp/.+ but received provided /tmp/".into())
        );
        assert!(host_path_deletable("/data").is_err());
    }

    #[test]
    fn provisioners_are_external_unless_in_tree() {
        assert_eq!(
            provisioning("example.com/nfs"),
            Provisioning::External("example.com/nfs".into())
        );
        assert_eq!(
            provisioning("kubernetes.io/aws-ebs"),
            Provisioning::External("ebs.csi.aws.com".into())
        );
        assert_eq!(
            provisioning(HOST_PATH_PLUGIN),
            Provisioning::HostPathDisabled
        );
        assert_eq!(
            provisioning("kubernetes.io/no-provisioner"),
            Provisioning::Failed(
                "no volume plugin matched name: kubernetes.io/no-provisioner".into()
            )
        );
        assert_eq!(
            provisioning("kubernetes.io/nfs"),
            Provisioning::Failed("no provisionable volume plugin matched".into())
        );
    }
}
