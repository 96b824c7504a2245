//! Decisions: what one message, or one act in the CLI or the help center,
//! means — its outcome, the ticket and comment it writes, who is told — as
//! one value, computed from the facts of a [`World`] without any I/O. The
//! store carries decisions out (`store::write`), the caller reports them.
//!
//! Mail, CLI and web are three doors into the same functions: [`admit`]
//! (the gates of SPEC section 2), then [`decide_mail`], or directly
//! [`open_ticket`], [`customer_comment`], [`agent_comment`] and [`solve`].

use std::collections::{BTreeMap, HashMap};

use rand::{Rng, SeedableRng};

use super::classify::{classify, MachineMail};
use super::mail::{Attachment, InboundMail};
use super::notice::{
    single_line, CommentRef, Context, Event, Notice, PersonRef, RatingLinks, Recipient, TicketRef,
    MAX_REFERENCES,
};
use super::sender::{authenticate, Distrust, Person, Role};
use super::thread::{SupportAddress, ThreadHints, TokenSigner, REPLY_PURPOSE};
use super::ticket::{
    customer_action, status_after_agent_comment, text_enum, AgentCommands, Category,
    CustomerAction, Priority, Status, Ticket,
};

text_enum! {
    pub enum Outcome {
        Created,
        Appended,
        Reopened,
        Followup,
        Suspended,
        Ignored,
        Duplicate,
    }
}

text_enum! {
    pub enum Reason {
        SpoofSuspected,
        AmbiguousSender,
        NotKeyUser,
        UnknownSender,
        AutoReply,
        Bounce,
        Loop,
        OverLimit,
        Unreadable,
        ProcessingError,
    }
}

/// The rules' settings, from the configuration.
#[derive(Debug, Clone)]
pub struct Policy {
    pub support: SupportAddress,
    pub signer: TokenSigner,
    /// Ticket and rating links: `{base_url}/tickets/{id}`.
    pub base_url: String,
    pub trusted_authserv_ids: Vec<String>,
    /// Plus-address tag → category.
    pub categories: BTreeMap<String, Category>,
    /// The category of the mailbox the mail arrived in, for mail whose
    /// plus-address chose none.
    pub mailbox_category: Option<Category>,
    pub emergency_markers: Vec<String>,
    pub reopen_days: i64,
    pub agents_address: Option<String>,
    pub oncall_address: Option<String>,
    /// Locale of mail to addresses outside the directory.
    pub default_locale: String,
}

/// What a decision writes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Writes {
    /// The ticket's state afterwards, new or changed.
    pub ticket: Option<Ticket>,
    pub comment: Option<Comment>,
    pub notices: Vec<Notice>,
    /// Message-IDs that thread into a ticket from now on.
    pub refs: Vec<(String, i64)>,
    /// The message is kept whole in the suspended queue.
    pub suspend: bool,
    /// Our notifications a bounce names: marked `bounced`.
    pub bounced: Vec<String>,
    /// People who follow a ticket from now on: (ticket, person id).
    pub followers: Vec<(i64, i64)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Comment {
    pub id: i64,
    pub ticket_id: i64,
    pub author_id: i64,
    pub public: bool,
    pub body: String,
    pub full_text: String,
    pub message_id: Option<String>,
    pub created_at: i64,
    pub attachments: Vec<Attachment>,
}

/// What a message or an act means.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub outcome: Outcome,
    pub reason: Option<Reason>,
    /// For a suspension: what exactly was wrong.
    pub detail: Option<String>,
    /// The ticket the outcome names, with its status afterwards.
    pub ticket: Option<(i64, Status)>,
    pub followup_of: Option<i64>,
    pub writes: Writes,
}

impl Decision {
    pub fn suspended(reason: Reason, detail: Option<String>) -> Decision {
        Decision {
            outcome: Outcome::Suspended,
            reason: Some(reason),
            detail,
            ticket: None,
            followup_of: None,
            writes: Writes {
                suspend: true,
                ..Default::default()
            },
        }
    }

