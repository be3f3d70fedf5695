//! Starting anvil as a child process: the options ([`AnvilBuilder`]), finding the binary,
//! waiting for the port it reports, draining its output (kept as a tail for error messages), and
//! killing it again when the [`Anvil`] handle is dropped.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::json;

use super::rpc::{fetch_accounts, RpcClient};
use super::Anvil;

const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
/// Output lines kept for error messages when anvil fails to start.
const OUTPUT_TAIL: usize = 40;

/// Options for starting anvil; obtain with [`Anvil::builder`].
#[derive(Debug, Clone)]
pub struct AnvilBuilder {
    block_time: Option<u64>,
    no_mining: bool,
    chain_id: Option<u64>,
    block_gas_limit: Option<u64>,
    extra_args: Vec<String>,
}

impl AnvilBuilder {
    /// Interval mining every `secs` seconds instead of one block per transaction.
    pub fn block_time(mut self, secs: Option<u64>) -> Self {
        self.block_time = secs;
        self
    }

    /// Start with automine off and no interval mining: blocks appear only via
    /// [`Anvil::mine`] or `evm_mine`, which gives tests full control.
    pub fn no_mining(mut self, no_mining: bool) -> Self {
        self.no_mining = no_mining;
        self
    }

    pub fn chain_id(mut self, chain_id: u64) -> Self {
        self.chain_id = Some(chain_id);
        self
    }

    /// Block gas limit; the default (30M) caps logs per block, benchmarks may want more.
    pub fn block_gas_limit(mut self, gas: Option<u64>) -> Self {
        self.block_gas_limit = gas;
        self
    }

    /// Any other anvil command-line argument, passed through verbatim.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.extra_args.push(arg.into());
        self
    }

    pub async fn spawn(self) -> anyhow::Result<Anvil> {
        let bin = anvil_bin()?;
        let mut cmd = Command::new(&bin);
        // Port 0 lets the kernel choose and anvil reports the result, which avoids
        // the race of probing for a free port and then handing it over.
        cmd.args(["--host", "127.0.0.1", "--port", "0"]);
        if let Some(secs) = self.block_time {
            cmd.args(["--block-time", &secs.to_string()]);
        }
        if self.no_mining {
            cmd.arg("--no-mining");
        }
        if let Some(id) = self.chain_id {
            cmd.args(["--chain-id", &id.to_string()]);
        }
        if let Some(gas) = self.block_gas_limit {
            cmd.args(["--gas-limit", &gas.to_string()]);
        }
        // Anvil writes the states it evicts from memory under `~/.foundry/anvil/tmp` and removes
        // them only on a clean exit; a killed node left gigabytes there per long chain (enough to
        // fill a shared disk over a test run). Each node gets its own directory, removed with it.
        let cache = tempfile::Builder::new()
            .prefix("anvil-cache-")
            .tempdir()
            .context("creating anvil's state cache directory")?;
        cmd.arg("--cache-path").arg(cache.path());
        cmd.args(&self.extra_args);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());

        let child = cmd
            .spawn()
            .with_context(|| format!("failed to start anvil at {}", bin.display()))?;
        // Owned by the guard from here on so every early return below kills it.
        let mut guard = ChildGuard(Some(child));
        let child = guard.0.as_mut().expect("just set");

        let tail = Arc::new(Mutex::new(VecDeque::with_capacity(OUTPUT_TAIL)));
        let (port_tx, port_rx) = std::sync::mpsc::channel::<u16>();
        // Plain threads rather than tokio tasks: anvil logs every request, and
        // if the pipe stopped being drained (say, because the test runtime that
        // spawned a reader task shut down) anvil would block or die on EPIPE.
        let stdout = child.stdout.take().expect("stdout piped");
        spawn_reader("stdout", stdout, Arc::clone(&tail), Some(port_tx));
        let stderr = child.stderr.take().expect("stderr piped");
        spawn_reader("stderr", stderr, Arc::clone(&tail), None);

        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let port = loop {
            if let Ok(port) = port_rx.try_recv() {
                break port;
            }
            if let Some(status) = child.try_wait()? {
                bail!(
                    "anvil exited during startup with {status}; output:\n{}",
                    tail_text(&tail)
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "anvil did not report its port within {STARTUP_TIMEOUT:?}; output:\n{}",
                    tail_text(&tail)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };

        let url = format!("http://127.0.0.1:{port}");
        let client = RpcClient::new(url.clone());
        loop {
            match client.call("eth_chainId", json!([])).await {
                Ok(_) => break,
                Err(e) if Instant::now() > deadline => {
                    return Err(e.context(format!(
                        "anvil at {url} did not answer eth_chainId within {STARTUP_TIMEOUT:?}; output:\n{}",
                        tail_text(&tail)
                    )));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }

        let accounts = fetch_accounts(&client).await?;
        tracing::debug!(%url, "anvil started");
        Ok(Anvil {
            client,
            port,
            accounts,
            child: guard,
            _cache: Some(cache),
        })
    }
}

impl Anvil {
    /// Starts anvil with default settings (automine on, chain id 31337).
    pub async fn spawn() -> anyhow::Result<Anvil> {
        Self::builder().spawn().await
    }

    pub fn builder() -> AnvilBuilder {
        AnvilBuilder {
            block_time: None,
            no_mining: false,
            chain_id: None,
            block_gas_limit: None,
            extra_args: Vec::new(),
        }
    }
}

/// Kills the child on drop. A synchronous kill-and-wait (rather than tokio's
/// kill_on_drop) also reaps it when the dropping thread has no runtime.
#[derive(Debug)]
pub(super) struct ChildGuard(pub(super) Option<Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn anvil_bin() -> anyhow::Result<PathBuf> {
    if let Some(bin) = std::env::var_os("ANVIL_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let bin = crate::repo_root().join("tools/node_modules/.bin/anvil");
    if !bin.exists() {
        bail!(
            "anvil not found at {} (set ANVIL_BIN, or run scripts/install-tools)",
            bin.display()
        );
    }
    Ok(bin)
}

fn spawn_reader(
    stream: &'static str,
    pipe: impl Read + Send + 'static,
    tail: Arc<Mutex<VecDeque<String>>>,
    port_tx: Option<std::sync::mpsc::Sender<u16>>,
) {
    let spawned = std::thread::Builder::new()
        .name(format!("anvil-{stream}"))
        .spawn(move || {
            let mut port_tx = port_tx;
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                tracing::trace!(target: "tripwire_testkit::anvil::output", stream, "{line}");
                if let Some(tx) = &port_tx {
                    if let Some(port) = line
                        .trim()
                        .strip_prefix("Listening on ")
                        .and_then(|addr| addr.rsplit(':').next())
                        .and_then(|p| p.parse::<u16>().ok())
                    {
                        let _ = tx.send(port);
                        port_tx = None;
                    }
                }
                let mut tail = tail.lock().unwrap_or_else(|p| p.into_inner());
                if tail.len() == OUTPUT_TAIL {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "could not start anvil output reader");
    }
}

fn tail_text(tail: &Mutex<VecDeque<String>>) -> String {
    let tail = tail.lock().unwrap_or_else(|p| p.into_inner());
    tail.iter().cloned().collect::<Vec<_>>().join("\n")
}
