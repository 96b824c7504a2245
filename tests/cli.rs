//! The command line as operators meet it: set-up, errors and exit codes,
//! stdin delivery, filters.

mod common;

use common::*;
use std::process::Command;

fn ticketgate(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ticketgate"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn init_writes_a_sample_config_and_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tg.toml");
    let out = ticketgate(&["--config", config.to_str().unwrap(), "init"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(
        text.contains("support_address") && text.contains("# "),
        "commented sample"
    );
    assert!(
        dir.path().join("ticketgate.db").exists(),
        "database next to the config"
    );
    // A second init keeps the operator's file.
    std::fs::write(
        &config,
        text.replace("support@example.com", "help@example.org"),
    )
    .unwrap();
    assert!(ticketgate(&["--config", config.to_str().unwrap(), "init"])
        .status
        .success());
    assert!(std::fs::read_to_string(&config)
        .unwrap()
        .contains("help@example.org"));
}

#[test]
fn config_errors_exit_2_and_name_the_file_and_key() {
    let out = ticketgate(&[
        "--config",
        "/nonexistent/tg.toml",
        "ticket",
        "list",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/tg.toml"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tg.toml");
    for (broken, key) in [
        (
            config_text("").replace("support@example.com", "nobody"),
            "support_address",
        ),
        (
            config_text("").replace("reopen_days = 14", "reopen_days = \"zwei\""),
            "reopen_days",
        ),
        (config_text("[categories]\nbilling = \"geld\"\n"), "geld"),
        (
            config_text("[outbound]\ntransport = \"pigeon\"\n"),
            "pigeon",
        ),
        (
            config_text("").replace("[security]", "[securty]"),
            "securty",
        ),
    ] {
        std::fs::write(&config, broken).unwrap();
        let out = ticketgate(&["--config", config.to_str().unwrap(), "ticket", "list"]);
        assert_eq!(out.status.code(), Some(2), "{key}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(key) && err.contains("tg.toml"), "{key}: {err}");
    }
}

#[test]
fn usage_errors_exit_2() {
    let gw = Gateway::new();
    assert_eq!(gw.run(&["ticket", "frobnicate"]).status.code(), Some(2));
    assert_eq!(
        gw.run(&["ticket", "list", "--status", "sleeping"])
            .status
            .code(),
        Some(2)
    );
    let out = Command::new(env!("CARGO_BIN_EXE_ticketgate"))
        .args([
            "--config",
            gw.config.to_str().unwrap(),
            "--now",
            "yesterday",
            "tick",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("yesterday"));
}

#[test]
fn failures_exit_1() {
    let gw = Gateway::new();
    let missing = gw.run(&["ticket", "show", "99", "--json"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(missing.stdout.is_empty());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("#99"));

    let id = gw.ingest(&Mail::new(ANNA, "Frage", "x").render())["ticket"].to_string();
    let not_agent = gw.run(&["ticket", "reply", &id, "--agent", ANNA, "--body", "x"]);
    assert_eq!(
        not_agent.status.code(),
        Some(1),
        "customers do not answer as agents"
    );
    assert_eq!(gw.ticket(1)["comments"].as_array().unwrap().len(), 1);
}

#[test]
fn a_bad_directory_row_names_its_line_and_imports_nothing() {
    let gw = Gateway::new();
    let csv = gw.path("bad.csv");
    std::fs::write(
        &csv,
        "organization,email,name,role,locale\nNeu GmbH,a@neu.example,A,key_user,de\nNeu GmbH,b@neu.example,B,chef,de\n",
    )
    .unwrap();
    let out = gw.run(&["users", "import", csv.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 3") && err.contains("chef"), "{err}");
    let report = gw.ingest(&Mail::new("a@neu.example", "Hallo", "x").render());
    assert_eq!(
        report["reason"], "unknown_sender",
        "line 2 was not imported either"
    );
}

#[test]
fn the_directory_is_updated_in_place() {
    let gw = Gateway::new();
    let csv = gw.path("promote.csv");
    std::fs::write(
        &csv,
        "organization,email,name,role,locale\nMüller Maschinenbau GmbH,PETER.WEBER@mueller-maschinenbau.de,Peter Weber,key_user,de\n",
    )
    .unwrap();
    gw.ok(&["users", "import", csv.to_str().unwrap()]);
    let report = gw.ingest(&Mail::new(PETER, "Jetzt darf ich", "x").render());
    assert_eq!(report["outcome"], "created");
}

#[test]
fn ingest_reads_stdin_for_pipe_delivery() {
    let gw = Gateway::new();
    let mail = Mail::new(JOHN, "Piped", "From Postfix.");
    let out = gw.run_with_stdin(&["ingest", "--json", "-"], Some(mail.render().as_bytes()));
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "only JSON on stdout: {stdout}");
    let report: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(report["outcome"], "created");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("created 1"), "summary on stderr: {stderr}");
}

#[test]
fn an_unreadable_file_is_reported_and_the_rest_ingested() {
    let gw = Gateway::new();
    let good = gw.path("good.eml");
    std::fs::write(&good, Mail::new(JOHN, "Good", "x").render()).unwrap();
    let out = gw.run(&[
        "ingest",
        "--json",
        "/nonexistent.eml",
        good.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent.eml"));
    assert_eq!(gw.tickets().len(), 1);
}

#[test]
fn ticket_list_filters() {
    let gw = Gateway::new();
    gw.ingest(&Mail::new(ANNA, "A1", "x").render());
    gw.ingest(&Mail::new(JONAS, "A2", "x").render());
    gw.ingest(&Mail::new(JOHN, "B1", "x").render());
    gw.ok(&["ticket", "solve", "2"]);

    let subjects = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["ticket", "list", "--json"];
        all.extend_from_slice(args);
        gw.json_lines(&all)
            .iter()
            .map(|t| t["subject"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(subjects(&[]), ["A1", "A2", "B1"]);
    assert_eq!(
        subjects(&["--org", "Müller Maschinenbau GmbH"]),
        ["A1", "A2"]
    );
    assert_eq!(
        subjects(&["--requester", "John.Carter@acme-logistics.co.uk"]),
        ["B1"]
    );
    assert_eq!(subjects(&["--status", "solved"]), ["A2"]);
    assert_eq!(
        subjects(&["--org", "Müller Maschinenbau GmbH", "--status", "open"]),
        ["A1"]
    );
    let line = &gw.tickets()[0];
    for field in ["id", "subject", "status", "organization", "requester"] {
        assert!(!line[field].is_null(), "{field}");
    }
}

#[test]
fn pipe_delivery_asks_the_mta_to_retry_when_nothing_could_be_committed() {
    let gw = Gateway::on_sqlite();
    let mail = Mail::new(JOHN, "Piped", "x").render();
    // The database file becomes unwritable garbage.
    std::fs::write(gw.path("ticketgate.db"), "not a database").unwrap();
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(gw.path(&format!("ticketgate.db{suffix}")));
    }
    let out = gw.run_with_stdin(&["ingest", "--mta", "-"], Some(mail.as_bytes()));
    assert_eq!(
        out.status.code(),
        Some(75),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = gw.run_with_stdin(&["ingest", "-"], Some(mail.as_bytes()));
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn check_fails_on_the_sample_secret_and_on_a_database_it_cannot_open() {
    let gw = Gateway::on_sqlite();
    let config = std::fs::read_to_string(&gw.config).unwrap();
    std::fs::write(
        &gw.config,
        config.replace(
            &format!("token_secret = \"{SECRET}\""),
            "token_secret = \"change-me\"",
        ),
    )
    .unwrap();
    let out = gw.run(&["check", "--config-only"]);
    let report = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(
        report.contains("FAIL  token_secret:") && report.contains("change-me"),
        "{report}"
    );
    assert!(
        !report.contains("database"),
        "--config-only connects to nothing: {report}"
    );

    std::fs::write(
        &gw.config,
        config.replace(
            "url = \"sqlite://ticketgate.db\"",
            "url = \"sqlite:///nonexistent-dir/ticketgate.db\"",
        ),
    )
    .unwrap();
    let out = gw.run(&["check"]);
    let report = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(report.contains("ok    token_secret"), "{report}");
    assert!(
        report.contains("FAIL  database: sqlite:///nonexistent-dir/ticketgate.db"),
        "{report}"
    );
    assert!(
        report.contains("outbound"),
        "the checklist goes on: {report}"
    );
}

#[test]
fn removed_and_unlisted_people_are_strangers_but_their_tickets_stay() {
    let gw = Gateway::new();
    let first = gw.ingest(&Mail::new(PETER, "Frage", "x").render());
    assert_eq!(first["reason"], "not_key_user");
    let ticket = gw.ingest(&Mail::new(JONAS, "Druckerproblem", "Drucker druckt nicht.").render());
    assert_eq!(ticket["outcome"], "created");

    gw.ok(&["users", "remove", JONAS]);
    let after = gw.ingest(&Mail::new(JONAS, "Noch eins", "y").render());
    assert_eq!(after["reason"], "unknown_sender");
    assert_eq!(gw.ticket(1)["requester"], JONAS, "the ticket stays his");
    let again = gw.run(&["users", "remove", JONAS]);
    assert_eq!(again.status.code(), Some(1));

    // --sync: whoever is not in the file is deactivated; a listed one is back.
    let csv = gw.path("only-anna-and-jonas.csv");
    std::fs::write(
        &csv,
        format!(
            "organization,email,name,role,locale\nMüller Maschinenbau GmbH,{ANNA},Anna Schmidt,key_user,de\n\
             Müller Maschinenbau GmbH,{JONAS},Jonas Becker,key_user,de\n"
        ),
    )
    .unwrap();
    let out = gw.run(&[
        "users",
        "import",
        "--no-invite",
        "--sync",
        csv.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains(&format!("deactivated {PETER}")), "{log}");
    assert!(log.contains(&format!("deactivated {JOHN}")), "{log}");
    assert_eq!(
        gw.ingest(&Mail::new(JONAS, "Zurück", "z").render())["outcome"],
        "created"
    );
    assert_eq!(
        gw.ingest(&Mail::new(JOHN, "Hello", "z").render())["reason"],
        "unknown_sender"
    );
}

#[test]
fn suspended_show_prints_reason_headers_and_text() {
    let gw = Gateway::new();
    gw.ingest(&Mail::new("fremd@unknown.example", "Angebot", "Bitte um ein Angebot.").render());
    let held = gw.suspended();
    let id = held[0]["id"].as_i64().unwrap().to_string();
    let shown = gw.ok(&["suspended", "show", &id]);
    assert!(shown.contains("reason:     unknown_sender"), "{shown}");
    assert!(shown.contains("From: fremd@unknown.example"), "{shown}");
    assert!(shown.contains("Subject: Angebot"), "{shown}");
    assert!(shown.contains("Bitte um ein Angebot."), "{shown}");
    assert_eq!(gw.run(&["suspended", "show", "999"]).status.code(), Some(1));
}

#[test]
fn an_answer_can_come_from_a_file_or_stdin() {
    let gw = Gateway::new();
    gw.ingest(&Mail::new(ANNA, "Export", "x").render());
    let answer = gw.path("answer.txt");
    std::fs::write(&answer, "Zeile eins.\n\nZeile zwei.\n").unwrap();
    gw.ok(&[
        "ticket",
        "reply",
        "1",
        "--agent",
        LENA,
        "--body-file",
        answer.to_str().unwrap(),
    ]);
    let out = gw.run_with_stdin(
        &["ticket", "reply", "1", "--agent", LENA, "--body-file", "-"],
        Some("Von stdin.".as_bytes()),
    );
    assert!(out.status.success());
    let comments = gw.ticket(1)["comments"].as_array().unwrap().clone();
    assert_eq!(comments[1]["body"], "Zeile eins.\n\nZeile zwei.\n");
    assert_eq!(comments[2]["body"], "Von stdin.");
    assert_eq!(
        gw.run(&["ticket", "reply", "1", "--agent", LENA])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn completions_and_the_man_page_come_from_the_same_definitions() {
    let out = Command::new(env!("CARGO_BIN_EXE_ticketgate"))
        .args(["completions", "bash"])
        .output()
        .unwrap();
    let script = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && script.contains("suspended") && script.contains("--body-file"));
    let out = Command::new(env!("CARGO_BIN_EXE_ticketgate"))
        .arg("man")
        .output()
        .unwrap();
    let man = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && man.contains(".TH ticketgate"),
        "{man}"
    );
    assert!(man.contains("Exit codes"), "{man}");
    let help = Command::new(env!("CARGO_BIN_EXE_ticketgate"))
        .args(["ticket", "list", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("[possible values: open, pending, solved, closed]"),
        "{help}"
    );
}

#[test]
fn ingest_takes_a_maildir_and_an_mbox() {
    let gw = Gateway::new();
    let maildir = gw.path("Maildir");
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(maildir.join(sub)).unwrap();
    }
    std::fs::write(
        maildir.join("cur/1.host:2,S"),
        Mail::new(ANNA, "Aus dem Maildir", "Eins").render(),
    )
    .unwrap();
    std::fs::write(
        maildir.join("new/2.host"),
        Mail::new(JOHN, "From the Maildir", "Two").render(),
    )
    .unwrap();
    let mbox = gw.path("archive.mbox");
    let mut text = String::new();
    for (from, subject) in [(ANNA, "Aus der mbox"), (JONAS, "Noch eine")] {
        text.push_str(&format!("From {from} Mon Nov 23 08:00:00 2026\n"));
        text.push_str(
            &Mail::new(from, subject, "Text")
                .render()
                .replace("\r\n", "\n"),
        );
        text.push_str("\n\n");
    }
    std::fs::write(&mbox, text).unwrap();
    let lines = gw.json_lines(&[
        "ingest",
        "--json",
        maildir.to_str().unwrap(),
        mbox.to_str().unwrap(),
    ]);
    let outcomes: Vec<&str> = lines
        .iter()
        .map(|l| l["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["created"; 4]);
    let mut subjects = gw.subjects();
    subjects.sort();
    assert_eq!(
        subjects,
        [
            "Aus dem Maildir",
            "Aus der mbox",
            "From the Maildir",
            "Noch eine"
        ]
    );
    let plain_dir = gw.path("notamaildir");
    std::fs::create_dir(&plain_dir).unwrap();
    let out = gw.run(&["ingest", plain_dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a Maildir"));
}

#[test]
fn unreadable_inputs_and_an_unreachable_database_are_failures() {
    let gw = Gateway::on_sqlite();
    let missing = gw.path("missing.csv");
    let csv = gw.run(&["users", "import", missing.to_str().unwrap()]);
    let mail = gw.run(&["ingest", gw.path("missing.eml").to_str().unwrap()]);
    assert_eq!(csv.status.code(), Some(1));
    assert_eq!(
        mail.status.code(),
        Some(1),
        "the same for a mail as for a CSV"
    );
    assert!(String::from_utf8_lossy(&csv.stderr).contains("missing.csv"));

    let config = std::fs::read_to_string(&gw.config).unwrap().replace(
        "url = \"sqlite://ticketgate.db\"",
        "url = \"postgres://127.0.0.1:1/none\"",
    );
    std::fs::write(&gw.config, config).unwrap();
    let out = gw.run(&["ticket", "list"]);
    let err = String::from_utf8_lossy(&out.stderr);
    // A server that is not there is no config error: exit 1, naming it.
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot open the database postgres://127.0.0.1:1/none"),
        "{err}"
    );
}

#[test]
fn secrets_come_from_systemd_credentials() {
    let gw = Gateway::new();
    let config = std::fs::read_to_string(&gw.config).unwrap().replace(
        &format!("token_secret = \"{SECRET}\""),
        "token_secret = \"credential:token_secret\"",
    );
    std::fs::write(&gw.config, config).unwrap();
    let credentials = gw.path("credentials");
    std::fs::create_dir(&credentials).unwrap();
    std::fs::write(
        credentials.join("token_secret"),
        "0123456789abcdef0123456789abcdef\n",
    )
    .unwrap();
    let with = Command::new(env!("CARGO_BIN_EXE_ticketgate"))
        .args([
            "--config",
            gw.config.to_str().unwrap(),
            "check",
            "--config-only",
        ])
        .env("CREDENTIALS_DIRECTORY", &credentials)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&with.stdout);
    assert!(
        with.status.success() && report.contains("ok    token_secret"),
        "{report}"
    );
    let without = Command::new(env!("CARGO_BIN_EXE_ticketgate"))
        .args([
            "--config",
            gw.config.to_str().unwrap(),
            "check",
            "--config-only",
        ])
        .env_remove("CREDENTIALS_DIRECTORY")
        .output()
        .unwrap();
    assert_eq!(without.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&without.stderr).contains("LoadCredential"));
}
