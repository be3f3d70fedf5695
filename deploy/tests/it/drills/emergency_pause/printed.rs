//! Reading what `tripwire-watchdog proposals show` prints (its fields, its signers, the commands
//! it prints for an owner to run), and comparing those commands with the runbook's.

use anyhow::{ensure, Context, Result};
use tripwire_deploy::runbook::Command;

use super::{args_of, Values, SIGNATURE_HEX};

/// `field:   value` of `tripwire-watchdog proposals show`.
pub(super) fn shown(out: &str, field: &str) -> Result<String> {
    out.lines()
        .find_map(|l| l.trim().strip_prefix(field).map(|v| v.trim().to_owned()))
        .with_context(|| format!("`proposals show` has no `{field}` line:\n{out}"))
}

/// The signers listed under "signatures gathered", each with whether it came from `--signature`.
pub(super) fn gathered(out: &str) -> Result<Vec<(String, bool)>> {
    let signers: Vec<(String, bool)> = out
        .lines()
        .skip_while(|l| !l.contains("signatures gathered"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .map(|l| match l.trim().strip_suffix("(--signature)") {
            Some(address) => (address.trim().to_owned(), true),
            None => (l.trim().to_owned(), false),
        })
        .collect();
    ensure!(
        !signers.is_empty(),
        "`proposals show` lists no signer:\n{out}"
    );
    Ok(signers)
}

/// The shell command `proposals show` printed that starts with `prefix`, parsed.
pub(super) fn printed_command(out: &str, prefix: &str) -> Result<Command> {
    let lines: Vec<&str> = out.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.trim_start().starts_with(prefix))
        .with_context(|| format!("`proposals show` prints no `{prefix}`:\n{out}"))?;
    let mut text = String::new();
    for l in &lines[start..] {
        text.push_str(l.trim());
        text.push('\n');
        if !l.trim_end().ends_with('\\') {
            break;
        }
    }
    let mut cmds =
        tripwire_deploy::runbook::commands(&format!("```sh\n{text}```\n"), "proposals show")?;
    cmds.pop().context("parsed nothing")
}

/// The signatures of a printed `cast send ... execTransaction`: the argument before `--rpc-url`.
pub(super) fn signatures_of(send: &Command) -> Result<String> {
    let at = send
        .args
        .iter()
        .position(|a| a == "--rpc-url")
        .context("the printed cast send has no --rpc-url")?;
    let s = send.args[..at]
        .last()
        .context("the printed cast send has no arguments")?;
    ensure!(
        s.starts_with("0x") && s.len() > 2 && (s.len() - 2) % SIGNATURE_HEX == 0,
        "the printed cast send carries no signatures before --rpc-url: {s}"
    );
    Ok(s.clone())
}

/// Step 3's simulation of a printed `cast send`: `call` for `send`, `(bool)` after the function's
/// parameter list, no `--private-key`.
pub(super) fn simulation_of(send: &Command) -> Result<Vec<String>> {
    let mut args = Vec::new();
    let mut rest = send.args.iter();
    while let Some(a) = rest.next() {
        match a.as_str() {
            "send" if args.is_empty() => args.push("call".to_owned()),
            "--private-key" => {
                rest.next();
            }
            f if f.starts_with("execTransaction(") => args.push(format!("{f}(bool)")),
            _ => args.push(a.clone()),
        }
    }
    ensure!(
        args.first().map(String::as_str) == Some("call"),
        "not a cast send: {}",
        send.display()
    );
    Ok(args)
}

/// The runbook's `template` filled with `values` has the arguments of `printed` (addresses
/// compared case-insensitively: `show` checksums them).
pub(super) fn same_command(template: &Command, values: &Values, printed: &Command) -> Result<()> {
    let lower = |v: &[String]| -> Vec<String> { v.iter().map(|a| a.to_lowercase()).collect() };
    let filled = args_of(template, values)?;
    ensure!(
        lower(&filled) == lower(&printed.args),
        "{} differs from the command `proposals show` prints:\n  runbook: {}\n  printed: {}",
        template.location(),
        filled.join(" "),
        printed.args.join(" ")
    );
    Ok(())
}

/// `0x` + signatures (65 bytes each, without their `0x`) in ascending order of the signer, as the
/// Safe wants them, or descending.
pub(super) fn concatenated(mut sigs: Vec<(String, String)>, descending: bool) -> String {
    sigs.sort_by_key(|(addr, _)| addr.to_lowercase());
    if descending {
        sigs.reverse();
    }
    let mut out = String::from("0x");
    for (_, s) in sigs {
        out.push_str(s.trim().trim_start_matches("0x"));
    }
    out
}
