//! The APIs over authentication and authorization, answered at create and never
//! stored, as upstream's: TokenReview, SelfSubjectReview (`kubectl auth whoami`),
//! SubjectAccessReview, LocalSubjectAccessReview, SelfSubjectAccessReview
//! (`kubectl auth can-i`), SelfSubjectRulesReview (`kubectl auth can-i --list`), and
//! TokenRequest (`serviceaccounts/<name>/token`, `kubectl create token`).

use std::collections::BTreeMap;

use apimachinery::errors::{FieldError, StatusError};
use apimachinery::resources::{self, GroupKind, ResourceInfo};
use serde_json::{Value, json};

use super::authn::service_account::{self, Claims, KubernetesClaim, ObjectRef};
use super::filter::{Security, current_user};
use super::request_info::RequestInfo;
use super::{UserInfo, authz::Decision};
use crate::registry::{Registry, meta};

/// Upstream's shortest token lifetime (10 minutes).
const MIN_EXPIRATION_SECONDS: i64 = 600;
/// Upstream's longest (2^32 seconds).
const MAX_EXPIRATION_SECONDS: i64 = 1 << 32;
/// The lifetime when the request names none (one hour).
const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;

/// Whether `resource` (with `subresource`) is answered here rather than stored.
pub fn handles(resource: &ResourceInfo, subresource: Option<&str>) -> bool {
    match (resource.group, resource.plural, subresource) {
        ("", "serviceaccounts", Some("token")) => true,
        ("authentication.k8s.io", "tokenreviews" | "selfsubjectreviews", None) => true,
        (
            "authorization.k8s.io",
            "subjectaccessreviews"
            | "localsubjectaccessreviews"
            | "selfsubjectaccessreviews"
            | "selfsubjectrulesreviews",
            None,
        ) => true,
        _ => false,
    }
}

/// Answers a create of one of the review kinds with the request object and its status.
pub async fn create(
    security: &Security,
    registry: &Registry,
    resource: &'static ResourceInfo,
    namespace: Option<&str>,
    name: Option<&str>,
    mut body: Value,
) -> Result<Value, StatusError> {
    let user = current_user().unwrap_or_else(UserInfo::anonymous);
    if resource.plural == "serviceaccounts" {
        return token_request(
            security,
            registry,
            namespace.unwrap_or_default(),
            name.unwrap_or_default(),
            body,
        )
        .await;
    }
    let kind = resource.kind;
    body["apiVersion"] = format!("{}/{}", resource.group, resource.version).into();
    body["kind"] = kind.into();
    if body.get("metadata").is_none_or(|m| !m.is_object()) {
        body["metadata"] = json!({});
    }
    if body["metadata"].get("creationTimestamp").is_none() {
        body["metadata"]["creationTimestamp"] = Value::Null;
    }
    let spec = body.get("spec").cloned().unwrap_or(json!({}));
    let status = match resource.plural {
        "selfsubjectreviews" => json!({ "userInfo": user.to_json() }),
        "tokenreviews" => token_review(security, &spec).await?,
        "selfsubjectrulesreviews" => {
            let namespace = spec["namespace"].as_str().unwrap_or_default();
            let answer = security.authorizer.rules_for(&user, namespace).await;
            let mut status = json!({
                "resourceRules": answer.resource_rules,
                "nonResourceRules": answer.non_resource_rules,
                "incomplete": answer.incomplete,
            });
            if !answer.evaluation_errors.is_empty() {
                status["evaluationError"] = answer.evaluation_errors.join(", ").into();
            }
            status
        }
        _ => {
            let subject = match resource.plural {
                "selfsubjectaccessreviews" => user,
                _ => subject_of(resource, &spec)?,
            };
            let request = access_request(resource, namespace, &spec)?;
            let (decision, reason) = security.authorizer.authorize(&subject, &request).await;
            let mut status = json!({ "allowed": decision == Decision::Allow });
            if decision == Decision::Deny {
                status["denied"] = true.into();
            }
            if !reason.is_empty() {
                status["reason"] = reason.into();
            }
            status
        }
    };
    body["status"] = status;
    Ok(body)
}

fn invalid(resource: &ResourceInfo, errors: &[FieldError]) -> StatusError {
    StatusError::invalid(
        &GroupKind {
            group: resource.group.to_owned(),
            kind: resource.kind.to_owned(),
        },
        "",
        errors,
    )
}

