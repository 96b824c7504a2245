//! Several `ticketgate run` instances on one PostgreSQL database, sharing
//! two Dovecot mailboxes: 3,000 messages arrive while the instance that
//! reads one mailbox is killed with SIGKILL. Another takes the mailbox
//! over within `failover_secs`, every message ends in exactly one ticket,
//! and every acknowledgement reaches its customer's Dovecot mailbox.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::daemon::{support_address, wait_until, Daemon};
use common::database::{fresh_postgres, query};
use common::servers::{mail_servers, MailServers};
use common::{sqlite_config_text, Gateway, Mail};

const FAILOVER_SECS: u64 = 5;
const CUSTOMERS: usize = 20;
const PER_MAILBOX: usize = 1_500;
/// Arrive before the kill; the rest arrive after it.
const BEFORE_KILL: usize = 1_000;
/// Rows a worker claims and marks together (`deliver::ROUND`): what a
/// crash mid-send may send twice, with the same Message-ID.
const ROUND: usize = 25;

fn mailbox_table(servers: &MailServers, name: &str, user: &str, category: Option<&str>) -> String {
    let category = category.map_or(String::new(), |c| format!("category = \"{c}\"\n"));
    format!(
        "[[mailbox]]\nname = \"{name}\"\n{category}host = \"127.0.0.1\"\nport = {}\ntls = false\nusername = \"{user}\"\npassword = \"{}\"\nprocessed_mailbox = \"Processed\"\nbatch_size = 50\n",
        servers.port("TG_IMAP_PORT"),
        servers.env["TG_MAIL_PASSWORD"]
    )
}

/// mailbox → the pid of the instance holding its lease.
fn holders(url: &str) -> HashMap<String, u32> {
    query(url, "SELECT mailbox, holder FROM mailbox_leases WHERE expires_at > CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS BIGINT)")
        .lines()
        .filter_map(|line| {
            let (mailbox, holder) = line.split_once('|')?;
            let pid = holder.split(':').nth(1)?.parse().ok()?;
            Some((mailbox.to_string(), pid))
        })
        .collect()
}

fn count(url: &str, sql: &str) -> usize {
    query(url, sql).parse().unwrap()
}

fn files_in(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    ["new", "cur"]
        .iter()
        .filter_map(|sub| std::fs::read_dir(dir.join(sub)).ok())
        .flat_map(|entries| entries.flatten().map(|e| e.path()))
        .collect()
}

