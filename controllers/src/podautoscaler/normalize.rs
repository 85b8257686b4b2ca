//! How a metrics-proposed replica count becomes the count the autoscaler sets, as
//! upstream's `normalizeDesiredReplicas` (no `behavior`: a downscale stabilization
//! window and a scale-up limit of `max(2 × current, 4)`) and
//! `normalizeDesiredReplicasWithBehaviors` (per-direction stabilization windows and
//! rate policies over the scale events of each policy's period).
//!
//! Everything here is pure over the per-autoscaler history ([`History`]) and the time
//! given, so the table cases of upstream's tests can be replayed.

use std::time::{Duration, Instant};

use k8s_openapi::api::autoscaling::v2::{
    HPAScalingPolicy, HPAScalingRules, HorizontalPodAutoscalerBehavior,
};

/// Upstream's `scaleUpLimitFactor` and `scaleUpLimitMinimum` (without `behavior`).
const SCALE_UP_LIMIT_FACTOR: f64 = 2.0;
const SCALE_UP_LIMIT_MINIMUM: f64 = 4.0;

/// One unstabilized recommendation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recommendation {
    /// The replica count the metrics asked for.
    pub replicas: i32,
    /// When.
    pub at: Instant,
}

/// One scale change the controller made (upstream's `timestampedScaleEvent`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScaleEvent {
    /// How many replicas were added (or removed), non-negative.
    pub change: i32,
    /// When.
    pub at: Instant,
    /// Older than every policy period: the slot may be reused.
    pub outdated: bool,
}

/// What the controller remembers of one autoscaler between syncs.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// Recent recommendations.
    pub recommendations: Vec<Recommendation>,
    /// Recent scale-ups (only kept for autoscalers with `behavior`).
    pub scale_up_events: Vec<ScaleEvent>,
    /// Recent scale-downs (likewise).
    pub scale_down_events: Vec<ScaleEvent>,
}

/// A normalized count with the `AbleToScale` and `ScalingLimited` conditions it implies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalized {
    /// The count to set.
    pub replicas: i32,
    /// `AbleToScale` reason and message (status True).
    pub able: (&'static str, &'static str),
    /// `ScalingLimited` status (true when the count was limited), reason and message.
    pub limited: (bool, &'static str, &'static str),
}

const READY_FOR_NEW_SCALE: (&str, &str) =
    ("ReadyForNewScale", "recommended size matches current size");
const SCALE_DOWN_STABILIZED: (&str, &str) = (
    "ScaleDownStabilized",
    "recent recommendations were higher than current one, applying the highest recent recommendation",
);
const SCALE_UP_STABILIZED: (&str, &str) = (
    "ScaleUpStabilized",
    "recent recommendations were lower than current one, applying the lowest recent recommendation",
);
const WITHIN_RANGE: (&str, &str) = (
    "DesiredWithinRange",
    "the desired count is within the acceptable range",
);
const SCALE_UP_LIMIT: (&str, &str) = (
    "ScaleUpLimit",
    "the desired replica count is increasing faster than the maximum scale rate",
);
const SCALE_DOWN_LIMIT: (&str, &str) = (
    "ScaleDownLimit",
    "the desired replica count is decreasing faster than the maximum scale rate",
);
const TOO_MANY: (&str, &str) = (
    "TooManyReplicas",
    "the desired replica count is more than the maximum replica count",
);
const TOO_FEW: (&str, &str) = (
    "TooFewReplicas",
    "the desired replica count is less than the minimum replica count",
);

/// Whether something recorded at `at` is older than `window` at `now`.
fn older_than(at: Instant, now: Instant, window: Duration) -> bool {
    now.saturating_duration_since(at) > window
}

/// Whether something recorded at `at` is younger than `window` at `now`.
fn younger_than(at: Instant, now: Instant, window: Duration) -> bool {
    now.saturating_duration_since(at) < window
}

fn seconds(s: i32) -> Duration {
    Duration::from_secs(u64::try_from(s).unwrap_or(0))
}

/// Records the first recommendation of an autoscaler: its current count.
pub fn record_initial(history: &mut History, current: i32, now: Instant) {
    if history.recommendations.is_empty() {
        history.recommendations.push(Recommendation {
            replicas: current,
            at: now,
        });
    }
}

