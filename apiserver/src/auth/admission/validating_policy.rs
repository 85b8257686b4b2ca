//! The `ValidatingAdmissionPolicy` admission plugin: in-process validation by CEL
//! expressions, following `validatingadmissionpolicies` and
//! `validatingadmissionpolicybindings` (admissionregistration.k8s.io/v1) through
//! informers, as upstream's `plugin/policy/validating`.
//!
//! For every write the policies are visited in name order, and for each policy its
//! bindings (`spec.policyName`) in name order:
//!
//! - the policy's `matchConstraints` and then the binding's `matchResources` must
//!   match: `resourceRules` (operations, apiGroups, apiVersions, resources with the
//!   `*` / `*/*` / `pods/*` forms, resourceNames, scope), `excludeResourceRules`, the
//!   `namespaceSelector` (on the labels of the object's namespace, of the Namespace
//!   itself when one is written; other cluster-scoped objects are never exempted),
//!   the `objectSelector` (on the new or the old object) and `matchPolicy`
//!   (`Equivalent`, the API default, also matches other served versions of the same
//!   resource);
//! - the params are found through an informer on the policy's `paramKind`, by the
//!   binding's `paramRef` (`name` or `selector`, `namespace`, defaulting to the
//!   request's namespace for namespaced kinds); none found is an error under
//!   `parameterNotFoundAction: Deny` and skips the binding otherwise; each param
//!   found is one evaluation;
//! - `matchConditions` (CEL) must all be true for the validations to run;
//! - each validation's `expression` must be true; when it is not the binding's
//!   `validationActions` decide: `Deny` refuses the write with upstream's message
//!   (`ValidatingAdmissionPolicy '<policy>' with binding '<binding>' denied request:
//!   <message>`) and the Status reason of the validation's `reason` (`Invalid`, 422,
//!   by default), `Warn` adds a warning, `Audit` is accepted (no audit annotations
//!   are written here).
//!
//! CEL sees `object`, `oldObject`, `request` (the AdmissionRequest: kind, resource,
//! subResource, requestKind, requestResource, name, namespace, operation,
//! userInfo, dryRun, uid), `params`, `namespaceObject` and `variables` (the policy's
//! `spec.variables`, each evaluated only when an expression uses it, once per
//! evaluation; a variable sees the ones declared before it). Evaluation errors,
//! configuration errors (an unknown `paramKind`, missing params under `Deny`, a bad
//! selector) and expressions that do not compile follow the policy's
//! `failurePolicy`: `Fail` (the default) refuses with upstream's message,
//! `Ignore` lets the write through.
//!
//! The interpreter is the `cel` crate, with its standard library (macros `has`,
//! `all`, `exists`, `exists_one`, `map`, `filter`; `size`, `contains`,
//! `startsWith`, `endsWith`, `matches`, conversions, timestamps and durations).
//! Not done, unlike upstream: type checking against the resources' OpenAPI schemas
//! (values are dynamic, so a type mistake shows at evaluation, not at compile time),
//! the Kubernetes CEL extension libraries (lists, strings, quantity, url, ip,
//! authz: `authorizer` is not bound), cost budgets, `auditAnnotations`, the audit
//! annotation of `Audit` actions, conversion of the object to the version a
//! `matchPolicy: Equivalent` rule names, and policy status (type-checking warnings).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apimachinery::errors::{StatusCause, StatusDetails, StatusError, StatusReason};
use apimachinery::labels::Selector;
use apimachinery::resources::{self, ResourceInfo};
use cel::objects::{Key, Map as CelMap};
use cel::{Context as CelContext, ExecutionError, Program, Value as CelValue};
use serde_json::{Value, json};

use super::rules::{Rule, object_selected, selector, strings};
use super::{Attributes, Operation, Plugin};
use crate::auth::filter::add_warning;
use crate::registry::informer::Informer;
use crate::registry::{Registry, meta};

/// How long a request waits for the informers' first lists (upstream's `WaitForReady`).
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a request waits for a param informer's first list, as upstream.
const PARAM_SYNC_TIMEOUT: Duration = Duration::from_secs(1);

/// The longest message a `messageExpression` may give (upstream's
/// `MaxEvaluatedMessageExpressionSizeBytes`); a longer one falls back to `message`.
const MAX_MESSAGE_EXPRESSION_BYTES: usize = 5 * 1024;

const GROUP: &str = "admissionregistration.k8s.io";

/// The `ValidatingAdmissionPolicy` plugin.
pub struct ValidatingPolicies {
    registry: Registry,
    /// The informers on policies, bindings and namespaces (`None` only should the
    /// resource table lack them, when there is nothing to enforce).
    informers: Option<Informers>,
    /// Informers on the param kinds, by `group/version/plural`.
    params: Mutex<HashMap<String, Arc<Informer>>>,
    /// The parsed hooks and the informer generations they were parsed at.
    parsed: Mutex<Option<((u64, u64), Arc<Vec<Hook>>)>>,
}

impl ValidatingPolicies {
    /// The plugin, following the policies, bindings and namespaces of `registry`.
    pub fn new(registry: &Registry) -> Self {
        let find = |group: &str, plural: &str| resources::find(group, "v1", plural);
        let informers = match (
            find(GROUP, "validatingadmissionpolicies"),
            find(GROUP, "validatingadmissionpolicybindings"),
            find("", "namespaces"),
        ) {
            (Some(policies), Some(bindings), Some(namespaces)) => Some(Informers {
                policies: Informer::start(registry.clone(), policies),
                bindings: Informer::start(registry.clone(), bindings),
                namespaces: Informer::start(registry.clone(), namespaces),
            }),
            _ => None,
        };
        ValidatingPolicies {
            registry: registry.clone(),
            informers,
            params: Mutex::new(HashMap::new()),
            parsed: Mutex::new(None),
        }
    }

