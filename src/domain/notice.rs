//! What a notification says, fixed when its event happens: the event, the
//! recipient, the envelope that threads replies back, and the whole
//! template context. Delivery later only renders and sends it, so a mail
//! tells what was true at its event, not what is true when it goes out.

use serde::{Deserialize, Serialize};

use super::ticket::text_enum;

text_enum! {
    pub enum Event {
        TicketCreated,
        AgentReply,
        TicketSolved,
        FollowupCreated,
        NotKeyUser,
        AgentNewTicket,
        AgentCustomerReply,
        UrgentTicket,
        Invitation,
        PasswordReset,
    }
}

impl Event {
    /// Everything but an agent's own answer is automatic mail
    /// (`Auto-Submitted: auto-generated`, subject to the rate limit).
    pub fn is_automatic(self) -> bool {
        self != Event::AgentReply
    }

    /// Mail about a help center account (SPEC 5): no ticket, no delimiter,
    /// and outside the per-recipient rate limit.
    pub fn is_account(self) -> bool {
        matches!(self, Event::Invitation | Event::PasswordReset)
    }
}

text_enum! {
    pub enum OutboxState {
        Queued,
        Sent,
        Failed,
        Bounced,
        Suppressed,
    }
}

/// Who gets a notification, and in which language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub address: String,
    pub name: String,
    pub locale: String,
}

/// One notification, ready to be queued.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub event: Event,
    pub to: Recipient,
    pub ticket_id: Option<i64>,
    /// The Subject line: `[#12] subject`, or `Re: subject` without a ticket.
    pub subject: String,
    pub message_id: String,
    pub in_reply_to: Option<String>,
    /// The conversation so far, oldest first.
    pub references: Vec<String>,
    /// `support+<token>@…` on ticket mail, so that answers thread back.
    pub reply_to: String,
    pub context: Context,
}

/// What templates see. Fields absent for an event are empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Context {
    pub recipient: PersonRef,
    pub requester: PersonRef,
    pub organization: String,
    pub ticket: Option<TicketRef>,
    pub comment: Option<CommentRef>,
    pub rating: Option<RatingLinks>,
    /// The subject of the customer's message (for notices without ticket).
    pub subject: String,
    pub reopen_days: i64,
    /// An account mail's activation or reset link.
    #[serde(default)]
    pub link: String,
    /// For the notice to a member: who in their organization may write.
    #[serde(default)]
    pub key_users: Vec<PersonRef>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonRef {
    pub name: String,
    pub email: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketRef {
    pub id: i64,
    pub subject: String,
    pub status: String,
    pub status_label: String,
    pub link: String,
    pub category: String,
    pub priority: String,
    pub urgent: bool,
    pub followup_of: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommentRef {
    pub author: String,
    pub body: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RatingLinks {
    pub good: String,
    pub bad: String,
}

/// How many Message-IDs a References header carries at most.
pub const MAX_REFERENCES: usize = 20;

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
    fn only_an_agents_answer_is_not_automatic() {
        for event in <Event as strum::VariantArray>::VARIANTS {
            assert_eq!(event.is_automatic(), *event != Event::AgentReply);
        }
        assert_eq!(Event::AgentNewTicket.as_str(), "agent_new_ticket");
    }
}
