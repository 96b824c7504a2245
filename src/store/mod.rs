//! All SQL of ticketgate, behind plain functions that take a connection (or
//! a transaction, which derefs to one) so callers compose transactions.
//! One set of SQL serves SQLite and PostgreSQL through sqlx's `Any` driver
//! (`$n` placeholders, integer Unix times, `RETURNING`, `ON CONFLICT`); the
//! dialect is chosen only where it must be (`Backend`). Rows are mapped by
//! `#[derive(FromRow)]`; the enumerated columns are the enums' own strings.
//!
//! - [`facts`]: what a batch of decisions needs, in one read.
//! - [`write`]: carries a batch of decisions out, a few multi-row
//!   statements in the caller's transaction.
//! - the rest, one module per table family: [`directory`], [`tickets`],
//!   [`messages`], [`outbox`], [`suspended`], [`blobs`], [`imap_state`],
//!   [`leases`], [`accounts`].
//! - [`copy`]: `db copy`, a SQLite database into an empty PostgreSQL one.

pub mod accounts;
pub mod blobs;
pub mod copy;
pub mod directory;
pub mod facts;
pub mod imap_state;
pub mod leases;
pub mod messages;
pub mod outbox;
pub mod suspended;
pub mod tickets;
pub mod write;

use std::str::FromStr;

use sqlx::any::{AnyArguments, AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyConnection, AnyPool, ConnectOptions, Executor};

use crate::domain::decide::{Outcome, Reason};
use crate::domain::notice::{Event, OutboxState};
use crate::domain::sender::Role;
use crate::domain::ticket::{Category, Priority, Rating, Status};

pub type Conn = AnyConnection;
pub type Tx = sqlx::Transaction<'static, Any>;
type Query<'q> = sqlx::query::Query<'q, Any, AnyArguments<'q>>;

/// Enums stored as their strings: bound and read like `&str`, and a value
/// the enum does not know is a decode error, not a silent default.
macro_rules! text_columns {
    ($($ty:ty),* $(,)?) => {$(
        impl sqlx::Type<Any> for $ty {
            fn type_info() -> sqlx::any::AnyTypeInfo {
                <&str as sqlx::Type<Any>>::type_info()
            }
            fn compatible(ty: &sqlx::any::AnyTypeInfo) -> bool {
                <&str as sqlx::Type<Any>>::compatible(ty)
            }
        }
        impl<'q> sqlx::Encode<'q, Any> for $ty {
            fn encode_by_ref(
                &self,
                buf: &mut <Any as sqlx::Database>::ArgumentBuffer<'q>,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <&str as sqlx::Encode<'q, Any>>::encode(self.as_str(), buf)
            }
        }
        impl<'r> sqlx::Decode<'r, Any> for $ty {
            fn decode(
                value: <Any as sqlx::Database>::ValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                let text = <&str as sqlx::Decode<'r, Any>>::decode(value)?;
                text.parse()
                    .map_err(|_| format!("{text:?} is not a {}", stringify!($ty)).into())
            }
        }
    )*};
}
text_columns!(
    Status,
    Priority,
    Category,
    Rating,
    Role,
    Event,
    OutboxState,
    Outcome,
    Reason
);

/// Read-only SQLite connections: one per core of a small server is enough
/// to keep both busy.
const READERS: u32 = 4;

/// Values bound per statement at most: SQLite allows 32,766, PostgreSQL
/// 65,535.
const MAX_PARAMETERS: usize = 30_000;

/// How a statement's values are marked: PostgreSQL numbers them (`$1`);
/// for SQLite they stay anonymous (`?`), because SQLite finds a numbered
/// one by walking the list of all of them, which makes binding a
/// statement of n values cost n² (most of ingest's time with multi-row
/// inserts).
#[derive(Debug, Clone, Copy)]
pub enum Marks {
    Numbered,
    Anonymous,
}

impl Marks {
    pub fn of(conn: &Conn) -> Marks {
        if conn.backend_name() == "PostgreSQL" {
            Marks::Numbered
        } else {
            Marks::Anonymous
        }
    }

    /// The mark of the `n`th value (from 1).
    fn mark(self, n: usize) -> String {
        match self {
            Marks::Numbered => format!("${n}"),
            Marks::Anonymous => "?".to_string(),
        }
    }
}

