//! The dynamic admission webhooks, upstream's `MutatingAdmissionWebhook` and
//! `ValidatingAdmissionWebhook` plugins.
//!
//! Both plugins follow their configuration objects (`mutatingwebhookconfigurations` /
//! `validatingwebhookconfigurations`, admissionregistration.k8s.io/v1) and the
//! namespaces through informers. For every write they pick the webhooks that apply:
//!
//! - the rules (operations, API groups, versions, resources with `*`, `*/*`,
//!   `pods/*`, `*/status` forms, and the scope `Cluster` / `Namespaced` / `*`);
//!   with `matchPolicy: Equivalent` (the default) a rule naming another served
//!   version of the same resource also matches;
//! - the `namespaceSelector` against the labels of the object's namespace (of the
//!   Namespace itself when one is created or updated; cluster-scoped objects are
//!   never exempted);
//! - the `objectSelector` against the labels of the new or the old object.
//!
//! A matching webhook is sent an `AdmissionReview` (admission.k8s.io/v1, or v1beta1
//! when that is the first version it lists) over HTTPS, to its `url` or to its
//! Service's cluster IP with the TLS server name `<service>.<namespace>.svc`, checked
//! against its `caBundle`, within its `timeoutSeconds` (10 by default). A refusal is
//! answered with the webhook's status (`admission webhook "<name>" denied the
//! request: <message>`); a call that fails is a 500 `failed calling webhook "<name>"`
//! under `failurePolicy: Fail` (the default) and is passed over under `Ignore`.
//! Mutating webhooks run one after the other in the mutating phase, each seeing the
//! object as the previous ones patched it (JSON patches); validating webhooks run
//! concurrently in the validating phase. Dry runs only reach webhooks declaring
//! `sideEffects: None` or `NoneOnDryRun`.
//!
//! `matchConditions` (CEL over `object`, `oldObject` and `request`) decide whether a
//! matching webhook is called; an expression that cannot be evaluated counts as a
//! failure to call it, for its failure policy (`authorizer` is not offered yet).
//!
//! Writes of the admission configuration objects themselves are never sent to
//! webhooks, so that a broken webhook cannot lock its own configuration. Not done:
//! `reinvocationPolicy: IfNeeded` does not reinvoke.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use apimachinery::errors::{Status, StatusError};
use apimachinery::labels::{Labels, Selector};
use apimachinery::patch::{PatchType, apply_patch};
use apimachinery::resources::{self, GroupKind, GroupResource, ResourceInfo};
use axum::body::Body;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hyper_util::rt::TokioIo;
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use tokio_rustls::TlsConnector;

use super::rules::{Rule, object_selected, selector, strings};
use super::{Attributes, Operation, Plugin};
use crate::auth::filter::add_warning;
use crate::registry::informer::Informer;
use crate::registry::{Registry, meta};

/// How long a request waits for the informers' first lists (upstream's `WaitForReady`).
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// The webhook timeout when the configuration names none (the API default).
const DEFAULT_TIMEOUT_SECONDS: u64 = 10;

/// The largest webhook answer read.
const MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;

/// One of the two webhook plugins.
pub struct Webhooks {
    mutating: bool,
    registry: Registry,
    configurations: Arc<Informer>,
    namespaces: Arc<Informer>,
    /// The parsed webhooks and the informer generation they were parsed at.
    parsed: Mutex<Option<(u64, Arc<Vec<Hook>>)>>,
}

impl Webhooks {
    /// `MutatingAdmissionWebhook`, following the MutatingWebhookConfigurations.
    pub fn mutating(registry: &Registry) -> Self {
        Self::new(registry, true)
    }

    /// `ValidatingAdmissionWebhook`, following the ValidatingWebhookConfigurations.
    pub fn validating(registry: &Registry) -> Self {
        Self::new(registry, false)
    }

    fn new(registry: &Registry, mutating: bool) -> Self {
        let plural = if mutating {
            "mutatingwebhookconfigurations"
        } else {
            "validatingwebhookconfigurations"
        };
        let configurations =
            resources::find("admissionregistration.k8s.io", "v1", plural).expect("served resource");
        let namespaces = resources::find("", "v1", "namespaces").expect("served resource");
        Webhooks {
            mutating,
            registry: registry.clone(),
            configurations: Informer::start(registry.clone(), configurations),
            namespaces: Informer::start(registry.clone(), namespaces),
            parsed: Mutex::new(None),
        }
    }

    /// The webhooks of every configuration, configurations ordered by name.
    fn hooks(&self) -> Arc<Vec<Hook>> {
        let generation = self.configurations.generation();
        let mut parsed = self.parsed.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, hooks)) = parsed.as_ref()
            && *at == generation
        {
            return hooks.clone();
        }
        let mut configurations = self.configurations.list();
        configurations.sort_by(|a, b| meta::name(a).cmp(meta::name(b)));
        let hooks: Vec<Hook> = configurations
            .iter()
            .filter_map(|c| c["webhooks"].as_array())
            .flat_map(|list| list.iter().map(Hook::parse))
            .collect();
        let hooks = Arc::new(hooks);
        *parsed = Some((generation, hooks.clone()));
        hooks
    }

    /// The configured webhooks, `None` when there are none (the write then passes at
    /// once). Waits for the informers' first lists; a 403 when they do not come, as
    /// upstream's `WaitForReady`.
    async fn ready_hooks(&self, a: &Attributes<'_>) -> Result<Option<Arc<Vec<Hook>>>, StatusError> {
        if !self.configurations.wait_synced(READY_TIMEOUT).await {
            return Err(a.forbidden("not yet ready to handle request"));
        }
        let hooks = self.hooks();
        if hooks.is_empty() {
            return Ok(None);
        }
        if !self.namespaces.wait_synced(READY_TIMEOUT).await {
            return Err(a.forbidden("not yet ready to handle request"));
        }
        Ok(Some(hooks))
    }

    /// The labels of the namespace the write is in (of the Namespace itself when one
    /// is created or updated).
    async fn namespace_labels(
        &self,
        a: &Attributes<'_>,
        request: &Request<'_>,
    ) -> Result<Labels, StatusError> {
        if is_namespace(a.resource)
            && a.subresource.is_empty()
            && matches!(a.operation, Operation::Create | Operation::Update)
        {
            return Ok(request.object.map(meta::labels).unwrap_or_default());
        }
        let name = request.namespace_for_matching;
        if let Some(namespace) = self.namespaces.get("", name) {
            return Ok(meta::labels(&namespace));
        }
        // the informer may lag behind the store: ask the store before saying not found
        let resource = resources::find("", "v1", "namespaces")
            .ok_or_else(|| StatusError::internal_error("namespaces are not served"))?;
        let namespace = self.registry.get(resource, None, name).await?;
        Ok(meta::labels(&namespace))
    }

    /// Whether `hook` applies to the write: `None` when it does not, the resource and
    /// kind to report when it does, or the error deciding gave.
    async fn should_call(
        &self,
        hook: &Hook,
        a: &Attributes<'_>,
        request: &Request<'_>,
    ) -> Result<Option<Invocation>, StatusError> {
        // the namespace selector (cluster-scoped objects other than namespaces are
        // never exempted)
        let namespace_match: Result<bool, StatusError> =
            if request.namespace_for_matching.is_empty() && !is_namespace(a.resource) {
                Ok(true)
            } else {
                match &hook.namespace_selector {
                    Err(e) => Err(StatusError::internal_error(e)),
                    Ok(selector) if selector.is_empty() => Ok(true),
                    Ok(selector) => self
                        .namespace_labels(a, request)
                        .await
                        .map(|labels| selector.matches(&labels)),
                }
            };
        if matches!(namespace_match, Ok(false)) {
            return Ok(None);
        }
        let object_match: Result<bool, StatusError> = match &hook.object_selector {
            Err(e) => Err(StatusError::internal_error(e)),
            Ok(selector) => Ok(object_selected(selector, request.object, a.old)),
        };
        if matches!(object_match, Ok(false)) {
            return Ok(None);
        }
        let Some(invocation) = hook.matching_rule(a, request) else {
            return Ok(None);
        };
        namespace_match?;
        object_match?;
        // matchConditions (CEL): all true calls the webhook, one false skips it, and
        // an error (with none false) is a failure to call, for the failure policy
        if !hook.match_conditions.is_empty() {
            let review = admission_review("v1", "", &invocation, a, request);
            match match_conditions(&hook.match_conditions, request, a.old, &review["request"]) {
                Ok(true) => {}
                Ok(false) => return Ok(None),
                Err(e) => {
                    let failure =
                        CallError::Calling(format!("failed to evaluate match condition: {e}"));
                    return match failure.into_status(hook) {
                        Some(e) => Err(e),
                        None => Ok(None),
                    };
                }
            }
        }
        Ok(Some(invocation))
    }

    /// Calls one webhook, in the way both plugins share: the dry-run check, the
    /// review, the call, the response checks and warnings. Refusals come back as
    /// [`CallError::Rejected`]; for mutating webhooks the verified patch is returned.
    async fn call(
        &self,
        hook: &Hook,
        invocation: &Invocation,
        a: &Attributes<'_>,
        request: &Request<'_>,
    ) -> Result<Option<Vec<u8>>, CallError> {
        if a.dry_run {
            match hook.side_effects.as_deref() {
                None => return Err(CallError::Calling("Webhook SideEffects is nil".to_owned())),
                Some("None" | "NoneOnDryRun") => {}
                Some(_) => {
                    return Err(CallError::Other(StatusError::bad_request(format!(
                        "admission webhook {:?} does not support dry run",
                        hook.name
                    ))));
                }
            }
        }
        let Some(review_version) = hook.review_version() else {
            return Err(CallError::Calling(
                "could not create admission objects: webhook does not accept known AdmissionReview versions (v1, v1beta1)"
                    .to_owned(),
            ));
        };
        let uid = uuid::Uuid::new_v4().to_string();
        let review = admission_review(review_version, &uid, invocation, a, request);
        let body = serde_json::to_vec(&review)
            .map_err(|e| CallError::Calling(format!("could not create admission objects: {e}")))?;
        let target = self
            .target(hook)
            .await
            .map_err(|e| CallError::Calling(format!("could not get REST client: {e}")))?;
        let response = post(&target, hook.timeout, body)
            .await
            .map_err(|e| CallError::Calling(format!("failed to call webhook: {e}")))?;
        let verified = verify_response(&response, review_version, &uid, self.mutating)
            .map_err(|e| CallError::Calling(format!("received invalid webhook response: {e}")))?;
        for warning in &verified.warnings {
            add_warning(warning.clone());
        }
        if !verified.allowed {
            return Err(CallError::Rejected(denied(
                &hook.name,
                verified.result,
                &verified.reason,
            )));
        }
        Ok(verified.patch)
    }

    /// Where a webhook is reached.
    async fn target(&self, hook: &Hook) -> Result<Target, String> {
        target_of(&self.registry, hook).await
    }
}

