//! Tickets, comments and attachment metadata.

use serde::Serialize;
use sqlx::Row;

use super::Conn;
use crate::domain::ticket::Status;

#[derive(Debug, Clone)]
pub struct Ticket {
    pub id: i64,
    pub subject: String,
    pub organization_id: i64,
    pub requester_id: i64,
    pub category: String,
    pub priority: String,
    pub status: Status,
    pub followup_of: Option<i64>,
    pub rating: Option<String>,
    pub solved_at: Option<i64>,
    /// How often the ticket was solved; names the solve a rating is for.
    pub solve_count: i64,
}

pub struct NewTicket<'a> {
    pub subject: &'a str,
    pub organization_id: i64,
    pub requester_id: i64,
    pub category: &'a str,
    pub priority: &'a str,
    pub status: Status,
    pub followup_of: Option<i64>,
    pub now: i64,
}

pub struct NewComment<'a> {
    pub ticket_id: i64,
    pub author_id: i64,
    pub public: bool,
    pub body: &'a str,
    pub full_text: &'a str,
    pub message_id: Option<&'a str>,
    pub now: i64,
}

const TICKET_COLUMNS: &str = "id, subject, organization_id, requester_id, category, priority, status, followup_of, rating, solved_at, solve_count";

fn ticket_from_row(row: &sqlx::any::AnyRow) -> Result<Ticket, sqlx::Error> {
    let status: String = row.try_get("status")?;
    Ok(Ticket {
        id: row.try_get("id")?,
        subject: row.try_get("subject")?,
        organization_id: row.try_get("organization_id")?,
        requester_id: row.try_get("requester_id")?,
        category: row.try_get("category")?,
        priority: row.try_get("priority")?,
        status: Status::parse(&status)
            .ok_or_else(|| sqlx::Error::Decode(format!("unknown status {status:?}").into()))?,
        followup_of: row.try_get("followup_of")?,
        rating: row.try_get("rating")?,
        solved_at: row.try_get("solved_at")?,
        solve_count: row.try_get("solve_count")?,
    })
}

