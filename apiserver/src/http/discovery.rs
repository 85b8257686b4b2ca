//! Legacy (unaggregated) discovery, as upstream's `endpoints/discovery` package:
//! `/api` (APIVersions), `/api/v1` and `/apis/<group>/<version>` (APIResourceList),
//! `/apis` (APIGroupList) and `/apis/<group>` (APIGroup), built once from the resource
//! table. kubectl asks for aggregated discovery first and falls back to these when the
//! answer is plain `application/json`.
//!
//! The meta/v1 discovery types are written here, not in apimachinery, until another
//! crate needs them.

use std::sync::OnceLock;

use apimachinery::resources;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;

use super::{AppState, json, not_found};

/// Upstream's `metav1.APIVersions`, the `/api` document.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ApiVersions<'a> {
    kind: &'static str,
    versions: &'a [String],
    #[serde(rename = "serverAddressByClientCIDRs")]
    server_address_by_client_cidrs: Vec<ServerAddressByClientCidr>,
}

/// Upstream's `metav1.ServerAddressByClientCIDR`.
#[derive(Debug, Serialize)]
struct ServerAddressByClientCidr {
    #[serde(rename = "clientCIDR")]
    client_cidr: &'static str,
    #[serde(rename = "serverAddress")]
    server_address: String,
}

/// Upstream's `metav1.APIGroupList`, the `/apis` document.
#[derive(Debug, Serialize)]
struct ApiGroupList<'a> {
    kind: &'static str,
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    groups: &'a [ApiGroup],
}

/// Upstream's `metav1.APIGroup`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
struct ApiGroup {
    name: String,
    versions: Vec<GroupVersionForDiscovery>,
    preferred_version: GroupVersionForDiscovery,
}

/// Upstream's `metav1.GroupVersionForDiscovery`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
struct GroupVersionForDiscovery {
    group_version: String,
    version: String,
}

/// Upstream's `metav1.APIResourceList`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
struct ApiResourceList {
    kind: &'static str,
    /// Empty for the legacy `/api/v1` list, as upstream writes it.
    #[serde(skip_serializing_if = "str::is_empty")]
    api_version: &'static str,
    group_version: String,
    resources: Vec<ApiResource>,
}

/// Upstream's `metav1.APIResource`: a resource or a subresource (`pods/status`).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
struct ApiResource {
    name: String,
    singular_name: String,
    namespaced: bool,
    /// Set when the kind is in another group, e.g. `deployments/scale` → autoscaling.
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<String>,
    /// Set with `group`.
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    kind: String,
    verbs: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    short_names: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    categories: Vec<String>,
}

/// Every discovery document, computed once.
struct Catalog {
    /// `/api`'s versions: `["v1"]`.
    core_versions: Vec<String>,
    /// `/api/v1`.
    core: ApiResourceList,
    /// `/apis`' groups in priority order, each with its versions, preferred first.
    groups: Vec<ApiGroup>,
    /// `/apis/<group>/<version>` for each served group version.
    group_versions: Vec<ApiResourceList>,
}

fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| build_catalog(served_group_versions()))
}

/// One served group version and its resources, in the order discovery lists them.
struct ServedGroupVersion {
    /// `""` for the core group.
    group: String,
    version: String,
    resources: Vec<ApiResource>,
}

