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

/// A row due for delivery, with what rendering needs to find.
#[derive(Debug, Clone)]
pub struct Due {
    pub id: i64,
    pub event: String,
    pub ticket_id: Option<i64>,
    pub comment_id: Option<i64>,
    pub to: String,
    pub locale: String,
    pub subject: String,
    pub message_id: String,
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
    pub automatic: bool,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub created_at: i64,
}

/// Queued rows whose time has come, oldest first.
pub async fn due(conn: &mut Conn, now: i64, limit: i64) -> Result<Vec<Due>, sqlx::Error> {
    sqlx::query(
        "SELECT id, event, ticket_id, comment_id, recipients, locale, subject, message_id,
             in_reply_to, refs, automatic, attempts, next_attempt_at, created_at
         FROM outbox WHERE state = 'queued' AND next_attempt_at <= $1
         ORDER BY next_attempt_at, id LIMIT $2",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|row| {
        let recipients: String = row.try_get("recipients")?;
        let to: Vec<String> =
            serde_json::from_str(&recipients).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
        let refs: String = row.try_get("refs")?;
        Ok(Due {
            id: row.try_get("id")?,
            event: row.try_get("event")?,
            ticket_id: row.try_get("ticket_id")?,
            comment_id: row.try_get("comment_id")?,
            to: to.into_iter().next().unwrap_or_default(),
            locale: row.try_get("locale")?,
            subject: row.try_get("subject")?,
            message_id: row.try_get("message_id")?,
            in_reply_to: row.try_get("in_reply_to")?,
            references: refs.split_whitespace().map(str::to_string).collect(),
            automatic: row.try_get::<i64, _>("automatic")? != 0,
            attempts: row.try_get("attempts")?,
            next_attempt_at: row.try_get("next_attempt_at")?,
            created_at: row.try_get("created_at")?,
        })
    })
    .collect()
}

/// Takes a due row for one delivery attempt: counts the attempt and moves
/// its due time to `lease_until`, so that no other worker takes it and, if
/// this one dies mid-send, it is tried again after the lease. Returns false
/// when another worker was first.
pub async fn claim(conn: &mut Conn, row: &Due, lease_until: i64) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $1
         WHERE id = $2 AND state = 'queued' AND next_attempt_at = $3",
    )
    .bind(lease_until)
    .bind(row.id)
    .bind(row.next_attempt_at)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1)
}

pub async fn mark_sent(conn: &mut Conn, id: i64, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE outbox SET state = 'sent', sent_at = $1, last_error = NULL WHERE id = $2")
        .bind(now)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Leaves the row queued for another attempt at `next_attempt_at`.
pub async fn mark_retry(
    conn: &mut Conn,
    id: i64,
    next_attempt_at: i64,
    error: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE outbox SET next_attempt_at = $1, last_error = $2 WHERE id = $3")
        .bind(next_attempt_at)
        .bind(error)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Ends the row in `state` (`failed` or `suppressed`) with the reason.
pub async fn mark_final(
    conn: &mut Conn,
    id: i64,
    state: &str,
    reason: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE outbox SET state = $1, last_error = $2 WHERE id = $3")
        .bind(state)
        .bind(reason)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Automatic mails sent to `to` since `since`: the rate limit's count.
pub async fn automatic_sent_since(
    conn: &mut Conn,
    to: &str,
    since: i64,
) -> Result<i64, sqlx::Error> {
    let recipients = serde_json::to_string(&[to]).expect("strings serialize");
    sqlx::query(
        "SELECT COUNT(*) AS n FROM outbox
         WHERE recipients = $1 AND automatic = 1 AND state IN ('sent', 'bounced') AND sent_at >= $2",
    )
    .bind(recipients)
    .bind(since)
    .fetch_one(&mut *conn)
    .await?
    .try_get("n")
}

/// Rows by state, and the age of the oldest queued row: the outbox's health.
pub async fn health(
    conn: &mut Conn,
    now: i64,
) -> Result<(Vec<(String, i64)>, Option<i64>), sqlx::Error> {
    let states =
        sqlx::query("SELECT state, COUNT(*) AS n FROM outbox GROUP BY state ORDER BY state")
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|row| Ok((row.try_get("state")?, row.try_get("n")?)))
            .collect::<Result<Vec<(String, i64)>, sqlx::Error>>()?;
    let oldest: Option<i64> =
        sqlx::query("SELECT MIN(created_at) AS oldest FROM outbox WHERE state = 'queued'")
            .fetch_one(&mut *conn)
            .await?
            .try_get("oldest")?;
    Ok((states, oldest.map(|t| now - t)))
}
