//! Tests of the wire format: round trips, the documented example, tolerant and strict decoding.
use super::*;
use alloy_primitives::{address, b256};

fn sample_log() -> LogRecord {
    LogRecord {
        chain_id: 31337,
        block_number: 7,
        block_hash: B256::repeat_byte(0xab),
        block_timestamp: 1_700_000_000,
        tx_hash: B256::repeat_byte(0x01),
        tx_index: 0,
        log_index: 3,
        address: Address::repeat_byte(0x22),
        topics: vec![B256::repeat_byte(0x33)],
        data: Bytes::from(vec![1, 2, 3]),
        contract: Some("token".into()),
        event: Some(DecodedEvent {
            name: "Transfer".into(),
            signature: "Transfer(address,address,uint256)".into(),
            params: serde_json::json!({"value": "1000000000000000000000"})
                .as_object()
                .unwrap()
                .clone(),
        }),
    }
}

#[test]
fn round_trips_every_kind() {
    let records = [
        StreamRecord::Log(sample_log()),
        StreamRecord::Block(BlockMarker {
            chain_id: 1,
            number: 9,
            hash: B256::repeat_byte(9),
            parent_hash: B256::repeat_byte(8),
            timestamp: 5,
            log_count: 0,
        }),
        StreamRecord::Retraction(Retraction {
            chain_id: 1,
            common_ancestor: BlockRef {
                number: 8,
                hash: B256::repeat_byte(8),
            },
            orphaned: vec![BlockRef {
                number: 9,
                hash: B256::repeat_byte(9),
            }],
        }),
    ];
    for r in records {
        let bytes = r.to_json();
        assert_eq!(StreamRecord::from_json(&bytes).unwrap(), r);
    }
}

#[test]
fn documented_example_parses() {
    // The example in schema/README.md, so the documentation cannot drift from the code.
    let readme = include_str!("../../README.md");
    let start = readme.find("```json\n").expect("README has a json example") + 8;
    let end = start + readme[start..].find("```").unwrap();
    for line in readme[start..end].lines().filter(|l| !l.trim().is_empty()) {
        StreamRecord::from_json(line.as_bytes())
            .unwrap_or_else(|e| panic!("README example {line} does not parse: {e}"));
    }
}

#[test]
fn wire_uses_hex_and_type_tag() {
    let json: serde_json::Value =
        serde_json::from_slice(&StreamRecord::Log(sample_log()).to_json()).unwrap();
    assert_eq!(json["v"], 1);
    assert_eq!(json["type"], "log");
    assert_eq!(json["block_hash"], format!("0x{}", "ab".repeat(32)));
    assert_eq!(json["data"], "0x010203");
}

/// The serde encoding `to_json` must reproduce byte for byte.
#[derive(Serialize)]
struct EnvelopeRef<'a> {
    v: u16,
    #[serde(flatten)]
    record: &'a StreamRecord,
}

fn serde_encoding(record: &StreamRecord) -> Vec<u8> {
    serde_json::to_vec(&EnvelopeRef {
        v: record.wire_version(),
        record,
    })
    .unwrap()
}

fn sample_transaction() -> TransactionRecord {
    TransactionRecord {
        chain_id: 31337,
        block_number: 12,
        block_hash: b256!("4f1c8a2b9e6d3f7a0c5b8e1d4a7f2c9b6e3d0a8f5c2b9e6d3a0f7c4b1e8d5a2f"),
        block_timestamp: 1_700_000_012,
        tx_hash: b256!("9a3e5c7b1d2f4e6a8c0b3d5f7e9a1c2b4d6f8e0a2c4b6d8f0e1a3c5b7d9f2e4a"),
        tx_index: 3,
        from: address!("f39fd6e51aad88f6f4ce6ab8827279cfffb92266"),
        to: address!("5fbdb2315678afecb367f032d93f642f64180aa3"),
        value: U256::from(10u128.pow(21)),
        selector: Some(FixedBytes::from([0x2f, 0x2f, 0xf1, 0x5d])),
        function: Some(DecodedCall {
            name: "grantRole".into(),
            signature: "grantRole(bytes32,address)".into(),
            params: serde_json::json!({
                "role": "0x0000000000000000000000000000000000000000000000000000000000000000",
                "account": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
            })
            .as_object()
            .unwrap()
            .clone(),
        }),
        status: TxStatus::Reverted,
        gas_used: 2_100_000,
        gas_limit: 3_000_000,
        effective_gas_price: U256::from(1_875_000_000u64),
        contract: Some("treasury".into()),
    }
}

