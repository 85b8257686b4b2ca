//! The request chain's security stages as one axum middleware, in upstream's order:
//! authentication (401 `Unauthorized` when a credential is refused), impersonation,
//! then authorization of the [`RequestInfo`] (403 with upstream's `User "u" cannot
//! ...` message). The request then runs with its user set for the handlers and the
//! admission plugins, which read it with [`current_user`].

use std::sync::Arc;

use apimachinery::errors::{self, Status, StatusError, StatusReason};
use apimachinery::resources::GroupResource;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;

use super::authn::Authenticator;
use super::authn::service_account::ServiceAccountKeys;
use super::authz::rbac::Rbac;
use super::authz::{Authorizer, Decision};
use super::request_info::RequestInfo;
use super::{UserInfo, impersonation};

/// The security configuration of a server: who requests come from and what they may do.
#[derive(Clone)]
pub struct Security {
    /// Authentication.
    pub authenticator: Authenticator,
    /// Authorization.
    pub authorizer: Authorizer,
    /// The RBAC objects, when RBAC is a mode (escalation checks and rule reviews).
    pub rbac: Option<Arc<Rbac>>,
    /// Service-account token signing, when configured (TokenRequest, OIDC discovery).
    pub service_account_keys: Option<Arc<ServiceAccountKeys>>,
}

/// A verified client certificate's user, set on the request by the TLS layer.
#[derive(Clone, Debug)]
pub struct CertificateUser(pub UserInfo);

/// The request being served: its (effective) user and what it asks for.
#[derive(Clone, Debug)]
pub struct RequestContext {
    /// The user.
    pub user: UserInfo,
    /// The request's attributes.
    pub info: RequestInfo,
    /// Warnings for the client (admission's warn modes), sent as `Warning` headers.
    pub warnings: Arc<std::sync::Mutex<Vec<String>>>,
}

/// Adds a warning to the response of the request being served (upstream's
/// `warning.AddWarning`): a `Warning: 299 - "<text>"` header.
pub fn add_warning(text: impl Into<String>) {
    let text = text.into();
    let _ = CURRENT.try_with(|c| {
        let mut warnings = c.warnings.lock().unwrap_or_else(|p| p.into_inner());
        if !warnings.contains(&text) {
            warnings.push(text);
        }
    });
}

tokio::task_local! {
    static CURRENT: RequestContext;
}

/// The user of the request being served, when called from inside one (None for the
/// server's own work, which is not subject to authorization or admission).
pub fn current_user() -> Option<UserInfo> {
    CURRENT.try_with(|c| c.user.clone()).ok()
}

/// The request being served, when called from inside one.
pub fn current_request() -> Option<RequestContext> {
    CURRENT.try_with(Clone::clone).ok()
}

/// Runs `future` as a request of `user` doing `info` (tests, and internal callers
/// acting for a user).
pub async fn run_as<F: Future>(user: UserInfo, info: RequestInfo, future: F) -> F::Output {
    let context = RequestContext {
        user,
        info,
        warnings: Default::default(),
    };
    CURRENT.scope(context, future).await
}

/// The middleware: authenticates, impersonates and authorizes, or answers 401/403.
pub async fn authenticate_and_authorize(
    State(security): State<Arc<Security>>,
    mut request: Request,
    next: Next,
) -> Response {
    let certificate_user = request
        .extensions()
        .get::<CertificateUser>()
        .map(|c| c.0.clone())
        // tests and in-process callers put the user straight on the request
        .or_else(|| request.extensions().get::<UserInfo>().cloned());
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (user, warnings) = match security
        .authenticator
        .authenticate(certificate_user, authorization.as_deref())
        .await
    {
        Ok(found) => (found.user, found.warnings),
        Err(e) => {
            tracing::debug!(reason = %e.0, "unable to authenticate the request");
            return unauthorized();
        }
    };
    // what authentication warned about is on every answer, a refusal's too
    let with_warnings = |mut response: Response, warnings: &[String]| {
        crate::registry::field_validation::add_warnings(response.headers_mut(), warnings);
        response
    };
    let user = if impersonation::requested(request.headers()) {
        match impersonation::impersonate(&security.authorizer, &user, request.headers()).await {
            Ok(impersonated) => impersonated,
            Err(e) => return with_warnings(crate::http::status_response(e.0), &warnings),
        }
    } else {
        user
    };
    let path = crate::http::percent_decode(request.uri().path());
    let info = RequestInfo::parse(request.method().as_str(), &path, request.uri().query());
    let (decision, reason) = security.authorizer.authorize(&user, &info).await;
    if decision != Decision::Allow {
        let refusal = crate::http::status_response(forbidden(&user, &info, &reason).0);
        return with_warnings(refusal, &warnings);
    }
    request.extensions_mut().insert(user.clone());
    request.extensions_mut().insert(info.clone());
    let warnings = Arc::new(std::sync::Mutex::new(warnings));
    let context = RequestContext {
        user,
        info,
        warnings: warnings.clone(),
    };
    let response = CURRENT.scope(context, next.run(request)).await;
    let warnings = std::mem::take(&mut *warnings.lock().unwrap_or_else(|p| p.into_inner()));
    with_warnings(response, &warnings)
}

/// Upstream's 401 for a request whose credentials are refused.
fn unauthorized() -> Response {
    let status = Status::failure(401, StatusReason::Unauthorized, "Unauthorized");
    crate::http::status_response(status)
}

/// Upstream's 403 for a request the authorizers did not allow.
pub fn forbidden(user: &UserInfo, info: &RequestInfo, reason: &str) -> StatusError {
    let with_reason = |message: String| {
        if reason.is_empty() {
            message
        } else {
            format!("{message}: {reason}")
        }
    };
    if !info.is_resource_request {
        let why = with_reason(errors::forbidden_path_message(
            &user.name, &info.verb, &info.path,
        ));
        return StatusError::forbidden(&GroupResource::core(""), "", why);
    }
    let resource = if info.subresource.is_empty() {
        info.resource.clone()
    } else {
        format!("{}/{}", info.resource, info.subresource)
    };
    let why = with_reason(errors::forbidden_resource_message(
        &user.name,
        &info.verb,
        &resource,
        &info.api_group,
        Some(info.namespace.as_str()).filter(|n| !n.is_empty()),
    ));
    StatusError::forbidden(
        &GroupResource {
            group: info.api_group.clone(),
            resource: info.resource.clone(),
        },
        &info.name,
        why,
    )
}
