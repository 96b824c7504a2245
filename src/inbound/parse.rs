//! Raw RFC 5322 bytes into an `InboundMail`, with mail-parser doing MIME,
//! charsets and encoded words, within the configured limits. Pure: no I/O.
//!
//! Besides decoding, parsing notes what the rules must not overlook: a
//! sender that cannot be told unambiguously (several From fields or
//! mailboxes, a Sender of another domain), a message beyond a limit (header
//! section, MIME parts), and attachments dropped because there were too
//! many. Attachment names are made safe here, where they are stored.

use mail_parser::{Address, HeaderValue, Message, MessageParser, MimeHeaders, PartType};

use crate::config::LimitsSettings;
use crate::domain::mail::{sha256_hex, Attachment, InboundMail};
use crate::domain::sender::normalize_email;

/// Header fields the rules look at; everything else is left in the raw mail.
const KEPT_HEADERS: &[&str] = &[
    "auto-submitted",
    "x-autoreply",
    "x-autorespond",
    "x-autoresponse",
    "precedence",
    "authentication-results",
    "x-ticketgate-loop",
    "x-ticketgate-ticket",
    "x-ticketgate-event",
];

/// In-Reply-To names one message; a few are tolerated.
const MAX_IN_REPLY_TO: usize = 5;

/// Longest attachment name kept, in bytes (file systems allow 255).
const MAX_FILENAME_BYTES: usize = 150;

/// Whether the header section stays within the limits; the reason if not.
/// A linear scan of the raw bytes, done before any parsing.
pub fn check_header_section(raw: &[u8], limits: &LimitsSettings) -> Result<(), String> {
    let end = header_end(raw).unwrap_or(raw.len());
    if end as u64 > limits.max_header_bytes {
        return Err(format!(
            "header section of {end} bytes exceeds [limits] max_header_bytes = {}",
            limits.max_header_bytes
        ));
    }
    let fields = raw[..end]
        .split(|b| *b == b'\n')
        .filter(|line| {
            line.first()
                .is_some_and(|b| !matches!(b, b' ' | b'\t' | b'\r'))
        })
        .count();
    if fields > limits.max_header_fields {
        return Err(format!(
            "{fields} header fields exceed [limits] max_header_fields = {}",
            limits.max_header_fields
        ));
    }
    Ok(())
}

/// The offset of the blank line that ends the header section.
pub fn header_end(raw: &[u8]) -> Option<usize> {
    let mut at_line_start = true;
    for (i, b) in raw.iter().enumerate() {
        if at_line_start && (*b == b'\n' || (*b == b'\r' && raw.get(i + 1) == Some(&b'\n'))) {
            return Some(i);
        }
        at_line_start = *b == b'\n';
    }
    None
}

