//! Raw RFC 5322 bytes into an `InboundMail`, with mail-parser doing MIME,
//! charsets and encoded words. Pure: no I/O.

use mail_parser::{Address, HeaderValue, Message, MessageParser, MimeHeaders, PartType};

use crate::domain::mail::{Attachment, InboundMail};

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

/// Parses a raw message. Returns `None` when the bytes are not a message at
/// all (no header section mail-parser can read).
pub fn parse(raw: &[u8]) -> Option<InboundMail> {
    let message = MessageParser::default().parse(raw)?;
    if message.headers().is_empty() {
        return None;
    }

    let (from, from_name) = match message.from().and_then(Address::first) {
        Some(addr) => (
            addr.address().map(normalize_address),
            addr.name().map(str::to_string),
        ),
        None => (None, None),
    };

    let mut headers = Vec::new();
    let mut recipients: Vec<String> = Vec::new();
    let mut return_path = None;
    for (name, value) in message.headers_raw() {
        let name = name.to_ascii_lowercase();
        let value = unfold(value);
        match name.as_str() {
            "delivered-to" | "x-original-to" | "envelope-to" => {
                recipients.push(normalize_address(strip_angles(&value)))
            }
            "return-path" => return_path = Some(normalize_address(strip_angles(&value))),
            _ if KEPT_HEADERS.contains(&name.as_str()) => headers.push((name, value)),
            _ => {}
        }
    }
    for address in message.all_to().chain(message.all_cc()) {
        for addr in address_list(address) {
            recipients.push(normalize_address(addr));
        }
    }
    recipients.retain(|r| !r.is_empty());
    recipients.dedup();

    let text = joined_text(message.text_bodies().filter_map(|p| match &p.body {
        PartType::Text(text) => Some(text.as_ref()),
        _ => None,
    }));
    let html = joined_text(message.html_bodies().filter_map(|p| match &p.body {
        PartType::Html(html) => Some(html.as_ref()),
        _ => None,
    }));

    Some(InboundMail {
        message_id: message.message_id().map(bracketed),
        from,
        from_name,
        return_path,
        recipients,
        subject: message.subject().unwrap_or_default().to_string(),
        in_reply_to: id_list(message.in_reply_to()),
        references: id_list(message.references()),
        headers,
        is_report: is_report(&message),
        text,
        html,
        attachments: attachments(&message),
        embedded_message_ids: embedded_message_ids(&message),
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

fn normalize_address(address: &str) -> String {
    address.trim().to_lowercase()
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

fn attachments(message: &Message<'_>) -> Vec<Attachment> {
    message
        .attachments()
        .map(|part| {
            let content_type = part
                .content_type()
                .map(|ct| match ct.subtype() {
                    Some(sub) => format!("{}/{}", ct.ctype(), sub),
                    None => ct.ctype().to_string(),
                })
                .unwrap_or_else(|| "application/octet-stream".to_string())
                .to_ascii_lowercase();
            let filename = part
                .attachment_name()
                .map(sanitize_filename)
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "attachment".to_string());
            Attachment {
                filename,
                content_type,
                data: part.contents().to_vec(),
            }
        })
        .collect()
}

/// The name is shown to agents, never used as a path; still, control
/// characters have no place in it.
fn sanitize_filename(name: &str) -> String {
    name.chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim()
        .to_string()
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

    #[test]
    fn garbage_is_not_a_message() {
        assert_eq!(parse(b""), None);
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
        let mail = parse(raw).unwrap();
        assert_eq!(mail.from.as_deref(), Some("juergen@customer.example"));
        assert_eq!(mail.from_name.as_deref(), Some("Jürgen"));
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
        let mail = parse(raw).unwrap();
        assert_eq!(mail.text, None);
        assert!(mail.html.unwrap().contains("<b>Welt</b>"));
    }
}