/// Upstream's `stabilizeRecommendation`: the highest recommendation of the window
/// (including this one); this one replaces an expired one or is appended.
pub fn stabilize(history: &mut History, desired: i32, window: Duration, now: Instant) -> i32 {
    let mut highest = desired;
    let mut old = None;
    for (i, r) in history.recommendations.iter().enumerate() {
        if older_than(r.at, now, window) {
            old = Some(i);
        } else if r.replicas > highest {
            highest = r.replicas;
        }
    }
    let new = Recommendation {
        replicas: desired,
        at: now,
    };
    match old {
        Some(i) => history.recommendations[i] = new,
        None => history.recommendations.push(new),
    }
    highest
}

/// Upstream's `calculateScaleUpLimit`.
pub fn scale_up_limit(current: i32) -> i32 {
    (SCALE_UP_LIMIT_FACTOR * f64::from(current)).max(SCALE_UP_LIMIT_MINIMUM) as i32
}

/// Upstream's `convertDesiredReplicasWithRules`: bounds without `behavior`.
pub fn convert_with_rules(
    current: i32,
    desired: i32,
    min: i32,
    max: i32,
) -> (i32, &'static str, &'static str) {
    let limit = scale_up_limit(current);
    let (maximum, (reason, message)) = if max > limit {
        (limit, SCALE_UP_LIMIT)
    } else {
        (max, TOO_MANY)
    };
    if desired < min {
        (min, TOO_FEW.0, TOO_FEW.1)
    } else if desired > maximum {
        (maximum, reason, message)
    } else {
        (desired, WITHIN_RANGE.0, WITHIN_RANGE.1)
    }
}

/// Upstream's `normalizeDesiredReplicas` (an autoscaler without `behavior`).
pub fn normalize(
    history: &mut History,
    current: i32,
    desired: i32,
    min: i32,
    max: i32,
    downscale_window: Duration,
    now: Instant,
) -> Normalized {
    let stabilized = stabilize(history, desired, downscale_window, now);
    let able = if stabilized != desired {
        SCALE_DOWN_STABILIZED
    } else {
        READY_FOR_NEW_SCALE
    };
    let (replicas, reason, message) = convert_with_rules(current, stabilized, min, max);
    Normalized {
        replicas,
        able,
        limited: (replicas != stabilized, reason, message),
    }
}

/// The default scale-up rules (upstream's `GenerateHPAScaleUpRules` for an unset
/// field): no window, the larger of 4 pods or 100% per 15 s.
fn default_scale_up() -> HPAScalingRules {
    HPAScalingRules {
        stabilization_window_seconds: Some(0),
        select_policy: Some("Max".to_owned()),
        policies: Some(vec![
            HPAScalingPolicy {
                type_: "Pods".to_owned(),
                value: 4,
                period_seconds: 15,
            },
            HPAScalingPolicy {
                type_: "Percent".to_owned(),
                value: 100,
                period_seconds: 15,
            },
        ]),
        tolerance: None,
    }
}

/// The default scale-down rules: 100% per 15 s; the window is the
/// `--horizontal-pod-autoscaler-downscale-stabilization` flag.
fn default_scale_down() -> HPAScalingRules {
    HPAScalingRules {
        stabilization_window_seconds: None,
        select_policy: Some("Max".to_owned()),
        policies: Some(vec![HPAScalingPolicy {
            type_: "Percent".to_owned(),
            value: 100,
            period_seconds: 15,
        }]),
        tolerance: None,
    }
}

/// One direction's rules with upstream's defaults for the fields left unset (what the
/// apiserver's defaulting does for a `behavior` that is set).
fn with_defaults(rules: Option<&HPAScalingRules>, defaults: HPAScalingRules) -> HPAScalingRules {
    let Some(rules) = rules else {
        return defaults;
    };
    HPAScalingRules {
        stabilization_window_seconds: rules
            .stabilization_window_seconds
            .or(defaults.stabilization_window_seconds),
        select_policy: rules.select_policy.clone().or(defaults.select_policy),
        policies: rules.policies.clone().or(defaults.policies),
        tolerance: rules.tolerance.clone(),
    }
}

