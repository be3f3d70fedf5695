//! `docs/runbooks/restore-postgres-backup.md` on a throwaway database with rows in every table a
//! restore must bring back: the runbook's `pg_dump -Fc` and `pg_restore --list | grep`, damage
//! after the dump, the copy before restoring, the restore itself (the dump's rows back, the later
//! ones gone), why it needs `--clean` and `--if-exists` (without the first it fails on the live
//! database, without the second on an empty one), and the roll back to the copy.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use testkit::postgres::TestDb;

use crate::drills::{
    env_refs, find, has, migrate, pg_args, pg_env, pipelines, run, run_checked, run_ok, runbook,
    scratch,
};

/// A digest per table of what a restore must bring back.
async fn snapshot(db: &TestDb) -> Result<BTreeMap<&'static str, String>> {
    let mut out = BTreeMap::new();
    for (table, sql) in [
        ("logs", "SELECT count(*)::text || ':' || coalesce(md5(string_agg(l::text, ',' ORDER BY chain_id, block_number, log_index)), '') FROM logs l"),
        ("ingest_cursors", "SELECT count(*)::text || ':' || coalesce(md5(string_agg(c::text, ',' ORDER BY chain_id)), '') FROM ingest_cursors c"),
        ("sink_cursors", "SELECT count(*)::text || ':' || coalesce(md5(string_agg(c::text, ',' ORDER BY chain_id)), '') FROM sink_cursors c"),
        ("sink_offsets", "SELECT count(*)::text || ':' || coalesce(md5(string_agg(o::text, ',' ORDER BY consumer, topic, partition)), '') FROM sink_offsets o"),
        ("cursor_resets", "SELECT count(*)::text || ':' || coalesce(md5(string_agg(r::text, ',' ORDER BY id)), '') FROM cursor_resets r"),
        ("indexer_state", "SELECT count(*)::text || ':' || coalesce(md5(string_agg(s::text, ',' ORDER BY chain_id)), '') FROM indexer_state s"),
    ] {
        let v: String = sqlx::query_scalar(sql).fetch_one(db.pool()).await?;
        out.insert(table, v);
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dump_brings_back_the_rows_present_at_dump_time() -> Result<()> {
    let dir = scratch("restore")?;
    let db = TestDb::create().await?;
    migrate(&db, &dir)?;
    for sql in [
        "INSERT INTO chains (chain_id, name) VALUES (31337, 'devnet')",
        "INSERT INTO logs (chain_id, block_number, block_hash, block_timestamp, tx_hash, tx_index, log_index, address, data, contract, event_name, params)
         SELECT 31337, n, decode(lpad(to_hex(n), 64, '0'), 'hex'), to_timestamp(1700000000 + n),
                decode(lpad(to_hex(n + 100000), 64, '0'), 'hex'), 0, 0, decode(repeat('ab', 20), 'hex'),
                '\\x'::bytea, 'token', 'Transfer', jsonb_build_object('value', n::text)
         FROM generate_series(1, 50) n",
        "INSERT INTO ingest_cursors (chain_id, block_number, block_hash, recent, head_block) VALUES (31337, 50, decode(lpad(to_hex(50), 64, '0'), 'hex'), '[]', 60)",
        "INSERT INTO sink_cursors (chain_id, block_number, block_hash) VALUES (31337, 50, decode(lpad(to_hex(50), 64, '0'), 'hex'))",
        "INSERT INTO sink_offsets (consumer, topic, partition, next_offset) VALUES ('tripwire-sink', 'tripwire.devnet.events', 0, 101)",
        "INSERT INTO cursor_resets (chain_id, old_block, new_block, new_hash, requested_by) VALUES (31337, 40, 30, '\\x00'::bytea, 'drill')",
    ] {
        sqlx::query(sql).execute(db.pool()).await?;
    }
    let at_dump = snapshot(&db).await?;
    assert!(at_dump["logs"].starts_with("50:"), "{at_dump:?}");

    let cmds = runbook("restore-postgres-backup.md")?;
    let env = pg_env(&db);
    let env = env_refs(&env);

    // The backup, written where the runbook redirects it, and its listing.
    let dump = find(&cmds, "pg_dump", "-Fc", |c| has(c, &["-Fc"]))?;
    let backup_bytes = run_checked(dump, &pg_args(dump, &db)?, &env, None)?.raw;
    assert!(
        backup_bytes.starts_with(b"PGDMP"),
        "-Fc writes the custom format"
    );
    let listing = pipelines("restore-postgres-backup.md")?
        .into_iter()
        .find(|p| p[0].program == "pg_restore" && has(&p[0], &["--list"]))
        .context("restore-postgres-backup.md: no `pg_restore --list | grep`")?;
    let (list, grep) = (&listing[0], listing.get(1).context("the listing's grep")?);
    let listed = run_ok(list, &pg_args(list, &db)?, &env, Some(&backup_bytes))?;
    let out = run("grep", &grep.args, &[], Some(listed.as_bytes()))?;
    assert_eq!(out.stdout.lines().count(), 3, "{}", out.stdout);

    // Damage after the dump: rows lost, a row the dump lacks, a cursor moved, an audit truncated.
    for sql in [
        "DELETE FROM logs WHERE block_number > 25",
        "INSERT INTO logs (chain_id, block_number, block_hash, block_timestamp, tx_hash, tx_index, log_index, address, data)
         VALUES (31337, 99, decode(repeat('99', 32), 'hex'), now(), decode(repeat('98', 32), 'hex'), 0, 0, decode(repeat('ab', 20), 'hex'), '\\x'::bytea)",
        "UPDATE ingest_cursors SET block_number = 999",
        "TRUNCATE cursor_resets",
    ] {
        sqlx::query(sql).execute(db.pool()).await?;
    }
    let damaged = snapshot(&db).await?;
    assert_ne!(damaged, at_dump);

    // Step 2, the rollback's dump (the second pg_dump of the runbook), into its own file.
    let keep = cmds
        .iter()
        .filter(|c| c.program == "pg_dump")
        .nth(1)
        .context("restore-postgres-backup.md: no second pg_dump (the copy before restoring)")?;
    let before_bytes = run_checked(keep, &pg_args(keep, &db)?, &env, None)?.raw;

    // Step 3: restore, from stdin as the runbook redirects it.
    let restore = find(&cmds, "pg_restore", "--clean --if-exists", |c| {
        has(c, &["--clean", "--if-exists"])
    })?;
    let restore_args = pg_args(restore, &db)?;
    run_ok(restore, &restore_args, &env, Some(&backup_bytes))?;
    assert_eq!(
        snapshot(&db).await?,
        at_dump,
        "the rows of the dump are back, the later ones gone"
    );

    // Without --clean the same restore fails on the existing objects and changes nothing.
    let no_clean: Vec<String> = restore_args
        .iter()
        .filter(|a| *a != "--clean" && *a != "--if-exists")
        .cloned()
        .collect();
    let out = run("pg_restore", &no_clean, &env, Some(&backup_bytes))?;
    assert!(!out.ok && out.stderr.contains("already exists"), "{out:?}");
    assert_eq!(snapshot(&db).await?, at_dump);

    // Into an empty database (the "create it empty" case): --if-exists keeps the drops of missing
    // objects from failing the single transaction.
    let empty = TestDb::create().await?;
    let empty_env = pg_env(&empty);
    let empty_env = env_refs(&empty_env);
    let into_empty = pg_args(restore, &empty)?;
    let no_if_exists: Vec<String> = into_empty
        .iter()
        .filter(|a| *a != "--if-exists")
        .cloned()
        .collect();
    let out = run("pg_restore", &no_if_exists, &empty_env, Some(&backup_bytes))?;
    assert!(!out.ok, "without --if-exists the drops fail: {out:?}");
    run_ok(restore, &into_empty, &empty_env, Some(&backup_bytes))?;
    assert_eq!(snapshot(&empty).await?, at_dump);

    // Roll back: the copy of step 2, restored the same way, is the damaged state again.
    let rollback = cmds
        .iter()
        .filter(|c| c.program == "pg_restore" && has(c, &["--clean", "--if-exists"]))
        .nth(1)
        .context("restore-postgres-backup.md: no second pg_restore (the rollback)")?;
    run_ok(
        rollback,
        &pg_args(rollback, &db)?,
        &env,
        Some(&before_bytes),
    )?;
    assert_eq!(snapshot(&db).await?, damaged);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
