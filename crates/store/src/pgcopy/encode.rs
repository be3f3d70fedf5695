//! The binary `COPY` encoding of log, transaction and block rows: each row is written straight
//! into a buffer in the order of the `COPY` statements' columns, once, as the messages arrive.

use alloy::primitives::{Address, B256, U256};
use serde_json::{Map, Value};
use tripwire_schema::{BlockMarker, LogRecord, LogView, TransactionRecord};

use super::{BLOCK_FIELDS, LOG_FIELDS, TX_FIELDS};

/// Header of a binary `COPY` stream: signature, flags (no OIDs), header extension length (0).
const COPY_HEADER: &[u8; 19] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// Trailer of a binary `COPY` stream: a tuple with field count -1.
pub(super) const COPY_TRAILER: &[u8; 2] = b"\xff\xff";
/// Size of the pieces the encoded buffer is handed to the connection in.
pub(super) const SEND_CHUNK: usize = 4 << 20;
/// Initial capacity of a buffer; it grows as needed and keeps its capacity across flushes.
const INITIAL_CAPACITY: usize = 64 << 10;
/// 2000-01-01T00:00:00Z, the Postgres timestamp epoch, in Unix seconds.
const PG_EPOCH_UNIX_SECS: i64 = 946_684_800;
/// Version byte that precedes the JSON text in the binary representation of `jsonb`.
const JSONB_VERSION: u8 = 1;

/// Binary `COPY` data: the header, then one tuple per pushed row. The trailer is sent separately
/// (see `copy_in`), so the buffer can be sent any number of times.
#[derive(Debug)]
pub(super) struct CopyData {
    pub(super) buf: Vec<u8>,
    pub(super) rows: usize,
}

impl CopyData {
    fn new() -> Self {
        let mut buf = Vec::with_capacity(INITIAL_CAPACITY);
        buf.extend_from_slice(COPY_HEADER);
        CopyData { buf, rows: 0 }
    }

    fn clear(&mut self) {
        self.buf.truncate(COPY_HEADER.len());
        self.rows = 0;
    }

    fn begin_tuple(&mut self, fields: i16) {
        self.rows += 1;
        self.buf.extend_from_slice(&fields.to_be_bytes());
    }

    fn null(&mut self) {
        self.buf.extend_from_slice(&(-1i32).to_be_bytes());
    }

    fn int8(&mut self, value: i64) {
        self.buf.extend_from_slice(&8i32.to_be_bytes());
        self.buf.extend_from_slice(&value.to_be_bytes());
    }

    fn int4(&mut self, value: i32) {
        self.buf.extend_from_slice(&4i32.to_be_bytes());
        self.buf.extend_from_slice(&value.to_be_bytes());
    }

    fn bytea(&mut self, value: &[u8]) {
        self.buf
            .extend_from_slice(&(value.len() as i32).to_be_bytes());
        self.buf.extend_from_slice(value);
    }

    /// `timestamptz` from Unix seconds: microseconds since 2000-01-01 UTC.
    fn timestamptz(&mut self, unix_secs: u64) {
        let micros =
            (unix_secs.min(i64::MAX as u64) as i64 - PG_EPOCH_UNIX_SECS).saturating_mul(1_000_000);
        self.int8(micros);
    }

    fn text(&mut self, value: &str) {
        if value.as_bytes().contains(&0) {
            self.bytea(value.replace('\0', "\u{FFFD}").as_bytes());
        } else {
            self.bytea(value.as_bytes());
        }
    }

    fn opt_text(&mut self, value: Option<&str>) {
        match value {
            Some(value) => self.text(value),
            None => self.null(),
        }
    }

    /// `numeric` of an unsigned integer: base-10000 digits, most significant first, after the
    /// header (digit count, weight of the first digit, sign, display scale). Trailing zero digits
    /// are left out, as Postgres does itself; zero has no digits.
    fn numeric(&mut self, value: &U256) {
        let decimal = value.to_string();
        let mut digits: Vec<i16> = Vec::with_capacity(decimal.len() / 4 + 1);
        if !value.is_zero() {
            // Left-pad to whole groups of four decimal digits.
            let pad = (4 - decimal.len() % 4) % 4;
            let padded = format!("{}{decimal}", "0".repeat(pad));
            for group in padded.as_bytes().chunks(4) {
                let d = group
                    .iter()
                    .fold(0i16, |acc, b| acc * 10 + i16::from(b - b'0'));
                digits.push(d);
            }
        }
        let weight = digits.len().saturating_sub(1) as i16;
        while digits.last() == Some(&0) {
            digits.pop();
        }
        self.buf
            .extend_from_slice(&(8 + 2 * digits.len() as i32).to_be_bytes());
        self.buf
            .extend_from_slice(&(digits.len() as i16).to_be_bytes());
        self.buf.extend_from_slice(&weight.to_be_bytes());
        self.buf.extend_from_slice(&0u16.to_be_bytes()); // sign: positive
        self.buf.extend_from_slice(&0i16.to_be_bytes()); // display scale: an integer
        for d in digits {
            self.buf.extend_from_slice(&d.to_be_bytes());
        }
    }

