//! What the control-plane components beside the apiserver share, as upstream's
//! `k8s.io/component-base` and client-go's `leaderelection`: Lease-based leader
//! election ([`leader_election`]), the API client's HTTP/2 transport ([`client`]), the event recorder ([`events`]) and the secure port serving `/healthz`, `/readyz`,
//! `/livez` and `/metrics` ([`serving`]).

pub mod client;
pub mod events;
pub mod leader_election;
pub mod serving;

use std::time::Duration;

/// A Go duration such as `15s`, `1m30s`, `500ms`, `1h`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let mut rest = text.trim();
    if rest == "0" {
        return Some(Duration::ZERO);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_end].parse().ok()?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_end..];
        total += number * unit;
    }
    // absurd values are refused rather than overflowing
    Duration::try_from_secs_f64(total).ok()
}
