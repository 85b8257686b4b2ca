//! Cron schedules as upstream's CronJob controller reads them: robfig/cron v3's
//! standard parser (`cron.ParseStandard`) and its `Next`.
//!
//! A schedule is five fields (minute, hour, day of month, month, day of week), each a
//! comma list of `*`/`?`, numbers, names (`JAN`..`DEC`, `SUN`..`SAT`, any case),
//! ranges `a-b` and steps `/n`; or a descriptor (`@yearly`, `@annually`, `@monthly`,
//! `@weekly`, `@daily`, `@midnight`, `@hourly`, `@every <duration>`). As robfig's (and
//! Vixie cron's) rule, when both day fields are restricted a day matching either runs;
//! a day field written `*` (or `?`, or `*/1`) leaves the other in charge.
//!
//! Times are computed in the schedule's zone with robfig's walk: whole months, then
//! days at midnight, then absolute hours, minutes and seconds. Across a DST change a
//! wall-clock time that does not exist is skipped that day, and one that happens twice
//! runs twice, as upstream.

use std::time::Duration;

use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan, Zoned};

/// Set on a field written `*` or `?` (robfig's `starBit`).
const STAR: u64 = 1 << 63;

/// The bounds and names of one field.
struct Bounds {
    min: u32,
    max: u32,
    names: &'static [(&'static str, u32)],
}

const MINUTES: Bounds = Bounds {
    min: 0,
    max: 59,
    names: &[],
};
const HOURS: Bounds = Bounds {
    min: 0,
    max: 23,
    names: &[],
};
const DOM: Bounds = Bounds {
    min: 1,
    max: 31,
    names: &[],
};
const MONTHS: Bounds = Bounds {
    min: 1,
    max: 12,
    names: &[
        ("jan", 1),
        ("feb", 2),
        ("mar", 3),
        ("apr", 4),
        ("may", 5),
        ("jun", 6),
        ("jul", 7),
        ("aug", 8),
        ("sep", 9),
        ("oct", 10),
        ("nov", 11),
        ("dec", 12),
    ],
};
const DOW: Bounds = Bounds {
    min: 0,
    max: 6,
    names: &[
        ("sun", 0),
        ("mon", 1),
        ("tue", 2),
        ("wed", 3),
        ("thu", 4),
        ("fri", 5),
        ("sat", 6),
    ],
};

/// Every value of `bounds`, marked as written `*`.
fn all(bounds: &Bounds) -> u64 {
    bits(bounds.min, bounds.max, 1) | STAR
}

/// The values `min..=max` every `step`.
fn bits(min: u32, max: u32, step: u32) -> u64 {
    let mut out = 0u64;
    let mut v = min;
    while v <= max && v < 63 {
        out |= 1 << v;
        match v.checked_add(step.max(1)) {
            Some(next) => v = next,
            None => break,
        }
    }
    out
}

fn has(set: u64, value: i8) -> bool {
    (0..63).contains(&value) && set & (1 << value) != 0
}

/// A parsed schedule.
#[derive(Clone, Debug)]
pub struct Schedule {
    kind: Kind,
    tz: TimeZone,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    /// Fields as bit sets (robfig's `SpecSchedule`); seconds are always `0`.
    Spec {
        minute: u64,
        hour: u64,
        dom: u64,
        month: u64,
        dow: u64,
    },
    /// `@every <duration>`, whole seconds, at least one (robfig's
    /// `ConstantDelaySchedule`).
    Every(Duration),
}

/// Go's `strconv.Atoi` as robfig's `mustParseInt` reports it.
fn parse_int(text: &str) -> Result<u32, String> {
    let n: i64 = text.parse().map_err(|e: std::num::ParseIntError| {
        let why = match e.kind() {
            std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                "value out of range"
            }
            _ => "invalid syntax",
        };
        format!("failed to parse int from {text}: strconv.Atoi: parsing {text:?}: {why}")
    })?;
    if n < 0 {
        return Err(format!("negative number ({n}) not allowed: {text}"));
    }
    u32::try_from(n).map_err(|_| {
        format!(
            "failed to parse int from {text}: strconv.Atoi: parsing {text:?}: value out of range"
        )
    })
}

fn parse_int_or_name(text: &str, bounds: &Bounds) -> Result<u32, String> {
    let lower = text.to_ascii_lowercase();
    if let Some((_, v)) = bounds.names.iter().find(|(name, _)| *name == lower) {
        return Ok(*v);
    }
    parse_int(text)
}