/// `($1, $2), ($3, $4)` for `rows` rows of `columns` values: several rows
/// in one statement, since every statement is a round trip to the database.
/// The statement must have no other values.
pub fn placeholders(conn: &Conn, rows: usize, columns: usize) -> String {
    let marks = Marks::of(conn);
    (0..rows)
        .map(|row| {
            let values: Vec<String> = (1..=columns)
                .map(|c| marks.mark(row * columns + c))
                .collect();
            format!("({})", values.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `$1, $2, …` for an `IN (…)` list; the statement must have no other
/// values.
pub fn list(conn: &Conn, n: usize) -> String {
    marks(conn, n).join(", ")
}

/// The marks of a statement's `n` values, in order. SQLite numbers `$n`
/// and `?` apart, so one statement uses these for all of its values.
pub fn marks(conn: &Conn, n: usize) -> Vec<String> {
    let marks = Marks::of(conn);
    (1..=n).map(|i| marks.mark(i)).collect()
}

/// Inserts `rows` with as few statements as the parameter limit allows:
/// `{head} VALUES (…), (…) {tail}`, each row bound by `bind`.
pub async fn insert_rows<'a, T>(
    conn: &mut Conn,
    head: &str,
    columns: usize,
    tail: &str,
    rows: &'a [T],
    bind: impl for<'q> Fn(Query<'q>, &'q T) -> Query<'q>,
) -> Result<(), sqlx::Error> {
    for chunk in rows.chunks((MAX_PARAMETERS / columns).max(1)) {
        let sql = format!(
            "{head} VALUES {} {tail}",
            placeholders(conn, chunk.len(), columns)
        );
        let mut query = sqlx::query(&sql);
        for row in chunk {
            query = bind(query, row);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The database: a pool and which backend it speaks to.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    /// SQLite: read-only connections beside the one writer, so that the
    /// help center's pages are read in parallel (WAL lets readers run
    /// while a write commits). PostgreSQL reads from `pool`.
    readers: Option<AnyPool>,
    pub backend: Backend,
}

impl Store {
    /// Connects (creating a SQLite file if needed) and applies pending
    /// migrations. Fails when the database cannot be reached or migrated.
    pub async fn open(url: &str) -> Result<Store, sqlx::Error> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        };
        let url = match backend {
            Backend::Sqlite if !url.contains("mode=") && !url.contains(":memory:") => {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}mode=rwc")
            }
            _ => url.to_string(),
        };
        let options = AnyConnectOptions::from_str(&url)?.disable_statement_logging();
        let pool = AnyPoolOptions::new()
            // SQLite has one writer; one connection avoids busy waits in
            // the single-process CLI and keeps :memory: databases whole.
            .max_connections(if backend == Backend::Sqlite { 1 } else { 5 })
            // Fail fast when the database is unusable: callers retry with
            // their own back-off (the daemon) or report it (the CLI).
            .acquire_timeout(std::time::Duration::from_secs(5))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL for concurrent readers; FULL so that a
                        // committed message survives power loss.
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = FULL").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                        conn.execute("PRAGMA busy_timeout = 5000").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        let mut store = Store {
            pool,
            readers: None,
            backend,
        };
        store.migrate().await?;
        if backend == Backend::Sqlite && !url.contains(":memory:") {
            store.readers = Some(Self::readers(&url).await?);
        }
        Ok(store)
    }

    async fn readers(url: &str) -> Result<AnyPool, sqlx::Error> {
        let url = url.replace("mode=rwc", "mode=ro");
        let options = AnyConnectOptions::from_str(&url)?.disable_statement_logging();
        AnyPoolOptions::new()
            .max_connections(READERS)
            .min_connections(0)
            .acquire_timeout(std::time::Duration::from_secs(5))
            .after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute("PRAGMA busy_timeout = 5000").await?;
                    Ok(())
                })
            })
            .connect_with(options)
            .await
    }

    /// A connection for reading only (pages, lists). On SQLite it never
    /// waits for the writer.
    pub async fn read(&self) -> Result<sqlx::pool::PoolConnection<Any>, sqlx::Error> {
        self.readers.as_ref().unwrap_or(&self.pool).acquire().await
    }

    async fn migrate(&self) -> Result<(), sqlx::Error> {
        let migrator = match self.backend {
            Backend::Sqlite => sqlx::migrate!("./migrations/sqlite"),
            Backend::Postgres => sqlx::migrate!("./migrations/postgres"),
        };
        migrator.run(&self.pool).await.map_err(|e| match e {
            sqlx::migrate::MigrateError::Execute(e) => e,
            other => sqlx::Error::Configuration(other.to_string().into()),
        })
    }

    /// A write transaction. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`): a deferred one that read first could not
    /// upgrade when another process wrote meanwhile, and would fail with
    /// "database is locked" instead of waiting its turn.
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
    }

    pub async fn acquire(&self) -> Result<sqlx::pool::PoolConnection<Any>, sqlx::Error> {
        self.pool.acquire().await
    }

    pub async fn close(&self) {
        if let Some(readers) = &self.readers {
            readers.close().await;
        }
        self.pool.close().await
    }
}

/// Ends a transaction by the result of its work: committed when it
/// succeeded, rolled back at once when it failed. (A dropped transaction
/// is rolled back only when its connection is next used; on PostgreSQL,
/// with several connections, a retry on another one would wait for its
/// locks.)
pub async fn settle<T>(tx: Tx, result: Result<T, sqlx::Error>) -> Result<T, sqlx::Error> {
    match result {
        Ok(value) => {
            tx.commit().await?;
            Ok(value)
        }
        Err(error) => {
            if let Err(rollback) = tx.rollback().await {
                tracing::warn!("rolling back after \"{error}\" failed too: {rollback}");
            }
            Err(error)
        }
    }
}
