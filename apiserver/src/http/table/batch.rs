//! Printers of the `batch` group: jobs and cron jobs.

use serde_json::{Value, json};

use super::{
    AGE, CONTAINERS, Ctx, IMAGES, NAME, Printer, SELECTOR, bool_ptr, boolean, condition_status,
    count, human_duration, int_of, integer, name_of, parse_time, str_of, string, template_cells,
};

pub(super) const JOB: Printer = Printer::new(
    &[
        NAME,
        string("Status"),
        string("Completions"),
        string("Duration"),
        AGE,
        CONTAINERS,
        IMAGES,
        SELECTOR,
    ],
    |o, ctx| {
        let (spec, status) = (&o["spec"], &o["status"]);
        let mut cells = vec![
            name_of(o),
            json!(job_status(o)),
            json!(completions(o)),
            json!(duration(status, ctx)),
            ctx.age(o),
        ];
        cells.extend(template_cells(spec));
        cells
    },
);

/// Upstream's job status: a finished job's condition, else Terminating, Suspended,
/// FailureTarget or Running.
fn job_status(job: &Value) -> &'static str {
    let holds = |kind| condition_status(&job["status"]["conditions"], kind) == Some("True");
    if holds("Complete") {
        "Complete"
    } else if holds("Failed") {
        "Failed"
    } else if job["metadata"]["deletionTimestamp"].is_string() {
        "Terminating"
    } else if holds("Suspended") {
        "Suspended"
    } else if holds("FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    }
}

/// `succeeded/completions`; without completions, `succeeded/1` plus the parallelism
/// when more than one pod runs at once.
fn completions(job: &Value) -> String {
    let succeeded = int_of(&job["status"]["succeeded"]);
    match job["spec"]["completions"].as_i64() {
        Some(completions) => format!("{succeeded}/{completions}"),
        None => match int_of(&job["spec"]["parallelism"]) {
            p if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    }
}

/// From start to completion, or to now while running; empty before the job starts.
fn duration(status: &Value, ctx: &Ctx) -> String {
    let Some(start) = parse_time(&status["startTime"]) else {
        return String::new();
    };
    match parse_time(&status["completionTime"]) {
        Some(end) => human_duration(end.duration_since(start).as_secs()),
        None => ctx.elapsed(start),
    }
}

pub(super) const CRON_JOB: Printer = Printer::new(
    &[
        NAME,
        string("Schedule"),
        string("Timezone"),
        boolean("Suspend"),
        integer("Active"),
        string("Last Schedule"),
        AGE,
        CONTAINERS,
        IMAGES,
        SELECTOR,
    ],
    |o, ctx| {
        let (spec, status) = (&o["spec"], &o["status"]);
        let last_schedule = match &status["lastScheduleTime"] {
            Value::Null => "<none>".into(),
            t => ctx.since(t),
        };
        let mut cells = vec![
            name_of(o),
            json!(str_of(&spec["schedule"])),
            json!(spec["timeZone"].as_str().unwrap_or("<none>")),
            json!(bool_ptr(&spec["suspend"])),
            json!(count(&status["active"])),
            json!(last_schedule),
            ctx.age(o),
        ];
        cells.extend(template_cells(&spec["jobTemplate"]["spec"]));
        cells
    },
);

#[cfg(test)]
mod tests {
    use super::super::tests::cells;
    use serde_json::json;

    #[test]
    fn jobs_print_status_completions_and_duration() {
        let job = json!({
            "metadata": {"name": "pi", "creationTimestamp": "2024-05-01T11:00:00Z"},
            "spec": {"completions": 3, "parallelism": 1,
                     "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "abc"}},
                     "template": {"spec": {"containers": [{"name": "pi", "image": "perl:5.34"}]}}},
            "status": {"succeeded": 3, "startTime": "2024-05-01T11:00:05Z", "completionTime": "2024-05-01T11:02:35Z",
                       "conditions": [{"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}]},
        });
        assert_eq!(
            cells("batch", "v1", "jobs", job),
            [
                json!("pi"),
                json!("Complete"),
                json!("3/3"),
                json!("2m30s"),
                json!("60m"),
                json!("pi"),
                json!("perl:5.34"),
                json!("batch.kubernetes.io/controller-uid=abc"),
            ]
        );
        let running = json!({"spec": {"parallelism": 4}, "status": {"succeeded": 1, "startTime": "2024-05-01T11:59:50Z"}});
        let c = cells("batch", "v1", "jobs", running);
        assert_eq!(c[1..4], [json!("Running"), json!("1/1 of 4"), json!("10s")]);
        let failed = json!({"status": {"conditions": [{"type": "Failed", "status": "True"}]}});
        let c = cells("batch", "v1", "jobs", failed);
        assert_eq!(c[1..4], [json!("Failed"), json!("0/1"), json!("")]);
        let suspended =
            json!({"status": {"conditions": [{"type": "Suspended", "status": "True"}]}});
        assert_eq!(cells("batch", "v1", "jobs", suspended)[1], "Suspended");
    }

    #[test]
    fn cron_jobs_print_schedule_and_last_run() {
        let cj = json!({
            "metadata": {"name": "hello"},
            "spec": {"schedule": "*/5 * * * *", "suspend": false,
                     "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "hello", "image": "busybox"}]}}}}},
            "status": {"active": [{"name": "hello-1"}], "lastScheduleTime": "2024-05-01T11:55:00Z"},
        });
        assert_eq!(
            cells("batch", "v1", "cronjobs", cj),
            [
                json!("hello"),
                json!("*/5 * * * *"),
                json!("<none>"),
                json!("False"),
                json!(1),
                json!("5m"),
                json!("<unknown>"),
                json!("hello"),
                json!("busybox"),
                json!("<none>"),
            ]
        );
    }
}
