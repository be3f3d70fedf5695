//! `tripwire-watchdog`: statistical detectors on the Tripwire stream, alerts into Alertmanager and
//! Safe pause proposals. This release ships the command line only; the detectors follow.

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "tripwire-watchdog",
    version,
    about = "Detect attacks on the Tripwire stream and raise alerts"
)]
struct Cli {
    /// Configuration file (TOML).
    #[arg(long, short, env = "TRIPWIRE_CONFIG", default_value = "tripwire.toml")]
    config: std::path::PathBuf,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    eprintln!(
        "tripwire-watchdog {}: detectors are not part of this release yet (config {})",
        env!("CARGO_PKG_VERSION"),
        cli.config.display()
    );
    std::process::ExitCode::from(2)
}
