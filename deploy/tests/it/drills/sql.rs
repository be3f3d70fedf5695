//! Every `psql -c "<SQL>"` of every runbook against the migrated schema (a typo in a column or
//! table name fails it), and the runbooks' `grep` filters for error lines against the JSON logs
//! a Tripwire process writes when it fails.

use anyhow::{Context, Result};
use testkit::postgres::TestDb;

use crate::drills::{all_runbooks, env_refs, migrate, pg_args, pg_env, run, scratch};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_run_on_the_schema_and_log_filters_catch_errors() -> Result<()> {
    let dir = scratch("sql")?;
    let db = TestDb::create().await?;
    let config = migrate(&db, &dir)?;
    sqlx::query("INSERT INTO chains (chain_id, name) VALUES (31337, 'devnet')")
        .execute(db.pool())
        .await?;
    let env = pg_env(&db);
    let env = env_refs(&env);
    let mut statements = 0;
    for c in all_runbooks()?.iter().filter(|c| c.program == "psql") {
        let mut args = pg_args(c, &db)?;
        // Stop at the first error, and say so in the exit status.
        args.extend(["-v".into(), "ON_ERROR_STOP=1".into()]);
        let out = run("psql", &args, &env, None)?;
        assert!(
            out.ok,
            "{}: `{}` fails on the schema:\n{}",
            c.location(),
            c.display(),
            out.stderr
        );
        assert!(out.stderr.is_empty(), "{}: {}", c.location(), out.stderr);
        statements += 1;
    }
    assert!(statements >= 10, "only {statements} psql commands");

    // The runbooks' log filters select the error lines of the JSON logs the containers write.
    let broken = dir.join("broken.toml");
    let text =
        std::fs::read_to_string(&config)?.replace(db.url(), "postgres://postgres@127.0.0.1:9/none");
    std::fs::write(&broken, text)?;
    let out = run(
        "tripwire-indexer",
        &["status".into()],
        &[
            ("TRIPWIRE_CONFIG", broken.to_str().context("path")?),
            ("TRIPWIRE_LOG_FORMAT", "json"),
        ],
        None,
    )?;
    assert!(!out.ok);
    let logs = out.stderr;
    let mut filters = 0;
    for g in all_runbooks()?
        .iter()
        .filter(|c| c.program == "grep" && c.args.iter().any(|a| a.contains("\"level\"")))
    {
        let out = run("grep", &g.args, &[], Some(logs.as_bytes()))?;
        assert!(
            out.ok && out.stdout.contains("\"level\":\"ERROR\""),
            "{}: `{}` misses\n{logs}",
            g.location(),
            g.display()
        );
        filters += 1;
    }
    assert!(filters >= 2, "only {filters} log filters");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