    fn ignored(reason: Reason) -> Decision {
        Decision {
            outcome: Outcome::Ignored,
            reason: Some(reason),
            detail: None,
            ticket: None,
            followup_of: None,
            writes: Writes::default(),
        }
    }

    fn on(outcome: Outcome, ticket: &Ticket, writes: Writes) -> Decision {
        Decision {
            outcome,
            reason: None,
            detail: None,
            ticket: Some((ticket.id, ticket.status)),
            followup_of: None,
            writes,
        }
    }
}

/// Why an act of the CLI or the help center is not done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("ticket #{0} does not exist")]
    NoSuchTicket(i64),
    #[error("ticket #{0} is closed and accepts no comments")]
    Closed(i64),
    #[error("{0} may not do this")]
    NotAllowed(String),
    #[error("the rating link is not valid")]
    InvalidLink,
    #[error("ticket #{0} is no longer solved (reopened, solved again or closed)")]
    NotRateable(i64),
}

/// The facts decisions are made from: the people, tickets and threading
/// references a batch of messages can touch, loaded in one read, plus what
/// earlier decisions of the same batch changed.
#[derive(Debug)]
pub struct World {
    /// By address (`sender::normalize_email`).
    pub people: HashMap<String, Person>,
    pub people_by_id: HashMap<i64, Person>,
    pub organizations: HashMap<i64, String>,
    /// The key users of the organizations of members among the people (the
    /// notice to a member names them).
    pub key_users: HashMap<i64, Vec<Person>>,
    pub tickets: HashMap<i64, Ticket>,
    /// Message-ID → the ticket it threads into.
    pub refs: HashMap<String, i64>,
    /// The newest references of each ticket, oldest first.
    pub chains: HashMap<i64, Vec<String>>,
    /// Who follows each ticket besides its requester (person ids).
    pub followers: HashMap<i64, Vec<i64>>,
    pub next_ticket_id: i64,
    pub next_comment_id: i64,
    random: rand::rngs::StdRng,
}

impl World {
    /// An empty world whose next ids are these; `seed` makes the
    /// Message-IDs it invents repeatable (tests), `None` takes entropy.
    pub fn new(next_ticket_id: i64, next_comment_id: i64, seed: Option<u64>) -> World {
        World {
            people: HashMap::new(),
            people_by_id: HashMap::new(),
            organizations: HashMap::new(),
            key_users: HashMap::new(),
            tickets: HashMap::new(),
            refs: HashMap::new(),
            chains: HashMap::new(),
            followers: HashMap::new(),
            next_ticket_id,
            next_comment_id,
            random: match seed {
                Some(seed) => rand::rngs::StdRng::seed_from_u64(seed),
                None => rand::rngs::StdRng::from_entropy(),
            },
        }
    }

    pub fn add_person(&mut self, person: Person) {
        self.people_by_id.insert(person.id, person.clone());
        self.people.insert(person.email.clone(), person);
    }

    pub fn person(&self, email: &str) -> Option<&Person> {
        self.people.get(email)
    }

    /// Carries a decision's writes into the world, so that the next
    /// message of the batch sees them.
    pub fn absorb(&mut self, decision: &Decision) {
        let writes = &decision.writes;
        for (ticket, person) in &writes.followers {
            let followers = self.followers.entry(*ticket).or_default();
            if !followers.contains(person) {
                followers.push(*person);
            }
        }
        if let Some(ticket) = &writes.ticket {
            self.tickets.insert(ticket.id, ticket.clone());
        }
        for (message_id, ticket) in &writes.refs {
            if self.refs.insert(message_id.clone(), *ticket).is_none() {
                let chain = self.chains.entry(*ticket).or_default();
                chain.push(message_id.clone());
                if chain.len() > MAX_REFERENCES {
                    chain.remove(0);
                }
            }
        }
    }

    /// `<tg.123.ticket_created.9f2c…@example.com>`: unique, and telling in
    /// a bounce or a log line which ticket and event it was.
    fn message_id(&mut self, ticket: Option<i64>, event: Event, domain: &str) -> String {
        let random: u64 = self.random.gen();
        let ticket = ticket.map_or_else(|| "0".to_string(), |id| id.to_string());
        format!("<tg.{ticket}.{}.{random:016x}@{domain}>", event.as_str())
    }

