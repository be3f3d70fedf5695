//! Throwaway Postgres databases: one fresh database per test, dropped afterwards,
//! so tests can run migrations and make assertions in isolation and in parallel.

use std::net::SocketAddr;

use anyhow::Context;
use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection};

/// Admin connection used when `TRIPWIRE_TEST_PG_ADMIN_URL` is unset.
pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A freshly created database, dropped (with `WITH (FORCE)`) when this value is
/// dropped, unless `TRIPWIRE_KEEP_DB=1` asks to keep it for inspection.
#[derive(Debug)]
pub struct TestDb {
    name: String,
    url: String,
    admin_url: String,
    pool: PgPool,
}

impl TestDb {
    /// Creates `tripwire_t_<random hex>` through the admin URL and connects a pool to it.
    pub async fn create() -> anyhow::Result<TestDb> {
        let admin_url = std::env::var("TRIPWIRE_TEST_PG_ADMIN_URL")
            .unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned());
        let name = format!("tripwire_t_{}", crate::random_hex(16));

        let mut admin = PgConnection::connect(&admin_url).await.with_context(|| {
            format!(
                "cannot connect to Postgres at {} (set TRIPWIRE_TEST_PG_ADMIN_URL)",
                redact(&admin_url)
            )
        })?;
        // The name is generated here from hex digits only, so interpolating it is safe.
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut admin)
            .await
            .with_context(|| format!("CREATE DATABASE {name}"))?;
        let _ = admin.close().await;

        let url = with_database(&admin_url, &name);
        let pool = PgPoolOptions::new()
            .max_connections(5)
            .connect(&url)
            .await
            .with_context(|| format!("cannot connect to the new database {name}"))?;
        tracing::debug!(database = %name, "created test database");
        Ok(TestDb {
            name,
            url,
            admin_url,
            pool,
        })
    }

    /// Connection URL of the test database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The same URL with host and port replaced by `addr`, e.g. to route the
    /// code under test through a [`crate::proxy::TcpProxy`].
    pub fn url_via(&self, addr: SocketAddr) -> String {
        with_host_port(&self.url, &addr.to_string())
    }

    /// Name of the test database.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A pool connected directly (not through any proxy) to the test database.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// A connection of its own, outside the pool: for code that takes a `PgConnection`, or to
    /// check that a connection another one left behind is still usable.
    pub async fn conn(&self) -> anyhow::Result<PgConnection> {
        PgConnection::connect(&self.url)
            .await
            .with_context(|| format!("cannot connect to the test database {}", self.name))
    }

    /// `SELECT count(*)` of `table` (a name the test writes, never input).
    pub async fn count(&self, table: &str) -> anyhow::Result<i64> {
        sqlx::query_scalar(AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
            .fetch_one(&self.pool)
            .await
            .with_context(|| format!("SELECT count(*) FROM {table}"))
    }

    /// Host and port the admin URL points at, i.e. what a proxy should forward to.
    pub fn server_addr(&self) -> String {
        let (_, authority, _) = split_url(&self.url);
        let host_port = authority.rsplit('@').next().unwrap_or(authority);
        if host_port.contains(':') {
            host_port.to_owned()
        } else {
            format!("{host_port}:5432")
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if std::env::var("TRIPWIRE_KEEP_DB").as_deref() == Ok("1") {
            eprintln!("TRIPWIRE_KEEP_DB=1: keeping database {}", self.name);
            return;
        }
        let name = self.name.clone();
        let admin_url = self.admin_url.clone();
        // Drop cannot await and may run inside (or outside) any runtime, so the
        // cleanup gets its own thread and runtime; joining makes sure it finishes
        // before the test process exits.
        let handle = std::thread::spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => return Err(anyhow::Error::from(e)),
            };
            runtime.block_on(async move {
                let mut admin = PgConnection::connect(&admin_url).await?;
                // FORCE terminates the pool's connections that are still open.
                sqlx::query(AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                )))
                .execute(&mut admin)
                .await?;
                let _ = admin.close().await;
                Ok(())
            })
        });
        match handle.join() {
            Ok(Ok(())) => tracing::debug!(database = %self.name, "dropped test database"),
            Ok(Err(e)) => eprintln!("warning: could not drop test database {}: {e:#}", self.name),
            Err(_) => eprintln!("warning: dropping test database {} panicked", self.name),
        }
    }
}

/// Splits `scheme://authority/path?query` into (`scheme://`, authority, rest).
fn split_url(url: &str) -> (&str, &str, &str) {
    let scheme_end = url.find("://").map(|i| i + 3).unwrap_or(0);
    let after = &url[scheme_end..];
    let authority_end = after.find(['/', '?']).unwrap_or(after.len());
    (
        &url[..scheme_end],
        &after[..authority_end],
        &after[authority_end..],
    )
}

fn with_database(url: &str, database: &str) -> String {
    let (scheme, authority, rest) = split_url(url);
    let query = rest.find('?').map(|i| &rest[i..]).unwrap_or("");
    format!("{scheme}{authority}/{database}{query}")
}

fn with_host_port(url: &str, host_port: &str) -> String {
    let (scheme, authority, rest) = split_url(url);
    let userinfo = authority.rfind('@').map(|i| &authority[..=i]).unwrap_or("");
    format!("{scheme}{userinfo}{host_port}{rest}")
}

/// The URL without its password, for error messages.
fn redact(url: &str) -> String {
    let (scheme, authority, rest) = split_url(url);
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}{user}@{}{rest}", &authority[at + 1..])
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_rewriting() {
        let admin = "postgres://postgres:pw@127.0.0.1:5432/postgres?sslmode=disable";
        assert_eq!(
            with_database(admin, "x"),
            "postgres://postgres:pw@127.0.0.1:5432/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h:1", "x"), "postgres://u@h:1/x");
        assert_eq!(
            with_host_port("postgres://u:p@h:1/db?a=b", "127.0.0.1:9"),
            "postgres://u:p@127.0.0.1:9/db?a=b"
        );
        assert_eq!(
            redact(admin),
            "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
        );
    }
}
