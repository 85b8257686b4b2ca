//! What a request asks for, read from its method, path and query the way upstream's
//! `RequestInfoFactory` reads them, so authorization sees the same verb, resource,
//! subresource, namespace and name upstream would: `GET /api/v1/pods` is `list`,
//! `?watch=true` is `watch`, `DELETE` on a collection is `deletecollection`, a
//! `metadata.name=` field selector names the object, and anything outside `/api` and
//! `/apis/<group>/<version>` is a non-resource request whose verb is the method.

use std::collections::HashMap;

/// A request's authorization attributes (upstream's `authorizer.Attributes` without
/// the user).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestInfo {
    /// Whether this is a resource request (`/api/v1/...`, `/apis/g/v/...`).
    pub is_resource_request: bool,
    /// The path, for non-resource requests.
    pub path: String,
    /// The verb: get, list, watch, create, update, patch, delete, deletecollection,
    /// proxy; for non-resource requests the lowercased method.
    pub verb: String,
    /// The API group ("" for the core group).
    pub api_group: String,
    /// The API version.
    pub api_version: String,
    /// The namespace ("" when cluster-scoped or across namespaces).
    pub namespace: String,
    /// The resource (plural).
    pub resource: String,
    /// The subresource.
    pub subresource: String,
    /// The object's name.
    pub name: String,
}

impl RequestInfo {
    /// The attributes of a resource request, as the access reviews describe one.
    pub fn resource(
        verb: &str,
        api_group: &str,
        resource: &str,
        subresource: &str,
        namespace: &str,
        name: &str,
    ) -> Self {
        RequestInfo {
            is_resource_request: true,
            verb: verb.to_owned(),
            api_group: api_group.to_owned(),
            resource: resource.to_owned(),
            subresource: subresource.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            ..Default::default()
        }
    }

    /// The attributes of a non-resource request.
    pub fn non_resource(verb: &str, path: &str) -> Self {
        RequestInfo {
            verb: verb.to_owned(),
            path: path.to_owned(),
            ..Default::default()
        }
    }

    /// Reads a request's attributes. `path` is the decoded URL path, `query` the raw
    /// query string.
    pub fn parse(method: &str, path: &str, query: Option<&str>) -> Self {
        let lowered = method.to_ascii_lowercase();
        let non_resource = || RequestInfo::non_resource(&lowered, path);
        let mut parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        if parts.len() < 3 {
            return non_resource();
        }
        let prefix = parts.remove(0);
        let mut info = RequestInfo {
            is_resource_request: true,
            path: path.to_owned(),
            ..Default::default()
        };
        match prefix {
            "api" => {}
            "apis" => {
                if parts.len() < 3 {
                    return non_resource();
                }
                info.api_group = parts.remove(0).to_owned();
            }
            _ => return non_resource(),
        }
        info.api_version = parts.remove(0).to_owned();
        if parts.is_empty() {
            return non_resource();
        }
        let mut verb_from_method = false;
        if matches!(parts[0], "watch" | "proxy") {
            if parts.len() < 2 {
                // upstream answers this with an error; nothing matches it
                return non_resource();
            }
            info.verb = parts.remove(0).to_owned();
        } else {
            verb_from_method = true;
            info.verb = match method {
                "POST" => "create",
                "GET" | "HEAD" => "get",
                "PUT" => "update",
                "PATCH" => "patch",
                "DELETE" => "delete",
                _ => "",
            }
            .to_owned();
        }
        if parts[0] == "namespaces" {
            if parts.len() > 1 {
                info.namespace = parts[1].to_owned();
                if parts.len() > 2 && !matches!(parts[2], "status" | "finalize") {
                    parts.drain(..2);
                }
            }
        }
        if parts.len() >= 3 && info.verb != "proxy" {
            info.subresource = parts[2].to_owned();
        }
        if parts.len() >= 2 {
            info.name = parts[1].to_owned();
        }
        info.resource = parts[0].to_owned();

        if verb_from_method && info.name.is_empty() && info.verb == "get" {
            let params = query_params(query);
            let watching = params.get("watch").is_some_and(|w| w == "true" || w == "1");
            info.verb = if watching { "watch" } else { "list" }.to_owned();
            if let Some(name) = params
                .get("fieldSelector")
                .and_then(|s| exact_name_selector(s))
                && valid_path_segment(&name)
            {
                info.name = name;
            }
        }
        if info.name.is_empty() && info.verb == "delete" {
            info.verb = "deletecollection".to_owned();
        }
        info
    }
}