#[test]
fn three_instances_share_two_mailboxes_and_survive_a_sigkill() {
    let servers = mail_servers();
    let run = format!("inst{}", std::process::id());
    let support_a = support_address("inst-a");
    let support_b = support_address("inst-b");
    let url = fresh_postgres("instances");
    let extra = format!(
        "{}{}{}[daemon]\noutbox_interval_secs = 1\nfailover_secs = {FAILOVER_SECS}\n",
        mailbox_table(servers, "a", &support_a, None),
        mailbox_table(servers, "b", &support_b, Some("billing")),
        // The killed instance's claimed mails go out a minute later, not
        // after the default five; a busy Postfix's round stays far below.
        servers.smtp_config("TG_SMTP_PORT").replace(
            "[outbound]\n",
            "[outbound]\nrate_limit_per_hour = 100000\nclaim_secs = 60\n"
        ),
    );
    // Only the customers' acknowledgements: no agent notices to count around.
    let config = sqlite_config_text(&extra)
        .replace(
            "url = \"sqlite://ticketgate.db\"",
            &format!("url = \"{url}\""),
        )
        .replace("support@example.com", &support_a)
        .replace("agents_address = \"team@example.com\"\n", "")
        .replace("oncall_address = \"oncall@example.com\"\n", "");
    let gw = Gateway::with_config(&config);
    let customers: Vec<String> = (0..CUSTOMERS)
        .map(|i| format!("kunde{i}-{run}@customer.test"))
        .collect();
    let mut csv = String::from("organization,email,name,role,locale\n");
    for (i, email) in customers.iter().enumerate() {
        csv.push_str(&format!("Instanzen {run},{email},Kunde {i},key_user,de\n"));
    }
    std::fs::write(gw.path("customers.csv"), csv).unwrap();
    gw.ok(&[
        "users",
        "import",
        "--no-invite",
        gw.path("customers.csv").to_str().unwrap(),
    ]);

    let instances: Vec<Daemon> = (0..3)
        .map(|n| Daemon::start_logging_to(&gw, &format!("instance-{n}.log")))
        .collect();
    wait_until("both mailboxes held", Duration::from_secs(30), || {
        holders(&url).len() == 2
    });
    let shared = holders(&url);
    assert_ne!(shared["a"], shared["b"], "the mailboxes are shared out");
    let report = gw.ok(&["check"]);
    let reader_line = report
        .lines()
        .find(|l| l.contains("imap a reader"))
        .unwrap_or_else(|| panic!("{report}"));
    assert!(reader_line.contains("held by"), "{report}");

    let mail = |mailbox: &str, n: usize| {
        Mail::new(
            &customers[n % CUSTOMERS],
            &format!("Anfrage {run}-{mailbox}{n:04}"),
            "Bitte um Hilfe.",
        )
        .render()
        .into_bytes()
    };
    let batch = |mailbox: &str, range: std::ops::Range<usize>| -> Vec<Vec<u8>> {
        range.map(|n| mail(mailbox, n)).collect()
    };
    servers.append(&support_a, &batch("a", 0..BEFORE_KILL));
    servers.append(&support_b, &batch("b", 0..BEFORE_KILL));

    // Mid-drain, the reader of mailbox a dies without a word.
    wait_until("mailbox a half read", Duration::from_secs(60), || {
        count(&url, "SELECT COUNT(*) FROM tickets") >= 300
    });
    let victim_pid = holders(&url)["a"];
    let victim = instances
        .iter()
        .position(|i| i.pid() == victim_pid)
        .expect("the holder is one of ours");
    instances[victim].signal(libc::SIGKILL);
    let killed_at = Instant::now();
    servers.append(&support_a, &batch("a", BEFORE_KILL..PER_MAILBOX));
    servers.append(&support_b, &batch("b", BEFORE_KILL..PER_MAILBOX));

    wait_until(
        "another instance holds mailbox a",
        Duration::from_secs(FAILOVER_SECS * 4),
        || holders(&url).get("a").is_some_and(|pid| *pid != victim_pid),
    );
    let takeover = killed_at.elapsed();
    eprintln!(
        "mailbox a taken over {:.1} s after the SIGKILL",
        takeover.as_secs_f64()
    );
    // The lease table is looked at every 50 ms, after two IMAP appends.
    assert!(
        takeover <= Duration::from_secs(FAILOVER_SECS + 1),
        "taken over after {takeover:?}"
    );

    let total = 2 * PER_MAILBOX;
    wait_until(
        "every message in a ticket",
        Duration::from_secs(240),
        || count(&url, "SELECT COUNT(*) FROM tickets") >= total,
    );
    wait_until("every notification sent", Duration::from_secs(240), || {
        count(&url, "SELECT COUNT(*) FROM outbox WHERE state <> 'sent'") == 0
    });

    // Exactly one ticket per message, each mailbox's with its category.
    assert_eq!(count(&url, "SELECT COUNT(*) FROM tickets"), total);
    assert_eq!(
        count(&url, "SELECT COUNT(DISTINCT subject) FROM tickets"),
        total,
        "no message became two tickets"
    );
    assert_eq!(
        count(&url, &format!("SELECT COUNT(*) FROM tickets WHERE category = 'billing' AND subject LIKE '%{run}-b%'")),
        PER_MAILBOX
    );
    assert_eq!(count(&url, "SELECT COUNT(*) FROM suspended"), 0);
    let ids = query(&url, "SELECT MIN(id), MAX(id) FROM tickets");
    assert_eq!(
        ids,
        format!("1|{total}"),
        "ticket numbers unique and without gaps"
    );
    for support in [&support_a, &support_b] {
        let maildir = servers.maildir(support);
        assert_eq!(files_in(&maildir).len(), 0, "{support}: INBOX drained");
        assert_eq!(
            files_in(&maildir.join(".Processed")).len(),
            PER_MAILBOX,
            "{support}"
        );
    }

    // Every acknowledgement in its customer's mailbox: once, or (for a
    // round the killed instance was sending) twice with one Message-ID.
    let mut delivered: HashMap<String, Vec<String>> = HashMap::new();
    let subject =
        regex::Regex::new(&format!(r"(?m)^Subject: .*Anfrage {run}-([ab]\d{{4}})")).unwrap();
    let message_id = regex::Regex::new(r"(?mi)^Message-ID: *(\S+)").unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        delivered.clear();
        for customer in &customers {
            for file in files_in(&servers.maildir(customer)) {
                let raw = String::from_utf8_lossy(&std::fs::read(&file).unwrap()).into_owned();
                let Some(key) = subject.captures(&raw) else {
                    continue;
                };
                let id = message_id
                    .captures(&raw)
                    .map(|c| c[1].to_string())
                    .unwrap_or_default();
                delivered.entry(key[1].to_string()).or_default().push(id);
            }
        }
        if delivered.len() >= total || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(
        delivered.len(),
        total,
        "an acknowledgement for every ticket"
    );
    let twice: Vec<_> = delivered.iter().filter(|(_, ids)| ids.len() > 1).collect();
    eprintln!("acknowledgements delivered twice: {}", twice.len());
    assert!(twice.len() <= ROUND, "{} sent twice", twice.len());
    for (key, ids) in &twice {
        assert_eq!(ids.len(), 2, "{key}");
        assert_eq!(ids[0], ids[1], "{key}: a resend keeps its Message-ID");
    }

    for (n, instance) in instances.into_iter().enumerate() {
        if n != victim {
            assert!(
                instance.terminate().success(),
                "instance {n} stopped cleanly"
            );
        }
    }
    assert!(holders(&url).is_empty(), "leases given up at shutdown");
}
