//! The rules of SPEC sections 3 and 4, one table row per line of the
//! spec's tables, decided in memory: no database, no clock.

use super::*;
use crate::domain::sender::Person;
use crate::domain::ticket::Rating;

const NOW: i64 = 1_800_000_000;
const DAY: i64 = 86_400;

fn person(id: i64, email: &str, name: &str, organization_id: i64, role: Role) -> Person {
    Person {
        id,
        email: email.into(),
        name: name.into(),
        organization_id,
        role,
        locale: "de".into(),
    }
}

fn anna() -> Person {
    person(1, "anna@mueller.example", "Anna Schmidt", 1, Role::KeyUser)
}
fn peter() -> Person {
    person(2, "peter@mueller.example", "Peter Weber", 1, Role::Member)
}
fn john() -> Person {
    person(3, "john@acme.example", "John Carter", 2, Role::KeyUser)
}
fn lena() -> Person {
    person(4, "lena@vendor.example", "Lena Fischer", 3, Role::Agent)
}

fn policy() -> Policy {
    Policy {
        support: SupportAddress::parse("support@vendor.example").unwrap(),
        signer: TokenSigner::new("test"),
        base_url: "https://help.vendor.example".into(),
        trusted_authserv_ids: vec!["mx.vendor.example".into()],
        categories: [("billing".to_string(), Category::Billing)]
            .into_iter()
            .collect(),
        mailbox_category: None,
        emergency_markers: vec!["[Notfall]".into()],
        reopen_days: 14,
        agents_address: Some("team@vendor.example".into()),
        oncall_address: Some("oncall@vendor.example".into()),
        default_locale: "de".into(),
    }
}

/// Anna's organization has ticket 7 in `status` (solved `solved_ago`
/// seconds before NOW).
fn world_with(status: Status, solved_ago: Option<i64>) -> World {
    let mut world = World::new(8, 100, Some(1));
    for p in [anna(), peter(), john(), lena()] {
        world.add_person(p);
    }
    world.organizations.insert(1, "Müller GmbH".into());
    world.organizations.insert(2, "Acme Ltd".into());
    world.tickets.insert(
        7,
        Ticket {
            id: 7,
            subject: "Wareneingang".into(),
            organization_id: 1,
            requester_id: 1,
            category: Category::Billing,
            priority: Priority::Normal,
            status,
            followup_of: None,
            rating: None,
            rating_comment: None,
            created_at: NOW - 30 * DAY,
            updated_at: NOW - 30 * DAY,
            solved_at: solved_ago.map(|ago| NOW - ago),
            closed_at: None,
            solve_count: u8::from(solved_ago.is_some()).into(),
        },
    );
    world.refs.insert("<ack7@vendor.example>".into(), 7);
    world.chains.insert(
        7,
        vec![
            "<first7@mueller.example>".into(),
            "<ack7@vendor.example>".into(),
        ],
    );
    world
}

fn mail(from: &Person, subject: &str) -> InboundMail {
    InboundMail {
        message_id: Some("<new@client.example>".into()),
        from: Some(from.email.clone()),
        subject: subject.into(),
        recipients: vec!["support@vendor.example".into()],
        text: Some("Hallo".into()),
        ..Default::default()
    }
}

fn contribution(author: &Person, mail: &InboundMail, body: &str) -> Contribution {
    Contribution {
        author: author.clone(),
        subject: mail.subject.clone(),
        body: body.into(),
        full_text: body.into(),
        attachments: Vec::new(),
        message_id: mail.message_id.clone(),
        category: None,
        urgent: crate::domain::ticket::is_emergency(&mail.subject, &policy().emergency_markers),
        cc: mail.recipients.clone(),
    }
}

fn hints(mail: &InboundMail) -> ThreadHints {
    crate::domain::thread::thread_hints(mail, &policy().support, &policy().signer)
}