fn query_params(query: Option<&str>) -> HashMap<String, String> {
    query
        .map(|q| crate::http::form_urlencoded_pairs(q).into_iter().collect())
        .unwrap_or_default()
}

/// The name a field selector pins with `metadata.name=<n>` (or `==`), when it does.
fn exact_name_selector(selector: &str) -> Option<String> {
    selector.split(',').find_map(|term| {
        let (field, value) = term
            .split_once("==")
            .or_else(|| term.split_once('=').filter(|(f, _)| !f.ends_with('!')))?;
        (field.trim() == "metadata.name").then(|| value.trim().to_owned())
    })
}

fn valid_path_segment(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/') && !name.contains('%')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(method: &str, target: &str) -> RequestInfo {
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (target, None),
        };
        RequestInfo::parse(method, path, query)
    }

    #[test]
    fn verbs_follow_upstream() {
        let cases = [
            ("GET", "/api/v1/pods", "list", "", "pods", "", ""),
            (
                "GET",
                "/api/v1/pods?watch=true",
                "watch",
                "",
                "pods",
                "",
                "",
            ),
            ("GET", "/api/v1/watch/pods", "watch", "", "pods", "", ""),
            (
                "GET",
                "/api/v1/namespaces/dev/pods/web",
                "get",
                "dev",
                "pods",
                "web",
                "",
            ),
            (
                "GET",
                "/api/v1/namespaces/dev/pods/web/log",
                "get",
                "dev",
                "pods",
                "web",
                "log",
            ),
            (
                "POST",
                "/api/v1/namespaces/dev/pods",
                "create",
                "dev",
                "pods",
                "",
                "",
            ),
            (
                "PUT",
                "/api/v1/namespaces/dev/pods/web",
                "update",
                "dev",
                "pods",
                "web",
                "",
            ),
            (
                "PATCH",
                "/api/v1/namespaces/dev/pods/web",
                "patch",
                "dev",
                "pods",
                "web",
                "",
            ),
            (
                "DELETE",
                "/api/v1/namespaces/dev/pods/web",
                "delete",
                "dev",
                "pods",
                "web",
                "",
            ),
            (
                "DELETE",
                "/api/v1/namespaces/dev/pods",
                "deletecollection",
                "dev",
                "pods",
                "",
                "",
            ),
            (
                "GET",
                "/api/v1/namespaces/dev",
                "get",
                "dev",
                "namespaces",
                "dev",
                "",
            ),
            (
                "PUT",
                "/api/v1/namespaces/dev/finalize",
                "update",
                "dev",
                "namespaces",
                "dev",
                "finalize",
            ),
            (
                "GET",
                "/api/v1/namespaces",
                "list",
                "",
                "namespaces",
                "",
                "",
            ),
            (
                "GET",
                "/api/v1/namespaces/dev/pods?fieldSelector=metadata.name%3Dweb",
                "list",
                "dev",
                "pods",
                "web",
                "",
            ),
        ];
        for (method, target, verb, namespace, resource, name, subresource) in cases {
            let info = parse(method, target);
            assert!(info.is_resource_request, "{target}");
            assert_eq!(
                (
                    info.verb.as_str(),
                    info.namespace.as_str(),
                    info.resource.as_str(),
                    info.name.as_str(),
                    info.subresource.as_str()
                ),
                (verb, namespace, resource, name, subresource),
                "{method} {target}"
            );
        }
    }

    #[test]
    fn groups_and_non_resource_paths() {
        let info = parse("GET", "/apis/apps/v1/namespaces/x/deployments/d/scale");
        assert_eq!(info.api_group, "apps");
        assert_eq!(info.api_version, "v1");
        assert_eq!(info.subresource, "scale");
        for path in [
            "/api",
            "/api/v1",
            "/apis/apps",
            "/apis/apps/v1",
            "/healthz",
            "/version",
        ] {
            let info = parse("GET", path);
            assert!(!info.is_resource_request, "{path}");
            assert_eq!(info.verb, "get");
            assert_eq!(info.path, path);
        }
        assert_eq!(parse("POST", "/metrics").verb, "post");
    }
}
