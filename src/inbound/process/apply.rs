//! The ticket rules applied: what a message that passed the gates does to
//! a ticket (new, appended, reopened, follow-up, an agent's answer), with
//! its comment, attachments and notifications, on the caller's connection.

use super::{Outcome, Pipeline, PipelineError, Report};
use crate::domain::mail::InboundMail;
use crate::domain::sender::Person;
use crate::domain::thread::ThreadHints;
use crate::domain::ticket::{
    customer_action, is_emergency, parse_agent_commands, status_after_agent_comment,
    CustomerAction, Priority, Status, DEFAULT_CATEGORY,
};
use crate::outbound::enqueue::{Event, Notifications, Recipient, Topic, MAX_REFERENCES};
use crate::store::{self, tickets::Ticket, Conn};

/// A message that got past the gates, with its author.
#[derive(Clone, Copy)]
pub(super) struct Inbound<'a> {
    pub message_id: &'a str,
    pub mail: &'a InboundMail,
    pub person: &'a Person,
    pub hints: &'a ThreadHints,
    pub body: &'a str,
    pub full_text: &'a str,
    pub now: i64,
}

impl Pipeline {
    /// The first hint, in the spec's order, naming a ticket this person may
    /// write on. Foreign or unknown tickets are passed over silently: a
    /// guessed number must not reveal that the ticket exists.
    pub(super) async fn find_ticket(
        &self,
        conn: &mut Conn,
        hints: &ThreadHints,
        person: &Person,
    ) -> Result<Option<Ticket>, sqlx::Error> {
        let mut candidates: Vec<i64> = hints.token_tickets.clone();
        let referenced = store::messages::tickets_for_refs(conn, &hints.referenced_ids).await?;
        candidates.extend(
            hints
                .referenced_ids
                .iter()
                .filter_map(|id| referenced.get(id).copied()),
        );
        candidates.extend(&hints.subject_tickets);
        for id in candidates {
            if let Some(ticket) = store::tickets::get(conn, id).await? {
                if person.may_write_on(ticket.organization_id) {
                    return Ok(Some(ticket));
                }
            }
        }
        Ok(None)
    }

    /// A new ticket (or a follow-up of `followup_of`) with the message as
    /// its first comment.
    pub(super) async fn open_ticket(
        &self,
        conn: &mut Conn,
        inbound: &Inbound<'_>,
        followup_of: Option<&Ticket>,
    ) -> Result<Report, PipelineError> {
        let now = inbound.now;
        let subject = match followup_of {
            Some(old) => old.subject.clone(),
            None if inbound.mail.subject.trim().is_empty() => "(no subject)".to_string(),
            None => inbound.mail.subject.clone(),
        };
        let category = inbound
            .hints
            .category_tags
            .iter()
            .find_map(|tag| self.settings.category_for_tag(tag))
            .or(followup_of.map(|old| old.category.as_str()))
            .unwrap_or(DEFAULT_CATEGORY);
        let urgent = is_emergency(
            &inbound.mail.subject,
            &self.settings.policy.emergency_markers,
        );
        let priority = if urgent {
            Priority::Urgent
        } else {
            Priority::Normal
        };
        let id = store::tickets::create(
            conn,
            store::tickets::NewTicket {
                subject: &subject,
                organization_id: inbound.person.organization_id,
                requester_id: inbound.person.id,
                category,
                priority: priority.as_str(),
                status: Status::Open,
                followup_of: followup_of.map(|t| t.id),
                now,
            },
        )
        .await?;
        let comment_id = self
            .add_comment(conn, id, inbound, inbound.body, true)
            .await?;

        let (event, outcome) = match followup_of {
            Some(_) => (Event::FollowupCreated, Outcome::Followup),
            None => (Event::TicketCreated, Outcome::Created),
        };
        let mut notifications = Notifications::default();
        notifications.add(event, Recipient::person(inbound.person), Some(comment_id));
        self.add_team(&mut notifications, Event::AgentNewTicket, comment_id);
        if urgent {
            self.add_oncall(&mut notifications, comment_id);
        }
        let topic = Topic::Ticket {
            id,
            subject: &subject,
        };
        let references = [inbound.message_id.to_string()];
        notifications
            .enqueue(
                conn,
                &self.support,
                topic,
                &references,
                Some(inbound.message_id),
                now,
            )
            .await?;

        let mut report = Report::new(inbound.message_id, outcome).on_ticket(id, Status::Open);
        report.followup_of = followup_of.map(|t| t.id);
        Ok(report)
    }

    pub(super) async fn customer_writes(
        &self,
        conn: &mut Conn,
        inbound: &Inbound<'_>,
        ticket: Ticket,
    ) -> Result<Report, PipelineError> {
        let now = inbound.now;
        let action = customer_action(
            ticket.status,
            ticket.solved_at,
            now,
            self.settings.policy.reopen_days,
        );
        if action == CustomerAction::FollowUp {
            return self.open_ticket(conn, inbound, Some(&ticket)).await;
        }
        let comment_id = self
            .add_comment(conn, ticket.id, inbound, inbound.body, true)
            .await?;
        if ticket.status != Status::Open {
            store::tickets::set_status(conn, ticket.id, Status::Open, now).await?;
        }
        let mut notifications = Notifications::default();
        self.add_team(&mut notifications, Event::AgentCustomerReply, comment_id);
        let escalated = ticket.priority != Priority::Urgent.as_str()
            && is_emergency(
                &inbound.mail.subject,
                &self.settings.policy.emergency_markers,
            );
        if escalated {
            store::tickets::set_priority(conn, ticket.id, Priority::Urgent.as_str()).await?;
            self.add_oncall(&mut notifications, comment_id);
        }
        self.enqueue_on_ticket(conn, notifications, &ticket, Some(inbound.message_id), now)
            .await?;
        let outcome = match action {
            CustomerAction::Reopen => Outcome::Reopened,
            _ => Outcome::Appended,
        };
        Ok(Report::new(inbound.message_id, outcome).on_ticket(ticket.id, Status::Open))
    }

