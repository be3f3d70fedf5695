//! The watchdog's HTTP server under hostile clients on the loopback: idle connections with
//! partial headers are closed after `[server] header_timeout_ms`, unauthenticated 1 MiB bodies
//! are refused with 401 before they are read (and cost no memory), and after the process ran out
//! of file descriptors it answers `/health` again within seconds.

use std::path::Path;
use std::time::{Duration, Instant};
use testkit::config::{Rule, Server, Webhook};

use crate::common::{self, Env};
use anyhow::{bail, Context, Result};
use testkit::process::Proc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TOKEN_ENV: &str = "TRIPWIRE_TEST_WEBHOOK_TOKEN";
const PATH: &str = "/alertmanager/webhook";

/// The watchdog with its webhook receiver behind a bearer token, and `server` limits.
async fn watchdog(server: Server) -> Result<(Env, Proc, String)> {
    let mut env = Env::new(vec![]).await?;
    env.server = server;
    env.webhook = Some(Webhook {
        path: Some(PATH.into()),
        bearer_token_env: Some(TOKEN_ENV.into()),
        max_body_bytes: Some(2097152),
        rules: vec![Rule {
            name: "record-all".into(),
            matchers: vec![r#"alertname=~".+""#.into()],
            actions: vec!["record".into()],
            ..Rule::default()
        }],
        ..Webhook::default()
    });
    let wd = Proc::spawn_with_env(
        Path::new(common::BIN),
        &env.config(),
        "run",
        env.dir.path(),
        "info",
        &[(TOKEN_ENV, "a-long-enough-secret-token")],
    )?;
    let addr = wd.http_addr().await?;
    Ok((env, wd, addr))
}

fn rss_kb(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("VmRSS")
}

/// Reads until the peer closes (or errors); the answer read so far.
async fn read_to_close(mut s: TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idle_partial_header_connections_are_closed_after_the_header_timeout() -> Result<()> {
    let (_env, wd, addr) = watchdog(Server {
        header_timeout_ms: Some(2000),
        max_connections: Some(1100),
        ..Server::any_port()
    })
    .await?;
    let mut tasks = Vec::new();
    let started = Instant::now();
    for _ in 0..1_000 {
        let mut s = TcpStream::connect(&addr).await?;
        s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await?;
        tasks.push(tokio::spawn(async move {
            read_to_close(s).await;
            Instant::now()
        }));
    }
    let opened = started.elapsed();
    let mut latest = Duration::ZERO;
    for t in tasks {
        let closed = tokio::time::timeout(Duration::from_secs(20), t)
            .await
            .context("a connection was still open after 20 s")??;
        latest = latest.max(closed - started);
    }
    println!("1,000 partial-header connections opened in {opened:?}, all closed by the server after {latest:?}");
    assert!(
        latest <= opened + Duration::from_millis(2_000 + 1_500),
        "closed after {latest:?} (timeout 2 s, opened within {opened:?})"
    );
    let (code, _) = wd.get("/health").await?;
    assert_eq!(code, 200);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unauthenticated_large_bodies_are_refused_before_they_are_read() -> Result<()> {
    let (_env, wd, addr) = watchdog(Server::any_port()).await?;
    let pid = wd.child.id();
    let before = rss_kb(pid)?;
    let body_len = (1 << 20) - 1;
    let mut tasks = Vec::new();
    for i in 0..300 {
        let addr = addr.clone();
        tasks.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(&addr).await?;
            let auth = if i % 2 == 0 { "" } else { "Authorization: Bearer wrong\r\n" };
            let head = format!(
                "POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{auth}Content-Length: {body_len}\r\n\r\n"
            );
            s.write_all(head.as_bytes()).await?;
            // The answer comes before any of the body is sent.
            let mut buf = vec![0u8; 512];
            let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
                .await
                .context("no answer to the headers alone")??;
            let answer = String::from_utf8_lossy(&buf[..n]).into_owned();
            // Whatever of the body the server still takes is sent now; a closed connection is
            // fine.
            let chunk = vec![b'x'; 64 << 10];
            for _ in 0..16 {
                if s.write_all(&chunk).await.is_err() {
                    break;
                }
            }
            anyhow::Ok(answer)
        }));
    }
    let mut peak = before;
    for t in tasks {
        let answer = t.await??;
        if !answer.starts_with("HTTP/1.1 401") {
            bail!("expected 401 before the body: {answer}");
        }
        peak = peak.max(rss_kb(pid)?);
    }
    println!("300 unauthenticated 1 MiB bodies: all 401 before the body; RSS {before} kB before, peak {peak} kB");
    assert!(peak < 150 * 1024, "RSS reached {peak} kB");
    assert!(
        wd.metric("tripwire_watchdog_webhook_requests_total{status=\"401\"}")
            .await?
            >= 300.0
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_running_out_of_file_descriptors_health_answers_within_5_s() -> Result<()> {
    let (_env, wd, addr) = watchdog(Server {
        header_timeout_ms: Some(2000),
        ..Server::any_port()
    })
    .await?;
    let pid = wd.child.id();
    // Few descriptors for the watchdog: the burst below exhausts them.
    let out = std::process::Command::new("prlimit")
        .args(["--pid", &pid.to_string(), "--nofile=200:200"])
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut burst = Vec::new();
    for _ in 0..400 {
        let mut s = TcpStream::connect(&addr).await?;
        s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n").await?;
        burst.push(s);
    }
    // Accepts failed meanwhile (EMFILE), retried with backoff.
    let deadline = Instant::now() + Duration::from_secs(10);
    while wd
        .metric("tripwire_http_accept_errors_total")
        .await
        .unwrap_or(0.0)
        == 0.0
    {
        if Instant::now() > deadline {
            bail!(
                "no accept failed: the burst did not exhaust the descriptors\n{}",
                wd.output()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The burst stays open; the server closes it after the header timeout and serves again.
    let asked = Instant::now();
    let (code, body) = tokio::time::timeout(Duration::from_secs(5), wd.get("/health"))
        .await
        .context("/health did not answer within 5 s of the burst")??;
    println!(
        "after {} connections with 200 descriptors: /health {code} after {:?}: {body}",
        burst.len(),
        asked.elapsed()
    );
    // The server answers; what it says is the truth of a process short of descriptors (its
    // Kafka or Postgres connections may be failing too, which makes it 503).
    assert!(
        (code == 200 || code == 503) && body.contains("\"status\""),
        "{code} {body}"
    );
    drop(burst);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_body_sent_a_byte_at_a_time_is_cut_off_at_the_request_timeout() -> Result<()> {
    let (_env, _wd, addr) = watchdog(Server {
        request_timeout_ms: Some(2000),
        ..Server::any_port()
    })
    .await?;
    let mut s = TcpStream::connect(&addr).await?;
    let head = format!(
        "POST {PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a-long-enough-secret-token\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await?;
    let started = Instant::now();
    let (mut rd, mut wr) = s.into_split();
    let trickle = tokio::spawn(async move {
        for _ in 0..1000 {
            if wr.write_all(b" ").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    let mut buf = vec![0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(10), rd.read(&mut buf))
        .await
        .context("no answer to a body that never ends")??;
    let answer = String::from_utf8_lossy(&buf[..n]).into_owned();
    let after = started.elapsed();
    trickle.abort();
    println!(
        "a byte every 500 ms: answered after {after:?}: {}",
        answer.lines().next().unwrap_or("")
    );
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(after < Duration::from_millis(3_500), "{after:?}");
    Ok(())
}