    /// The policies in name order, each with its bindings in name order.
    fn hooks(&self, informers: &Informers) -> Arc<Vec<Hook>> {
        let generation = (
            informers.policies.generation(),
            informers.bindings.generation(),
        );
        let mut parsed = self.parsed.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, hooks)) = parsed.as_ref()
            && *at == generation
        {
            return hooks.clone();
        }
        let mut policies = informers.policies.list();
        policies.sort_by(|a, b| meta::name(a).cmp(meta::name(b)));
        let mut bindings = informers.bindings.list();
        bindings.sort_by(|a, b| meta::name(a).cmp(meta::name(b)));
        let hooks: Vec<Hook> = policies
            .iter()
            .map(|policy| {
                let policy = Policy::parse(policy);
                let bindings = bindings
                    .iter()
                    .filter(|b| b["spec"]["policyName"].as_str() == Some(policy.name.as_str()))
                    .map(|b| Binding::parse(b))
                    .collect();
                let (param_resource, configuration_error) = match &policy.param_kind {
                    None => (None, None),
                    Some(kind) => match kind.resource() {
                        Some(resource) => {
                            self.param_informer(resource);
                            (Some(resource), None)
                        }
                        None => (
                            None,
                            Some(format!(
                                "failed to find resource referenced by paramKind: '{}'",
                                kind.gvk_string()
                            )),
                        ),
                    },
                };
                Hook {
                    policy,
                    param_resource,
                    configuration_error,
                    bindings,
                }
            })
            .collect();
        let hooks = Arc::new(hooks);
        *parsed = Some((generation, hooks.clone()));
        hooks
    }

    /// The informer on a param kind, started on first use.
    fn param_informer(&self, resource: &'static ResourceInfo) -> Arc<Informer> {
        let key = format!(
            "{}/{}/{}",
            resource.group, resource.version, resource.plural
        );
        let mut params = self.params.lock().unwrap_or_else(|p| p.into_inner());
        params
            .entry(key)
            .or_insert_with(|| Informer::start(self.registry.clone(), resource))
            .clone()
    }

    /// Waits for the informers' first lists; a 403 when they do not come.
    async fn ready(&self, a: &Attributes<'_>, informers: &Informers) -> Result<(), StatusError> {
        let synced = informers.policies.wait_synced(READY_TIMEOUT).await
            && informers.bindings.wait_synced(READY_TIMEOUT).await
            && informers.namespaces.wait_synced(READY_TIMEOUT).await;
        if synced {
            Ok(())
        } else {
            Err(a.forbidden("not yet ready to handle request"))
        }
    }

    /// A namespace, from the informer or (when it lags behind) the store.
    async fn namespace(&self, name: &str) -> Result<Value, StatusError> {
        if let Some(namespace) = self
            .informers
            .as_ref()
            .and_then(|i| i.namespaces.get("", name))
        {
            return Ok((*namespace).clone());
        }
        let resource = resources::find("", "v1", "namespaces")
            .ok_or_else(|| StatusError::internal_error("namespaces are not served"))?;
        self.registry.get(resource, None, name).await
    }

    /// Whether `constraints` match the write: `Ok(false)` when they do not, the
    /// error deciding gave when they otherwise would.
    async fn matches(
        &self,
        constraints: &MatchResources,
        a: &Attributes<'_>,
        input: &Input<'_>,
    ) -> Result<bool, String> {
        // the namespace selector (cluster-scoped objects other than namespaces are
        // never exempted)
        let namespace_match: Result<bool, String> =
            if input.namespace_for_matching.is_empty() && !input.is_namespace {
                Ok(true)
            } else {
                match &constraints.namespace_selector {
                    Err(e) => Err(e.clone()),
                    Ok(selector) if selector.is_empty() => Ok(true),
                    Ok(selector) => {
                        if input.is_namespace && a.subresource.is_empty() {
                            let object = input.object.or(a.old);
                            Ok(object.is_some_and(|o| selector.matches(&meta::labels(o))))
                        } else {
                            match self.namespace(input.namespace_for_matching).await {
                                Ok(namespace) => Ok(selector.matches(&meta::labels(&namespace))),
                                Err(e) => Err(e.to_string()),
                            }
                        }
                    }
                }
            };
        if matches!(namespace_match, Ok(false)) {
            return Ok(false);
        }
        let object_match: Result<bool, String> = match &constraints.object_selector {
            Err(e) => Err(e.clone()),
            Ok(selector) => Ok(object_selected(selector, input.object, a.old)),
        };
        if matches!(object_match, Ok(false)) {
            return Ok(false);
        }
        if constraints.rules_match(&constraints.exclude_rules, a, input) {
            return Ok(false);
        }
        if !constraints.resource_rules.is_empty()
            && !constraints.rules_match(&constraints.resource_rules, a, input)
        {
            return Ok(false);
        }
        namespace_match?;
        object_match?;
        Ok(true)
    }

    /// The params one binding evaluates its policy with: `[Value::Null]` when the
    /// policy or the binding uses none, empty when none is found and that is allowed.
    async fn collect_params(
        &self,
        hook: &Hook,
        binding: &Binding,
        request_namespace: &str,
    ) -> Result<Vec<Value>, String> {
        let (Some(kind), Some(param_ref)) = (&hook.policy.param_kind, &binding.param_ref) else {
            return Ok(vec![Value::Null]);
        };
        let Some(resource) = hook.param_resource else {
            return Err(format!("paramKind kind `{}` not known", kind.go_string()));
        };
        let informer = self.param_informer(resource);
        let namespace = if resource.namespaced {
            match (param_ref.namespace.as_str(), request_namespace) {
                ("", "") => {
                    return Err(
                        "cannot use namespaced paramRef in policy binding that matches \
                                cluster-scoped resources"
                            .to_owned(),
                    );
                }
                ("", request) => request.to_owned(),
                (named, _) => named.to_owned(),
            }
        } else {
            String::new()
        };
        if !informer.wait_synced(PARAM_SYNC_TIMEOUT).await {
            return Err(format!(
                "paramKind kind `{}` not yet synced to use for admission",
                kind.go_string()
            ));
        }
        if !resource.namespaced && !param_ref.namespace.is_empty() {
            return Err(
                "paramRef.namespace must not be provided for a cluster-scoped `paramKind`"
                    .to_owned(),
            );
        }
        let params = if !param_ref.name.is_empty() {
            if param_ref.selector.is_some() {
                return Err("paramRef.name and paramRef.selector are mutually exclusive".to_owned());
            }
            match informer.get(&namespace, &param_ref.name) {
                Some(param) => vec![(*param).clone()],
                None => {
                    // the informer may lag behind the store: ask the store before
                    // deciding the param is missing
                    let ns = resource.namespaced.then_some(namespace.as_str());
                    match self.registry.get(resource, ns, &param_ref.name).await {
                        Ok(param) => vec![param],
                        Err(e) if e.is_not_found() => Vec::new(),
                        Err(e) => return Err(e.to_string()),
                    }
                }
            }
        } else if let Some(selector) = &param_ref.selector {
            let selector = selector.as_ref().map_err(Clone::clone)?;
            let candidates = if resource.namespaced {
                informer.list_namespace(&namespace)
            } else {
                informer.list()
            };
            let mut found: Vec<Value> = candidates
                .iter()
                .filter(|p| selector.matches(&meta::labels(p)))
                .map(|p| (**p).clone())
                .collect();
            found.sort_by(|a, b| {
                (meta::namespace(a), meta::name(a)).cmp(&(meta::namespace(b), meta::name(b)))
            });
            found
        } else {
            return Err("one of name or selector must be provided".to_owned());
        };
        if params.is_empty() && param_ref.deny_not_found {
            return Err(
                "no params found for policy binding with `Deny` parameterNotFoundAction".to_owned(),
            );
        }
        Ok(params
            .into_iter()
            .map(|mut param| {
                // as upstream, params always carry their type meta
                if let Some(object) = param.as_object_mut() {
                    object
                        .entry("apiVersion")
                        .or_insert_with(|| kind.api_version.clone().into());
                    object
                        .entry("kind")
                        .or_insert_with(|| kind.kind.clone().into());
                }
                param
            })
            .collect())
    }
}