/// The served group versions from apimachinery's resource table: each resource followed
/// by its subresources (`pods`, `pods/attach`, ..., `pods/status`), as upstream sorts them.
fn served_group_versions() -> Vec<ServedGroupVersion> {
    let strings = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    resources::group_versions()
        .map(|(group, version)| {
            let mut listed = Vec::new();
            for info in resources::resources_in(group, version) {
                listed.push(ApiResource {
                    name: info.plural.to_owned(),
                    singular_name: info.singular.to_owned(),
                    namespaced: info.namespaced,
                    group: None,
                    version: None,
                    kind: info.kind.to_owned(),
                    verbs: strings(info.verbs),
                    short_names: strings(info.short_names),
                    categories: strings(info.categories),
                });
                for sub in info.subresources {
                    listed.push(ApiResource {
                        name: format!("{}/{}", info.plural, sub.name),
                        // upstream leaves subresources' singular name empty
                        singular_name: String::new(),
                        namespaced: info.namespaced,
                        group: sub.kind_group_version.map(|(g, _)| g.to_owned()),
                        version: sub.kind_group_version.map(|(_, v)| v.to_owned()),
                        kind: sub.kind.to_owned(),
                        verbs: strings(sub.verbs),
                        short_names: Vec::new(),
                        categories: Vec::new(),
                    });
                }
            }
            ServedGroupVersion {
                group: group.to_owned(),
                version: version.to_owned(),
                resources: listed,
            }
        })
        .collect()
}

/// Builds the documents. Group versions come in the table's order, which is
/// upstream's priority order: a group's first version is its preferred one.
fn build_catalog(served: Vec<ServedGroupVersion>) -> Catalog {
    let mut core_versions = Vec::new();
    let mut core = ApiResourceList {
        kind: "APIResourceList",
        api_version: "",
        group_version: "v1".into(),
        resources: vec![],
    };
    let mut groups: Vec<ApiGroup> = Vec::new();
    let mut group_versions = Vec::new();
    for gv in served {
        if gv.group.is_empty() {
            if gv.version == "v1" {
                core.resources = gv.resources;
            }
            core_versions.push(gv.version);
            continue;
        }
        let entry = GroupVersionForDiscovery {
            group_version: format!("{}/{}", gv.group, gv.version),
            version: gv.version,
        };
        match groups.iter_mut().find(|g| g.name == gv.group) {
            Some(group) => group.versions.push(entry.clone()),
            None => groups.push(ApiGroup {
                name: gv.group.clone(),
                versions: vec![entry.clone()],
                preferred_version: entry.clone(),
            }),
        }
        group_versions.push(ApiResourceList {
            kind: "APIResourceList",
            api_version: "v1",
            group_version: entry.group_version,
            resources: gv.resources,
        });
    }
    Catalog {
        core_versions,
        core,
        groups,
        group_versions,
    }
}

pub(super) async fn api_versions(State(state): State<AppState>) -> Response {
    let body = ApiVersions {
        kind: "APIVersions",
        versions: &catalog().core_versions,
        server_address_by_client_cidrs: vec![ServerAddressByClientCidr {
            client_cidr: "0.0.0.0/0",
            server_address: state.advertised().to_string(),
        }],
    };
    json(StatusCode::OK, &body)
}

pub(super) async fn core_resources() -> Response {
    json(StatusCode::OK, &catalog().core)
}

pub(super) async fn group_list() -> Response {
    json(
        StatusCode::OK,
        &ApiGroupList {
            kind: "APIGroupList",
            api_version: "v1",
            groups: &catalog().groups,
        },
    )
}

pub(super) async fn group(Path(group): Path<String>) -> Response {
    #[derive(Serialize)]
    struct Document<'a> {
        kind: &'static str,
        #[serde(rename = "apiVersion")]
        api_version: &'static str,
        #[serde(flatten)]
        group: &'a ApiGroup,
    }
    match catalog().groups.iter().find(|g| g.name == group) {
        Some(group) => json(
            StatusCode::OK,
            &Document {
                kind: "APIGroup",
                api_version: "v1",
                group,
            },
        ),
        None => not_found(),
    }
}

pub(super) async fn group_resources(Path((group, version)): Path<(String, String)>) -> Response {
    let group_version = format!("{group}/{version}");
    match catalog()
        .group_versions
        .iter()
        .find(|list| list.group_version == group_version)
    {
        Some(list) => json(StatusCode::OK, list),
        None => not_found(),
    }
}
