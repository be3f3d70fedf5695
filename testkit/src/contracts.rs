//! Access to the compiled demo contracts in `contracts/out/`, which are
//! committed so Rust tests never need node or solc at run time.

use std::path::PathBuf;

use anyhow::Context;
use serde_json::Value;

/// One compiled contract, as written by `contracts/build.mjs`.
#[derive(Debug, Clone)]
pub struct Artifact {
    pub name: String,
    pub abi: Value,
    /// Creation code: what a deployment transaction carries (before constructor args).
    pub bytecode: Vec<u8>,
    /// Runtime code: what `eth_getCode` returns after deployment.
    pub deployed_bytecode: Vec<u8>,
}

impl Artifact {
    /// The ABI as alloy's typed representation, for decoding logs in assertions.
    pub fn json_abi(&self) -> anyhow::Result<alloy::json_abi::JsonAbi> {
        serde_json::from_value(self.abi.clone())
            .with_context(|| format!("ABI of {} does not parse", self.name))
    }
}

/// Path of the artifact for contract `name`, e.g. `contracts/out/DemoToken.json`.
pub fn artifact_path(name: &str) -> PathBuf {
    crate::repo_root()
        .join("contracts")
        .join("out")
        .join(format!("{name}.json"))
}

/// Loads the artifact for contract `name`, panicking with a hint if it is absent
/// or malformed (a broken checkout, not something a test can recover from).
pub fn artifact(name: &str) -> Artifact {
    try_artifact(name).unwrap_or_else(|e| panic!("{e:#}"))
}

/// Fallible form of [`artifact`].
pub fn try_artifact(name: &str) -> anyhow::Result<Artifact> {
    artifact_at(&artifact_path(name), name)
}

/// The Safe v1.4.1 artifact `rel` (e.g. `Safe.sol/Safe.json`) of the npm package
/// `@safe-global/safe-contracts` that `scripts/install-tools` puts under `tools/`.
pub fn safe_artifact(rel: &str) -> anyhow::Result<Artifact> {
    let path = crate::repo_root()
        .join("tools/node_modules/@safe-global/safe-contracts/build/artifacts/contracts")
        .join(rel);
    artifact_at(&path, rel)
}

/// Loads a Hardhat- or build.mjs-style artifact (`abi`, `bytecode`, `deployedBytecode`).
pub fn artifact_at(path: &std::path::Path, name: &str) -> anyhow::Result<Artifact> {
    let path = path.to_owned();
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read {} (run `node contracts/build.mjs` to regenerate artifacts)",
            path.display()
        )
    })?;
    let json: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let hex_field = |field: &str| -> anyhow::Result<Vec<u8>> {
        let s = json[field]
            .as_str()
            .with_context(|| format!("{}: missing string field {field}", path.display()))?;
        alloy::primitives::hex::decode(s)
            .with_context(|| format!("{}: field {field} is not hex", path.display()))
    };
    Ok(Artifact {
        name: json["contractName"].as_str().unwrap_or(name).to_owned(),
        abi: json["abi"].clone(),
        bytecode: hex_field("bytecode")?,
        deployed_bytecode: hex_field("deployedBytecode")?,
    })
}