#[async_trait::async_trait]
impl Plugin for ValidatingPolicies {
    fn name(&self) -> &'static str {
        "ValidatingAdmissionPolicy"
    }

    async fn validate(&self, a: &Attributes<'_>, object: &Value) -> Result<(), StatusError> {
        if is_policy_resource(a.resource) {
            return Ok(());
        }
        let Some(informers) = &self.informers else {
            return Ok(());
        };
        self.ready(a, informers).await?;
        let hooks = self.hooks(informers);
        if hooks.is_empty() {
            return Ok(());
        }
        let input = Input::new(a, object);
        let mut denials: Vec<Denial> = Vec::new();
        // the namespace object, fetched once when an evaluation needs it
        let mut namespace_object: Option<Value> = None;
        for hook in hooks.iter() {
            let policy = &hook.policy;
            let matched = match &policy.match_constraints {
                None => Err("policy contained no match constraints, a required field".to_owned()),
                Some(constraints) => self.matches(constraints, a, &input).await,
            };
            match matched {
                Err(e) => {
                    config_error(&mut denials, policy, None, &e);
                    continue;
                }
                Ok(false) => continue,
                Ok(true) => {}
            }
            if let Some(e) = &hook.configuration_error {
                config_error(&mut denials, policy, None, e);
                continue;
            }
            for binding in &hook.bindings {
                if let Some(constraints) = &binding.match_resources {
                    match self.matches(constraints, a, &input).await {
                        Err(e) => {
                            config_error(&mut denials, policy, Some(binding), &e);
                            continue;
                        }
                        Ok(false) => continue,
                        Ok(true) => {}
                    }
                }
                let params = match self.collect_params(hook, binding, input.namespace).await {
                    Ok(params) => params,
                    Err(e) => {
                        config_error(&mut denials, policy, Some(binding), &e);
                        continue;
                    }
                };
                if params.is_empty() {
                    continue;
                }
                if namespace_object.is_none() {
                    let name = if input.is_namespace { "" } else { a.namespace };
                    namespace_object = Some(if name.is_empty() {
                        Value::Null
                    } else {
                        namespace_view(&self.namespace(name).await?)
                    });
                }
                let namespace = namespace_object.as_ref().unwrap_or(&Value::Null);
                for param in &params {
                    let activation = Activation::new(&input, param, namespace);
                    for decision in evaluate(policy, &activation) {
                        for action in &binding.validation_actions {
                            match action.as_str() {
                                "Deny" => denials.push(Denial {
                                    policy: policy.name.clone(),
                                    binding: Some(binding.name.clone()),
                                    message: decision.message.clone(),
                                    reason: decision.reason.clone(),
                                }),
                                "Warn" => add_warning(format!(
                                    "Validation failed for ValidatingAdmissionPolicy '{}' with \
                                     binding '{}': {}",
                                    policy.name, binding.name, decision.message
                                )),
                                // Audit: the audit annotation is not written
                                _ => {}
                            }
                        }
                    }
                }
            }
        }
        match denials.first() {
            None => Ok(()),
            Some(denial) => Err(denial.to_status(a)),
        }
    }
}

/// The informers every request needs.
struct Informers {
    policies: Arc<Informer>,
    bindings: Arc<Informer>,
    namespaces: Arc<Informer>,
}

/// A refusal: the first one found is the answer.
struct Denial {
    policy: String,
    binding: Option<String>,
    message: String,
    /// The validation's reason (`None` reads as `Invalid`).
    reason: Option<String>,
}

impl Denial {
    /// Upstream's refusal: a Forbidden Status whose message names the policy and
    /// binding, with the reason (and its code) of the failed validation.
    fn to_status(&self, a: &Attributes<'_>) -> StatusError {
        let message = match &self.binding {
            Some(binding) => format!(
                "ValidatingAdmissionPolicy '{}' with binding '{binding}' denied request: {}",
                self.policy, self.message
            ),
            None => format!(
                "ValidatingAdmissionPolicy '{}' denied request: {}",
                self.policy, self.message
            ),
        };
        let mut error = a.forbidden(&message);
        let reason_name = self
            .reason
            .as_deref()
            .filter(|r| !r.is_empty())
            .unwrap_or("Invalid");
        let reason: StatusReason =
            serde_json::from_value(Value::String(reason_name.to_owned())).unwrap_or_default();
        error.0.reason = reason;
        error.0.code = match reason {
            StatusReason::Forbidden => 403,
            StatusReason::Unauthorized => 401,
            StatusReason::RequestEntityTooLarge => 413,
            _ => 422,
        };
        error
            .0
            .details
            .get_or_insert_with(StatusDetails::default)
            .causes
            .push(StatusCause {
                message,
                ..StatusCause::default()
            });
        error
    }
}

/// Records a configuration error under the policy's failure policy.
fn config_error(denials: &mut Vec<Denial>, policy: &Policy, binding: Option<&Binding>, e: &str) {
    let message = match policy.failure_policy.as_str() {
        "Ignore" => return,
        "Fail" => match binding {
            None => format!("failed to configure policy: {e}"),
            Some(_) => format!("failed to configure binding: {e}"),
        },
        other => format!("unrecognized failure policy: '{other}'"),
    };
    denials.push(Denial {
        policy: policy.name.clone(),
        binding: binding.map(|b| b.name.clone()),
        message,
        reason: None,
    });
}

/// Whether the write is of the policy objects themselves, which policies never see.
fn is_policy_resource(resource: &ResourceInfo) -> bool {
    resource.group == GROUP
        && matches!(
            resource.plural,
            "validatingadmissionpolicies"
                | "validatingadmissionpolicybindings"
                | "mutatingadmissionpolicies"
                | "mutatingadmissionpolicybindings"
        )
}

/// `namespaceObject`: the namespace's spec, status and the metadata upstream shows.
fn namespace_view(namespace: &Value) -> Value {
    let mut metadata = serde_json::Map::new();
    for field in [
        "name",
        "generateName",
        "namespace",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "labels",
        "annotations",
    ] {
        if let Some(value) = namespace["metadata"].get(field) {
            metadata.insert(field.to_owned(), value.clone());
        }
    }
    let mut view = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": metadata});
    for field in ["spec", "status"] {
        if let Some(value) = namespace.get(field) {
            view[field] = value.clone();
        }
    }
    view
}

/// What the write looks like to matching and to CEL.
struct Input<'a> {
    /// The object written (`None` for deletes).
    object: Option<&'a Value>,
    /// The stored object, for updates and deletes.
    old: Option<&'a Value>,
    /// Whether the write is of a Namespace.
    is_namespace: bool,
    /// The namespace as upstream's attributes carry it for matching: the
    /// Namespace's own name for namespace writes.
    namespace_for_matching: &'a str,
    /// The request's namespace (the Namespace's own name for namespace writes other
    /// than creates).
    namespace: &'a str,
    /// `request` for CEL.
    request: Value,
}