/// Where a webhook is reached.
async fn target_of(registry: &Registry, hook: &Hook) -> Result<Target, String> {
    let ca = match &hook.ca_bundle {
        None => None,
        Some(Ok(pem)) => Some(pem.clone()),
        Some(Err(e)) => return Err(e.clone()),
    };
    match &hook.endpoint {
        Endpoint::Missing => {
            Err("webhook configuration must have either service or URL".to_owned())
        }
        Endpoint::Url(url) => Target::from_url(url, ca),
        Endpoint::Service {
            namespace,
            name,
            path,
            port,
        } => {
            let address = resolve_service(registry, namespace, name, *port).await?;
            let host = if address.contains(':') {
                format!("[{address}]")
            } else {
                address.clone()
            };
            let path = path.clone().unwrap_or_default();
            Ok(Target {
                connect_host: address,
                port: *port,
                server_name: format!("{name}.{namespace}.svc"),
                path,
                display: format!("https://{host}:{port}"),
                ca,
            })
        }
    }
}

/// The address of a Service: its cluster IP (or external name), as kube-apiserver
/// routes webhook calls.
async fn resolve_service(
    registry: &Registry,
    namespace: &str,
    name: &str,
    port: u16,
) -> Result<String, String> {
    let resource = resources::find("", "v1", "services")
        .ok_or_else(|| "services are not served".to_owned())?;
    let service = registry
        .get(resource, Some(namespace), name)
        .await
        .map_err(|e| e.to_string())?;
    let spec = &service["spec"];
    let kind = spec["type"].as_str().unwrap_or("ClusterIP");
    let cluster_ip = spec["clusterIP"].as_str().unwrap_or("");
    match kind {
        "ClusterIP" if cluster_ip == "None" => {
            Err(r#"cannot route to service with ClusterIP "None""#.to_owned())
        }
        "ClusterIP" | "LoadBalancer" | "NodePort" => {
            let has_port = spec["ports"].as_array().is_some_and(|ports| {
                ports
                    .iter()
                    .any(|p| p["port"].as_u64() == Some(u64::from(port)))
            });
            if !has_port {
                return Err(format!("no service port {port} found for service {name:?}"));
            }
            if cluster_ip.is_empty() {
                return Err(format!("service {name:?} has no cluster IP"));
            }
            Ok(cluster_ip.to_owned())
        }
        "ExternalName" => Ok(spec["externalName"].as_str().unwrap_or("").to_owned()),
        other => Err(format!("unsupported service type {other:?}")),
    }
}

#[async_trait::async_trait]
impl Plugin for Webhooks {
    fn name(&self) -> &'static str {
        if self.mutating {
            "MutatingAdmissionWebhook"
        } else {
            "ValidatingAdmissionWebhook"
        }
    }

    async fn mutate(&self, a: &Attributes<'_>, object: &mut Value) -> Result<(), StatusError> {
        if !self.mutating || is_exempt(a, Some(object)) {
            return Ok(());
        }
        let Some(hooks) = self.ready_hooks(a).await? else {
            return Ok(());
        };
        for hook in hooks.iter() {
            // each webhook sees the object as the ones before it left it
            let snapshot = object.clone();
            let request = Request::new(a, &snapshot);
            let Some(invocation) = self.should_call(hook, a, &request).await? else {
                continue;
            };
            let patch = match self.call(hook, &invocation, a, &request).await {
                Ok(patch) => patch,
                Err(e) => match e.into_status(hook) {
                    Some(e) => return Err(e),
                    None => continue,
                },
            };
            let Some(patch) = patch else { continue };
            match decode_patch(&patch) {
                Err(e) => {
                    let e = CallError::Calling(format!(
                        "received undecodable patch in webhook response: {e}"
                    ));
                    match e.into_status(hook) {
                        Some(e) => return Err(e),
                        None => continue,
                    }
                }
                Ok(0) => continue,
                Ok(_) => {}
            }
            if request.object.is_none() {
                return Err(StatusError::internal_error(format!(
                    "admission webhook {:?} attempted to modify the object, which is not supported for this operation",
                    hook.name
                )));
            }
            let kind = GroupKind::new(invocation.kind.0.clone(), invocation.kind.2.clone());
            let patched = apply_patch(PatchType::Json, object, &patch, &kind)
                .map_err(StatusError::internal_error)?;
            *object = patched;
        }
        Ok(())
    }

    async fn validate(&self, a: &Attributes<'_>, object: &Value) -> Result<(), StatusError> {
        if self.mutating || is_exempt(a, Some(object)) {
            return Ok(());
        }
        let Some(hooks) = self.ready_hooks(a).await? else {
            return Ok(());
        };
        let request = Request::new(a, object);
        // which webhooks apply is decided first (an error there ends the request)...
        let mut invocations = Vec::new();
        for hook in hooks.iter() {
            if let Some(invocation) = self.should_call(hook, a, &request).await? {
                invocations.push((hook, invocation));
            }
        }
        // ...then they are all called at once; the first refusal in order answers
        let request = &request;
        let calls = invocations.iter().map(|(hook, invocation)| async move {
            self.call(hook, invocation, a, request)
                .await
                .map_err(|e| e.into_status(hook))
        });
        for result in futures::future::join_all(calls).await {
            if let Err(Some(e)) = result {
                return Err(e);
            }
        }
        Ok(())
    }
}