/// One comma-separated part of a field (robfig's `getRange`).
fn parse_range(expr: &str, bounds: &Bounds) -> Result<u64, String> {
    let parts: Vec<&str> = expr.split('/').collect();
    let low_high: Vec<&str> = parts[0].split('-').collect();
    let single = low_high.len() == 1;
    let mut extra = 0;
    let (start, mut end) = if low_high[0] == "*" || low_high[0] == "?" {
        extra = STAR;
        (bounds.min, bounds.max)
    } else {
        let start = parse_int_or_name(low_high[0], bounds)?;
        let end = match low_high.len() {
            1 => start,
            2 => parse_int_or_name(low_high[1], bounds)?,
            _ => return Err(format!("too many hyphens: {expr}")),
        };
        (start, end)
    };
    let step = match parts.len() {
        1 => 1,
        2 => {
            let step = parse_int(parts[1])?;
            // "N/step" means "N-max/step"
            if single {
                end = bounds.max;
            }
            if step > 1 {
                extra = 0;
            }
            step
        }
        _ => return Err(format!("too many slashes: {expr}")),
    };
    if start < bounds.min {
        return Err(format!(
            "beginning of range ({start}) below minimum ({}): {expr}",
            bounds.min
        ));
    }
    if end > bounds.max {
        return Err(format!(
            "end of range ({end}) above maximum ({}): {expr}",
            bounds.max
        ));
    }
    if start > end {
        return Err(format!(
            "beginning of range ({start}) beyond end of range ({end}): {expr}"
        ));
    }
    if step == 0 {
        return Err(format!("step of range should be a positive number: {expr}"));
    }
    Ok(bits(start, end, step) | extra)
}

fn parse_field(field: &str, bounds: &Bounds) -> Result<u64, String> {
    field
        .split(',')
        .try_fold(0u64, |acc, part| Ok(acc | parse_range(part, bounds)?))
}

/// Go's `time.LoadLocation`: `""` and `UTC` are UTC, `Local` the system's zone, any
/// other name an IANA zone from the system's tz database.
pub fn load_location(name: &str) -> Result<TimeZone, String> {
    match name {
        "" | "UTC" => Ok(TimeZone::UTC),
        "Local" => Ok(TimeZone::system()),
        _ => TimeZone::get(name).map_err(|_| format!("unknown time zone {name}")),
    }
}

