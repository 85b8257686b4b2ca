//! Discovery, as upstream's `endpoints/discovery` packages, built once from the
//! resource table:
//! - legacy: `/api` (APIVersions), `/api/v1` and `/apis/<group>/<version>`
//!   (APIResourceList), `/apis` (APIGroupList) and `/apis/<group>` (APIGroup);
//! - aggregated (`endpoints/discovery/aggregated`): `/api` and `/apis` answer an
//!   `apidiscovery.k8s.io` APIGroupDiscoveryList (v2, or v2beta1) when the client's
//!   Accept asks for one first, as kubectl and client-go do, so one request describes
//!   every resource.
//!
//! The meta/v1 discovery types are written here, not in apimachinery, until another
//! crate needs them.

use std::sync::OnceLock;

use apimachinery::resources;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

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
    resources::group_versions()
        .map(|(group, version)| {
            let listed = resources::resources_in(group, version)
                .flat_map(api_resources)
                .collect();
            ServedGroupVersion {
                group: group.to_owned(),
                version: version.to_owned(),
                resources: listed,
            }
        })
        .collect()
}

/// A resource's discovery entries: itself, then its subresources (`pods`,
/// `pods/attach`, ..., `pods/status`), as upstream sorts them.
fn api_resources(info: &resources::ResourceInfo) -> Vec<ApiResource> {
    let strings = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let mut listed = vec![ApiResource {
        name: info.plural.to_owned(),
        singular_name: info.singular.to_owned(),
        namespaced: info.namespaced,
        group: None,
        version: None,
        kind: info.kind.to_owned(),
        verbs: strings(info.verbs),
        short_names: strings(info.short_names),
        categories: strings(info.categories),
    }];
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
    listed
}