impl<'a> Input<'a> {
    fn new(a: &'a Attributes<'a>, object: &'a Value) -> Self {
        let object = (a.operation != Operation::Delete).then_some(object);
        let is_namespace = a.resource.group.is_empty() && a.resource.plural == "namespaces";
        let namespace_for_matching = if is_namespace { a.name } else { a.namespace };
        let namespace = if is_namespace && a.operation != Operation::Create {
            a.name
        } else {
            a.namespace
        };
        let (group, version, kind) = request_kind(a, object.or(a.old));
        let kind = json!({"group": group, "version": version, "kind": kind});
        let resource = json!({
            "group": a.resource.group,
            "version": a.resource.version,
            "resource": a.resource.plural,
        });
        let mut request = json!({
            "uid": uuid::Uuid::new_v4().to_string(),
            "kind": kind,
            "resource": resource,
            "requestKind": kind,
            "requestResource": resource,
            "operation": a.operation.as_str(),
            "userInfo": a.user.to_json(),
            "dryRun": a.dry_run,
        });
        for (field, value) in [
            ("subResource", a.subresource),
            ("requestSubResource", a.subresource),
            ("name", a.name),
            ("namespace", namespace),
        ] {
            if !value.is_empty() {
                request[field] = value.into();
            }
        }
        Input {
            object,
            old: a.old,
            is_namespace,
            namespace_for_matching,
            namespace,
            request,
        }
    }
}

/// The kind of the write (group, version, kind): the subresource's kind when it has
/// its own and that is what is sent, else the resource's.
fn request_kind<'r>(
    a: &Attributes<'r>,
    object: Option<&Value>,
) -> (&'static str, &'static str, &'static str) {
    if !a.subresource.is_empty()
        && let Some(sub) = a.resource.subresource(a.subresource)
    {
        let (group, version) = sub
            .kind_group_version
            .unwrap_or((a.resource.group, a.resource.version));
        let object_kind = object.and_then(|o| o["kind"].as_str()).unwrap_or(sub.kind);
        if object_kind == sub.kind {
            return (group, version, sub.kind);
        }
    }
    (a.resource.group, a.resource.version, a.resource.kind)
}

/// One policy, parsed.
struct Policy {
    name: String,
    /// `Fail` (the default), `Ignore`, or what else was written.
    failure_policy: String,
    param_kind: Option<ParamKind>,
    match_constraints: Option<MatchResources>,
    match_conditions: Vec<Compiled>,
    variables: Vec<(String, Compiled)>,
    validations: Vec<Validation>,
}

impl Policy {
    fn parse(value: &Value) -> Self {
        let spec = &value["spec"];
        let variables: Vec<(String, Compiled)> = spec["variables"]
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|v| {
                        let name = v["name"].as_str().unwrap_or("").to_owned();
                        (name, Compiled::new(v["expression"].as_str().unwrap_or("")))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let expressions = |field: &str| -> Vec<Compiled> {
            spec[field]
                .as_array()
                .map(|list| {
                    list.iter()
                        .map(|c| Compiled::new(c["expression"].as_str().unwrap_or("")))
                        .collect()
                })
                .unwrap_or_default()
        };
        Policy {
            name: meta::name(value).to_owned(),
            failure_policy: spec["failurePolicy"].as_str().unwrap_or("Fail").to_owned(),
            param_kind: spec["paramKind"].is_object().then(|| ParamKind {
                api_version: spec["paramKind"]["apiVersion"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
                kind: spec["paramKind"]["kind"].as_str().unwrap_or("").to_owned(),
            }),
            match_constraints: spec["matchConstraints"]
                .is_object()
                .then(|| MatchResources::parse(&spec["matchConstraints"])),
            match_conditions: expressions("matchConditions"),
            variables,
            validations: spec["validations"]
                .as_array()
                .map(|list| list.iter().map(Validation::parse).collect())
                .unwrap_or_default(),
        }
    }
}

/// One validation of a policy.
struct Validation {
    expression: Compiled,
    message: String,
    message_expression: Option<Compiled>,
    reason: Option<String>,
}

impl Validation {
    fn parse(value: &Value) -> Self {
        Validation {
            expression: Compiled::new(value["expression"].as_str().unwrap_or("")),
            message: value["message"].as_str().unwrap_or("").to_owned(),
            message_expression: value["messageExpression"]
                .as_str()
                .filter(|s| !s.trim().is_empty())
                .map(Compiled::new),
            reason: value["reason"].as_str().map(str::to_owned),
        }
    }
}

/// A policy's `paramKind`.
struct ParamKind {
    api_version: String,
    kind: String,
}

impl ParamKind {
    /// The group and version of `apiVersion`, when it parses.
    fn group_version(&self) -> Option<(&str, &str)> {
        match self.api_version.split_once('/') {
            None => Some(("", self.api_version.as_str())),
            Some((group, version)) if !version.contains('/') => Some((group, version)),
            Some(_) => None,
        }
    }

    /// The served resource of this kind.
    fn resource(&self) -> Option<&'static ResourceInfo> {
        let (group, version) = self.group_version()?;
        resources::RESOURCES.iter().find(|r| {
            r.group == group && r.version == version && r.kind == self.kind && r.is_stored()
        })
    }

    /// Go's `GroupVersionKind.String()`: `group/version, Kind=Kind`.
    fn gvk_string(&self) -> String {
        let (group, version) = self
            .group_version()
            .unwrap_or(("", self.api_version.as_str()));
        format!("{group}/{version}, Kind={}", self.kind)
    }

    /// Go's `%v` of the `ParamKind` struct pointer, as upstream prints it.
    fn go_string(&self) -> String {
        format!(
            "&ParamKind{{APIVersion:{},Kind:{},}}",
            self.api_version, self.kind
        )
    }
}

/// One binding, parsed.
struct Binding {
    name: String,
    param_ref: Option<ParamRef>,
    match_resources: Option<MatchResources>,
    validation_actions: Vec<String>,
}

impl Binding {
    fn parse(value: &Value) -> Self {
        let spec = &value["spec"];
        let param_ref = spec["paramRef"].is_object().then(|| {
            let r = &spec["paramRef"];
            ParamRef {
                name: r["name"].as_str().unwrap_or("").to_owned(),
                namespace: r["namespace"].as_str().unwrap_or("").to_owned(),
                selector: (!r["selector"].is_null()).then(|| selector(&r["selector"])),
                deny_not_found: r["parameterNotFoundAction"].as_str() == Some("Deny"),
            }
        });
        Binding {
            name: meta::name(value).to_owned(),
            param_ref,
            match_resources: spec["matchResources"]
                .is_object()
                .then(|| MatchResources::parse(&spec["matchResources"])),
            validation_actions: strings(&spec["validationActions"]),
        }
    }
}

/// A binding's `paramRef`.
struct ParamRef {
    name: String,
    namespace: String,
    selector: Option<Result<Selector, String>>,
    deny_not_found: bool,
}

/// A policy's and its hooks, parsed.
struct Hook {
    policy: Policy,
    /// The resource of the policy's `paramKind`, when it has one that is served.
    param_resource: Option<&'static ResourceInfo>,
    /// Why the policy cannot be used (an unknown `paramKind`).
    configuration_error: Option<String>,
    bindings: Vec<Binding>,
}

/// `matchConstraints` of a policy or `matchResources` of a binding.
struct MatchResources {
    namespace_selector: Result<Selector, String>,
    object_selector: Result<Selector, String>,
    resource_rules: Vec<Rule>,
    exclude_rules: Vec<Rule>,
    equivalent: bool,
}

impl MatchResources {
    fn parse(value: &Value) -> Self {
        let rules = |field: &str| -> Vec<Rule> {
            value[field]
                .as_array()
                .map(|list| list.iter().map(Rule::parse).collect())
                .unwrap_or_default()
        };
        MatchResources {
            namespace_selector: selector(&value["namespaceSelector"]),
            object_selector: selector(&value["objectSelector"]),
            resource_rules: rules("resourceRules"),
            exclude_rules: rules("excludeResourceRules"),
            equivalent: value["matchPolicy"].as_str() != Some("Exact"),
        }
    }