impl Schedule {
    /// Parses `spec` as `cron.ParseStandard` does, in `tz` unless it starts with
    /// `TZ=<zone> ` or `CRON_TZ=<zone> `.
    pub fn parse(spec: &str, tz: TimeZone) -> Result<Schedule, String> {
        if spec.is_empty() {
            return Err("empty spec string".to_owned());
        }
        let mut tz = tz;
        let mut spec = spec;
        if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
            let eq = spec.find('=').unwrap_or(0);
            let space = spec.find(' ').unwrap_or(spec.len());
            let name = spec.get(eq + 1..space).unwrap_or_default();
            tz = load_location(name).map_err(|e| format!("provided bad location {name}: {e}"))?;
            spec = spec[space..].trim();
        }
        if spec.starts_with('@') {
            return Ok(Schedule {
                kind: descriptor(spec)?,
                tz,
            });
        }
        let fields: Vec<&str> = spec.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(format!(
                "expected exactly 5 fields, found {}: [{}]",
                fields.len(),
                fields.join(" ")
            ));
        }
        Ok(Schedule {
            kind: Kind::Spec {
                minute: parse_field(fields[0], &MINUTES)?,
                hour: parse_field(fields[1], &HOURS)?,
                dom: parse_field(fields[2], &DOM)?,
                month: parse_field(fields[3], &MONTHS)?,
                dow: parse_field(fields[4], &DOW)?,
            },
            tz,
        })
    }

    /// The zone the schedule's fields are read in.
    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    /// The first activation strictly after `t` (to the second), or `None` when none
    /// comes within five years (a date that never exists, such as `30 2`).
    pub fn next(&self, t: Timestamp) -> Option<Timestamp> {
        match &self.kind {
            Kind::Every(every) => {
                let whole = Timestamp::from_second(t.as_second()).ok()?;
                whole.checked_add(*every).ok()
            }
            Kind::Spec {
                minute,
                hour,
                dom,
                month,
                dow,
            } => {
                let day_matches = |z: &Zoned| {
                    let dom_match = has(*dom, z.day());
                    let dow_match = has(*dow, z.weekday().to_sunday_zero_offset());
                    if dom & STAR != 0 || dow & STAR != 0 {
                        dom_match && dow_match
                    } else {
                        dom_match || dow_match
                    }
                };
                self.next_spec(t, *minute, *hour, *month, day_matches)
            }
        }
    }

    fn next_spec(
        &self,
        t: Timestamp,
        minute: u64,
        hour: u64,
        month: u64,
        day_matches: impl Fn(&Zoned) -> bool,
    ) -> Option<Timestamp> {
        let tz = &self.tz;
        let at = |y: i16, m: i8, d: i8, h: i8| -> Option<Zoned> {
            jiff::civil::DateTime::new(y, m, d, h, 0, 0, 0)
                .ok()?
                .to_zoned(tz.clone())
                .ok()
        };
        // the upcoming whole second
        let mut z = Timestamp::from_second(t.as_second().checked_add(1)?)
            .ok()?
            .to_zoned(tz.clone());
        let mut added = false;
        let year_limit = i32::from(z.year()) + 5;
        'wrap: loop {
            if i32::from(z.year()) > year_limit {
                return None;
            }
            while !has(month, z.month()) {
                if !added {
                    added = true;
                    z = at(z.year(), z.month(), 1, 0)?;
                }
                z = z.checked_add(1.month()).ok()?;
                if z.month() == 1 {
                    continue 'wrap;
                }
            }
            while !day_matches(&z) {
                if !added {
                    added = true;
                    z = at(z.year(), z.month(), z.day(), 0)?;
                }
                z = z.checked_add(1.day()).ok()?;
                // where DST moved midnight, get back to it
                let h = z.hour();
                if h != 0 {
                    let shift = if h > 12 { 24 - h } else { -h };
                    z = z.checked_add(i64::from(shift).hours()).ok()?;
                }
                if z.day() == 1 {
                    continue 'wrap;
                }
            }
            while !has(hour, z.hour()) {
                if !added {
                    added = true;
                    z = at(z.year(), z.month(), z.day(), z.hour())?;
                }
                z = z.checked_add(1.hour()).ok()?;
                if z.hour() == 0 {
                    continue 'wrap;
                }
            }
            while !has(minute, z.minute()) {
                if !added {
                    added = true;
                    let s = z.timestamp().as_second();
                    z = Timestamp::from_second(s - s.rem_euclid(60))
                        .ok()?
                        .to_zoned(tz.clone());
                }
                z = z.checked_add(1.minute()).ok()?;
                if z.minute() == 0 {
                    continue 'wrap;
                }
            }
            // seconds: only 0 in the standard parser
            if z.second() != 0 {
                let s = z.timestamp().as_second();
                z = Timestamp::from_second(s - s.rem_euclid(60) + 60)
                    .ok()?
                    .to_zoned(tz.clone());
                added = true;
                continue 'wrap;
            }
            return Some(z.timestamp());
        }
    }
}