/// Why a webhook call did not allow the write.
enum CallError {
    /// The webhook could not be called or answered wrongly (upstream's
    /// `ErrCallingWebhook`): the failure policy decides.
    Calling(String),
    /// The webhook refused.
    Rejected(StatusError),
    /// Any other error, returned as it is.
    Other(StatusError),
}

impl CallError {
    /// The error to answer with; `None` when the failure policy ignores it.
    fn into_status(self, hook: &Hook) -> Option<StatusError> {
        match self {
            CallError::Calling(reason) => {
                let text = format!("failed calling webhook {:?}: {reason}", hook.name);
                if hook.ignore_failures {
                    tracing::warn!(webhook = %hook.name, error = %text, "failed calling webhook, failing open");
                    None
                } else {
                    tracing::warn!(webhook = %hook.name, error = %text, "failed calling webhook, failing closed");
                    Some(StatusError::internal_error(text))
                }
            }
            CallError::Rejected(e) | CallError::Other(e) => Some(e),
        }
    }
}

/// The refusal a webhook answered, as upstream's `ToStatusErr`: at least a 400, a
/// `Failure`, the message prefixed with `admission webhook "<name>" denied the request`.
fn denied(name: &str, result: Option<Status>, reason: &str) -> StatusError {
    let mut status = result.unwrap_or_default();
    if status.kind.is_empty() {
        status.kind = "Status".to_owned();
    }
    if status.api_version.is_empty() {
        status.api_version = "v1".to_owned();
    }
    if status.code < 400 {
        status.code = 400;
    }
    if status.status.is_empty() || status.status == "Success" {
        status.status = "Failure".to_owned();
    }
    let denied_by = format!("admission webhook {name:?} denied the request");
    status.message = if !status.message.is_empty() {
        format!("{denied_by}: {}", status.message)
    } else if !reason.is_empty() {
        format!("{denied_by}: {reason}")
    } else {
        format!("{denied_by} without explanation")
    };
    StatusError(status)
}

/// Writes of these kinds never reach webhooks (upstream's
/// `IsExemptAdmissionConfigurationResource`).
fn is_exempt(a: &Attributes<'_>, object: Option<&Value>) -> bool {
    let (group, _, kind) = request_kind(a, object);
    group == "admissionregistration.k8s.io"
        && matches!(
            kind.as_str(),
            "ValidatingWebhookConfiguration"
                | "MutatingWebhookConfiguration"
                | "ValidatingAdmissionPolicy"
                | "ValidatingAdmissionPolicyBinding"
                | "MutatingAdmissionPolicy"
                | "MutatingAdmissionPolicyBinding"
        )
}

fn is_namespace(resource: &ResourceInfo) -> bool {
    resource.group.is_empty() && resource.plural == "namespaces"
}

/// The kind of the write (group, version, kind): the subresource's kind when it has
/// its own, else the resource's.
fn request_kind(a: &Attributes<'_>, object: Option<&Value>) -> (String, String, String) {
    if !a.subresource.is_empty()
        && let Some(sub) = a.resource.subresource(a.subresource)
    {
        let (group, version) = sub
            .kind_group_version
            .unwrap_or((a.resource.group, a.resource.version));
        // the registry admits the parent object for subresources such as status; name
        // the kind of what is actually sent
        let object_kind = object.and_then(|o| o["kind"].as_str()).unwrap_or(sub.kind);
        if object_kind == sub.kind {
            return (group.to_owned(), version.to_owned(), sub.kind.to_owned());
        }
    }
    (
        a.resource.group.to_owned(),
        a.resource.version.to_owned(),
        a.resource.kind.to_owned(),
    )
}

/// What one webhook call is about.
struct Request<'a> {
    /// The object sent (`None` for deletes).
    object: Option<&'a Value>,
    /// The namespace as upstream's attributes carry it: the Namespace's own name for
    /// namespace writes other than creates.
    namespace_for_matching: &'a str,
    /// The namespace reported in the review.
    namespace: &'a str,
}

impl<'a> Request<'a> {
    fn new(a: &'a Attributes<'a>, object: &'a Value) -> Self {
        let object = (a.operation != Operation::Delete).then_some(object);
        let namespace = if is_namespace(a.resource) && a.operation != Operation::Create {
            a.name
        } else {
            a.namespace
        };
        let namespace_for_matching = if is_namespace(a.resource) {
            a.name
        } else {
            a.namespace
        };
        Request {
            object,
            namespace_for_matching,
            namespace,
        }
    }
}

/// The resource and kind a matching webhook is told about.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Invocation {
    /// group, version, resource
    resource: (String, String, String),
    /// group, version, kind
    kind: (String, String, String),
}

/// Where a webhook lives.
#[derive(Clone, Debug)]
enum Endpoint {
    Url(String),
    Service {
        namespace: String,
        name: String,
        path: Option<String>,
        port: u16,
    },
    Missing,
}

/// One webhook of a configuration, parsed.
struct Hook {
    name: String,
    endpoint: Endpoint,
    /// The PEM CA bundle, or why it could not be read.
    ca_bundle: Option<Result<Vec<u8>, String>>,
    rules: Vec<Rule>,
    ignore_failures: bool,
    equivalent: bool,
    namespace_selector: Result<Selector, String>,
    object_selector: Result<Selector, String>,
    side_effects: Option<String>,
    timeout: Duration,
    review_versions: Vec<String>,
    /// `matchConditions`: (name, CEL expression).
    match_conditions: Vec<(String, String)>,
}

/// Evaluates a webhook's match conditions with `object`, `oldObject` and `request`:
/// whether all hold; the errors of those that could not be evaluated (when none was
/// false).
fn match_conditions(
    conditions: &[(String, String)],
    request: &Request<'_>,
    old: Option<&Value>,
    admission_request: &Value,
) -> Result<bool, String> {
    use crate::auth::admission::validating_policy::{go_error, to_cel};
    use cel::{Context as CelContext, Value as CelValue};
    let mut context = CelContext::default();
    context.add_variable_from_value("object", request.object.map_or(CelValue::Null, to_cel));
    context.add_variable_from_value("oldObject", old.map_or(CelValue::Null, to_cel));
    context.add_variable_from_value("request", to_cel(admission_request));
    let mut errors = Vec::new();
    for (name, expression) in conditions {
        let compiled = crate::crd::cel_rules::compile(expression);
        let program = match compiled.as_ref() {
            Ok(program) => program,
            Err(e) => {
                errors.push(format!("{name}: {e}"));
                continue;
            }
        };
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| program.execute(&context)));
        match outcome {
            Ok(Ok(CelValue::Bool(false))) => return Ok(false),
            Ok(Ok(CelValue::Bool(true))) => {}
            Ok(Ok(_)) => errors.push(format!(
                "{name}: expression '{expression}' did not evaluate to a boolean"
            )),
            Ok(Err(e)) => errors.push(format!(
                "{name}: expression '{expression}' resulted in error: {}",
                go_error(&e)
            )),
            Err(_) => errors.push(format!("{name}: expression '{expression}' panicked")),
        }
    }
    match errors.len() {
        0 => Ok(true),
        1 => Err(errors.remove(0)),
        _ => Err(format!("[{}]", errors.join(", "))),
    }
}

