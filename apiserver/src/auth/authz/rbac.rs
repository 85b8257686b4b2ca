//! The RBAC authorizer: a request is allowed when a rule of a role bound to the user
//! allows it. ClusterRoleBindings apply everywhere; RoleBindings only to requests in
//! their namespace, granting a Role of that namespace or a ClusterRole. Rules match as
//! upstream's: `*` wildcards for verbs, groups and resources, `*/<subresource>`,
//! resourceNames, and nonResourceURLs with a trailing `*` as a prefix.
//!
//! The roles and bindings come from [`Informer`]s; an index of them is rebuilt when
//! they change, so a request costs a walk over the bindings, not a store read.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apimachinery::resources;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Authorize, Decision, RulesAnswer};
use crate::auth::UserInfo;
use crate::auth::request_info::RequestInfo;
use crate::registry::Registry;
use crate::registry::informer::Informer;

/// One rule of a Role or ClusterRole (`rbac.authorization.k8s.io/v1` PolicyRule).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRule {
    /// The verbs, or `*`.
    #[serde(default)]
    pub verbs: Vec<String>,
    /// The API groups ("" the core group), or `*`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_groups: Vec<String>,
    /// The resources (`pods`, `pods/log`, `*/scale`, `*`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// The objects' names; empty means every object.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_names: Vec<String>,
    /// Non-resource paths (`/healthz`, `/api/*`).
    #[serde(
        default,
        rename = "nonResourceURLs",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub non_resource_urls: Vec<String>,
}

impl PolicyRule {
    /// Whether this rule allows `request`.
    pub fn allows(&self, request: &RequestInfo) -> bool {
        if !has_or_star(&self.verbs, &request.verb) {
            return false;
        }
        if !request.is_resource_request {
            return self
                .non_resource_urls
                .iter()
                .any(|url| url_matches(url, &request.path));
        }
        has_or_star(&self.api_groups, &request.api_group)
            && self.resource_matches(&request.resource, &request.subresource)
            && (self.resource_names.is_empty() || self.resource_names.contains(&request.name))
    }

    fn resource_matches(&self, resource: &str, subresource: &str) -> bool {
        let combined = if subresource.is_empty() {
            resource.to_owned()
        } else {
            format!("{resource}/{subresource}")
        };
        self.resources.iter().any(|r| {
            r == "*"
                || *r == combined
                || (!subresource.is_empty() && r.strip_prefix("*/") == Some(subresource))
        })
    }

    /// Upstream's compact form of a rule in escalation messages:
    /// `{APIGroups:[""], Resources:["pods"], Verbs:["get"]}`.
    pub fn compact_string(&self) -> String {
        let list = |items: &[String]| {
            let quoted: Vec<String> = items
                .iter()
                .map(|i| apimachinery::errors::go_quote(i))
                .collect();
            format!("[{}]", quoted.join(" "))
        };
        let mut parts = Vec::new();
        if !self.api_groups.is_empty() {
            parts.push(format!("APIGroups:{}", list(&self.api_groups)));
        }
        if !self.resources.is_empty() {
            parts.push(format!("Resources:{}", list(&self.resources)));
        }
        if !self.non_resource_urls.is_empty() {
            parts.push(format!("NonResourceURLs:{}", list(&self.non_resource_urls)));
        }
        if !self.resource_names.is_empty() {
            parts.push(format!("ResourceNames:{}", list(&self.resource_names)));
        }
        parts.push(format!("Verbs:{}", list(&self.verbs)));
        format!("{{{}}}", parts.join(", "))
    }
}

fn has_or_star(items: &[String], wanted: &str) -> bool {
    items.iter().any(|i| i == "*" || i == wanted)
}

fn url_matches(rule: &str, path: &str) -> bool {
    rule == "*"
        || rule == path
        || rule
            .strip_suffix('*')
            .is_some_and(|prefix| path.starts_with(prefix))
}