#[test]
fn transaction_records_carry_version_2_and_decimal_amounts() {
    let t = StreamRecord::Transaction(sample_transaction());
    let text = String::from_utf8(t.to_json()).unwrap();
    assert!(
        text.starts_with(r#"{"v":2,"type":"transaction","chain_id":31337,"#),
        "{text}"
    );
    assert!(
        text.contains(r#""value":"1000000000000000000000""#),
        "{text}"
    );
    assert!(
        text.contains(r#""effective_gas_price":"1875000000""#),
        "{text}"
    );
    assert!(text.contains(r#""status":"reverted""#), "{text}");
    assert!(text.contains(r#""selector":"0x2f2ff15d""#), "{text}");
    assert_eq!(StreamRecord::from_json(text.as_bytes()).unwrap(), t);
    // The older kinds keep version 1, so a reader of version 1 still reads them.
    let log = StreamRecord::Log(sample_log());
    assert!(log.to_json().starts_with(br#"{"v":1,"type":"log""#));
    // A plain transfer has no selector and no decoded call; a non-decimal amount is refused.
    let mut plain = sample_transaction();
    plain.selector = None;
    plain.function = None;
    plain.status = TxStatus::Success;
    let plain = StreamRecord::Transaction(plain);
    let text = String::from_utf8(plain.to_json()).unwrap();
    assert!(
        !text.contains("selector") && !text.contains("function"),
        "{text}"
    );
    assert_eq!(StreamRecord::from_json(text.as_bytes()).unwrap(), plain);
    let hex = text.replace(
        r#""value":"1000000000000000000000""#,
        r#""value":"0x3635c9adc5dea00000""#,
    );
    let err = StreamRecord::from_json(hex.as_bytes()).unwrap_err();
    assert!(
        crate_report(&err).contains("decimal integer string"),
        "{err}"
    );
}

/// The error and its sources, as the runtime's report prints them.
fn crate_report(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        next = cause.source();
    }
    out
}

fn encoding_samples() -> Vec<StreamRecord> {
    let mut raw = sample_log();
    raw.contract = None;
    raw.event = None;
    raw.topics.clear();
    raw.data = Bytes::new();
    raw.chain_id = u64::MAX;
    raw.block_number = 0;
    raw.log_index = 10;
    let mut odd = sample_log();
    odd.address = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
        .parse()
        .unwrap();
    odd.contract = Some("to\"ken\\ \u{0} \u{1f} é 🦀 </script>".into());
    odd.topics = (0..4).map(|i| B256::repeat_byte(0xf0 + i)).collect();
    odd.data = Bytes::from((0..=255u8).collect::<Vec<_>>());
    odd.event.as_mut().unwrap().params = serde_json::json!({
        "z": "last", "a": ["nested", {"deep": [1, -2, 3.5, true, null]}], "n\u{0}": "\u{7f}\n"
    })
    .as_object()
    .unwrap()
    .clone();
    vec![
        StreamRecord::Log(sample_log()),
        StreamRecord::Log(raw),
        StreamRecord::Log(odd),
        StreamRecord::Block(BlockMarker {
            chain_id: 31337,
            number: 1_234_567,
            hash: B256::repeat_byte(0x9c),
            parent_hash: B256::ZERO,
            timestamp: u64::MAX,
            log_count: u32::MAX,
        }),
        StreamRecord::Retraction(Retraction {
            chain_id: 10,
            common_ancestor: BlockRef {
                number: 99,
                hash: B256::repeat_byte(1),
            },
            orphaned: vec![],
        }),
        StreamRecord::Retraction(Retraction {
            chain_id: 10,
            common_ancestor: BlockRef {
                number: 99,
                hash: B256::repeat_byte(1),
            },
            orphaned: (100..103)
                .map(|n| BlockRef {
                    number: n,
                    hash: B256::repeat_byte(n as u8),
                })
                .collect(),
        }),
        StreamRecord::Transaction(sample_transaction()),
    ]
}

#[test]
fn to_json_is_byte_identical_to_serde() {
    for r in encoding_samples() {
        let fast = r.to_json();
        let reference = serde_encoding(&r);
        assert_eq!(
            String::from_utf8(fast).unwrap(),
            String::from_utf8(reference).unwrap()
        );
        assert_eq!(StreamRecord::from_json(&r.to_json()).unwrap(), r);
    }
    for n in [0, 1, 9, 10, 99, 100, 12345, u64::MAX / 3, u64::MAX] {
        let mut out = Vec::new();
        push_u64(&mut out, n);
        assert_eq!(out, n.to_string().into_bytes());
    }
}

#[test]
fn fields_parse_in_any_order() {
    let block = r#"{"log_count":1,"timestamp":1700000012,"parent_hash":"0x1b2c3d4e5f60718293a4b5c6d7e8f90112233445566778899aabbccddeeff001","hash":"0x4f1c8a2b9e6d3f7a0c5b8e1d4a7f2c9b6e3d0a8f5c2b9e6d3a0f7c4b1e8d5a2f","number":12,"chain_id":31337,"v":1,"type":"block"}"#;
    let StreamRecord::Block(b) = StreamRecord::from_json(block.as_bytes()).unwrap() else {
        panic!("not a block");
    };
    assert_eq!((b.chain_id, b.number, b.log_count), (31337, 12, 1));

    // Every field of a log, rotated so that `type` and `v` come anywhere, even last.
    let log = StreamRecord::Log(sample_log());
    let value: serde_json::Value = serde_json::from_slice(&log.to_json()).unwrap();
    let fields: Vec<(String, serde_json::Value)> =
        value.as_object().unwrap().clone().into_iter().collect();
    for shift in 0..fields.len() {
        let mut rotated = fields.clone();
        rotated.rotate_left(shift);
        let mut text = String::from("{");
        for (i, (k, v)) in rotated.iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            text.push_str(&format!("{}:{}", serde_json::to_string(k).unwrap(), v));
        }
        text.push('}');
        assert_eq!(
            wire::decode(text.as_bytes()).as_ref(),
            Some(&log),
            "single pass, order {text}"
        );
        assert_eq!(StreamRecord::from_json(text.as_bytes()).unwrap(), log);
    }
}

/// `from_json` (single pass with fallback) answers exactly as the general decoder: the same
/// record or the same error, on ordinary and on unusual messages.
#[test]
fn single_pass_agrees_with_the_general_decoder() {
    let h = format!("\"0x{}\"", "ab".repeat(32));
    let block = |extra: &str| {
        format!(
            r#"{{"v":1,"type":"block","chain_id":1,"number":2,"hash":{h},"parent_hash":{h},"timestamp":3,"log_count":4{extra}}}"#
        )
    };
    let mut cases: Vec<Vec<u8>> = encoding_samples().iter().map(|r| r.to_json()).collect();
    for text in [
        block(""),
        block(r#","unknown":1"#),
        block(r#","unknown":"\ud800""#),
        block(r#","number":5"#),
        block(r#","contract":null,"event":null"#),
        block(r#","block_hash":"zz""#),
        block(r#","address":7"#),
        block(r#","v":2"#),
        block(r#","log_count":4294967296"#),
        block(r#","log_count":-1"#),
        block(r#","log_count":1.0"#),
        block(r#","chain_id":null"#),
        block(r#","type":"log""#),
        block(r#","type":0"#),
        block(r#","type":"nope""#),
        block(r#","v":0"#),
        block(r#","v":1.0"#),
        block(r#","v":"1""#),
        block(r#","v":-1"#),
        block(r#"} "#),
        block(r#"}x"#),
        r#"{"v":1,"type":"retraction","chain_id":1,"common_ancestor":[1,"0x00"],"orphaned":[]}"#
            .into(),
        format!(
            r#"{{"v":1,"type":"retraction","chain_id":1,"common_ancestor":[1,{h}],"orphaned":[{{"number":2,"hash":{h},"x":0}}]}}"#
        ),
        format!(
            r#"{{"v":1,"type":"retraction","chain_id":1,"common_ancestor":{{"number":1,"hash":{h}}},"orphaned":[]}}"#
        ),
        format!(
            r#"{{"v":1,"type":"retraction","chain_id":1,"common_ancestor":{{"number":1,"hash":{h}}}}}"#
        ),
        r#"{"v":1}"#.into(),
        r#"{"v":3}"#.into(),
        r#"{"v":1,"type":"block"}"#.into(),
        r#"[1,"block",1,2]"#.into(),
        "[]".into(),
        "7".into(),
        "null".into(),
        "{}".into(),
        "".into(),
    ] {
        cases.push(text.into_bytes());
    }
    let log = String::from_utf8(StreamRecord::Log(sample_log()).to_json()).unwrap();
    for (from, to) in [
        (r#""contract":"token""#, r#""contract":null"#),
        (
            r#""contract":"token""#,
            r#""contract":"tok\u00e9n\ud83e\udd80""#,
        ),
        (r#""contract":"token""#, r#""contract":"\ud800""#),
        (
            r#""name":"Transfer""#,
            r#""name":"Transfer","extra":"\udc00""#,
        ),
        (r#""params":{"#, r#""params":{"value":"0","#),
        (r#""topics":["#, r#""topics":[1,"#),
        (r#""data":"0x010203""#, r#""data":"010203""#),
        (r#""data":"0x010203""#, r#""data":"0x01020""#),
        (r#""tx_index":0"#, r#""tx_index":0,"tx_index":1"#),
    ] {
        assert!(log.contains(from), "{from}");
        cases.push(log.replacen(from, to, 1).into_bytes());
    }
    let mut invalid_utf8 = block(r#","unknown":"xx""#).into_bytes();
    let at = invalid_utf8.len() - 3;
    invalid_utf8[at] = 0xff;
    cases.push(invalid_utf8);

    // The ordinary records take the single pass; transaction records (rarer, and of version 2)
    // the general decoder.
    for r in encoding_samples() {
        let expected = (!matches!(r, StreamRecord::Transaction(_))).then(|| r.clone());
        assert_eq!(wire::decode(&r.to_json()), expected);
    }
    assert!(wire::decode(block("").as_bytes()).is_some());

    for bytes in cases {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let general = StreamRecord::from_json_general(&bytes);
        if let Some(fast) = wire::decode(&bytes) {
            assert_eq!(
                Some(&fast),
                general.as_ref().ok(),
                "single pass accepted {text}"
            );
        }
        match (StreamRecord::from_json(&bytes), general) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{text}"),
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{text}"),
            (a, b) => panic!("{text}: from_json {a:?}, general {b:?}"),
        }
    }
}

#[test]
fn rejects_newer_version_and_garbage() {
    let err = StreamRecord::from_json(br#"{"v":3,"type":"block"}"#).unwrap_err();
    assert!(err.to_string().contains("wire version 3"), "{err}");
    assert!(matches!(
        StreamRecord::from_json(b"not json"),
        Err(RecordError::Malformed(_))
    ));
    assert!(matches!(
        StreamRecord::from_json(br#"{"type":"block"}"#),
        Err(RecordError::MissingVersion)
    ));
}