/// Parses a raw message. Returns `None` when the bytes are not a message at
/// all (no header section mail-parser can read).
pub fn parse(raw: &[u8], limits: &LimitsSettings) -> Option<InboundMail> {
    let message = MessageParser::default().parse(raw)?;
    if message.headers().is_empty() {
        return None;
    }

    let mut headers = Vec::new();
    let mut recipients: Vec<String> = Vec::new();
    let mut return_path = None;
    let mut from_fields = 0usize;
    let mut sender_fields = 0usize;
    for (name, value) in message.headers_raw() {
        let name = name.to_ascii_lowercase();
        match name.as_str() {
            "from" => from_fields += 1,
            "sender" => sender_fields += 1,
            "delivered-to" | "x-original-to" | "envelope-to" => {
                recipients.push(normalize_email(strip_angles(&unfold(value))))
            }
            "return-path" => return_path = Some(normalize_email(strip_angles(&unfold(value)))),
            _ if KEPT_HEADERS.contains(&name.as_str()) => headers.push((name, unfold(value))),
            _ => {}
        }
    }
    for address in message.all_to().chain(message.all_cc()) {
        for addr in address_list(address) {
            recipients.push(normalize_email(addr));
        }
    }
    recipients.retain(|r| !r.is_empty());
    recipients.dedup();

    let from_addresses: Vec<&str> = message.from().map(address_list).unwrap_or_default();
    let (from, from_name) = match message.from().and_then(Address::first) {
        Some(addr) => (
            addr.address().map(normalize_email),
            addr.name().map(str::to_string),
        ),
        None => (None, None),
    };
    let sender = message
        .sender()
        .and_then(Address::first)
        .and_then(|a| a.address())
        .map(normalize_email);
    let sender_problem = ambiguity(
        from_fields,
        from_addresses.len(),
        sender_fields,
        from.as_deref(),
        sender.as_deref(),
    );

    let text = joined_text(message.text_bodies().filter_map(|p| match &p.body {
        PartType::Text(text) => Some(text.as_ref()),
        _ => None,
    }));
    let html = joined_text(message.html_bodies().filter_map(|p| match &p.body {
        PartType::Html(html) => Some(html.as_ref()),
        _ => None,
    }));
    let (attachments, dropped) = attachments(&message, limits);

    let mut references = id_list(message.references());
    // The newest ones matter for threading; the rest only costs time.
    if references.len() > limits.max_references {
        references.drain(..references.len() - limits.max_references);
    }
    let mut in_reply_to = id_list(message.in_reply_to());
    in_reply_to.truncate(MAX_IN_REPLY_TO);

    Some(InboundMail {
        message_id: message.message_id().map(bracketed),
        from,
        from_name,
        sender_problem,
        return_path,
        recipients,
        subject: message.subject().unwrap_or_default().to_string(),
        in_reply_to,
        references,
        headers,
        is_report: is_report(&message),
        text,
        html,
        attachments,
        dropped_attachments: dropped,
        over_limit: mime_over_limit(&message, limits),
        embedded_message_ids: embedded_message_ids(&message),
    })
}

/// Why the author of a message cannot be told for sure: a receiving server
/// checks one From, a reader might see another.
fn ambiguity(
    from_fields: usize,
    from_mailboxes: usize,
    sender_fields: usize,
    from: Option<&str>,
    sender: Option<&str>,
) -> Option<String> {
    if from_fields > 1 {
        return Some(format!("the message has {from_fields} From fields"));
    }
    if from_mailboxes > 1 {
        return Some(format!("From names {from_mailboxes} mailboxes"));
    }
    if sender_fields > 1 {
        return Some(format!("the message has {sender_fields} Sender fields"));
    }
    let domain = |a: &str| a.rsplit_once('@').map(|(_, d)| d.to_string());
    match (from.and_then(domain), sender.and_then(domain)) {
        (Some(from), Some(sender)) if from != sender => {
            Some(format!("sent by {} on behalf of a From in {from}", sender))
        }
        _ => None,
    }
}

fn mime_over_limit(message: &Message<'_>, limits: &LimitsSettings) -> Option<String> {
    let parts = message.parts.len();
    if parts > limits.max_mime_parts {
        return Some(format!(
            "{parts} MIME parts exceed [limits] max_mime_parts = {}",
            limits.max_mime_parts
        ));
    }
    // Depth of the multipart tree, walked without recursion.
    let mut deepest = 0usize;
    let mut stack = vec![(0usize, 1usize)];
    while let Some((id, depth)) = stack.pop() {
        deepest = deepest.max(depth);
        if let Some(PartType::Multipart(children)) = message.parts.get(id).map(|p| &p.body) {
            stack.extend(children.iter().map(|c| (*c as usize, depth + 1)));
        }
    }
    (deepest > limits.max_mime_depth).then(|| {
        format!(
            "MIME parts nested {deepest} deep exceed [limits] max_mime_depth = {}",
            limits.max_mime_depth
        )
    })
}

fn address_list<'a>(address: &'a Address<'_>) -> Vec<&'a str> {
    match address {
        Address::List(list) => list.iter().filter_map(|a| a.address()).collect(),
        Address::Group(groups) => groups
            .iter()
            .flat_map(|g| g.addresses.iter())
            .filter_map(|a| a.address())
            .collect(),
    }
}