/// The groups of the custom resources CRDs serve: each group's versions, preferred
/// (highest, as upstream's kube-aware version order) first, each with its resources.
fn custom_groups(
    state: &AppState,
) -> Vec<(String, Vec<(String, Vec<&'static resources::ResourceInfo>)>)> {
    let mut groups: Vec<(String, Vec<(String, Vec<&'static resources::ResourceInfo>)>)> =
        Vec::new();
    for served in state.registry().custom().all() {
        let info = served.info;
        let group = match groups.iter_mut().find(|(g, _)| g == info.group) {
            Some(group) => group,
            None => {
                groups.push((info.group.to_owned(), Vec::new()));
                groups.last_mut().expect("just pushed")
            }
        };
        match group.1.iter_mut().find(|(v, _)| v == info.version) {
            Some(version) => version.1.push(info),
            None => group.1.push((info.version.to_owned(), vec![info])),
        }
    }
    for (_, versions) in &mut groups {
        versions.sort_by(|a, b| version_order(&a.0, &b.0));
    }
    groups
}

/// Upstream's kube-aware version order: GA before beta before alpha, higher numbers
/// first, anything else after them alphabetically (`v2`, `v1`, `v1beta2`, `v1alpha1`, `foo`).
fn version_order(a: &str, b: &str) -> std::cmp::Ordering {
    fn rank(v: &str) -> Option<(u64, u8, u64)> {
        let rest = v.strip_prefix('v')?;
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let major: u64 = rest[..digits].parse().ok()?;
        let tail = &rest[digits..];
        if tail.is_empty() {
            return Some((major, 2, 0));
        }
        let (stage, minor) = if let Some(m) = tail.strip_prefix("beta") {
            (1, m)
        } else if let Some(m) = tail.strip_prefix("alpha") {
            (0, m)
        } else {
            return None;
        };
        Some((major, stage, minor.parse().ok()?))
    }
    match (rank(a), rank(b)) {
        (Some(x), Some(y)) => y.1.cmp(&x.1).then(y.0.cmp(&x.0)).then(y.2.cmp(&x.2)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

fn custom_api_group(
    name: &str,
    versions: &[(String, Vec<&'static resources::ResourceInfo>)],
) -> ApiGroup {
    let entries: Vec<GroupVersionForDiscovery> = versions
        .iter()
        .map(|(v, _)| GroupVersionForDiscovery {
            group_version: format!("{name}/{v}"),
            version: v.clone(),
        })
        .collect();
    ApiGroup {
        name: name.to_owned(),
        preferred_version: entries[0].clone(),
        versions: entries,
    }
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

pub(super) async fn api_versions(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(version) = aggregated_version(&headers) {
        return aggregated(version, true);
    }
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

pub(super) async fn group_list(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let custom = custom_groups(&state);
    if let Some(version) = aggregated_version(&headers) {
        if custom.is_empty() {
            return aggregated(version, false);
        }
        let mut document = aggregated_document(version, false);
        if let Some(items) = document["items"].as_array_mut() {
            for (group, versions) in &custom {
                let versions: Vec<Value> = versions
                    .iter()
                    .map(|(v, infos)| {
                        let mut listed: Vec<Value> = infos
                            .iter()
                            .map(|info| resource_discovery(group, v, info))
                            .collect();
                        listed.sort_by(|a, b| a["resource"].as_str().cmp(&b["resource"].as_str()));
                        json!({"version": v, "resources": listed, "freshness": "Current"})
                    })
                    .collect();
                items.push(json!({
                    "metadata": {"name": group, "creationTimestamp": null},
                    "versions": versions,
                }));
            }
        }
        let body = serde_json::to_vec(&document).unwrap_or_default();
        return aggregated_response(version, body);
    }
    let mut groups = catalog().groups.clone();
    groups.extend(
        custom
            .iter()
            .map(|(name, versions)| custom_api_group(name, versions)),
    );
    json(
        StatusCode::OK,
        &ApiGroupList {
            kind: "APIGroupList",
            api_version: "v1",
            groups: &groups,
        },
    )
}

pub(super) async fn group(State(state): State<AppState>, Path(group): Path<String>) -> Response {
    #[derive(Serialize)]
    struct Document<'a> {
        kind: &'static str,
        #[serde(rename = "apiVersion")]
        api_version: &'static str,
        #[serde(flatten)]
        group: &'a ApiGroup,
    }
    let custom = custom_groups(&state)
        .into_iter()
        .find(|(name, _)| *name == group)
        .map(|(name, versions)| custom_api_group(&name, &versions));
    match catalog()
        .groups
        .iter()
        .find(|g| g.name == group)
        .or(custom.as_ref())
    {
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

pub(super) async fn group_resources(
    State(state): State<AppState>,
    Path((group, version)): Path<(String, String)>,
) -> Response {
    let group_version = format!("{group}/{version}");
    if let Some(list) = catalog()
        .group_versions
        .iter()
        .find(|list| list.group_version == group_version)
    {
        return json(StatusCode::OK, list);
    }
    let custom: Vec<ApiResource> = state
        .registry()
        .custom()
        .all()
        .iter()
        .filter(|s| s.info.group == group && s.info.version == version)
        .flat_map(|s| api_resources(s.info))
        .collect();
    if custom.is_empty() {
        return not_found();
    }
    json(
        StatusCode::OK,
        &ApiResourceList {
            kind: "APIResourceList",
            api_version: "v1",
            group_version,
            resources: custom,
        },
    )
}

/// The aggregated discovery version (`v2` or `v2beta1`) the client prefers, or `None`
/// when it prefers plain JSON: Accept clauses are taken in order, the first one the
/// server can answer decides.
fn aggregated_version(headers: &HeaderMap) -> Option<&'static str> {
    let accept = headers.get(header::ACCEPT)?.to_str().ok()?;
    for clause in accept.split(',') {
        let mut parts = clause.split(';').map(str::trim);
        let media = parts.next().unwrap_or("");
        let params: Vec<(&str, &str)> = parts.filter_map(|p| p.split_once('=')).collect();
        let param = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k.trim() == name)
                .map(|(_, v)| v.trim())
        };
        if media != "application/json" && media != "*/*" && media != "application/*" {
            continue;
        }
        match (param("g"), param("v"), param("as")) {
            (None, None, None) => return None,
            (Some("apidiscovery.k8s.io"), Some("v2"), Some("APIGroupDiscoveryList")) => {
                return Some("v2");
            }
            (Some("apidiscovery.k8s.io"), Some("v2beta1"), Some("APIGroupDiscoveryList")) => {
                return Some("v2beta1");
            }
            _ => {}
        }
    }
    None
}

/// Upstream's `APIResourceDiscovery` of one served resource, its subresources inside.
fn resource_discovery(group: &str, version: &str, info: &resources::ResourceInfo) -> Value {
    let mut resource = json!({
        "resource": info.plural,
        "responseKind": {"group": group, "version": version, "kind": info.kind},
        "scope": if info.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": info.singular,
        "verbs": info.verbs,
    });
    if !info.short_names.is_empty() {
        resource["shortNames"] = json!(info.short_names);
    }
    if !info.categories.is_empty() {
        resource["categories"] = json!(info.categories);
    }
    let subresources: Vec<Value> = info
        .subresources
        .iter()
        .map(|sub| {
            let (kind_group, kind_version) = sub.kind_group_version.unwrap_or((group, version));
            json!({
                "subresource": sub.name,
                "responseKind": {"group": kind_group, "version": kind_version, "kind": sub.kind},
                "verbs": sub.verbs,
            })
        })
        .collect();
    if !subresources.is_empty() {
        resource["subresources"] = Value::Array(subresources);
    }
    resource
}

/// The APIGroupDiscoveryList of the core group (`core` true, for `/api`) or of every
/// other group (`/apis`), in apidiscovery.k8s.io/`version`.
fn aggregated_document(version: &str, core: bool) -> Value {
    let mut items: Vec<Value> = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    for (group, group_version) in resources::group_versions() {
        if group.is_empty() != core {
            continue;
        }
        let listed: Vec<Value> = resources::resources_in(group, group_version)
            .map(|info| resource_discovery(group, group_version, info))
            .collect();
        let entry = json!({"version": group_version, "resources": listed, "freshness": "Current"});
        match names.iter().position(|n| *n == group) {
            Some(i) => {
                if let Some(versions) = items[i]["versions"].as_array_mut() {
                    versions.push(entry);
                }
            }
            None => {
                names.push(group);
                let mut metadata = json!({"creationTimestamp": null});
                if !group.is_empty() {
                    metadata["name"] = json!(group);
                }
                items.push(json!({"metadata": metadata, "versions": [entry]}));
            }
        }
    }
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{version}"),
        "metadata": {},
        "items": items,
    })
}

/// An aggregated discovery answer, serialized once per (version, core) pair.
fn aggregated(version: &'static str, core: bool) -> Response {
    static DOCUMENTS: OnceLock<Vec<(&'static str, bool, Vec<u8>)>> = OnceLock::new();
    let documents = DOCUMENTS.get_or_init(|| {
        let mut documents = Vec::new();
        for version in ["v2", "v2beta1"] {
            for core in [true, false] {
                let body =
                    serde_json::to_vec(&aggregated_document(version, core)).unwrap_or_default();
                documents.push((version, core, body));
            }
        }
        documents
    });
    let Some((_, _, body)) = documents
        .iter()
        .find(|(v, c, _)| *v == version && *c == core)
    else {
        return not_found();
    };
    aggregated_response(version, body.clone())
}

/// An aggregated discovery document as the answer, with its ETag.
fn aggregated_response(version: &str, body: Vec<u8>) -> Response {
    // Upstream's ETag is a hash of the document; any stable digest will do.
    let etag = format!("\"{:016X}\"", fnv1a(&body));
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    if let Ok(content_type) = HeaderValue::from_str(&format!(
        "application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList"
    )) {
        headers.insert(header::CONTENT_TYPE, content_type);
    }
    headers.insert(header::VARY, HeaderValue::from_static("Accept"));
    if let Ok(etag) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, etag);
    }
    response
}

/// FNV-1a, 64 bits: a stable digest for the discovery ETag.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod aggregated_tests {
    use super::*;

    #[test]
    fn kubectl_gets_aggregated_discovery_and_plain_clients_do_not() {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"));
        assert_eq!(aggregated_version(&headers), Some("v2"));
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json, */*"),
        );
        assert_eq!(aggregated_version(&headers), None);
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static(
                "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList",
            ),
        );
        assert_eq!(aggregated_version(&headers), Some("v2beta1"));
    }

    #[test]
    fn the_document_describes_resources_and_subresources() {
        let apis = aggregated_document("v2", false);
        assert_eq!(apis["apiVersion"], "apidiscovery.k8s.io/v2");
        let apps = apis["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["metadata"]["name"] == "apps")
            .expect("apps");
        let deployments = apps["versions"][0]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "deployments")
            .unwrap();
        assert_eq!(
            deployments["responseKind"],
            json!({"group": "apps", "version": "v1", "kind": "Deployment"})
        );
        assert_eq!(deployments["scope"], "Namespaced");
        assert_eq!(deployments["shortNames"], json!(["deploy"]));
        let scale = deployments["subresources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["subresource"] == "scale")
            .unwrap();
        assert_eq!(scale["responseKind"]["group"], "autoscaling");
        let core = aggregated_document("v2", true);
        assert_eq!(core["items"].as_array().unwrap().len(), 1);
        assert!(core["items"][0]["metadata"].get("name").is_none());
        assert_eq!(core["items"][0]["versions"][0]["version"], "v1");
    }
}
