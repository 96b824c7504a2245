//! Carries decisions out: everything a batch of decisions writes, in a few
//! multi-row statements on the caller's transaction (tickets, comments,
//! attachment contents and metadata, notifications, threading references,
//! suspended messages, the processing log, the id counters). One durable
//! commit then covers a whole batch and its attachments.

use std::collections::BTreeMap;

use super::messages::{self, Record};
use super::suspended::{self, NewSuspended};
use super::{blobs, outbox, Conn};
use crate::domain::decide::{Comment, Decision, World};
use crate::domain::ticket::Ticket;

/// One decision and what is written beside it.
pub struct Item<'a> {
    pub decision: &'a Decision,
    /// The Message-ID it came with (named in a bounce's note).
    pub message_id: &'a str,
    /// The processing log entry (none for acts of the CLI or the web, and
    /// for duplicates).
    pub record: Option<Record>,
    /// The message itself, for a suspension.
    pub suspended: Option<NewSuspended<'a>>,
}

/// Writes the items' effects. `world` is the world the decisions were made
/// in: its id counters are stored for the next batch.
pub async fn apply(
    conn: &mut Conn,
    items: &[Item<'_>],
    world: &World,
    now: i64,
) -> Result<(), sqlx::Error> {
    for (name, next) in [
        ("tickets", world.next_ticket_id),
        ("comments", world.next_comment_id),
    ] {
        sqlx::query("UPDATE id_counters SET next = $1 WHERE name = $2 AND next < $1")
            .bind(next)
            .bind(name)
            .execute(&mut *conn)
            .await?;
    }

    // The last state of each ticket, in the order they were first written
    // (a follow-up after its ticket).
    let mut tickets: BTreeMap<i64, &Ticket> = BTreeMap::new();
    let mut comments: Vec<&Comment> = Vec::new();
    let mut notices = Vec::new();
    let mut refs: Vec<(String, i64)> = Vec::new();
    for item in items {
        let writes = &item.decision.writes;
        if let Some(ticket) = &writes.ticket {
            tickets.insert(ticket.id, ticket);
        }
        comments.extend(&writes.comment);
        notices.extend(writes.notices.iter());
        refs.extend(writes.refs.iter().cloned());
    }
    let tickets: Vec<&Ticket> = tickets.into_values().collect();
    upsert_tickets(conn, &tickets).await?;
    insert_comments(conn, &comments).await?;

    let mut contents: BTreeMap<&str, &[u8]> = BTreeMap::new();
    for comment in &comments {
        for attachment in &comment.attachments {
            contents.insert(&attachment.sha256, &attachment.data);
        }
    }
    let contents: Vec<(&str, &[u8])> = contents.into_iter().collect();
    blobs::put_all(conn, &contents).await?;
    insert_attachments(conn, &comments).await?;

    let followers: Vec<(i64, i64)> = items
        .iter()
        .flat_map(|i| i.decision.writes.followers.iter().copied())
        .collect();
    super::insert_rows(
        conn,
        "INSERT INTO followers (ticket_id, user_id, created_at)",
        3,
        "ON CONFLICT (ticket_id, user_id) DO NOTHING",
        &followers,
        |query, (ticket, person)| query.bind(*ticket).bind(*person).bind(now),
    )
    .await?;
    outbox::enqueue_all(conn, &notices, now).await?;
    messages::add_refs(conn, &refs, now).await?;

    let held: Vec<&NewSuspended> = items.iter().filter_map(|i| i.suspended.as_ref()).collect();
    suspended::insert_all(conn, &held).await?;
    let records: Vec<&Record> = items.iter().filter_map(|i| i.record.as_ref()).collect();
    messages::record_all(conn, &records, now).await?;
    for item in items {
        let bounced = &item.decision.writes.bounced;
        if !bounced.is_empty() {
            let note = format!("bounce {}", item.message_id);
            outbox::mark_bounced(conn, bounced, &note).await?;
        }
    }
    Ok(())
}

async fn upsert_tickets(conn: &mut Conn, tickets: &[&Ticket]) -> Result<(), sqlx::Error> {
    super::insert_rows(
        conn,
        "INSERT INTO tickets (id, subject, organization_id, requester_id, category, priority,
             status, followup_of, rating, rating_comment, created_at, updated_at, solved_at,
             closed_at, solve_count)",
        15,
        "ON CONFLICT (id) DO UPDATE SET subject = excluded.subject,
             category = excluded.category, priority = excluded.priority,
             status = excluded.status, rating = excluded.rating,
             rating_comment = excluded.rating_comment, updated_at = excluded.updated_at,
             solved_at = excluded.solved_at, closed_at = excluded.closed_at,
             solve_count = excluded.solve_count",
        tickets,
        |query, t| {
            query
                .bind(t.id)
                .bind(t.subject.as_str())
                .bind(t.organization_id)
                .bind(t.requester_id)
                .bind(t.category)
                .bind(t.priority)
                .bind(t.status)
                .bind(t.followup_of)
                .bind(t.rating)
                .bind(t.rating_comment.as_deref())
                .bind(t.created_at)
                .bind(t.updated_at)
                .bind(t.solved_at)
                .bind(t.closed_at)
                .bind(t.solve_count)
        },
    )
    .await
}

async fn insert_comments(conn: &mut Conn, comments: &[&Comment]) -> Result<(), sqlx::Error> {
    super::insert_rows(
        conn,
        "INSERT INTO comments (id, ticket_id, author_id, public, body, full_text, message_id,
             created_at)",
        8,
        "",
        comments,
        |query, c| {
            query
                .bind(c.id)
                .bind(c.ticket_id)
                .bind(c.author_id)
                .bind(i64::from(c.public))
                .bind(c.body.as_str())
                .bind(c.full_text.as_str())
                .bind(c.message_id.as_deref())
                .bind(c.created_at)
        },
    )
    .await
}

async fn insert_attachments(conn: &mut Conn, comments: &[&Comment]) -> Result<(), sqlx::Error> {
    let rows: Vec<(i64, &crate::domain::mail::Attachment)> = comments
        .iter()
        .flat_map(|c| c.attachments.iter().map(move |a| (c.id, a)))
        .collect();
    super::insert_rows(
        conn,
        "INSERT INTO attachments (comment_id, filename, original_filename, content_type, size,
             sha256)",
        6,
        "",
        &rows,
        |query, (comment, a)| {
            query
                .bind(*comment)
                .bind(a.filename.as_str())
                .bind(a.original_filename.as_deref())
                .bind(a.content_type.as_str())
                .bind(a.data.len() as i64)
                .bind(a.sha256.as_str())
        },
    )
    .await
}