/// The user a SubjectAccessReview asks about.
fn subject_of(resource: &ResourceInfo, spec: &Value) -> Result<UserInfo, StatusError> {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect()
    };
    let user = UserInfo {
        name: spec["user"].as_str().unwrap_or_default().to_owned(),
        uid: spec["uid"].as_str().unwrap_or_default().to_owned(),
        groups: strings(&spec["groups"]),
        extra: spec["extra"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), strings(v)))
            .collect::<BTreeMap<_, _>>(),
    };
    if user.name.is_empty() && user.groups.is_empty() {
        return Err(invalid(
            resource,
            &[FieldError::invalid(
                "spec.user",
                "",
                "at least one of user or group must be specified",
            )],
        ));
    }
    Ok(user)
}

/// The request an access review asks about.
fn access_request(
    resource: &ResourceInfo,
    namespace: Option<&str>,
    spec: &Value,
) -> Result<RequestInfo, StatusError> {
    let attributes = spec.get("resourceAttributes").filter(|v| v.is_object());
    let non_resource = spec.get("nonResourceAttributes").filter(|v| v.is_object());
    let field = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_owned();
    match (attributes, non_resource) {
        (Some(a), None) => {
            let mut request = RequestInfo::resource(
                &field(a, "verb"),
                &field(a, "group"),
                &field(a, "resource"),
                &field(a, "subresource"),
                &field(a, "namespace"),
                &field(a, "name"),
            );
            request.api_version = field(a, "version");
            if let Some(namespace) = namespace {
                if !request.namespace.is_empty() && request.namespace != namespace {
                    return Err(invalid(
                        resource,
                        &[FieldError::invalid(
                            "spec.resourceAttributes.namespace",
                            request.namespace.as_str(),
                            "must match metadata.namespace",
                        )],
                    ));
                }
                request.namespace = namespace.to_owned();
            }
            Ok(request)
        }
        (None, Some(n)) if namespace.is_none() => Ok(RequestInfo::non_resource(
            &field(n, "verb"),
            &field(n, "path"),
        )),
        (None, Some(_)) => Err(invalid(
            resource,
            &[FieldError::invalid(
                "spec.nonResourceAttributes",
                "",
                "disallowed on this kind of request",
            )],
        )),
        _ => Err(invalid(
            resource,
            &[FieldError::invalid(
                "spec.resourceAttributes",
                "",
                "exactly one of nonResourceAttributes or resourceAttributes must be specified",
            )],
        )),
    }
}

async fn token_review(security: &Security, spec: &Value) -> Result<Value, StatusError> {
    let token = spec["token"].as_str().unwrap_or_default();
    if token.is_empty() {
        return Err(StatusError::bad_request(
            "token is required for TokenReview in authentication",
        ));
    }
    let requested: Vec<String> = spec["audiences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str().map(str::to_owned))
        .collect();
    let audiences = if requested.is_empty() {
        security.authenticator.api_audiences.clone()
    } else {
        requested
    };
    Ok(
        match security
            .authenticator
            .authenticate_token(token, &audiences)
            .await
        {
            Ok(found) => {
                // the reviewed token's warnings reach the review's response, as
                // upstream's authenticators add them to the request's recorder
                for warning in found.warnings {
                    crate::auth::filter::add_warning(warning);
                }
                json!({
                    "authenticated": true,
                    "user": found.user.with_authenticated_group().to_json(),
                    "audiences": audiences,
                })
            }
            Err(e) => json!({ "authenticated": false, "user": {}, "error": e.0 }),
        },
    )
}

fn core(plural: &str) -> &'static ResourceInfo {
    resources::find("", "v1", plural).expect("core resources are in the table")
}

