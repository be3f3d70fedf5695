//! Helpers shared by Tripwire's benchmark binaries (see `benches/README.md`):
//! [`procfs`] reads memory and CPU figures of processes from `/proc`, and [`rpc`]
//! counts the logs of a JSON-RPC answer without building a document tree, so the
//! benchmark client costs as little as possible next to the node it measures.

/// Per-process and system-wide figures from Linux `/proc`; the test harness's, shared with the
/// processes it starts ([`testkit::process::Proc`]).
pub use testkit::procfs;

pub mod rpc {
    //! Counting the logs of `eth_getLogs` answers while skipping their content.

    use std::fmt;

    use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

    /// The `result` of a JSON-RPC answer reduced to its length: the number of elements when it is
    /// an array (the logs of `eth_getLogs`), 0 for an object (a block header) or `null`.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    pub struct Count(pub u64);

    impl<'de> Deserialize<'de> for Count {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Count;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("a JSON-RPC result")
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Count, A::Error> {
                    let mut n = 0;
                    while seq.next_element::<IgnoredAny>()?.is_some() {
                        n += 1;
                    }
                    Ok(Count(n))
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Count, A::Error> {
                    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                    Ok(Count(0))
                }
                fn visit_unit<E: de::Error>(self) -> Result<Count, E> {
                    Ok(Count(0))
                }
                fn visit_none<E: de::Error>(self) -> Result<Count, E> {
                    Ok(Count(0))
                }
                fn visit_str<E: de::Error>(self, _: &str) -> Result<Count, E> {
                    Ok(Count(0))
                }
                fn visit_u64<E: de::Error>(self, _: u64) -> Result<Count, E> {
                    Ok(Count(0))
                }
                fn visit_bool<E: de::Error>(self, _: bool) -> Result<Count, E> {
                    Ok(Count(0))
                }
            }
            d.deserialize_any(V)
        }
    }

    /// One JSON-RPC answer: the result's [`Count`], or the error object.
    #[derive(Debug, serde::Deserialize)]
    pub struct Reply {
        #[serde(default)]
        pub result: Count,
        #[serde(default)]
        pub error: Option<serde_json::Value>,
    }

    /// Parses a single answer or a batch of answers; returns the logs counted over all of them,
    /// or the first error.
    pub fn count_logs(body: &[u8]) -> anyhow::Result<u64> {
        let first = body.iter().find(|b| !b.is_ascii_whitespace());
        let replies: Vec<Reply> = if first == Some(&b'[') {
            serde_json::from_slice(body)?
        } else {
            vec![serde_json::from_slice(body)?]
        };
        let mut n = 0;
        for r in replies {
            if let Some(e) = r.error.filter(|e| !e.is_null()) {
                anyhow::bail!("JSON-RPC error: {e}");
            }
            n += r.result.0;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::rpc;

    #[test]
    fn counts_logs_without_parsing_them() {
        let single = br#"{"jsonrpc":"2.0","id":1,"result":[{"a":[1,2]},{"b":"x"},{}]}"#;
        assert_eq!(rpc::count_logs(single).unwrap(), 3);
        let batch = br#"[{"id":1,"result":{"number":"0x1","x":[1]}},{"id":2,"result":null},{"id":3,"result":[1,2]}]"#;
        assert_eq!(rpc::count_logs(batch).unwrap(), 2);
        let err = br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"too big"}}"#;
        assert!(rpc::count_logs(err).is_err());
    }
}
