//! A real Apache Kafka broker of a test's own (`scripts/kafka` with a private data dir and free
//! ports), for fault tests that kill and restart it with its data, and for real-broker tests run
//! without `KAFKA_BROKERS`. The jars come from `scripts/install-tools` (Maven Central).

use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

/// One single-node KRaft broker; stopped (SIGTERM) when dropped.
#[derive(Debug)]
pub struct KafkaBroker {
    data: tempfile::TempDir,
    port: u16,
    controller_port: u16,
    brokers: String,
}

impl KafkaBroker {
    /// Formats a new data dir and starts the broker on free loopback ports; waits until it serves.
    pub fn start() -> Result<KafkaBroker> {
        let data = tempfile::Builder::new()
            .prefix("tripwire-kafka-")
            .tempdir()
            .context("creating the broker's data dir")?;
        let mut broker = KafkaBroker {
            data,
            port: free_port()?,
            controller_port: free_port()?,
            brokers: String::new(),
        };
        broker.brokers = broker.run("start")?;
        Ok(broker)
    }

    /// `bootstrap.servers` for clients.
    pub fn brokers(&self) -> String {
        self.brokers.clone()
    }

    /// SIGKILL: no controlled shutdown; the data stays on disk.
    pub fn kill9(&self) -> Result<()> {
        self.run("kill").map(drop)
    }

    /// Starts the broker again on its data dir and ports (after [`KafkaBroker::kill9`]).
    pub fn restart(&self) -> Result<()> {
        self.run("start").map(drop)
    }

    /// The broker's own log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data.path().join("server.log")).unwrap_or_default()
    }

    fn run(&self, verb: &str) -> Result<String> {
        let script = script();
        let out = Command::new(&script)
            .arg(verb)
            .env("KAFKA_DATA_DIR", self.data.path())
            .env("KAFKA_PORT", self.port.to_string())
            .env("KAFKA_CONTROLLER_PORT", self.controller_port.to_string())
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {}", script.display()))?;
        if !out.status.success() {
            bail!(
                "`scripts/kafka {verb}` failed ({}):\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        Ok(stdout
            .lines()
            .find_map(|l| l.strip_prefix("KAFKA_BROKERS="))
            .unwrap_or_default()
            .trim()
            .to_owned())
    }
}

impl Drop for KafkaBroker {
    fn drop(&mut self) {
        if let Err(e) = self.run("stop") {
            eprintln!("stopping the test broker: {e:#}");
        }
    }
}

fn script() -> PathBuf {
    crate::repo_root().join("scripts/kafka")
}

/// A loopback port nothing listens on right now.
fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding a free port")?;
    Ok(listener.local_addr()?.port())
}