/// A new ticket's category: the plus-address tag chose it, else the
/// mailbox it arrived in (a billing@ mailbox), else customer support.
#[test]
fn new_tickets_get_the_plus_address_category_else_the_mailbox_one() {
    for (to, mailbox, expected) in [
        ("support@vendor.example", None, Category::CustomerSupport),
        (
            "support@vendor.example",
            Some(Category::Billing),
            Category::Billing,
        ),
        (
            "support+billing@vendor.example",
            Some(Category::DeveloperSupport),
            Category::Billing,
        ),
    ] {
        let mut world = world_with(Status::Open, None);
        let mut mail = mail(&anna(), "Neue Frage");
        mail.recipients = vec![to.into()];
        let policy = Policy {
            mailbox_category: mailbox,
            ..policy()
        };
        let author = admit(&mut world, &policy, &mail, "<new@client.example>").expect("admitted");
        let hints = crate::domain::thread::thread_hints(&mail, &policy.support, &policy.signer);
        let decision = decide_mail(
            &mut world,
            &policy,
            &hints,
            contribution(&author, &mail, "Hallo"),
            NOW,
        );
        assert_eq!(decision.outcome, Outcome::Created, "{to} {mailbox:?}");
        let ticket = decision.writes.ticket.unwrap();
        assert_eq!(ticket.category, expected, "{to} {mailbox:?}");
    }
}

fn by_mail(world: &mut World, from: &Person, subject: &str, body: &str) -> Decision {
    let mail = mail(from, subject);
    let author = admit(world, &policy(), &mail, "<new@client.example>").expect("admitted");
    decide_mail(
        world,
        &policy(),
        &hints(&mail),
        contribution(&author, &mail, body),
        NOW,
    )
}

fn events(decision: &Decision) -> Vec<(Event, String)> {
    decision
        .writes
        .notices
        .iter()
        .map(|n| (n.event, n.to.address.clone()))
        .collect()
}

#[test]
fn a_key_users_mail_follows_the_ticket_table_of_section_3() {
    // (state of ticket 7, outcome, ticket written, status after, follow-up of)
    type Row = (
        Option<(Status, Option<i64>)>,
        Outcome,
        i64,
        Status,
        Option<i64>,
    );
    let table: &[Row] = &[
        // no ticket matched → created, open
        (None, Outcome::Created, 8, Status::Open, None),
        // open or pending → appended; status becomes open
        (
            Some((Status::Open, None)),
            Outcome::Appended,
            7,
            Status::Open,
            None,
        ),
        (
            Some((Status::Pending, None)),
            Outcome::Appended,
            7,
            Status::Open,
            None,
        ),
        // solved less than reopen_days ago → reopened
        (
            Some((Status::Solved, Some(13 * DAY))),
            Outcome::Reopened,
            7,
            Status::Open,
            None,
        ),
        // solved longer ago than reopen_days → follow-up
        (
            Some((Status::Solved, Some(15 * DAY))),
            Outcome::Followup,
            8,
            Status::Open,
            Some(7),
        ),
        // closed → follow-up
        (
            Some((Status::Closed, Some(20 * DAY))),
            Outcome::Followup,
            8,
            Status::Open,
            Some(7),
        ),
    ];
    for (state, outcome, ticket, status, followup_of) in table {
        let mut world = match state {
            Some((status, solved)) => world_with(*status, *solved),
            None => world_with(Status::Open, None),
        };
        let subject = if state.is_some() {
            "AW: [#7] Wareneingang"
        } else {
            "Neue Frage"
        };
        let decision = by_mail(&mut world, &anna(), subject, "Noch eine Frage.");
        assert_eq!(decision.outcome, *outcome, "{state:?}");
        assert_eq!(decision.ticket, Some((*ticket, *status)), "{state:?}");
        assert_eq!(decision.followup_of, *followup_of, "{state:?}");
        let written = decision.writes.ticket.as_ref().unwrap();
        assert_eq!(written.status, *status);
        let comment = decision.writes.comment.as_ref().unwrap();
        assert_eq!(
            (comment.ticket_id, comment.public, comment.body.as_str()),
            (*ticket, true, "Noch eine Frage.")
        );
        match outcome {
            Outcome::Created => assert_eq!(
                events(&decision),
                [
                    (Event::TicketCreated, anna().email),
                    (Event::AgentNewTicket, "team@vendor.example".into())
                ]
            ),
            Outcome::Followup => {
                assert_eq!(written.subject, "Wareneingang", "the old subject");
                assert_eq!(written.category, Category::Billing, "and category");
                assert_eq!(
                    events(&decision),
                    [
                        (Event::FollowupCreated, anna().email),
                        (Event::AgentNewTicket, "team@vendor.example".into())
                    ]
                );
            }
            _ => assert_eq!(
                events(&decision),
                [(Event::AgentCustomerReply, "team@vendor.example".into())]
            ),
        }
    }
}

