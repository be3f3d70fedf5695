//! TestDb creates an isolated database and removes it again on drop.

use testkit::postgres::TestDb;

async fn database_exists(name: &str) -> anyhow::Result<bool> {
    let admin_url = std::env::var("TRIPWIRE_TEST_PG_ADMIN_URL")
        .unwrap_or_else(|_| testkit::postgres::DEFAULT_ADMIN_URL.to_owned());
    let pool = sqlx::PgPool::connect(&admin_url).await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(name)
            .fetch_one(&pool)
            .await?;
    pool.close().await;
    Ok(exists)
}

#[tokio::test]
async fn create_use_and_drop() -> anyhow::Result<()> {
    if std::env::var("TRIPWIRE_KEEP_DB").as_deref() == Ok("1") {
        // Dropping is disabled on purpose; the second half cannot hold.
        return Ok(());
    }
    let db = TestDb::create().await?;
    let name = db.name().to_owned();
    assert!(name.starts_with("tripwire_t_"));
    assert!(db.url().ends_with(&name));

    sqlx::query("CREATE TABLE t (x int)")
        .execute(db.pool())
        .await?;
    sqlx::query("INSERT INTO t VALUES (1), (2)")
        .execute(db.pool())
        .await?;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM t")
        .fetch_one(db.pool())
        .await?;
    assert_eq!(n, 2);
    assert!(database_exists(&name).await?);

    // The pool still holds open connections here; drop must force them out.
    drop(db);
    assert!(!database_exists(&name).await?);
    Ok(())
}

#[tokio::test]
async fn databases_are_distinct() -> anyhow::Result<()> {
    let a = TestDb::create().await?;
    let b = TestDb::create().await?;
    assert_ne!(a.name(), b.name());
    Ok(())
}
