//! Help center accounts: invitations and reset mails (queued in the outbox
//! with their one-time link), Argon2id password hashes, sessions and
//! sign-in with throttling. The rules are `domain::account`; the SQL is
//! `store::accounts`.

use std::sync::OnceLock;

use argon2::password_hash::{rand_core::OsRng, PasswordHash, SaltString};
use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use rand::RngCore;

use crate::domain::account::{self, Throttle, TokenPurpose};
use crate::domain::decide::Policy;
use crate::domain::notice::{Context, Event, Notice, PersonRef, Recipient};
use crate::domain::sender::{normalize_email, Person};
use crate::store::{self, Conn, Store};

/// A new secret for a cookie or a link: 256 random bits, URL-safe.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    data_encoding::BASE64URL_NOPAD.encode(&bytes)
}

/// What the database keeps of a secret.
pub fn digest(secret: &str) -> String {
    crate::domain::mail::sha256_hex(secret.as_bytes())
}

/// Argon2id with the crate's defaults (OWASP's minimum: 19 MiB, 2 passes).
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("Argon2 with default parameters hashes any password")
        .to_string()
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Checked when the address is unknown or has no password, so that the
/// answer takes as long as for a real account.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| hash_password(&new_secret()))
}

/// Queues an invitation with a fresh activation link for each person;
/// earlier links stop working. Returns how many were queued.
pub async fn invite(
    store: &Store,
    policy: &Policy,
    people: &[Person],
    now: i64,
) -> Result<usize, sqlx::Error> {
    let mut tx = store.begin().await?;
    for person in people {
        queue_link_mail(&mut tx, policy, person, TokenPurpose::Activation, now).await?;
    }
    tx.commit().await?;
    Ok(people.len())
}

/// "Passwort vergessen?": a reset mail when the address is a person's and
/// fewer than three went out this hour; nothing otherwise. The caller
/// answers the same in every case.
pub async fn request_reset(
    store: &Store,
    policy: &Policy,
    email: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let mut tx = store.begin().await?;
    let Some(person) = store::directory::person_by_email(&mut tx, email).await? else {
        return Ok(false);
    };
    let sent = store::accounts::reset_mails_since(&mut tx, &person.email, now - 3_600).await?;
    if sent >= account::RESET_MAILS_PER_HOUR {
        tracing::info!(to = %person.email, "password reset not sent: {sent} this hour already");
        return Ok(false);
    }
    queue_link_mail(&mut tx, policy, &person, TokenPurpose::PasswordReset, now).await?;
    tx.commit().await?;
    Ok(true)
}

async fn queue_link_mail(
    conn: &mut Conn,
    policy: &Policy,
    person: &Person,
    purpose: TokenPurpose,
    now: i64,
) -> Result<(), sqlx::Error> {
    let token = new_secret();
    store::accounts::issue_token(conn, &digest(&token), person.id, purpose, now).await?;
    let organization = store::directory::organization_names(conn, &[person.organization_id])
        .await?
        .pop()
        .map(|(_, name)| name)
        .unwrap_or_default();
    let notice = link_notice(policy, person, &organization, purpose, &token);
    store::outbox::enqueue_all(conn, &[&notice], now).await
}

/// The invitation or reset mail: no ticket, no reply token, just the link.
fn link_notice(
    policy: &Policy,
    person: &Person,
    organization: &str,
    purpose: TokenPurpose,
    token: &str,
) -> Notice {
    let (event, path) = match purpose {
        TokenPurpose::Activation => (Event::Invitation, "activate"),
        TokenPurpose::PasswordReset => (Event::PasswordReset, "password/reset"),
    };
    let english = person.locale.starts_with("en");
    let subject = match (event, english) {
        (Event::Invitation, false) => "Ihr Zugang zum Help Center",
        (Event::Invitation, true) => "Your access to the help center",
        (_, false) => "Neues Passwort für das Help Center",
        (_, true) => "A new password for the help center",
    };
    let mut random = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut random);
    Notice {
        event,
        to: Recipient {
            address: person.email.clone(),
            name: person.name.clone(),
            locale: person.locale.clone(),
        },
        ticket_id: None,
        subject: subject.to_string(),
        message_id: format!(
            "<tg.0.{}.{}@{}>",
            event.as_str(),
            data_encoding::HEXLOWER.encode(&random),
            policy.support.domain
        ),
        in_reply_to: None,
        references: Vec::new(),
        reply_to: policy.support.plain(),
        context: Context {
            recipient: PersonRef {
                name: person.name.clone(),
                email: person.email.clone(),
            },
            organization: organization.to_string(),
            link: format!("{}/{path}/{token}", policy.base_url),
            ..Default::default()
        },
    }
}

