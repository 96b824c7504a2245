//! Queues notifications in the outbox, in the caller's transaction, with
//! the headers that make replies thread back (subject tag, Message-ID,
//! In-Reply-To/References).

use rand::Rng;

use crate::domain::thread::SupportAddress;
use crate::store::{self, Conn};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    TicketCreated,
    AgentReply,
    TicketSolved,
    FollowupCreated,
    NotKeyUser,
    AgentNewTicket,
    AgentCustomerReply,
    UrgentTicket,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::TicketCreated => "ticket_created",
            Event::AgentReply => "agent_reply",
            Event::TicketSolved => "ticket_solved",
            Event::FollowupCreated => "followup_created",
            Event::NotKeyUser => "not_key_user",
            Event::AgentNewTicket => "agent_new_ticket",
            Event::AgentCustomerReply => "agent_customer_reply",
            Event::UrgentTicket => "urgent_ticket",
        }
    }

    /// Everything but an agent's own answer is automatic mail
    /// (`Auto-Submitted: auto-generated`, subject to the rate limit).
    pub fn is_automatic(self) -> bool {
        self != Event::AgentReply
    }
}

/// What a notification is about.
pub enum Topic<'a> {
    Ticket {
        id: i64,
        subject: &'a str,
    },
    /// A message that did not become a ticket (the not-key-user notice).
    Message {
        subject: &'a str,
        message_id: &'a str,
    },
}

/// Who gets a notification, and in which language.
#[derive(Debug, Clone, Copy)]
pub struct Recipient<'a> {
    pub address: &'a str,
    pub locale: &'a str,
}

impl<'a> Recipient<'a> {
    pub fn person(person: &'a crate::domain::sender::Person) -> Self {
        Recipient {
            address: &person.email,
            locale: &person.locale,
        }
    }
}

/// How many Message-IDs a References header carries at most.
const MAX_REFERENCES: i64 = 20;

/// Queues one notification and registers its Message-ID for threading.
pub async fn enqueue(
    conn: &mut Conn,
    support: &SupportAddress,
    event: Event,
    topic: Topic<'_>,
    comment_id: Option<i64>,
    to: Recipient<'_>,
    now: i64,
) -> Result<i64, sqlx::Error> {
    let recipients = vec![to.address.to_string()];
    let locale = to.locale;
    match topic {
        Topic::Ticket { id, subject } => {
            let references = store::messages::refs_for_ticket(conn, id, MAX_REFERENCES).await?;
            let message_id = new_message_id(Some(id), event, &support.domain);
            let subject = format!("[#{id}] {}", single_line(subject));
            let outbox_id = store::outbox::enqueue(
                conn,
                store::outbox::NewNotification {
                    event: event.as_str(),
                    ticket_id: Some(id),
                    comment_id,
                    recipients: &recipients,
                    locale,
                    subject: &subject,
                    message_id: &message_id,
                    in_reply_to: references.last().map(String::as_str),
                    references: &references,
                    automatic: event.is_automatic(),
                    now,
                },
            )
            .await?;
            store::messages::add_ref(conn, &message_id, id, now).await?;
            Ok(outbox_id)
        }
        Topic::Message {
            subject,
            message_id: replied_to,
        } => {
            let message_id = new_message_id(None, event, &support.domain);
            let subject = format!("Re: {}", single_line(subject));
            let references = vec![replied_to.to_string()];
            store::outbox::enqueue(
                conn,
                store::outbox::NewNotification {
                    event: event.as_str(),
                    ticket_id: None,
                    comment_id,
                    recipients: &recipients,
                    locale,
                    subject: &subject,
                    message_id: &message_id,
                    in_reply_to: Some(replied_to),
                    references: &references,
                    automatic: event.is_automatic(),
                    now,
                },
            )
            .await
        }
    }
}

/// `<tg.123.ticket_created.9f2c…@example.com>`: unique, and telling in a
/// bounce or a log line which ticket and event it was.
fn new_message_id(ticket: Option<i64>, event: Event, domain: &str) -> String {
    let random: u64 = rand::thread_rng().gen();
    let ticket = ticket.map_or_else(|| "0".to_string(), |id| id.to_string());
    format!("<tg.{ticket}.{}.{random:016x}@{domain}>", event.as_str())
}

/// A customer's subject may carry CR/LF after decoding; a header must not.
pub fn single_line(subject: &str) -> String {
    subject
        .split(['\r', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_lose_line_breaks() {
        assert_eq!(single_line("Hallo\r\nBcc: evil@x\n"), "Hallo Bcc: evil@x");
    }

    #[test]
    fn message_ids_name_ticket_and_event() {
        let id = new_message_id(Some(12), Event::TicketCreated, "example.com");
        assert!(id.starts_with("<tg.12.ticket_created."), "{id}");
        assert!(id.ends_with("@example.com>"));
        assert_ne!(
            id,
            new_message_id(Some(12), Event::TicketCreated, "example.com")
        );
    }
}
