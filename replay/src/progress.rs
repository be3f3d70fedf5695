//! Progress of a long run: a bar with rate and ETA on a terminal, a log line every few seconds
//! otherwise (CI, systemd, docker logs).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

pub struct Progress {
    bar: Option<ProgressBar>,
    total: u64,
    done: u64,
    started: Instant,
    last_line: Instant,
    what: &'static str,
}

impl Progress {
    pub fn new(total: u64, already: u64, what: &'static str) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = ProgressBar::new(total);
            b.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} blocks  {per_sec}  ETA {eta}  {msg}",
                )
                .expect("static template"),
            );
            b.set_position(already);
            b
        });
        Progress {
            bar,
            total,
            done: already,
            started: Instant::now(),
            last_line: Instant::now(),
            what,
        }
    }

    pub fn advance(&mut self, blocks: u64, note: &str) {
        self.done += blocks;
        if let Some(b) = &self.bar {
            b.set_position(self.done);
            b.set_message(note.to_owned());
        } else if self.last_line.elapsed() >= Duration::from_secs(5) || self.done >= self.total {
            let secs = self.started.elapsed().as_secs_f64().max(1e-3);
            let rate = self.done as f64 / secs;
            let eta = if rate > 0.0 {
                (self.total.saturating_sub(self.done)) as f64 / rate
            } else {
                0.0
            };
            tracing::info!(
                "{}: {}/{} blocks ({:.0}%), {:.0} blocks/s, ETA {:.0} s {}",
                self.what,
                self.done,
                self.total,
                100.0 * self.done as f64 / self.total.max(1) as f64,
                rate,
                eta,
                note
            );
            self.last_line = Instant::now();
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish();
        }
    }
}
