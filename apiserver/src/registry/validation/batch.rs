//! batch/v1 Jobs and CronJobs: the parts of upstream's pkg/apis/batch/validation users
//! meet first: a Job's pods restart OnFailure or Never (a template left at the pod
//! default, Always, is refused), its counts are not negative; a CronJob has a
//! five-field (or `@hourly`-style) schedule and a known concurrencyPolicy.

use apimachinery::errors::FieldError;
use serde_json::Value;

const NON_NEGATIVE: &str = "must be greater than or equal to 0";

fn validate_job_spec(spec: &Value, path: &str, errors: &mut Vec<FieldError>) {
    for field in [
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
        "ttlSecondsAfterFinished",
    ] {
        if let Some(n) = spec.get(field).and_then(Value::as_i64)
            && n < 0
        {
            errors.push(FieldError::invalid(
                format!("{path}.{field}"),
                n,
                NON_NEGATIVE,
            ));
        }
    }
    let restart = spec
        .pointer("/template/spec/restartPolicy")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !["OnFailure", "Never"].contains(&restart) {
        errors.push(FieldError::not_supported(
            format!("{path}.template.spec.restartPolicy"),
            restart,
            &["OnFailure", "Never"],
        ));
    }
    if let Some(mode) = spec.get("completionMode").and_then(Value::as_str)
        && !["NonIndexed", "Indexed"].contains(&mode)
    {
        errors.push(FieldError::not_supported(
            format!("{path}.completionMode"),
            mode,
            &["NonIndexed", "Indexed"],
        ));
    }
}

/// Whether one cron field is well formed: `*`, numbers, ranges, lists and steps, or
/// (for months and weekdays) names.
fn cron_field_ok(field: &str) -> bool {
    !field.is_empty()
        && field.split(',').all(|part| {
            let (range, step) = match part.split_once('/') {
                Some((r, s)) => (r, Some(s)),
                None => (part, None),
            };
            let step_ok =
                step.is_none_or(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
            let range_ok = range == "*"
                || range == "?"
                || range
                    .split('-')
                    .all(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_alphanumeric()));
            step_ok && range_ok
        })
}

/// Upstream's schedule check (robfig/cron's standard parser), with its messages for
/// the shapes people get wrong.
fn schedule_error(schedule: &str) -> Option<String> {
    let trimmed = schedule.trim();
    if trimmed.starts_with('@') {
        const MACROS: &[&str] = &[
            "@yearly",
            "@annually",
            "@monthly",
            "@weekly",
            "@daily",
            "@midnight",
            "@hourly",
        ];
        if MACROS.contains(&trimmed) || trimmed.starts_with("@every ") {
            return None;
        }
        return Some(format!("unrecognized descriptor: {trimmed}"));
    }
    // A leading TZ= or CRON_TZ= names the zone; upstream refuses it in the schedule
    // (timeZone is the field for that).
    let fields: Vec<&str> = trimmed.split_whitespace().collect();
    if fields.len() != 5 {
        return Some(format!(
            "expected exactly 5 fields, found {}: {trimmed}",
            fields.len()
        ));
    }
    fields
        .iter()
        .find(|f| !cron_field_ok(f))
        .map(|f| format!("failed to parse int from {f}"))
}

/// A new or updated Job or CronJob.
pub fn validate(plural: &str, object: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    match plural {
        "jobs" => validate_job_spec(&object["spec"], "spec", &mut errors),
        "cronjobs" => {
            let spec = &object["spec"];
            match spec.get("schedule").and_then(Value::as_str) {
                None | Some("") => errors.push(FieldError::required("spec.schedule", "")),
                Some(schedule) => {
                    if schedule.contains("TZ") {
                        errors.push(FieldError::invalid(
                            "spec.schedule",
                            schedule,
                            "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
                        ));
                    } else if let Some(why) = schedule_error(schedule) {
                        errors.push(FieldError::invalid("spec.schedule", schedule, why));
                    }
                }
            }
            if let Some(policy) = spec.get("concurrencyPolicy").and_then(Value::as_str)
                && !["Allow", "Forbid", "Replace"].contains(&policy)
            {
                errors.push(FieldError::not_supported(
                    "spec.concurrencyPolicy",
                    policy,
                    &["Allow", "Forbid", "Replace"],
                ));
            }
            for field in [
                "startingDeadlineSeconds",
                "successfulJobsHistoryLimit",
                "failedJobsHistoryLimit",
            ] {
                if let Some(n) = spec.get(field).and_then(Value::as_i64)
                    && n < 0
                {
                    errors.push(FieldError::invalid(
                        format!("spec.{field}"),
                        n,
                        NON_NEGATIVE,
                    ));
                }
            }
            validate_job_spec(
                spec.pointer("/jobTemplate/spec").unwrap_or(&Value::Null),
                "spec.jobTemplate.spec",
                &mut errors,
            );
        }
        _ => {}
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::super::tester::Tester;
    use serde_json::json;

    fn template(restart: &str) -> serde_json::Value {
        json!({"spec": {"restartPolicy": restart, "containers": [{"name": "c", "image": "busybox"}]}})
    }

    #[tokio::test]
    async fn jobs() {
        let t = Tester::new("batch", "v1", "jobs").await;
        t.create_valid(
            json!({"metadata": {"name": "pi"}, "spec": {"template": template("Never")}}),
        )
        .await;
        t.create_invalid(
            json!({"metadata": {"name": "j1"}, "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}),
            r#"Job.batch "j1" is invalid: spec.template.spec.restartPolicy: Unsupported value: "Always": supported values: "OnFailure", "Never""#,
        )
        .await;
        t.create_invalid(
            json!({"metadata": {"name": "j2"}, "spec": {"parallelism": -1, "template": template("OnFailure")}}),
            r#"Job.batch "j2" is invalid: spec.parallelism: Invalid value: -1: must be greater than or equal to 0"#,
        )
        .await;
    }

    #[tokio::test]
    async fn cron_jobs() {
        let t = Tester::new("batch", "v1", "cronjobs").await;
        let job = json!({"spec": {"template": template("OnFailure")}});
        t.create_valid(json!({"metadata": {"name": "hourly"}, "spec": {"schedule": "@hourly", "jobTemplate": job}}))
            .await;
        t.create_valid(json!({"metadata": {"name": "nightly"}, "spec": {"schedule": "0 3 * * 1-5", "jobTemplate": job}}))
            .await;
        t.create_invalid(
            json!({"metadata": {"name": "c1"}, "spec": {"schedule": "every day", "jobTemplate": job}}),
            r#"CronJob.batch "c1" is invalid: spec.schedule: Invalid value: "every day": expected exactly 5 fields, found 2: every day"#,
        )
        .await;
        t.create_invalid(
            json!({"metadata": {"name": "c2"}, "spec": {"jobTemplate": job}}),
            r#"CronJob.batch "c2" is invalid: spec.schedule: Required value"#,
        )
        .await;
        t.create_invalid(
            json!({"metadata": {"name": "c3"}, "spec": {"schedule": "* * * * *", "concurrencyPolicy": "Sometimes", "jobTemplate": job}}),
            r#"CronJob.batch "c3" is invalid: spec.concurrencyPolicy: Unsupported value: "Sometimes": supported values: "Allow", "Forbid", "Replace""#,
        )
        .await;
    }
}
