//! What the proposer reads from the chain: the Safe's nonce, owners and version, the targets'
//! code, roles and pause state, and dry runs of the pause calls from the Safe. `eth_call` and
//! `eth_getCode` over the chain's providers in order, the next one taking over on an error.

use std::time::Duration;

use alloy::dyn_abi::{DynSolType, DynSolValue};
use alloy::json_abi::Function;
use alloy::primitives::{Address, Bytes, B256, U256};
use alloy::rpc::client::{ClientBuilder, RpcClient};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The node answered: the call reverted (with its reason when it gave one).
    #[error("reverted: {0}")]
    Reverted(String),
    #[error("no provider answered: {0}")]
    Unreachable(String),
    #[error("unexpected answer to {call}: {message}")]
    Decode { call: String, message: String },
}

pub struct ChainReader {
    clients: Vec<(String, RpcClient)>,
}

fn is_revert(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("revert") || m.contains("execution reverted") || m.contains("invalid opcode")
}

impl ChainReader {
    pub fn new(urls: &[String], timeout: Duration) -> Result<ChainReader, ChainError> {
        let mut clients = Vec::new();
        for u in urls {
            let url: url::Url = u
                .parse()
                .map_err(|e| ChainError::Unreachable(format!("{u}: {e}")))?;
            let http = reqwest::Client::builder()
                .timeout(timeout)
                .build()
                .map_err(|e| ChainError::Unreachable(e.to_string()))?;
            let transport = alloy::transports::http::Http::with_client(http, url);
            clients.push((
                u.clone(),
                ClientBuilder::default().transport(transport, false),
            ));
        }
        Ok(ChainReader { clients })
    }

    async fn request<R: alloy::rpc::json_rpc::RpcRecv>(
        &self,
        method: &'static str,
        params: serde_json::Value,
    ) -> Result<R, ChainError> {
        let mut errors = Vec::new();
        for (url, c) in &self.clients {
            match c.request::<_, R>(method, params.clone()).await {
                Ok(r) => return Ok(r),
                Err(e) => {
                    let text = e.to_string();
                    if is_revert(&text) {
                        return Err(ChainError::Reverted(text));
                    }
                    errors.push(format!("{}: {text}", tripwire_config::redact_url(url)));
                }
            }
        }
        Err(ChainError::Unreachable(errors.join("; ")))
    }

    /// `eth_call` of `data` on `to`, optionally `from` someone (a dry run as the Safe).
    pub async fn call(
        &self,
        to: Address,
        data: &[u8],
        from: Option<Address>,
    ) -> Result<Bytes, ChainError> {
        let mut tx = json!({ "to": to, "data": Bytes::copy_from_slice(data) });
        if let Some(f) = from {
            tx["from"] = json!(f);
        }
        self.request("eth_call", json!([tx, "latest"])).await
    }

    pub async fn code(&self, at: Address) -> Result<Bytes, ChainError> {
        self.request("eth_getCode", json!([at, "latest"])).await
    }

    /// Calls `signature` (no arguments unless `args` given) and decodes one return value.
    pub async fn view(
        &self,
        to: Address,
        signature: &str,
        args: &[DynSolValue],
        ret: &str,
    ) -> Result<DynSolValue, ChainError> {
        let f = Function::parse(signature).map_err(|e| ChainError::Decode {
            call: signature.into(),
            message: e.to_string(),
        })?;
        use alloy::dyn_abi::JsonAbiExt;
        let data = f.abi_encode_input(args).map_err(|e| ChainError::Decode {
            call: signature.into(),
            message: e.to_string(),
        })?;
        let out = self.call(to, &data, None).await?;
        let ty: DynSolType = ret.parse().map_err(|e| ChainError::Decode {
            call: signature.into(),
            message: format!("{e}"),
        })?;
        ty.abi_decode(&out).map_err(|e| ChainError::Decode {
            call: signature.into(),
            message: format!("{} bytes: {e}", out.len()),
        })
    }

    pub async fn safe_nonce(&self, safe: Address) -> Result<U256, ChainError> {
        match self.view(safe, "nonce()", &[], "uint256").await? {
            DynSolValue::Uint(n, _) => Ok(n),
            other => Err(decode("nonce()", &other)),
        }
    }

    pub async fn safe_version(&self, safe: Address) -> Result<String, ChainError> {
        match self.view(safe, "VERSION()", &[], "string").await? {
            DynSolValue::String(s) => Ok(s),
            other => Err(decode("VERSION()", &other)),
        }
    }

    pub async fn safe_owners(&self, safe: Address) -> Result<Vec<Address>, ChainError> {
        match self.view(safe, "getOwners()", &[], "address[]").await? {
            DynSolValue::Array(v) => Ok(v.into_iter().filter_map(|a| a.as_address()).collect()),
            other => Err(decode("getOwners()", &other)),
        }
    }

    pub async fn safe_threshold(&self, safe: Address) -> Result<U256, ChainError> {
        match self.view(safe, "getThreshold()", &[], "uint256").await? {
            DynSolValue::Uint(n, _) => Ok(n),
            other => Err(decode("getThreshold()", &other)),
        }
    }

    /// The Safe's own `getTransactionHash(...)` for `tx`.
    pub async fn safe_tx_hash(
        &self,
        safe: Address,
        tx: &super::tx::SafeTx,
    ) -> Result<B256, ChainError> {
        let args = [
            DynSolValue::Address(tx.to),
            DynSolValue::Uint(tx.value, 256),
            DynSolValue::Bytes(tx.data.to_vec()),
            DynSolValue::Uint(U256::from(tx.operation), 8),
            DynSolValue::Uint(tx.safeTxGas, 256),
            DynSolValue::Uint(tx.baseGas, 256),
            DynSolValue::Uint(tx.gasPrice, 256),
            DynSolValue::Address(tx.gasToken),
            DynSolValue::Address(tx.refundReceiver),
            DynSolValue::Uint(tx.nonce, 256),
        ];
        match self
            .view(
                safe,
                "getTransactionHash(address,uint256,bytes,uint8,uint256,uint256,uint256,address,address,uint256)",
                &args,
                "bytes32",
            )
            .await?
        {
            DynSolValue::FixedBytes(w, 32) => Ok(w),
            other => Err(decode("getTransactionHash", &other)),
        }
    }
}

fn decode(call: &str, got: &DynSolValue) -> ChainError {
    ChainError::Decode {
        call: call.into(),
        message: format!("got {got:?}"),
    }
}

/// Whether `code` dispatches `selector`: Solidity compares the calldata's selector with a
/// `PUSH4 <selector>` per external function.
pub fn has_selector(code: &[u8], selector: [u8; 4]) -> bool {
    code.windows(5).any(|w| w[0] == 0x63 && w[1..] == selector)
}
