//! `rkube`: parses the command line and runs the subcommand (see the library).

use clap::Parser;
use tracing_subscriber::EnvFilter;

/// mimalloc: per-thread free lists make the many small allocations of request
/// handling and scheduling cheaper than glibc's malloc (see the README's benchmarks).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = rkube::Cli::parse();
    rkube::run(cli).await?;
    Ok(())
}
