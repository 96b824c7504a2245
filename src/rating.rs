//! Ratings of solved tickets: signed good/bad links in the solved notice,
//! and storing the customer's click. A link belongs to one solve: once the
//! ticket is reopened or solved again, older links stop working; the rating
//! can be changed until the ticket closes.

use crate::domain::thread::TokenSigner;
use crate::outbound::render::RatingLinks;
use crate::store::{self, Store};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rating {
    Good,
    Bad,
}

impl Rating {
    pub fn as_str(self) -> &'static str {
        match self {
            Rating::Good => "good",
            Rating::Bad => "bad",
        }
    }

    pub fn parse(s: &str) -> Option<Rating> {
        match s {
            "good" => Some(Rating::Good),
            "bad" => Some(Rating::Bad),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RateError {
    #[error("the rating link is not valid")]
    InvalidToken,
    #[error("the ticket is no longer solved (reopened, solved again or closed)")]
    NotRateable,
}

fn purpose(solve: i64) -> String {
    format!("rate:{solve}")
}

/// `{base}/rate/{token}/good` and `/bad` for solve number `solve`.
pub fn links(signer: &TokenSigner, base_url: &str, ticket_id: i64, solve: i64) -> RatingLinks {
    let token = signer.issue(&purpose(solve), ticket_id);
    RatingLinks {
        good: format!("{base_url}/rate/{token}/good"),
        bad: format!("{base_url}/rate/{token}/bad"),
    }
}

/// Stores the rating a link carries; returns the ticket id.
pub async fn rate(
    store: &Store,
    signer: &TokenSigner,
    token: &str,
    rating: Rating,
) -> Result<Result<i64, RateError>, sqlx::Error> {
    let Some(id) = token
        .split_once('-')
        .and_then(|(id, _)| id.parse::<i64>().ok())
    else {
        return Ok(Err(RateError::InvalidToken));
    };
    let mut conn = store.acquire().await?;
    let Some(ticket) = store::tickets::get(&mut conn, id).await? else {
        return Ok(Err(RateError::InvalidToken));
    };
    // A token for another solve fails verification like a forged one.
    if signer.verify(&purpose(ticket.solve_count), token) != Some(id) {
        return Ok(Err(RateError::InvalidToken));
    }
    if !store::tickets::rate(&mut conn, id, ticket.solve_count, rating.as_str()).await? {
        return Ok(Err(RateError::NotRateable));
    }
    Ok(Ok(id))
}
