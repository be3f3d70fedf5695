//! Logging of every Tripwire binary: `tracing` to stderr, as text or JSON, every line scrubbed of
//! the configured secrets before it is written.

use std::io::Write;

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (coloured on a terminal).
    #[default]
    Text,
    /// One JSON object per line, for a log pipeline.
    Json,
}

/// Logs to stderr with `tracing`: `RUST_LOG` or `default` as the filter, `format` `text` or
/// `json`, colours only on a terminal. Shared by every Tripwire binary.
pub fn init_tracing(format: LogFormat, default: &str) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        // Every line scrubbed of the configured secrets (see `tripwire_config::secrets`).
        .with_writer(ScrubbingWriter);
    if format == LogFormat::Json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// The tracing writer: each formatted event (written whole by `tracing-subscriber`) is scrubbed
/// before it reaches stderr.
#[derive(Debug, Clone, Copy, Default)]
pub struct ScrubbingWriter;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for ScrubbingWriter {
    type Writer = ScrubbingWriter;
    fn make_writer(&'a self) -> Self::Writer {
        ScrubbingWriter
    }
}

impl Write for ScrubbingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        std::io::Write::write_all(
            &mut std::io::stderr(),
            tripwire_config::secrets::scrub(&text).as_bytes(),
        )?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
