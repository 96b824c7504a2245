//! Attachment contents, in the database by their SHA-256: written in the
//! same transaction as the comment they belong to, so one durable commit
//! covers a message and its files, and every instance on a shared database
//! serves them. The sender's filename never chooses anything here.

use std::path::Path;

use super::Conn;

/// Stores contents by hash; contents already there are not written again.
pub async fn put_all(conn: &mut Conn, blobs: &[(&str, &[u8])]) -> Result<(), sqlx::Error> {
    // Large contents make few rows per statement worthwhile.
    for chunk in blobs.chunks(16) {
        super::insert_rows(
            conn,
            "INSERT INTO blobs (sha256, data)",
            2,
            "ON CONFLICT (sha256) DO NOTHING",
            chunk,
            |query, (sha256, data)| query.bind(*sha256).bind(data.to_vec()),
        )
        .await?;
    }
    Ok(())
}

pub async fn get(conn: &mut Conn, sha256: &str) -> Result<Option<Vec<u8>>, sqlx::Error> {
    sqlx::query_scalar("SELECT data FROM blobs WHERE sha256 = $1")
        .bind(sha256)
        .fetch_optional(&mut *conn)
        .await
}

/// Moves attachment files that versions before blobs-in-the-database wrote
/// under `dir` (`ab/abcdef…`) into the database, and removes what killed
/// writers left there (`.tmp-…`). Returns (files moved, leftovers removed).
/// Fails on database or I/O errors; a file is removed only once its
/// contents are committed.
pub async fn import_files(store: &super::Store, dir: &Path) -> Result<(usize, usize), sqlx::Error> {
    let Ok(shards) = std::fs::read_dir(dir) else {
        return Ok((0, 0));
    };
    let (mut moved, mut removed) = (0, 0);
    for shard in shards.flatten() {
        let Ok(files) = std::fs::read_dir(shard.path()) else {
            continue;
        };
        for file in files.flatten() {
            let name = file.file_name().to_string_lossy().to_string();
            if name.starts_with(".tmp-") {
                if std::fs::remove_file(file.path()).is_ok() {
                    removed += 1;
                }
                continue;
            }
            let is_hash = name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit());
            if !is_hash {
                continue;
            }
            let data = std::fs::read(file.path()).map_err(sqlx::Error::Io)?;
            let mut tx = store.begin().await?;
            put_all(&mut tx, &[(name.as_str(), data.as_slice())]).await?;
            tx.commit().await?;
            std::fs::remove_file(file.path()).map_err(sqlx::Error::Io)?;
            moved += 1;
        }
        let _ = std::fs::remove_dir(shard.path());
    }
    Ok((moved, removed))
}
