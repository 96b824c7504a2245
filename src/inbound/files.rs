//! Messages from files, standard input, Maildir directories and mbox
//! files, for `ingest`: each read within `[limits] max_message_bytes`. A
//! larger message is read only as far as its header section (and stdin
//! drained), so that no single message can take the memory of the whole
//! batch. Mailboxes are read one message at a time. I/O only.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::config::LimitsSettings;
use crate::inbound::parse::header_end;

/// A message as read from its file.
#[derive(Debug)]
pub enum Incoming {
    Whole(Vec<u8>),
    /// Over `max_message_bytes`: its header section (at most
    /// `max_header_bytes`) and its size.
    TooLarge {
        headers: Vec<u8>,
        size: u64,
    },
}

/// The messages an `ingest` argument names, in order, each with a name for
/// the output: a message file (or `-`), every file of a Maildir's `new/`
/// and `cur/` (by name), or every message of an mbox file (`FILE:N`).
pub fn messages<'a>(
    input: &'a Path,
    limits: &'a LimitsSettings,
) -> Box<dyn Iterator<Item = (PathBuf, std::io::Result<Incoming>)> + 'a> {
    if input.is_dir() {
        return match maildir_files(input) {
            Ok(files) => Box::new(files.into_iter().map(move |file| {
                let read = read(&file, limits);
                (file, read)
            })),
            Err(e) => Box::new(std::iter::once((input.to_path_buf(), Err(e)))),
        };
    }
    if input != Path::new("-") && is_mbox(input) {
        return match std::fs::File::open(input) {
            Ok(file) => {
                let reader = std::io::BufReader::new(file);
                Box::new(
                    mail_parser::mailbox::mbox::MessageIterator::new(reader)
                        .enumerate()
                        .map(move |(n, message)| {
                            let name = PathBuf::from(format!("{}:{}", input.display(), n + 1));
                            let read = message.map(|m| limited(m.unwrap_contents(), limits));
                            (name, read)
                        }),
                )
            }
            Err(e) => Box::new(std::iter::once((input.to_path_buf(), Err(e)))),
        };
    }
    Box::new(std::iter::once((input.to_path_buf(), read(input, limits))))
}

/// The message files of a Maildir, `new/` then `cur/`, each by name (the
/// delivery time leads Maildir names). A directory without either is not
/// a Maildir.
fn maildir_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut found = false;
    let mut files = Vec::new();
    for sub in ["new", "cur"] {
        let Ok(entries) = std::fs::read_dir(dir.join(sub)) else {
            continue;
        };
        found = true;
        let mut these: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| e.path())
            .collect();
        these.sort();
        files.extend(these);
    }
    if !found {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "a directory that is not a Maildir (no cur/ or new/)",
        ));
    }
    Ok(files)
}

/// An mbox file starts with a `From ` separator line; a message file
/// starts with a header field.
fn is_mbox(path: &Path) -> bool {
    let mut start = [0u8; 5];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut start))
        .is_ok()
        && &start == b"From "
}

/// A message read whole (an mbox's), within the limit.
fn limited(raw: Vec<u8>, limits: &LimitsSettings) -> Incoming {
    if raw.len() as u64 <= limits.max_message_bytes {
        return Incoming::Whole(raw);
    }
    let size = raw.len() as u64;
    let mut head = raw;
    head.truncate(limits.max_header_bytes as usize);
    too_large(head, size)
}

/// Reads one message file, or stdin for `-`. Fails on I/O errors.
pub fn read(path: &Path, limits: &LimitsSettings) -> std::io::Result<Incoming> {
    if path == Path::new("-") {
        return read_from(&mut std::io::stdin().lock(), limits, None);
    }
    let mut file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    read_from(&mut file, limits, Some(size))
}

