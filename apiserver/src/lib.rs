//! kube-apiserver as a library: flags ([`options`]), certificates ([`certs`]), the
//! request chain's first steps ([`auth`]), the HTTP router ([`http`]) and the TLS
//! serving loop ([`run`], [`Server`]) over the storage layer ([`storage`]). The
//! `kube-apiserver` binary and `rkube up` are thin callers of this crate.

pub mod auth;
pub mod certs;
pub mod crd;
pub mod http;
mod managed_fields;
pub mod options;
pub mod registry;
mod schema;
mod server;
pub mod storage;
mod typed;

pub use options::ServerOptions;
pub use server::{Server, ServerError, run, shutdown_signal};
