//! Tickets, comments and attachment metadata: reading them, and the views
//! of `ticket show` and `ticket list`. (Writing goes through `write`.)

use serde::Serialize;

use super::{list, Conn};
use crate::domain::ticket::{Category, Priority, Rating, Status, Ticket};

const TICKET: &str = "SELECT id, subject, organization_id, requester_id, category, priority,
        status, followup_of, rating, rating_comment, created_at, updated_at, solved_at,
        closed_at, solve_count FROM tickets";

pub async fn get(conn: &mut Conn, id: i64) -> Result<Option<Ticket>, sqlx::Error> {
    sqlx::query_as(&format!("{TICKET} WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
}

/// The tickets with these ids, in one query.
pub async fn by_ids(conn: &mut Conn, ids: &[i64]) -> Result<Vec<Ticket>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!("{TICKET} WHERE id IN ({})", list(conn, ids.len()));
    let mut query = sqlx::query_as(&sql);
    for id in ids {
        query = query.bind(*id);
    }
    query.fetch_all(&mut *conn).await
}

/// Closes every ticket solved before `cutoff`; returns their ids.
pub async fn close_solved_before(
    conn: &mut Conn,
    cutoff: i64,
    now: i64,
) -> Result<Vec<i64>, sqlx::Error> {
    let mut ids: Vec<i64> = sqlx::query_scalar(
        "UPDATE tickets SET status = $1, closed_at = $2, updated_at = $2
         WHERE status = $3 AND solved_at < $4 RETURNING id",
    )
    .bind(Status::Closed)
    .bind(now)
    .bind(Status::Solved)
    .bind(cutoff)
    .fetch_all(&mut *conn)
    .await?;
    ids.sort_unstable();
    Ok(ids)
}

/// Stores a rating (and its comment); returns false when the ticket is no
/// longer in solve number `solve` (reopened, solved again, or closed).
pub async fn rate(
    conn: &mut Conn,
    id: i64,
    solve: i64,
    rating: Rating,
    comment: Option<&str>,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE tickets SET rating = $1, rating_comment = $2
         WHERE id = $3 AND status = $4 AND solve_count = $5",
    )
    .bind(rating)
    .bind(comment)
    .bind(id)
    .bind(Status::Solved)
    .bind(solve)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1)
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct AttachmentView {
    #[serde(skip)]
    pub id: i64,
    #[serde(skip)]
    pub comment_id: i64,
    pub filename: String,
    pub content_type: String,
    pub size: i64,
    #[serde(skip)]
    pub sha256: String,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct CommentRow {
    id: i64,
    author: String,
    author_name: String,
    public: i64,
    body: String,
    created_at: i64,
}

#[derive(Debug, Serialize)]
pub struct CommentView {
    #[serde(skip)]
    pub id: i64,
    pub author: String,
    #[serde(skip)]
    pub author_name: String,
    pub public: bool,
    pub body: String,
    #[serde(skip)]
    pub created_at: i64,
    pub attachments: Vec<AttachmentView>,
}

/// `ticket list --json` (and the help center's lists).
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct TicketSummary {
    pub id: i64,
    pub subject: String,
    pub status: Status,
    pub category: Category,
    pub priority: Priority,
    pub organization: String,
    pub requester: String,
    pub followup_of: Option<i64>,
    #[serde(skip)]
    pub organization_id: i64,
    #[serde(skip)]
    pub updated_at: i64,
}

/// `ticket show --json`, field for field.
#[derive(Debug, Serialize)]
pub struct TicketView {
    pub id: i64,
    pub subject: String,
    pub status: Status,
    pub category: Category,
    pub priority: Priority,
    pub organization: String,
    pub requester: String,
    pub followup_of: Option<i64>,
    pub rating: Option<Rating>,
    pub rating_comment: Option<String>,
    pub comments: Vec<CommentView>,
    /// Colleagues who get the public answers too (by address).
    pub followers: Vec<String>,
    #[serde(skip)]
    pub organization_id: i64,
    #[serde(skip)]
    pub solve_count: i64,
}

const SUMMARY: &str = "SELECT t.id, t.subject, t.status, t.category, t.priority, t.followup_of,
        o.name AS organization, u.email AS requester, t.organization_id, t.updated_at
     FROM tickets t JOIN organizations o ON o.id = t.organization_id
     JOIN users u ON u.id = t.requester_id";

#[derive(Debug, Default)]
pub struct ListFilter {
    pub organization: Option<String>,
    pub requester: Option<String>,
    pub status: Option<Status>,
}

pub async fn list_tickets(
    conn: &mut Conn,
    filter: &ListFilter,
) -> Result<Vec<TicketSummary>, sqlx::Error> {
    let sql = format!(
        "{SUMMARY} WHERE (CAST($1 AS TEXT) IS NULL OR o.name = $1)
           AND (CAST($2 AS TEXT) IS NULL OR u.email = $2)
           AND (CAST($3 AS TEXT) IS NULL OR t.status = $3) ORDER BY t.id"
    );
    sqlx::query_as(&sql)
        .bind(filter.organization.as_deref())
        .bind(
            filter
                .requester
                .as_deref()
                .map(crate::domain::sender::normalize_email),
        )
        .bind(filter.status)
        .fetch_all(&mut *conn)
        .await
}

pub async fn view(conn: &mut Conn, id: i64) -> Result<Option<TicketView>, sqlx::Error> {
    let Some(summary) = sqlx::query_as::<_, TicketSummary>(&format!("{SUMMARY} WHERE t.id = $1"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(None);
    };
    let (rating, rating_comment, solve_count): (Option<Rating>, Option<String>, i64) =
        sqlx::query_as("SELECT rating, rating_comment, solve_count FROM tickets WHERE id = $1")
            .bind(id)
            .fetch_one(&mut *conn)
            .await?;
    let comments: Vec<CommentRow> = sqlx::query_as(
        "SELECT c.id, u.email AS author, u.name AS author_name, c.public, c.body, c.created_at
         FROM comments c JOIN users u ON u.id = c.author_id WHERE c.ticket_id = $1 ORDER BY c.id",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    let mut attachments: Vec<AttachmentView> = sqlx::query_as(
        "SELECT a.id, a.comment_id, a.filename, a.content_type, a.size, a.sha256
         FROM attachments a JOIN comments c ON c.id = a.comment_id
         WHERE c.ticket_id = $1 ORDER BY a.id",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    let comments = comments
        .into_iter()
        .map(|c| {
            let (mine, rest) = attachments.drain(..).partition(|a| a.comment_id == c.id);
            attachments = rest;
            CommentView {
                id: c.id,
                author: c.author,
                author_name: c.author_name,
                public: c.public != 0,
                body: c.body,
                created_at: c.created_at,
                attachments: mine,
            }
        })
        .collect();
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
        rating_comment,
        comments,
        followers: follower_emails(conn, id).await?,
        organization_id: summary.organization_id,
        solve_count,
    }))
}