fn read_from(
    input: &mut impl Read,
    limits: &LimitsSettings,
    known_size: Option<u64>,
) -> std::io::Result<Incoming> {
    let max = limits.max_message_bytes;
    if known_size.is_some_and(|size| size > max) {
        let mut head = Vec::new();
        input.take(limits.max_header_bytes).read_to_end(&mut head)?;
        return Ok(too_large(head, known_size.unwrap_or_default()));
    }
    let mut raw = Vec::new();
    input.take(max + 1).read_to_end(&mut raw)?;
    if raw.len() as u64 <= max {
        return Ok(Incoming::Whole(raw));
    }
    // A pipe does not tell its size up front: keep the head, count the
    // rest, so that the sender (an MTA) sees its message taken.
    let rest = std::io::copy(input, &mut std::io::sink())?;
    raw.truncate(limits.max_header_bytes as usize);
    Ok(too_large(raw, max + 1 + rest))
}

fn too_large(mut head: Vec<u8>, size: u64) -> Incoming {
    if let Some(end) = header_end(&head) {
        head.truncate(end);
    }
    Incoming::TooLarge {
        headers: head,
        size,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_maildir_and_an_mbox_give_their_messages_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let maildir = dir.path().join("Maildir");
        for sub in ["new", "cur", "tmp"] {
            std::fs::create_dir_all(maildir.join(sub)).unwrap();
        }
        std::fs::write(maildir.join("new/2.host"), "Subject: b\r\n\r\nB").unwrap();
        std::fs::write(maildir.join("cur/1.host:2,S"), "Subject: a\r\n\r\nA").unwrap();
        std::fs::write(maildir.join("tmp/3.host"), "Subject: half written").unwrap();
        let limits = LimitsSettings::default();
        let got: Vec<String> = messages(&maildir, &limits)
            .map(|(name, read)| match read.unwrap() {
                Incoming::Whole(raw) => format!(
                    "{} {}",
                    name.file_name().unwrap().to_string_lossy(),
                    String::from_utf8(raw).unwrap()
                ),
                Incoming::TooLarge { .. } => panic!("small"),
            })
            .collect();
        assert_eq!(
            got,
            [
                "2.host Subject: b\r\n\r\nB",
                "1.host:2,S Subject: a\r\n\r\nA"
            ]
        );

        let mbox = dir.path().join("archive.mbox");
        std::fs::write(
            &mbox,
            "From a@b.example Mon Nov 23 08:00:00 2026\nSubject: eins\n\nEins\n\n\
             From c@d.example Mon Nov 23 09:00:00 2026\nSubject: zwei\n\nZwei\n",
        )
        .unwrap();
        let got: Vec<(String, String)> = messages(&mbox, &limits)
            .map(|(name, read)| match read.unwrap() {
                Incoming::Whole(raw) => {
                    (name.display().to_string(), String::from_utf8(raw).unwrap())
                }
                Incoming::TooLarge { .. } => panic!("small"),
            })
            .collect();
        assert_eq!(got.len(), 2);
        assert!(got[0].0.ends_with("archive.mbox:1"));
        assert!(got[0].1.starts_with("Subject: eins"), "{:?}", got[0].1);
        assert!(got[1].1.contains("Zwei"));

        let plain = dir.path().join("plain");
        std::fs::create_dir(&plain).unwrap();
        let (_, read) = messages(&plain, &limits).next().unwrap();
        assert!(read.unwrap_err().to_string().contains("not a Maildir"));
    }

    fn limits(max: u64) -> LimitsSettings {
        LimitsSettings {
            max_message_bytes: max,
            max_header_bytes: 64,
            ..Default::default()
        }
    }

    #[test]
    fn small_messages_are_read_whole() {
        let raw = b"From: a@b.example\r\n\r\nHallo".to_vec();
        let read = read_from(&mut raw.as_slice(), &limits(100), None).unwrap();
        assert!(matches!(read, Incoming::Whole(r) if r == raw));
    }

    #[test]
    fn large_ones_only_as_far_as_their_headers() {
        let raw = format!(
            "From: a@b.example\r\nSubject: x\r\n\r\n{}",
            "y".repeat(1_000)
        );
        for size in [Some(raw.len() as u64), None] {
            match read_from(&mut raw.as_bytes(), &limits(100), size).unwrap() {
                Incoming::TooLarge { headers, size } => {
                    assert_eq!(headers, b"From: a@b.example\r\nSubject: x\r\n");
                    assert_eq!(size, raw.len() as u64);
                }
                Incoming::Whole(_) => panic!("read whole"),
            }
        }
    }
}
