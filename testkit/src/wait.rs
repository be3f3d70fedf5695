//! Waiting for a condition in a test: poll until the probe returns a value or the time is up.
//! One implementation for every test, so the polling interval and the error on timeout (what was
//! awaited, and the probe's last error) are the same everywhere.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

/// Between two probes.
const INTERVAL: Duration = Duration::from_millis(250);

/// Polls `probe` until it returns `Ok(Some(value))` or `timeout` passes. Errors count as "not
/// yet" (a process may still be starting); on timeout the last one is returned, with `what`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last = match probe().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => None,
            Err(e) => Some(e),
        };
        if Instant::now() > deadline {
            match last {
                Some(e) => {
                    return Err(e.context(format!("timed out after {timeout:?} waiting for {what}")))
                }
                None => bail!("timed out after {timeout:?} waiting for {what}"),
            }
        }
        tokio::time::sleep(INTERVAL).await;
    }
}

/// [`eventually`] for a probe that does not await (it runs a command, say).
pub async fn eventually_blocking<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    eventually(what, timeout, || std::future::ready(probe())).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_the_value_or_names_what_timed_out() {
        let mut n = 0;
        let v = eventually_blocking("three probes", Duration::from_secs(5), || {
            n += 1;
            Ok((n == 3).then_some(n))
        })
        .await
        .expect("found");
        assert_eq!(v, 3);
        let e = eventually_blocking::<()>("nothing", Duration::from_millis(10), || {
            anyhow::bail!("not started")
        })
        .await
        .unwrap_err();
        let text = format!("{e:#}");
        assert!(
            text.contains("waiting for nothing") && text.contains("not started"),
            "{text}"
        );
    }
}