/// Who follows these tickets: (ticket, person id).
pub async fn followers_of(
    conn: &mut Conn,
    tickets: &[i64],
) -> Result<Vec<(i64, i64)>, sqlx::Error> {
    if tickets.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT ticket_id, user_id FROM followers WHERE ticket_id IN ({}) ORDER BY created_at, user_id",
        list(conn, tickets.len())
    );
    let mut query = sqlx::query_as(&sql);
    for id in tickets {
        query = query.bind(*id);
    }
    query.fetch_all(&mut *conn).await
}

/// The addresses following a ticket.
pub async fn follower_emails(conn: &mut Conn, ticket: i64) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT u.email FROM followers f JOIN users u ON u.id = f.user_id
         WHERE f.ticket_id = $1 ORDER BY f.created_at, u.email",
    )
    .bind(ticket)
    .fetch_all(&mut *conn)
    .await
}

/// Ends a person's following of a ticket; false when they did not follow.
pub async fn unfollow(conn: &mut Conn, ticket: i64, email: &str) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "DELETE FROM followers WHERE ticket_id = $1
           AND user_id IN (SELECT id FROM users WHERE email = $2)",
    )
    .bind(ticket)
    .bind(crate::domain::sender::normalize_email(email))
    .execute(&mut *conn)
    .await?
    .rows_affected()
        > 0)
}

/// Whose tickets a help center list shows.
#[derive(Debug, Clone, Copy)]
pub enum Scope {
    Requester(i64),
    Organization(i64),
    All,
}

/// One page of a list, latest activity first; `limit + 1` rows are read
/// so the caller knows whether there is a next page.
pub async fn page(
    conn: &mut Conn,
    scope: Scope,
    status: Option<Status>,
    limit: i64,
    offset: i64,
) -> Result<Vec<TicketSummary>, sqlx::Error> {
    // Conditions are left out rather than made optional (`$1 IS NULL OR
    // …`): only a plain condition lets SQLite walk the activity index.
    let mut conditions = Vec::new();
    let mut n = 0;
    let mut mark = || {
        n += 1;
        format!("${n}")
    };
    let scope_id = match scope {
        Scope::Requester(id) => {
            conditions.push(format!("t.requester_id = {}", mark()));
            Some(id)
        }
        Scope::Organization(id) => {
            conditions.push(format!("t.organization_id = {}", mark()));
            Some(id)
        }
        Scope::All => None,
    };
    if status.is_some() {
        conditions.push(format!("t.status = {}", mark()));
    }
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    let sql = format!(
        "{SUMMARY} {filter} ORDER BY t.updated_at DESC, t.id DESC LIMIT {} OFFSET {}",
        mark(),
        mark()
    );
    let mut query = sqlx::query_as(&sql);
    if let Some(id) = scope_id {
        query = query.bind(id);
    }
    if let Some(status) = status {
        query = query.bind(status);
    }
    query
        .bind(limit + 1)
        .bind(offset)
        .fetch_all(&mut *conn)
        .await
}

/// An attachment of a ticket, with its contents' hash and whether its
/// comment is public.
#[derive(Debug, sqlx::FromRow)]
pub struct AttachmentFile {
    pub filename: String,
    pub content_type: String,
    pub sha256: String,
    pub public: i64,
}

pub async fn attachment(
    conn: &mut Conn,
    ticket_id: i64,
    attachment_id: i64,
) -> Result<Option<AttachmentFile>, sqlx::Error> {
    sqlx::query_as(
        "SELECT a.filename, a.content_type, a.sha256, c.public
         FROM attachments a JOIN comments c ON c.id = a.comment_id
         WHERE a.id = $1 AND c.ticket_id = $2",
    )
    .bind(attachment_id)
    .bind(ticket_id)
    .fetch_optional(&mut *conn)
    .await
}
