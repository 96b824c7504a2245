//! A notification as an RFC 5322 message: the headers that make replies
//! thread back and keep robots from answering, and the two bodies.

use std::time::{Duration, UNIX_EPOCH};

use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::Message;

use crate::domain::classify::LOOP_HEADER;
use crate::outbound::render::Body;
use crate::store::outbox::Due;

/// Everything about one mail but its bodies.
pub struct Envelope<'a> {
    pub row: &'a Due,
    pub from_name: &'a str,
    pub from: &'a str,
    pub now: i64,
}

/// Builds the message. Fails when an address cannot be parsed (a bad
/// address in the directory or config); that row cannot be delivered.
pub fn compose(envelope: &Envelope<'_>, body: &Body) -> Result<Message, String> {
    let row = envelope.row;
    let mailbox = |name: Option<&str>, address: &str| -> Result<Mailbox, String> {
        let address = address
            .parse()
            .map_err(|e| format!("invalid address {address:?}: {e}"))?;
        Ok(Mailbox::new(name.map(str::to_string), address))
    };
    let mut builder = Message::builder()
        .from(mailbox(Some(envelope.from_name), envelope.from)?)
        .reply_to(mailbox(Some(envelope.from_name), &row.reply_to)?)
        .to(mailbox(None, row.to())?)
        .subject(row.subject.as_str())
        .message_id(Some(row.message_id.clone()))
        .date(UNIX_EPOCH + Duration::from_secs(envelope.now.max(0) as u64));
    if let Some(parent) = &row.in_reply_to {
        builder = builder.in_reply_to(parent.clone());
    }
    if !row.refs.is_empty() {
        builder = builder.references(row.refs.clone());
    }
    let mut headers = vec![
        (LOOP_HEADER, envelope.from.to_string()),
        ("X-Ticketgate-Event", row.event.as_str().to_string()),
    ];
    if let Some(ticket) = row.ticket_id {
        headers.push(("X-Ticketgate-Ticket", ticket.to_string()));
    }
    if row.automatic() {
        // RFC 3834: no auto-replies to this; Exchange honours the second.
        headers.push(("Auto-Submitted", "auto-generated".into()));
        headers.push(("X-Auto-Response-Suppress", "All".into()));
    }
    for (name, value) in headers {
        let name = HeaderName::new_from_ascii_str(name);
        builder = builder.raw_header(HeaderValue::new(name, value));
    }
    builder
        .multipart(
            MultiPart::alternative()
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_PLAIN)
                        .body(crlf(&body.text)),
                )
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_HTML)
                        .body(crlf(&body.html)),
                ),
        )
        .map_err(|e| e.to_string())
}

/// CRLF line ends in one pass. lettre converts bare LFs itself, but by
/// inserting into the string one `\r` at a time: quadratic, and a 4 MB
/// comment took a minute.
fn crlf(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 32);
    let mut previous = '\0';
    for c in text.chars() {
        if c == '\n' && previous != '\r' {
            out.push('\r');
        }
        out.push(c);
        previous = c;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::notice::Event;
    use crate::inbound::parse::parse;

    fn row(automatic: bool, subject: &str) -> Due {
        Due {
            id: 7,
            event: if automatic {
                Event::TicketCreated
            } else {
                Event::AgentReply
            },
            ticket_id: Some(12),
            recipients: crate::store::outbox::Addresses(vec!["anna@kunde.example".into()]),
            locale: "de".into(),
            subject: subject.into(),
            message_id: "<tg.12.x.1@example.com>".into(),
            in_reply_to: Some("<c2@kunde.example>".into()),
            refs: "<c1@kunde.example> <c2@kunde.example>".into(),
            reply_to: "support+12-abcdefghijklm@example.com".into(),
            automatic: i64::from(automatic),
            context: "{}".into(),
            attempts: 1,
            created_at: 0,
        }
    }

    fn composed(row: &Due) -> crate::domain::mail::InboundMail {
        let envelope = Envelope {
            row,
            from_name: "Support",
            from: "support@example.com",
            now: 1_795_773_600,
        };
        let body = Body {
            text: "##- Bitte -##\n\nHallo Grüße".into(),
            html: "<p>Hallo</p>".into(),
        };
        let message = compose(&envelope, &body).unwrap();
        parse(&message.formatted(), &Default::default()).unwrap()
    }

    #[test]
    fn headers_thread_and_stop_robots() {
        let mail = composed(&row(true, "[#12] Drucker – geht nicht"));
        assert_eq!(mail.subject, "[#12] Drucker – geht nicht");
        assert_eq!(mail.message_id.as_deref(), Some("<tg.12.x.1@example.com>"));
        assert_eq!(mail.in_reply_to, vec!["<c2@kunde.example>"]);
        assert_eq!(
            mail.references,
            vec!["<c1@kunde.example>", "<c2@kunde.example>"]
        );
        assert_eq!(mail.header("auto-submitted"), Some("auto-generated"));
        assert_eq!(mail.header("x-ticketgate-ticket"), Some("12"));
        assert_eq!(
            mail.header("x-ticketgate-loop"),
            Some("support@example.com")
        );
        let text = mail.text.as_deref().unwrap().replace("\r\n", "\n");
        assert_eq!(text.trim_end(), "##- Bitte -##\n\nHallo Grüße");
        assert!(mail.html.as_deref().unwrap().contains("<p>Hallo</p>"));
        // Our own mail coming back is a loop, never a ticket.
        assert_eq!(
            crate::domain::classify::classify(&mail),
            Some(crate::domain::classify::MachineMail::Loop)
        );
    }

    #[test]
    fn line_ends_become_crlf_once() {
        assert_eq!(crlf("a\nb\r\nc\n"), "a\r\nb\r\nc\r\n");
        assert_eq!(crlf("\n\n"), "\r\n\r\n");
    }

    #[test]
    fn an_agents_answer_is_not_automatic() {
        let mail = composed(&row(false, "[#12] x"));
        assert_eq!(mail.header("auto-submitted"), None);
    }

    #[test]
    fn a_subject_cannot_inject_headers() {
        let mail = composed(&row(true, "[#12] Hallo\r\nBcc: evil@attacker.example"));
        assert!(
            mail.recipients.iter().all(|r| !r.contains("attacker")),
            "{:?}",
            mail.recipients
        );
        assert!(
            mail.subject.contains("Bcc: evil"),
            "kept as subject text: {}",
            mail.subject
        );
    }
}
