//! `ticketgate db copy --to postgres://…`: everything of a SQLite database
//! into an empty PostgreSQL one, in one transaction on the target, with
//! the row counts of both compared before it commits. The source is only
//! read (in one read transaction, so it is one instant's state even while
//! a daemon writes).
//!
//! The columns come from the target's schema; values are copied as the
//! three kinds the schema has (BIGINT, TEXT, BYTEA), so a table needs no
//! code here beyond its place in `TABLES`.

use futures::TryStreamExt;
use sqlx::{Acquire, Row};

use super::{Backend, Conn, Store};

/// Every table, parents before children (`tickets` in id order, since a
/// follow-up names an older ticket).
const TABLES: &[&str] = &[
    "organizations",
    "users",
    "tickets",
    "comments",
    "attachments",
    "blobs",
    "messages",
    "message_refs",
    "suspended",
    "outbox",
    "imap_state",
    "id_counters",
    "followers",
    "sessions",
    "account_tokens",
    "login_failures",
    "login_locks",
];

/// Not copied: who reads which mailbox is the running instances' business
/// (the new database's instances take their leases afresh).
const NOT_COPIED: &[&str] = &["mailbox_leases", "_sqlx_migrations"];

/// Rows, or bytes of them, sent to the target per statement at most.
const CHUNK_ROWS: usize = 500;
const CHUNK_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("db copy reads a SQLite database; [database] url is PostgreSQL already")]
    SourceNotSqlite,
    #[error("db copy --to needs a postgres:// URL, not {0:?}")]
    TargetNotPostgres(String),
    #[error(
        "the target is not empty ({0}); db copy fills an empty database only, and changed nothing"
    )]
    TargetNotEmpty(String),
    #[error("the target has a table db copy does not know: {0}; nothing was copied")]
    UnknownTable(String),
    #[error("{table}: {source_rows} rows in the source but {target_rows} in the target; nothing was copied")]
    CountMismatch {
        table: String,
        source_rows: i64,
        target_rows: i64,
    },
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// A column's kind in the target schema.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Integer,
    Text,
    Bytes,
}

#[derive(Debug)]
enum Value {
    Integer(Option<i64>),
    Text(Option<String>),
    Bytes(Option<Vec<u8>>),
}

impl Value {
    fn read(row: &sqlx::any::AnyRow, index: usize, kind: Kind) -> Result<Value, sqlx::Error> {
        Ok(match kind {
            Kind::Integer => Value::Integer(row.try_get(index)?),
            Kind::Text => Value::Text(row.try_get(index)?),
            Kind::Bytes => Value::Bytes(row.try_get(index)?),
        })
    }

    fn size(&self) -> usize {
        match self {
            Value::Integer(_) => 8,
            Value::Text(text) => text.as_ref().map_or(0, String::len),
            Value::Bytes(bytes) => bytes.as_ref().map_or(0, Vec::len),
        }
    }
}

/// Copies `source` into the empty PostgreSQL database at `target_url`;
/// returns each table with its number of rows.
pub async fn copy(source: &Store, target_url: &str) -> Result<Vec<(String, i64)>, CopyError> {
    if source.backend != Backend::Sqlite {
        return Err(CopyError::SourceNotSqlite);
    }
    if !target_url.starts_with("postgres://") && !target_url.starts_with("postgresql://") {
        return Err(CopyError::TargetNotPostgres(target_url.to_string()));
    }
    let target = Store::open(target_url).await?;
    let result = copy_into(source, &target).await;
    target.close().await;
    result
}

async fn copy_into(source: &Store, target: &Store) -> Result<Vec<(String, i64)>, CopyError> {
    let mut tx = target.begin().await?;
    check_tables(&mut tx).await?;
    refuse_unless_empty(&mut tx).await?;
    let mut reader = source.read().await?;
    let mut snapshot = reader.begin().await?;
    let mut counts = Vec::new();
    for table in TABLES {
        let kinds = columns(&mut tx, table).await?;
        if *table == "id_counters" {
            // The new schema starts them at 1; the source's values win.
            sqlx::query("DELETE FROM id_counters")
                .execute(&mut *tx)
                .await?;
        }
        copy_table(&mut snapshot, &mut tx, table, &kinds).await?;
        let source_rows = count(&mut snapshot, table).await?;
        let target_rows = count(&mut tx, table).await?;
        if source_rows != target_rows {
            return Err(CopyError::CountMismatch {
                table: table.to_string(),
                source_rows,
                target_rows,
            });
        }
        counts.push((table.to_string(), target_rows));
    }
    restart_identities(&mut tx).await?;
    snapshot.rollback().await?;
    tx.commit().await?;
    Ok(counts)
}

