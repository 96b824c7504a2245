//! The suspended queue: messages kept whole until an operator releases or
//! deletes them.

use serde::Serialize;
use sqlx::Row;

use super::Conn;

pub struct NewSuspended<'a> {
    pub message_id: &'a str,
    pub reason: &'a str,
    pub detail: Option<&'a str>,
    pub sender: Option<&'a str>,
    pub subject: &'a str,
    pub raw: &'a [u8],
    pub now: i64,
}

pub async fn insert(conn: &mut Conn, item: NewSuspended<'_>) -> Result<i64, sqlx::Error> {
    sqlx::query(
        "INSERT INTO suspended (message_id, reason, detail, sender, subject, raw, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(item.message_id)
    .bind(item.reason)
    .bind(item.detail)
    .bind(item.sender)
    .bind(item.subject)
    .bind(item.raw.to_vec())
    .bind(item.now)
    .fetch_one(&mut *conn)
    .await?
    .try_get("id")
}

#[derive(Debug, Serialize)]
pub struct SuspendedView {
    pub id: i64,
    pub reason: String,
    pub from: Option<String>,
    pub subject: String,
    pub message_id: String,
    pub detail: Option<String>,
    pub created_at: i64,
}

pub async fn list(conn: &mut Conn) -> Result<Vec<SuspendedView>, sqlx::Error> {
    sqlx::query(
        "SELECT id, reason, sender, subject, message_id, detail, created_at FROM suspended ORDER BY id",
    )
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|row| {
        Ok(SuspendedView {
            id: row.try_get("id")?,
            reason: row.try_get("reason")?,
            from: row.try_get("sender")?,
            subject: row.try_get("subject")?,
            message_id: row.try_get("message_id")?,
            detail: row.try_get("detail")?,
            created_at: row.try_get("created_at")?,
        })
    })
    .collect()
}

/// The kept raw message.
pub async fn raw(conn: &mut Conn, id: i64) -> Result<Option<Vec<u8>>, sqlx::Error> {
    sqlx::query("SELECT raw FROM suspended WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .map(|row| row.try_get("raw"))
        .transpose()
}

/// Returns whether a row was deleted.
pub async fn delete(conn: &mut Conn, id: i64) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query("DELETE FROM suspended WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?
        .rows_affected()
        > 0)
}