fn strip_angles(value: &str) -> &str {
    let value = value.trim();
    value
        .strip_prefix('<')
        .and_then(|v| v.strip_suffix('>'))
        .unwrap_or(value)
}

fn unfold(value: &str) -> String {
    value
        .split(['\r', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn bracketed(id: &str) -> String {
    format!(
        "<{}>",
        id.trim().trim_start_matches('<').trim_end_matches('>')
    )
}

fn id_list(value: &HeaderValue<'_>) -> Vec<String> {
    match value {
        HeaderValue::Text(id) => vec![bracketed(id)],
        HeaderValue::TextList(ids) => ids.iter().map(|id| bracketed(id)).collect(),
        _ => Vec::new(),
    }
}

fn joined_text<'a>(parts: impl Iterator<Item = &'a str>) -> Option<String> {
    let parts: Vec<&str> = parts.collect();
    (!parts.is_empty()).then(|| parts.join("\n"))
}

fn is_report(message: &Message<'_>) -> bool {
    message.root_part().content_type().is_some_and(|ct| {
        ct.ctype().eq_ignore_ascii_case("multipart")
            && ct
                .subtype()
                .is_some_and(|s| s.eq_ignore_ascii_case("report"))
    })
}

/// The attachments within `max_attachments` and `max_attachment_bytes`, in
/// order; and a line for each one that was dropped.
fn attachments(message: &Message<'_>, limits: &LimitsSettings) -> (Vec<Attachment>, Vec<String>) {
    let mut kept = Vec::new();
    let mut dropped = Vec::new();
    let mut bytes = 0u64;
    for part in message.attachments() {
        let data = part.contents();
        let original = part.attachment_name().unwrap_or_default();
        let filename = safe_filename(original);
        if kept.len() >= limits.max_attachments
            || bytes + data.len() as u64 > limits.max_attachment_bytes
        {
            dropped.push(format!("{filename} ({} bytes)", data.len()));
            continue;
        }
        bytes += data.len() as u64;
        let content_type = part
            .content_type()
            .map(|ct| match ct.subtype() {
                Some(sub) => format!("{}/{}", ct.ctype(), sub),
                None => ct.ctype().to_string(),
            })
            .unwrap_or_else(|| "application/octet-stream".to_string())
            .to_ascii_lowercase();
        kept.push(Attachment {
            original_filename: (original != filename)
                .then(|| original.chars().take(1000).collect()),
            filename,
            content_type,
            sha256: sha256_hex(data),
            data: data.to_vec(),
        });
    }
    (kept, dropped)
}

/// A name that is safe wherever the file may end up (a download, an
/// agent's disk on any system): the last path component, without control,
/// bidi or other invisible format characters, without characters Windows
/// forbids, not a reserved device name, not dots only, at most
/// `MAX_FILENAME_BYTES`, its extension kept.
pub fn safe_filename(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = last
        .chars()
        .filter(|c| !c.is_control() && !is_invisible_format(*c))
        .map(|c| match c {
            '<' | '>' | ':' | '"' | '|' | '?' | '*' => '_',
            c => c,
        })
        .collect();
    // Windows drops trailing dots and spaces, which would change the name.
    let cleaned = cleaned.trim_matches(|c: char| c.is_whitespace() || c == '.');
    let mut name = if cleaned.is_empty() {
        "attachment".to_string()
    } else {
        cleaned.to_string()
    };
    let stem = name
        .split('.')
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase();
    let reserved = matches!(stem.as_str(), "CON" | "PRN" | "AUX" | "NUL")
        || ((stem.starts_with("COM") || stem.starts_with("LPT"))
            && stem.len() == 4
            && stem.as_bytes()[3].is_ascii_digit());
    if reserved {
        name.insert(0, '_');
    }
    if name.len() > MAX_FILENAME_BYTES {
        let extension = name
            .rfind('.')
            .map(|dot| &name[dot..])
            .filter(|e| e.len() <= 16)
            .unwrap_or("")
            .to_string();
        let mut cut = MAX_FILENAME_BYTES - extension.len();
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        name = format!("{}{extension}", &name[..cut]);
    }
    name
}

/// Unicode format characters (category Cf) that hide or reorder what a
/// reader sees: bidi controls ("rechnung\u{202E}fdp.exe" shows as
/// "rechnungexe.pdf"), zero-width characters, tags.
fn is_invisible_format(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{061C}' | '\u{180E}'
        | '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206F}'
        | '\u{FEFF}'
        | '\u{FFF9}'..='\u{FFFB}'
        | '\u{E0000}'..='\u{E007F}')
}

fn embedded_message_ids(message: &Message<'_>) -> Vec<String> {
    let mut ids = Vec::new();
    for part in message.parts.iter().skip(1) {
        match &part.body {
            PartType::Message(inner) => ids.extend(inner.message_id().map(bracketed)),
            PartType::Text(text) if is_headers_part(part) => {
                ids.extend(message_id_lines(text));
            }
            PartType::Binary(bytes) | PartType::InlineBinary(bytes) if is_headers_part(part) => {
                ids.extend(message_id_lines(&String::from_utf8_lossy(bytes)));
            }
            _ => {}
        }
    }
    ids
}

fn is_headers_part(part: &mail_parser::MessagePart<'_>) -> bool {
    part.content_type().is_some_and(|ct| {
        ct.subtype().is_some_and(|s| {
            s.eq_ignore_ascii_case("rfc822-headers") || s.eq_ignore_ascii_case("global-headers")
        })
    })
}

fn message_id_lines(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("message-id")
                .then(|| bracketed(value.trim()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> LimitsSettings {
        LimitsSettings::default()
    }

    #[test]
    fn garbage_is_not_a_message() {
        assert_eq!(parse(b"", &limits()), None);
    }

    #[test]
    fn headers_addresses_and_bodies_are_decoded() {
        let raw = b"From: =?utf-8?q?J=C3=BCrgen?= <Juergen@Customer.EXAMPLE>\r\n\
To: support+billing@example.com\r\n\
Cc: other@example.com\r\n\
Delivered-To: support+12-abc@example.com\r\n\
Return-Path: <>\r\n\
Subject: =?iso-8859-1?q?Pr=FCfung?=\r\n\
Message-ID: abc@host\r\n\
In-Reply-To: <one@x>\r\n\
References: <zero@x>\r\n <one@x>\r\n\
Auto-Submitted: auto-replied\r\n\
Authentication-Results: mx.example.com;\r\n dmarc=fail\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
Hallo\r\n";
        let mail = parse(raw, &limits()).unwrap();
        assert_eq!(mail.from.as_deref(), Some("juergen@customer.example"));
        assert_eq!(mail.from_name.as_deref(), Some("Jürgen"));
        assert_eq!(mail.sender_problem, None);
        assert_eq!(mail.subject, "Prüfung");
        assert_eq!(mail.message_id.as_deref(), Some("<abc@host>"));
        assert_eq!(mail.return_path.as_deref(), Some(""));
        assert_eq!(mail.in_reply_to, vec!["<one@x>"]);
        assert_eq!(mail.references, vec!["<zero@x>", "<one@x>"]);
        assert!(mail
            .recipients
            .contains(&"support+billing@example.com".to_string()));
        assert!(mail
            .recipients
            .contains(&"support+12-abc@example.com".to_string()));
        assert_eq!(mail.header("auto-submitted"), Some("auto-replied"));
        assert_eq!(
            mail.header("authentication-results"),
            Some("mx.example.com; dmarc=fail")
        );
        assert_eq!(mail.text.as_deref().map(str::trim_end), Some("Hallo"));
        assert_eq!(mail.html, None);
    }

    #[test]
    fn html_only_mail_has_no_text_part() {
        let raw = b"From: a@b.example\r\nSubject: x\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Hallo <b>Welt</b></p>\r\n";
        let mail = parse(raw, &limits()).unwrap();
        assert_eq!(mail.text, None);
        assert!(mail.html.unwrap().contains("<b>Welt</b>"));
    }

    #[test]
    fn a_sender_that_cannot_be_told_for_sure_is_noted() {
        let two_fields =
            b"From: evil@evil.example\r\nFrom: anna@acme.example\r\nSubject: x\r\n\r\nx\r\n";
        let mail = parse(two_fields, &limits()).unwrap();
        assert_eq!(
            mail.sender_problem.as_deref(),
            Some("the message has 2 From fields")
        );
        let two_mailboxes =
            b"From: anna@acme.example, evil@evil.example\r\nSubject: x\r\n\r\nx\r\n";
        let mail = parse(two_mailboxes, &limits()).unwrap();
        assert_eq!(
            mail.sender_problem.as_deref(),
            Some("From names 2 mailboxes")
        );
        let on_behalf =
            b"From: anna@acme.example\r\nSender: bot@evil.example\r\nSubject: x\r\n\r\nx\r\n";
        let mail = parse(on_behalf, &limits()).unwrap();
        assert!(mail.sender_problem.unwrap().contains("evil.example"));
        let colleague =
            b"From: anna@acme.example\r\nSender: office@acme.example\r\nSubject: x\r\n\r\nx\r\n";
        assert_eq!(parse(colleague, &limits()).unwrap().sender_problem, None);
    }

    #[test]
    fn addresses_fold_ascii_case_only() {
        let kelvin = "From: bernd.\u{212A}uehn@Acme.example\r\nSubject: x\r\n\r\nx\r\n";
        let mail = parse(kelvin.as_bytes(), &limits()).unwrap();
        assert_eq!(
            mail.from.as_deref(),
            Some("bernd.\u{212A}uehn@acme.example"),
            "the KELVIN SIGN is not a k"
        );
    }

    #[test]
    fn only_the_newest_references_are_kept() {
        let ids: Vec<String> = (0..500).map(|i| format!("<{i}@x>")).collect();
        let raw = format!(
            "From: a@b.example\r\nReferences: {}\r\nSubject: x\r\n\r\nx\r\n",
            ids.join(" ")
        );
        let mail = parse(raw.as_bytes(), &limits()).unwrap();
        assert_eq!(mail.references.len(), limits().max_references);
        assert_eq!(mail.references.last().unwrap(), "<499@x>");
    }

    #[test]
    fn header_sections_beyond_the_limits_are_found_before_parsing() {
        let mut raw = String::from("From: a@b.example\r\n");
        for i in 0..1_500 {
            raw.push_str(&format!("X-Filler-{i}: y\r\n"));
        }
        raw.push_str("\r\nbody\r\n");
        let err = check_header_section(raw.as_bytes(), &limits()).unwrap_err();
        assert!(err.contains("max_header_fields"), "{err}");
        let folded = "From: a@b.example\r\nSubject: x\r\n y\r\n\r\nbody";
        assert!(check_header_section(folded.as_bytes(), &limits()).is_ok());
        assert_eq!(header_end(b"A: b\nC: d\n\nbody"), Some(10));
    }

    #[test]
    fn attachment_names_are_made_safe() {
        for (sent, kept) in [
            ("../../etc/cron.d/evil", "evil"),
            ("C:\\Windows\\System32\\evil.dll", "evil.dll"),
            ("\\\\server\\share\\x.pdf", "x.pdf"),
            (".", "attachment"),
            ("..", "attachment"),
            ("", "attachment"),
            ("rechnung\u{202E}fdp.exe", "rechnungfdp.exe"),
            ("zero\u{200B}width.txt", "zerowidth.txt"),
            ("CON.txt", "_CON.txt"),
            ("lpt1", "_lpt1"),
            ("a<b>c?.txt", "a_b_c_.txt"),
            ("bericht.pdf. ", "bericht.pdf"),
            ("Prüfbericht 2026.pdf", "Prüfbericht 2026.pdf"),
        ] {
            assert_eq!(safe_filename(sent), kept, "{sent:?}");
        }
        let long = format!("{}.pdf", "ä".repeat(2_500));
        let safe = safe_filename(&long);
        assert!(
            safe.len() <= MAX_FILENAME_BYTES && safe.ends_with(".pdf"),
            "{safe}"
        );
    }
}
