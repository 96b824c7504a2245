//! Tickets and their rules (SPEC sections 3 and 4), as plain functions over
//! plain types: what a customer's or an agent's message does to a ticket,
//! agent commands, emergency markers, and when solved tickets close. The
//! table tests at the bottom read like the spec's tables.

/// The names of these enums are their strings everywhere (JSON, the
/// database, the config): derived, never written out by hand.
macro_rules! text_enum {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident),* $(,)? }) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
            ::serde::Serialize, ::serde::Deserialize,
            ::strum::EnumString, ::strum::IntoStaticStr, ::strum::Display, ::strum::VariantArray,
        )]
        #[serde(rename_all = "snake_case")]
        #[strum(serialize_all = "snake_case")]
        pub enum $name { $($(#[$vmeta])* $variant),* }

        impl $name {
            pub fn as_str(self) -> &'static str {
                self.into()
            }
        }
    };
}
pub(crate) use text_enum;

text_enum! {
    pub enum Status {
        Open,
        Pending,
        Solved,
        Closed,
    }
}

impl Status {
    /// The label customers see in notifications and the help center.
    pub fn label(self, locale: &str) -> &'static str {
        let english = locale.starts_with("en");
        match (self, english) {
            (Status::Open, false) => "Offen",
            (Status::Pending, false) => "Wartet auf Ihre Antwort",
            (Status::Solved, false) => "Gelöst",
            (Status::Closed, false) => "Geschlossen",
            (Status::Open, true) => "Open",
            (Status::Pending, true) => "Awaiting your reply",
            (Status::Solved, true) => "Solved",
            (Status::Closed, true) => "Closed",
        }
    }
}

text_enum! {
    pub enum Priority {
        Normal,
        Urgent,
    }
}

text_enum! {
    #[derive(Default)]
    pub enum Category {
        #[default]
        CustomerSupport,
        OnboardingCsm,
        Billing,
        DeveloperSupport,
        PartnerCustomCode,
    }
}

impl Category {
    /// The name customers choose from in the help center.
    pub fn label(self, locale: &str) -> &'static str {
        let english = locale.starts_with("en");
        match (self, english) {
            (Category::CustomerSupport, false) => "Kundensupport",
            (Category::CustomerSupport, true) => "Customer support",
            (Category::OnboardingCsm, false) => "Onboarding (Customer Success)",
            (Category::OnboardingCsm, true) => "Onboarding (customer success)",
            (Category::Billing, false) => "Abo, Lizenz und Rechnungen",
            (Category::Billing, true) => "Subscription, licence and invoices",
            (Category::DeveloperSupport, false) => "Entwickler-Support",
            (Category::DeveloperSupport, true) => "Developer support",
            (Category::PartnerCustomCode, false) => "Partner Custom Code",
            (Category::PartnerCustomCode, true) => "Partner custom code",
        }
    }
}

text_enum! {
    pub enum Rating {
        Good,
        Bad,
    }
}

/// A ticket as the rules see it (and as the `tickets` table holds it).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Ticket {
    pub id: i64,
    pub subject: String,
    pub organization_id: i64,
    pub requester_id: i64,
    pub category: Category,
    pub priority: Priority,
    pub status: Status,
    pub followup_of: Option<i64>,
    pub rating: Option<Rating>,
    pub rating_comment: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub solved_at: Option<i64>,
    pub closed_at: Option<i64>,
    /// How often the ticket was solved; names the solve a rating is for.
    pub solve_count: i64,
}

impl Ticket {
    /// The ticket after a status change at `now`: solving stamps
    /// `solved_at`, counts the solve and clears the rating of an earlier
    /// one; reopening clears `solved_at`; closing stamps `closed_at`.
    pub fn with_status(mut self, status: Status, now: i64) -> Ticket {
        if status == self.status {
            return self;
        }
        match status {
            Status::Solved => {
                self.solved_at = Some(now);
                self.solve_count += 1;
                self.rating = None;
                self.rating_comment = None;
            }
            Status::Closed => self.closed_at = Some(now),
            Status::Open | Status::Pending => self.solved_at = None,
        }
        self.status = status;
        self.updated_at = now;
        self
    }
}

pub const DEFAULT_EMERGENCY_MARKERS: &[&str] = &["[Notfall]", "Notfall:", "[Emergency]"];

/// Whether the decoded subject carries an emergency marker (anywhere,
/// case-insensitive).
pub fn is_emergency(subject: &str, markers: &[String]) -> bool {
    let subject = subject.to_lowercase();
    markers
        .iter()
        .any(|m| !m.is_empty() && subject.contains(&m.to_lowercase()))
}

