//! Attachment contents on disk, addressed by their SHA-256: the sender's
//! filename never chooses a path, and the same file sent twice is stored once.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

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

    /// Stores `data` durably and returns its hex SHA-256. Fails on I/O
    /// errors (disk full, permissions).
    pub fn put(&self, data: &[u8]) -> std::io::Result<String> {
        let sha256 = hex(&Sha256::digest(data));
        let path = self.path_of(&sha256);
        if path.exists() {
            return Ok(sha256);
        }
        let parent = path.parent().expect("blob paths have a parent");
        std::fs::create_dir_all(parent)?;
        // Write under a temporary name and rename, so a crash never leaves
        // a truncated file under the final name.
        let mut tmp = tempfile_in(parent)?;
        tmp.1.write_all(data)?;
        tmp.1.sync_all()?;
        std::fs::rename(&tmp.0, &path)?;
        Ok(sha256)
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

    #[test]
    fn content_addressed_and_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::new(dir.path());
        let a = store.put(b"%PDF-1.4 hallo").unwrap();
        let b = store.put(b"%PDF-1.4 hallo").unwrap();
        assert_eq!(a, b);
        assert_eq!(std::fs::read(store.path_of(&a)).unwrap(), b"%PDF-1.4 hallo");
        assert!(store.path_of(&a).starts_with(dir.path()));
    }
}
