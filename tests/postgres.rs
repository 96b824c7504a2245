//! The same behaviour on PostgreSQL as on SQLite: the PostgreSQL running on
//! this machine (127.0.0.1:5432, trust auth); each test creates its own
//! database and drops it at the end.

mod common;

use common::database::{psql, SERVER};
use common::{sqlite_config_text as config_text, Gateway, ANNA, FIXTURES, LENA};
use serde_json::Value;

/// A fresh database, dropped when the test ends.
struct Database {
    name: String,
}

impl Database {
    fn create(test: &str) -> Database {
        let name = format!("ticketgate_t_{test}_{}", std::process::id());
        psql(&format!("DROP DATABASE IF EXISTS {name}"));
        psql(&format!("CREATE DATABASE {name}"));
        Database { name }
    }

    fn url(&self) -> String {
        format!("{SERVER}/{}", self.name)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        psql(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}

/// A gateway whose database is `url`.
fn gateway_on(url: &str) -> Gateway {
    let gw = Gateway::on_sqlite();
    let config = config_text("").replace(
        "url = \"sqlite://ticketgate.db\"",
        &format!("url = \"{url}\""),
    );
    std::fs::write(&gw.config, config).unwrap();
    gw.ok(&[
        "users",
        "import",
        "--no-invite",
        &format!("{FIXTURES}/users.csv"),
    ]);
    gw
}

/// What a run of the sample mailbox leaves, as the CLI shows it.
fn story(gw: &mut Gateway) -> Vec<Value> {
    gw.at("2026-11-27T15:00:00Z");
    let mut files: Vec<_> = std::fs::read_dir(format!("{FIXTURES}/mail"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    files.sort();
    let mut seen = gw.ingest_files(&files);
    gw.ok(&[
        "ticket",
        "reply",
        "1",
        "--agent",
        LENA,
        "--body",
        "Erledigt.",
        "--solve",
    ]);
    gw.at("2026-12-20T15:00:00Z");
    gw.ok(&["tick"]);
    seen.extend(
        gw.tickets()
            .iter()
            .map(|t| gw.ticket(t["id"].as_i64().unwrap())),
    );
    // Message-IDs we generate are random; everything else must match.
    seen.extend(gw.outbox().into_iter().map(|mut row| {
        row["message_id"] = Value::Null;
        row
    }));
    seen.extend(gw.suspended().into_iter().map(|mut row| {
        row["id"] = Value::Null;
        row
    }));
    seen
}

#[test]
fn the_sample_mailbox_gives_the_same_tickets_notifications_and_queue_on_both() {
    let database = Database::create("story");
    let mut on_postgres = gateway_on(&database.url());
    let mut on_sqlite = gateway_on("sqlite://ticketgate.db");
    let postgres = story(&mut on_postgres);
    let sqlite = story(&mut on_sqlite);
    assert!(postgres.len() > 40, "{}", postgres.len());
    for (pg, lite) in postgres.iter().zip(&sqlite) {
        assert_eq!(pg, lite);
    }
    assert_eq!(postgres.len(), sqlite.len());
    let closed = on_postgres.json_lines(&["ticket", "list", "--json", "--status", "closed"]);
    assert!(
        !closed.is_empty(),
        "tick closed the solved ticket on PostgreSQL too"
    );
}

#[tokio::test]
async fn help_center_accounts_and_lists_work_on_postgres() {
    let database = Database::create("accounts");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ticketgate.toml");
    std::fs::write(
        &config,
        config_text("").replace(
            "url = \"sqlite://ticketgate.db\"",
            &format!("url = \"{}\"", database.url()),
        ),
    )
    .unwrap();
    let settings = ticketgate::config::Settings::load(&config).unwrap();
    let store = ticketgate::store::Store::open(&settings.database.url)
        .await
        .unwrap();
    let csv = std::fs::read(format!("{FIXTURES}/users.csv")).unwrap();
    let entries = ticketgate::directory::parse(&csv).unwrap();
    let new = ticketgate::directory::import(&store, &entries)
        .await
        .unwrap();
    assert_eq!(new.len(), 7);
    let now = 1_796_000_000;
    let anna = new.iter().find(|p| p.email == ANNA).unwrap().clone();
    ticketgate::accounts::invite(&store, &settings.policy(), std::slice::from_ref(&anna), now)
        .await
        .unwrap();
    let mut conn = store.acquire().await.unwrap();
    let context: String =
        sqlx::query_scalar("SELECT context FROM outbox WHERE event = 'invitation'")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    drop(conn);
    let context: Value = serde_json::from_str(&context).unwrap();
    let token = context["link"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    use ticketgate::accounts::SignIn;
    use ticketgate::domain::account::TokenPurpose;
    let (_, person) = ticketgate::accounts::set_password_by_link(
        &store,
        &token,
        TokenPurpose::Activation,
        "Lange-Wiese-am-Bach-42",
        now,
    )
    .await
    .unwrap()
    .expect("the link works once");
    assert_eq!(person.email, ANNA);
    assert!(ticketgate::accounts::set_password_by_link(
        &store,
        &token,
        TokenPurpose::Activation,
        "Lange-Wiese-am-Bach-42",
        now
    )
    .await
    .unwrap()
    .is_none());
    for _ in 0..10 {
        let wrong = ticketgate::accounts::sign_in(&store, ANNA, "falsch", "192.0.2.1", now)
            .await
            .unwrap();
        assert_eq!(wrong, SignIn::WrongPassword);
    }
    let locked =
        ticketgate::accounts::sign_in(&store, ANNA, "Lange-Wiese-am-Bach-42", "192.0.2.1", now)
            .await
            .unwrap();
    assert!(matches!(locked, SignIn::Refused(_)), "{locked:?}");
    let later = ticketgate::accounts::sign_in(
        &store,
        ANNA,
        "Lange-Wiese-am-Bach-42",
        "192.0.2.2",
        now + 901,
    )
    .await
    .unwrap();
    let SignIn::Session(secret, _) = later else {
        panic!("{later:?}");
    };
    let mut conn = store.read().await.unwrap();
    let signed_in = ticketgate::store::accounts::session_person(
        &mut conn,
        &ticketgate::accounts::digest(&secret),
        now + 902,
    )
    .await
    .unwrap();
    assert_eq!(signed_in.map(|p| p.email), Some(ANNA.to_string()));
    let page = ticketgate::store::tickets::page(
        &mut conn,
        ticketgate::store::tickets::Scope::Organization(anna.organization_id),
        None,
        25,
        0,
    )
    .await
    .unwrap();
    assert!(page.is_empty());
    drop(conn);
    store.close().await;
}

#[test]
fn db_copy_moves_a_sqlite_database_into_an_empty_postgres_one() {
    let mut on_sqlite = gateway_on("sqlite://ticketgate.db");
    story(&mut on_sqlite);
    let everything = |gw: &Gateway| -> Vec<Value> {
        let mut seen: Vec<Value> = gw
            .tickets()
            .iter()
            .map(|t| gw.ticket(t["id"].as_i64().unwrap()))
            .collect();
        seen.extend(gw.outbox());
        seen.extend(gw.suspended());
        seen
    };
    let before = everything(&on_sqlite);
    assert!(before.len() > 30, "{}", before.len());

    let database = Database::create("copy");
    let out = on_sqlite.run(&["db", "copy", "--to", &database.url()]);
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(printed.contains("tickets: "), "{printed}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the row counts match"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(everything(&on_sqlite), before, "the source is untouched");

    // The same gateway on the copy shows the same of everything.
    let sqlite_config = std::fs::read_to_string(&on_sqlite.config).unwrap();
    std::fs::write(
        &on_sqlite.config,
        sqlite_config.replace(
            "url = \"sqlite://ticketgate.db\"",
            &format!("url = \"{}\"", database.url()),
        ),
    )
    .unwrap();
    let on_copy = on_sqlite;
    let after = everything(&on_copy);
    assert_eq!(after.len(), before.len());
    for (copied, original) in after.iter().zip(&before) {
        assert_eq!(copied, original);
    }
    // Numbering goes on after the copied tickets.
    let highest = before
        .iter()
        .filter_map(|v| v["id"].as_i64().filter(|_| v.get("comments").is_some()))
        .max()
        .unwrap();
    let next = on_copy.ingest(&common::Mail::new(ANNA, "Nach dem Umzug", "Hallo").render());
    assert_eq!(next["outcome"], "created");
    assert_eq!(next["ticket"], highest + 1);

    // A second copy into the now filled database is refused.
    let again = Gateway::on_sqlite().run(&["db", "copy", "--to", &database.url()]);
    assert_eq!(again.status.code(), Some(1));
    let error = String::from_utf8_lossy(&again.stderr);
    assert!(
        error.contains("not empty") && error.contains("tickets"),
        "{error}"
    );
}

#[test]
fn a_scheduler_job_runs_once_whichever_instances_run_it() {
    let database = Database::create("tick");
    let mut gw = gateway_on(&database.url());
    let mut solved = Vec::new();
    for n in 0..5 {
        let id = gw.ingest(&common::Mail::new(ANNA, &format!("Frage {n}"), "Hallo").render())
            ["ticket"]
            .as_i64()
            .unwrap();
        gw.ok(&["ticket", "solve", &id.to_string()]);
        solved.push(id);
    }
    // Four instances run the due job at the same instant.
    gw.at("2026-12-20T10:00:00Z");
    let runs: Vec<_> = (0..4)
        .map(|_| {
            std::process::Command::new(env!("CARGO_BIN_EXE_ticketgate"))
                .args(["--config", gw.config.to_str().unwrap()])
                .args(["--now", &gw.now, "tick", "--json"])
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut closed: Vec<i64> = Vec::new();
    for run in runs {
        let out = run.wait_with_output().unwrap();
        assert!(out.status.success());
        let first = String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .unwrap();
        assert_eq!(first["job"], "auto_close");
        closed.extend(
            first["closed"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_i64().unwrap()),
        );
    }
    closed.sort();
    assert_eq!(closed, solved, "each ticket closed by exactly one of them");
    for id in solved {
        assert_eq!(gw.ticket(id)["status"], "closed");
    }
}
