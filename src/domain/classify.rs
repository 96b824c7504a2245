//! Recognising machine mail (our own loops, bounces, auto-replies) before
//! anything else looks at a message: machine mail never opens a ticket,
//! never changes a status and is never answered.

use super::mail::InboundMail;

/// Header ticketgate puts on every mail it sends; seeing it inbound means a
/// loop (e.g. a forwarding rule sending our notification back to support@).
pub const LOOP_HEADER: &str = "X-Ticketgate-Loop";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MachineMail {
    Loop,
    /// A delivery failure; names the Message-IDs it refers to so the
    /// notification can be marked bounced.
    Bounce {
        refers_to: Vec<String>,
    },
    AutoReply,
}

/// Subjects of out-of-office replies, also when the client sends no
/// auto-reply header (Exchange rules, some webmailers).
const OUT_OF_OFFICE_SUBJECTS: &[&str] = &[
    "abwesenheitsnotiz",
    "automatische antwort",
    "out of office",
    "automatic reply",
    "réponse automatique",
];

/// Decides whether a message was written by a machine.
pub fn classify(mail: &InboundMail) -> Option<MachineMail> {
    let loop_header = LOOP_HEADER.to_ascii_lowercase();
    if mail.header(&loop_header).is_some() {
        return Some(MachineMail::Loop);
    }
    if is_bounce(mail) {
        let mut refers_to = mail.embedded_message_ids.clone();
        refers_to.extend(mail.in_reply_to.iter().cloned());
        refers_to.extend(mail.references.iter().cloned());
        refers_to.dedup();
        return Some(MachineMail::Bounce { refers_to });
    }
    if is_auto_reply(mail) {
        return Some(MachineMail::AutoReply);
    }
    None
}

fn is_bounce(mail: &InboundMail) -> bool {
    let null_sender = mail.return_path.as_deref() == Some("");
    let daemon_sender = mail.from.as_deref().is_some_and(|from| {
        let local = from.split('@').next().unwrap_or_default();
        local.eq_ignore_ascii_case("mailer-daemon") || local.eq_ignore_ascii_case("postmaster")
    });
    mail.is_report || null_sender || daemon_sender
}

fn is_auto_reply(mail: &InboundMail) -> bool {
    let auto_submitted = mail
        .header("auto-submitted")
        .is_some_and(|v| !first_word(v).eq_ignore_ascii_case("no"));
    let autoreply_header = mail.header("x-autoreply").is_some()
        || mail.header("x-autorespond").is_some()
        || mail.header("x-autoresponse").is_some();
    let bulk = mail.header("precedence").is_some_and(|v| {
        matches!(
            first_word(v).to_ascii_lowercase().as_str(),
            "bulk" | "junk" | "list" | "auto_reply"
        )
    });
    let subject = mail.subject.to_lowercase();
    let out_of_office = OUT_OF_OFFICE_SUBJECTS.iter().any(|s| subject.contains(s));
    auto_submitted || autoreply_header || bulk || out_of_office
}

fn first_word(value: &str) -> &str {
    value
        .split(|c: char| c == ';' || c.is_whitespace())
        .find(|w| !w.is_empty())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(headers: &[(&str, &str)], subject: &str) -> InboundMail {
        InboundMail {
            from: Some("anna@customer.example".into()),
            subject: subject.into(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_human_mail_is_not_machine_mail() {
        assert_eq!(classify(&mail(&[], "Frage zur Rechnung")), None);
        assert_eq!(
            classify(&mail(&[("auto-submitted", "no")], "Frage")),
            None,
            "Auto-Submitted: no is a human"
        );
    }

    #[test]
    fn auto_reply_headers_are_recognised() {
        for header in [
            ("auto-submitted", "auto-replied"),
            ("auto-submitted", "auto-generated; owner-email=x@y"),
            ("x-autoreply", "yes"),
            ("x-autorespond", "1"),
            ("precedence", "bulk"),
            ("precedence", "Junk"),
            ("precedence", "list"),
        ] {
            assert_eq!(
                classify(&mail(&[header], "Hallo")),
                Some(MachineMail::AutoReply),
                "{header:?}"
            );
        }
    }

    #[test]
    fn out_of_office_subjects_without_headers() {
        for subject in [
            "Abwesenheitsnotiz: Ihre Anfrage",
            "Automatische Antwort: [#1] Login",
            "Out of Office: Re: invoice",
            "Automatic reply: [#4] question",
        ] {
            assert_eq!(
                classify(&mail(&[], subject)),
                Some(MachineMail::AutoReply),
                "{subject}"
            );
        }
    }

    #[test]
    fn our_loop_header_wins() {
        let m = mail(&[("x-ticketgate-loop", "support@example.com")], "[#1] x");
        assert_eq!(classify(&m), Some(MachineMail::Loop));
    }

    #[test]
    fn bounces_by_report_null_sender_or_daemon() {
        let mut report = mail(&[], "Undelivered Mail Returned to Sender");
        report.is_report = true;
        report.embedded_message_ids = vec!["<tg.2.ticket_created.x@example.com>".into()];
        assert_eq!(
            classify(&report),
            Some(MachineMail::Bounce {
                refers_to: vec!["<tg.2.ticket_created.x@example.com>".into()]
            })
        );

        let mut null_sender = mail(&[], "failure notice");
        null_sender.return_path = Some(String::new());
        assert!(matches!(
            classify(&null_sender),
            Some(MachineMail::Bounce { .. })
        ));

        let mut daemon = mail(&[], "Delivery Status Notification");
        daemon.from = Some("MAILER-DAEMON@mx.example.com".into());
        assert!(matches!(
            classify(&daemon),
            Some(MachineMail::Bounce { .. })
        ));
    }
}
