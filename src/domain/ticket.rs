//! The ticket state machine: what a customer's or an agent's message does to
//! a ticket, emergency markers, categories, and when solved tickets close.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Open,
    Pending,
    Solved,
    Closed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Pending => "pending",
            Status::Solved => "solved",
            Status::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        match s {
            "open" => Some(Status::Open),
            "pending" => Some(Status::Pending),
            "solved" => Some(Status::Solved),
            "closed" => Some(Status::Closed),
            _ => None,
        }
    }

    /// The label customers see in notifications.
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

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

pub const CATEGORIES: &[&str] = &[
    "customer_support",
    "onboarding_csm",
    "billing",
    "developer_support",
    "partner_custom_code",
];
pub const DEFAULT_CATEGORY: &str = "customer_support";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    Normal,
    Urgent,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Normal => "normal",
            Priority::Urgent => "urgent",
        }
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
    now - solved_at > reopen_days * DAY
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
        if words.is_empty() || !words.iter().all(|w| is_command(w)) {
            break;
        }
        for word in words {
            apply_command(&mut commands, word);
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

fn is_command(word: &str) -> bool {
    matches!(
        word.to_ascii_lowercase().as_str(),
        "#solved" | "#pending" | "#open" | "#internal" | "#urgent"
    )
}

fn apply_command(commands: &mut AgentCommands, word: &str) {
    match word.to_ascii_lowercase().as_str() {
        "#solved" => commands.status = Some(Status::Solved),
        "#pending" => commands.status = Some(Status::Pending),
        "#open" => commands.status = Some(Status::Open),
        "#internal" => commands.internal = true,
        "#urgent" => commands.urgent = true,
        _ => {}
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

    #[test]
    fn customer_reply_rules_follow_the_spec_table() {
        assert_eq!(
            customer_action(Status::Open, None, NOW, 14),
            CustomerAction::Append
        );
        assert_eq!(
            customer_action(Status::Pending, None, NOW, 14),
            CustomerAction::Append
        );
        assert_eq!(
            customer_action(Status::Solved, Some(NOW - 13 * DAY), NOW, 14),
            CustomerAction::Reopen
        );
        assert_eq!(
            customer_action(Status::Solved, Some(NOW - 14 * DAY), NOW, 14),
            CustomerAction::Reopen
        );
        assert_eq!(
            customer_action(Status::Solved, Some(NOW - 14 * DAY - 1), NOW, 14),
            CustomerAction::FollowUp
        );
        assert_eq!(
            customer_action(Status::Closed, Some(NOW - DAY), NOW, 14),
            CustomerAction::FollowUp
        );
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
    fn status_after_agent_comment_rules() {
        let none = AgentCommands::default();
        assert_eq!(
            status_after_agent_comment(Status::Open, &none),
            Status::Pending
        );
        let internal = AgentCommands {
            internal: true,
            ..Default::default()
        };
        assert_eq!(
            status_after_agent_comment(Status::Open, &internal),
            Status::Open
        );
        let solved = AgentCommands {
            status: Some(Status::Solved),
            ..Default::default()
        };
        assert_eq!(
            status_after_agent_comment(Status::Open, &solved),
            Status::Solved
        );
    }

    #[test]
    fn status_labels_in_both_languages() {
        assert_eq!(Status::Pending.label("de"), "Wartet auf Ihre Antwort");
        assert_eq!(Status::Solved.label("de-AT"), "Gelöst");
        assert_eq!(Status::Closed.label("en"), "Closed");
    }
}
