//! The outbox: every notification, written in the same transaction as the
//! change that caused it, with everything it will say; then claimed by a
//! delivery worker round by round, and marked.

use serde::Serialize;

use sqlx::{Connection, Executor};

use super::{Backend, Conn, Store};
use crate::domain::notice::{Event, Notice, OutboxState};

/// The recipients column: a JSON array of addresses.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct Addresses(pub Vec<String>);

impl TryFrom<String> for Addresses {
    type Error = serde_json::Error;
    fn try_from(json: String) -> Result<Self, Self::Error> {
        serde_json::from_str(&json).map(Addresses)
    }
}

/// Writes the notices as queued rows, due now.
pub async fn enqueue_all(
    conn: &mut Conn,
    notices: &[&Notice],
    now: i64,
) -> Result<(), sqlx::Error> {
    let rows: Vec<(&Notice, String, String)> = notices
        .iter()
        .map(|n| {
            let recipients = serde_json::to_string(&[&n.to.address]).expect("strings serialize");
            let context = serde_json::to_string(&n.context).expect("contexts serialize");
            (*n, recipients, context)
        })
        .collect();
    super::insert_rows(
        conn,
        "INSERT INTO outbox (event, ticket_id, recipients, locale, subject, message_id,
             in_reply_to, refs, reply_to, automatic, context, state, next_attempt_at, created_at)",
        14,
        "",
        &rows,
        |query, (n, recipients, context)| {
            query
                .bind(n.event)
                .bind(n.ticket_id)
                .bind(recipients.as_str())
                .bind(n.to.locale.as_str())
                .bind(n.subject.as_str())
                .bind(n.message_id.as_str())
                .bind(n.in_reply_to.as_deref())
                .bind(n.references.join(" "))
                .bind(n.reply_to.as_str())
                .bind(i64::from(n.event.is_automatic()))
                .bind(context.as_str())
                .bind(OutboxState::Queued)
                .bind(now)
                .bind(now)
        },
    )
    .await
}

/// Marks the notifications a bounce refers to.
pub async fn mark_bounced(
    conn: &mut Conn,
    message_ids: &[String],
    reason: &str,
) -> Result<u64, sqlx::Error> {
    if message_ids.is_empty() {
        return Ok(0);
    }
    let sql = format!(
        "UPDATE outbox SET state = $1, last_error = $2 WHERE message_id IN ({})",
        (3..3 + message_ids.len())
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut query = sqlx::query(&sql).bind(OutboxState::Bounced).bind(reason);
    for id in message_ids {
        query = query.bind(id.as_str());
    }
    Ok(query.execute(&mut *conn).await?.rows_affected())
}

/// `outbox list --json`.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct OutboxView {
    pub id: i64,
    pub event: Event,
    #[sqlx(rename = "ticket_id")]
    pub ticket: Option<i64>,
    #[sqlx(rename = "recipients", try_from = "String")]
    pub to: Addresses,
    pub subject: String,
    pub state: OutboxState,
    pub message_id: String,
    pub attempts: i64,
    pub last_error: Option<String>,
}

pub async fn list(conn: &mut Conn) -> Result<Vec<OutboxView>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, event, ticket_id, recipients, subject, state, message_id, attempts, last_error
         FROM outbox ORDER BY id",
    )
    .fetch_all(&mut *conn)
    .await
}

/// A claimed row: what the mail will be.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Due {
    pub id: i64,
    pub event: Event,
    pub ticket_id: Option<i64>,
    #[sqlx(try_from = "String")]
    pub recipients: Addresses,
    pub locale: String,
    pub subject: String,
    pub message_id: String,
    pub in_reply_to: Option<String>,
    pub refs: String,
    pub reply_to: String,
    pub automatic: i64,
    /// The template context, JSON.
    pub context: String,
    /// Attempts so far, this one included.
    pub attempts: i64,
    pub created_at: i64,
}

impl Due {
    pub fn to(&self) -> &str {
        self.recipients.0.first().map_or("", String::as_str)
    }

    pub fn references(&self) -> Vec<String> {
        self.refs.split_whitespace().map(str::to_string).collect()
    }

