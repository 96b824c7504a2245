//! The outbox: every notification, written in the same transaction as the
//! change that caused it.

use serde::Serialize;
use sqlx::Row;

use super::Conn;

pub struct NewNotification<'a> {
    pub event: &'a str,
    pub ticket_id: Option<i64>,
    pub comment_id: Option<i64>,
    pub recipients: &'a [String],
    pub locale: &'a str,
    pub subject: &'a str,
    pub message_id: &'a str,
    pub in_reply_to: Option<&'a str>,
    pub references: &'a [String],
    pub automatic: bool,
    pub now: i64,
}

/// Inserts the rows in one statement.
pub async fn enqueue_all(conn: &mut Conn, rows: &[NewNotification<'_>]) -> Result<(), sqlx::Error> {
    let sql = format!(
        "INSERT INTO outbox (event, ticket_id, comment_id, recipients, locale, subject, message_id,
             in_reply_to, refs, automatic, state, next_attempt_at, created_at) VALUES {}",
        super::placeholders(rows.len(), 13)
    );
    let mut query = sqlx::query(&sql);
    for n in rows {
        let recipients = serde_json::to_string(n.recipients).expect("strings serialize");
        query = query
            .bind(n.event)
            .bind(n.ticket_id)
            .bind(n.comment_id)
            .bind(recipients)
            .bind(n.locale)
            .bind(n.subject)
            .bind(n.message_id)
            .bind(n.in_reply_to)
            .bind(n.references.join(" "))
            .bind(n.automatic as i64)
            .bind("queued")
            .bind(n.now)
            .bind(n.now);
    }
    query.execute(&mut *conn).await?;
    Ok(())
}

/// Marks the notifications a bounce refers to; returns how many matched.
pub async fn mark_bounced(
    conn: &mut Conn,
    message_id: &str,
    reason: &str,
) -> Result<u64, sqlx::Error> {
    Ok(
        sqlx::query("UPDATE outbox SET state = 'bounced', last_error = $2 WHERE message_id = $1")
            .bind(message_id)
            .bind(reason)
            .execute(&mut *conn)
            .await?
            .rows_affected(),
    )
}

/// `outbox list --json`.
#[derive(Debug, Serialize)]
pub struct OutboxView {
    pub id: i64,
    pub event: String,
    pub ticket: Option<i64>,
    pub to: Vec<String>,
    pub subject: String,
    pub state: String,
    pub message_id: String,
    pub attempts: i64,
    pub last_error: Option<String>,
}

pub async fn list(conn: &mut Conn) -> Result<Vec<OutboxView>, sqlx::Error> {
    sqlx::query(
        "SELECT id, event, ticket_id, recipients, subject, state, message_id, attempts, last_error
         FROM outbox ORDER BY id",
    )
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|row| {
        let recipients: String = row.try_get("recipients")?;
        Ok(OutboxView {
            id: row.try_get("id")?,
            event: row.try_get("event")?,
            ticket: row.try_get("ticket_id")?,
            to: serde_json::from_str(&recipients).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
            subject: row.try_get("subject")?,
            state: row.try_get("state")?,
            message_id: row.try_get("message_id")?,
            attempts: row.try_get("attempts")?,
            last_error: row.try_get("last_error")?,
        })
    })
    .collect()
}
