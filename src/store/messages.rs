//! Processed messages (deduplication) and the Message-IDs that thread into
//! tickets.

use sqlx::Row;

use super::Conn;

/// Which of `message_ids` were processed before, with the fingerprint they
/// were processed with.
pub async fn known_among(
    conn: &mut Conn,
    message_ids: &[&str],
) -> Result<Vec<(String, Option<String>)>, sqlx::Error> {
    if message_ids.is_empty() {
        return Ok(Vec::new());
    }
    let list: Vec<String> = (1..=message_ids.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT message_id, fingerprint FROM messages WHERE message_id IN ({})",
        list.join(", ")
    );
    let mut query = sqlx::query(&sql);
    for id in message_ids {
        query = query.bind(*id);
    }
    query
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|row| Ok((row.try_get("message_id")?, row.try_get("fingerprint")?)))
        .collect()
}

/// A processed message's outcome, for deduplication and the log.
pub struct Record {
    /// The dedup key: the Message-ID, or for a second message with the
    /// same Message-ID, the Message-ID with its fingerprint.
    pub message_id: String,
    pub fingerprint: Option<String>,
    pub outcome: &'static str,
    pub reason: Option<&'static str>,
    pub ticket_id: Option<i64>,
}

/// Records outcomes in one statement; a released message overwrites its
/// earlier (suspended) record.
pub async fn record_all(conn: &mut Conn, records: &[Record], now: i64) -> Result<(), sqlx::Error> {
    if records.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO messages (message_id, fingerprint, outcome, reason, ticket_id, processed_at)
         VALUES {}
         ON CONFLICT (message_id) DO UPDATE SET outcome = excluded.outcome,
             reason = excluded.reason, ticket_id = excluded.ticket_id,
             processed_at = excluded.processed_at",
        super::placeholders(records.len(), 6)
    );
    let mut query = sqlx::query(&sql);
    for r in records {
        query = query
            .bind(r.message_id.as_str())
            .bind(r.fingerprint.as_deref())
            .bind(r.outcome)
            .bind(r.reason)
            .bind(r.ticket_id)
            .bind(now);
    }
    query.execute(&mut *conn).await?;
    Ok(())
}

/// Registers Message-IDs that thread into `ticket_id`; known ones keep
/// their ticket.
pub async fn add_refs(
    conn: &mut Conn,
    message_ids: &[&str],
    ticket_id: i64,
    now: i64,
) -> Result<(), sqlx::Error> {
    if message_ids.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO message_refs (message_id, ticket_id, created_at) VALUES {}
         ON CONFLICT (message_id) DO NOTHING",
        super::placeholders(message_ids.len(), 3)
    );
    let mut query = sqlx::query(&sql);
    for id in message_ids {
        query = query.bind(*id).bind(ticket_id).bind(now);
    }
    query.execute(&mut *conn).await?;
    Ok(())
}

/// The tickets these Message-IDs thread into, in one query.
pub async fn tickets_for_refs(
    conn: &mut Conn,
    message_ids: &[String],
) -> Result<std::collections::HashMap<String, i64>, sqlx::Error> {
    if message_ids.is_empty() {
        return Ok(Default::default());
    }
    let list: Vec<String> = (1..=message_ids.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT message_id, ticket_id FROM message_refs WHERE message_id IN ({})",
        list.join(", ")
    );
    let mut query = sqlx::query(&sql);
    for id in message_ids {
        query = query.bind(id.as_str());
    }
    query
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|row| Ok((row.try_get("message_id")?, row.try_get("ticket_id")?)))
        .collect()
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
