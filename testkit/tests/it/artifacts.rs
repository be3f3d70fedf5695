//! The committed contract artifacts must be exactly what the sources compile to.

use std::process::Command;

#[test]
fn committed_artifacts_match_sources() {
    let root = testkit::repo_root();
    let output = Command::new("node")
        .arg("contracts/build.mjs")
        .arg("--check")
        .current_dir(&root)
        .output()
        .expect("node must be installed (scripts/install-tools)");
    assert!(
        output.status.success(),
        "contracts/out is stale:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn every_artifact_loads() {
    for name in ["DemoToken", "Vault", "Registry", "Spammer"] {
        let artifact = testkit::contracts::artifact(name);
        assert_eq!(artifact.name, name);
        assert!(!artifact.bytecode.is_empty());
        assert!(artifact.json_abi().is_ok(), "{name} ABI");
    }
}
