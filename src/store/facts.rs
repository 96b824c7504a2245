//! The facts a batch of decisions needs, in one read: the people who wrote,
//! the tickets their messages can thread into (with requesters,
//! organizations and the newest references), and the next ticket and
//! comment numbers. A handful of queries for the whole batch, whatever its
//! size; the decisions then run in memory (`domain::decide`).

use std::collections::BTreeSet;

use super::{directory, messages, tickets, Backend, Conn};
use crate::domain::decide::World;
use crate::domain::notice::MAX_REFERENCES;

/// What the messages of a batch name.
#[derive(Debug, Default)]
pub struct Wanted {
    /// Senders and staff addresses (normalized).
    pub emails: BTreeSet<String>,
    /// Message-IDs from In-Reply-To and References.
    pub referenced: BTreeSet<String>,
    /// Tickets named by reply tokens, subject tags or the act itself.
    pub tickets: BTreeSet<i64>,
}

/// The id counters, locked until the transaction ends on PostgreSQL (SQLite
/// has one writer at a time anyway). Every writer of tickets takes this
/// lock first, so that concurrent instances change tickets one after the
/// other and number them in commit order.
pub async fn lock_counters(
    conn: &mut Conn,
    backend: Backend,
) -> Result<Vec<(String, i64)>, sqlx::Error> {
    let lock = match backend {
        Backend::Postgres => "FOR UPDATE",
        Backend::Sqlite => "",
    };
    sqlx::query_as(&format!(
        "SELECT name, next FROM id_counters ORDER BY name {lock}"
    ))
    .fetch_all(&mut *conn)
    .await
}

/// Loads the world for `wanted`, inside the caller's transaction. On
/// PostgreSQL the id counters are locked until it ends, so that
/// concurrent batches number their tickets one after the other.
pub async fn load(
    conn: &mut Conn,
    backend: Backend,
    wanted: &Wanted,
    seed: Option<u64>,
) -> Result<World, sqlx::Error> {
    let counters = lock_counters(conn, backend).await?;
    let next = |name: &str| {
        counters
            .iter()
            .find(|(n, _)| n == name)
            .map_or(1, |(_, v)| *v)
    };
    let mut world = World::new(next("tickets"), next("comments"), seed);

    let emails: Vec<&str> = wanted.emails.iter().map(String::as_str).collect();
    for person in directory::people_by_emails(conn, &emails).await? {
        world.add_person(person);
    }
    let referenced: Vec<String> = wanted.referenced.iter().cloned().collect();
    world.refs = messages::tickets_for_refs(conn, &referenced).await?;
    let mut ids: BTreeSet<i64> = wanted.tickets.clone();
    ids.extend(world.refs.values());
    let ids: Vec<i64> = ids.into_iter().collect();
    for ticket in tickets::by_ids(conn, &ids).await? {
        world.tickets.insert(ticket.id, ticket);
    }
    let loaded_tickets: Vec<i64> = world.tickets.keys().copied().collect();
    for (ticket, person) in super::tickets::followers_of(conn, &loaded_tickets).await? {
        world.followers.entry(ticket).or_default().push(person);
    }
    let requesters: Vec<i64> = world
        .tickets
        .values()
        .map(|t| t.requester_id)
        .chain(world.followers.values().flatten().copied())
        .filter(|id| !world.people_by_id.contains_key(id))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    for person in directory::people_by_ids(conn, &requesters).await? {
        world.add_person(person);
    }
    let organizations: Vec<i64> = world
        .tickets
        .values()
        .map(|t| t.organization_id)
        .chain(world.people_by_id.values().map(|p| p.organization_id))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    world.organizations = directory::organization_names(conn, &organizations)
        .await?
        .into_iter()
        .collect();
    let members_of: Vec<i64> = world
        .people
        .values()
        .filter(|p| p.role == crate::domain::sender::Role::Member)
        .map(|p| p.organization_id)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    for key_user in directory::key_users_of(conn, &members_of).await? {
        world
            .key_users
            .entry(key_user.organization_id)
            .or_default()
            .push(key_user);
    }
    let loaded: Vec<i64> = world.tickets.keys().copied().collect();
    world.chains = messages::chains(conn, &loaded, MAX_REFERENCES)
        .await?
        .into_iter()
        .collect();
    Ok(world)
}
