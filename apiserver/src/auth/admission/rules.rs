//! What admission webhooks and ValidatingAdmissionPolicies share to decide whether a
//! write concerns them: `RuleWithOperations` matching (upstream's `rules.Matcher`:
//! operations, groups, versions, `resource/subresource` with `*`, scope), label
//! selectors read from their JSON, and string lists.

use apimachinery::labels::{LabelSelector, Selector};
use serde_json::Value;

use super::Operation;

/// The strings of a JSON list (anything else reads as none).
pub fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// A label selector; absent selects everything (the API defaults it to `{}`).
pub fn selector(value: &Value) -> Result<Selector, String> {
    if value.is_null() {
        return Ok(Selector::everything());
    }
    let parsed: LabelSelector = serde_json::from_value(value.clone()).map_err(|e| e.to_string())?;
    Selector::from_label_selector(Some(&parsed)).map_err(|e| e.to_string())
}

/// Whether an objectSelector admits a write: the new object's labels or, for updates
/// and deletes, the old one's match (an empty selector admits everything).
pub fn object_selected(selector: &Selector, object: Option<&Value>, old: Option<&Value>) -> bool {
    let matches =
        |o: Option<&Value>| o.is_some_and(|o| selector.matches(&crate::registry::meta::labels(o)));
    selector.is_empty() || matches(object) || matches(old)
}

/// One `RuleWithOperations` (or `NamedRuleWithOperations`, with resourceNames).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rule {
    /// `CREATE`, `UPDATE`, `DELETE`, `CONNECT` or `*`.
    pub operations: Vec<String>,
    /// API groups or `*`.
    pub api_groups: Vec<String>,
    /// API versions or `*`.
    pub api_versions: Vec<String>,
    /// `resource`, `resource/subresource`, with `*` on either side.
    pub resources: Vec<String>,
    /// Object names (policies only); empty means any.
    pub resource_names: Vec<String>,
    /// `Cluster`, `Namespaced` or `*` (absent: `*`).
    pub scope: Option<String>,
}

impl Rule {
    /// Reads a rule from its JSON.
    pub fn parse(value: &Value) -> Self {
        Rule {
            operations: strings(&value["operations"]),
            api_groups: strings(&value["apiGroups"]),
            api_versions: strings(&value["apiVersions"]),
            resources: strings(&value["resources"]),
            resource_names: strings(&value["resourceNames"]),
            scope: value["scope"].as_str().map(str::to_owned),
        }
    }

    /// Whether the rule matches a write of `group`/`version`/`resource`/`subresource`
    /// in `namespace` (the namespace's own name for Namespace writes, which count as
    /// cluster-scoped), as upstream's `rules.Matcher`.
    pub fn matches(
        &self,
        operation: Operation,
        (group, version, resource): (&str, &str, &str),
        subresource: &str,
        namespace: &str,
    ) -> bool {
        let namespace_object = group.is_empty() && version == "v1" && resource == "namespaces";
        let scope = match self.scope.as_deref() {
            None | Some("*") => true,
            Some("Namespaced") => !namespace_object && !namespace.is_empty(),
            Some("Cluster") => namespace_object || namespace.is_empty(),
            Some(_) => false,
        };
        let listed = |items: &[String], wanted: &str| items.iter().any(|i| i == "*" || i == wanted);
        let resource_matches = self.resources.iter().any(|r| {
            let (res, sub) = r.split_once('/').unwrap_or((r.as_str(), ""));
            (res == "*" || res == resource) && (sub == "*" || sub == subresource)
        });
        scope
            && listed(&self.operations, operation.as_str())
            && listed(&self.api_groups, group)
            && listed(&self.api_versions, version)
            && resource_matches
    }

    /// Whether the rule's resourceNames (if any) include `name`.
    pub fn names_match(&self, name: &str) -> bool {
        self.resource_names.is_empty() || self.resource_names.iter().any(|n| n == name)
    }
}