/// A `behavior` with every field set: upstream's defaulting, then the downscale
/// window from the flag when still unset (`maybeInitScaleDownStabilizationWindow`).
pub fn complete_behavior(
    behavior: &HorizontalPodAutoscalerBehavior,
    downscale_window: Duration,
) -> (HPAScalingRules, HPAScalingRules) {
    let up = with_defaults(behavior.scale_up.as_ref(), default_scale_up());
    let mut down = with_defaults(behavior.scale_down.as_ref(), default_scale_down());
    if down.stabilization_window_seconds.is_none() {
        down.stabilization_window_seconds =
            Some(i32::try_from(downscale_window.as_secs()).unwrap_or(i32::MAX));
    }
    (up, down)
}

/// Upstream's `stabilizeRecommendationWithBehaviors`: the recommendation kept within
/// the lowest of the scale-up window and the highest of the scale-down window.
pub fn stabilize_with_behaviors(
    history: &mut History,
    current: i32,
    desired: i32,
    up_window: Duration,
    down_window: Duration,
    now: Instant,
) -> (i32, (&'static str, &'static str)) {
    let mut up = desired;
    let mut down = desired;
    let mut old = None;
    for (i, r) in history.recommendations.iter().enumerate() {
        if younger_than(r.at, now, up_window) {
            up = up.min(r.replicas);
        }
        if younger_than(r.at, now, down_window) {
            down = down.max(r.replicas);
        }
        if older_than(r.at, now, up_window) && older_than(r.at, now, down_window) {
            old = Some(i);
        }
    }
    let recommendation = current.max(up).min(down);
    let new = Recommendation {
        replicas: desired,
        at: now,
    };
    match old {
        Some(i) => history.recommendations[i] = new,
        None => history.recommendations.push(new),
    }
    let message = if desired >= current {
        SCALE_UP_STABILIZED
    } else {
        SCALE_DOWN_STABILIZED
    };
    (recommendation, message)
}

/// The replicas changed by `events` in the last `period_seconds`.
fn change_in_period(period_seconds: i32, events: &[ScaleEvent], now: Instant) -> i32 {
    events
        .iter()
        .filter(|e| younger_than(e.at, now, seconds(period_seconds)))
        .fold(0i32, |sum, e| sum.saturating_add(e.change))
}

/// Upstream's `calculateScaleUpLimitWithScalingRules`.
pub fn scale_up_limit_with_rules(
    current: i32,
    history: &History,
    rules: &HPAScalingRules,
    now: Instant,
) -> i32 {
    let select = rules.select_policy.as_deref().unwrap_or("Max");
    if select == "Disabled" {
        return current;
    }
    let min_change = select == "Min";
    let mut result = if min_change { i32::MAX } else { i32::MIN };
    for policy in rules.policies.iter().flatten() {
        let added = change_in_period(policy.period_seconds, &history.scale_up_events, now);
        let removed = change_in_period(policy.period_seconds, &history.scale_down_events, now);
        let start = current.saturating_sub(added).saturating_add(removed);
        let proposed = match policy.type_.as_str() {
            "Pods" => start.saturating_add(policy.value),
            // rounded up, or a small target could never grow
            "Percent" => (f64::from(start) * (1.0 + f64::from(policy.value) / 100.0)).ceil() as i32,
            _ => continue,
        };
        result = if min_change {
            result.min(proposed)
        } else {
            result.max(proposed)
        };
    }
    result
}

/// Upstream's `calculateScaleDownLimitWithBehaviors`.
pub fn scale_down_limit_with_rules(
    current: i32,
    history: &History,
    rules: &HPAScalingRules,
    now: Instant,
) -> i32 {
    let select = rules.select_policy.as_deref().unwrap_or("Max");
    if select == "Disabled" {
        return current;
    }
    let min_change = select == "Min";
    let mut result = if min_change { i32::MIN } else { i32::MAX };
    for policy in rules.policies.iter().flatten() {
        let added = change_in_period(policy.period_seconds, &history.scale_up_events, now);
        let removed = change_in_period(policy.period_seconds, &history.scale_down_events, now);
        let start = current.saturating_sub(added).saturating_add(removed);
        let proposed = match policy.type_.as_str() {
            "Pods" => start.saturating_sub(policy.value),
            "Percent" => (f64::from(start) * (1.0 - f64::from(policy.value) / 100.0)) as i32,
            _ => continue,
        };
        result = if min_change {
            result.max(proposed)
        } else {
            result.min(proposed)
        };
    }
    result
}