    /// `jsonb`: the version byte, then the JSON text, serialised in place behind a length that is
    /// filled in afterwards.
    fn jsonb(&mut self, value: &Map<String, Value>) {
        let len_at = self.buf.len();
        self.buf.extend_from_slice(&0i32.to_be_bytes());
        let json_at = self.buf.len() + 1;
        self.buf.push(JSONB_VERSION);
        write_json(&mut self.buf, value);
        if contains_escaped_nul(&self.buf[json_at..]) {
            // Rare: a string held U+0000 (or the six characters `\u0000`, which is harmless but
            // cannot be told apart cheaply here). Write a cleaned copy instead.
            self.buf.truncate(json_at);
            let mut clean = value.clone();
            replace_nul_in_map(&mut clean);
            write_json(&mut self.buf, &clean);
        }
        let len = (self.buf.len() - len_at - 4) as i32;
        self.buf[len_at..len_at + 4].copy_from_slice(&len.to_be_bytes());
    }
}

/// The leading fields of a `logs` row, up to the topics: what both encoders of a row share.
struct LogHead<'a> {
    chain_id: u64,
    block_number: u64,
    block_hash: &'a B256,
    block_timestamp: u64,
    tx_hash: &'a B256,
    tx_index: u64,
    log_index: u64,
    address: &'a Address,
    topics: &'a [B256],
}

impl CopyData {
    /// Begins a `logs` tuple and writes its fields up to the four topic columns.
    fn log_head(&mut self, h: LogHead<'_>) {
        self.begin_tuple(LOG_FIELDS);
        self.int8(h.chain_id as i64);
        self.int8(h.block_number as i64);
        self.bytea(h.block_hash.as_slice());
        self.timestamptz(h.block_timestamp);
        self.bytea(h.tx_hash.as_slice());
        self.int4(h.tx_index as i32);
        self.int4(h.log_index as i32);
        self.bytea(h.address.as_slice());
        for i in 0..4 {
            match h.topics.get(i) {
                Some(topic) => self.bytea(topic.as_slice()),
                None => self.null(),
            }
        }
    }

    /// `jsonb` from JSON text that holds no escape sequence (so no `\u0000`), as it is.
    fn jsonb_text(&mut self, json: &str) {
        self.buf
            .extend_from_slice(&(json.len() as i32 + 1).to_be_bytes());
        self.buf.push(JSONB_VERSION);
        self.buf.extend_from_slice(json.as_bytes());
    }
}

fn write_json(buf: &mut Vec<u8>, value: &Map<String, Value>) {
    serde_json::to_writer(buf, value).expect("a JSON object always serialises into a Vec");
}

fn contains_escaped_nul(json: &[u8]) -> bool {
    json.windows(6)
        .any(|w| w[0] == b'\\' && w[1..] == *b"u0000")
}

fn replace_nul_in_map(map: &mut Map<String, Value>) {
    let entries = std::mem::take(map);
    for (mut key, mut value) in entries {
        if key.contains('\0') {
            key = key.replace('\0', "\u{FFFD}");
        }
        replace_nul(&mut value);
        map.insert(key, value);
    }
}

fn replace_nul(value: &mut Value) {
    match value {
        Value::String(s) if s.contains('\0') => *s = s.replace('\0', "\u{FFFD}"),
        Value::Array(items) => items.iter_mut().for_each(replace_nul),
        Value::Object(map) => replace_nul_in_map(map),
        _ => {}
    }
}

/// Rows for `logs`, encoded in the binary `COPY` format as they are pushed. Reuse one buffer:
/// [`flush_logs`] empties it but keeps its allocation.
#[derive(Debug)]
pub struct LogCopyBuffer {
    pub(super) data: CopyData,
}

impl LogCopyBuffer {
    /// An empty buffer, ready for `push`.
    pub fn new() -> Self {
        LogCopyBuffer {
            data: CopyData::new(),
        }
    }

    /// Encodes one row. Topics beyond the fourth (impossible on the EVM) are ignored; integers
    /// are stored with `as` casts (the column types are signed).
    pub fn push(&mut self, log: &LogRecord) {
        let d = &mut self.data;
        d.log_head(LogHead {
            chain_id: log.chain_id,
            block_number: log.block_number,
            block_hash: &log.block_hash,
            block_timestamp: log.block_timestamp,
            tx_hash: &log.tx_hash,
            tx_index: log.tx_index,
            log_index: log.log_index,
            address: &log.address,
            topics: &log.topics,
        });
        d.bytea(&log.data);
        d.opt_text(log.contract.as_deref());
        match &log.event {
            Some(event) => {
                d.text(&event.name);
                d.jsonb(&event.params);
            }
            None => {
                d.null();
                d.null();
            }
        }
    }

