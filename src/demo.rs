//! `ticketgate demo`: a first look in one command. A directory with a
//! config, the sample directory and mails of `fixtures/`, ingested; a key
//! user with a generated password; then the daemon with the help center on
//! 127.0.0.1 (mail goes to `.eml` files, nothing leaves the machine).

use std::path::Path;

use crate::clock::Clock;
use crate::config::Settings;
use crate::store::Store;

const USERS: &str = include_str!("../fixtures/users.csv");
const MAILS: &[(&str, &[u8])] = &include!(concat!(env!("OUT_DIR"), "/demo_mails.rs"));

/// The key user the demo signs in as.
const DEMO_USER: &str = "anna.schmidt@mueller-maschinenbau.de";

/// Sets the demo up in `dir` (again, if it exists: the config and data
/// are kept, the password is new) and runs it until Ctrl-C.
pub async fn run(dir: &Path, listen: &str) -> Result<(), String> {
    let address: std::net::SocketAddr = listen
        .parse()
        .map_err(|_| format!("--listen {listen:?} is not an address like 127.0.0.1:8080"))?;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let config = dir.join("ticketgate.toml");
    let fresh = !config.exists();
    if fresh {
        std::fs::write(&config, config_text(address))
            .map_err(|e| format!("cannot write {}: {e}", config.display()))?;
        std::fs::write(dir.join("users.csv"), USERS)
            .map_err(|e| format!("cannot write users.csv: {e}"))?;
    }
    let settings = Settings::load(&config).map_err(|e| e.to_string())?;
    let store = Store::open(&settings.database.url)
        .await
        .map_err(|e| format!("cannot open the demo database: {e}"))?;
    let clock = Clock::System;
    let now = clock.now();
    if fresh {
        let entries = crate::directory::parse(USERS.as_bytes())?;
        crate::directory::import(&store, &entries)
            .await
            .map_err(|e| format!("cannot import the sample users: {e}"))?;
        let pipeline = crate::inbound::process::Pipeline::new(&settings);
        // One by one, in file order: ticket numbers as in fixtures/mail/README.md.
        for (_, raw) in MAILS {
            pipeline
                .process_batch(&store, &[raw.to_vec()], now)
                .await
                .map_err(|e| format!("cannot ingest the sample mails: {e}"))?;
        }
    }
    let password = demo_password();
    let hash = crate::accounts::hash_password(&password);
    let mut tx = store.begin().await.map_err(|e| e.to_string())?;
    let person = crate::store::directory::person_by_email(&mut tx, DEMO_USER)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the demo user is missing from the demo database")?;
    crate::store::accounts::set_password(&mut tx, person.id, &hash)
        .await
        .map_err(|e| e.to_string())?;
    tx.commit().await.map_err(|e| e.to_string())?;

    println!("ticketgate demo in {}", dir.display());
    println!(
        "  {} sample mails ingested; mails ticketgate sends are written to {}",
        MAILS.len(),
        dir.join("outbox").display()
    );
    println!();
    println!("  Help center: http://{address}/login");
    println!(
        "  Sign in as {} (key user of Müller Maschinenbau GmbH):",
        person.name
    );
    println!("    email:    {DEMO_USER}");
    println!("    password: {password}");
    println!();
    println!(
        "  Ctrl-C stops the demo. Other commands: ticketgate --config {} --help",
        config.display()
    );
    crate::daemon::run(settings, store, clock).await
}

/// 16 characters from an alphabet without look-alikes (no 0/O, 1/l/I).
fn demo_password() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut random = rand::rngs::OsRng;
    (0..16)
        .map(|_| ALPHABET[random.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

fn config_text(address: std::net::SocketAddr) -> String {
    format!(
        r#"# The ticketgate demo: the sample mails of fixtures/mail, the help center
# on {address}, and mail written to outbox/ as .eml files.
[database]
url = "sqlite://ticketgate.db"

[mail]
support_address = "support@example.com"
agents_address = "team@example.com"
oncall_address = "oncall@example.com"

[outbound]
transport = "file"
dir = "outbox"

[web]
base_url = "http://{address}"
listen = "{address}"

[security]
token_secret = "{secret}"
trusted_authserv_ids = ["mx.example.com"]

[policy]
reopen_days = 14

[categories]
billing = "billing"
onboarding = "onboarding_csm"
dev = "developer_support"
partner = "partner_custom_code"
"#,
        secret = crate::accounts::new_secret()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_carries_every_sample_mail_and_a_valid_config() {
        assert_eq!(MAILS.len(), 24);
        assert!(MAILS.windows(2).all(|w| w[0].0 < w[1].0), "in file order");
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("ticketgate.toml");
        std::fs::write(&config, config_text("127.0.0.1:8080".parse().unwrap())).unwrap();
        let settings = Settings::load(&config).unwrap();
        assert_eq!(settings.web.listen.as_deref(), Some("127.0.0.1:8080"));
        assert_eq!(settings.web.base_url, "http://127.0.0.1:8080");
    }

    #[test]
    fn demo_passwords_pass_the_password_rules() {
        let password = demo_password();
        assert_eq!(password.len(), 16);
        assert_eq!(
            crate::domain::account::password_problem(&password, &password, &[DEMO_USER]),
            None
        );
    }
}
