//! Ratings by the links of solved notices: the link's ticket is loaded,
//! the rule decides (`domain::decide::rate`), the rating is written. Used
//! by the help center's rating page.

use crate::acts::Acts;
use crate::domain::decide::{rating_ticket, Refusal};
use crate::domain::ticket::Rating;
use crate::store::facts::Wanted;
use crate::store::Store;

/// Stores the rating a link carries (with an optional comment); returns
/// the ticket id, or why not.
pub async fn rate(
    acts: &Acts,
    store: &Store,
    token: &str,
    rating: Rating,
    comment: Option<String>,
    now: i64,
) -> Result<Result<i64, Refusal>, sqlx::Error> {
    let Some(id) = rating_ticket(token) else {
        return Ok(Err(Refusal::InvalidLink));
    };
    let mut wanted = Wanted::default();
    wanted.tickets.insert(id);
    Ok(acts
        .run(store, wanted, now, |world, policy| {
            crate::domain::decide::rate(world, policy, token, rating, comment, now)
        })
        .await?
        .map(|_| id))
}

/// What the rating page shows for a link: the ticket it rates, or why the
/// link does not rate anything (any more). Reads only: opening the link
/// records nothing, however often a mail scanner opens it.
pub async fn check(
    acts: &Acts,
    store: &Store,
    token: &str,
) -> Result<Result<crate::domain::ticket::Ticket, Refusal>, sqlx::Error> {
    let Some(id) = rating_ticket(token) else {
        return Ok(Err(Refusal::InvalidLink));
    };
    let mut wanted = Wanted::default();
    wanted.tickets.insert(id);
    let mut conn = store.read().await?;
    let world = crate::store::facts::load(&mut conn, store.backend, &wanted, None).await?;
    Ok(crate::domain::decide::rateable_ticket(
        &world,
        acts.policy(),
        token,
    ))
}
