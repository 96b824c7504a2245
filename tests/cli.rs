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
    let gw = Gateway::new();
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
