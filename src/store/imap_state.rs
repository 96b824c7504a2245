//! Where the IMAP poller stands in each mailbox.

use super::Conn;

/// `(uid_validity, last_uid)` of the mailbox, if it was read before.
pub async fn get(conn: &mut Conn, mailbox: &str) -> Result<Option<(i64, i64)>, sqlx::Error> {
    sqlx::query_as("SELECT uid_validity, last_uid FROM imap_state WHERE mailbox = $1")
        .bind(mailbox)
        .fetch_optional(&mut *conn)
        .await
}

pub async fn set(
    conn: &mut Conn,
    mailbox: &str,
    uid_validity: i64,
    last_uid: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO imap_state (mailbox, uid_validity, last_uid) VALUES ($1, $2, $3)
         ON CONFLICT (mailbox) DO UPDATE SET uid_validity = excluded.uid_validity,
             last_uid = excluded.last_uid",
    )
    .bind(mailbox)
    .bind(uid_validity)
    .bind(last_uid)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
