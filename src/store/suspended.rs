//! The suspended queue: messages kept whole until an operator releases or
//! deletes them.

use serde::Serialize;

use super::Conn;
use crate::domain::decide::Reason;

pub struct NewSuspended<'a> {
    pub message_id: &'a str,
    pub reason: Reason,
    pub detail: Option<&'a str>,
    pub sender: Option<&'a str>,
    pub subject: &'a str,
    pub raw: &'a [u8],
    pub now: i64,
}

pub async fn insert_all<'a, S: std::borrow::Borrow<NewSuspended<'a>>>(
    conn: &mut Conn,
    items: &[S],
) -> Result<(), sqlx::Error> {
    super::insert_rows(
        conn,
        "INSERT INTO suspended (message_id, reason, detail, sender, subject, raw, created_at)",
        7,
        "",
        items,
        |query, item| {
            let item = item.borrow();
            query
                .bind(item.message_id.to_string())
                .bind(item.reason)
                .bind(item.detail.map(str::to_string))
                .bind(item.sender.map(str::to_string))
                .bind(item.subject.to_string())
                .bind(item.raw.to_vec())
                .bind(item.now)
        },
    )
    .await
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct SuspendedView {
    pub id: i64,
    pub reason: Reason,
    #[sqlx(rename = "sender")]
    pub from: Option<String>,
    pub subject: String,
    pub message_id: String,
    pub detail: Option<String>,
    pub created_at: i64,
}

pub async fn list(conn: &mut Conn) -> Result<Vec<SuspendedView>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, reason, sender, subject, message_id, detail, created_at FROM suspended ORDER BY id",
    )
    .fetch_all(&mut *conn)
    .await
}

/// The kept raw message.
pub async fn raw(conn: &mut Conn, id: i64) -> Result<Option<Vec<u8>>, sqlx::Error> {
    sqlx::query_scalar("SELECT raw FROM suspended WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
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

/// How many messages are held.
pub async fn count(conn: &mut Conn) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM suspended")
        .fetch_one(&mut *conn)
        .await
}
