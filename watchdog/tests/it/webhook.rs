//! E2 and E3: the webhook receiver in this process (its axum router, Postgres behind it) fed
//! 100,000 random and mutated payloads, and requests without the right token or too large.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use testkit::postgres::TestDb;
use tower::ServiceExt;
use tripwire_watchdog::webhook::{Payload, Receiver, WebhookConfig};

const TOKEN: &str = "s3cret-token-for-tests";
const PATH: &str = "/alertmanager/webhook";

async fn receiver(db: &TestDb, max_body: usize) -> Result<axum::Router> {
    tripwire_store::migrate(db.pool()).await?;
    let cfg: WebhookConfig = toml::from_str(&format!(
        "path = \"{PATH}\"\nallow_unauthenticated = true\nmax_body_bytes = {max_body}\n\
         [[rules]]\nname = \"record-all\"\nmatchers = ['alertname=~\".+\"']\nactions = [\"record\"]\n"
    ))?;
    let mut r = Receiver::new(&cfg, db.pool().clone(), None, None)?;
    r.token = Some(TOKEN.into());
    Ok(r.router(PATH))
}

fn request(body: Vec<u8>, token: Option<&str>) -> Request<Body> {
    let mut b = Request::post(PATH).header("content-type", "application/json");
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b.body(Body::from(body)).expect("request")
}

fn valid(rng: &mut StdRng, n_alerts: usize) -> Value {
    let alerts: Vec<Value> = (0..n_alerts)
        .map(|_| {
            json!({
                "status": if rng.random_bool(0.8) { "firing" } else { "resolved" },
                "labels": {"alertname": format!("A{}", rng.random_range(0..50)), "severity": "critical"},
                "annotations": {"summary": "s"},
                "startsAt": format!("2026-11-28T00:{:02}:00Z", rng.random_range(0..60)),
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus/graph",
                "fingerprint": format!("{:016x}", rng.random_range(0..400u64)),
            })
        })
        .collect();
    json!({
        "version": "4", "groupKey": "{}:{}", "truncatedAlerts": 0, "status": "firing",
        "receiver": "tripwire", "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
        "externalURL": "http://am", "alerts": alerts,
    })
}