/// What a key user's message does to the ticket it threads into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CustomerAction {
    /// Comment; status becomes open.
    Append,
    /// Comment on a recently solved ticket; status becomes open again.
    Reopen,
    /// The ticket is closed (or solved too long ago): open a new ticket
    /// linked to it.
    FollowUp,
}

const DAY: i64 = 86_400;

/// `solved_at` and `now` are Unix seconds. A ticket solved exactly
/// `reopen_days` ago still reopens; one second later it takes a follow-up,
/// the same instant the scheduler may close it.
pub fn customer_action(
    status: Status,
    solved_at: Option<i64>,
    now: i64,
    reopen_days: i64,
) -> CustomerAction {
    match status {
        Status::Open | Status::Pending => CustomerAction::Append,
        Status::Closed => CustomerAction::FollowUp,
        Status::Solved => {
            if is_past_reopen_window(solved_at.unwrap_or(now), now, reopen_days) {
                CustomerAction::FollowUp
            } else {
                CustomerAction::Reopen
            }
        }
    }
}

/// Whether a ticket solved at `solved_at` is due to be closed at `now`.
pub fn is_past_reopen_window(solved_at: i64, now: i64, reopen_days: i64) -> bool {
    solved_at < close_cutoff(now, reopen_days)
}

/// Tickets solved before this instant are past their reopen window at
/// `now`: the scheduler closes them.
pub fn close_cutoff(now: i64, reopen_days: i64) -> i64 {
    now - reopen_days * DAY
}

/// Commands at the top of an agent's mail, as in Zendesk's mail API.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentCommands {
    pub status: Option<Status>,
    pub internal: bool,
    pub urgent: bool,
}

/// Splits the command lines (`#solved`, `#pending`, `#open`, `#internal`,
/// `#urgent`, several per line allowed) off the top of an agent's reply;
/// returns them and the body without them and the blank lines after them.
pub fn parse_agent_commands(body: &str) -> (AgentCommands, String) {
    let mut commands = AgentCommands::default();
    let mut lines = body.lines().peekable();
    let mut consumed_any = false;
    while let Some(line) = lines.peek() {
        let trimmed = line.trim();
        if trimmed.is_empty() && !consumed_any {
            lines.next();
            continue;
        }
        let words: Vec<&str> = trimmed.split_whitespace().collect();
        if words.is_empty() || !words.iter().all(|w| command(w).is_some()) {
            break;
        }
        for word in words {
            match command(word) {
                Some(Command::Status(status)) => commands.status = Some(status),
                Some(Command::Internal) => commands.internal = true,
                Some(Command::Urgent) => commands.urgent = true,
                None => {}
            }
        }
        consumed_any = true;
        lines.next();
    }
    if !consumed_any {
        return (commands, body.to_string());
    }
    while lines.peek().is_some_and(|l| l.trim().is_empty()) {
        lines.next();
    }
    let rest: Vec<&str> = lines.collect();
    (commands, rest.join("\n"))
}

enum Command {
    Status(Status),
    Internal,
    Urgent,
}

fn command(word: &str) -> Option<Command> {
    match word.to_ascii_lowercase().as_str() {
        "#solved" => Some(Command::Status(Status::Solved)),
        "#pending" => Some(Command::Status(Status::Pending)),
        "#open" => Some(Command::Status(Status::Open)),
        "#internal" => Some(Command::Internal),
        "#urgent" => Some(Command::Urgent),
        _ => None,
    }
}

