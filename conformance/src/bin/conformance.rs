//! `conformance run --kubeconfig FILE [--focus REGEX]`: runs the scenarios against the
//! cluster of a kubeconfig, prints one line per scenario and a closing
//! `N passed, M failed`; exits non-zero if any failed.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "rkube's conformance scenarios, runnable against any cluster")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the scenarios.
    Run {
        /// The kubeconfig of the cluster under test.
        #[arg(long, env = "KUBECONFIG")]
        kubeconfig: std::path::PathBuf,
        /// Only scenarios whose codename matches this regular expression.
        #[arg(long)]
        focus: Option<regex::Regex>,
        /// The kubectl binary to use (e.g. kubectl.1.27).
        #[arg(long, default_value = "kubectl")]
        kubectl: String,
    },
    /// List the scenarios' codenames.
    List,
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::List => {
            for scenario in conformance::SCENARIOS {
                println!("{}", scenario.codename);
            }
            ExitCode::SUCCESS
        }
        Command::Run {
            kubeconfig,
            focus,
            kubectl,
        } => {
            let cluster = conformance::Cluster::new(&kubeconfig).with_kubectl(kubectl);
            let outcomes = conformance::run(&cluster, focus.as_ref());
            let mut failed = 0;
            for outcome in &outcomes {
                match &outcome.result {
                    Ok(()) => println!("PASS {}", outcome.codename),
                    Err(why) => {
                        failed += 1;
                        println!("FAIL {}: {why}", outcome.codename);
                    }
                }
            }
            println!("{} passed, {failed} failed", outcomes.len() - failed);
            if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