    /// Whether one of `rules` matches the write, exactly or (with `matchPolicy:
    /// Equivalent`) through another served version of the same resource.
    fn rules_match(&self, rules: &[Rule], a: &Attributes<'_>, input: &Input<'_>) -> bool {
        let resource = a.resource;
        let namespace = input.namespace_for_matching;
        let exact = (resource.group, resource.version, resource.plural);
        if rules.iter().any(|r| {
            r.matches(a.operation, exact, a.subresource, namespace) && r.names_match(a.name)
        }) {
            return true;
        }
        if !self.equivalent {
            return false;
        }
        resources::RESOURCES
            .iter()
            .filter(|r| {
                r.group == resource.group
                    && r.plural == resource.plural
                    && r.version != resource.version
            })
            .filter(|r| a.subresource.is_empty() || r.subresource(a.subresource).is_some())
            .any(|other| {
                rules.iter().any(|rule| {
                    rule.matches(
                        a.operation,
                        (other.group, other.version, other.plural),
                        a.subresource,
                        namespace,
                    ) && rule.names_match(a.name)
                })
            })
    }
}

/// A CEL expression and what compiling it gave.
struct Compiled {
    source: String,
    program: Result<Program, String>,
    /// The policy variables the expression names (`variables.<name>`).
    variables: BTreeSet<String>,
    /// Whether it uses `variables` otherwise (as a whole), so needs all of them.
    all_variables: bool,
}

impl Compiled {
    fn new(source: &str) -> Self {
        // the parser is a generated one: should it panic on some input, that input
        // is a compile error, not a crashed request
        let parsed = std::panic::catch_unwind(|| Program::compile(source));
        let program = match parsed {
            Ok(Ok(program)) => Ok(program),
            Ok(Err(e)) => Err(format!(
                "compilation failed: ERROR: <input>: {}",
                e.to_string().trim()
            )),
            Err(_) => Err("compilation failed: ERROR: <input>: unparsable expression".to_owned()),
        };
        let mut variables = BTreeSet::new();
        let mut all_variables = false;
        if let Ok(program) = &program {
            variable_references(program.expression(), &mut variables, &mut all_variables);
        }
        Compiled {
            source: source.to_owned(),
            program,
            variables,
            all_variables,
        }
    }
}

/// Collects the `variables.<name>` (and `variables["<name>"]`) an expression uses.
fn variable_references(expression: &cel::IdedExpr, names: &mut BTreeSet<String>, all: &mut bool) {
    use cel::common::ast::{EntryExpr, Expr};
    let is_variables =
        |e: &cel::IdedExpr| matches!(&e.expr, Expr::Ident(name) if name == "variables");
    match &expression.expr {
        Expr::Ident(name) => {
            if name == "variables" {
                *all = true;
            }
        }
        Expr::Select(select) => {
            if is_variables(&select.operand) {
                names.insert(select.field.clone());
            } else {
                variable_references(&select.operand, names, all);
            }
        }
        Expr::Call(call) => {
            let indexed = call.func_name == cel::common::ast::operators::INDEX
                && call.args.len() == 2
                && is_variables(&call.args[0])
                && matches!(
                    &call.args[1].expr,
                    Expr::Literal(cel::common::value::CelVal::String(_))
                );
            if indexed {
                if let Expr::Literal(cel::common::value::CelVal::String(name)) = &call.args[1].expr
                {
                    names.insert(name.clone());
                }
                return;
            }
            if let Some(target) = &call.target {
                variable_references(target, names, all);
            }
            for arg in &call.args {
                variable_references(arg, names, all);
            }
        }
        Expr::Comprehension(c) => {
            for e in [
                &c.iter_range,
                &c.accu_init,
                &c.loop_cond,
                &c.loop_step,
                &c.result,
            ] {
                variable_references(e, names, all);
            }
        }
        Expr::List(list) => {
            for e in &list.elements {
                variable_references(e, names, all);
            }
        }
        Expr::Map(map) => {
            for entry in &map.entries {
                if let EntryExpr::MapEntry(entry) = &entry.expr {
                    variable_references(&entry.key, names, all);
                    variable_references(&entry.value, names, all);
                }
            }
        }
        Expr::Struct(s) => {
            for entry in &s.entries {
                match &entry.expr {
                    EntryExpr::StructField(field) => variable_references(&field.value, names, all),
                    EntryExpr::MapEntry(entry) => {
                        variable_references(&entry.key, names, all);
                        variable_references(&entry.value, names, all);
                    }
                }
            }
        }
        Expr::Literal(_) | Expr::Unspecified => {}
    }
}

/// The values one evaluation of a policy sees.
struct Activation {
    base: Vec<(&'static str, CelValue)>,
}

impl Activation {
    fn new(input: &Input<'_>, params: &Value, namespace: &Value) -> Self {
        let object = input.object.map(to_cel).unwrap_or(CelValue::Null);
        let old = input.old.map(to_cel).unwrap_or(CelValue::Null);
        Activation {
            base: vec![
                ("object", object),
                ("oldObject", old),
                ("request", to_cel(&input.request)),
                ("params", to_cel(params)),
                ("namespaceObject", to_cel(namespace)),
            ],
        }
    }
}

/// The result of one validation that did not pass.
struct Decision {
    message: String,
    reason: Option<String>,
}

/// Evaluates a policy's match conditions and validations under one activation; the
/// refusals (including evaluation errors under `failurePolicy: Fail`).
fn evaluate(policy: &Policy, activation: &Activation) -> Vec<Decision> {
    let ignore = policy.failure_policy == "Ignore";
    let mut scope = Scope {
        policy,
        activation,
        variables: HashMap::new(),
    };
    let mut errors: Vec<String> = Vec::new();
    for condition in &policy.match_conditions {
        match scope.eval(condition) {
            Ok(CelValue::Bool(false)) => return Vec::new(),
            Ok(_) => {}
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        if ignore {
            return Vec::new();
        }
        let message = if errors.len() == 1 {
            errors.remove(0)
        } else {
            format!("[{}]", errors.join(", "))
        };
        return vec![Decision {
            message,
            reason: None,
        }];
    }
    let mut decisions = Vec::new();
    for validation in &policy.validations {
        match scope.eval(&validation.expression) {
            Ok(CelValue::Bool(true)) => {}
            Ok(_) => {
                let from_expression = validation
                    .message_expression
                    .as_ref()
                    .and_then(|m| match scope.eval(m) {
                        Ok(CelValue::String(s)) => Some(s.trim().to_owned()),
                        _ => None,
                    })
                    .filter(|m| m.len() <= MAX_MESSAGE_EXPRESSION_BYTES && !m.contains('\n'))
                    .filter(|m| !m.is_empty());
                let message = from_expression
                    .or_else(|| {
                        let message = validation.message.trim();
                        (!message.is_empty()).then(|| message.to_owned())
                    })
                    .unwrap_or_else(|| {
                        format!("failed expression: {}", validation.expression.source.trim())
                    });
                decisions.push(Decision {
                    message,
                    reason: Some(
                        validation
                            .reason
                            .clone()
                            .unwrap_or_else(|| "Invalid".to_owned()),
                    ),
                });
            }
            Err(e) => {
                if !ignore {
                    decisions.push(Decision {
                        message: e,
                        reason: None,
                    });
                }
            }
        }
    }
    decisions
}

/// One evaluation's variables, computed on first use.
struct Scope<'a> {
    policy: &'a Policy,
    activation: &'a Activation,
    variables: HashMap<usize, Result<CelValue, String>>,
}

impl Scope<'_> {
    /// Evaluates `compiled`, which may use the variables before index `visible`.
    fn eval_with(&mut self, compiled: &Compiled, visible: usize) -> Result<CelValue, String> {
        let program = compiled
            .program
            .as_ref()
            .map_err(|e| format!("compilation error: {e}"))?;
        // the variables used, with the ones they use in turn (a variable only sees
        // those declared before it, so following them ends)
        let declared = &self.policy.variables[..visible.min(self.policy.variables.len())];
        let mut needed: BTreeSet<usize> = BTreeSet::new();
        let mut pending: Vec<usize> = declared
            .iter()
            .enumerate()
            .filter(|(_, (name, _))| compiled.all_variables || compiled.variables.contains(name))
            .map(|(i, _)| i)
            .collect();
        while let Some(i) = pending.pop() {
            if !needed.insert(i) {
                continue;
            }
            let Some((_, variable)) = self.policy.variables.get(i) else {
                continue;
            };
            for (j, (name, _)) in self.policy.variables[..i].iter().enumerate() {
                if variable.all_variables || variable.variables.contains(name) {
                    pending.push(j);
                }
            }
        }
        let mut values: HashMap<Key, CelValue> = HashMap::new();
        for i in needed {
            // ascending order: what a variable uses is computed before it
            let value = match self.variables.get(&i) {
                Some(value) => value.clone(),
                None => {
                    let policy = self.policy;
                    let value = match policy.variables.get(i) {
                        Some((_, variable)) => self.eval_with(variable, i),
                        None => Ok(CelValue::Null),
                    };
                    self.variables.insert(i, value.clone());
                    value
                }
            };
            let value = value?;
            if let Some((name, _)) = self.policy.variables.get(i) {
                values.insert(Key::String(Arc::new(name.clone())), value);
            }
        }
        let mut context = CelContext::default();
        for (name, value) in &self.activation.base {
            context.add_variable_from_value(*name, value.clone());
        }
        context.add_variable_from_value(
            "variables",
            CelValue::Map(CelMap {
                map: Arc::new(values),
            }),
        );
        let result =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| program.execute(&context)));
        match result {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(format!(
                "expression '{}' resulted in error: {}",
                compiled.source,
                go_error(&e)
            )),
            Err(_) => Err(format!(
                "expression '{}' resulted in error: internal error",
                compiled.source
            )),
        }
    }

    /// Evaluates an expression that sees every variable.
    fn eval(&mut self, compiled: &Compiled) -> Result<CelValue, String> {
        self.eval_with(compiled, self.policy.variables.len())
    }
}

