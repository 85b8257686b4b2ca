//! networking.k8s.io/v1 Ingresses: upstream's pkg/apis/networking/validation
//! `ValidateIngressSpec`: rules or a default backend; hosts that are DNS names (or
//! `*.`-wildcards), never IPs; every path typed (Exact, Prefix or
//! ImplementationSpecific) and absolute; each backend exactly one of a Service (with a
//! port name or number) or a resource.

use apimachinery::errors::{BadValue, FieldError};
use apimachinery::labels;
use serde_json::Value;

const WILDCARD_MESSAGE: &str = "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which must consist of lower case alphanumeric characters, '-' or '.' and end with an alphanumeric character (e.g. '*.example.com', regex used for validation is '\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

fn validate_backend(backend: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let service = backend.get("service").filter(|s| !s.is_null());
    let resource = backend.get("resource").filter(|r| !r.is_null());
    match (service, resource) {
        (Some(_), Some(_)) => errors.push(FieldError::invalid(
            path,
            "",
            "cannot set both resource and service backends",
        )),
        (None, Some(resource)) => {
            for field in ["kind", "name"] {
                let value = resource.get(field).and_then(Value::as_str).unwrap_or("");
                if value.is_empty() {
                    errors.push(FieldError::required(
                        format!("{path}.resource.{field}"),
                        format!("{field} is required"),
                    ));
                }
            }
        }
        (Some(service), None) => {
            if service
                .get("name")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                errors.push(FieldError::required(format!("{path}.service.name"), ""));
            }
            let port_name = service
                .pointer("/port/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            let port_number = service
                .pointer("/port/number")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            match (port_name.is_empty(), port_number == 0) {
                (false, false) => errors.push(FieldError::invalid(
                    path,
                    "",
                    "cannot set both port name & port number",
                )),
                (true, true) => errors.push(FieldError::required(
                    path,
                    "port name or number is required",
                )),
                (true, false) if !(1..=65535).contains(&port_number) => {
                    errors.push(FieldError::invalid(
                        format!("{path}.service.port.number"),
                        port_number,
                        "must be between 1 and 65535, inclusive",
                    ))
                }
                _ => {}
            }
        }
        (None, None) => errors.push(FieldError::invalid(
            path,
            "",
            "resource or service backend is required",
        )),
    }
}

fn validate_host(host: &str, path: &str, errors: &mut Vec<FieldError>) {
    if host.parse::<std::net::IpAddr>().is_ok() {
        errors.push(FieldError::invalid(
            path,
            host,
            "must be a DNS name, not an IP address",
        ));
    }
    if host.contains('*') {
        let ok = host
            .strip_prefix("*.")
            .is_some_and(|rest| labels::is_dns1123_subdomain(rest).is_empty());
        if !ok {
            errors.push(FieldError::invalid(path, host, WILDCARD_MESSAGE));
        }
    } else {
        for message in labels::is_dns1123_subdomain(host) {
            errors.push(FieldError::invalid(path, host, message));
        }
    }
}

fn validate_http_path(http_path: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let Some(kind) = http_path.get("pathType").and_then(Value::as_str) else {
        errors.push(FieldError::required(
            format!("{path}.pathType"),
            "pathType must be specified",
        ));
        return;
    };
    let value = http_path.get("path").and_then(Value::as_str).unwrap_or("");
    let at = format!("{path}.path");
    match kind {
        "Exact" | "Prefix" => {
            if !value.starts_with('/') {
                errors.push(FieldError::invalid(&at, value, "must be an absolute path"));
            }
            for bad in ["//", "/./", "/../", "%2f", "%2F"] {
                if value.contains(bad) {
                    errors.push(FieldError::invalid(
                        &at,
                        value,
                        format!("must not contain '{bad}'"),
                    ));
                }
            }
            for bad in ["/..", "/."] {
                if value.ends_with(bad) {
                    errors.push(FieldError::invalid(
                        &at,
                        value,
                        format!("cannot end with '{bad}'"),
                    ));
                }
            }
        }
        "ImplementationSpecific" => {
            if !value.is_empty() && !value.starts_with('/') {
                errors.push(FieldError::invalid(&at, value, "must be an absolute path"));
            }
        }
        other => errors.push(FieldError::not_supported(
            format!("{path}.pathType"),
            other,
            &["Exact", "ImplementationSpecific", "Prefix"],
        )),
    }
    validate_backend(
        http_path.get("backend").unwrap_or(&Value::Null),
        &format!("{path}.backend"),
        errors,
    );
}

/// A new or updated Ingress.
pub fn validate(plural: &str, object: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if plural != "ingresses" {
        return errors;
    }
    let spec = &object["spec"];
    let rules = spec["rules"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let default_backend = spec.get("defaultBackend").filter(|b| !b.is_null());
    if rules.is_empty() && default_backend.is_none() {
        errors.push(FieldError::invalid(
            "spec",
            BadValue::Display("[]networking.IngressRule(nil)".into()),
            "either `defaultBackend` or `rules` must be specified",
        ));
    }
    if let Some(backend) = default_backend {
        validate_backend(backend, "spec.defaultBackend", &mut errors);
    }
    for (i, rule) in rules.iter().enumerate() {
        let at = format!("spec.rules[{i}]");
        if let Some(host) = rule
            .get("host")
            .and_then(Value::as_str)
            .filter(|h| !h.is_empty())
        {
            validate_host(host, &format!("{at}.host"), &mut errors);
        }
        if let Some(http) = rule.get("http").filter(|h| !h.is_null()) {
            let paths = http["paths"].as_array().map(Vec::as_slice).unwrap_or(&[]);
            if paths.is_empty() {
                errors.push(FieldError::required(format!("{at}.http.paths"), ""));
            }
            for (j, http_path) in paths.iter().enumerate() {
                validate_http_path(http_path, &format!("{at}.http.paths[{j}]"), &mut errors);
            }
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::super::tester::Tester;
    use serde_json::json;

    #[tokio::test]
    async fn ingresses() {
        let t = Tester::new("networking.k8s.io", "v1", "ingresses").await;
        let backend = json!({"service": {"name": "web", "port": {"number": 80}}});
        t.create_valid(
            json!({"metadata": {"name": "web"}, "spec": {"rules": [{"host": "*.example.com",
            "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}}]}}),
        )
        .await;
        t.create_invalid(
            json!({"metadata": {"name": "i1"}, "spec": {"rules": [{"http": {"paths": [{"path": "/", "backend": backend}]}}]}}),
            r#"Ingress.networking.k8s.io "i1" is invalid: spec.rules[0].http.paths[0].pathType: Required value: pathType must be specified"#,
        )
        .await;
        t.create_invalid(
            json!({"metadata": {"name": "i2"}, "spec": {"rules": [{"host": "10.0.0.1", "http": {"paths": [{"path": "api", "pathType": "Exact", "backend": {"service": {"name": "web", "port": {}}}}]}}]}}),
            r#"Ingress.networking.k8s.io "i2" is invalid: [spec.rules[0].host: Invalid value: "10.0.0.1": must be a DNS name, not an IP address, spec.rules[0].http.paths[0].path: Invalid value: "api": must be an absolute path, spec.rules[0].http.paths[0].backend: Required value: port name or number is required]"#,
        )
        .await;
        t.create_invalid(
            json!({"metadata": {"name": "i3"}, "spec": {}}),
            r#"Ingress.networking.k8s.io "i3" is invalid: spec: Invalid value: []networking.IngressRule(nil): either `defaultBackend` or `rules` must be specified"#,
        )
        .await;
    }
}
