//! Processed messages (deduplication) and the Message-IDs that thread into
//! tickets.

use super::Conn;
use crate::domain::decide::{Outcome, Reason};

/// Which of `message_ids` were processed before, with the fingerprint they
/// were processed with.
pub async fn known_among(
    conn: &mut Conn,
    message_ids: &[&str],
) -> Result<Vec<(String, Option<String>)>, sqlx::Error> {
    if message_ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT message_id, fingerprint FROM messages WHERE message_id IN ({})",
        super::list(conn, message_ids.len())
    );
    let mut query = sqlx::query_as(&sql);
    for id in message_ids {
        query = query.bind(*id);
    }
    query.fetch_all(&mut *conn).await
}

/// A processed message's outcome, for deduplication and the log.
pub struct Record {
    /// The dedup key: the Message-ID, or for a second message with the
    /// same Message-ID, the Message-ID with its fingerprint.
    pub message_id: String,
    pub fingerprint: Option<String>,
    pub outcome: Outcome,
    pub reason: Option<Reason>,
    pub ticket_id: Option<i64>,
}

/// Records outcomes; a released message overwrites its earlier
/// (suspended) record.
pub async fn record_all<R: std::borrow::Borrow<Record>>(
    conn: &mut Conn,
    records: &[R],
    now: i64,
) -> Result<(), sqlx::Error> {
    super::insert_rows(
        conn,
        "INSERT INTO messages (message_id, fingerprint, outcome, reason, ticket_id, processed_at)",
        6,
        "ON CONFLICT (message_id) DO UPDATE SET outcome = excluded.outcome,
             reason = excluded.reason, ticket_id = excluded.ticket_id,
             processed_at = excluded.processed_at",
        records,
        |query, r| {
            let r = r.borrow();
            query
                .bind(r.message_id.as_str())
                .bind(r.fingerprint.as_deref())
                .bind(r.outcome)
                .bind(r.reason)
                .bind(r.ticket_id)
                .bind(now)
        },
    )
    .await
}

/// Registers Message-IDs that thread into tickets; known ones keep their
/// ticket.
pub async fn add_refs(
    conn: &mut Conn,
    refs: &[(String, i64)],
    now: i64,
) -> Result<(), sqlx::Error> {
    super::insert_rows(
        conn,
        "INSERT INTO message_refs (message_id, ticket_id, created_at)",
        3,
        "ON CONFLICT (message_id) DO NOTHING",
        refs,
        |query, (message_id, ticket)| query.bind(message_id.as_str()).bind(*ticket).bind(now),
    )
    .await
}

/// The tickets these Message-IDs thread into, in one query.
pub async fn tickets_for_refs(
    conn: &mut Conn,
    message_ids: &[String],
) -> Result<std::collections::HashMap<String, i64>, sqlx::Error> {
    if message_ids.is_empty() {
        return Ok(Default::default());
    }
    let sql = format!(
        "SELECT message_id, ticket_id FROM message_refs WHERE message_id IN ({})",
        super::list(conn, message_ids.len())
    );
    let mut query = sqlx::query_as::<_, (String, i64)>(&sql);
    for id in message_ids {
        query = query.bind(id.as_str());
    }
    Ok(query.fetch_all(&mut *conn).await?.into_iter().collect())
}

/// The newest `limit` references of each of these tickets, oldest first:
/// what a notification's References header carries.
pub async fn chains(
    conn: &mut Conn,
    tickets: &[i64],
    limit: usize,
) -> Result<Vec<(i64, Vec<String>)>, sqlx::Error> {
    if tickets.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT ticket_id, message_id FROM (
             SELECT ticket_id, message_id, id,
                 ROW_NUMBER() OVER (PARTITION BY ticket_id ORDER BY id DESC) AS newest
             FROM message_refs WHERE ticket_id IN ({})
         ) AS recent WHERE newest <= {limit} ORDER BY ticket_id, id",
        super::list(conn, tickets.len())
    );
    let mut query = sqlx::query_as::<_, (i64, String)>(&sql);
    for id in tickets {
        query = query.bind(*id);
    }
    let mut chains: Vec<(i64, Vec<String>)> = Vec::new();
    for (ticket, message_id) in query.fetch_all(&mut *conn).await? {
        match chains.last_mut() {
            Some((last, chain)) if *last == ticket => chain.push(message_id),
            _ => chains.push((ticket, vec![message_id])),
        }
    }
    Ok(chains)
}