/// How a sign-in ended.
#[derive(Debug, Clone, PartialEq)]
pub enum SignIn {
    /// The session cookie's secret.
    Session(String, Person),
    WrongPassword,
    Refused(Throttle),
}

/// Checks a password under the throttling rules; a right one opens a
/// session. Unknown addresses are counted and locked like known ones.
pub async fn sign_in(
    store: &Store,
    email: &str,
    password: &str,
    client: &str,
    now: i64,
) -> Result<SignIn, sqlx::Error> {
    let email = normalize_email(email);
    let since = now - account::THROTTLE_WINDOW_SECS;
    let (throttle, credentials) = {
        let mut conn = store.read().await?;
        let locked = store::accounts::locked_until(&mut conn, &email).await?;
        let client_failures = store::accounts::client_failures(&mut conn, client, since).await?;
        (
            account::throttle(locked, client_failures, now),
            store::accounts::credentials(&mut conn, &email).await?,
        )
    };
    if throttle != Throttle::Allowed {
        return Ok(SignIn::Refused(throttle));
    }
    let (person, hash) = match credentials {
        Some((person, Some(hash))) => (Some(person), hash),
        _ => (None, decoy_hash().to_string()),
    };
    let password = password.to_string();
    let matches = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
        .await
        .unwrap_or(false);
    match person {
        Some(person) if matches => {
            let secret = new_secret();
            let mut tx = store.begin().await?;
            open_session(&mut tx, &secret, person.id, now).await?;
            tx.commit().await?;
            Ok(SignIn::Session(secret, person))
        }
        _ => {
            let mut tx = store.begin().await?;
            let failures =
                store::accounts::record_failure(&mut tx, &email, client, now, since).await?;
            if let Some(until) = account::lock_after_failure(failures, now) {
                store::accounts::lock(&mut tx, &email, until).await?;
                tracing::warn!(%email, "sign-in locked for 15 minutes after {failures} wrong passwords");
            }
            tx.commit().await?;
            Ok(SignIn::WrongPassword)
        }
    }
}

pub async fn open_session(
    conn: &mut Conn,
    secret: &str,
    user_id: i64,
    now: i64,
) -> Result<(), sqlx::Error> {
    store::accounts::create_session(
        conn,
        &digest(secret),
        user_id,
        now,
        now + account::SESSION_SECS,
    )
    .await
}

/// Sets a password by a one-time link (activation or reset): the link is
/// used up, every other session ends, and a new one is opened. `None` when
/// the link is not valid (used, expired, unknown).
pub async fn set_password_by_link(
    store: &Store,
    token: &str,
    purpose: TokenPurpose,
    password: &str,
    now: i64,
) -> Result<Option<(String, Person)>, sqlx::Error> {
    let hash = {
        let password = password.to_string();
        tokio::task::spawn_blocking(move || hash_password(&password))
            .await
            .map_err(|e| sqlx::Error::Protocol(e.to_string()))?
    };
    let token_hash = digest(token);
    let mut tx = store.begin().await?;
    let Some(person) = store::accounts::token_person(&mut tx, &token_hash, purpose, now).await?
    else {
        return Ok(None);
    };
    if !store::accounts::use_token(&mut tx, &token_hash, purpose, now).await? {
        return Ok(None);
    }
    store::accounts::set_password(&mut tx, person.id, &hash).await?;
    // A reset proves the mailbox: an account locked by someone else's
    // guesses opens again.
    store::accounts::lock(&mut tx, &person.email, now).await?;
    let secret = new_secret();
    open_session(&mut tx, &secret, person.id, now).await?;
    tx.commit().await?;
    Ok(Some((secret, person)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_and_verify_only_their_password() {
        let hash = hash_password("Lange-Wiese-42");
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password("Lange-Wiese-42", &hash));
        assert!(!verify_password("Lange-Wiese-43", &hash));
        assert!(!verify_password("Lange-Wiese-42", "not a hash"));
    }

    #[test]
    fn secrets_are_unique_and_stored_only_as_digests() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(digest(&a).len(), 64);
        assert_ne!(digest(&a), a);
    }
}
