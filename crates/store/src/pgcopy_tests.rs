//! The borrowed view of a log message encodes exactly the row of the owned record, and gives up
//! on every message it cannot prove to mean the same.

use alloy::primitives::{Address, Bytes, B256};
use tripwire_schema::{DecodedEvent, LogRecord, LogView, StreamRecord};

use super::LogCopyBuffer;

fn log(topics: usize, data: Vec<u8>, event: bool) -> LogRecord {
    LogRecord {
        chain_id: 31337,
        block_number: 12,
        block_hash: B256::repeat_byte(0xab),
        block_timestamp: 1_700_000_000,
        tx_hash: B256::repeat_byte(0x01),
        tx_index: 4,
        log_index: 9,
        address: Address::repeat_byte(0x22),
        topics: (0..topics)
            .map(|i| B256::repeat_byte(i as u8 + 1))
            .collect(),
        data: Bytes::from(data),
        contract: event.then(|| "token ü".to_owned()),
        event: event.then(|| DecodedEvent {
            name: "Transfer".into(),
            signature: "Transfer(address,address,uint256)".into(),
            params: serde_json::json!({
                "from": "0x2222222222222222222222222222222222222222",
                "to": "0x3333333333333333333333333333333333333333",
                "value": "1000000000000000000000",
                "flag": true,
                "list": ["0x01", ["nested"], {"k": null}],
            })
            .as_object()
            .unwrap()
            .clone(),
        }),
    }
}

fn owned_row(msg: &[u8]) -> Vec<u8> {
    let Ok(StreamRecord::Log(l)) = StreamRecord::from_json(msg) else {
        panic!("not a log: {}", String::from_utf8_lossy(msg));
    };
    let mut buf = LogCopyBuffer::new();
    buf.push(&l);
    buf.encoded().to_vec()
}

fn view_row(msg: &[u8]) -> Option<Vec<u8>> {
    let view = LogView::from_json(msg)?;
    let mut buf = LogCopyBuffer::new();
    buf.push_view(&view);
    Some(buf.encoded().to_vec())
}

#[test]
fn the_view_encodes_the_owned_records_row() {
    for (topics, data, event) in [
        (0, vec![], false),
        (1, vec![0], false),
        (3, vec![1, 2, 3, 255], true),
        (4, (0..=255).collect(), true),
        (6, vec![7; 64], true), // more topics than the EVM has: the first four are stored
    ] {
        let msg = StreamRecord::Log(log(topics, data, event)).to_json();
        let view = view_row(&msg).expect("an encoder-made log takes the view");
        assert_eq!(view, owned_row(&msg), "{}", String::from_utf8_lossy(&msg));
    }
}

#[test]
fn the_view_reads_other_spellings_of_the_same_log_alike() {
    let msg = String::from_utf8(StreamRecord::Log(log(2, vec![0xAB], true)).to_json()).unwrap();
    // Upper-case hex, whitespace inside the parameters, another key order: the same row (the
    // parameters' text differs, which `jsonb` does not keep, so they are compared as JSON).
    let respelled = msg
        .replace("\"data\":\"0xab\"", "\"data\":\"0xAB\"")
        .replace("{\"flag\":true,", "{ \"flag\" : true , ");
    assert_ne!(respelled, msg);
    let view = LogView::from_json(respelled.as_bytes()).expect("takes the view");
    let Ok(StreamRecord::Log(owned)) = StreamRecord::from_json(respelled.as_bytes()) else {
        panic!("not a log");
    };
    let params: serde_json::Value = serde_json::from_str(view.event.unwrap().params_json).unwrap();
    assert_eq!(
        params,
        serde_json::Value::Object(owned.event.unwrap().params)
    );
    let mut data = vec![0; view.data_len()];
    view.decode_data(&mut data);
    assert_eq!(data, owned.data.to_vec());
}

#[test]
fn the_view_gives_up_where_the_owned_record_could_differ() {
    let msg = String::from_utf8(StreamRecord::Log(log(2, vec![1, 2], true)).to_json()).unwrap();
    let variants = [
        // escapes: not borrowable, and `\u0000` cannot be stored
        msg.replace("\"to\":", "\"t\\u006f\":"),
        msg.replace("\"nested\"", "\"nul\\u0000\""),
        msg.replace("Transfer\"", "Trans\\nfer\""),
        msg.replace("token ü", "tok\\\"en"),
        // numbers in the parameters: the owned decoder respells them
        msg.replace("\"flag\":true", "\"flag\":1e3"),
        msg.replace("\"flag\":true", "\"flag\":7"),
        // data without `0x`, of odd length, not hex
        msg.replace("\"data\":\"0x0102\"", "\"data\":\"0102\""),
        msg.replace("\"data\":\"0x0102\"", "\"data\":\"0x010\""),
        msg.replace("\"data\":\"0x0102\"", "\"data\":\"0x01zz\""),
        // unknown or repeated fields, another kind, a newer version, params not an object
        msg.replace("{\"v\":1,", "{\"v\":1,\"extra\":0,"),
        msg.replace("{\"v\":1,", "{\"v\":1,\"chain_id\":5,"),
        msg.replace("\"type\":\"log\"", "\"type\":\"block\""),
        // (a version newer than this build reads: since version 2 a log of `"v":2` is readable)
        msg.replace(
            "{\"v\":1,",
            &format!("{{\"v\":{},", tripwire_schema::WIRE_VERSION + 1),
        ),
        msg.replace("{\"v\":1,", "{"),
        format!(
            "{}\"params\":[]}}}}",
            &msg[..msg.find("\"params\":").unwrap()]
        ),
    ];
    for v in variants {
        assert_ne!(v, msg);
        assert!(
            LogView::from_json(v.as_bytes()).is_none(),
            "took the view: {v}"
        );
    }
    // ... while the message itself takes it, also under the newest version this build reads.
    assert!(LogView::from_json(msg.as_bytes()).is_some());
    let newest = msg.replace(
        "{\"v\":1,",
        &format!("{{\"v\":{},", tripwire_schema::WIRE_VERSION),
    );
    assert!(LogView::from_json(newest.as_bytes()).is_some());
}
