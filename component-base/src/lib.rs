//! What the control-plane components beside the apiserver share, as upstream's
//! `k8s.io/component-base` and client-go's `leaderelection`: Lease-based leader
//! election ([`leader_election`]) and the secure port serving `/healthz`, `/readyz`,
//! `/livez` and `/metrics` ([`serving`]).

pub mod leader_election;
pub mod serving;
