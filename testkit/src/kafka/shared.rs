//! What the endpoint and the topic reader both use: the [`Record`] a test gets back for each
//! consumed message, and the timeout of metadata and watermark queries. A leaf module, so the
//! modules that share these do not depend on each other to get them.

use std::time::Duration;

/// How long a metadata or watermark query may take.
pub(super) const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// One consumed record with its position, for tests that check partitioning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
}