#[test]
fn an_agents_mail_follows_section_4() {
    // (commands at the top, status after, requester told)
    let table: &[(&str, Status, &[Event])] = &[
        ("", Status::Pending, &[Event::AgentReply]),
        ("#pending\n\n", Status::Pending, &[Event::AgentReply]),
        ("#open\n", Status::Open, &[Event::AgentReply]),
        (
            "#solved\n\n",
            Status::Solved,
            &[Event::AgentReply, Event::TicketSolved],
        ),
        ("#internal\n", Status::Open, &[]),
        (
            "#internal #solved\n",
            Status::Solved,
            &[Event::TicketSolved],
        ),
    ];
    for (commands, status, told) in table {
        let mut world = world_with(Status::Open, None);
        let body = format!("{commands}Bitte neu starten.");
        let decision = by_mail(&mut world, &lena(), "AW: [#7] Wareneingang", &body);
        assert_eq!(decision.outcome, Outcome::Appended, "{commands:?}");
        assert_eq!(decision.ticket, Some((7, *status)), "{commands:?}");
        let comment = decision.writes.comment.as_ref().unwrap();
        assert_eq!(comment.body, "Bitte neu starten.", "commands removed");
        assert_eq!(comment.public, !commands.contains("#internal"));
        let notified: Vec<Event> = decision.writes.notices.iter().map(|n| n.event).collect();
        assert_eq!(notified, *told, "{commands:?}");
        assert!(decision
            .writes
            .notices
            .iter()
            .all(|n| n.to.address == anna().email));
    }
}

#[test]
fn urgent_by_marker_or_command_tells_on_call() {
    let mut world = world_with(Status::Open, None);
    let decision = by_mail(&mut world, &anna(), "[Notfall] Server steht", "Hilfe");
    assert_eq!(
        decision.writes.ticket.as_ref().unwrap().priority,
        Priority::Urgent
    );
    assert!(events(&decision).contains(&(Event::UrgentTicket, "oncall@vendor.example".into())));
    // An agent's #urgent raises the priority without telling on-call again.
    let mut world = world_with(Status::Open, None);
    let decision = by_mail(
        &mut world,
        &lena(),
        "AW: [#7] Wareneingang",
        "#urgent\nSehen wir uns an.",
    );
    assert_eq!(
        decision.writes.ticket.as_ref().unwrap().priority,
        Priority::Urgent
    );
}

#[test]
fn an_agents_answer_to_a_closed_ticket_opens_a_follow_up_for_the_requester() {
    let mut world = world_with(Status::Closed, Some(20 * DAY));
    let decision = by_mail(&mut world, &lena(), "AW: [#7] Wareneingang", "Nachtrag.");
    assert_eq!(decision.outcome, Outcome::Followup);
    assert_eq!(decision.followup_of, Some(7));
    let ticket = decision.writes.ticket.unwrap();
    assert_eq!(
        (ticket.id, ticket.requester_id, ticket.status),
        (8, 1, Status::Pending)
    );
}

#[test]
fn the_cli_and_the_help_center_use_the_same_rules() {
    let mut world = world_with(Status::Pending, None);
    let comment = Contribution {
        author: anna(),
        subject: String::new(),
        body: "Per Web.".into(),
        full_text: "Per Web.".into(),
        attachments: Vec::new(),
        message_id: None,
        category: None,
        urgent: false,
        cc: Vec::new(),
    };
    let decision = customer_comment(&mut world, &policy(), comment.clone(), 7, NOW).unwrap();
    assert_eq!(decision.ticket, Some((7, Status::Open)));
    // Members read but do not write; other organizations' tickets do not
    // exist for them.
    let member = Contribution {
        author: peter(),
        ..comment.clone()
    };
    assert_eq!(
        customer_comment(&mut world, &policy(), member, 7, NOW),
        Err(Refusal::NotAllowed(peter().email))
    );
    let stranger = Contribution {
        author: john(),
        ..comment.clone()
    };
    assert_eq!(
        customer_comment(&mut world, &policy(), stranger, 7, NOW),
        Err(Refusal::NoSuchTicket(7))
    );

    let answer = Contribution {
        author: lena(),
        ..comment.clone()
    };
    let solved = AgentCommands {
        status: Some(Status::Solved),
        ..Default::default()
    };
    let decision = agent_comment(&mut world, &policy(), answer.clone(), 7, &solved, NOW).unwrap();
    assert_eq!(decision.ticket, Some((7, Status::Solved)));
    assert_eq!(
        solve(&mut world, &policy(), 7, NOW)
            .unwrap()
            .writes
            .notices
            .len(),
        0,
        "solved already"
    );

    let mut closed = world_with(Status::Closed, Some(20 * DAY));
    assert_eq!(
        agent_comment(&mut closed, &policy(), answer, 7, &solved, NOW),
        Err(Refusal::Closed(7))
    );
    assert_eq!(
        solve(&mut closed, &policy(), 7, NOW),
        Err(Refusal::Closed(7))
    );
    assert_eq!(
        solve(&mut closed, &policy(), 99, NOW),
        Err(Refusal::NoSuchTicket(99))
    );
}

