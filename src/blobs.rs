//! Attachment contents on disk, addressed by their SHA-256: the sender's
//! filename never chooses a path, and the same file sent twice is stored once.

use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct BlobStore {
    dir: PathBuf,
}

impl BlobStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn path_of(&self, sha256: &str) -> PathBuf {
        self.dir.join(&sha256[..2]).join(sha256)
    }

    /// Stores `data`, whose hex SHA-256 is `sha256`, durably. Fails on I/O
    /// errors (disk full, permissions).
    pub fn put(&self, sha256: &str, data: &[u8]) -> std::io::Result<()> {
        let path = self.path_of(sha256);
        if path.exists() {
            return Ok(());
        }
        let parent = path.parent().expect("blob paths have a parent");
        std::fs::create_dir_all(parent)?;
        // Write under a temporary name and rename, so a crash never leaves
        // a truncated file under the final name.
        let mut tmp = tempfile_in(parent)?;
        tmp.1.write_all(data)?;
        tmp.1.sync_all()?;
        std::fs::rename(&tmp.0, &path)?;
        Ok(())
    }

    /// Removes temporary files that writers killed mid-write left behind:
    /// those of processes that no longer run, and any older than a day.
    /// Returns how many went.
    pub fn remove_leftovers(&self) -> usize {
        let Ok(shards) = std::fs::read_dir(&self.dir) else {
            return 0;
        };
        let mut removed = 0;
        for shard in shards.flatten() {
            let Ok(files) = std::fs::read_dir(shard.path()) else {
                continue;
            };
            for file in files.flatten() {
                let name = file.file_name().to_string_lossy().to_string();
                let Some(rest) = name.strip_prefix(".tmp-") else {
                    continue;
                };
                let writer_gone = rest
                    .split('-')
                    .next()
                    .and_then(|pid| pid.parse::<u32>().ok())
                    .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists());
                let stale = file
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age.as_secs() > 86_400);
                if (writer_gone || stale) && std::fs::remove_file(file.path()).is_ok() {
                    removed += 1;
                }
            }
        }
        removed
    }
}

fn tempfile_in(dir: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    let name = format!(".tmp-{}-{:016x}", std::process::id(), rand::random::<u64>());
    let path = dir.join(name);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)?;
    Ok((path, file))
}

pub fn hex(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    #[test]
    fn content_addressed_and_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::new(dir.path());
        let data = b"%PDF-1.4 hallo";
        let sha = hex(&Sha256::digest(data));
        store.put(&sha, data).unwrap();
        store.put(&sha, data).unwrap();
        assert_eq!(std::fs::read(store.path_of(&sha)).unwrap(), data);
        assert!(store.path_of(&sha).starts_with(dir.path()));
    }

    #[test]
    fn leftovers_of_dead_writers_are_removed_and_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::new(dir.path());
        let shard = dir.path().join("ab");
        std::fs::create_dir_all(&shard).unwrap();
        // No process has pid 4194305 (above Linux's pid_max).
        std::fs::write(shard.join(".tmp-4194305-00ff"), b"half").unwrap();
        let live = format!(".tmp-{}-00ee", std::process::id());
        std::fs::write(shard.join(&live), b"in progress").unwrap();
        std::fs::write(shard.join("abcdef"), b"a blob").unwrap();
        assert_eq!(store.remove_leftovers(), 1);
        assert!(shard.join(&live).exists() && shard.join("abcdef").exists());
    }
}