/// The status after an agent's comment: an explicit command wins; a public
/// answer waits for the customer; an internal note changes nothing.
pub fn status_after_agent_comment(current: Status, commands: &AgentCommands) -> Status {
    match commands.status {
        Some(status) => status,
        None if commands.internal => current,
        None => Status::Pending,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    /// SPEC section 3: the state of the ticket a key user's message threads
    /// into, and what it does.
    #[test]
    fn customer_messages_follow_the_spec_table() {
        use CustomerAction::*;
        let table: &[(Status, Option<i64>, CustomerAction)] = &[
            // open or pending → appended; status becomes open
            (Status::Open, None, Append),
            (Status::Pending, None, Append),
            // solved less than reopen_days ago → reopened
            (Status::Solved, Some(NOW - 13 * DAY), Reopen),
            (Status::Solved, Some(NOW - 14 * DAY), Reopen),
            // solved longer ago than reopen_days, or closed → follow-up
            (Status::Solved, Some(NOW - 14 * DAY - 1), FollowUp),
            (Status::Closed, Some(NOW - DAY), FollowUp),
        ];
        for (status, solved_at, action) in table {
            assert_eq!(
                customer_action(*status, *solved_at, NOW, 14),
                *action,
                "{status} solved at {solved_at:?}"
            );
        }
    }

    /// SPEC sections 3 and 4: what an agent's comment does to the status.
    #[test]
    fn agent_comments_follow_the_spec() {
        let commands = |status, internal| AgentCommands {
            status,
            internal,
            urgent: false,
        };
        let table: &[(Status, AgentCommands, Status)] = &[
            // a public answer waits for the customer
            (Status::Open, commands(None, false), Status::Pending),
            (Status::Solved, commands(None, false), Status::Pending),
            // the agent solves it
            (
                Status::Open,
                commands(Some(Status::Solved), false),
                Status::Solved,
            ),
            // #pending, #open
            (
                Status::Open,
                commands(Some(Status::Pending), false),
                Status::Pending,
            ),
            (
                Status::Pending,
                commands(Some(Status::Open), false),
                Status::Open,
            ),
            // #internal: the customer is not told, the status stays
            (Status::Open, commands(None, true), Status::Open),
            (Status::Pending, commands(None, true), Status::Pending),
        ];
        for (before, commands, after) in table {
            assert_eq!(
                status_after_agent_comment(*before, commands),
                *after,
                "{before} with {commands:?}"
            );
        }
    }

    #[test]
    fn emergency_markers_anywhere_any_case() {
        let markers: Vec<String> = DEFAULT_EMERGENCY_MARKERS
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert!(is_emergency("[Notfall] Server steht", &markers));
        assert!(is_emergency("AW: NOTFALL: Login", &markers));
        assert!(is_emergency("Login kaputt [emergency]", &markers));
        assert!(!is_emergency("Notfallplan besprechen", &markers));
        assert!(!is_emergency("Frage", &[]));
    }

    #[test]
    fn agent_commands_are_removed_from_the_body() {
        let (commands, body) = parse_agent_commands("#solved\n\nDas Problem ist behoben.\nGruß");
        assert_eq!(commands.status, Some(Status::Solved));
        assert_eq!(body, "Das Problem ist behoben.\nGruß");

        let (commands, body) = parse_agent_commands("#internal #urgent\n#pending\nNotiz");
        assert!(commands.internal && commands.urgent);
        assert_eq!(commands.status, Some(Status::Pending));
        assert_eq!(body, "Notiz");

        let (commands, body) = parse_agent_commands("Hallo,\n#solved steht nicht oben");
        assert_eq!(commands, AgentCommands::default());
        assert_eq!(body, "Hallo,\n#solved steht nicht oben");
    }

    #[test]
    fn a_status_change_keeps_the_solve_bookkeeping() {
        let ticket = Ticket {
            id: 1,
            subject: "x".into(),
            organization_id: 1,
            requester_id: 1,
            category: Category::default(),
            priority: Priority::Normal,
            status: Status::Open,
            followup_of: None,
            rating: Some(Rating::Good),
            rating_comment: None,
            created_at: 0,
            updated_at: 0,
            solved_at: None,
            closed_at: None,
            solve_count: 1,
        };
        let solved = ticket.clone().with_status(Status::Solved, 10);
        assert_eq!(
            (solved.solved_at, solved.solve_count, solved.rating),
            (Some(10), 2, None)
        );
        let reopened = solved.clone().with_status(Status::Open, 20);
        assert_eq!(reopened.solved_at, None);
        assert_eq!(reopened.solve_count, 2);
        let closed = solved.with_status(Status::Closed, 30);
        assert_eq!((closed.closed_at, closed.solved_at), (Some(30), Some(10)));
    }

    #[test]
    fn names_are_the_strings_everywhere() {
        assert_eq!(Status::Pending.as_str(), "pending");
        assert_eq!(
            "partner_custom_code".parse::<Category>().unwrap(),
            Category::PartnerCustomCode
        );
        assert_eq!(
            serde_json::to_string(&Category::OnboardingCsm).unwrap(),
            "\"onboarding_csm\""
        );
        assert!("money".parse::<Category>().is_err());
        assert_eq!(Status::Pending.label("de"), "Wartet auf Ihre Antwort");
        assert_eq!(Status::Solved.label("de-AT"), "Gelöst");
        assert_eq!(Status::Closed.label("en"), "Closed");
    }
}
