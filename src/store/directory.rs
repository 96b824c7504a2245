//! Organizations and people.

use super::{list, Conn};
use crate::domain::sender::{normalize_email, Person, Role};

pub async fn upsert_organization(conn: &mut Conn, name: &str) -> Result<i64, sqlx::Error> {
    if let Some(id) = sqlx::query_scalar("SELECT id FROM organizations WHERE name = $1")
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?
    {
        return Ok(id);
    }
    sqlx::query_scalar("INSERT INTO organizations (name) VALUES ($1) RETURNING id")
        .bind(name)
        .fetch_one(&mut *conn)
        .await
}

/// Inserts or updates a person by (normalized) email.
pub async fn upsert_person(
    conn: &mut Conn,
    organization_id: i64,
    email: &str,
    name: &str,
    role: Role,
    locale: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO users (organization_id, email, name, role, locale) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (email) DO UPDATE SET organization_id = excluded.organization_id,
             name = excluded.name, role = excluded.role, locale = excluded.locale, active = 1",
    )
    .bind(organization_id)
    .bind(normalize_email(email))
    .bind(name)
    .bind(role)
    .bind(locale)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

const PERSON: &str = "SELECT id, email, name, organization_id, role, locale FROM users";

/// An active person by address (a deactivated one is a stranger to mail
/// and to the help center; `people_by_ids` still names them on their old
/// tickets).
pub async fn person_by_email(conn: &mut Conn, email: &str) -> Result<Option<Person>, sqlx::Error> {
    sqlx::query_as(&format!("{PERSON} WHERE email = $1 AND active = 1"))
        .bind(normalize_email(email))
        .fetch_optional(&mut *conn)
        .await
}

/// The people with these (normalized) addresses, in one query.
pub async fn people_by_emails(
    conn: &mut Conn,
    emails: &[&str],
) -> Result<Vec<Person>, sqlx::Error> {
    if emails.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "{PERSON} WHERE active = 1 AND email IN ({})",
        list(conn, emails.len())
    );
    let mut query = sqlx::query_as(&sql);
    for email in emails {
        query = query.bind(*email);
    }
    query.fetch_all(&mut *conn).await
}

/// The active people with these ids, in one query (a deactivated
/// requester is not told of their old tickets any more).
pub async fn people_by_ids(conn: &mut Conn, ids: &[i64]) -> Result<Vec<Person>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "{PERSON} WHERE active = 1 AND id IN ({})",
        list(conn, ids.len())
    );
    let mut query = sqlx::query_as(&sql);
    for id in ids {
        query = query.bind(*id);
    }
    query.fetch_all(&mut *conn).await
}

/// Organization names by id, in one query.
pub async fn organization_names(
    conn: &mut Conn,
    ids: &[i64],
) -> Result<Vec<(i64, String)>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT id, name FROM organizations WHERE id IN ({})",
        list(conn, ids.len())
    );
    let mut query = sqlx::query_as(&sql);
    for id in ids {
        query = query.bind(*id);
    }
    query.fetch_all(&mut *conn).await
}

/// Deactivates a person and ends their sessions; false when the address
/// names nobody active.
pub async fn deactivate(conn: &mut Conn, email: &str) -> Result<bool, sqlx::Error> {
    let email = normalize_email(email);
    let changed = sqlx::query("UPDATE users SET active = 0 WHERE email = $1 AND active = 1")
        .bind(&email)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    sqlx::query("DELETE FROM sessions WHERE user_id IN (SELECT id FROM users WHERE email = $1)")
        .bind(&email)
        .execute(&mut *conn)
        .await?;
    Ok(changed == 1)
}

/// The addresses of active people (for `users import --sync`).
pub async fn active_emails(conn: &mut Conn) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT email FROM users WHERE active = 1 ORDER BY email")
        .fetch_all(&mut *conn)
        .await
}

/// The active key users of these organizations, by name.
pub async fn key_users_of(
    conn: &mut Conn,
    organizations: &[i64],
) -> Result<Vec<Person>, sqlx::Error> {
    if organizations.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "{PERSON} WHERE active = 1 AND role = 'key_user' AND organization_id IN ({}) ORDER BY name",
        list(conn, organizations.len())
    );
    let mut query = sqlx::query_as(&sql);
    for id in organizations {
        query = query.bind(*id);
    }
    query.fetch_all(&mut *conn).await
}