    pub fn automatic(&self) -> bool {
        self.automatic != 0
    }

    /// Automatic mail about tickets counts toward the per-recipient limit
    /// and is held by it; account mails have their own limit (SPEC 5).
    pub fn rate_limited(&self) -> bool {
        self.automatic() && !self.event.is_account()
    }
}

/// Claims up to `limit` due rows, oldest due first: counts the attempt
/// and moves their due time to `lease_until`, so that no other worker
/// takes them and, if this one dies mid-send, they are tried again after
/// the lease. `retries_only`: only rows that failed before. On PostgreSQL,
/// rows another instance is claiming are skipped, not waited for. Written
/// without waiting for the disk (see `relaxed`): a lost claim only means a
/// row is tried once more.
pub async fn claim_round(
    store: &Store,
    now: i64,
    lease_until: i64,
    retries_only: bool,
    limit: usize,
) -> Result<Vec<Due>, sqlx::Error> {
    let skip_locked = match store.backend {
        Backend::Postgres => "FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let retries = if retries_only { "AND attempts > 0" } else { "" };
    let sql = format!(
        "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $1
         WHERE id IN (SELECT id FROM outbox WHERE state = $2 AND next_attempt_at <= $3 {retries}
                      ORDER BY next_attempt_at, id LIMIT {limit} {skip_locked})
         RETURNING id, event, ticket_id, recipients, locale, subject, message_id, in_reply_to,
             refs, reply_to, automatic, context, attempts, created_at"
    );
    let mut round: Vec<Due> = relaxed(store, |conn| {
        Box::pin(async move {
            sqlx::query_as(&sql)
                .bind(lease_until)
                .bind(OutboxState::Queued)
                .bind(now)
                .fetch_all(&mut *conn)
                .await
        })
    })
    .await?;
    round.sort_by_key(|row| row.id);
    Ok(round)
}

/// Runs `write` without waiting for the disk at its commit (SQLite
/// `synchronous = NORMAL`, PostgreSQL `synchronous_commit = off`): a crash
/// of the process keeps it, a power cut may lose it. For the delivery
/// bookkeeping, whose loss only means a mail goes out once more; it saves
/// two disk flushes per mail.
async fn relaxed<T>(
    store: &Store,
    write: impl for<'c> FnOnce(&'c mut Conn) -> futures::future::BoxFuture<'c, Result<T, sqlx::Error>>,
) -> Result<T, sqlx::Error> {
    let mut conn = store.acquire().await?;
    match store.backend {
        Backend::Sqlite => {
            // The connection is held throughout: nothing else commits
            // while it is relaxed.
            conn.execute("PRAGMA synchronous = NORMAL").await?;
            let result = write(&mut conn).await;
            conn.execute("PRAGMA synchronous = FULL").await?;
            result
        }
        Backend::Postgres => {
            let mut tx = conn.begin().await?;
            tx.execute("SET LOCAL synchronous_commit = off").await?;
            let result = write(&mut tx).await?;
            tx.commit().await?;
            Ok(result)
        }
    }
}

/// What became of a delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mark {
    Sent,
    /// Queued again for another attempt.
    Retry {
        next_attempt_at: i64,
        error: String,
    },
    /// `failed` or `suppressed`, with the reason.
    Final {
        state: OutboxState,
        reason: String,
    },
}

/// Records the results of delivery attempts, in one transaction, without
/// waiting for the disk (see `relaxed`).
pub async fn record_all(
    store: &Store,
    marks: Vec<(i64, Mark)>,
    now: i64,
) -> Result<(), sqlx::Error> {
    if marks.is_empty() {
        return Ok(());
    }
    relaxed(store, move |conn| {
        Box::pin(async move {
            let mut tx = conn.begin().await?;
            // Most rounds are all sent: one statement for those.
            let sent: Vec<i64> = marks
                .iter()
                .filter(|(_, mark)| *mark == Mark::Sent)
                .map(|(id, _)| *id)
                .collect();
            mark_sent(&mut tx, &sent, now).await?;
            for (id, mark) in marks.iter().filter(|(_, mark)| *mark != Mark::Sent) {
                apply_mark(&mut tx, *id, mark, now).await?;
            }
            tx.commit().await
        })
    })
    .await
}