#[test]
fn a_notice_says_what_was_true_at_its_event() {
    let mut world = world_with(Status::Open, None);
    let answer = by_mail(
        &mut world,
        &lena(),
        "AW: [#7] Wareneingang",
        "Bitte prüfen.",
    );
    let solved = solve(&mut world, &policy(), 7, NOW + 60).unwrap();
    let answered = &answer.writes.notices[0].context;
    assert_eq!(
        answered.ticket.as_ref().unwrap().status_label,
        "Wartet auf Ihre Antwort"
    );
    assert_eq!(answered.rating, None);
    let notice = &solved.writes.notices[0];
    assert_eq!(notice.event, Event::TicketSolved);
    let context = &notice.context;
    assert_eq!(context.ticket.as_ref().unwrap().status_label, "Gelöst");
    let links = context.rating.as_ref().unwrap();
    let token = policy().signer.issue(&rating_purpose(1), 7);
    assert_eq!(
        links.good,
        format!("https://help.vendor.example/rate/{token}/good")
    );
    // Threaded after the conversation: the answer came before it.
    assert_eq!(
        notice.references.last(),
        Some(&answer.writes.notices[0].message_id)
    );
    assert_eq!(notice.subject, "[#7] Wareneingang");
    assert!(
        notice.reply_to.starts_with("support+7-"),
        "{}",
        notice.reply_to
    );
}

#[test]
fn the_gates_stop_machine_mail_strangers_and_members() {
    let policy = policy();
    let mut world = world_with(Status::Open, None);
    let mut auto = mail(&anna(), "Abwesenheitsnotiz: Wareneingang");
    auto.headers
        .push(("auto-submitted".into(), "auto-replied".into()));
    let decision = admit(&mut world, &policy, &auto, "<a@x>").unwrap_err();
    assert_eq!(
        (decision.outcome, decision.reason),
        (Outcome::Ignored, Some(Reason::AutoReply))
    );
    assert!(decision.writes.notices.is_empty() && !decision.writes.suspend);

    let stranger = Person {
        email: "evil@evil.example".into(),
        ..anna()
    };
    let decision = admit(&mut world, &policy, &mail(&stranger, "Hallo"), "<b@x>").unwrap_err();
    assert_eq!(
        (decision.reason, decision.writes.suspend),
        (Some(Reason::UnknownSender), true)
    );
    assert!(decision.writes.notices.is_empty(), "no backscatter");

    let decision = admit(&mut world, &policy, &mail(&peter(), "Frage"), "<c@x>").unwrap_err();
    assert_eq!(decision.reason, Some(Reason::NotKeyUser));
    assert_eq!(events(&decision), [(Event::NotKeyUser, peter().email)]);
    assert_eq!(decision.writes.notices[0].subject, "Re: Frage");

    let mut spoofed = mail(&anna(), "Hallo");
    spoofed.headers.push((
        "authentication-results".into(),
        "mx.vendor.example; dmarc=fail".into(),
    ));
    let decision = admit(&mut world, &policy, &spoofed, "<d@x>").unwrap_err();
    assert_eq!(decision.reason, Some(Reason::SpoofSuspected));
}

#[test]
fn nobody_writes_into_another_organizations_ticket() {
    let mut world = world_with(Status::Open, None);
    // John guesses [#7] and names Anna's mail in References: a new ticket.
    let mut guess = mail(&john(), "Re: [#7] Wareneingang");
    guess.references = vec!["<ack7@vendor.example>".into()];
    let author = admit(&mut world, &policy(), &guess, "<g@x>").unwrap();
    let decision = decide_mail(
        &mut world,
        &policy(),
        &hints(&guess),
        contribution(&author, &guess, "Hi"),
        NOW,
    );
    assert_eq!(decision.outcome, Outcome::Created);
    assert_eq!(decision.ticket, Some((8, Status::Open)));
}