    fn take_ticket_id(&mut self) -> i64 {
        let id = self.next_ticket_id;
        self.next_ticket_id += 1;
        id
    }

    fn take_comment_id(&mut self) -> i64 {
        let id = self.next_comment_id;
        self.next_comment_id += 1;
        id
    }

    /// The first ticket of `candidates` that `person` may write on.
    /// Foreign or unknown tickets are passed over silently: a guessed
    /// number must not reveal that the ticket exists.
    fn writable_ticket(&self, candidates: &[i64], person: &Person) -> Option<Ticket> {
        candidates
            .iter()
            .filter_map(|id| self.tickets.get(id))
            .find(|t| person.may_write_on(t.organization_id))
            .cloned()
    }
}

/// The gates of SPEC section 2, in order: machine mail, authentication,
/// authorization. `Ok` gives the author of a mail that may go on; `Err` is
/// what becomes of it instead. Nothing here needs the body.
pub fn admit(
    world: &mut World,
    policy: &Policy,
    mail: &InboundMail,
    message_id: &str,
) -> Result<Person, Box<Decision>> {
    if let Some(machine) = classify(mail) {
        return Err(Box::new(match machine {
            MachineMail::Loop => Decision::ignored(Reason::Loop),
            MachineMail::AutoReply => Decision::ignored(Reason::AutoReply),
            MachineMail::Bounce { refers_to } => {
                let mut decision = Decision::ignored(Reason::Bounce);
                decision.writes.bounced = refers_to;
                decision
            }
        }));
    }
    match authenticate(mail, &policy.trusted_authserv_ids) {
        Some(Distrust::Spoofed) => {
            return Err(Box::new(Decision::suspended(Reason::SpoofSuspected, None)))
        }
        Some(Distrust::Ambiguous(why)) => {
            return Err(Box::new(Decision::suspended(
                Reason::AmbiguousSender,
                Some(why),
            )))
        }
        None => {}
    }
    let Some(person) = mail.from.as_deref().and_then(|f| world.person(f)).cloned() else {
        return Err(Box::new(Decision::suspended(Reason::UnknownSender, None)));
    };
    if person.role == Role::Member {
        let mut decision = Decision::suspended(Reason::NotKeyUser, None);
        let to = recipient_of(&person);
        let context = Context {
            recipient: PersonRef {
                name: to.name.clone(),
                email: to.address.clone(),
            },
            subject: mail.subject.clone(),
            reopen_days: policy.reopen_days,
            key_users: world
                .key_users
                .get(&person.organization_id)
                .into_iter()
                .flatten()
                .map(|k| PersonRef {
                    name: k.name.clone(),
                    email: k.email.clone(),
                })
                .collect(),
            ..Default::default()
        };
        decision.writes.notices.push(Notice {
            event: Event::NotKeyUser,
            message_id: world.message_id(None, Event::NotKeyUser, &policy.support.domain),
            to,
            ticket_id: None,
            subject: format!("Re: {}", single_line(&mail.subject)),
            in_reply_to: Some(message_id.to_string()),
            references: vec![message_id.to_string()],
            reply_to: policy.support.plain(),
            context,
        });
        return Err(Box::new(decision));
    }
    Ok(person)
}

/// What somebody adds: a new request, or a comment on a ticket.
#[derive(Debug, Clone)]
pub struct Contribution {
    pub author: Person,
    /// The subject as written (a new ticket's subject, and where the
    /// emergency markers are looked for).
    pub subject: String,
    pub body: String,
    /// The whole original text (the mail's, with the quoted history).
    pub full_text: String,
    pub attachments: Vec<Attachment>,
    /// The mail's Message-ID, when it came by mail.
    pub message_id: Option<String>,
    /// The category chosen (plus-address tag, or the help center's form).
    pub category: Option<Category>,
    /// An emergency marker in the subject, or the emergency box.
    pub urgent: bool,
    /// The other addresses the mail was sent to (To, Cc): colleagues of the
    /// ticket's organization among them follow it.
    pub cc: Vec<String>,
}

