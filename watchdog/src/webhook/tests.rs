//! Matchers as Alertmanager reads them, and the payload checks.

use std::collections::BTreeMap;

use super::config::Matcher;
use super::payload::Payload;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn matchers_follow_alertmanager() {
    let l = labels(&[("alertname", "IndexerLagging"), ("severity", "critical")]);
    let yes = [
        r#"alertname="IndexerLagging""#,
        r#"severity=~"critical|page""#,
        r#"severity!="info""#,
        r#"team!~".+""#,
        "alertname = IndexerLagging",
    ];
    for m in yes {
        assert!(Matcher::parse(m).expect(m).matches(&l), "{m}");
    }
    let no = [
        r#"alertname="Other""#,
        r#"severity=~"crit""#,
        r#"severity!~"crit.*""#,
    ];
    for m in no {
        assert!(!Matcher::parse(m).expect(m).matches(&l), "{m}");
    }
    for bad in ["", "=x", "alertname", r#"a=~"(""#, "a<>b"] {
        assert!(Matcher::parse(bad).is_err(), "{bad}");
    }
}

const OK: &str = r#"{"version":"4","groupKey":"{}:{}","truncatedAlerts":0,"status":"firing",
 "receiver":"tripwire","groupLabels":{},"commonLabels":{},"commonAnnotations":{},
 "externalURL":"http://am","newField":1,
 "alerts":[{"status":"firing","labels":{"alertname":"A"},"annotations":{},
   "startsAt":"2026-11-28T00:00:00Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"",
   "fingerprint":"abc123"}]}"#;

#[test]
fn payload_checks_name_the_problem() {
    let p = Payload::parse(OK.as_bytes()).expect("valid, unknown fields ignored");
    assert_eq!(p.alerts[0].fingerprint, "abc123");
    let cases = [
        (
            OK.replace(r#""version":"4""#, r#""version":"3""#),
            "version",
        ),
        (
            OK.replace(r#""fingerprint":"abc123""#, r#""fingerprint":"""#),
            "fingerprint",
        ),
        (
            OK.replace(
                r#""status":"firing","labels""#,
                r#""status":"odd","labels""#,
            ),
            "alerts[0].status",
        ),
        (
            OK.replace(
                r#""startsAt":"2026-11-28T00:00:00Z""#,
                r#""startsAt":"yesterday""#,
            ),
            "startsAt",
        ),
        (
            OK.replace(r#""labels":{"alertname":"A"}"#, r#""labels":{}"#),
            "labels",
        ),
        ("[]".to_string(), "webhook payload"),
    ];
    for (body, word) in cases {
        let e = Payload::parse(body.as_bytes()).unwrap_err();
        assert!(e.contains(word), "{word}: {e}");
    }
}