#[test]
fn a_rating_is_for_one_solve() {
    let mut world = world_with(Status::Solved, Some(DAY));
    world.tickets.get_mut(&7).unwrap().rating = Some(Rating::Good);
    let reopened = by_mail(&mut world, &anna(), "AW: [#7] Wareneingang", "Doch nicht.");
    assert_eq!(reopened.outcome, Outcome::Reopened);
    let solved = solve(&mut world, &policy(), 7, NOW).unwrap();
    let ticket = solved.writes.ticket.unwrap();
    assert_eq!((ticket.solve_count, ticket.rating), (2, None));
}

#[test]
fn later_messages_of_a_batch_see_what_earlier_ones_did() {
    let mut world = world_with(Status::Open, None);
    let first = by_mail(&mut world, &anna(), "Neu", "Erste");
    let (id, _) = first.ticket.unwrap();
    // The second names the first's Message-ID: it threads into the new one.
    let mut second = mail(&anna(), "AW: Neu");
    second.message_id = Some("<second@client.example>".into());
    second.in_reply_to = vec!["<new@client.example>".into()];
    let author = admit(&mut world, &policy(), &second, "<second@client.example>").unwrap();
    let decision = decide_mail(
        &mut world,
        &policy(),
        &hints(&second),
        contribution(&author, &second, "Zweite"),
        NOW,
    );
    assert_eq!(decision.ticket, Some((id, Status::Open)));
    assert_eq!(decision.outcome, Outcome::Appended);
}

#[test]
fn in_the_help_center_key_users_and_agents_solve_members_and_strangers_do_not() {
    let cases = [
        (anna(), Ok(Status::Solved)),
        (lena(), Ok(Status::Solved)),
        (peter(), Err(Refusal::NotAllowed(peter().email))),
        (john(), Err(Refusal::NoSuchTicket(7))),
    ];
    for (who, expected) in cases {
        let mut world = world_with(Status::Pending, None);
        let got = solve_as(&mut world, &policy(), &who.email, 7, NOW).map(|d| d.ticket.unwrap().1);
        assert_eq!(got, expected, "{}", who.email);
        let status = world.tickets[&7].status;
        let expected_status = if got.is_ok() {
            Status::Solved
        } else {
            Status::Pending
        };
        assert_eq!(status, expected_status, "{}", who.email);
    }
    let mut world = world_with(Status::Pending, None);
    let decision = solve_as(&mut world, &policy(), &anna().email, 7, NOW).unwrap();
    assert_eq!(events(&decision), vec![(Event::TicketSolved, anna().email)]);
}

#[test]
fn colleagues_in_cc_follow_and_hear_the_answers_strangers_do_not() {
    let mut world = World::new(8, 100, Some(1));
    for p in [anna(), peter(), john(), lena()] {
        world.add_person(p);
    }
    world.organizations.insert(1, "Müller GmbH".into());
    let mut mail = mail(&anna(), "Druckerproblem");
    mail.recipients = vec![
        "support@vendor.example".into(),
        peter().email,
        john().email,
        "fremd@elsewhere.example".into(),
        anna().email,
    ];
    let created = decide_mail(
        &mut world,
        &policy(),
        &hints(&mail),
        contribution(&anna(), &mail, "Er druckt nicht."),
        NOW,
    );
    assert_eq!(
        created.writes.followers,
        vec![(8, peter().id)],
        "Peter only"
    );
    let answer = Contribution {
        author: lena(),
        subject: String::new(),
        body: "Bitte neu starten.".into(),
        full_text: String::new(),
        attachments: Vec::new(),
        message_id: None,
        category: None,
        urgent: false,
        cc: Vec::new(),
    };
    let answered = agent_comment(
        &mut world,
        &policy(),
        answer.clone(),
        8,
        &Default::default(),
        NOW,
    )
    .unwrap();
    let mut told: Vec<String> = events(&answered)
        .into_iter()
        .filter(|(e, _)| *e == Event::AgentReply)
        .map(|(_, to)| to)
        .collect();
    told.sort();
    assert_eq!(told, vec![anna().email, peter().email]);
    // An internal note tells nobody.
    let internal = AgentCommands {
        internal: true,
        ..Default::default()
    };
    let note = agent_comment(&mut world, &policy(), answer, 8, &internal, NOW).unwrap();
    assert!(events(&note).is_empty());
}
