//! Help center accounts: password hashes, sessions, one-time links and the
//! failed sign-ins that throttling counts. Secrets are stored only as
//! their SHA-256 (`crate::accounts::digest`).

use super::Conn;
use crate::domain::account::TokenPurpose;
use crate::domain::sender::Person;

/// A person and their password hash (none before activation).
pub async fn credentials(
    conn: &mut Conn,
    email: &str,
) -> Result<Option<(Person, Option<String>)>, sqlx::Error> {
    let Some(person) = super::directory::person_by_email(conn, email).await? else {
        return Ok(None);
    };
    let hash: Option<String> = sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
        .bind(person.id)
        .fetch_one(&mut *conn)
        .await?;
    Ok(Some((person, hash)))
}

/// Sets a password and ends every session of the person: whoever knew the
/// old one is signed out.
pub async fn set_password(conn: &mut Conn, user_id: i64, hash: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
        .bind(hash)
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM sessions WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub async fn create_session(
    conn: &mut Conn,
    id_hash: &str,
    user_id: i64,
    now: i64,
    expires_at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO sessions (id_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(id_hash)
    .bind(user_id)
    .bind(now)
    .bind(expires_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The person a live session belongs to.
pub async fn session_person(
    conn: &mut Conn,
    id_hash: &str,
    now: i64,
) -> Result<Option<Person>, sqlx::Error> {
    sqlx::query_as(
        "SELECT u.id, u.email, u.name, u.organization_id, u.role, u.locale
         FROM sessions s JOIN users u ON u.id = s.user_id
         WHERE s.id_hash = $1 AND s.expires_at > $2 AND u.active = 1",
    )
    .bind(id_hash)
    .bind(now)
    .fetch_optional(&mut *conn)
    .await
}

pub async fn delete_session(conn: &mut Conn, id_hash: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
        .bind(id_hash)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Stores a new one-time link; earlier unused links of the same purpose
/// stop working (the newest mail is the one that counts).
pub async fn issue_token(
    conn: &mut Conn,
    token_hash: &str,
    user_id: i64,
    purpose: TokenPurpose,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE account_tokens SET used_at = $1
         WHERE user_id = $2 AND purpose = $3 AND used_at IS NULL",
    )
    .bind(now)
    .bind(user_id)
    .bind(purpose.as_str())
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO account_tokens (token_hash, user_id, purpose, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(token_hash)
    .bind(user_id)
    .bind(purpose.as_str())
    .bind(now)
    .bind(now + purpose.lifetime())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The person a valid, unused link names (for showing its form).
pub async fn token_person(
    conn: &mut Conn,
    token_hash: &str,
    purpose: TokenPurpose,
    now: i64,
) -> Result<Option<Person>, sqlx::Error> {
    sqlx::query_as(
        "SELECT u.id, u.email, u.name, u.organization_id, u.role, u.locale
         FROM account_tokens t JOIN users u ON u.id = t.user_id
         WHERE t.token_hash = $1 AND t.purpose = $2 AND t.used_at IS NULL AND t.expires_at > $3
           AND u.active = 1",
    )
    .bind(token_hash)
    .bind(purpose.as_str())
    .bind(now)
    .fetch_optional(&mut *conn)
    .await
}

/// Uses a link up: true when it was valid and unused (only one of two
/// racing requests gets true).
pub async fn use_token(
    conn: &mut Conn,
    token_hash: &str,
    purpose: TokenPurpose,
    now: i64,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE account_tokens SET used_at = $1
         WHERE token_hash = $2 AND purpose = $3 AND used_at IS NULL AND expires_at > $1",
    )
    .bind(now)
    .bind(token_hash)
    .bind(purpose.as_str())
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1)
}

/// Records a wrong password; returns the address's failures since `since`
/// (this one included).
pub async fn record_failure(
    conn: &mut Conn,
    email: &str,
    client: &str,
    now: i64,
    since: i64,
) -> Result<i64, sqlx::Error> {
    sqlx::query("INSERT INTO login_failures (email, client, at) VALUES ($1, $2, $3)")
        .bind(email)
        .bind(client)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    // Old rows are of no use to any count.
    sqlx::query("DELETE FROM login_failures WHERE at < $1")
        .bind(since)
        .execute(&mut *conn)
        .await?;
    sqlx::query_scalar("SELECT COUNT(*) FROM login_failures WHERE email = $1 AND at >= $2")
        .bind(email)
        .bind(since)
        .fetch_one(&mut *conn)
        .await
}

pub async fn client_failures(
    conn: &mut Conn,
    client: &str,
    since: i64,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM login_failures WHERE client = $1 AND at >= $2")
        .bind(client)
        .bind(since)
        .fetch_one(&mut *conn)
        .await
}

pub async fn lock(conn: &mut Conn, email: &str, until: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO login_locks (email, until) VALUES ($1, $2)
         ON CONFLICT (email) DO UPDATE SET until = excluded.until",
    )
    .bind(email)
    .bind(until)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub async fn locked_until(conn: &mut Conn, email: &str) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT until FROM login_locks WHERE email = $1")
        .bind(email)
        .fetch_optional(&mut *conn)
        .await
}

/// Key users and members who have not set a password yet.
pub async fn people_without_password(conn: &mut Conn) -> Result<Vec<Person>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, email, name, organization_id, role, locale FROM users
         WHERE password_hash IS NULL AND active = 1 AND role IN ('key_user', 'member')
         ORDER BY id",
    )
    .fetch_all(&mut *conn)
    .await
}

/// Reset mails queued to `address` since `since` (SPEC 5: at most 3 an
/// hour).
pub async fn reset_mails_since(
    conn: &mut Conn,
    address: &str,
    since: i64,
) -> Result<i64, sqlx::Error> {
    let recipients = serde_json::to_string(&[address]).expect("strings serialize");
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM outbox WHERE event = 'password_reset' AND recipients = $1
           AND created_at >= $2",
    )
    .bind(recipients)
    .bind(since)
    .fetch_one(&mut *conn)
    .await
}