/// A mail that got past the gates: threaded by its `hints` (first match
/// wins, and only into a ticket its author may write on; its plus-address
/// tags choose the category), then the ticket rules.
pub fn decide_mail(
    world: &mut World,
    policy: &Policy,
    hints: &ThreadHints,
    mut contribution: Contribution,
    now: i64,
) -> Decision {
    contribution.category = contribution.category.or_else(|| {
        hints
            .category_tags
            .iter()
            .find_map(|tag| policy.categories.get(tag).copied())
    });
    let mut candidates = hints.token_tickets.clone();
    candidates.extend(
        hints
            .referenced_ids
            .iter()
            .filter_map(|id| world.refs.get(id).copied()),
    );
    candidates.extend(&hints.subject_tickets);
    let ticket = world.writable_ticket(&candidates, &contribution.author);
    match (contribution.author.role, ticket) {
        (Role::Agent, Some(ticket)) => {
            let (commands, body) = super::ticket::parse_agent_commands(&contribution.body);
            let contribution = Contribution {
                body,
                ..contribution
            };
            agent_writes(world, policy, contribution, ticket, &commands, now)
        }
        (_, Some(ticket)) => customer_writes(world, policy, contribution, ticket, now),
        (_, None) => new_ticket(world, policy, contribution, None, now),
    }
}

/// A new request (mail without a thread, or the help center's form),
/// possibly the follow-up of a closed ticket.
pub fn open_ticket(
    world: &mut World,
    policy: &Policy,
    contribution: Contribution,
    followup_of: Option<i64>,
    now: i64,
) -> Result<Decision, Refusal> {
    let old = match followup_of {
        Some(id) => Some(
            world
                .tickets
                .get(&id)
                .filter(|t| contribution.author.may_read(t.organization_id))
                .cloned()
                .ok_or(Refusal::NoSuchTicket(id))?,
        ),
        None => None,
    };
    if !matches!(contribution.author.role, Role::KeyUser | Role::Agent) {
        return Err(Refusal::NotAllowed(contribution.author.email.clone()));
    }
    Ok(new_ticket(world, policy, contribution, old, now))
}

/// A key user's comment on a ticket of theirs (by the help center; a mail
/// goes through [`decide_mail`]): appended, reopened, or a follow-up.
pub fn customer_comment(
    world: &mut World,
    policy: &Policy,
    contribution: Contribution,
    ticket_id: i64,
    now: i64,
) -> Result<Decision, Refusal> {
    // A ticket the author may not see does not exist for them.
    let ticket = world
        .tickets
        .get(&ticket_id)
        .filter(|t| contribution.author.may_read(t.organization_id))
        .cloned()
        .ok_or(Refusal::NoSuchTicket(ticket_id))?;
    if contribution.author.role == Role::Member {
        return Err(Refusal::NotAllowed(contribution.author.email.clone()));
    }
    if ticket.status == super::ticket::Status::Closed {
        return Err(Refusal::Closed(ticket_id));
    }
    Ok(customer_writes(world, policy, contribution, ticket, now))
}

/// An agent's answer from the CLI or the help center: the same rules as by
/// mail, but a closed ticket refuses it.
pub fn agent_comment(
    world: &mut World,
    policy: &Policy,
    contribution: Contribution,
    ticket_id: i64,
    commands: &AgentCommands,
    now: i64,
) -> Result<Decision, Refusal> {
    if contribution.author.role != Role::Agent {
        return Err(Refusal::NotAllowed(contribution.author.email.clone()));
    }
    let ticket = world
        .tickets
        .get(&ticket_id)
        .cloned()
        .ok_or(Refusal::NoSuchTicket(ticket_id))?;
    if ticket.status == Status::Closed {
        return Err(Refusal::Closed(ticket_id));
    }
    Ok(agent_writes(
        world,
        policy,
        contribution,
        ticket,
        commands,
        now,
    ))
}