/// Replaces one random value somewhere in `v` by something of another shape.
fn mutate(rng: &mut StdRng, v: &mut Value) {
    let junk = |rng: &mut StdRng| -> Value {
        match rng.random_range(0..8) {
            0 => Value::Null,
            1 => json!(rng.random::<i64>()),
            2 => json!(rng.random::<f64>()),
            3 => json!("\u{0}\u{ffff}'\";--"),
            4 => json!([]),
            5 => json!({}),
            6 => json!("x".repeat(rng.random_range(0..300))),
            _ => json!(true),
        }
    };
    match v {
        Value::Object(m) if !m.is_empty() => {
            let keys: Vec<String> = m.keys().cloned().collect();
            let k = &keys[rng.random_range(0..keys.len())];
            match rng.random_range(0..4) {
                0 => {
                    m.remove(k);
                }
                1 => {
                    m.insert(k.clone(), junk(rng));
                }
                _ => mutate(rng, m.get_mut(k).expect("key")),
            }
        }
        Value::Array(a) if !a.is_empty() => {
            let i = rng.random_range(0..a.len());
            if rng.random_bool(0.3) {
                a[i] = junk(rng);
            } else {
                mutate(rng, &mut a[i]);
            }
        }
        other => *other = junk(rng),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2_100k_random_and_mutated_payloads_never_panic_and_store_only_accepted_alerts(
) -> Result<()> {
    let db = TestDb::create().await?;
    let app = receiver(&db, 64 * 1024).await?;
    let mut rng = StdRng::seed_from_u64(0x7e57);
    let mut accepted_keys = BTreeSet::new();
    let mut by_status: BTreeMap<u16, usize> = BTreeMap::new();
    const N: usize = 100_000;
    for i in 0..N {
        let kind = rng.random_range(0..100);
        let body: Vec<u8> = match kind {
            // Random bytes, sometimes almost JSON.
            0..=9 => {
                let len = rng.random_range(0..200);
                let mut b: Vec<u8> = (0..len).map(|_| rng.random()).collect();
                if rng.random_bool(0.5) {
                    b.insert(0, b'{');
                }
                b
            }
            // A valid payload with its bytes cut or flipped.
            10..=29 => {
                let mut b = serde_json::to_vec(&valid(&mut rng, 2))?;
                if rng.random_bool(0.5) {
                    b.truncate(rng.random_range(0..b.len()));
                } else {
                    for _ in 0..rng.random_range(1..4) {
                        let j = rng.random_range(0..b.len());
                        b[j] = rng.random();
                    }
                }
                b
            }
            // A valid payload with values of the wrong shape or missing fields.
            30..=94 => {
                let n = rng.random_range(1..4);
                let mut v = valid(&mut rng, n);
                for _ in 0..rng.random_range(1..4) {
                    mutate(&mut rng, &mut v);
                }
                serde_json::to_vec(&v)?
            }
            // Valid.
            _ => {
                let n = rng.random_range(1..4);
                serde_json::to_vec(&valid(&mut rng, n))?
            }
        };
        let token = if i % 50 == 0 {
            Some("wrong")
        } else {
            Some(TOKEN)
        };
        let resp = app.clone().oneshot(request(body.clone(), token)).await?;
        let status = resp.status().as_u16();
        *by_status.entry(status).or_default() += 1;
        assert!(
            (200..300).contains(&status) || (400..500).contains(&status),
            "request {i} answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
        if (200..300).contains(&status) {
            let p = Payload::parse(&body).map_err(anyhow::Error::msg)?;
            for a in p.alerts {
                accepted_keys.insert((a.fingerprint, a.starts_at, a.status));
            }
        }
    }
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_receipts")
        .fetch_one(db.pool())
        .await?;
    println!("E2: {N} payloads, answers by status {by_status:?}; {stored} receipts stored");
    assert_eq!(
        stored as usize,
        accepted_keys.len(),
        "only accepted alerts are stored"
    );
    assert!(
        by_status.get(&200).copied().unwrap_or(0) > 1000,
        "the valid share was accepted"
    );
    assert!(by_status.get(&400).copied().unwrap_or(0) > 10_000);
    assert!(by_status.get(&401).copied().unwrap_or(0) >= N / 50);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e3_missing_or_wrong_token_is_401_and_stores_nothing_oversized_is_413() -> Result<()> {
    let db = TestDb::create().await?;
    let app = receiver(&db, 4096).await?;
    let mut rng = StdRng::seed_from_u64(1);
    let body = serde_json::to_vec(&valid(&mut rng, 1))?;
    for token in [
        None,
        Some("wrong"),
        Some(""),
        Some(&TOKEN[..TOKEN.len() - 1]),
    ] {
        let r = app.clone().oneshot(request(body.clone(), token)).await?;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{token:?}");
    }
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_receipts")
        .fetch_one(db.pool())
        .await?;
    assert_eq!(stored, 0);
    let big = valid(&mut rng, 60);
    let big = serde_json::to_vec(&big)?;
    assert!(big.len() > 4096);
    let r = app.clone().oneshot(request(big, Some(TOKEN))).await?;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // The right token: stored once, however often it is delivered.
    for _ in 0..3 {
        let r = app
            .clone()
            .oneshot(request(body.clone(), Some(TOKEN)))
            .await?;
        assert_eq!(r.status(), StatusCode::OK);
    }
    let (rows, deliveries): (i64, i64) = sqlx::query_as(
        "SELECT count(*), coalesce(sum(deliveries), 0)::bigint FROM webhook_receipts",
    )
    .fetch_one(db.pool())
    .await?;
    assert_eq!((rows, deliveries), (1, 3));
    Ok(())
}

/// The `alert` action re-posts a received alert to the real Alertmanager with the rule's labels,
/// marked so that a route sending it back is not a loop; a resolved one is recorded, not acted on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_action_relabels_into_alertmanager_once() -> Result<()> {
    let db = TestDb::create().await?;
    tripwire_store::migrate(db.pool()).await?;
    let am = testkit::alertmanager::Alertmanager::spawn().await?;
    let cfg: WebhookConfig = toml::from_str(&format!(
        "path = \"{PATH}\"\nallow_unauthenticated = true\n\
         [[rules]]\nname = \"to-protocol-team\"\nmatchers = ['severity=\"critical\"']\nactions = [\"alert\"]\n\
         labels = {{ team = \"protocol\" }}\n"
    ))?;
    let client = tripwire_watchdog::alerts::Client::new(
        vec![am.url()],
        std::time::Duration::from_secs(5),
        None,
    )?;
    let app = Receiver::new(&cfg, db.pool().clone(), None, Some(client))?.router(PATH);
    let mut rng = StdRng::seed_from_u64(3);
    let mut payload = valid(&mut rng, 1);
    payload["alerts"][0]["status"] = json!("firing");
    for _ in 0..2 {
        let r = app
            .clone()
            .oneshot(request(serde_json::to_vec(&payload)?, None))
            .await?;
        assert_eq!(r.status(), StatusCode::OK);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let alerts = loop {
        let a = am.alerts().await?;
        if !a.is_empty() || std::time::Instant::now() > deadline {
            break a;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(alerts[0]["labels"]["team"], "protocol");
    assert_eq!(alerts[0]["labels"]["tripwire_relabelled"], "true");
    assert_eq!(
        alerts[0]["labels"]["alertname"],
        payload["alerts"][0]["labels"]["alertname"]
    );
    // Sent back by a route: recognised, not re-posted again.
    let mut echoed = payload.clone();
    echoed["alerts"][0]["labels"] = alerts[0]["labels"].clone();
    echoed["alerts"][0]["fingerprint"] = alerts[0]["fingerprint"].clone();
    let r = app
        .clone()
        .oneshot(request(serde_json::to_vec(&echoed)?, None))
        .await?;
    let body: Value = serde_json::from_slice(&axum::body::to_bytes(r.into_body(), 1 << 20).await?)?;
    assert!(body.to_string().contains("already re-labelled"), "{body}");
    Ok(())
}

/// With an HMAC secret, only a body signed with it (`X-Tripwire-Signature: sha256=<hex>`) passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hmac_signature_is_required_and_checked() -> Result<()> {
    use hmac::{Hmac, Mac};
    let db = TestDb::create().await?;
    tripwire_store::migrate(db.pool()).await?;
    let cfg: WebhookConfig = toml::from_str(&format!(
        "path = \"{PATH}\"\nallow_unauthenticated = true\n[[rules]]\nname = \"r\"\nmatchers = ['alertname=~\".+\"']\nactions = [\"record\"]\n"
    ))?;
    let mut r = Receiver::new(&cfg, db.pool().clone(), None, None)?;
    r.hmac_secret = Some("relay-secret".into());
    let app = r.router(PATH);
    let mut rng = StdRng::seed_from_u64(9);
    let body = serde_json::to_vec(&valid(&mut rng, 1))?;
    let sign = |key: &[u8], body: &[u8]| {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
        mac.update(body);
        format!(
            "sha256={}",
            alloy::primitives::hex::encode(mac.finalize().into_bytes())
        )
    };
    let send = |sig: Option<String>, body: Vec<u8>| {
        let mut b = Request::post(PATH).header("content-type", "application/json");
        if let Some(s) = sig {
            b = b.header("x-tripwire-signature", s);
        }
        b.body(Body::from(body)).expect("request")
    };
    for sig in [
        None,
        Some(sign(b"other-secret", &body)),
        Some("sha256=zz".into()),
    ] {
        let resp = app.clone().oneshot(send(sig.clone(), body.clone())).await?;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{sig:?}");
    }
    // Signed for another body: refused.
    let resp = app
        .clone()
        .oneshot(send(Some(sign(b"relay-secret", b"{}")), body.clone()))
        .await?;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_receipts")
        .fetch_one(db.pool())
        .await?;
    assert_eq!(stored, 0);
    let resp = app
        .clone()
        .oneshot(send(Some(sign(b"relay-secret", &body)), body.clone()))
        .await?;
    assert_eq!(resp.status(), StatusCode::OK);
    Ok(())
}
