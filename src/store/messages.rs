//! Processed messages (deduplication) and the Message-IDs that thread into
//! tickets.

use sqlx::Row;

use super::Conn;

pub async fn is_known(conn: &mut Conn, message_id: &str) -> Result<bool, sqlx::Error> {
    Ok(
        sqlx::query("SELECT 1 AS one FROM messages WHERE message_id = $1")
            .bind(message_id)
            .fetch_optional(&mut *conn)
            .await?
            .is_some(),
    )
}

/// Records a message's outcome; a released message overwrites its earlier
/// (suspended) record.
pub async fn record(
    conn: &mut Conn,
    message_id: &str,
    outcome: &str,
    reason: Option<&str>,
    ticket_id: Option<i64>,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO messages (message_id, outcome, reason, ticket_id, processed_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (message_id) DO UPDATE SET outcome = excluded.outcome,
             reason = excluded.reason, ticket_id = excluded.ticket_id,
             processed_at = excluded.processed_at",
    )
    .bind(message_id)
    .bind(outcome)
    .bind(reason)
    .bind(ticket_id)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub async fn add_ref(
    conn: &mut Conn,
    message_id: &str,
    ticket_id: i64,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO message_refs (message_id, ticket_id, created_at) VALUES ($1, $2, $3)
         ON CONFLICT (message_id) DO NOTHING",
    )
    .bind(message_id)
    .bind(ticket_id)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub async fn ticket_for_ref(conn: &mut Conn, message_id: &str) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query("SELECT ticket_id FROM message_refs WHERE message_id = $1")
        .bind(message_id)
        .fetch_optional(&mut *conn)
        .await?
        .map(|row| row.try_get("ticket_id"))
        .transpose()
}

/// The ticket's conversation, oldest first, at most `limit` of the newest
/// (a References header must not grow without bound).
pub async fn refs_for_ticket(
    conn: &mut Conn,
    ticket_id: i64,
    limit: i64,
) -> Result<Vec<String>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT message_id FROM message_refs WHERE ticket_id = $1
         ORDER BY id DESC LIMIT $2",
    )
    .bind(ticket_id)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    let mut ids = rows
        .iter()
        .map(|row| row.try_get("message_id"))
        .collect::<Result<Vec<String>, _>>()?;
    ids.reverse();
    Ok(ids)
}