async fn check_tables(conn: &mut Conn) -> Result<(), CopyError> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT CAST(table_name AS TEXT) FROM information_schema.tables
         WHERE table_schema = current_schema() ORDER BY table_name",
    )
    .fetch_all(&mut *conn)
    .await?;
    match tables
        .into_iter()
        .find(|t| !TABLES.contains(&t.as_str()) && !NOT_COPIED.contains(&t.as_str()))
    {
        Some(unknown) => Err(CopyError::UnknownTable(unknown)),
        None => Ok(()),
    }
}

async fn refuse_unless_empty(conn: &mut Conn) -> Result<(), CopyError> {
    let mut filled = Vec::new();
    for table in TABLES.iter().filter(|t| **t != "id_counters") {
        let rows = count(conn, table).await?;
        if rows > 0 {
            filled.push(format!("{rows} rows in {table}"));
        }
    }
    if filled.is_empty() {
        Ok(())
    } else {
        Err(CopyError::TargetNotEmpty(filled.join(", ")))
    }
}

/// The target's columns of `table`, in order, with their kinds.
async fn columns(conn: &mut Conn, table: &str) -> Result<Vec<(String, Kind)>, sqlx::Error> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT CAST(column_name AS TEXT), CAST(data_type AS TEXT)
         FROM information_schema.columns
         WHERE table_schema = current_schema() AND table_name = $1
         ORDER BY ordinal_position",
    )
    .bind(table)
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(|(name, data_type)| {
            let kind = match data_type.as_str() {
                "bigint" | "integer" | "smallint" => Kind::Integer,
                "text" | "character varying" => Kind::Text,
                "bytea" => Kind::Bytes,
                other => {
                    return Err(sqlx::Error::Protocol(format!(
                        "{table}.{name} is of type {other}, which db copy does not copy"
                    )))
                }
            };
            Ok((name, kind))
        })
        .collect()
}

async fn copy_table(
    source: &mut Conn,
    target: &mut Conn,
    table: &str,
    kinds: &[(String, Kind)],
) -> Result<(), sqlx::Error> {
    let names: Vec<&str> = kinds.iter().map(|(name, _)| name.as_str()).collect();
    let list = names.join(", ");
    let select = format!("SELECT {list} FROM {table} ORDER BY {}", names[0]);
    let head = format!("INSERT INTO {table} ({list})");
    let mut rows = sqlx::query(&select).fetch(&mut *source);
    let mut chunk: Vec<Vec<Value>> = Vec::new();
    let mut bytes = 0;
    while let Some(row) = rows.try_next().await? {
        let values = kinds
            .iter()
            .enumerate()
            .map(|(i, (_, kind))| Value::read(&row, i, *kind))
            .collect::<Result<Vec<_>, _>>()?;
        bytes += values.iter().map(Value::size).sum::<usize>();
        chunk.push(values);
        if chunk.len() >= CHUNK_ROWS || bytes >= CHUNK_BYTES {
            insert(target, &head, kinds.len(), &chunk).await?;
            chunk.clear();
            bytes = 0;
        }
    }
    insert(target, &head, kinds.len(), &chunk).await
}

async fn insert(
    conn: &mut Conn,
    head: &str,
    columns: usize,
    rows: &[Vec<Value>],
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    super::insert_rows(conn, head, columns, "", rows, |mut query, row| {
        for value in row {
            query = match value {
                Value::Integer(v) => query.bind(*v),
                Value::Text(v) => query.bind(v.as_deref()),
                Value::Bytes(v) => query.bind(v.as_deref()),
            };
        }
        query
    })
    .await
}

async fn count(conn: &mut Conn, table: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
        .fetch_one(&mut *conn)
        .await
}

/// Identity columns continue after the copied ids.
async fn restart_identities(conn: &mut Conn) -> Result<(), sqlx::Error> {
    let identities: Vec<(String, String)> = sqlx::query_as(
        "SELECT CAST(table_name AS TEXT), CAST(column_name AS TEXT)
         FROM information_schema.columns
         WHERE table_schema = current_schema() AND is_identity = 'YES'",
    )
    .fetch_all(&mut *conn)
    .await?;
    for (table, column) in identities {
        sqlx::query(&format!(
            "SELECT CAST(setval(pg_get_serial_sequence($1, $2),
                 COALESCE((SELECT MAX({column}) FROM {table}), 0) + 1, false) AS BIGINT)"
        ))
        .bind(&table)
        .bind(&column)
        .fetch_one(&mut *conn)
        .await?;
    }
    Ok(())
}