/// robfig's `parseDescriptor`.
fn descriptor(spec: &str) -> Result<Kind, String> {
    let daily = |minute, hour, dom, month, dow| Kind::Spec {
        minute,
        hour,
        dom,
        month,
        dow,
    };
    Ok(match spec {
        "@yearly" | "@annually" => daily(1, 1, 1 << 1, 1 << 1, all(&DOW)),
        "@monthly" => daily(1, 1, 1 << 1, all(&MONTHS), all(&DOW)),
        "@weekly" => daily(1, 1, all(&DOM), all(&MONTHS), 1),
        "@daily" | "@midnight" => daily(1, 1, all(&DOM), all(&MONTHS), all(&DOW)),
        "@hourly" => daily(1, all(&HOURS), all(&DOM), all(&MONTHS), all(&DOW)),
        _ => match spec.strip_prefix("@every ") {
            Some(text) => {
                let every = component_base::parse_duration(text).ok_or_else(|| {
                    format!("failed to parse duration {spec}: time: invalid duration {text:?}")
                })?;
                // at least a second, in whole seconds
                let secs = every.as_secs().max(1);
                Kind::Every(Duration::from_secs(secs))
            }
            None => return Err(format!("unrecognized descriptor: {spec}")),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn utc(spec: &str) -> Schedule {
        Schedule::parse(spec, TimeZone::UTC).unwrap()
    }

    /// The next `n` activations after `from`.
    fn nexts(s: &Schedule, from: &str, n: usize) -> Vec<String> {
        let mut t = ts(from);
        let mut out = Vec::new();
        for _ in 0..n {
            t = s.next(t).unwrap();
            out.push(t.to_string());
        }
        out
    }

    #[test]
    fn every_minute_and_the_next_second_rule() {
        let s = utc("* * * * *");
        assert_eq!(
            nexts(&s, "2024-05-01T10:00:00Z", 2),
            ["2024-05-01T10:01:00Z", "2024-05-01T10:02:00Z"]
        );
        assert_eq!(
            nexts(&s, "2024-05-01T10:00:30.5Z", 1),
            ["2024-05-01T10:01:00Z"]
        );
    }

    #[test]
    fn macros_are_robfigs_descriptors() {
        let from = "2024-05-15T10:20:30Z";
        assert_eq!(nexts(&utc("@yearly"), from, 1), ["2025-01-01T00:00:00Z"]);
        assert_eq!(nexts(&utc("@annually"), from, 1), ["2025-01-01T00:00:00Z"]);
        assert_eq!(nexts(&utc("@monthly"), from, 1), ["2024-06-01T00:00:00Z"]);
        // 2024-05-15 is a Wednesday: the next Sunday is the 19th
        assert_eq!(nexts(&utc("@weekly"), from, 1), ["2024-05-19T00:00:00Z"]);
        assert_eq!(nexts(&utc("@daily"), from, 1), ["2024-05-16T00:00:00Z"]);
        assert_eq!(nexts(&utc("@midnight"), from, 1), ["2024-05-16T00:00:00Z"]);
        assert_eq!(nexts(&utc("@hourly"), from, 1), ["2024-05-15T11:00:00Z"]);
        assert_eq!(nexts(&utc("@every 90s"), from, 1), ["2024-05-15T10:22:00Z"]);
        assert_eq!(
            Schedule::parse("@fortnightly", TimeZone::UTC).unwrap_err(),
            "unrecognized descriptor: @fortnightly"
        );
    }

    #[test]
    fn steps_ranges_and_lists() {
        assert_eq!(
            nexts(&utc("*/15 * * * *"), "2024-05-01T10:01:00Z", 4),
            [
                "2024-05-01T10:15:00Z",
                "2024-05-01T10:30:00Z",
                "2024-05-01T10:45:00Z",
                "2024-05-01T11:00:00Z"
            ]
        );
        // "N/step" runs from N to the maximum
        assert_eq!(
            nexts(&utc("50/5 * * * *"), "2024-05-01T10:51:00Z", 3),
            [
                "2024-05-01T10:55:00Z",
                "2024-05-01T11:50:00Z",
                "2024-05-01T11:55:00Z"
            ]
        );
        assert_eq!(
            nexts(&utc("0 9-17/4 * * *"), "2024-05-01T10:00:00Z", 3),
            [
                "2024-05-01T13:00:00Z",
                "2024-05-01T17:00:00Z",
                "2024-05-02T09:00:00Z"
            ]
        );
        assert_eq!(
            nexts(&utc("5,10 1 * * *"), "2024-05-01T01:07:00Z", 2),
            ["2024-05-01T01:10:00Z", "2024-05-02T01:05:00Z"]
        );
    }

    #[test]
    fn month_and_weekday_names_in_any_case() {
        // Mondays and Fridays of March 2024
        assert_eq!(
            nexts(&utc("0 0 * Mar mon,FRI"), "2024-01-01T00:00:00Z", 3),
            [
                "2024-03-01T00:00:00Z",
                "2024-03-04T00:00:00Z",
                "2024-03-08T00:00:00Z"
            ]
        );
        assert_eq!(
            nexts(&utc("0 0 1 jan-feb *"), "2024-01-15T00:00:00Z", 2),
            ["2024-02-01T00:00:00Z", "2025-01-01T00:00:00Z"]
        );
    }

    #[test]
    fn both_day_fields_restricted_match_either() {
        // the 13th, or any Friday: 2024-09-06 is a Friday, the 13th a Friday too
        assert_eq!(
            nexts(&utc("0 0 13 * 5"), "2024-09-01T00:00:00Z", 3),
            [
                "2024-09-06T00:00:00Z",
                "2024-09-13T00:00:00Z",
                "2024-09-20T00:00:00Z"
            ]
        );
        // a star day of month leaves the weekday alone in charge
        assert_eq!(
            nexts(&utc("0 0 * * 5"), "2024-09-01T00:00:00Z", 1),
            ["2024-09-06T00:00:00Z"]
        );
        // a stepped star is a restriction: "*/2" OR Friday
        assert_eq!(
            nexts(&utc("0 0 */10 * 5"), "2024-09-01T00:00:00Z", 3),
            [
                "2024-09-06T00:00:00Z",
                "2024-09-11T00:00:00Z",
                "2024-09-13T00:00:00Z"
            ]
        );
        // "?" counts as a star
        assert_eq!(
            nexts(&utc("0 0 13 * ?"), "2024-09-01T00:00:00Z", 1),
            ["2024-09-13T00:00:00Z"]
        );
    }

    #[test]
    fn malformed_schedules_are_refused_with_robfigs_messages() {
        let err = |s| Schedule::parse(s, TimeZone::UTC).unwrap_err();
        assert_eq!(err(""), "empty spec string");
        assert_eq!(
            err("every day"),
            "expected exactly 5 fields, found 2: [every day]"
        );
        assert_eq!(
            err("60 * * * *"),
            "end of range (60) above maximum (59): 60"
        );
        assert_eq!(
            err("* * 0 * *"),
            "beginning of range (0) below minimum (1): 0"
        );
        assert_eq!(err("* * * * 7"), "end of range (7) above maximum (6): 7");
        assert_eq!(
            err("5-1 * * * *"),
            "beginning of range (5) beyond end of range (1): 5-1"
        );
        assert_eq!(
            err("*/0 * * * *"),
            "step of range should be a positive number: */0"
        );
        assert_eq!(err("1-2-3 * * * *"), "too many hyphens: 1-2-3");
        assert_eq!(err("1/2/3 * * * *"), "too many slashes: 1/2/3");
        assert_eq!(
            err("x * * * *"),
            "failed to parse int from x: strconv.Atoi: parsing \"x\": invalid syntax"
        );
    }

    #[test]
    fn a_day_that_never_comes_has_no_next_time() {
        assert_eq!(utc("0 0 31 2 *").next(ts("2024-01-01T00:00:00Z")), None);
        // a leap day does come
        assert_eq!(
            nexts(&utc("0 0 29 2 *"), "2025-01-01T00:00:00Z", 1),
            ["2028-02-29T00:00:00Z"]
        );
    }

    #[test]
    fn times_are_read_in_the_schedules_zone() {
        let tz = load_location("Europe/Berlin").unwrap();
        let s = Schedule::parse("0 9 * * *", tz).unwrap();
        // 09:00 in Berlin is 07:00 UTC in summer, 08:00 in winter
        assert_eq!(
            nexts(&s, "2024-07-01T12:00:00Z", 1),
            ["2024-07-02T07:00:00Z"]
        );
        assert_eq!(
            nexts(&s, "2024-12-01T12:00:00Z", 1),
            ["2024-12-02T08:00:00Z"]
        );
        // a TZ= prefix names the zone itself
        let s = Schedule::parse("TZ=America/New_York 0 9 * * *", TimeZone::UTC).unwrap();
        assert_eq!(
            nexts(&s, "2024-07-01T12:00:00Z", 1),
            ["2024-07-01T13:00:00Z"]
        );
        assert!(load_location("Mars/Olympus_Mons").is_err());
    }

    #[test]
    fn across_dst_a_missing_time_is_skipped_and_a_repeated_one_runs_twice() {
        let tz = load_location("America/New_York").unwrap();
        // 2024-03-10: 02:00 EST jumps to 03:00 EDT, so 02:30 does not exist that day
        let s = Schedule::parse("30 2 * * *", tz.clone()).unwrap();
        assert_eq!(
            nexts(&s, "2024-03-09T12:00:00Z", 2),
            // nothing on the 10th: 02:30 EDT on the 11th and 12th (06:30Z)
            ["2024-03-11T06:30:00Z", "2024-03-12T06:30:00Z"]
        );
        // 2024-11-03: 02:00 EDT falls back to 01:00 EST, so 01:30 happens twice
        let s = Schedule::parse("30 1 * * *", tz.clone()).unwrap();
        assert_eq!(
            nexts(&s, "2024-11-03T04:00:00Z", 3),
            [
                "2024-11-03T05:30:00Z",
                "2024-11-03T06:30:00Z",
                "2024-11-04T06:30:00Z"
            ]
        );
        // hourly across the spring change: 01:00 EST, then 03:00 EDT an hour later
        let s = Schedule::parse("0 * * * *", tz).unwrap();
        assert_eq!(
            nexts(&s, "2024-03-10T05:30:00Z", 2),
            ["2024-03-10T06:00:00Z", "2024-03-10T07:00:00Z"]
        );
    }
}