/// Upstream's `convertDesiredReplicasWithBehaviorRate`.
pub fn convert_with_behavior_rate(
    history: &History,
    current: i32,
    desired: i32,
    min: i32,
    max: i32,
    up: &HPAScalingRules,
    down: &HPAScalingRules,
    now: Instant,
) -> (i32, &'static str, &'static str) {
    if desired > current {
        // no further growth until the recorded scale-ups age out
        let limit = scale_up_limit_with_rules(current, history, up, now).max(current);
        let (maximum, (reason, message)) = if max > limit {
            (limit, SCALE_UP_LIMIT)
        } else {
            (max, TOO_MANY)
        };
        if desired > maximum {
            return (maximum, reason, message);
        }
    } else if desired < current {
        let limit = scale_down_limit_with_rules(current, history, down, now).min(current);
        let (minimum, (reason, message)) = if min < limit {
            (limit, SCALE_DOWN_LIMIT)
        } else {
            (min, TOO_FEW)
        };
        if desired < minimum {
            return (minimum, reason, message);
        }
    }
    (desired, WITHIN_RANGE.0, WITHIN_RANGE.1)
}

/// Upstream's `normalizeDesiredReplicasWithBehaviors`.
#[allow(clippy::too_many_arguments)]
pub fn normalize_with_behaviors(
    history: &mut History,
    behavior: &HorizontalPodAutoscalerBehavior,
    current: i32,
    desired: i32,
    min: i32,
    max: i32,
    downscale_window: Duration,
    now: Instant,
) -> Normalized {
    let (up, down) = complete_behavior(behavior, downscale_window);
    let (stabilized, stabilized_reason) = stabilize_with_behaviors(
        history,
        current,
        desired,
        seconds(up.stabilization_window_seconds.unwrap_or(0)),
        seconds(down.stabilization_window_seconds.unwrap_or(0)),
        now,
    );
    let able = if stabilized != desired {
        stabilized_reason
    } else {
        READY_FOR_NEW_SCALE
    };
    let (replicas, reason, message) =
        convert_with_behavior_rate(history, current, stabilized, min, max, &up, &down, now);
    Normalized {
        replicas,
        able,
        limited: (replicas != stabilized, reason, message),
    }
}

/// The longest policy period of some rules.
fn longest_period(rules: &HPAScalingRules) -> i32 {
    rules
        .policies
        .iter()
        .flatten()
        .map(|p| p.period_seconds)
        .max()
        .unwrap_or(0)
        .max(0)
}