async fn mark_sent(conn: &mut Conn, ids: &[i64], now: i64) -> Result<(), sqlx::Error> {
    if ids.is_empty() {
        return Ok(());
    }
    let marks = super::marks(conn, 2 + ids.len());
    let sql = format!(
        "UPDATE outbox SET state = {}, sent_at = {}, last_error = NULL WHERE id IN ({})",
        marks[0],
        marks[1],
        marks[2..].join(", ")
    );
    let mut query = sqlx::query(&sql).bind(OutboxState::Sent).bind(now);
    for id in ids {
        query = query.bind(*id);
    }
    query.execute(&mut *conn).await?;
    Ok(())
}

async fn apply_mark(conn: &mut Conn, id: i64, mark: &Mark, now: i64) -> Result<(), sqlx::Error> {
    let query = match mark {
        Mark::Sent => return mark_sent(conn, &[id], now).await,
        Mark::Retry {
            next_attempt_at,
            error,
        } => sqlx::query("UPDATE outbox SET next_attempt_at = $1, last_error = $2 WHERE id = $3")
            .bind(*next_attempt_at)
            .bind(error.as_str())
            .bind(id),
        Mark::Final { state, reason } => {
            sqlx::query("UPDATE outbox SET state = $1, last_error = $2 WHERE id = $3")
                .bind(*state)
                .bind(reason.as_str())
                .bind(id)
        }
    };
    query.execute(&mut *conn).await?;
    Ok(())
}

/// Automatic mails sent to each of `addresses` since `since`: the rate
/// limit's count, in one query.
pub async fn automatic_sent_since(
    conn: &mut Conn,
    addresses: &[&str],
    since: i64,
) -> Result<Vec<(String, i64)>, sqlx::Error> {
    if addresses.is_empty() {
        return Ok(Vec::new());
    }
    let recipients: Vec<String> = addresses
        .iter()
        .map(|a| serde_json::to_string(&[a]).expect("strings serialize"))
        .collect();
    let sql = format!(
        "SELECT recipients, COUNT(*) FROM outbox
         WHERE automatic = 1 AND event NOT IN ('invitation', 'password_reset')
           AND state IN ($1, $2) AND sent_at >= $3 AND recipients IN ({})
         GROUP BY recipients",
        (4..4 + recipients.len())
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut query = sqlx::query_as::<_, (String, i64)>(&sql)
        .bind(OutboxState::Sent)
        .bind(OutboxState::Bounced)
        .bind(since);
    for r in &recipients {
        query = query.bind(r.as_str());
    }
    let counts = query.fetch_all(&mut *conn).await?;
    Ok(counts
        .into_iter()
        .filter_map(|(json, n)| {
            let to: Vec<String> = serde_json::from_str(&json).ok()?;
            Some((to.into_iter().next()?, n))
        })
        .collect())
}

/// Rows by state (every state, zero too), and the age of the oldest queued
/// row: the outbox's health.
pub async fn health(
    conn: &mut Conn,
    now: i64,
) -> Result<(Vec<(OutboxState, i64)>, Option<i64>), sqlx::Error> {
    let counts: Vec<(OutboxState, i64)> =
        sqlx::query_as("SELECT state, COUNT(*) FROM outbox GROUP BY state")
            .fetch_all(&mut *conn)
            .await?;
    let states = <OutboxState as strum::VariantArray>::VARIANTS
        .iter()
        .map(|state| {
            let n = counts
                .iter()
                .find(|(s, _)| s == state)
                .map_or(0, |(_, n)| *n);
            (*state, n)
        })
        .collect();
    let oldest: Option<i64> =
        sqlx::query_scalar("SELECT MIN(created_at) FROM outbox WHERE state = $1")
            .bind(OutboxState::Queued)
            .fetch_one(&mut *conn)
            .await?;
    Ok((states, oldest.map(|t| now - t)))
}
