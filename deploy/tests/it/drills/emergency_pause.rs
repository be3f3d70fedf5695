//! `docs/runbooks/emergency-pause.md` on the real Safe v1.4.1 contracts as the demo deploys them (a
//! treasury whose pauser role a 2-of-3 Safe holds), with the ingest, sink and watchdog as separate
//! processes, as the compose file runs them, and a real Alertmanager. A planted attack makes the
//! watchdog propose the pause; then, command by command from the runbook: the checks (the alert,
//! `proposals list` and `show`, the Safe's owners, threshold, nonce and own hash of the
//! transaction), the second owner's `cast wallet sign`, `proposals show --signature` and the
//! `cast send` it prints (simulated first; a wrong order made by hand is refused with GS026), the
//! admin's unpause, and a pause prepared by hand without a proposal. Last, the status, metrics and
//! health commands of every runbook run against these processes.

mod printed;
mod setup;

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use serde_json::Value;
use testkit::alertmanager::Alertmanager;
use testkit::anvil::Anvil;
use testkit::kafka::TestKafka;
use testkit::postgres::TestDb;
use testkit::safe::OWNER_KEYS;
use tripwire_deploy::runbook::Command;

use crate::drills::{
    all_pipelines, all_runbooks, amtool, curl_grep, eventually, fill, find, has, run, run_ok,
    runbook, scratch,
};
use printed::{
    concatenated, gathered, printed_command, same_command, shown, signatures_of, simulation_of,
};
use setup::{attack_until_proposed, deploy, Chain, Stack};

/// Anvil's dev account 4 (its well-known test mnemonic): the treasury's admin here, who may
/// unpause. Neither a Safe owner (accounts 1-3) nor the deployer, whose key the planted attack
/// plays as leaked: the ops team's own key, as `OPS_ADDRESS` names it in a deployment.
const ADMIN_KEY: &str = "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a";

/// Hex digits of one 65-byte signature.
const SIGNATURE_HEX: usize = 130;