/// Upstream's `storeScaleEvent`: records a scale change (only with `behavior`),
/// reusing the slot of an event older than every policy period.
pub fn store_scale_event(
    history: &mut History,
    behavior: Option<&HorizontalPodAutoscalerBehavior>,
    downscale_window: Duration,
    previous: i32,
    new: i32,
    now: Instant,
) {
    let Some(behavior) = behavior else {
        return;
    };
    let (up, down) = complete_behavior(behavior, downscale_window);
    let (events, rules, change) = if new > previous {
        (
            &mut history.scale_up_events,
            &up,
            new.saturating_sub(previous),
        )
    } else {
        (
            &mut history.scale_down_events,
            &down,
            previous.saturating_sub(new),
        )
    };
    let longest = seconds(longest_period(rules));
    for e in events.iter_mut() {
        if older_than(e.at, now, longest) {
            e.outdated = true;
        }
    }
    let event = ScaleEvent {
        change,
        at: now,
        outdated: false,
    };
    match events.iter().rposition(|e| e.outdated) {
        Some(i) => events[i] = event,
        None => events.push(event),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(type_: &str, value: i32, period_seconds: i32) -> HPAScalingPolicy {
        HPAScalingPolicy {
            type_: type_.to_owned(),
            value,
            period_seconds,
        }
    }

    fn rules(select: &str, policies: Vec<HPAScalingPolicy>) -> HPAScalingRules {
        HPAScalingRules {
            select_policy: Some(select.to_owned()),
            policies: Some(policies),
            stabilization_window_seconds: Some(0),
            tolerance: None,
        }
    }

    // upstream TestConvertDesiredReplicasWithRules
    #[test]
    fn rules_without_behavior_bound_the_count() {
        assert_eq!(
            convert_with_rules(5, 7, 2, 8),
            (7, "DesiredWithinRange", WITHIN_RANGE.1)
        );
        assert_eq!(convert_with_rules(5, 1, 2, 8).0, 2);
        assert_eq!(convert_with_rules(5, 1, 2, 8).1, "TooFewReplicas");
        assert_eq!(
            convert_with_rules(1, 20, 1, 10),
            (4, SCALE_UP_LIMIT.0, SCALE_UP_LIMIT.1)
        );
        assert_eq!(convert_with_rules(3, 20, 1, 10).0, 6);
        assert_eq!(convert_with_rules(5, 20, 1, 8), (8, TOO_MANY.0, TOO_MANY.1));
        assert_eq!(scale_up_limit(0), 4);
        assert_eq!(scale_up_limit(i32::MAX), i32::MAX);
    }

    #[test]
    fn downscale_is_stabilized_to_the_highest_recent_recommendation() {
        let t0 = Instant::now();
        let window = Duration::from_secs(300);
        let mut h = History::default();
        record_initial(&mut h, 5, t0);
        // a lower recommendation inside the window keeps 5
        let n = normalize(&mut h, 5, 2, 1, 10, window, t0 + Duration::from_secs(10));
        assert_eq!(n.replicas, 5);
        assert_eq!(n.able.0, "ScaleDownStabilized");
        assert!(!n.limited.0);
        // once the window passed, both old samples expire and the low one applies
        let n = normalize(&mut h, 5, 2, 1, 10, window, t0 + Duration::from_secs(400));
        assert_eq!(n.replicas, 2);
        assert_eq!(n.able.0, "ReadyForNewScale");
        // the expired slot was reused, not appended
        assert_eq!(h.recommendations.len(), 2);
    }

    #[test]
    fn scale_up_without_behavior_is_limited_and_reported() {
        let now = Instant::now();
        let mut h = History::default();
        let n = normalize(&mut h, 2, 12, 1, 20, Duration::from_secs(300), now);
        assert_eq!(n.replicas, 4);
        assert_eq!(n.limited, (true, SCALE_UP_LIMIT.0, SCALE_UP_LIMIT.1));
        let n = normalize(&mut h, 4, 6, 1, 5, Duration::from_secs(300), now);
        assert_eq!(n.replicas, 5);
        assert_eq!(n.limited.1, "TooManyReplicas");
    }

    // upstream TestScaleUpRCImmediately-style and the generateScalingRules defaults
    #[test]
    fn default_behavior_scales_up_by_max_of_four_pods_or_double() {
        let now = Instant::now();
        let behavior = HorizontalPodAutoscalerBehavior::default();
        let (up, down) = complete_behavior(&behavior, Duration::from_secs(300));
        assert_eq!(down.stabilization_window_seconds, Some(300));
        assert_eq!(up.stabilization_window_seconds, Some(0));
        let h = History::default();
        assert_eq!(scale_up_limit_with_rules(1, &h, &up, now), 5);
        assert_eq!(scale_up_limit_with_rules(10, &h, &up, now), 20);
        assert_eq!(scale_down_limit_with_rules(10, &h, &down, now), 0);
    }

    // upstream TestCalculateScaleUpLimitWithScalingRules / ScaleDown
    #[test]
    fn rate_policies_count_changes_in_their_period() {
        let now = Instant::now() + Duration::from_secs(1000);
        let mut h = History::default();
        h.scale_up_events.push(ScaleEvent {
            change: 3,
            at: now - Duration::from_secs(10),
            outdated: false,
        });
        h.scale_up_events.push(ScaleEvent {
            change: 5,
            at: now - Duration::from_secs(100),
            outdated: false,
        });
        let up = rules("Max", vec![policy("Pods", 2, 60)]);
        // 10 now, 3 added within the minute: start 7, plus 2
        assert_eq!(scale_up_limit_with_rules(10, &h, &up, now), 9);
        let both = rules(
            "Min",
            vec![policy("Pods", 2, 60), policy("Percent", 100, 600)],
        );
        // 600 s period: start 10-8=2, doubled 4; Min picks 4 over 9
        assert_eq!(scale_up_limit_with_rules(10, &h, &both, now), 4);
        let disabled = rules("Disabled", vec![policy("Pods", 2, 60)]);
        assert_eq!(scale_up_limit_with_rules(10, &h, &disabled, now), 10);

        h.scale_down_events.push(ScaleEvent {
            change: 2,
            at: now - Duration::from_secs(5),
            outdated: false,
        });
        let down = rules("Max", vec![policy("Percent", 50, 60)]);
        // start 10 - 3 + 2 = 9, half of it floored
        assert_eq!(scale_down_limit_with_rules(10, &h, &down, now), 4);
        let down = rules(
            "Min",
            vec![policy("Percent", 50, 60), policy("Pods", 1, 60)],
        );
        assert_eq!(scale_down_limit_with_rules(10, &h, &down, now), 8);
    }

    #[test]
    fn behavior_limits_and_conditions() {
        let now = Instant::now();
        let behavior = HorizontalPodAutoscalerBehavior {
            scale_up: Some(rules("Max", vec![policy("Pods", 1, 60)])),
            scale_down: Some(HPAScalingRules {
                stabilization_window_seconds: Some(0),
                ..rules("Max", vec![policy("Pods", 2, 60)])
            }),
        };
        let window = Duration::from_secs(300);
        let mut h = History::default();
        let n = normalize_with_behaviors(&mut h, &behavior, 3, 10, 1, 20, window, now);
        assert_eq!(n.replicas, 4);
        assert_eq!(n.limited, (true, SCALE_UP_LIMIT.0, SCALE_UP_LIMIT.1));
        assert_eq!(n.able.0, "ReadyForNewScale");
        store_scale_event(&mut h, Some(&behavior), window, 3, 4, now);
        // the minute's budget is spent: no growth
        let n = normalize_with_behaviors(&mut h, &behavior, 4, 10, 1, 20, window, now);
        assert_eq!(n.replicas, 4);
        // the scale-up of this minute counts against the period's start: 10 - 1 - 2
        let n = normalize_with_behaviors(&mut h, &behavior, 10, 1, 5, 20, window, now);
        assert_eq!(n.replicas, 7);
        assert_eq!(n.limited.1, "ScaleDownLimit");
        let n = normalize_with_behaviors(&mut h, &behavior, 6, 1, 5, 20, window, now);
        assert_eq!((n.replicas, n.limited.1), (5, "TooFewReplicas"));
    }

    #[test]
    fn behavior_windows_stabilize_both_directions() {
        let t0 = Instant::now();
        let mut h = History::default();
        record_initial(&mut h, 5, t0);
        let up = Duration::from_secs(60);
        let down = Duration::from_secs(300);
        // a rise within the scale-up window is held at the lowest recent
        let (r, why) =
            stabilize_with_behaviors(&mut h, 5, 8, up, down, t0 + Duration::from_secs(1));
        assert_eq!((r, why.0), (5, "ScaleUpStabilized"));
        // a drop within the scale-down window is held at the highest recent
        let (r, why) =
            stabilize_with_behaviors(&mut h, 5, 2, up, down, t0 + Duration::from_secs(2));
        assert_eq!((r, why.0), (5, "ScaleDownStabilized"));
        // once the scale-up window has passed, a rise applies at once
        let (r, _) =
            stabilize_with_behaviors(&mut h, 5, 9, up, down, t0 + Duration::from_secs(120));
        assert_eq!(r, 9);
        // the expired-for-both slot is only reused when older than both windows
        assert_eq!(h.recommendations.len(), 4);
    }

    #[test]
    fn scale_events_reuse_outdated_slots() {
        let t0 = Instant::now();
        let behavior = HorizontalPodAutoscalerBehavior {
            scale_up: Some(rules("Max", vec![policy("Pods", 4, 15)])),
            scale_down: None,
        };
        let mut h = History::default();
        let w = Duration::from_secs(300);
        store_scale_event(&mut h, Some(&behavior), w, 1, 3, t0);
        store_scale_event(
            &mut h,
            Some(&behavior),
            w,
            3,
            4,
            t0 + Duration::from_secs(1),
        );
        assert_eq!(h.scale_up_events.len(), 2);
        store_scale_event(
            &mut h,
            Some(&behavior),
            w,
            4,
            6,
            t0 + Duration::from_secs(60),
        );
        assert_eq!(h.scale_up_events.len(), 2);
        assert_eq!(
            h.scale_up_events.iter().filter(|e| e.change == 2).count(),
            2
        );
        store_scale_event(&mut h, None, w, 4, 6, t0);
        store_scale_event(&mut h, Some(&behavior), w, 6, 2, t0);
        assert_eq!(h.scale_down_events[0].change, 4);
    }
}