/// Solving (an agent, or the requester by the ticket link): the solved
/// notice with its rating links. Solving a solved ticket changes nothing.
pub fn solve(
    world: &mut World,
    policy: &Policy,
    ticket_id: i64,
    now: i64,
) -> Result<Decision, Refusal> {
    let ticket = world
        .tickets
        .get(&ticket_id)
        .cloned()
        .ok_or(Refusal::NoSuchTicket(ticket_id))?;
    match ticket.status {
        Status::Closed => Err(Refusal::Closed(ticket_id)),
        Status::Solved => Ok(Decision::on(Outcome::Appended, &ticket, Writes::default())),
        Status::Open | Status::Pending => {
            let solved = ticket.with_status(Status::Solved, now);
            let mut writes = Writes {
                ticket: Some(solved.clone()),
                ..Default::default()
            };
            let requester = world.people_by_id.get(&solved.requester_id).cloned();
            if let Some(requester) = requester {
                let notice = ticket_notice(
                    world,
                    policy,
                    Event::TicketSolved,
                    recipient_of(&requester),
                    &solved,
                    None,
                    None,
                );
                writes.push_notice(notice);
            }
            let decision = Decision::on(Outcome::Appended, &solved, writes);
            world.absorb(&decision);
            Ok(decision)
        }
    }
}

/// Solving by a person in the help center: the requester's organization's
/// key users and agents may, members may not; a ticket the person may not
/// see does not exist for them.
pub fn solve_as(
    world: &mut World,
    policy: &Policy,
    email: &str,
    ticket_id: i64,
    now: i64,
) -> Result<Decision, Refusal> {
    let person = world
        .person(email)
        .cloned()
        .ok_or_else(|| Refusal::NotAllowed(email.to_string()))?;
    let ticket = world
        .tickets
        .get(&ticket_id)
        .filter(|t| person.may_read(t.organization_id))
        .ok_or(Refusal::NoSuchTicket(ticket_id))?;
    if !person.may_write_on(ticket.organization_id) {
        return Err(Refusal::NotAllowed(person.email));
    }
    solve(world, policy, ticket_id, now)
}

fn new_ticket(
    world: &mut World,
    policy: &Policy,
    contribution: Contribution,
    followup_of: Option<Ticket>,
    now: i64,
) -> Decision {
    let id = world.take_ticket_id();
    let subject = match &followup_of {
        Some(old) => old.subject.clone(),
        None if contribution.subject.trim().is_empty() => "(no subject)".to_string(),
        None => contribution.subject.clone(),
    };
    // Chosen (plus-address, form), else the old ticket's, else the
    // mailbox's.
    let category = contribution
        .category
        .or(followup_of.as_ref().map(|old| old.category))
        .or(policy.mailbox_category)
        .unwrap_or_default();
    let author = contribution.author.clone();
    let ticket = Ticket {
        id,
        subject,
        organization_id: author.organization_id,
        requester_id: author.id,
        category,
        priority: if contribution.urgent {
            Priority::Urgent
        } else {
            Priority::Normal
        },
        status: Status::Open,
        followup_of: followup_of.as_ref().map(|t| t.id),
        rating: None,
        rating_comment: None,
        created_at: now,
        updated_at: now,
        solved_at: None,
        closed_at: None,
        solve_count: 0,
    };
    let inbound = contribution.message_id.clone();
    let followers = new_followers(world, &ticket, &contribution.cc);
    let comment = new_comment(world, &ticket, contribution, true, now);
    let said = comment_ref(&author, &comment);
    let mut writes = Writes {
        ticket: Some(ticket.clone()),
        comment: Some(comment),
        followers,
        ..Default::default()
    };
    if let Some(inbound) = &inbound {
        writes.refs.push((inbound.clone(), id));
    }
    let event = match followup_of {
        Some(_) => Event::FollowupCreated,
        None => Event::TicketCreated,
    };
    let to = recipient_of(&author);
    let notice = ticket_notice(
        world,
        policy,
        event,
        to,
        &ticket,
        Some(said.clone()),
        inbound.as_deref(),
    );
    writes.push_notice(notice);
    team_notices(
        world,
        policy,
        &mut writes,
        &ticket,
        Event::AgentNewTicket,
        &said,
        inbound.as_deref(),
        ticket.priority == Priority::Urgent,
    );
    let outcome = match followup_of {
        Some(_) => Outcome::Followup,
        None => Outcome::Created,
    };
    let mut decision = Decision::on(outcome, &ticket, writes);
    decision.followup_of = followup_of.map(|t| t.id);
    world.absorb(&decision);
    decision
}

