//! Messages from files and standard input, for `ingest`: each read within
//! `[limits] max_message_bytes`. A larger message is read only as far as its
//! header section (and stdin drained), so that no single message can take
//! the memory of the whole batch. I/O only.

use std::io::Read;
use std::path::Path;

use crate::config::LimitsSettings;
use crate::inbound::parse::header_end;

/// A message as read from its file.
pub enum Incoming {
    Whole(Vec<u8>),
    /// Over `max_message_bytes`: its header section (at most
    /// `max_header_bytes`) and its size.
    TooLarge {
        headers: Vec<u8>,
        size: u64,
    },
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