    /// An agent answering by mail: commands first, then the comment. A
    /// closed ticket accepts no comments, so the answer opens a follow-up
    /// for the same requester.
    pub(super) async fn agent_writes(
        &self,
        conn: &mut Conn,
        inbound: &Inbound<'_>,
        ticket: Ticket,
    ) -> Result<Report, PipelineError> {
        let now = inbound.now;
        let (commands, body) = parse_agent_commands(inbound.body);
        let (ticket, outcome) = if ticket.status == Status::Closed {
            let id = store::tickets::create(
                conn,
                store::tickets::NewTicket {
                    subject: &ticket.subject,
                    organization_id: ticket.organization_id,
                    requester_id: ticket.requester_id,
                    category: &ticket.category,
                    priority: &ticket.priority,
                    status: Status::Open,
                    followup_of: Some(ticket.id),
                    now,
                },
            )
            .await?;
            let new = store::tickets::get(conn, id)
                .await?
                .ok_or(sqlx::Error::RowNotFound)?;
            (new, Outcome::Followup)
        } else {
            (ticket, Outcome::Appended)
        };

        let public = !commands.internal;
        let comment_id = self
            .add_comment(conn, ticket.id, inbound, &body, public)
            .await?;
        let status = status_after_agent_comment(ticket.status, &commands);
        if status != ticket.status {
            store::tickets::set_status(conn, ticket.id, status, now).await?;
        }
        if commands.urgent && ticket.priority != Priority::Urgent.as_str() {
            store::tickets::set_priority(conn, ticket.id, Priority::Urgent.as_str()).await?;
        }
        self.answer_requester(
            conn,
            &ticket,
            Some(comment_id),
            public,
            status,
            Some(inbound.message_id),
            now,
        )
        .await?;
        let mut report = Report::new(inbound.message_id, outcome).on_ticket(ticket.id, status);
        report.followup_of = ticket.followup_of.filter(|_| outcome == Outcome::Followup);
        Ok(report)
    }

    /// Queues what the requester hears of an agent's change: a public
    /// answer, and a solve with the rating request. `inbound` is the
    /// agent's mail, when the change came by mail.
    #[allow(clippy::too_many_arguments)]
    pub async fn answer_requester(
        &self,
        conn: &mut Conn,
        ticket: &Ticket,
        comment_id: Option<i64>,
        public: bool,
        status: Status,
        inbound: Option<&str>,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        let requester = store::directory::person_by_id(conn, ticket.requester_id)
            .await?
            .ok_or(sqlx::Error::RowNotFound)?;
        let mut notifications = Notifications::default();
        if public {
            notifications.add(Event::AgentReply, Recipient::person(&requester), comment_id);
        }
        if status == Status::Solved && ticket.status != Status::Solved {
            notifications.add(
                Event::TicketSolved,
                Recipient::person(&requester),
                comment_id,
            );
        }
        self.enqueue_on_ticket(conn, notifications, ticket, inbound, now)
            .await
    }

    /// Queues notifications on an existing ticket, threaded after its
    /// conversation so far (and after `inbound`, the mail that caused them).
    async fn enqueue_on_ticket(
        &self,
        conn: &mut Conn,
        notifications: Notifications,
        ticket: &Ticket,
        inbound: Option<&str>,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        let mut references =
            store::messages::refs_for_ticket(conn, ticket.id, MAX_REFERENCES).await?;
        if let Some(inbound) = inbound {
            references.push(inbound.to_string());
        }
        let topic = Topic::Ticket {
            id: ticket.id,
            subject: &ticket.subject,
        };
        notifications
            .enqueue(conn, &self.support, topic, &references, inbound, now)
            .await
    }

    async fn add_comment(
        &self,
        conn: &mut Conn,
        ticket_id: i64,
        inbound: &Inbound<'_>,
        body: &str,
        public: bool,
    ) -> Result<i64, PipelineError> {
        let comment_id = store::tickets::add_comment(
            conn,
            store::tickets::NewComment {
                ticket_id,
                author_id: inbound.person.id,
                public,
                body,
                full_text: inbound.full_text,
                message_id: Some(inbound.message_id),
                now: inbound.now,
            },
        )
        .await?;
        for attachment in &inbound.mail.attachments {
            self.blobs.put(&attachment.sha256, &attachment.data)?;
            store::tickets::add_attachment(conn, comment_id, attachment).await?;
        }
        Ok(comment_id)
    }

    fn add_team(&self, notifications: &mut Notifications, event: Event, comment_id: i64) {
        if let Some(team) = &self.settings.mail.agents_address {
            notifications.add(event, self.staff(team), Some(comment_id));
        }
    }

    fn add_oncall(&self, notifications: &mut Notifications, comment_id: i64) {
        if let Some(oncall) = &self.settings.mail.oncall_address {
            notifications.add(Event::UrgentTicket, self.staff(oncall), Some(comment_id));
        }
    }

    fn staff(&self, address: &str) -> Recipient {
        Recipient {
            address: address.to_string(),
            locale: self.settings.mail.default_locale.clone(),
        }
    }
}