/// `POST serviceaccounts/<name>/token`: a token for the service account, bound to
/// the object the request names.
async fn token_request(
    security: &Security,
    registry: &Registry,
    namespace: &str,
    name: &str,
    mut body: Value,
) -> Result<Value, StatusError> {
    let token_kind = GroupKind {
        group: "authentication.k8s.io".into(),
        kind: "TokenRequest".into(),
    };
    let Some(keys) = &security.service_account_keys else {
        return Err(StatusError::not_found(
            &apimachinery::resources::GroupResource::core("serviceaccounts"),
            name,
        ));
    };
    let account = registry
        .get(core("serviceaccounts"), Some(namespace), name)
        .await?;
    let spec = body.get("spec").cloned().unwrap_or(json!({}));
    let expiration = match &spec["expirationSeconds"] {
        Value::Null => DEFAULT_EXPIRATION_SECONDS,
        v => v.as_i64().unwrap_or(0),
    };
    let mut errors = Vec::new();
    if expiration < MIN_EXPIRATION_SECONDS {
        errors.push(FieldError::invalid(
            "spec.expirationSeconds",
            expiration,
            "may not specify a duration less than 10 minutes",
        ));
    } else if expiration > MAX_EXPIRATION_SECONDS {
        errors.push(FieldError::invalid(
            "spec.expirationSeconds",
            expiration,
            "may not specify a duration larger than 2^32 seconds",
        ));
    }
    let bound = spec.get("boundObjectRef").filter(|b| b.is_object());
    let bound_kind = bound.and_then(|b| b["kind"].as_str()).unwrap_or_default();
    if bound.is_some() && !matches!(bound_kind, "Pod" | "Secret" | "Node") {
        errors.push(FieldError::not_supported(
            "spec.boundObjectRef.kind",
            bound_kind,
            &["Pod", "Node", "Secret"],
        ));
    }
    if !errors.is_empty() {
        return Err(StatusError::invalid(&token_kind, name, &errors));
    }
    let mut audiences: Vec<String> = spec["audiences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str().map(str::to_owned))
        .collect();
    if audiences.is_empty() {
        audiences = security.authenticator.api_audiences.clone();
    }
    let now = jiff::Timestamp::now().as_second();
    let mut claim = KubernetesClaim {
        namespace: namespace.to_owned(),
        serviceaccount: ObjectRef {
            name: name.to_owned(),
            uid: meta::meta_str(&account, "uid")
                .unwrap_or_default()
                .to_owned(),
        },
        ..Default::default()
    };
    if let Some(bound) = bound {
        let bound_name = bound["name"].as_str().unwrap_or_default();
        let (plural, bound_namespace) = match bound_kind {
            "Pod" => ("pods", Some(namespace)),
            "Secret" => ("secrets", Some(namespace)),
            _ => ("nodes", None),
        };
        let object = registry
            .get(core(plural), bound_namespace, bound_name)
            .await?;
        let uid = meta::meta_str(&object, "uid")
            .unwrap_or_default()
            .to_owned();
        if let Some(wanted) = bound["uid"].as_str().filter(|u| !u.is_empty())
            && wanted != uid
        {
            return Err(StatusError::conflict(
                &apimachinery::resources::GroupResource::core(plural),
                bound_name,
                format!(
                    "the UID in the bound object reference ({wanted}) does not match the UID in record. The object might have been deleted and then recreated"
                ),
            ));
        }
        let reference = ObjectRef {
            name: bound_name.to_owned(),
            uid,
        };
        match bound_kind {
            "Pod" => {
                if let Some(node) = object["spec"]["nodeName"]
                    .as_str()
                    .filter(|n| !n.is_empty())
                    && let Ok(node_object) = registry.get(core("nodes"), None, node).await
                {
                    claim.node = Some(ObjectRef {
                        name: node.to_owned(),
                        uid: meta::meta_str(&node_object, "uid")
                            .unwrap_or_default()
                            .to_owned(),
                    });
                }
                claim.pod = Some(reference);
            }
            "Secret" => claim.secret = Some(reference),
            _ => claim.node = Some(reference),
        }
    }
    let claims = Claims {
        iss: keys.issuer().to_owned(),
        sub: format!("{}{namespace}:{name}", service_account::USER_PREFIX),
        aud: audiences.clone(),
        exp: now + expiration,
        iat: now,
        nbf: now,
        jti: meta::new_uid(),
        kubernetes: claim,
    };
    let token = keys.sign(&claims).map_err(StatusError::internal_error)?;
    let expires = jiff::Timestamp::from_second(now + expiration)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default();
    body["apiVersion"] = "authentication.k8s.io/v1".into();
    body["kind"] = "TokenRequest".into();
    body["metadata"] = json!({
        "name": name,
        "namespace": namespace,
        "creationTimestamp": meta::now_rfc3339(),
    });
    body["spec"]["audiences"] = audiences.into();
    body["spec"]["expirationSeconds"] = expiration.into();
    if body["spec"].get("boundObjectRef").is_none() {
        body["spec"]["boundObjectRef"] = Value::Null;
    }
    body["status"] = json!({ "token": token, "expirationTimestamp": expires });
    Ok(body)
}
