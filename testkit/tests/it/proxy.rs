//! TcpProxy forwards until cut, refuses while cut, and forwards again after restore.

use std::time::Duration;

use testkit::postgres::TestDb;
use testkit::proxy::TcpProxy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn echo_server() -> anyhow::Result<std::net::SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = socket.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    Ok(addr)
}

async fn echo_once(stream: &mut TcpStream, msg: &[u8]) -> anyhow::Result<Vec<u8>> {
    stream.write_all(msg).await?;
    let mut buf = vec![0; msg.len()];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut buf)).await??;
    Ok(buf)
}

/// True if the peer closed the connection (EOF or reset) within a short time.
async fn is_closed(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1];
    match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => true,
        Ok(Ok(_)) | Err(_) => false,
    }
}

#[tokio::test]
async fn cut_and_restore_echo() -> anyhow::Result<()> {
    let target = echo_server().await?;
    let proxy = TcpProxy::start(target).await?;
    assert_eq!(proxy.target(), target);

    let mut conn = TcpStream::connect(proxy.addr()).await?;
    assert_eq!(echo_once(&mut conn, b"hello").await?, b"hello");
    assert_eq!(proxy.active_connections(), 1);

    proxy.cut();
    assert!(proxy.is_cut());
    assert!(
        is_closed(&mut conn).await,
        "existing connection survived the cut"
    );
    // New connections are accepted by the kernel but closed right away.
    let mut refused = TcpStream::connect(proxy.addr()).await?;
    assert!(
        is_closed(&mut refused).await,
        "new connection forwarded while cut"
    );

    proxy.restore();
    let mut again = TcpStream::connect(proxy.addr()).await?;
    assert_eq!(echo_once(&mut again, b"back").await?, b"back");
    Ok(())
}

#[tokio::test]
async fn postgres_through_the_proxy() -> anyhow::Result<()> {
    let db = TestDb::create().await?;
    let proxy = TcpProxy::start(db.server_addr()).await?;
    let url = db.url_via(proxy.addr());
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(2))
        .connect(&url)
        .await?;
    let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&pool).await?;
    assert_eq!(one, 1);

    proxy.cut();
    assert!(sqlx::query_scalar::<_, i32>("SELECT 1")
        .fetch_one(&pool)
        .await
        .is_err());

    proxy.restore();
    // The pool may hand out the dead connection once more before reconnecting.
    let mut ok = false;
    for _ in 0..5 {
        if sqlx::query_scalar::<_, i32>("SELECT 1")
            .fetch_one(&pool)
            .await
            .is_ok()
        {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "no query succeeded after restore");
    pool.close().await;
    Ok(())
}