    /// Encodes one row from a borrowed view of its message: the same bytes as [`push`] of the
    /// owned record (a test holds the two together), without building that record. The data is
    /// decoded from hex straight into the buffer, the parameters' JSON text copied as it is.
    ///
    /// [`push`]: LogCopyBuffer::push
    pub fn push_view(&mut self, log: &LogView<'_>) {
        let d = &mut self.data;
        d.log_head(LogHead {
            chain_id: log.chain_id,
            block_number: log.block_number,
            block_hash: &log.block_hash,
            block_timestamp: log.block_timestamp,
            tx_hash: &log.tx_hash,
            tx_index: log.tx_index,
            log_index: log.log_index,
            address: &log.address,
            topics: log.topics(),
        });
        d.buf
            .extend_from_slice(&(log.data_len() as i32).to_be_bytes());
        let at = d.buf.len();
        d.buf.resize(at + log.data_len(), 0);
        log.decode_data(&mut d.buf[at..]);
        d.opt_text(log.contract);
        match &log.event {
            Some(event) => {
                d.text(event.name);
                d.jsonb_text(event.params_json);
            }
            None => {
                d.null();
                d.null();
            }
        }
    }

    /// Number of buffered rows.
    pub fn len(&self) -> usize {
        self.data.rows
    }

    /// Whether no row is buffered.
    pub fn is_empty(&self) -> bool {
        self.data.rows == 0
    }

    /// Drops the buffered rows, keeping the allocation.
    pub fn clear(&mut self) {
        self.data.clear();
    }

    /// The encoded tuples (header included), for tests comparing two encodings.
    #[cfg(test)]
    pub(crate) fn encoded(&self) -> &[u8] {
        &self.data.buf
    }
}

impl Default for LogCopyBuffer {
    fn default() -> Self {
        Self::new()
    }
}

/// Rows for `transactions`, encoded in the binary `COPY` format as they are pushed. Reuse one
/// buffer: [`flush_transactions`](super::flush_transactions) empties it but keeps its allocation.
#[derive(Debug)]
pub struct TransactionCopyBuffer {
    pub(super) data: CopyData,
}

impl TransactionCopyBuffer {
    /// An empty buffer, ready for `push`.
    pub fn new() -> Self {
        TransactionCopyBuffer {
            data: CopyData::new(),
        }
    }

    /// Encodes one row. Integers are stored with `as` casts (the column types are signed); wei
    /// amounts as `numeric`, which holds any `uint256`.
    pub fn push(&mut self, tx: &TransactionRecord) {
        let d = &mut self.data;
        d.begin_tuple(TX_FIELDS);
        d.int8(tx.chain_id as i64);
        d.int8(tx.block_number as i64);
        d.bytea(tx.block_hash.as_slice());
        d.timestamptz(tx.block_timestamp);
        d.bytea(tx.tx_hash.as_slice());
        d.int4(tx.tx_index as i32);
        d.bytea(tx.from.as_slice());
        d.bytea(tx.to.as_slice());
        d.numeric(&tx.value);
        match &tx.selector {
            Some(selector) => d.bytea(selector.as_slice()),
            None => d.null(),
        }
        d.opt_text(tx.contract.as_deref());
        match &tx.function {
            Some(call) => {
                d.text(&call.name);
                d.text(&call.signature);
                d.jsonb(&call.params);
            }
            None => {
                d.null();
                d.null();
                d.null();
            }
        }
        d.text(tx.status.as_str());
        d.int8(tx.gas_used as i64);
        d.int8(tx.gas_limit as i64);
        d.numeric(&tx.effective_gas_price);
    }

    /// Number of buffered rows.
    pub fn len(&self) -> usize {
        self.data.rows
    }

    /// Whether no row is buffered.
    pub fn is_empty(&self) -> bool {
        self.data.rows == 0
    }

    /// Drops the buffered rows, keeping the allocation.
    pub fn clear(&mut self) {
        self.data.clear();
    }
}

impl Default for TransactionCopyBuffer {
    fn default() -> Self {
        Self::new()
    }
}

/// Rows for `blocks`, encoded in the binary `COPY` format as they are pushed. Markers keep their
/// push order: of two markers for one height, [`flush_blocks`] stores the one pushed last.
#[derive(Debug)]
pub struct BlockCopyBuffer {
    pub(super) data: CopyData,
}

impl BlockCopyBuffer {
    /// An empty buffer, ready for `push`.
    pub fn new() -> Self {
        BlockCopyBuffer {
            data: CopyData::new(),
        }
    }

    /// Encodes one row.
    pub fn push(&mut self, block: &BlockMarker) {
        let seq = self.data.rows as i64;
        let d = &mut self.data;
        d.begin_tuple(BLOCK_FIELDS);
        d.int8(block.chain_id as i64);
        d.int8(block.number as i64);
        d.bytea(block.hash.as_slice());
        d.bytea(block.parent_hash.as_slice());
        d.timestamptz(block.timestamp);
        d.int4(block.log_count as i32);
        d.int8(seq);
    }

    /// Number of buffered rows.
    pub fn len(&self) -> usize {
        self.data.rows
    }

    /// Whether no row is buffered.
    pub fn is_empty(&self) -> bool {
        self.data.rows == 0
    }

    /// Drops the buffered rows, keeping the allocation.
    pub fn clear(&mut self) {
        self.data.clear();
    }
}

impl Default for BlockCopyBuffer {
    fn default() -> Self {
        Self::new()
    }
}