/// The rules of `owner` that `servant` holds but `owner` does not, each as a rule of
/// one verb, group, resource and name (upstream's `Covers`); empty when `owner` covers
/// `servant`.
pub fn uncovered(owner: &[PolicyRule], servant: &[PolicyRule]) -> Vec<PolicyRule> {
    let mut missing = Vec::new();
    for rule in servant {
        for atom in atomize(rule) {
            if !owner.iter().any(|o| covers(o, &atom)) {
                missing.push(atom);
            }
        }
    }
    compact(missing)
}

/// A rule broken into rules of one verb, group, resource and name (or one URL).
fn atomize(rule: &PolicyRule) -> Vec<PolicyRule> {
    // upstream's order: group, then resource, then verb (then name)
    let mut atoms = Vec::new();
    for group in &rule.api_groups {
        for resource in &rule.resources {
            for verb in &rule.verbs {
                let names: Vec<Vec<String>> = if rule.resource_names.is_empty() {
                    vec![Vec::new()]
                } else {
                    rule.resource_names
                        .iter()
                        .map(|n| vec![n.clone()])
                        .collect()
                };
                for resource_names in names {
                    atoms.push(PolicyRule {
                        verbs: vec![verb.clone()],
                        api_groups: vec![group.clone()],
                        resources: vec![resource.clone()],
                        resource_names,
                        ..Default::default()
                    });
                }
            }
        }
    }
    for url in &rule.non_resource_urls {
        for verb in &rule.verbs {
            atoms.push(PolicyRule {
                verbs: vec![verb.clone()],
                non_resource_urls: vec![url.clone()],
                ..Default::default()
            });
        }
    }
    atoms
}

/// Whether `owner` grants everything the single-item rule `atom` does.
fn covers(owner: &PolicyRule, atom: &PolicyRule) -> bool {
    if !atom.verbs.iter().all(|v| has_or_star(&owner.verbs, v)) {
        return false;
    }
    if !atom.non_resource_urls.is_empty() {
        return atom.non_resource_urls.iter().all(|url| {
            owner.non_resource_urls.iter().any(|o| {
                o == "*"
                    || o == url
                    || o.strip_suffix('*').is_some_and(|prefix| {
                        url.strip_suffix('*').unwrap_or(url).starts_with(prefix)
                    })
            })
        });
    }
    let groups = atom
        .api_groups
        .iter()
        .all(|g| has_or_star(&owner.api_groups, g));
    let resources = atom.resources.iter().all(|r| {
        owner.resources.iter().any(|o| {
            o == "*"
                || o == r
                || r.split_once('/')
                    .is_some_and(|(_, sub)| o.strip_prefix("*/") == Some(sub))
        })
    });
    let names = owner.resource_names.is_empty()
        || (!atom.resource_names.is_empty()
            && atom
                .resource_names
                .iter()
                .all(|n| owner.resource_names.contains(n)));
    groups && resources && names
}

/// Merges resource rules without names that differ only in their verbs, as upstream's
/// `CompactRules`.
fn compact(rules: Vec<PolicyRule>) -> Vec<PolicyRule> {
    let mut out: Vec<PolicyRule> = Vec::new();
    for rule in rules {
        let simple = rule.resource_names.is_empty() && rule.non_resource_urls.is_empty();
        let same_target = out.iter_mut().find(|o| {
            simple
                && o.api_groups == rule.api_groups
                && o.resources == rule.resources
                && o.resource_names == rule.resource_names
                && o.non_resource_urls == rule.non_resource_urls
        });
        match same_target {
            Some(existing) => {
                for verb in rule.verbs {
                    if !existing.verbs.contains(&verb) {
                        existing.verbs.push(verb);
                    }
                }
            }
            None => out.push(rule),
        }
    }
    out
}

/// A subject of a binding.
#[derive(Clone, Debug, Default, Deserialize)]
struct Subject {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: String,
}

