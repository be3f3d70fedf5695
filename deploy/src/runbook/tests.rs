//! The parser on small markdown snippets: which blocks count, how words, quotes, continuations,
//! pipelines, redirections, substitutions and compose prefixes come out, and that what it refuses
//! names the file and line.

use super::*;

fn parse(md: &str) -> Vec<(usize, String, Vec<String>)> {
    commands(md, "t.md")
        .unwrap_or_else(|e| panic!("{e:#}"))
        .into_iter()
        .map(|c| (c.line, c.program, c.args))
        .collect()
}

fn one(md: &str) -> (usize, String, Vec<String>) {
    let mut all = parse(md);
    assert_eq!(all.len(), 1, "{all:?}");
    all.remove(0)
}

fn v(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

#[test]
fn only_shell_blocks_count() {
    let md = "# T\n\n```toml\nx = 1\n```\n\n```\nnot-a-command\n```\n\n```sh\nls -l\n```\n\n```bash\necho hi\n```\n\n```yaml\na: b\n```\n";
    let all = parse(md);
    assert_eq!(
        all,
        vec![
            (12, "ls".into(), v(&["-l"])),
            (16, "echo".into(), v(&["hi"]))
        ]
    );
}

#[test]
fn continuations_join_and_keep_the_first_line() {
    let md = "text\n```sh\ncast send 0xabc 'f(uint256)' \\\n    42 \\\n    --rpc-url http://x\nnext arg\n```\n";
    let all = parse(md);
    assert_eq!(
        all,
        vec![
            (
                3,
                "cast".into(),
                v(&["send", "0xabc", "f(uint256)", "42", "--rpc-url", "http://x"])
            ),
            (6, "next".into(), v(&["arg"])),
        ]
    );
}

#[test]
fn quotes_escapes_and_multiline_strings() {
    let (_, p, args) = one(
        "```sh\npsql -c \"SELECT * FROM t WHERE a = 'x y'\" -v 'ON_ERROR_STOP=1' a\\ b \"q\\\"d\" '$HOME' \"$X\"\n```\n",
    );
    assert_eq!(p, "psql");
    assert_eq!(
        args,
        v(&[
            "-c",
            "SELECT * FROM t WHERE a = 'x y'",
            "-v",
            "ON_ERROR_STOP=1",
            "a b",
            "q\"d",
            "$HOME",
            "$X"
        ])
    );
    let all = parse("```sh\npsql -c \"SELECT 1\n  FROM t\"\nls\n```\n");
    assert_eq!(all[0].2, v(&["-c", "SELECT 1\n  FROM t"]));
    assert_eq!(all[1].0, 4, "the line after a two-line string");
}

#[test]
fn comments_and_prompts_are_stripped() {
    let md = "```sh\n# a comment\n$ tripwire-indexer status # trailing\necho a#b\n```\n";
    assert_eq!(
        parse(md),
        vec![
            (3, "tripwire-indexer".into(), v(&["status"])),
            (4, "echo".into(), v(&["a#b"]))
        ]
    );
    // In a console block, lines without a prompt are output.
    let md =
        "```console\n$ amtool silence query \\\n    -q\nID  Matchers\nabc foo=bar\n$ ls\n```\n";
    assert_eq!(
        parse(md),
        vec![
            (2, "amtool".into(), v(&["silence", "query", "-q"])),
            (6, "ls".into(), v(&[]))
        ]
    );
}

#[test]
fn pipelines_lists_and_redirections_split() {
    let md = "```sh\ncurl -s http://x/metrics | grep -E '^tripwire_(a|b)' && echo ok; ls || true &\npg_dump -Fc db > out.dump 2>&1\npg_restore -d db < in.dump 2>/dev/null\nfoo &> log\n```\n";
    assert_eq!(
        parse(md),
        vec![
            (2, "curl".into(), v(&["-s", "http://x/metrics"])),
            (2, "grep".into(), v(&["-E", "^tripwire_(a|b)"])),
            (2, "echo".into(), v(&["ok"])),
            (2, "ls".into(), v(&[])),
            (2, "true".into(), v(&[])),
            (3, "pg_dump".into(), v(&["-Fc", "db"])),
            (4, "pg_restore".into(), v(&["-d", "db"])),
            (5, "foo".into(), v(&[])),
        ]
    );
}

#[test]
fn compose_prefixes_and_assignments_are_stripped() {
    let md = "```sh\ndocker compose exec indexer-ingest tripwire-indexer status\ndocker compose exec -T postgres pg_dump -U tripwire -Fc tripwire\ndocker compose run --rm cli tripwire-replay --chain main --from-block <n>\ndocker compose run --rm -e RUST_LOG=debug cli tripwire-replay --help\ndocker compose --profile tools run --rm cli tripwire-indexer check-config\nOWNER_KEY=0x01 FOO=\"a b\" cast wallet sign --no-hash <hash>\ndocker compose stop indexer-ingest\ndocker compose exec -u=0 postgres psql\n```\n";
    let all = parse(md);
    assert_eq!(all[0], (2, "tripwire-indexer".into(), v(&["status"])));
    assert_eq!(
        all[1],
        (
            3,
            "pg_dump".into(),
            v(&["-U", "tripwire", "-Fc", "tripwire"])
        )
    );
    assert_eq!(
        all[2],
        (
            4,
            "tripwire-replay".into(),
            v(&["--chain", "main", "--from-block", "<n>"])
        )
    );
    assert_eq!(all[3], (5, "tripwire-replay".into(), v(&["--help"])));
    assert_eq!(all[4], (6, "tripwire-indexer".into(), v(&["check-config"])));
    assert_eq!(
        all[5],
        (
            7,
            "cast".into(),
            v(&["wallet", "sign", "--no-hash", "<hash>"])
        )
    );
    assert_eq!(
        all[6],
        (
            8,
            "docker".into(),
            v(&["compose", "stop", "indexer-ingest"])
        )
    );
    assert_eq!(all[7], (9, "psql".into(), v(&[])));
    // Not an assignment: `=` after the program, or in a quoted name.
    let (_, p, args) = one("```sh\namtool silence add alertname=Foo 'a=b' --duration=2h\n```\n");
    assert_eq!(p, "amtool");
    assert_eq!(
        args,
        v(&["silence", "add", "alertname=Foo", "a=b", "--duration=2h"])
    );
}

#[test]
fn substitutions_stay_in_the_word_and_their_commands_are_listed() {
    let md = "```sh\nSIG=$(cast wallet sign --no-hash <hash> --private-key \"$OWNER_KEY\")\namtool silence expire $(amtool silence query -q detector=x)\necho \"sig: $(cast wallet address --private-key $K)\"\n```\n";
    let all = parse(md);
    assert_eq!(
        all,
        vec![
            (
                2,
                "cast".into(),
                v(&[
                    "wallet",
                    "sign",
                    "--no-hash",
                    "<hash>",
                    "--private-key",
                    "$OWNER_KEY"
                ])
            ),
            (
                3,
                "amtool".into(),
                v(&["silence", "query", "-q", "detector=x"])
            ),
            (
                3,
                "amtool".into(),
                v(&["silence", "expire", "$(amtool silence query -q detector=x)"])
            ),
            (
                4,
                "cast".into(),
                v(&["wallet", "address", "--private-key", "$K"])
            ),
            (
                4,
                "echo".into(),
                v(&["sig: $(cast wallet address --private-key $K)"])
            ),
        ]
    );
}

#[test]
fn indented_fences_in_lists() {
    let md = "1. Stop it:\n\n   ```sh\n   docker compose stop indexer-ingest\n   ```\n";
    assert_eq!(
        parse(md),
        vec![(
            4,
            "docker".into(),
            v(&["compose", "stop", "indexer-ingest"])
        )]
    );
}

#[test]
fn errors_name_the_file_and_line() {
    for (md, needle) in [
        (
            "```sh\nls\necho 'open\n```\n",
            "t.md:3: unterminated single quote",
        ),
        ("```sh\ncat <<EOF\nx\nEOF\n```\n", "t.md:2: heredocs"),
        ("```sh\n(cd x && ls)\n```\n", "t.md:2: `(`"),
        ("```sh\necho `date`\n```\n", "t.md:2: `"),
        (
            "```sh\n\ndocker compose exec --bogus svc ls\n```\n",
            "t.md:3: unknown `docker compose exec` option `--bogus`",
        ),
        (
            "```sh\ndocker compose run --rm cli\n```\n",
            "t.md:2: `docker compose run` needs",
        ),
        ("```sh\nls >\n```\n", "t.md:2: redirection without a target"),
        ("x\n```sh\nls\n", "t.md:2: code block is never closed"),
    ] {
        let e = format!("{:#}", commands(md, "t.md").unwrap_err());
        assert!(e.contains(needle), "{md:?}: {e}");
    }
}

#[test]
fn pipelines_group_what_a_pipe_joins() {
    let md = "```sh\ndocker compose exec indexer-ingest curl -s http://x/metrics \\\n  | grep -E '^a' | head -n 3 && echo done\nls\n```\n";
    let groups: Vec<Vec<(usize, String)>> = pipelines_in(md, "t.md")
        .unwrap()
        .into_iter()
        .map(|p| p.into_iter().map(|c| (c.line, c.program)).collect())
        .collect();
    assert_eq!(
        groups,
        vec![
            vec![
                (2, "curl".to_string()),
                (3, "grep".to_string()),
                (3, "head".to_string())
            ],
            vec![(3, "echo".to_string())],
            vec![(4, "ls".to_string())],
        ]
    );
}

#[test]
fn compose_services_are_named() {
    let md = "```sh\ndocker compose exec -T postgres pg_dump -U x\ndocker compose run --rm -e A=b cli tripwire-replay --help\ndocker compose logs --since 30m --tail 10 indexer-ingest indexer-sink\ndocker compose --profile tools up -d watchdog\ndocker compose ps\nls -l\n```\n";
    let all: Vec<Vec<String>> = shell_commands(md, "t.md")
        .unwrap()
        .iter()
        .map(|c| compose_services(c).unwrap())
        .collect();
    assert_eq!(
        all,
        vec![
            v(&["postgres"]),
            v(&["cli"]),
            v(&["indexer-ingest", "indexer-sink"]),
            v(&["watchdog"]),
            v(&[]),
            v(&[]),
        ]
    );
}

#[test]
fn display_requotes() {
    let c = &commands(
        "```sh\ncast call 0x1 'paused()(bool)' --rpc-url $RPC\n```\n",
        "t.md",
    )
    .unwrap()[0];
    assert_eq!(c.display(), "cast call 0x1 'paused()(bool)' --rpc-url $RPC");
    assert_eq!(c.location(), "t.md:2");
}
