//! `tripwire-replay`: re-index and back-test from a given block. This release ships the command
//! line only; the modes follow.

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "tripwire-replay",
    version,
    about = "Re-index or back-test a chain from a given block"
)]
struct Cli {
    /// Configuration file (TOML).
    #[arg(long, short, env = "TRIPWIRE_CONFIG", default_value = "tripwire.toml")]
    config: std::path::PathBuf,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    eprintln!(
        "tripwire-replay {}: replay modes are not part of this release yet (config {})",
        env!("CARGO_PKG_VERSION"),
        cli.config.display()
    );
    std::process::ExitCode::from(2)
}