/// Placeholder or variable -> value.
type Values = Vec<(&'static str, String)>;

fn with(base: &Values, extra: &[(&'static str, String)]) -> Values {
    let mut all = base.clone();
    all.extend(extra.iter().cloned());
    all
}

fn args_of(c: &Command, values: &Values) -> Result<Vec<String>> {
    let pairs: Vec<(&str, &str)> = values.iter().map(|(k, v)| (*k, v.as_str())).collect();
    fill(c, &pairs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn second_owner_signs_executes_and_the_admin_unpauses() -> Result<()> {
    let dir = scratch("pause")?;
    let anvil = Anvil::spawn().await?;
    let db = TestDb::create().await?;
    let kafka = TestKafka::start()?;
    let am = Alertmanager::spawn().await?;
    let book = Book {
        cmds: runbook("emergency-pause.md")?,
    };

    let chain = deploy(&anvil, &dir, &book).await?;
    let stack = Stack::start(&dir, &chain, &db, &kafka, &am).await?;
    let id = attack_until_proposed(&chain, &db, &stack).await?;
    let shown = check_the_proposal(&book, &stack, &am, &chain, id).await?;
    check_what_is_signed(&book, &chain, &shown)?;
    second_owner_signs_and_the_printed_command_executes(&book, &stack, &chain, &shown)?;
    admin_unpauses(&book, &shown)?;
    pause_without_a_proposal(&book, &chain, &shown)?;
    every_status_metric_and_health_command(&stack, &am)?;

    drop(stack);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// The runbook's steps

/// The runbook's commands, run as an owner runs them.
struct Book {
    cmds: Vec<Command>,
}

impl Book {
    fn find(&self, program: &str, what: &str, pred: impl Fn(&Command) -> bool) -> Result<&Command> {
        find(&self.cmds, program, what, pred)
    }

    /// The first `cast call` whose function starts with `function`.
    fn cast_call(&self, function: &str) -> Result<&Command> {
        self.find("cast", &format!("call '{function}...'"), |c| {
            c.args.first().map(String::as_str) == Some("call")
                && c.args.iter().any(|a| a.starts_with(function))
        })
    }

    /// Step 3's simulation, `cast call <safe> 'execTransaction(...)(bool)'`.
    fn simulation(&self) -> Result<&Command> {
        self.cast_call("execTransaction(")
    }

    /// Step 4's form of the execution, `cast send <safe> 'execTransaction(...)'`.
    fn execution(&self) -> Result<&Command> {
        self.find("cast", "send <safe> 'execTransaction(...)'", |c| {
            c.args.first().map(String::as_str) == Some("send")
                && c.args.iter().any(|a| a.starts_with("execTransaction("))
        })
    }

    fn sign_command(&self) -> Result<&Command> {
        self.find("cast", "wallet sign --no-hash", |c| {
            has(c, &["wallet", "sign", "--no-hash"])
        })
    }

    /// Step 2's `proposals show <id> --signature <second-owner-signature>`, in each place the
    /// runbook gives it (the watchdog's container, the cli one while the watchdog is down).
    fn show_with_signature(&self) -> Result<Vec<&Command>> {
        let found: Vec<&Command> = self
            .cmds
            .iter()
            .filter(|c| {
                c.program == "tripwire-watchdog" && has(c, &["proposals", "show", "--signature"])
            })
            .collect();
        ensure!(
            !found.is_empty(),
            "emergency-pause.md: no `tripwire-watchdog proposals show <id> --signature` command"
        );
        Ok(found)
    }

    /// Runs a `cast` command with `values` filled in; it must succeed. Its trimmed stdout.
    fn cast(&self, c: &Command, values: &Values) -> Result<String> {
        Ok(run_ok(c, &args_of(c, values)?, &[], None)?
            .trim()
            .to_owned())
    }

    /// The address of `key`, by the runbook's `cast wallet address`.
    fn address_of(&self, key: &str) -> Result<String> {
        let c = self.find("cast", "wallet address", |c| has(c, &["wallet", "address"]))?;
        self.cast(c, &vec![("$OWNER_KEY", key.to_owned())])
    }

    /// `key`'s signature of `hash`, by the runbook's `cast wallet sign --no-hash`.
    fn sign(&self, key: &str, hash: &str) -> Result<String> {
        let s = self.cast(
            self.sign_command()?,
            &vec![
                ("$OWNER_KEY", key.to_owned()),
                ("<safeTxHash>", hash.to_owned()),
            ],
        )?;
        ensure!(s.len() == 2 + SIGNATURE_HEX, "not one signature: {s}");
        Ok(s)
    }
}

/// A proposal as `proposals show` printed it.
struct Shown {
    id: String,
    /// The runbook's placeholders filled with what `show` printed.
    values: Values,
    hash: String,
    nonce: String,
    data: String,
    /// The proposer's address, as listed under "signatures gathered", and signature.
    proposer: String,
    proposer_sig: String,
}

/// Checks 1 and 2: the attack's critical alert in Alertmanager, the proposal listed and shown.
/// The runbook's signing and execution commands, filled with the shown values, are the commands
/// `show` prints.
async fn check_the_proposal(
    book: &Book,
    stack: &Stack,
    am: &Alertmanager,
    chain: &Chain,
    id: i64,
) -> Result<Shown> {
    let crit = book.find("amtool", "alert query severity=critical", |c| {
        has(c, &["alert", "query", "severity=critical"])
    })?;
    let am_url = am.url();
    eventually("the attack's alert", Duration::from_secs(30), || {
        Ok(amtool(crit, &am_url, &[])?
            .contains("TripwireEvent")
            .then_some(()))
    })
    .await?;
    let list = book.find("tripwire-watchdog", "proposals list", |c| {
        has(c, &["proposals", "list"])
    })?;
    let out = stack.tripwire(list, &[])?;
    assert!(out.contains("recorded"), "{out}");

    let show = book.find("tripwire-watchdog", "proposals show <id>", |c| {
        has(c, &["proposals", "show"]) && !has(c, &["--signature"])
    })?;
    let id = id.to_string();
    let out = stack.tripwire(show, &[("<id>", &id)])?;
    let hash = shown(&out, "safeTxHash:")?;
    let nonce = shown(&out, "nonce:")?;
    let data = shown(&out, "data:")?;
    // "to <addr> value <v> operation <op> (call)"
    let tx: Vec<String> = shown(&out, "transaction:")?
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    ensure!(tx.len() >= 6, "transaction line: {tx:?}");
    let (to, value, operation) = (tx[1].clone(), tx[3].clone(), tx[5].clone());
    assert!(
        to.eq_ignore_ascii_case(&chain.treasury),
        "one target: a direct call to it ({to})"
    );
    let signers = gathered(&out)?;
    assert_eq!(signers.len(), 1, "only the proposer has signed:\n{out}");
    let printed_send = printed_command(&out, "cast send")?;
    let printed_sign = printed_command(&out, "cast wallet sign")?;
    let proposer_sig = signatures_of(&printed_send)?;
    assert_eq!(proposer_sig.len(), 2 + SIGNATURE_HEX, "{proposer_sig}");
    // The RPC URL as `show` prints it (the config's, normalised): the node of this drill.
    let printed_rpc = printed_send
        .args
        .iter()
        .skip_while(|a| *a != "--rpc-url")
        .nth(1)
        .cloned()
        .context("the printed cast send has no --rpc-url")?;
    assert_eq!(printed_rpc.trim_end_matches('/'), chain.rpc);
    let values: Values = vec![
        ("<safe>", chain.safe.clone()),
        ("<rpc>", printed_rpc),
        ("<to>", to),
        ("<value>", value),
        ("<data>", data.clone()),
        ("<operation>", operation),
        ("<nonce>", nonce.clone()),
        ("<safeTxHash>", hash.clone()),
        ("<target>", chain.treasury.clone()),
    ];
    // Equal to its name: the variable stays as `show` writes it.
    let keep_key = ("$OWNER_KEY", "$OWNER_KEY".to_owned());
    same_command(
        book.execution()?,
        &with(
            &values,
            &[("<signatures>", proposer_sig.clone()), keep_key.clone()],
        ),
        &printed_send,
    )?;
    same_command(
        book.sign_command()?,
        &with(&values, &[keep_key]),
        &printed_sign,
    )?;
    Ok(Shown {
        id,
        values,
        hash,
        nonce,
        data,
        proposer: signers[0].0.clone(),
        proposer_sig,
    })
}

/// Check 3, independently of the watchdog: the Safe's owners, threshold and nonce, the pause
/// selector, and the Safe's own hash of the transaction, which is the shown `safeTxHash`.
fn check_what_is_signed(book: &Book, chain: &Chain, shown: &Shown) -> Result<()> {
    let v = &shown.values;
    let out = book.cast(book.cast_call("getOwners()")?, v)?.to_lowercase();
    for o in &chain.owners {
        assert!(out.contains(o), "{o} not among {out}");
    }
    assert!(
        shown
            .proposer
            .eq_ignore_ascii_case(&book.address_of(OWNER_KEYS[0])?),
        "the proposer is not the key the watchdog was given"
    );
    assert_eq!(book.cast(book.cast_call("getThreshold()")?, v)?, "2");
    assert_eq!(book.cast(book.cast_call("nonce()")?, v)?, shown.nonce);
    let selector = book.find("cast", "sig 'pause()'", |c| has(c, &["sig", "pause()"]))?;
    assert_eq!(book.cast(selector, v)?, shown.data);
    assert_eq!(
        book.cast(book.cast_call("getTransactionHash(")?, v)?,
        shown.hash
    );
    Ok(())
}

/// Steps 1 to 4. The second owner signs; `proposals show --signature` recovers and lists them and
/// prints the execution with both signatures in the Safe's order; the simulation built from that
/// command says `true` while a wrong order made by hand is refused with GS026; the printed
/// `cast send` pauses the treasury and moves the Safe's nonce on.
fn second_owner_signs_and_the_printed_command_executes(
    book: &Book,
    stack: &Stack,
    chain: &Chain,
    shown: &Shown,
) -> Result<()> {
    let owner = book.address_of(OWNER_KEYS[1])?;
    assert!(chain.owners.contains(&owner.to_lowercase()), "{owner}");
    let sig = book.sign(OWNER_KEYS[1], &shown.hash)?;

    let commands = book.show_with_signature()?;
    let given = |c: &Command, sig: &str| -> Result<Vec<String>> {
        fill(c, &[("<id>", &shown.id), ("<second-owner-signature>", sig)])
    };
    // A value that is no signature is refused, naming it, as the runbook says.
    let out = run(
        &commands[0].program,
        &given(commands[0], "0x1234")?,
        &stack.env(),
        None,
    )?;
    assert!(
        !out.ok && out.stderr.contains("--signature 0x1234: 2 bytes"),
        "{out:?}"
    );
    let mut outputs = Vec::new();
    for c in &commands {
        outputs.push(run_ok(c, &given(c, &sig)?, &stack.env(), None)?);
    }
    let out = outputs[0].clone();
    assert!(
        outputs.iter().all(|o| *o == out),
        "the runbook's `proposals show --signature` commands print different things:\n{}",
        outputs.join("\n---\n")
    );

    // The signer recovered from the given signature is the second owner, marked as given.
    let signers = gathered(&out)?;
    assert_eq!(signers.len(), 2, "{out}");
    assert!(
        signers[0].0.eq_ignore_ascii_case(&shown.proposer) && !signers[0].1,
        "{out}"
    );
    assert!(
        signers[1].0.eq_ignore_ascii_case(&owner) && signers[1].1,
        "{out}"
    );

    // Packed in ascending order of the signers, as the Safe checks them; the reverse, by hand, is
    // what the Safe must refuse.
    let printed_send = printed_command(&out, "cast send")?;
    let packed = signatures_of(&printed_send)?;
    let pair = vec![
        (shown.proposer.clone(), shown.proposer_sig.clone()),
        (owner, sig),
    ];
    assert_eq!(
        packed.to_lowercase(),
        concatenated(pair.clone(), false).to_lowercase(),
        "`show` packs the signatures out of the Safe's order"
    );
    let wrong = concatenated(pair, true);

    // The runbook's form of the execution is the printed command, and its simulation the same
    // call as step 3 builds it.
    let v = with(&shown.values, &[("<signatures>", packed)]);
    same_command(
        book.execution()?,
        &with(&v, &[("$OWNER_KEY", "$OWNER_KEY".to_owned())]),
        &printed_send,
    )?;
    let simulate = book.simulation()?;
    let lower =
        |v: Vec<String>| -> Vec<String> { v.into_iter().map(|a| a.to_lowercase()).collect() };
    assert_eq!(
        lower(args_of(simulate, &v)?),
        lower(simulation_of(&printed_send)?),
        "{}: not the printed command as a `cast call`",
        simulate.location()
    );
    let refused = run(
        &simulate.program,
        &args_of(simulate, &with(&shown.values, &[("<signatures>", wrong)]))?,
        &[],
        None,
    )?;
    assert!(
        !refused.ok && format!("{}{}", refused.stdout, refused.stderr).contains("GS026"),
        "{refused:?}"
    );
    assert_eq!(book.cast(simulate, &v)?, "true");

    let paused = book.cast_call("paused()")?;
    assert_eq!(book.cast(paused, &shown.values)?, "false");
    run_ok(
        &printed_send,
        &fill(&printed_send, &[("$OWNER_KEY", OWNER_KEYS[1])])?,
        &[],
        None,
    )?;
    assert_eq!(
        book.cast(paused, &shown.values)?,
        "true",
        "the printed execTransaction did not pause the treasury"
    );
    let next = shown.nonce.parse::<u64>()? + 1;
    assert_eq!(
        book.cast(book.cast_call("nonce()")?, &shown.values)?,
        next.to_string()
    );
    Ok(())
}

/// Roll back: the admin unpauses (the Safe holds only the pauser role).
fn admin_unpauses(book: &Book, shown: &Shown) -> Result<()> {
    let unpause = book.find("cast", "send <target> 'unpause()'", |c| {
        has(c, &["send", "unpause()"])
    })?;
    book.cast(
        unpause,
        &with(&shown.values, &[("$ADMIN_KEY", ADMIN_KEY.to_owned())]),
    )?;
    assert_eq!(
        book.cast(book.cast_call("paused()")?, &shown.values)?,
        "false",
        "the runbook's unpause did not unpause"
    );
    Ok(())
}

/// Without a proposal: the call data and the nonce by hand, the Safe's hash of them, two owners'
/// signatures put together by hand (the proposer's key this time: any two owners will do), and
/// steps 3 and 4 with them.
fn pause_without_a_proposal(book: &Book, chain: &Chain, shown: &Shown) -> Result<()> {
    let calldata = book.find("cast", "calldata 'pause()'", |c| {
        has(c, &["calldata", "pause()"])
    })?;
    let data = book.cast(calldata, &shown.values)?;
    assert_eq!(data, shown.data);
    let base: Values = vec![
        ("<safe>", chain.safe.clone()),
        ("<rpc>", chain.rpc.clone()),
        ("<to>", chain.treasury.clone()),
        ("<value>", "0".to_owned()),
        ("<data>", data),
        ("<operation>", "0".to_owned()),
        (
            "<nonce>",
            book.cast(book.cast_call("nonce()")?, &shown.values)?,
        ),
        ("<target>", chain.treasury.clone()),
    ];
    let hash = book.cast(book.cast_call("getTransactionHash(")?, &base)?;
    let mut signed = Vec::new();
    for key in [OWNER_KEYS[1], OWNER_KEYS[0]] {
        signed.push((book.address_of(key)?, book.sign(key, &hash)?));
    }
    // The runbook's `SIGS=0x<lower><higher>`, given to steps 3 and 4 as `<signatures>`.
    let v = with(&base, &[("<signatures>", concatenated(signed, false))]);
    assert_eq!(book.cast(book.simulation()?, &v)?, "true");
    book.cast(
        book.execution()?,
        &with(&v, &[("$OWNER_KEY", OWNER_KEYS[0].to_owned())]),
    )?;
    assert_eq!(
        book.cast(book.cast_call("paused()")?, &base)?,
        "true",
        "the pause prepared by hand did not pause"
    );
    Ok(())
}

/// The status, metrics and health commands of every runbook, against the running ingest, sink,
/// watchdog and Alertmanager.
fn every_status_metric_and_health_command(stack: &Stack, am: &Alertmanager) -> Result<()> {
    let mut statuses = 0;
    for c in all_runbooks()?
        .iter()
        .filter(|c| c.program == "tripwire-indexer" && has(c, &["status"]))
    {
        statuses += 1;
        let out = stack.tripwire(c, &[])?;
        if has(c, &["--json"]) {
            let rows: Value = serde_json::from_str(&out)?;
            assert_eq!(rows[0]["chain"], "devnet", "{out}");
            assert!(
                rows[0]["providers"][0]["in_rotation"].as_bool() == Some(true),
                "{out}"
            );
        } else {
            assert!(
                out.contains("devnet") && out.contains("in rotation"),
                "{out}"
            );
        }
    }
    assert!(statuses >= 4, "only {statuses} status commands");
    let am_host = am.url().trim_start_matches("http://").to_owned();
    let map = |u: &str| -> Option<String> {
        let rest = u.strip_prefix("http://")?;
        let (hostport, path) = rest.split_once('/').unwrap_or((rest, ""));
        let base = match hostport {
            "127.0.0.1:9464" => &stack.ingest_addr,
            "127.0.0.1:9465" => &stack.sink_addr,
            "127.0.0.1:9466" => &stack.watchdog_addr,
            "alertmanager:9093" | "localhost:9093" => &am_host,
            _ => return None,
        };
        Some(format!("http://{base}/{path}"))
    };
    // Counters that only exist once something failed: their greps may select nothing here.
    let error_only = ["^tripwire_watchdog_delivery_errors_total"];
    let mut probed = 0;
    for p in all_pipelines()? {
        let Some((out, matched)) = curl_grep(&p, &map)? else {
            continue;
        };
        probed += 1;
        let c = &p[0];
        let grep = p.get(1).filter(|g| g.program == "grep");
        if c.args.iter().any(|a| a.ends_with("/health")) {
            assert!(out.contains("\"status\""), "{}: {out}", c.location());
        } else if let Some(g) = grep {
            if !g.args.iter().any(|a| error_only.contains(&a.as_str())) {
                assert!(
                    matched && !out.trim().is_empty(),
                    "{}: `{}` selects nothing",
                    c.location(),
                    g.display()
                );
            }
        }
    }
    assert!(probed >= 10, "only {probed} curl commands probed");
    Ok(())
}