fn customer_writes(
    world: &mut World,
    policy: &Policy,
    contribution: Contribution,
    ticket: Ticket,
    now: i64,
) -> Decision {
    let action = customer_action(ticket.status, ticket.solved_at, now, policy.reopen_days);
    if action == CustomerAction::FollowUp {
        return new_ticket(world, policy, contribution, Some(ticket), now);
    }
    let escalated = contribution.urgent && ticket.priority != Priority::Urgent;
    let mut ticket = ticket.with_status(Status::Open, now);
    ticket.updated_at = now;
    if escalated {
        ticket.priority = Priority::Urgent;
    }
    let author = contribution.author.clone();
    let inbound = contribution.message_id.clone();
    let followers = new_followers(world, &ticket, &contribution.cc);
    let comment = new_comment(world, &ticket, contribution, true, now);
    let said = comment_ref(&author, &comment);
    let mut writes = Writes {
        ticket: Some(ticket.clone()),
        comment: Some(comment),
        followers,
        ..Default::default()
    };
    if let Some(inbound) = &inbound {
        writes.refs.push((inbound.clone(), ticket.id));
    }
    team_notices(
        world,
        policy,
        &mut writes,
        &ticket,
        Event::AgentCustomerReply,
        &said,
        inbound.as_deref(),
        escalated,
    );
    let outcome = match action {
        CustomerAction::Reopen => Outcome::Reopened,
        _ => Outcome::Appended,
    };
    let decision = Decision::on(outcome, &ticket, writes);
    world.absorb(&decision);
    decision
}

/// An agent's comment: commands first, then the comment, then what the
/// requester hears of it. A closed ticket accepts no comments, so an
/// answer by mail opens a follow-up for the same requester.
fn agent_writes(
    world: &mut World,
    policy: &Policy,
    contribution: Contribution,
    ticket: Ticket,
    commands: &AgentCommands,
    now: i64,
) -> Decision {
    let (ticket, outcome, followup_of) = if ticket.status == Status::Closed {
        let new = Ticket {
            id: world.take_ticket_id(),
            status: Status::Open,
            followup_of: Some(ticket.id),
            rating: None,
            rating_comment: None,
            created_at: now,
            updated_at: now,
            solved_at: None,
            closed_at: None,
            solve_count: 0,
            ..ticket.clone()
        };
        (new, Outcome::Followup, Some(ticket.id))
    } else {
        (ticket, Outcome::Appended, None)
    };
    let before = ticket.status;
    let status = status_after_agent_comment(before, commands);
    let mut after = ticket.with_status(status, now);
    after.updated_at = now;
    if commands.urgent {
        after.priority = Priority::Urgent;
    }
    let public = !commands.internal;
    let author = contribution.author.clone();
    let inbound = contribution.message_id.clone();
    let comment = new_comment(world, &after, contribution, public, now);
    let said = comment_ref(&author, &comment);
    let mut writes = Writes {
        ticket: Some(after.clone()),
        comment: Some(comment),
        ..Default::default()
    };
    if let Some(inbound) = &inbound {
        writes.refs.push((inbound.clone(), after.id));
    }
    if public {
        // The ticket's followers read the public answers too.
        let followers: Vec<Person> = world
            .followers
            .get(&after.id)
            .into_iter()
            .flatten()
            .filter(|id| **id != after.requester_id)
            .filter_map(|id| world.people_by_id.get(id).cloned())
            .collect();
        for follower in followers {
            let notice = ticket_notice(
                world,
                policy,
                Event::AgentReply,
                recipient_of(&follower),
                &after,
                Some(said.clone()),
                inbound.as_deref(),
            );
            writes.push_notice(notice);
        }
    }
    if let Some(requester) = world.people_by_id.get(&after.requester_id).cloned() {
        if public {
            let notice = ticket_notice(
                world,
                policy,
                Event::AgentReply,
                recipient_of(&requester),
                &after,
                Some(said.clone()),
                inbound.as_deref(),
            );
            writes.push_notice(notice);
        }
        if status == Status::Solved && before != Status::Solved {
            let notice = ticket_notice(
                world,
                policy,
                Event::TicketSolved,
                recipient_of(&requester),
                &after,
                Some(said),
                inbound.as_deref(),
            );
            writes.push_notice(notice);
        }
    }
    let mut decision = Decision::on(outcome, &after, writes);
    decision.followup_of = followup_of;
    world.absorb(&decision);
    decision
}

