//! The deployment as documented: the unit's hardening as systemd rates it,
//! and its command lines booted under the unit's restrictions that matter
//! for paths (a read-only config directory, `UMask=0077`), in a private
//! mount namespace (`unshare`, root needed), since systemd itself does not
//! run as PID 1 here.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{Mail, ANNA, FIXTURES};

const UNIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/ticketgate.service");

#[test]
fn the_unit_is_rated_ok_by_systemd_analyze_security() {
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", UNIT])
        .output()
        .expect("systemd-analyze (Debian's systemd) is installed");
    let report = String::from_utf8_lossy(&out.stdout);
    let level: f64 = report
        .lines()
        .find_map(|l| l.split("exposure level for ticketgate.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{report}"));
    assert!(level <= 3.0, "exposure {level}:\n{report}");

    let unit = std::fs::read_to_string(UNIT).unwrap();
    for line in [
        "UMask=0077",
        "User=ticketgate",
        "StateDirectory=ticketgate",
        "ProtectSystem=strict",
        "ExecStartPre=ticketgate --config /etc/ticketgate/ticketgate.toml check --config-only",
        "ExecStart=ticketgate --config /etc/ticketgate/ticketgate.toml run",
    ] {
        assert!(unit.lines().any(|l| l == line), "the unit lacks {line}");
    }
}

/// Runs `script` in a private mount namespace where `etc` is read-only,
/// with the unit's umask.
fn confined(etc: &Path, script: &str) -> std::process::Output {
    let etc = etc.display();
    Command::new("unshare")
        .args(["--mount", "sh", "-ec"])
        .arg(format!(
            "mount --bind '{etc}' '{etc}'; mount -o remount,ro,bind '{etc}'; umask 0077; {script}"
        ))
        .stdin(Stdio::null())
        .output()
        .expect("unshare runs")
}

#[test]
fn init_system_gives_a_config_that_works_with_a_read_only_etc() {
    let root = tempfile::tempdir().unwrap();
    let etc = root.path().join("etc/ticketgate");
    let state = root.path().join("var/lib/ticketgate");
    std::fs::create_dir_all(&state).unwrap();
    let config = etc.join("ticketgate.toml");
    let bin = env!("CARGO_BIN_EXE_ticketgate");
    let out = Command::new(bin)
        .arg("--config")
        .arg(&config)
        .args(["init", "--system", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mode = std::fs::metadata(&config).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640, "the config holds secrets");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains(&format!(
        "url = \"sqlite://{}/ticketgate.db\"",
        state.display()
    )));
    assert!(!text.contains("change-me"), "a random secret");
    assert!(
        !state.join("ticketgate.db").exists(),
        "the service creates its database as its own user"
    );
    // A mail to go through it.
    std::fs::write(
        root.path().join("mail.eml"),
        Mail::new(ANNA, "Über die Pipe", "Hallo").render(),
    )
    .unwrap();
    let run = |args: &str| format!("'{bin}' --config '{}' {args}", config.display());
    let out = confined(
        &etc,
        &format!(
            "{}; {}; {} < '{}'; {}",
            run("check --config-only"),
            run(&format!("users import --no-invite '{FIXTURES}/users.csv'")),
            run("ingest --mta -"),
            root.path().join("mail.eml").display(),
            run("outbox flush"),
        ),
    );
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("ok    config"), "{stdout}");
    let database = state.join("ticketgate.db");
    assert_eq!(
        std::fs::metadata(&database).unwrap().permissions().mode() & 0o777,
        0o600,
        "customer data for the service alone"
    );
    let sent: Vec<_> = std::fs::read_dir(state.join("outbox"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!sent.is_empty(), "the acknowledgement went out");
    for file in sent {
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600,
            "{}",
            file.display()
        );
    }
    let in_etc: Vec<_> = std::fs::read_dir(&etc).unwrap().collect();
    assert_eq!(in_etc.len(), 1, "nothing but the config in /etc");
}

#[test]
fn a_config_with_relative_paths_in_a_read_only_etc_defers_the_mail() {
    // What `init` without --system writes: paths next to the config. Under
    // the unit's read-only /etc the database cannot be created, and the
    // MTA is told to keep the mail (75), never that it was taken.
    let root = tempfile::tempdir().unwrap();
    let etc = root.path().join("etc");
    std::fs::create_dir_all(&etc).unwrap();
    let config = etc.join("ticketgate.toml");
    std::fs::write(&config, common::sqlite_config_text("")).unwrap();
    std::fs::write(
        root.path().join("mail.eml"),
        Mail::new(ANNA, "Über die Pipe", "Hallo").render(),
    )
    .unwrap();
    let out = confined(
        &etc,
        &format!(
            "'{}' --config '{}' ingest --mta - < '{}' || echo \"exit $?\"",
            env!("CARGO_BIN_EXE_ticketgate"),
            config.display(),
            root.path().join("mail.eml").display()
        ),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("exit 75"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
