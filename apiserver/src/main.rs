//! `kube-apiserver`: parses upstream's flags and runs the apiserver until SIGINT or SIGTERM.

use clap::Parser;
use tracing_subscriber::EnvFilter;

/// mimalloc: per-thread free lists make the many small allocations of request
/// handling and scheduling cheaper than glibc's malloc (see the README's benchmarks).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let options = apiserver::ServerOptions::parse();
    match apiserver::run(options).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kube-apiserver: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
