//! Queues notifications in the outbox, in the caller's transaction, with
//! the headers that make replies thread back (subject tag, Message-ID,
//! In-Reply-To/References). All notifications one change causes are written
//! together: one statement for the rows, one for their Message-IDs.

use rand::Rng;

use crate::domain::sender::Person;
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

/// Who gets a notification, and in which language.
#[derive(Debug, Clone)]
pub struct Recipient {
    pub address: String,
    pub locale: String,
}

impl Recipient {
    pub fn person(person: &Person) -> Self {
        Recipient {
            address: person.email.clone(),
            locale: person.locale.clone(),
        }
    }
}

/// What the notifications are about.
pub enum Topic<'a> {
    Ticket {
        id: i64,
        subject: &'a str,
    },
    /// A message that did not become a ticket (the not-key-user notice).
    Message {
        subject: &'a str,
    },
}

/// How many Message-IDs a References header carries at most.
pub const MAX_REFERENCES: i64 = 20;

/// The notifications one change causes, queued together.
#[derive(Default)]
pub struct Notifications {
    items: Vec<(Event, Recipient, Option<i64>)>,
}

impl Notifications {
    pub fn add(&mut self, event: Event, to: Recipient, comment_id: Option<i64>) {
        self.items.push((event, to, comment_id));
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Writes the rows. `references` is the conversation so far, oldest
    /// first, ending with the message being answered. For a ticket, the new
    /// Message-IDs are registered for threading together with `also_ref`
    /// (the inbound message that caused them).
    pub async fn enqueue(
        self,
        conn: &mut Conn,
        support: &SupportAddress,
        topic: Topic<'_>,
        references: &[String],
        also_ref: Option<&str>,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        let (ticket_id, subject) = match topic {
            Topic::Ticket { id, subject } => {
                (Some(id), format!("[#{id}] {}", single_line(subject)))
            }
            Topic::Message { subject } => (None, format!("Re: {}", single_line(subject))),
        };
        let message_ids: Vec<String> = self
            .items
            .iter()
            .map(|(event, _, _)| new_message_id(ticket_id, *event, &support.domain))
            .collect();
        let recipients: Vec<Vec<String>> = self
            .items
            .iter()
            .map(|(_, to, _)| vec![to.address.clone()])
            .collect();
        let rows: Vec<store::outbox::NewNotification> = self
            .items
            .iter()
            .zip(&message_ids)
            .zip(&recipients)
            .map(|(((event, to, comment_id), message_id), recipients)| {
                store::outbox::NewNotification {
                    event: event.as_str(),
                    ticket_id,
                    comment_id: *comment_id,
                    recipients,
                    locale: &to.locale,
                    subject: &subject,
                    message_id,
                    in_reply_to: references.last().map(String::as_str),
                    references,
                    automatic: event.is_automatic(),
                    now,
                }
            })
            .collect();
        if !rows.is_empty() {
            store::outbox::enqueue_all(conn, &rows).await?;
        }
        if let Some(ticket_id) = ticket_id {
            let refs: Vec<&str> = also_ref
                .into_iter()
                .chain(message_ids.iter().map(String::as_str))
                .collect();
            store::messages::add_refs(conn, &refs, ticket_id, now).await?;
        }
        Ok(())
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
