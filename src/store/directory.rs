//! Organizations and people.

use sqlx::Row;

use super::Conn;
use crate::domain::sender::{normalize_email, Person, Role};

pub async fn upsert_organization(conn: &mut Conn, name: &str) -> Result<i64, sqlx::Error> {
    if let Some(row) = sqlx::query("SELECT id FROM organizations WHERE name = $1")
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?
    {
        return row.try_get("id");
    }
    sqlx::query("INSERT INTO organizations (name) VALUES ($1) RETURNING id")
        .bind(name)
        .fetch_one(&mut *conn)
        .await?
        .try_get("id")
}

/// Inserts or updates a person by (lowercased) email.
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
             name = excluded.name, role = excluded.role, locale = excluded.locale",
    )
    .bind(organization_id)
    .bind(normalize_email(email))
    .bind(name)
    .bind(role.as_str())
    .bind(locale)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

const PERSON_COLUMNS: &str = "id, email, name, organization_id, role, locale";

fn person_from_row(row: &sqlx::any::AnyRow) -> Result<Person, sqlx::Error> {
    let role: String = row.try_get("role")?;
    Ok(Person {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        name: row.try_get("name")?,
        organization_id: row.try_get("organization_id")?,
        role: Role::parse(&role).ok_or_else(|| {
            sqlx::Error::Decode(format!("unknown role {role:?} in the directory").into())
        })?,
        locale: row.try_get("locale")?,
    })
}

pub async fn person_by_email(conn: &mut Conn, email: &str) -> Result<Option<Person>, sqlx::Error> {
    sqlx::query(&format!(
        "SELECT {PERSON_COLUMNS} FROM users WHERE email = $1"
    ))
    .bind(normalize_email(email))
    .fetch_optional(&mut *conn)
    .await?
    .as_ref()
    .map(person_from_row)
    .transpose()
}

pub async fn person_by_id(conn: &mut Conn, id: i64) -> Result<Option<Person>, sqlx::Error> {
    sqlx::query(&format!("SELECT {PERSON_COLUMNS} FROM users WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .as_ref()
        .map(person_from_row)
        .transpose()
}