pub async fn get(conn: &mut Conn, id: i64) -> Result<Option<Ticket>, sqlx::Error> {
    sqlx::query(&format!(
        "SELECT {TICKET_COLUMNS} FROM tickets WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .as_ref()
    .map(ticket_from_row)
    .transpose()
}

pub async fn create(conn: &mut Conn, ticket: NewTicket<'_>) -> Result<i64, sqlx::Error> {
    sqlx::query(
        "INSERT INTO tickets (subject, organization_id, requester_id, category, priority, status,
             followup_of, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING id",
    )
    .bind(ticket.subject)
    .bind(ticket.organization_id)
    .bind(ticket.requester_id)
    .bind(ticket.category)
    .bind(ticket.priority)
    .bind(ticket.status.as_str())
    .bind(ticket.followup_of)
    .bind(ticket.now)
    .fetch_one(&mut *conn)
    .await?
    .try_get("id")
}

/// Sets the status; solving stamps `solved_at` (and clears an earlier
/// rating: a rating belongs to one solve), reopening clears it, closing
/// stamps `closed_at`.
pub async fn set_status(
    conn: &mut Conn,
    id: i64,
    status: Status,
    now: i64,
) -> Result<(), sqlx::Error> {
    let sql = match status {
        Status::Solved => {
            "UPDATE tickets SET status = $1, updated_at = $2, solved_at = $2, rating = NULL,
                 solve_count = solve_count + 1 WHERE id = $3"
        }
        Status::Closed => {
            "UPDATE tickets SET status = $1, updated_at = $2, closed_at = $2 WHERE id = $3"
        }
        Status::Open | Status::Pending => {
            "UPDATE tickets SET status = $1, updated_at = $2, solved_at = NULL WHERE id = $3"
        }
    };
    sqlx::query(sql)
        .bind(status.as_str())
        .bind(now)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub async fn set_priority(conn: &mut Conn, id: i64, priority: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE tickets SET priority = $1 WHERE id = $2")
        .bind(priority)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub async fn add_comment(conn: &mut Conn, comment: NewComment<'_>) -> Result<i64, sqlx::Error> {
    sqlx::query(
        "INSERT INTO comments (ticket_id, author_id, public, body, full_text, message_id, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(comment.ticket_id)
    .bind(comment.author_id)
    .bind(comment.public as i64)
    .bind(comment.body)
    .bind(comment.full_text)
    .bind(comment.message_id)
    .bind(comment.now)
    .fetch_one(&mut *conn)
    .await?
    .try_get("id")
}

pub async fn add_attachment(
    conn: &mut Conn,
    comment_id: i64,
    attachment: &crate::domain::mail::Attachment,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO attachments (comment_id, filename, original_filename, content_type, size, sha256)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(comment_id)
    .bind(&attachment.filename)
    .bind(attachment.original_filename.as_deref())
    .bind(&attachment.content_type)
    .bind(attachment.data.len() as i64)
    .bind(&attachment.sha256)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Tickets solved at or before `cutoff` that are still `solved`.
pub async fn solved_before(conn: &mut Conn, cutoff: i64) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query("SELECT id FROM tickets WHERE status = 'solved' AND solved_at < $1 ORDER BY id")
        .bind(cutoff)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|row| row.try_get("id"))
        .collect()
}

#[derive(Debug, Serialize)]
pub struct AttachmentView {
    pub filename: String,
    pub content_type: String,
    pub size: i64,
}

#[derive(Debug, Serialize)]
pub struct CommentView {
    pub author: String,
    pub public: bool,
    pub body: String,
    pub attachments: Vec<AttachmentView>,
}

/// `ticket show --json`, field for field.
#[derive(Debug, Serialize)]
pub struct TicketView {
    pub id: i64,
    pub subject: String,
    pub status: String,
    pub category: String,
    pub priority: String,
    pub organization: String,
    pub requester: String,
    pub followup_of: Option<i64>,
    pub rating: Option<String>,
    pub comments: Vec<CommentView>,
}

/// `ticket list --json`.
#[derive(Debug, Serialize)]
pub struct TicketSummary {
    pub id: i64,
    pub subject: String,
    pub status: String,
    pub category: String,
    pub priority: String,
    pub organization: String,
    pub requester: String,
    pub followup_of: Option<i64>,
}

const SUMMARY_SQL: &str = "SELECT t.id, t.subject, t.status, t.category, t.priority, t.followup_of,
        o.name AS organization, u.email AS requester
     FROM tickets t JOIN organizations o ON o.id = t.organization_id
     JOIN users u ON u.id = t.requester_id";

fn summary_from_row(row: &sqlx::any::AnyRow) -> Result<TicketSummary, sqlx::Error> {
    Ok(TicketSummary {
        id: row.try_get("id")?,
        subject: row.try_get("subject")?,
        status: row.try_get("status")?,
        category: row.try_get("category")?,
        priority: row.try_get("priority")?,
        organization: row.try_get("organization")?,
        requester: row.try_get("requester")?,
        followup_of: row.try_get("followup_of")?,
    })
}

#[derive(Debug, Default)]
pub struct ListFilter {
    pub organization: Option<String>,
    pub requester: Option<String>,
    pub status: Option<String>,
}

pub async fn list(conn: &mut Conn, filter: &ListFilter) -> Result<Vec<TicketSummary>, sqlx::Error> {
    let sql = format!(
        "{SUMMARY_SQL} WHERE (CAST($1 AS TEXT) IS NULL OR o.name = $1)
           AND (CAST($2 AS TEXT) IS NULL OR u.email = $2)
           AND (CAST($3 AS TEXT) IS NULL OR t.status = $3) ORDER BY t.id"
    );
    sqlx::query(&sql)
        .bind(filter.organization.as_deref())
        .bind(
            filter
                .requester
                .as_deref()
                .map(crate::domain::sender::normalize_email),
        )
        .bind(filter.status.as_deref())
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(summary_from_row)
        .collect()
}

pub async fn view(conn: &mut Conn, id: i64) -> Result<Option<TicketView>, sqlx::Error> {
    let Some(row) = sqlx::query(&format!("{SUMMARY_SQL} WHERE t.id = $1"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(None);
    };
    let summary = summary_from_row(&row)?;
    let rating: Option<String> = sqlx::query("SELECT rating FROM tickets WHERE id = $1")
        .bind(id)
        .fetch_one(&mut *conn)
        .await?
        .try_get("rating")?;

    let comment_rows = sqlx::query(
        "SELECT c.id, u.email AS author, c.public, c.body FROM comments c
         JOIN users u ON u.id = c.author_id WHERE c.ticket_id = $1 ORDER BY c.id",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    let attachment_rows = sqlx::query(
        "SELECT a.comment_id, a.filename, a.content_type, a.size FROM attachments a
         JOIN comments c ON c.id = a.comment_id WHERE c.ticket_id = $1 ORDER BY a.id",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;

    let mut comments = Vec::with_capacity(comment_rows.len());
    for row in &comment_rows {
        let comment_id: i64 = row.try_get("id")?;
        let mut attachments = Vec::new();
        for a in attachment_rows.iter() {
            if a.try_get::<i64, _>("comment_id")? == comment_id {
                attachments.push(AttachmentView {
                    filename: a.try_get("filename")?,
                    content_type: a.try_get("content_type")?,
                    size: a.try_get("size")?,
                });
            }
        }
        comments.push(CommentView {
            author: row.try_get("author")?,
            public: row.try_get::<i64, _>("public")? != 0,
            body: row.try_get("body")?,
            attachments,
        });
    }
    Ok(Some(TicketView {
        id: summary.id,
        subject: summary.subject,
        status: summary.status,
        category: summary.category,
        priority: summary.priority,
        organization: summary.organization,
        requester: summary.requester,
        followup_of: summary.followup_of,
        rating,
        comments,
    }))
}

/// What a notification about a ticket shows.
#[derive(Debug, Clone)]
pub struct NotificationFacts {
    pub ticket: Ticket,
    pub organization: String,
    pub requester_name: String,
    pub requester_email: String,
    pub comment_author: Option<String>,
    pub comment_body: Option<String>,
}

pub async fn notification_facts(
    conn: &mut Conn,
    ticket_id: i64,
    comment_id: Option<i64>,
) -> Result<Option<NotificationFacts>, sqlx::Error> {
    let Some(ticket) = get(conn, ticket_id).await? else {
        return Ok(None);
    };
    let row = sqlx::query(
        "SELECT o.name AS organization, u.name AS requester_name, u.email AS requester_email
         FROM tickets t JOIN organizations o ON o.id = t.organization_id
         JOIN users u ON u.id = t.requester_id WHERE t.id = $1",
    )
    .bind(ticket_id)
    .fetch_one(&mut *conn)
    .await?;
    let comment =
        match comment_id {
            Some(id) => sqlx::query(
                "SELECT u.name AS author, c.body FROM comments c JOIN users u ON u.id = c.author_id
             WHERE c.id = $1",
            )
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?,
            None => None,
        };
    Ok(Some(NotificationFacts {
        ticket,
        organization: row.try_get("organization")?,
        requester_name: row.try_get("requester_name")?,
        requester_email: row.try_get("requester_email")?,
        comment_author: comment.as_ref().map(|c| c.try_get("author")).transpose()?,
        comment_body: comment.as_ref().map(|c| c.try_get("body")).transpose()?,
    }))
}

/// Stores a rating; returns false when the ticket is no longer in solve
/// number `solve` (reopened, solved again, or closed).
pub async fn rate(conn: &mut Conn, id: i64, solve: i64, rating: &str) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE tickets SET rating = $1 WHERE id = $2 AND status = 'solved' AND solve_count = $3",
    )
    .bind(rating)
    .bind(id)
    .bind(solve)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1)
}