impl Subject {
    /// Whether this subject names `user`, in a binding of `namespace` ("" for a
    /// ClusterRoleBinding), as upstream's `appliesToUser`.
    fn applies_to(&self, user: &UserInfo, namespace: &str) -> bool {
        match self.kind.as_str() {
            "User" => user.name == self.name,
            "Group" => user.in_group(&self.name),
            "ServiceAccount" => {
                let sa_namespace = if self.namespace.is_empty() {
                    namespace
                } else {
                    &self.namespace
                };
                !sa_namespace.is_empty()
                    && user.name == format!("system:serviceaccount:{sa_namespace}:{}", self.name)
            }
            _ => false,
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RoleRef {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    name: String,
}

/// A RoleBinding or ClusterRoleBinding, as the index keeps it.
#[derive(Clone, Debug)]
struct Binding {
    namespace: String,
    role_ref: RoleRef,
    subjects: Vec<Subject>,
}

impl Binding {
    fn from_object(object: &Value) -> Binding {
        Binding {
            namespace: crate::registry::meta::namespace(object).to_owned(),
            role_ref: serde_json::from_value(object["roleRef"].clone()).unwrap_or_default(),
            subjects: serde_json::from_value(object["subjects"].clone()).unwrap_or_default(),
        }
    }

    fn applies_to(&self, user: &UserInfo) -> bool {
        self.subjects
            .iter()
            .any(|s| s.applies_to(user, &self.namespace))
    }
}

/// Bindings by the users and groups they name, so a request looks at the bindings
/// of its user and groups only, not at every binding of the cluster.
#[derive(Default)]
struct Bindings {
    all: Vec<Binding>,
    by_user: HashMap<String, Vec<usize>>,
    by_group: HashMap<String, Vec<usize>>,
}

impl Bindings {
    fn new(all: Vec<Binding>) -> Self {
        let mut by_user: HashMap<String, Vec<usize>> = HashMap::new();
        let mut by_group: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, binding) in all.iter().enumerate() {
            for subject in &binding.subjects {
                match subject.kind.as_str() {
                    "User" => by_user.entry(subject.name.clone()).or_default().push(i),
                    "Group" => by_group.entry(subject.name.clone()).or_default().push(i),
                    "ServiceAccount" => {
                        let namespace = if subject.namespace.is_empty() {
                            &binding.namespace
                        } else {
                            &subject.namespace
                        };
                        let user = format!("system:serviceaccount:{namespace}:{}", subject.name);
                        by_user.entry(user).or_default().push(i);
                    }
                    _ => {}
                }
            }
        }
        Bindings {
            all,
            by_user,
            by_group,
        }
    }

    /// The bindings that may apply to `user`, in their original order.
    fn of(&self, user: &UserInfo) -> impl Iterator<Item = &Binding> {
        let mut found: Vec<usize> = self.by_user.get(&user.name).cloned().unwrap_or_default();
        for group in &user.groups {
            if let Some(more) = self.by_group.get(group) {
                found.extend(more);
            }
        }
        found.sort_unstable();
        found.dedup();
        found
            .into_iter()
            .filter_map(|i| self.all.get(i))
            .filter(|b| b.applies_to(user))
    }
}

/// The RBAC objects, indexed for authorization.
#[derive(Default)]
pub struct RbacIndex {
    cluster_roles: HashMap<String, Vec<PolicyRule>>,
    roles: HashMap<(String, String), Vec<PolicyRule>>,
    cluster_bindings: Bindings,
    bindings: HashMap<String, Bindings>,
}

fn rules_of(object: &Value) -> Vec<PolicyRule> {
    serde_json::from_value(object["rules"].clone()).unwrap_or_default()
}

impl RbacIndex {
    /// The index of the given objects.
    fn build(
        cluster_roles: &[Arc<Value>],
        roles: &[Arc<Value>],
        cluster_bindings: &[Arc<Value>],
        bindings: &[Arc<Value>],
    ) -> Self {
        let mut index = RbacIndex::default();
        for role in cluster_roles {
            let name = crate::registry::meta::name(role).to_owned();
            index.cluster_roles.insert(name, rules_of(role));
        }
        for role in roles {
            let key = (
                crate::registry::meta::namespace(role).to_owned(),
                crate::registry::meta::name(role).to_owned(),
            );
            index.roles.insert(key, rules_of(role));
        }
        index.cluster_bindings = Bindings::new(
            cluster_bindings
                .iter()
                .map(|b| Binding::from_object(b))
                .collect(),
        );
        let mut by_namespace: HashMap<String, Vec<Binding>> = HashMap::new();
        for binding in bindings {
            let binding = Binding::from_object(binding);
            by_namespace
                .entry(binding.namespace.clone())
                .or_default()
                .push(binding);
        }
        index.bindings = by_namespace
            .into_iter()
            .map(|(namespace, all)| (namespace, Bindings::new(all)))
            .collect();
        index
    }

    /// Calls `visit` with every rule granted to `user` for requests in `namespace`
    /// ("" for cluster-wide), until it returns true; reports unresolvable role refs.
    fn visit_rules(
        &self,
        user: &UserInfo,
        namespace: &str,
        mut visit: impl FnMut(&PolicyRule) -> bool,
    ) -> (bool, Vec<String>) {
        let mut errors = Vec::new();
        for binding in self.cluster_bindings.of(user) {
            match self.cluster_roles.get(&binding.role_ref.name) {
                Some(rules) if binding.role_ref.kind == "ClusterRole" => {
                    if rules.iter().any(&mut visit) {
                        return (true, errors);
                    }
                }
                _ => errors.push(format!(
                    "clusterrole.rbac.authorization.k8s.io {} not found",
                    apimachinery::errors::go_quote(&binding.role_ref.name)
                )),
            }
        }
        if namespace.is_empty() {
            return (false, errors);
        }
        for binding in self
            .bindings
            .get(namespace)
            .into_iter()
            .flat_map(|b| b.of(user))
        {
            let rules = match binding.role_ref.kind.as_str() {
                "ClusterRole" => self.cluster_roles.get(&binding.role_ref.name),
                "Role" => self
                    .roles
                    .get(&(namespace.to_owned(), binding.role_ref.name.clone())),
                _ => None,
            };
            match rules {
                Some(rules) => {
                    if rules.iter().any(&mut visit) {
                        return (true, errors);
                    }
                }
                None => errors.push(format!(
                    "{}.rbac.authorization.k8s.io {} not found",
                    binding.role_ref.kind.to_ascii_lowercase(),
                    apimachinery::errors::go_quote(&binding.role_ref.name)
                )),
            }
        }
        (false, errors)
    }

    /// Every rule granted to `user` in `namespace` (upstream's `RulesFor`).
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> (Vec<PolicyRule>, Vec<String>) {
        let mut rules = Vec::new();
        let (_, errors) = self.visit_rules(user, namespace, |rule| {
            rules.push(rule.clone());
            false
        });
        (rules, errors)
    }

    /// The rules of the role a binding refers to, when it exists.
    pub fn role_rules(&self, kind: &str, namespace: &str, name: &str) -> Option<Vec<PolicyRule>> {
        match kind {
            "ClusterRole" => self.cluster_roles.get(name).cloned(),
            "Role" => self
                .roles
                .get(&(namespace.to_owned(), name.to_owned()))
                .cloned(),
            _ => None,
        }
    }
}

/// The four informers RBAC reads, and the index built from them.
pub struct Rbac {
    cluster_roles: Arc<Informer>,
    roles: Arc<Informer>,
    cluster_bindings: Arc<Informer>,
    bindings: Arc<Informer>,
    index: Mutex<(u64, Arc<RbacIndex>)>,
}

impl Rbac {
    /// Starts following the RBAC objects through `registry`.
    pub fn start(registry: &Registry) -> Arc<Rbac> {
        let informer = |plural: &str| {
            let resource = resources::find("rbac.authorization.k8s.io", "v1", plural)
                .expect("the RBAC resources are in the table");
            Informer::start(registry.clone(), resource)
        };
        Arc::new(Rbac {
            cluster_roles: informer("clusterroles"),
            roles: informer("roles"),
            cluster_bindings: informer("clusterrolebindings"),
            bindings: informer("rolebindings"),
            index: Mutex::new((u64::MAX, Arc::new(RbacIndex::default()))),
        })
    }

    /// Waits until every informer has its first list, at most `timeout` in all.
    pub async fn wait_synced(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        for informer in [
            &self.cluster_roles,
            &self.roles,
            &self.cluster_bindings,
            &self.bindings,
        ] {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if !informer.wait_synced(left).await {
                return false;
            }
        }
        true
    }

    /// The index of the current objects, rebuilt when they changed.
    pub fn index(&self) -> Arc<RbacIndex> {
        let generation = self
            .cluster_roles
            .generation()
            .wrapping_mul(31)
            .wrapping_add(self.roles.generation())
            .wrapping_mul(31)
            .wrapping_add(self.cluster_bindings.generation())
            .wrapping_mul(31)
            .wrapping_add(self.bindings.generation());
        let mut cached = self.index.lock().unwrap_or_else(|p| p.into_inner());
        if cached.0 != generation {
            let index = RbacIndex::build(
                &self.cluster_roles.list(),
                &self.roles.list(),
                &self.cluster_bindings.list(),
                &self.bindings.list(),
            );
            *cached = (generation, Arc::new(index));
        }
        cached.1.clone()
    }
}

/// `--authorization-mode=RBAC`.
pub struct RbacAuthorizer {
    rbac: Arc<Rbac>,
}

impl RbacAuthorizer {
    /// An authorizer over `rbac`'s objects.
    pub fn new(rbac: Arc<Rbac>) -> Self {
        RbacAuthorizer { rbac }
    }
}

#[async_trait::async_trait]
impl Authorize for RbacAuthorizer {
    async fn authorize(&self, user: &UserInfo, request: &RequestInfo) -> (Decision, String) {
        let index = self.rbac.index();
        let (allowed, errors) = index.visit_rules(user, &request.namespace, |r| r.allows(request));
        if allowed {
            return (Decision::Allow, String::new());
        }
        let reason = if errors.is_empty() {
            String::new()
        } else {
            format!("RBAC: {}", aggregate(&errors))
        };
        (Decision::NoOpinion, reason)
    }

    async fn rules_for(&self, user: &UserInfo, namespace: &str) -> RulesAnswer {
        let (rules, errors) = self.rbac.index().rules_for(user, namespace);
        let (non_resource, resource): (Vec<_>, Vec<_>) = rules
            .into_iter()
            .partition(|r| !r.non_resource_urls.is_empty());
        let resource = resource
            .into_iter()
            .map(|mut r| {
                r.non_resource_urls.clear();
                r
            })
            .collect();
        let non_resource = non_resource
            .into_iter()
            .map(|r| PolicyRule {
                verbs: r.verbs,
                non_resource_urls: r.non_resource_urls,
                ..Default::default()
            })
            .collect();
        RulesAnswer {
            resource_rules: resource,
            non_resource_rules: non_resource,
            incomplete: false,
            evaluation_errors: errors,
        }
    }
}

/// Upstream's aggregate of several errors: one as is, more as `[a, b]`.
fn aggregate(errors: &[String]) -> String {
    match errors {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> PolicyRule {
        PolicyRule {
            verbs: verbs.iter().map(|s| s.to_string()).collect(),
            api_groups: groups.iter().map(|s| s.to_string()).collect(),
            resources: resources.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn rules_match_like_upstream() {
        let get_pods = RequestInfo::resource("get", "", "pods", "", "dev", "web");
        let pod_log = RequestInfo::resource("get", "", "pods", "log", "dev", "web");
        assert!(rule(&["get"], &[""], &["pods"]).allows(&get_pods));
        assert!(!rule(&["get"], &[""], &["pods"]).allows(&pod_log));
        assert!(rule(&["get"], &[""], &["pods/log"]).allows(&pod_log));
        assert!(rule(&["get"], &[""], &["*/log"]).allows(&pod_log));
        assert!(!rule(&["get"], &[""], &["*/log"]).allows(&get_pods));
        assert!(rule(&["*"], &["*"], &["*"]).allows(&pod_log));
        assert!(!rule(&["list"], &[""], &["pods"]).allows(&get_pods));
        assert!(!rule(&["get"], &["apps"], &["pods"]).allows(&get_pods));
        let mut named = rule(&["get"], &[""], &["pods"]);
        named.resource_names = vec!["db".into()];
        assert!(!named.allows(&get_pods));
        named.resource_names.push("web".into());
        assert!(named.allows(&get_pods));

        let urls = PolicyRule {
            verbs: vec!["get".into()],
            non_resource_urls: vec!["/healthz".into(), "/api/*".into()],
            ..Default::default()
        };
        assert!(urls.allows(&RequestInfo::non_resource("get", "/healthz")));
        assert!(urls.allows(&RequestInfo::non_resource("get", "/api/v1")));
        assert!(!urls.allows(&RequestInfo::non_resource("get", "/apis")));
        assert!(!urls.allows(&RequestInfo::non_resource("post", "/healthz")));
    }

    #[test]
    fn bindings_apply_by_user_group_and_service_account() {
        let objects = |v: Vec<Value>| v.into_iter().map(Arc::new).collect::<Vec<_>>();
        let index = RbacIndex::build(
            &objects(vec![json!({"metadata": {"name": "reader"}, "rules": [
                {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}]})]),
            &objects(vec![
                json!({"metadata": {"name": "cm", "namespace": "dev"}, "rules": [
                {"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"]}]}),
            ]),
            &objects(vec![
                json!({"metadata": {"name": "ops"}, "roleRef": {"kind": "ClusterRole", "name": "reader"},
                "subjects": [{"kind": "Group", "name": "ops"}]}),
            ]),
            &objects(vec![
                json!({"metadata": {"name": "a", "namespace": "dev"}, "roleRef": {"kind": "Role", "name": "cm"},
                    "subjects": [{"kind": "ServiceAccount", "name": "builder"}, {"kind": "User", "name": "jane"}]}),
                json!({"metadata": {"name": "b", "namespace": "dev"}, "roleRef": {"kind": "Role", "name": "gone"},
                    "subjects": [{"kind": "User", "name": "jane"}]}),
            ]),
        );
        let allowed = |user: &UserInfo, request: &RequestInfo| {
            index
                .visit_rules(user, &request.namespace, |r| r.allows(request))
                .0
        };
        let list_pods = RequestInfo::resource("list", "", "pods", "", "", "");
        let get_cm = RequestInfo::resource("get", "", "configmaps", "", "dev", "x");
        let ops = UserInfo::new("bob", &["ops"]);
        assert!(allowed(&ops, &list_pods));
        assert!(!allowed(&ops, &get_cm));
        let jane = UserInfo::new("jane", &[]);
        assert!(allowed(&jane, &get_cm));
        assert!(!allowed(&jane, &list_pods));
        let builder = UserInfo::new("system:serviceaccount:dev:builder", &[]);
        assert!(allowed(&builder, &get_cm));
        let other_ns = UserInfo::new("system:serviceaccount:prod:builder", &[]);
        assert!(!allowed(&other_ns, &get_cm));
        let (_, errors) = index.visit_rules(&jane, "dev", |_| false);
        assert_eq!(
            errors,
            [r#"role.rbac.authorization.k8s.io "gone" not found"#]
        );
    }

    #[test]
    fn covers_reports_what_is_missing_compacted() {
        let owner = vec![
            rule(&["get", "list"], &[""], &["pods"]),
            rule(&["*"], &["apps"], &["*"]),
        ];
        assert!(uncovered(&owner, &[rule(&["get"], &[""], &["pods"])]).is_empty());
        assert!(
            uncovered(
                &owner,
                &[rule(&["delete"], &["apps"], &["deployments/scale"])]
            )
            .is_empty()
        );
        let missing = uncovered(
            &owner,
            &[rule(
                &["get", "delete", "create"],
                &[""],
                &["pods", "secrets"],
            )],
        );
        let text: Vec<String> = missing.iter().map(PolicyRule::compact_string).collect();
        assert_eq!(
            text,
            [
                r#"{APIGroups:[""], Resources:["pods"], Verbs:["delete" "create"]}"#,
                r#"{APIGroups:[""], Resources:["secrets"], Verbs:["get" "delete" "create"]}"#,
            ]
        );
    }
}
