//! The customer directory from CSV (`organization,email,name,role,locale`):
//! every row is checked before anything is written, so a bad file changes
//! nothing.

use crate::domain::sender::{Person, Role};
use crate::store::{self, Store};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub organization: String,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub locale: String,
}

const COLUMNS: [&str; 5] = ["organization", "email", "name", "role", "locale"];

/// Parses the CSV. Fails with the line number and what is wrong there.
pub fn parse(data: &[u8]) -> Result<Vec<Entry>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(data);
    let headers = reader
        .headers()
        .map_err(|e| format!("line 1: cannot read the header row ({e})"))?
        .clone();
    let position = |column: &str| {
        headers
            .iter()
            .position(|h| {
                h.trim_start_matches('\u{feff}')
                    .eq_ignore_ascii_case(column)
            })
            .ok_or_else(|| {
                format!(
                    "line 1: the header row has no column {column:?} (expected {})",
                    COLUMNS.join(",")
                )
            })
    };
    let index: Vec<usize> = COLUMNS
        .iter()
        .map(|c| position(c))
        .collect::<Result<_, _>>()?;

    let mut entries: Vec<Entry> = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            format!("line {line}: {e}")
        })?;
        let line = record.position().map_or(0, |p| p.line());
        let field = |i: usize| record.get(index[i]).unwrap_or_default().to_string();
        let (organization, email, name, role, locale) = (
            field(0),
            crate::domain::sender::normalize_email(&field(1)),
            field(2),
            field(3),
            field(4),
        );
        if organization.is_empty() {
            return Err(format!("line {line}: organization is empty"));
        }
        if !is_plausible_email(&email) {
            return Err(format!("line {line}: {email:?} is not an email address"));
        }
        let role = role
            .trim()
            .to_ascii_lowercase()
            .parse::<Role>()
            .map_err(|_| {
                format!("line {line}: role {role:?} is not one of key_user, member, agent")
            })?;
        let locale = if locale.is_empty() {
            "de".to_string()
        } else {
            locale.to_lowercase()
        };
        if entries.iter().any(|e| e.email == email) {
            return Err(format!("line {line}: {email} appears twice"));
        }
        entries.push(Entry {
            organization,
            email,
            name,
            role,
            locale,
        });
    }
    Ok(entries)
}

fn is_plausible_email(email: &str) -> bool {
    match email.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty() && domain.contains('.') && !email.contains(char::is_whitespace)
        }
        None => false,
    }
}

/// Writes the entries in one transaction: all or nothing.
/// Loads or updates the entries in one transaction; returns the people
/// who were not in the directory before (whom an invitation welcomes).
pub async fn import(store: &Store, entries: &[Entry]) -> Result<Vec<Person>, sqlx::Error> {
    let mut tx = store.begin().await?;
    let mut new = Vec::new();
    for entry in entries {
        let organization_id =
            store::directory::upsert_organization(&mut tx, &entry.organization).await?;
        let known = store::directory::person_by_email(&mut tx, &entry.email)
            .await?
            .is_some();
        store::directory::upsert_person(
            &mut tx,
            organization_id,
            &entry.email,
            &entry.name,
            entry.role,
            &entry.locale,
        )
        .await?;
        if !known {
            new.extend(store::directory::person_by_email(&mut tx, &entry.email).await?);
        }
    }
    tx.commit().await?;
    Ok(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rows_and_lowercases_emails() {
        let csv = "organization,email,name,role,locale\nMüller GmbH, Anna.Schmidt@Mueller.de ,Anna Schmidt,key_user,de\n\"Acme, Ltd\",john@acme.example,John,member,en\n";
        let entries = parse(csv.as_bytes()).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].email, "anna.schmidt@mueller.de");
        assert_eq!(entries[1].organization, "Acme, Ltd");
        assert_eq!(entries[1].role, Role::Member);
    }

    #[test]
    fn errors_name_the_line() {
        let bad_role =
            "organization,email,name,role,locale\nA,a@a.de,A,key_user,de\nA,b@a.de,B,admin,de\n";
        let err = parse(bad_role.as_bytes()).unwrap_err();
        assert!(err.starts_with("line 3:") && err.contains("admin"), "{err}");

        let bad_email = "organization,email,name,role,locale\nA,nobody,A,key_user,de\n";
        assert!(parse(bad_email.as_bytes())
            .unwrap_err()
            .starts_with("line 2:"));

        let no_column = "organization,email,name,locale\n";
        assert!(parse(no_column.as_bytes()).unwrap_err().contains("role"));

        let twice =
            "organization,email,name,role,locale\nA,a@a.de,A,key_user,de\nA,A@a.de,A,member,de\n";
        assert!(parse(twice.as_bytes()).unwrap_err().contains("twice"));
    }
}