impl Hook {
    fn parse(value: &Value) -> Self {
        let client = &value["clientConfig"];
        let endpoint = if let Some(url) = client["url"].as_str() {
            Endpoint::Url(url.to_owned())
        } else if client["service"].is_object() {
            let service = &client["service"];
            Endpoint::Service {
                namespace: service["namespace"].as_str().unwrap_or("").to_owned(),
                name: service["name"].as_str().unwrap_or("").to_owned(),
                path: service["path"].as_str().map(str::to_owned),
                port: service["port"]
                    .as_u64()
                    .and_then(|p| u16::try_from(p).ok())
                    .unwrap_or(443),
            }
        } else {
            Endpoint::Missing
        };
        let ca_bundle = client["caBundle"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(|b| {
                BASE64
                    .decode(b)
                    .map_err(|e| format!("unable to load root certificates: {e}"))
            });
        let timeout = value["timeoutSeconds"]
            .as_u64()
            .filter(|s| *s > 0)
            .unwrap_or(DEFAULT_TIMEOUT_SECONDS);
        Hook {
            name: value["name"].as_str().unwrap_or("").to_owned(),
            endpoint,
            ca_bundle,
            rules: value["rules"]
                .as_array()
                .map(|rules| rules.iter().map(Rule::parse).collect())
                .unwrap_or_default(),
            ignore_failures: value["failurePolicy"].as_str() == Some("Ignore"),
            equivalent: value["matchPolicy"].as_str() != Some("Exact"),
            namespace_selector: selector(&value["namespaceSelector"]),
            object_selector: selector(&value["objectSelector"]),
            side_effects: value["sideEffects"].as_str().map(str::to_owned),
            timeout: Duration::from_secs(timeout),
            review_versions: strings(&value["admissionReviewVersions"]),
            match_conditions: value["matchConditions"]
                .as_array()
                .map(|conditions| {
                    conditions
                        .iter()
                        .map(|c| {
                            (
                                c["name"].as_str().unwrap_or("").to_owned(),
                                c["expression"].as_str().unwrap_or("").to_owned(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// The AdmissionReview version to send: the first one listed that is known.
    fn review_version(&self) -> Option<&'static str> {
        self.review_versions.iter().find_map(|v| match v.as_str() {
            "v1" => Some("v1"),
            "v1beta1" => Some("v1beta1"),
            _ => None,
        })
    }

    /// The first rule matching the write, exactly or (with `matchPolicy: Equivalent`)
    /// through another served version of the same resource.
    fn matching_rule(&self, a: &Attributes<'_>, request: &Request<'_>) -> Option<Invocation> {
        let resource = a.resource;
        let exact = (resource.group, resource.version, resource.plural);
        let kind = request_kind(a, request.object);
        let invocation = |(group, version, plural): (&str, &str, &str),
                          kind: (String, String, String)| Invocation {
            resource: (group.to_owned(), version.to_owned(), plural.to_owned()),
            kind,
        };
        let namespace = request.namespace_for_matching;
        if self
            .rules
            .iter()
            .any(|r| r.matches(a.operation, exact, a.subresource, namespace))
        {
            return Some(invocation(exact, kind));
        }
        if !self.equivalent {
            return None;
        }
        let equivalents: Vec<&ResourceInfo> = resources::RESOURCES
            .iter()
            .filter(|r| {
                r.group == resource.group
                    && r.plural == resource.plural
                    && r.version != resource.version
            })
            .filter(|r| a.subresource.is_empty() || r.subresource(a.subresource).is_some())
            .collect();
        for rule in &self.rules {
            for other in &equivalents {
                if rule.matches(
                    a.operation,
                    (other.group, other.version, other.plural),
                    a.subresource,
                    namespace,
                ) {
                    // the object is not converted between versions here: the webhook
                    // is told the version it is actually sent
                    return Some(invocation(exact, kind));
                }
            }
        }
        None
    }
}

/// The AdmissionReview sent to a webhook.
fn admission_review(
    version: &str,
    uid: &str,
    invocation: &Invocation,
    a: &Attributes<'_>,
    request: &Request<'_>,
) -> Value {
    let (group, kind_version, kind) = &invocation.kind;
    let (resource_group, resource_version, resource) = &invocation.resource;
    let kind = json!({"group": group, "version": kind_version, "kind": kind});
    let resource =
        json!({"group": resource_group, "version": resource_version, "resource": resource});
    let options_kind = match a.operation {
        Operation::Create => "CreateOptions",
        Operation::Update => "UpdateOptions",
        Operation::Delete => "DeleteOptions",
    };
    let mut options = json!({"kind": options_kind, "apiVersion": "meta.k8s.io/v1"});
    if a.dry_run {
        options["dryRun"] = json!(["All"]);
    }
    let mut user = a.user.to_json();
    if user.get("extra").is_none() {
        user["extra"] = json!({});
    }
    let mut body = json!({
        "uid": uid,
        "kind": kind,
        "resource": resource,
        "requestKind": kind,
        "requestResource": resource,
        "name": a.name,
        "namespace": request.namespace,
        "operation": a.operation.as_str(),
        "userInfo": user,
        "object": request.object.cloned().unwrap_or(Value::Null),
        "oldObject": a.old.cloned().unwrap_or(Value::Null),
        "dryRun": a.dry_run,
        "options": options,
    });
    if !a.subresource.is_empty() {
        body["subResource"] = a.subresource.into();
        body["requestSubResource"] = a.subresource.into();
    }
    if a.name.is_empty() {
        if let Some(body) = body.as_object_mut() {
            body.remove("name");
        }
    }
    if request.namespace.is_empty() {
        if let Some(body) = body.as_object_mut() {
            body.remove("namespace");
        }
    }
    json!({
        "kind": "AdmissionReview",
        "apiVersion": format!("admission.k8s.io/{version}"),
        "request": body,
    })
}

/// What a webhook answered, checked.
struct Verified {
    allowed: bool,
    /// The JSON patch (mutating webhooks only).
    patch: Option<Vec<u8>>,
    result: Option<Status>,
    /// `status.reason` as sent (a reason [`apimachinery::errors::StatusReason`] does not know reads empty there).
    reason: String,
    warnings: Vec<String>,
}

/// Checks an AdmissionReview answer as upstream's `VerifyAdmissionResponse`.
fn verify_response(
    review: &Value,
    version: &str,
    uid: &str,
    mutating: bool,
) -> Result<Verified, String> {
    let response = match review.get("response") {
        Some(r) if r.is_object() => r,
        _ => return Err("webhook response was absent".to_owned()),
    };
    let v1 = version == "v1";
    if v1 {
        let got = response["uid"].as_str().unwrap_or("");
        if got != uid {
            return Err(format!("expected response.uid={uid:?}, got {got:?}"));
        }
        let api_version = review["apiVersion"].as_str().unwrap_or("");
        let kind = review["kind"].as_str().unwrap_or("");
        if api_version != "admission.k8s.io/v1" || kind != "AdmissionReview" {
            let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
            return Err(format!(
                "expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got {group}/{version}, Kind={kind}"
            ));
        }
    }
    let patch = match response.get("patch") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(p)) => BASE64
            .decode(p)
            .map_err(|e| format!("illegal base64 data in response.patch: {e}"))?,
        Some(_) => return Err("response.patch must be a base64 string".to_owned()),
    };
    let patch_type = response.get("patchType").filter(|t| !t.is_null());
    let mut out_patch = None;
    if mutating {
        if v1 {
            if !patch.is_empty() && patch_type.is_none() {
                return Err("webhook returned response.patch but not response.patchType".to_owned());
            }
            if patch.is_empty() && patch_type.is_some() {
                return Err("webhook returned response.patchType but not response.patch".to_owned());
            }
            if let Some(t) = patch_type {
                let t = t.as_str().unwrap_or("");
                if t.is_empty() {
                    return Err(format!(
                        "webhook returned invalid response.patchType of {t:?}"
                    ));
                }
                if t != "JSONPatch" {
                    return Err(format!("unsupported patch type {t:?}"));
                }
            }
        }
        if !patch.is_empty() {
            out_patch = Some(patch);
        }
    } else if v1 {
        if !patch.is_empty() {
            return Err("validating webhook may not return response.patch".to_owned());
        }
        if patch_type.is_some() {
            return Err("validating webhook may not return response.patchType".to_owned());
        }
    }
    let result = match response.get("status") {
        None | Some(Value::Null) => None,
        Some(status) => {
            Some(serde_json::from_value::<Status>(status.clone()).map_err(|e| e.to_string())?)
        }
    };
    Ok(Verified {
        allowed: response["allowed"].as_bool().unwrap_or(false),
        patch: out_patch,
        result,
        reason: response["status"]["reason"]
            .as_str()
            .unwrap_or("")
            .to_owned(),
        warnings: strings(&response["warnings"]),
    })
}

/// The number of operations in a JSON patch, or why it does not decode.
fn decode_patch(patch: &[u8]) -> Result<usize, String> {
    let operations: Vec<serde_json::Map<String, Value>> =
        serde_json::from_slice(patch).map_err(|e| e.to_string())?;
    Ok(operations.len())
}

/// Where and how to reach a webhook.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    /// The host connected to (a name or an IP).
    connect_host: String,
    port: u16,
    /// The TLS server name checked.
    server_name: String,
    /// The path (may be empty).
    path: String,
    /// `https://host[:port]` as the URL is shown in errors.
    display: String,
    /// The PEM CA bundle.
    ca: Option<Vec<u8>>,
}

impl Target {
    /// The target of a webhook `clientConfig` (`url`, or `service` routed to its
    /// cluster IP with the TLS name `<service>.<namespace>.svc`; `caBundle` trusted).
    pub(crate) async fn of_client_config(
        registry: &Registry,
        client: &Value,
    ) -> Result<Target, String> {
        let hook = Hook::parse(&serde_json::json!({"clientConfig": client}));
        target_of(registry, &hook).await
    }

    fn from_url(url: &str, ca: Option<Vec<u8>>) -> Result<Self, String> {
        let uri: hyper::Uri = url.parse().map_err(|e| format!("parse {url:?}: {e}"))?;
        if uri.scheme_str() != Some("https") {
            return Err(format!(
                "unsupported scheme in webhook URL {url:?}: only https is allowed"
            ));
        }
        let authority = uri
            .authority()
            .ok_or_else(|| format!("webhook URL {url:?} has no host"))?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = authority.port_u16().unwrap_or(443);
        let path = uri
            .path_and_query()
            .map(|p| p.path().to_owned())
            .unwrap_or_default();
        let path = if url.contains(&format!("{authority}/")) {
            path
        } else {
            String::new()
        };
        Ok(Target {
            connect_host: host.clone(),
            port,
            server_name: host,
            path,
            display: format!("https://{authority}"),
            ca,
        })
    }
}

/// POSTs `body` to the webhook within `timeout` (connection, TLS, request and
/// answer); the decoded answer, or the error text as Go's client words it.
pub(crate) async fn post(
    target: &Target,
    timeout: Duration,
    body: Vec<u8>,
) -> Result<Value, String> {
    let path = format!("{}?timeout={}s", target.path, timeout.as_secs());
    let url = format!("{}{path}", target.display);
    match tokio::time::timeout(timeout, exchange(target, &path, body)).await {
        Ok(Ok(review)) => Ok(review),
        Ok(Err(e)) => Err(format!("Post {url:?}: {e}")),
        Err(_) => Err(format!("Post {url:?}: context deadline exceeded")),
    }
}

/// The TLS client configuration trusting `ca` (no CA bundle: nothing is trusted).
fn tls_config(ca: Option<&[u8]>) -> Result<rustls::ClientConfig, String> {
    let mut roots = RootCertStore::empty();
    if let Some(pem) = ca {
        let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<_, _>>()
            .map_err(|e| format!("unable to load root certificates: {e}"))?;
        if certificates.is_empty() {
            return Err(
                "unable to load root certificates: unable to parse bytes as PEM block".to_owned(),
            );
        }
        for certificate in certificates {
            roots
                .add(certificate)
                .map_err(|e| format!("unable to load root certificates: {e}"))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

/// One HTTPS exchange: connect, handshake, POST, read the answer.
async fn exchange(target: &Target, path: &str, body: Vec<u8>) -> Result<Value, String> {
    let config = tls_config(target.ca.as_deref())?;
    let server_name =
        ServerName::try_from(target.server_name.clone()).map_err(|e| e.to_string())?;
    let address = format!("{}:{}", bracket(&target.connect_host), target.port);
    let tcp = tokio::net::TcpStream::connect((target.connect_host.as_str(), target.port))
        .await
        .map_err(|e| format!("dial tcp {address}: {}", go_io_error(&e)))?;
    let tls = TlsConnector::from(Arc::new(config))
        .connect(server_name, tcp)
        .await
        .map_err(|e| format!("tls: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    let uri = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    let host = if target.port == 443 {
        bracket(&target.server_name)
    } else {
        format!("{}:{}", bracket(&target.server_name), target.port)
    };
    let request = hyper::Request::post(uri)
        .header(hyper::header::HOST, host)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(hyper::header::ACCEPT, "application/json, */*")
        .header(hyper::header::USER_AGENT, "kube-apiserver-admission")
        .body(Body::from(body))
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string());
    let result = match response {
        Ok(response) => {
            let status = response.status().as_u16();
            let bytes = axum::body::to_bytes(Body::new(response.into_body()), MAX_RESPONSE_BYTES)
                .await
                .map_err(|e| e.to_string());
            bytes.and_then(|bytes| decode_answer(status, &bytes))
        }
        Err(e) => Err(e),
    };
    driver.abort();
    result
}

fn bracket(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

/// An I/O error in the words of Go's net package where they differ.
fn go_io_error(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connect: connection refused".to_owned(),
        _ => e.to_string(),
    }
}

/// The AdmissionReview of a 2xx answer; other answers are errors as client-go words
/// them (the Status the server sent, or a generic message from the code).
fn decode_answer(status: u16, body: &[u8]) -> Result<Value, String> {
    if (200..300).contains(&status) {
        return serde_json::from_slice(body)
            .map_err(|e| format!("couldn't decode the webhook response: {e}"));
    }
    if let Ok(sent) = serde_json::from_slice::<Status>(body)
        && sent.kind == "Status"
        && !sent.message.is_empty()
    {
        return Err(sent.message);
    }
    let text = String::from_utf8_lossy(body).trim().to_owned();
    let text = if text.is_empty() {
        "unknown".to_owned()
    } else {
        text
    };
    let error = StatusError::generic_server_response(
        status,
        "POST",
        &GroupResource::default(),
        "",
        &text,
        0,
        true,
    );
    Err(error.status().message.clone())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use hyper::body::Incoming;
    use rustls::pki_types::PrivateKeyDer;
    use tokio_rustls::TlsAcceptor;

    use super::*;
    use crate::auth::UserInfo;
    use crate::registry::validation::tester;
    use apimachinery::errors::StatusReason;

    /// What the test webhook does for a path: delay, then answer `allowed` with an
    /// optional patch and status.
    #[derive(Clone)]
    struct Behaviour {
        delay: Duration,
        allowed: bool,
        patch: Option<Value>,
        status: Option<Value>,
        warnings: Vec<&'static str>,
    }

    fn allow() -> Behaviour {
        Behaviour {
            delay: Duration::ZERO,
            allowed: true,
            patch: None,
            status: None,
            warnings: Vec::new(),
        }
    }

    /// A local HTTPS webhook server; counts calls per path and keeps the last review.
    struct Server {
        port: u16,
        ca_bundle: String,
        calls: Arc<Mutex<HashMap<String, usize>>>,
        last: Arc<Mutex<Option<Value>>>,
    }

    impl Server {
        fn calls(&self, path: &str) -> usize {
            self.calls.lock().unwrap().get(path).copied().unwrap_or(0)
        }

        fn url(&self, path: &str) -> String {
            format!("https://127.0.0.1:{}{path}", self.port)
        }
    }

    async fn serve(routes: HashMap<&'static str, Behaviour>) -> Server {
        let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
        let cert_pem = certified.cert.pem();
        let cert_der = certified.cert.der().clone();
        let key = PrivateKeyDer::try_from(certified.signing_key.serialize_der()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert_der], key)
            .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let calls: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let last: Arc<Mutex<Option<Value>>> = Arc::default();
        let routes = Arc::new(routes);
        let (calls2, last2) = (calls.clone(), last.clone());
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let (routes, calls, last) = (routes.clone(), calls2.clone(), last2.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service =
                        hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                            let (routes, calls, last) =
                                (routes.clone(), calls.clone(), last.clone());
                            async move {
                                let path = request.uri().path().to_owned();
                                *calls.lock().unwrap().entry(path.clone()).or_default() += 1;
                                let body =
                                    axum::body::to_bytes(Body::new(request.into_body()), 1 << 20)
                                        .await
                                        .unwrap();
                                let review: Value = serde_json::from_slice(&body).unwrap();
                                *last.lock().unwrap() = Some(review.clone());
                                let behaviour =
                                    routes.get(path.as_str()).cloned().unwrap_or_else(allow);
                                tokio::time::sleep(behaviour.delay).await;
                                let mut response = json!({
                                    "uid": review["request"]["uid"],
                                    "allowed": behaviour.allowed,
                                });
                                if let Some(patch) = &behaviour.patch {
                                    response["patch"] = BASE64.encode(patch.to_string()).into();
                                    response["patchType"] = "JSONPatch".into();
                                }
                                if let Some(status) = &behaviour.status {
                                    response["status"] = status.clone();
                                }
                                if !behaviour.warnings.is_empty() {
                                    response["warnings"] = json!(behaviour.warnings);
                                }
                                let answer = json!({
                                    "apiVersion": "admission.k8s.io/v1",
                                    "kind": "AdmissionReview",
                                    "response": response,
                                });
                                Ok::<_, std::convert::Infallible>(
                                    hyper::Response::builder()
                                        .header("content-type", "application/json")
                                        .body(Body::from(answer.to_string()))
                                        .unwrap(),
                                )
                            }
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Server {
            port,
            ca_bundle: BASE64.encode(cert_pem),
            calls,
            last,
        }
    }

    fn pods() -> &'static ResourceInfo {
        tester::resource("", "v1", "pods")
    }

    fn pod_rule() -> Value {
        json!([{"operations": ["CREATE", "UPDATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}])
    }

    fn webhook(name: &str, server: &Server, path: &str, extra: Value) -> Value {
        let mut hook = json!({
            "name": name,
            "clientConfig": {"url": server.url(path), "caBundle": server.ca_bundle},
            "rules": pod_rule(),
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
        });
        if let (Some(hook), Some(extra)) = (hook.as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                hook.insert(k.clone(), v.clone());
            }
        }
        hook
    }

    /// Creates a configuration and waits until the plugin's informer has it.
    async fn configure(registry: &Registry, plugin: &Webhooks, name: &str, hooks: Vec<Value>) {
        let plural = if plugin.mutating {
            "mutatingwebhookconfigurations"
        } else {
            "validatingwebhookconfigurations"
        };
        let kind = if plugin.mutating {
            "MutatingWebhookConfiguration"
        } else {
            "ValidatingWebhookConfiguration"
        };
        let resource = tester::resource("admissionregistration.k8s.io", "v1", plural);
        let object = json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": kind,
            "metadata": {"name": name},
            "webhooks": hooks,
        });
        registry
            .create(resource, None, object, false)
            .await
            .unwrap_or_else(|e| panic!("configuration {name}: {e:?}"));
        for _ in 0..200 {
            if plugin.configurations.get("", name).is_some() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the informer never saw {name}");
    }

    fn pod(labels: Value) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p", "namespace": "default", "labels": labels},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]},
        })
    }

    fn attributes<'a>(
        operation: Operation,
        user: &'a UserInfo,
        old: Option<&'a Value>,
    ) -> Attributes<'a> {
        Attributes {
            operation,
            resource: pods(),
            subresource: "",
            namespace: "default",
            name: "p",
            old,
            user,
            dry_run: false,
        }
    }

    #[tokio::test]
    async fn a_mutating_webhook_patches_the_object() {
        let patch = json!([{"op": "add", "path": "/metadata/labels/mutated", "value": "yes"}]);
        let server = serve(HashMap::from([(
            "/mutate",
            Behaviour {
                patch: Some(patch),
                warnings: vec!["be careful"],
                ..allow()
            },
        )]))
        .await;
        let registry = tester::registry().await;
        let plugin = Webhooks::mutating(&registry);
        configure(
            &registry,
            &plugin,
            "m",
            vec![webhook("m.example.com", &server, "/mutate", json!({}))],
        )
        .await;
        let user = UserInfo::new("alice", &["dev"]);
        let mut object = pod(json!({"app": "web"}));
        plugin
            .mutate(&attributes(Operation::Create, &user, None), &mut object)
            .await
            .unwrap();
        assert_eq!(
            object["metadata"]["labels"],
            json!({"app": "web", "mutated": "yes"})
        );
        assert_eq!(server.calls("/mutate"), 1);
        let review = server.last.lock().unwrap().clone().unwrap();
        assert_eq!(review["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(review["kind"], "AdmissionReview");
        let request = &review["request"];
        assert_eq!(
            request["kind"],
            json!({"group": "", "version": "v1", "kind": "Pod"})
        );
        assert_eq!(
            request["resource"],
            json!({"group": "", "version": "v1", "resource": "pods"})
        );
        assert_eq!(request["operation"], "CREATE");
        assert_eq!(request["namespace"], "default");
        assert_eq!(request["name"], "p");
        assert_eq!(request["userInfo"]["username"], "alice");
        assert_eq!(
            request["object"]["metadata"]["labels"],
            json!({"app": "web"})
        );
        assert_eq!(request["oldObject"], Value::Null);
        assert_eq!(request["dryRun"], false);
        assert_eq!(request["options"]["kind"], "CreateOptions");
        // the validating phase of the mutating plugin does nothing
        plugin
            .validate(&attributes(Operation::Create, &user, None), &object)
            .await
            .unwrap();
        assert_eq!(server.calls("/mutate"), 1);
    }

    #[tokio::test]
    async fn a_validating_webhook_denies_with_its_message() {
        let server = serve(HashMap::from([
            (
                "/deny",
                Behaviour {
                    allowed: false,
                    status: Some(json!({"code": 403, "message": "pods named p are not allowed"})),
                    ..allow()
                },
            ),
            (
                "/bare",
                Behaviour {
                    allowed: false,
                    ..allow()
                },
            ),
        ]))
        .await;
        let registry = tester::registry().await;
        let plugin = Webhooks::validating(&registry);
        configure(
            &registry,
            &plugin,
            "v",
            vec![webhook("deny.example.com", &server, "/deny", json!({}))],
        )
        .await;
        let user = UserInfo::new("alice", &[]);
        let object = pod(json!({}));
        let err = plugin
            .validate(&attributes(Operation::Create, &user, None), &object)
            .await
            .unwrap_err();
        assert_eq!(err.status().code, 403);
        assert_eq!(
            err.status().message,
            r#"admission webhook "deny.example.com" denied the request: pods named p are not allowed"#
        );
        assert_eq!(err.status().status, "Failure");

        // without a status: a 400 without explanation
        let registry = tester::registry().await;
        let plugin = Webhooks::validating(&registry);
        configure(
            &registry,
            &plugin,
            "v",
            vec![webhook("bare.example.com", &server, "/bare", json!({}))],
        )
        .await;
        let err = plugin
            .validate(&attributes(Operation::Create, &user, None), &object)
            .await
            .unwrap_err();
        assert_eq!(err.status().code, 400);
        assert_eq!(
            err.status().message,
            r#"admission webhook "bare.example.com" denied the request without explanation"#
        );
    }

    #[tokio::test]
    async fn a_slow_webhook_fails_closed_or_open() {
        let slow = Behaviour {
            delay: Duration::from_secs(3),
            ..allow()
        };
        let server = serve(HashMap::from([("/slow", slow)])).await;
        let registry = tester::registry().await;
        let plugin = Webhooks::validating(&registry);
        configure(
            &registry,
            &plugin,
            "fail",
            vec![webhook(
                "slow.example.com",
                &server,
                "/slow",
                json!({"timeoutSeconds": 1}),
            )],
        )
        .await;
        let user = UserInfo::new("alice", &[]);
        let object = pod(json!({}));
        let err = plugin
            .validate(&attributes(Operation::Create, &user, None), &object)
            .await
            .unwrap_err();
        assert_eq!(err.status().code, 500);
        assert_eq!(err.reason(), StatusReason::InternalError);
        assert_eq!(
            err.status().message,
            format!(
                r#"Internal error occurred: failed calling webhook "slow.example.com": failed to call webhook: Post "{}?timeout=1s": context deadline exceeded"#,
                server.url("/slow")
            )
        );

        let registry = tester::registry().await;
        let plugin = Webhooks::validating(&registry);
        configure(
            &registry,
            &plugin,
            "ignore",
            vec![webhook(
                "slow.example.com",
                &server,
                "/slow",
                json!({"timeoutSeconds": 1, "failurePolicy": "Ignore"}),
            )],
        )
        .await;
        plugin
            .validate(&attributes(Operation::Create, &user, None), &object)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn selectors_that_do_not_match_skip_the_webhook() {
        let deny = Behaviour {
            allowed: false,
            ..allow()
        };
        let server = serve(HashMap::from([
            ("/ns", deny.clone()),
            ("/obj", deny.clone()),
            ("/both", deny),
        ]))
        .await;
        let registry = tester::registry().await;
        let plugin = Webhooks::validating(&registry);
        configure(
            &registry,
            &plugin,
            "selectors",
            vec![
                webhook(
                    "ns.example.com",
                    &server,
                    "/ns",
                    json!({"namespaceSelector": {"matchLabels": {"env": "prod"}}}),
                ),
                webhook(
                    "obj.example.com",
                    &server,
                    "/obj",
                    json!({"objectSelector": {"matchExpressions": [{"key": "checked", "operator": "Exists"}]}}),
                ),
            ],
        )
        .await;
        let user = UserInfo::new("alice", &[]);
        let object = pod(json!({"app": "web"}));
        plugin
            .validate(&attributes(Operation::Create, &user, None), &object)
            .await
            .unwrap();
        assert_eq!(server.calls("/ns"), 0);
        assert_eq!(server.calls("/obj"), 0);

        // on update the old object's labels count too
        let old = pod(json!({"checked": "true"}));
        let err = plugin
            .validate(&attributes(Operation::Update, &user, Some(&old)), &object)
            .await
            .unwrap_err();
        assert_eq!(
            err.status().message,
            r#"admission webhook "obj.example.com" denied the request without explanation"#
        );
        assert_eq!(server.calls("/ns"), 0);
        assert_eq!(server.calls("/obj"), 1);
    }

    #[tokio::test]
    async fn match_conditions_decide_the_call_and_errors_follow_the_failure_policy() {
        let deny = Behaviour {
            allowed: false,
            ..allow()
        };
        let server = serve(HashMap::from([
            ("/web", deny.clone()),
            ("/broken-ignore", deny.clone()),
            ("/broken-fail", deny),
        ]))
        .await;
        let registry = tester::registry().await;
        let plugin = Webhooks::validating(&registry);
        configure(
            &registry,
            &plugin,
            "conditions",
            vec![
                webhook(
                    "web.example.com",
                    &server,
                    "/web",
                    json!({"matchConditions": [
                        {"name": "web-only", "expression": "object.metadata.labels.app == 'web'"},
                        {"name": "creates", "expression": "request.operation == 'CREATE'"},
                    ]}),
                ),
                webhook(
                    "broken-ignore.example.com",
                    &server,
                    "/broken-ignore",
                    json!({"failurePolicy": "Ignore",
                           "matchConditions": [{"name": "bad", "expression": "object.nope.deeper"}]}),
                ),
            ],
        )
        .await;
        let user = UserInfo::new("alice", &[]);
        // a false condition skips the webhook
        plugin
            .validate(
                &attributes(Operation::Create, &user, None),
                &pod(json!({"app": "db"})),
            )
            .await
            .unwrap();
        assert_eq!(server.calls("/web"), 0);
        // all true: called (and it refuses); the broken one is ignored, never called
        let err = plugin
            .validate(
                &attributes(Operation::Create, &user, None),
                &pod(json!({"app": "web"})),
            )
            .await
            .unwrap_err();
        assert_eq!(
            err.status().message,
            r#"admission webhook "web.example.com" denied the request without explanation"#
        );
        assert_eq!(server.calls("/web"), 1);
        assert_eq!(server.calls("/broken-ignore"), 0);

        // an error under failurePolicy Fail refuses the write
        let registry = tester::registry().await;
        let plugin = Webhooks::validating(&registry);
        configure(
            &registry,
            &plugin,
            "conditions",
            vec![webhook(
                "broken-fail.example.com",
                &server,
                "/broken-fail",
                json!({"failurePolicy": "Fail",
                       "matchConditions": [{"name": "bad", "expression": "object.nope.deeper"}]}),
            )],
        )
        .await;
        let err = plugin
            .validate(
                &attributes(Operation::Create, &user, None),
                &pod(json!({"app": "web"})),
            )
            .await
            .unwrap_err();
        assert!(
            err.status().message.starts_with(
                "Internal error occurred: failed calling webhook \"broken-fail.example.com\": failed to evaluate match condition: bad: expression 'object.nope.deeper' resulted in error"
            ),
            "{}",
            err.status().message
        );
        assert_eq!(server.calls("/broken-fail"), 0);
    }

    #[tokio::test]
    async fn configuration_objects_are_exempt_and_dry_runs_need_no_side_effects() {
        let deny = Behaviour {
            allowed: false,
            ..allow()
        };
        let server = serve(HashMap::from([("/all", deny)])).await;
        let registry = tester::registry().await;
        let plugin = Webhooks::validating(&registry);
        let everything = json!({"rules": [{"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*/*"]}], "sideEffects": "Some"});
        configure(
            &registry,
            &plugin,
            "all",
            vec![webhook("all.example.com", &server, "/all", everything)],
        )
        .await;
        let user = UserInfo::new("alice", &[]);
        let configurations = tester::resource(
            "admissionregistration.k8s.io",
            "v1",
            "validatingwebhookconfigurations",
        );
        let object = json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration", "metadata": {"name": "x"}});
        let a = Attributes {
            operation: Operation::Create,
            resource: configurations,
            subresource: "",
            namespace: "",
            name: "x",
            old: None,
            user: &user,
            dry_run: false,
        };
        plugin.validate(&a, &object).await.unwrap();
        assert_eq!(server.calls("/all"), 0);

        let mut a = attributes(Operation::Create, &user, None);
        a.dry_run = true;
        let err = plugin.validate(&a, &pod(json!({}))).await.unwrap_err();
        assert_eq!(err.status().code, 400);
        assert_eq!(
            err.status().message,
            r#"admission webhook "all.example.com" does not support dry run"#
        );
        assert_eq!(server.calls("/all"), 0);
    }

    #[tokio::test]
    async fn unreachable_webhooks_and_review_versions() {
        let registry = tester::registry().await;
        let plugin = Webhooks::validating(&registry);
        let server = serve(HashMap::new()).await;
        configure(
            &registry,
            &plugin,
            "old",
            vec![webhook(
                "old.example.com",
                &server,
                "/x",
                json!({"admissionReviewVersions": ["v2"]}),
            )],
        )
        .await;
        let user = UserInfo::new("alice", &[]);
        let err = plugin
            .validate(&attributes(Operation::Create, &user, None), &pod(json!({})))
            .await
            .unwrap_err();
        assert_eq!(
            err.status().message,
            r#"Internal error occurred: failed calling webhook "old.example.com": could not create admission objects: webhook does not accept known AdmissionReview versions (v1, v1beta1)"#
        );

        // a webhook behind a Service that does not exist
        let registry = tester::registry().await;
        let plugin = Webhooks::validating(&registry);
        let mut hook = webhook("svc.example.com", &server, "/x", json!({}));
        hook["clientConfig"] =
            json!({"service": {"namespace": "default", "name": "hooks", "path": "/x"}});
        configure(&registry, &plugin, "svc", vec![hook.clone()]).await;
        let err = plugin
            .validate(&attributes(Operation::Create, &user, None), &pod(json!({})))
            .await
            .unwrap_err();
        assert_eq!(
            err.status().message,
            r#"Internal error occurred: failed calling webhook "svc.example.com": could not get REST client: services "hooks" not found"#
        );
        // ...is passed over under failurePolicy Ignore
        let registry = tester::registry().await;
        let plugin = Webhooks::validating(&registry);
        hook["failurePolicy"] = "Ignore".into();
        configure(&registry, &plugin, "svc", vec![hook]).await;
        plugin
            .validate(&attributes(Operation::Create, &user, None), &pod(json!({})))
            .await
            .unwrap();
    }

    fn rule(value: Value) -> Rule {
        Rule::parse(&value)
    }

    #[test]
    fn rules_match_as_upstream() {
        let pods = ("", "v1", "pods");
        let create = Operation::Create;
        let r = rule(
            json!({"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}),
        );
        assert!(r.matches(create, pods, "", "default"));
        assert!(!r.matches(Operation::Update, pods, "", "default"));
        assert!(!r.matches(create, pods, "status", "default"));
        assert!(!r.matches(create, ("apps", "v1", "pods"), "", "default"));
        assert!(!r.matches(create, ("", "v2", "pods"), "", "default"));

        let r = rule(
            json!({"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"]}),
        );
        assert!(r.matches(
            Operation::Delete,
            ("apps", "v1", "deployments"),
            "",
            "default"
        ));
        assert!(!r.matches(create, ("apps", "v1", "deployments"), "scale", "default"));

        let r = rule(
            json!({"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*/*"]}),
        );
        assert!(r.matches(create, ("apps", "v1", "deployments"), "scale", "default"));
        assert!(r.matches(create, pods, "", "default"));

        let r = rule(
            json!({"operations": ["UPDATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods/*"]}),
        );
        assert!(r.matches(Operation::Update, pods, "status", "default"));
        // upstream's matcher reads `*` as any subresource, none included
        assert!(r.matches(Operation::Update, pods, "", "default"));
        assert!(!r.matches(Operation::Update, ("", "v1", "nodes"), "status", ""));

        let r = rule(
            json!({"operations": ["UPDATE"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*/status"]}),
        );
        assert!(r.matches(
            Operation::Update,
            ("apps", "v1", "deployments"),
            "status",
            "default"
        ));
        assert!(!r.matches(
            Operation::Update,
            ("apps", "v1", "deployments"),
            "scale",
            "default"
        ));

        let namespaced = rule(
            json!({"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"], "scope": "Namespaced"}),
        );
        let cluster = rule(
            json!({"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"], "scope": "Cluster"}),
        );
        let all = rule(
            json!({"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"], "scope": "*"}),
        );
        assert!(namespaced.matches(create, pods, "", "default"));
        assert!(!cluster.matches(create, pods, "", "default"));
        assert!(cluster.matches(create, ("", "v1", "nodes"), "", ""));
        assert!(!namespaced.matches(create, ("", "v1", "nodes"), "", ""));
        // a Namespace is cluster-scoped even though it carries its own name as namespace
        assert!(cluster.matches(Operation::Update, ("", "v1", "namespaces"), "", "ns1"));
        assert!(!namespaced.matches(Operation::Update, ("", "v1", "namespaces"), "", "ns1"));
        assert!(
            all.matches(create, pods, "", "default")
                && all.matches(create, ("", "v1", "nodes"), "", "")
        );
        let bogus = rule(
            json!({"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"], "scope": "Galaxy"}),
        );
        assert!(!bogus.matches(create, pods, "", "default"));
    }

    #[test]
    fn refusals_read_as_upstream() {
        let e = denied(
            "d",
            Some(Status {
                code: 200,
                ..Status::default()
            }),
            "",
        );
        assert_eq!(e.status().code, 400);
        assert_eq!(
            e.status().message,
            r#"admission webhook "d" denied the request without explanation"#
        );
        let e = denied(
            "d",
            Some(Status {
                reason: StatusReason::Conflict,
                code: 409,
                ..Status::default()
            }),
            "Conflict",
        );
        assert_eq!(e.status().code, 409);
        assert_eq!(
            e.status().message,
            r#"admission webhook "d" denied the request: Conflict"#
        );
        assert_eq!(e.status().status, "Failure");
    }

    #[test]
    fn responses_are_checked() {
        let review = |response: Value| json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response});
        assert_eq!(
            verify_response(
                &json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}),
                "v1",
                "u",
                false
            )
            .err()
            .unwrap(),
            "webhook response was absent"
        );
        assert_eq!(
            verify_response(
                &review(json!({"uid": "x", "allowed": true})),
                "v1",
                "u",
                false
            )
            .err()
            .unwrap(),
            r#"expected response.uid="u", got "x""#
        );
        assert_eq!(
            verify_response(&json!({"response": {"uid": "u"}}), "v1", "u", false)
                .err()
                .unwrap(),
            "expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got /, Kind="
        );
        let patch = BASE64.encode("[]");
        assert_eq!(
            verify_response(
                &review(json!({"uid": "u", "allowed": true, "patch": patch})),
                "v1",
                "u",
                true
            )
            .err()
            .unwrap(),
            "webhook returned response.patch but not response.patchType"
        );
        assert_eq!(
            verify_response(
                &review(
                    json!({"uid": "u", "allowed": true, "patch": patch, "patchType": "JSONPatch"})
                ),
                "v1",
                "u",
                false
            )
            .err()
            .unwrap(),
            "validating webhook may not return response.patch"
        );
        let ok = verify_response(
            &review(json!({"uid": "u", "allowed": true, "warnings": ["w"]})),
            "v1",
            "u",
            true,
        )
        .unwrap();
        assert!(ok.allowed && ok.patch.is_none() && ok.warnings == vec!["w".to_owned()]);
        assert_eq!(decode_patch(b"[]"), Ok(0));
        assert!(decode_patch(b"{}").is_err());
    }

    #[test]
    fn urls_become_targets() {
        let t = Target::from_url("https://hook.example.com:8443/validate", None).unwrap();
        assert_eq!(
            (t.connect_host.as_str(), t.port, t.path.as_str()),
            ("hook.example.com", 8443, "/validate")
        );
        assert_eq!(t.display, "https://hook.example.com:8443");
        let t = Target::from_url("https://[::1]/", None).unwrap();
        assert_eq!((t.connect_host.as_str(), t.port), ("::1", 443));
        assert!(Target::from_url("http://hook.example.com/", None).is_err());
    }
}
