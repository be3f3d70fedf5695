//! D5: each misconfiguration of `[watchdog.safe]` stops start-up with the name of what is wrong.

use super::*;

/// `[watchdog.safe]` for `setup` as text, pausing every `treasury` address: the misconfiguration
/// cases of d5 are edits of this text, which is what an operator gets wrong.
fn safe_toml(setup: &SafeSetup) -> String {
    format!(
        r#"
[watchdog.safe]
chain = "devnet"
address = "{safe}"
proposer_key_file = "{key}"
multisend = "{multisend}"
[[watchdog.safe.targets]]
contract = "treasury"
"#,
        safe = setup.safe,
        key = setup.key_file.display(),
        multisend = setup.singletons.multisend_call_only,
    )
}

/// Runs `tripwire-watchdog run` with `[watchdog.safe]` appended and returns its output once it
/// stopped (it must stop).
async fn start_fails(env: &Env, detectors_and_safe: String) -> Result<String> {
    let env_cfg = detectors_and_safe;
    let dir = env.dir.path().join(format!(
        "d5-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir)?;
    let text = std::fs::read_to_string(env.config())?;
    let path = dir.join("tripwire.toml");
    std::fs::write(&path, format!("{text}\n{env_cfg}"))?;
    let mut p = testkit::process::Proc::spawn(Path::new(common::BIN), &path, "run", &dir, "info")?;
    let status = p.wait(Duration::from_secs(30))?;
    assert!(!status.success(), "started despite: {}", p.output());
    Ok(p.output())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn d5_each_misconfiguration_stops_start_up_with_its_name() -> Result<()> {
    let mut env = Env::new(vec![]).await?;
    let setup = env.setup_safe().await?;
    env.detectors = vec![env.pause_detector(setup.safe)];
    let good = safe_toml(&setup);
    let other_key = env.dir.path().join("stranger.key");
    // anvil account 5: not an owner.
    std::fs::write(
        &other_key,
        "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
    )?;
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "no contract",
            good.replace(
                &setup.safe.to_string(),
                &Address::repeat_byte(0x42).to_string(),
            ),
            "no contract at this address",
        ),
        (
            "not a Safe",
            good.replace(&setup.safe.to_string(), &env.token.to_string()),
            "is not a Safe",
        ),
        (
            "proposer not an owner",
            good.replace(
                &setup.key_file.display().to_string(),
                &other_key.display().to_string(),
            ),
            "is not an owner of the Safe",
        ),
        (
            "target without pause()",
            good.replace(
                "contract = \"treasury\"",
                &format!("address = \"{}\"", env.token),
            ),
            "has no function pause()",
        ),
        (
            "Safe without the pauser role",
            good.replace(
                "contract = \"treasury\"",
                &format!("address = \"{}\"", env.anvil.deploy("Treasury", &[]).await?),
            ),
            "does not hold PAUSER_ROLE",
        ),
        (
            "unpause",
            format!("{good}function = \"unpause()\"\n"),
            "never proposes an unpause",
        ),
        (
            "missing key file",
            good.replace(&setup.key_file.display().to_string(), "/nonexistent/key"),
            "watchdog.safe.proposer_key_file",
        ),
    ];
    for (what, safe_toml, expect) in cases {
        let out = start_fails(&env, safe_toml).await?;
        assert!(
            out.contains(expect),
            "{what}: expected `{expect}` in:\n{out}"
        );
        // The key never appears in what the process prints.
        assert!(
            !out.contains(&tsafe::OWNER_KEYS[0][2..]),
            "{what}: key leaked"
        );
        println!(
            "{what}: {}",
            out.lines()
                .rev()
                .find(|l| l.contains("error"))
                .unwrap_or("")
        );
    }
    Ok(())
}
