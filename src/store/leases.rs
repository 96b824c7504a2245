//! Mailbox leases: at most one instance reads a mailbox at a time. Times
//! come from the database's clock, so that instances on several hosts (and
//! with `--now` replaying another instant) agree on when a lease ends.

use super::{Backend, Conn};

/// One row of `mailbox_leases`, as `check` shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Lease {
    pub mailbox: String,
    pub holder: String,
    pub taken_at: i64,
    pub expires_at: i64,
}

/// The database's clock, in Unix seconds, as SQL.
fn now_sql(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "CAST(strftime('%s', 'now') AS INTEGER)",
        // clock_timestamp(): the time now, not the transaction's start.
        Backend::Postgres => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS BIGINT)",
    }
}

/// Takes or renews the lease of `mailbox` for `holder`, for `secs` from
/// now: it succeeds when nobody holds it, `holder` does, or the lease has
/// expired. Returns whether `holder` holds it now.
pub async fn take(
    conn: &mut Conn,
    backend: Backend,
    mailbox: &str,
    holder: &str,
    secs: i64,
) -> Result<bool, sqlx::Error> {
    let now = now_sql(backend);
    let sql = format!(
        "INSERT INTO mailbox_leases (mailbox, holder, taken_at, expires_at)
         VALUES ($1, $2, {now}, {now} + $3)
         ON CONFLICT (mailbox) DO UPDATE SET
             holder = excluded.holder,
             expires_at = excluded.expires_at,
             taken_at = CASE WHEN mailbox_leases.holder = excluded.holder
                 THEN mailbox_leases.taken_at ELSE excluded.taken_at END
         WHERE mailbox_leases.holder = excluded.holder
             OR mailbox_leases.expires_at <= {now}
         RETURNING holder"
    );
    let taken: Option<(String,)> = sqlx::query_as(&sql)
        .bind(mailbox)
        .bind(holder)
        .bind(secs)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(taken.is_some())
}

/// Who holds (or last held) the mailbox's lease.
pub async fn holder(conn: &mut Conn, mailbox: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT holder FROM mailbox_leases WHERE mailbox = $1")
        .bind(mailbox)
        .fetch_optional(&mut *conn)
        .await
}

/// Whether the mailbox has no lease row at all: never read, or given up
/// at shutdown (an expired row means its holder died).
pub async fn is_free(conn: &mut Conn, mailbox: &str) -> Result<bool, sqlx::Error> {
    Ok(holder(conn, mailbox).await?.is_none())
}

/// Gives the lease up (at shutdown), so that another instance need not
/// wait for it to expire.
pub async fn release(conn: &mut Conn, mailbox: &str, holder: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM mailbox_leases WHERE mailbox = $1 AND holder = $2")
        .bind(mailbox)
        .bind(holder)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Every lease, and the database's time to judge them by.
pub async fn all(conn: &mut Conn, backend: Backend) -> Result<(Vec<Lease>, i64), sqlx::Error> {
    let leases = sqlx::query_as("SELECT * FROM mailbox_leases ORDER BY mailbox")
        .fetch_all(&mut *conn)
        .await?;
    let (now,): (i64,) = sqlx::query_as(&format!("SELECT {}", now_sql(backend)))
        .fetch_one(&mut *conn)
        .await?;
    Ok((leases, now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[tokio::test]
    async fn one_holder_at_a_time_until_its_lease_ends() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let backend = store.backend;
        let mut conn = store.acquire().await.unwrap();
        assert!(take(&mut conn, backend, "billing", "a", 60).await.unwrap());
        assert!(!take(&mut conn, backend, "billing", "b", 60).await.unwrap());
        assert!(
            take(&mut conn, backend, "billing", "a", 60).await.unwrap(),
            "renewed"
        );
        assert!(
            take(&mut conn, backend, "default", "b", 60).await.unwrap(),
            "another mailbox"
        );
        // a's lease ends now (it stopped renewing): b takes it over.
        assert!(take(&mut conn, backend, "billing", "a", 0).await.unwrap());
        assert!(take(&mut conn, backend, "billing", "b", 60).await.unwrap());
        assert!(!take(&mut conn, backend, "billing", "a", 60).await.unwrap());

        release(&mut conn, "billing", "a").await.unwrap();
        let (leases, now) = all(&mut conn, backend).await.unwrap();
        let holders: Vec<(&str, &str)> = leases
            .iter()
            .map(|l| (l.mailbox.as_str(), l.holder.as_str()))
            .collect();
        assert_eq!(
            holders,
            [("billing", "b"), ("default", "b")],
            "only the holder gives it up"
        );
        assert!(leases[0].expires_at > now);
        release(&mut conn, "billing", "b").await.unwrap();
        assert!(
            take(&mut conn, backend, "billing", "a", 60).await.unwrap(),
            "free again"
        );
    }
}