/// The people of `ticket`'s organization among `cc` who do not follow it
/// yet (not the requester): they follow it from now on. Strangers and
/// other organizations' people in Cc get nothing.
fn new_followers(world: &World, ticket: &Ticket, cc: &[String]) -> Vec<(i64, i64)> {
    let known = world.followers.get(&ticket.id);
    let mut found: Vec<(i64, i64)> = Vec::new();
    for address in cc {
        let Some(person) = world.person(address) else {
            continue;
        };
        let colleague = person.organization_id == ticket.organization_id
            && matches!(person.role, Role::KeyUser | Role::Member);
        let new = person.id != ticket.requester_id
            && !known.is_some_and(|k| k.contains(&person.id))
            && !found.iter().any(|(_, p)| *p == person.id);
        if colleague && new {
            found.push((ticket.id, person.id));
        }
    }
    found
}

fn new_comment(
    world: &mut World,
    ticket: &Ticket,
    contribution: Contribution,
    public: bool,
    now: i64,
) -> Comment {
    Comment {
        id: world.take_comment_id(),
        ticket_id: ticket.id,
        author_id: contribution.author.id,
        public,
        body: contribution.body,
        full_text: contribution.full_text,
        message_id: contribution.message_id,
        created_at: now,
        attachments: contribution.attachments,
    }
}

fn comment_ref(author: &Person, comment: &Comment) -> CommentRef {
    CommentRef {
        author: author.name.clone(),
        body: comment.body.clone(),
    }
}

impl Writes {
    /// Queues a notice and threads its Message-ID into its ticket.
    fn push_notice(&mut self, notice: Notice) {
        if let Some(ticket) = notice.ticket_id {
            self.refs.push((notice.message_id.clone(), ticket));
        }
        self.notices.push(notice);
    }
}

/// The team's notice of a new ticket or a customer's reply, and on-call's
/// when it is urgent.
#[allow(clippy::too_many_arguments)]
fn team_notices(
    world: &mut World,
    policy: &Policy,
    writes: &mut Writes,
    ticket: &Ticket,
    event: Event,
    said: &CommentRef,
    inbound: Option<&str>,
    urgent: bool,
) {
    let staff = [
        (Some(event), policy.agents_address.as_deref()),
        (
            urgent.then_some(Event::UrgentTicket),
            policy.oncall_address.as_deref(),
        ),
    ];
    for (event, address) in staff {
        if let (Some(event), Some(address)) = (event, address) {
            let to = staff_recipient(world, policy, address);
            let notice = ticket_notice(
                world,
                policy,
                event,
                to,
                ticket,
                Some(said.clone()),
                inbound,
            );
            writes.push_notice(notice);
        }
    }
}

fn recipient_of(person: &Person) -> Recipient {
    Recipient {
        address: person.email.clone(),
        name: person.name.clone(),
        locale: person.locale.clone(),
    }
}

fn staff_recipient(world: &World, policy: &Policy, address: &str) -> Recipient {
    let name = world
        .person(&super::sender::normalize_email(address))
        .map(|p| p.name.clone())
        .unwrap_or_default();
    Recipient {
        address: address.to_string(),
        name,
        locale: policy.default_locale.clone(),
    }
}