/// An evaluation error in cel-go's words where they differ.
pub(crate) fn go_error(e: &ExecutionError) -> String {
    match e {
        ExecutionError::NoSuchKey(key) => format!("no such key: {key}"),
        ExecutionError::UndeclaredReference(name) => {
            format!("undeclared reference to '{name}' (in container '')")
        }
        ExecutionError::NoSuchOverload => "no such overload".to_owned(),
        ExecutionError::DivisionByZero(_) => "division by zero".to_owned(),
        ExecutionError::RemainderByZero(_) => "modulus by zero".to_owned(),
        ExecutionError::Overflow(..) => "integer overflow".to_owned(),
        ExecutionError::IndexOutOfBounds(_) => "index out of range".to_owned(),
        other => other.to_string(),
    }
}

/// A JSON value as a CEL value (integers as `int`, or `uint` beyond its range).
pub(crate) fn to_cel(value: &Value) -> CelValue {
    match value {
        Value::Null => CelValue::Null,
        Value::Bool(b) => CelValue::Bool(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                CelValue::Int(i)
            } else if let Some(u) = n.as_u64() {
                CelValue::UInt(u)
            } else {
                CelValue::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::String(s) => CelValue::String(Arc::new(s.clone())),
        Value::Array(list) => CelValue::List(Arc::new(list.iter().map(to_cel).collect())),
        Value::Object(map) => CelValue::Map(CelMap {
            map: Arc::new(
                map.iter()
                    .map(|(k, v)| (Key::String(Arc::new(k.clone())), to_cel(v)))
                    .collect(),
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::UserInfo;
    use crate::registry::validation::tester;

    fn deployments() -> &'static ResourceInfo {
        tester::resource("apps", "v1", "deployments")
    }

    fn deployment(replicas: i64, labels: Value) -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "labels": labels},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "nginx"}]},
                },
            },
        })
    }

    fn attributes<'a>(user: &'a UserInfo, old: Option<&'a Value>) -> Attributes<'a> {
        Attributes {
            operation: if old.is_some() {
                Operation::Update
            } else {
                Operation::Create
            },
            resource: deployments(),
            subresource: "",
            namespace: "default",
            name: "web",
            old,
            user,
            dry_run: false,
        }
    }

    fn deployment_rules() -> Value {
        json!({"resourceRules": [{
            "apiGroups": ["apps"], "apiVersions": ["v1"],
            "operations": ["CREATE", "UPDATE"], "resources": ["deployments"],
        }]})
    }

    /// Creates a policy (spec fields merged over deployment rules) and a binding,
    /// and waits until the plugin has them.
    async fn install(
        registry: &Registry,
        plugin: &ValidatingPolicies,
        name: &str,
        spec: Value,
        binding_spec: Value,
    ) {
        let mut policy_spec = json!({"matchConstraints": deployment_rules()});
        if let (Some(target), Some(extra)) = (policy_spec.as_object_mut(), spec.as_object()) {
            for (k, v) in extra {
                target.insert(k.clone(), v.clone());
            }
        }
        let policy = json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": name},
            "spec": policy_spec,
        });
        let mut spec = json!({"policyName": name, "validationActions": ["Deny"]});
        if let (Some(target), Some(extra)) = (spec.as_object_mut(), binding_spec.as_object()) {
            for (k, v) in extra {
                target.insert(k.clone(), v.clone());
            }
        }
        let binding = json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": format!("{name}-binding")},
            "spec": spec,
        });
        let policies = tester::resource(GROUP, "v1", "validatingadmissionpolicies");
        let bindings = tester::resource(GROUP, "v1", "validatingadmissionpolicybindings");
        registry
            .create(policies, None, policy, false)
            .await
            .unwrap_or_else(|e| panic!("policy {name}: {e:?}"));
        registry
            .create(bindings, None, binding, false)
            .await
            .unwrap_or_else(|e| panic!("binding {name}: {e:?}"));
        for _ in 0..200 {
            let informers = plugin.informers.as_ref().expect("informers");
            if informers.policies.get("", name).is_some()
                && informers
                    .bindings
                    .get("", &format!("{name}-binding"))
                    .is_some()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the informers never saw {name}");
    }

    async fn setup() -> (Registry, ValidatingPolicies) {
        let registry = tester::registry().await;
        let plugin = ValidatingPolicies::new(&registry);
        (registry, plugin)
    }

    #[tokio::test]
    async fn a_failed_validation_denies_with_upstreams_message_and_422() {
        let (registry, plugin) = setup().await;
        install(
            &registry,
            &plugin,
            "max-replicas",
            json!({"validations": [{"expression": "object.spec.replicas <= 5"}]}),
            json!({}),
        )
        .await;
        let user = UserInfo::new("alice", &[]);
        let a = attributes(&user, None);
        let error = plugin
            .validate(&a, &deployment(6, json!({})))
            .await
            .expect_err("six replicas are refused");
        assert_eq!(
            error.to_string(),
            "deployments.apps \"web\" is forbidden: ValidatingAdmissionPolicy 'max-replicas' \
             with binding 'max-replicas-binding' denied request: failed expression: \
             object.spec.replicas <= 5"
        );
        assert_eq!(error.status().code, 422);
        assert_eq!(error.reason(), StatusReason::Invalid);
        let causes = &error.status().details.as_ref().expect("details").causes;
        assert_eq!(causes.len(), 1);
        assert!(
            causes[0]
                .message
                .starts_with("ValidatingAdmissionPolicy 'max-replicas'")
        );
        plugin
            .validate(&a, &deployment(3, json!({})))
            .await
            .expect("three replicas pass");
    }

    #[tokio::test]
    async fn messages_and_reasons_come_from_the_validation() {
        let (registry, plugin) = setup().await;
        install(
            &registry,
            &plugin,
            "labelled",
            json!({"validations": [
                {"expression": "has(object.metadata.labels) && 'team' in object.metadata.labels",
                 "message": "a team label is required", "reason": "Forbidden"},
                {"expression": "object.spec.replicas < 10",
                 "messageExpression": "'too many replicas: ' + string(object.spec.replicas)"},
            ]}),
            json!({}),
        )
        .await;
        let user = UserInfo::new("alice", &[]);
        let a = attributes(&user, None);
        let error = plugin
            .validate(&a, &deployment(3, json!({})))
            .await
            .expect_err("no label");
        assert!(
            error
                .to_string()
                .ends_with("denied request: a team label is required"),
            "{error}"
        );
        assert_eq!(error.status().code, 403);
        assert_eq!(error.reason(), StatusReason::Forbidden);
        let error = plugin
            .validate(&a, &deployment(12, json!({"team": "a"})))
            .await
            .expect_err("too many");
        assert!(
            error
                .to_string()
                .ends_with("denied request: too many replicas: 12"),
            "{error}"
        );
        assert_eq!(error.status().code, 422);
        plugin
            .validate(&a, &deployment(2, json!({"team": "a"})))
            .await
            .expect("labelled and small");
    }

    #[tokio::test]
    async fn warn_bindings_warn_instead_of_refusing() {
        let (registry, plugin) = setup().await;
        install(
            &registry,
            &plugin,
            "warn-only",
            json!({"validations": [{"expression": "object.spec.replicas <= 5",
                                    "message": "at most five"}]}),
            json!({"validationActions": ["Warn", "Audit"]}),
        )
        .await;
        let user = UserInfo::new("alice", &[]);
        let warnings = crate::auth::filter::run_as(
            user.clone(),
            crate::auth::request_info::RequestInfo::default(),
            async {
                plugin
                    .validate(&attributes(&user, None), &deployment(6, json!({})))
                    .await
                    .expect("a warning is no refusal");
                crate::auth::filter::current_request()
                    .map(|r| r.warnings.lock().map(|w| w.clone()).unwrap_or_default())
                    .unwrap_or_default()
            },
        )
        .await;
        assert_eq!(
            warnings,
            vec![
                "Validation failed for ValidatingAdmissionPolicy 'warn-only' with binding \
                 'warn-only-binding': at most five"
                    .to_owned()
            ]
        );
    }

    #[tokio::test]
    async fn params_come_from_a_config_map() {
        let (registry, plugin) = setup().await;
        let config_maps = tester::resource("", "v1", "configmaps");
        registry
            .create(
                config_maps,
                Some("default"),
                json!({"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": "limits", "namespace": "default"},
                       "data": {"max": "4"}}),
                false,
            )
            .await
            .expect("config map");
        install(
            &registry,
            &plugin,
            "param-limit",
            json!({
                "paramKind": {"apiVersion": "v1", "kind": "ConfigMap"},
                "validations": [{"expression": "object.spec.replicas <= int(params.data.max)",
                                 "messageExpression": "'at most ' + params.data.max"}],
            }),
            json!({"paramRef": {"name": "limits", "parameterNotFoundAction": "Deny"}}),
        )
        .await;
        let user = UserInfo::new("alice", &[]);
        let a = attributes(&user, None);
        let error = plugin
            .validate(&a, &deployment(5, json!({})))
            .await
            .expect_err("over the param's limit");
        assert!(
            error.to_string().ends_with("denied request: at most 4"),
            "{error}"
        );
        plugin
            .validate(&a, &deployment(4, json!({})))
            .await
            .expect("within the limit");
    }

    #[tokio::test]
    async fn missing_params_follow_the_not_found_action_and_failure_policy() {
        let (registry, plugin) = setup().await;
        install(
            &registry,
            &plugin,
            "needs-params",
            json!({
                "paramKind": {"apiVersion": "v1", "kind": "ConfigMap"},
                "validations": [{"expression": "false"}],
            }),
            json!({"paramRef": {"name": "absent", "parameterNotFoundAction": "Deny"}}),
        )
        .await;
        let user = UserInfo::new("alice", &[]);
        let error = plugin
            .validate(&attributes(&user, None), &deployment(1, json!({})))
            .await
            .expect_err("params are required");
        assert_eq!(
            error.to_string(),
            "deployments.apps \"web\" is forbidden: ValidatingAdmissionPolicy 'needs-params' \
             with binding 'needs-params-binding' denied request: failed to configure binding: \
             no params found for policy binding with `Deny` parameterNotFoundAction"
        );
        assert_eq!(error.status().code, 422);
        // with parameterNotFoundAction Allow the binding is skipped
        let (registry, plugin) = setup().await;
        install(
            &registry,
            &plugin,
            "optional-params",
            json!({
                "paramKind": {"apiVersion": "v1", "kind": "ConfigMap"},
                "validations": [{"expression": "false"}],
            }),
            json!({"paramRef": {"name": "absent", "parameterNotFoundAction": "Allow"}}),
        )
        .await;
        plugin
            .validate(&attributes(&user, None), &deployment(1, json!({})))
            .await
            .expect("no params: nothing to validate");
    }

    #[tokio::test]
    async fn unknown_param_kinds_are_policy_configuration_errors() {
        let (registry, plugin) = setup().await;
        install(
            &registry,
            &plugin,
            "bad-kind",
            json!({
                "paramKind": {"apiVersion": "example.com/v1", "kind": "Missing"},
                "validations": [{"expression": "true"}],
            }),
            json!({"paramRef": {"name": "x"}}),
        )
        .await;
        let user = UserInfo::new("alice", &[]);
        let error = plugin
            .validate(&attributes(&user, None), &deployment(1, json!({})))
            .await
            .expect_err("the kind is unknown");
        assert!(
            error.to_string().ends_with(
                "ValidatingAdmissionPolicy 'bad-kind' denied request: failed to configure \
                 policy: failed to find resource referenced by paramKind: \
                 'example.com/v1, Kind=Missing'"
            ),
            "{error}"
        );
    }

    #[tokio::test]
    async fn false_match_conditions_skip_the_policy() {
        let (registry, plugin) = setup().await;
        install(
            &registry,
            &plugin,
            "only-prod",
            json!({
                "matchConditions": [{"name": "prod",
                    "expression": "has(object.metadata.labels) && 'env' in object.metadata.labels && object.metadata.labels.env == 'prod'"}],
                "validations": [{"expression": "object.spec.replicas >= 3"}],
            }),
            json!({}),
        )
        .await;
        let user = UserInfo::new("alice", &[]);
        let a = attributes(&user, None);
        plugin
            .validate(&a, &deployment(1, json!({"env": "dev"})))
            .await
            .expect("not prod: skipped");
        plugin
            .validate(&a, &deployment(1, json!({"env": "prod"})))
            .await
            .expect_err("prod needs three");
    }

    #[tokio::test]
    async fn runtime_errors_follow_the_failure_policy() {
        let (registry, plugin) = setup().await;
        install(
            &registry,
            &plugin,
            "strict",
            json!({"validations": [{"expression": "object.spec.missing > 1"}]}),
            json!({}),
        )
        .await;
        let user = UserInfo::new("alice", &[]);
        let a = attributes(&user, None);
        let error = plugin
            .validate(&a, &deployment(1, json!({})))
            .await
            .expect_err("fails closed");
        assert!(
            error.to_string().ends_with(
                "denied request: expression 'object.spec.missing > 1' resulted in error: \
                 no such key: missing"
            ),
            "{error}"
        );
        let (registry, plugin) = setup().await;
        install(
            &registry,
            &plugin,
            "lenient",
            json!({"failurePolicy": "Ignore",
                   "validations": [{"expression": "object.spec.missing > 1"}]}),
            json!({}),
        )
        .await;
        plugin
            .validate(&a, &deployment(1, json!({})))
            .await
            .expect("fails open");
    }

    #[tokio::test]
    async fn variables_request_and_selectors() {
        let (registry, plugin) = setup().await;
        install(
            &registry,
            &plugin,
            "vars",
            json!({
                "variables": [
                    {"name": "replicas", "expression": "object.spec.replicas"},
                    {"name": "doubled", "expression": "variables.replicas * 2"},
                    {"name": "broken", "expression": "object.nothing.here"},
                ],
                "validations": [
                    {"expression": "variables.doubled <= 8"},
                    {"expression": "request.userInfo.username != 'mallory' && request.operation == 'CREATE'",
                     "message": "no mallory"},
                ],
            }),
            json!({"matchResources": {"objectSelector": {"matchLabels": {"checked": "yes"}}}}),
        )
        .await;
        let user = UserInfo::new("alice", &[]);
        let a = attributes(&user, None);
        plugin
            .validate(&a, &deployment(9, json!({})))
            .await
            .expect("the binding's object selector does not match");
        plugin
            .validate(&a, &deployment(4, json!({"checked": "yes"})))
            .await
            .expect("doubled is 8; the broken variable is never evaluated");
        let error = plugin
            .validate(&a, &deployment(5, json!({"checked": "yes"})))
            .await
            .expect_err("doubled is 10");
        assert!(
            error
                .to_string()
                .ends_with("failed expression: variables.doubled <= 8"),
            "{error}"
        );
        let mallory = UserInfo::new("mallory", &[]);
        let error = plugin
            .validate(
                &attributes(&mallory, None),
                &deployment(1, json!({"checked": "yes"})),
            )
            .await
            .expect_err("mallory");
        assert!(
            error.to_string().ends_with("denied request: no mallory"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn namespace_selectors_excluded_rules_and_namespace_object() {
        let (registry, plugin) = setup().await;
        let namespaces = tester::resource("", "v1", "namespaces");
        registry
            .create(
                namespaces,
                None,
                json!({"apiVersion": "v1", "kind": "Namespace",
                       "metadata": {"name": "prod", "labels": {"env": "prod"}}}),
                false,
            )
            .await
            .expect("namespace");
        let mut constraints = deployment_rules();
        constraints["namespaceSelector"] = json!({"matchLabels": {"env": "prod"}});
        constraints["excludeResourceRules"] = json!([{
            "apiGroups": ["apps"], "apiVersions": ["*"], "operations": ["*"],
            "resources": ["deployments"], "resourceNames": ["exempt"],
        }]);
        install(
            &registry,
            &plugin,
            "prod-only",
            json!({
                "matchConstraints": constraints,
                "validations": [{"expression": "namespaceObject.metadata.labels.env != 'prod'",
                                 "messageExpression": "'not in ' + namespaceObject.metadata.name"}],
            }),
            json!({}),
        )
        .await;
        let user = UserInfo::new("alice", &[]);
        plugin
            .validate(&attributes(&user, None), &deployment(1, json!({})))
            .await
            .expect("default is not selected");
        let mut a = attributes(&user, None);
        a.namespace = "prod";
        let error = plugin
            .validate(&a, &deployment(1, json!({})))
            .await
            .expect_err("prod is selected");
        assert!(
            error.to_string().ends_with("denied request: not in prod"),
            "{error}"
        );
        a.name = "exempt";
        plugin
            .validate(&a, &deployment(1, json!({})))
            .await
            .expect("excluded by name");
    }

    #[test]
    fn bad_expressions_do_not_compile_and_do_not_panic() {
        let compiled = Compiled::new("object.spec.replicas <=");
        assert!(compiled.program.is_err());
        let compiled = Compiled::new("variables.a + variables['b'] + size(variables)");
        assert!(compiled.all_variables);
        assert!(compiled.variables.contains("a") && compiled.variables.contains("b"));
    }
}
