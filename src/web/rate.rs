//! The rating page. The solved notice links to `/rate/{token}/good` and
//! `/bad`; opening a link shows the form with that value chosen, and only
//! the form's POST records. Mail scanners (Safe Links and the like) open
//! every link in a mail, so a GET that recorded would rate for them.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Form;
use serde::Deserialize;
use serde_json::json;

use super::{Failure, Shared, Visitor};
use crate::domain::decide::Refusal;
use crate::domain::ticket::Rating;

pub async fn form(
    State(web): State<Shared>,
    headers: HeaderMap,
    Path((token, value)): Path<(String, String)>,
) -> Result<Response, Failure> {
    let visitor = Visitor::of(&web, &headers).await?;
    let rating: Rating = value
        .parse()
        .map_err(|_| visitor.failure(StatusCode::NOT_FOUND, "not_found"))?;
    match crate::rating::check(&web.acts, &web.store, &token).await? {
        Ok(ticket) => Ok(rate_page(
            &visitor,
            StatusCode::OK,
            &token,
            &ticket,
            Some(rating),
            ticket.rating_comment.as_deref().unwrap_or_default(),
            None,
        )),
        Err(refusal) => Err(refusal_page(&visitor, refusal)),
    }
}

fn rate_page(
    visitor: &Visitor,
    status: StatusCode,
    token: &str,
    ticket: &crate::domain::ticket::Ticket,
    rating: Option<Rating>,
    comment: &str,
    error: Option<&str>,
) -> Response {
    visitor.page(
        status,
        "rate",
        json!({
            "title": super::pages::text(visitor.lang, "rate_title"),
            "token": token,
            "ticket_id": ticket.id,
            "subject": ticket.subject,
            "rating": rating.map(Rating::as_str),
            "comment": comment,
            "error": error,
        }),
    )
}

fn refusal_page(visitor: &Visitor, refusal: Refusal) -> Failure {
    match refusal {
        Refusal::NotRateable(_) => visitor.failure(StatusCode::CONFLICT, "not_rateable"),
        _ => visitor.failure(StatusCode::NOT_FOUND, "rating_link_invalid"),
    }
}

#[derive(Deserialize)]
pub struct RatingForm {
    csrf: Option<String>,
    rating: Option<String>,
    comment: Option<String>,
}

pub async fn record(
    State(web): State<Shared>,
    headers: HeaderMap,
    Path(token): Path<String>,
    Form(form): Form<RatingForm>,
) -> Result<Response, Failure> {
    let visitor = Visitor::of(&web, &headers).await?;
    visitor.check_csrf(form.csrf.as_deref())?;
    let comment = form.comment.map(|c| c.trim().to_string());
    let Some(rating) = form
        .rating
        .as_deref()
        .and_then(|r| r.parse::<Rating>().ok())
    else {
        let ticket = crate::rating::check(&web.acts, &web.store, &token)
            .await?
            .map_err(|refusal| refusal_page(&visitor, refusal))?;
        return Ok(rate_page(
            &visitor,
            StatusCode::BAD_REQUEST,
            &token,
            &ticket,
            None,
            comment.as_deref().unwrap_or_default(),
            Some(visitor.text("choose_rating")),
        ));
    };
    let rated =
        crate::rating::rate(&web.acts, &web.store, &token, rating, comment, web.now()).await?;
    match rated {
        Ok(id) => {
            tracing::info!(ticket = id, rating = %rating, "rated by link");
            let link =
                json!({"href": format!("/tickets/{id}"), "label": visitor.text("to_ticket")});
            Ok(visitor.page(
                StatusCode::OK,
                "message",
                json!({"title": visitor.text("rated_title"), "text": visitor.text("rated"), "link": link}),
            ))
        }
        Err(refusal) => Err(refusal_page(&visitor, refusal)),
    }
}