/// A notification about `ticket` as it is after the event, threaded after
/// its conversation so far (and after `inbound`, the mail that caused it).
fn ticket_notice(
    world: &mut World,
    policy: &Policy,
    event: Event,
    to: Recipient,
    ticket: &Ticket,
    comment: Option<CommentRef>,
    inbound: Option<&str>,
) -> Notice {
    let mut references = world.chains.get(&ticket.id).cloned().unwrap_or_default();
    if let Some(inbound) = inbound {
        if !references.iter().any(|r| r == inbound) {
            references.push(inbound.to_string());
        }
    }
    let base = policy.base_url.trim_end_matches('/');
    let requester = world.people_by_id.get(&ticket.requester_id);
    let rating = (ticket.status == Status::Solved).then(|| {
        let token = policy
            .signer
            .issue(&rating_purpose(ticket.solve_count), ticket.id);
        RatingLinks {
            good: format!("{base}/rate/{token}/good"),
            bad: format!("{base}/rate/{token}/bad"),
        }
    });
    let subject = format!("[#{}] {}", ticket.id, single_line(&ticket.subject));
    let context = Context {
        recipient: PersonRef {
            name: to.name.clone(),
            email: to.address.clone(),
        },
        requester: PersonRef {
            name: requester.map(|p| p.name.clone()).unwrap_or_default(),
            email: requester.map(|p| p.email.clone()).unwrap_or_default(),
        },
        organization: world
            .organizations
            .get(&ticket.organization_id)
            .cloned()
            .unwrap_or_default(),
        ticket: Some(TicketRef {
            id: ticket.id,
            subject: ticket.subject.clone(),
            status: ticket.status.as_str().into(),
            status_label: ticket.status.label(&to.locale).into(),
            link: format!("{base}/tickets/{}", ticket.id),
            category: ticket.category.as_str().into(),
            priority: ticket.priority.as_str().into(),
            urgent: ticket.priority == Priority::Urgent,
            followup_of: ticket.followup_of,
        }),
        comment,
        rating,
        subject: subject.clone(),
        reopen_days: policy.reopen_days,
        link: String::new(),
        key_users: Vec::new(),
    };
    Notice {
        event,
        message_id: world.message_id(Some(ticket.id), event, &policy.support.domain),
        to,
        ticket_id: Some(ticket.id),
        subject,
        in_reply_to: references.last().cloned(),
        references,
        reply_to: policy
            .support
            .with_tag(&policy.signer.issue(REPLY_PURPOSE, ticket.id)),
        context,
    }
}

/// Rating tokens are signed for one solve: reopening or solving again
/// makes older links invalid.
pub fn rating_purpose(solve: i64) -> String {
    format!("rate:{solve}")
}

/// The ticket a rating link names (before its signature is checked).
pub fn rating_ticket(token: &str) -> Option<i64> {
    token.split_once('-').and_then(|(id, _)| id.parse().ok())
}

/// The ticket a rating link may rate: the link is signed for its current
/// solve, and the ticket is still solved.
pub fn rateable_ticket(world: &World, policy: &Policy, token: &str) -> Result<Ticket, Refusal> {
    let id = rating_ticket(token).ok_or(Refusal::InvalidLink)?;
    let ticket = world.tickets.get(&id).ok_or(Refusal::InvalidLink)?;
    // A link of another solve fails verification like a forged one.
    if policy
        .signer
        .verify(&rating_purpose(ticket.solve_count), token)
        != Some(id)
    {
        return Err(Refusal::InvalidLink);
    }
    if ticket.status != Status::Solved {
        return Err(Refusal::NotRateable(id));
    }
    Ok(ticket.clone())
}

/// A rating by the link of a solved notice: valid for the solve it was
/// issued for, changeable while the ticket stays solved.
pub fn rate(
    world: &mut World,
    policy: &Policy,
    token: &str,
    rating: super::ticket::Rating,
    comment: Option<String>,
    now: i64,
) -> Result<Decision, Refusal> {
    let ticket = rateable_ticket(world, policy, token)?;
    let rated = Ticket {
        rating: Some(rating),
        rating_comment: comment.filter(|c| !c.trim().is_empty()),
        updated_at: now,
        ..ticket
    };
    let decision = Decision::on(
        Outcome::Appended,
        &rated,
        Writes {
            ticket: Some(rated.clone()),
            ..Default::default()
        },
    );
    world.absorb(&decision);
    Ok(decision)
}

#[cfg(test)]
mod tests;
