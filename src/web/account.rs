//! Sign-in, sign-out, the invitation's activation and the password reset.
//! Known and unknown addresses get the same answers.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use serde::Deserialize;
use serde_json::json;

use super::{Client, Failure, Shared, Visitor, SESSION_COOKIE};
use crate::accounts::{self, SignIn};
use crate::domain::account::{
    is_local_path, password_problem, PasswordProblem, Throttle, TokenPurpose,
};

#[derive(Deserialize, Default)]
pub struct NextQuery {
    next: Option<String>,
}

/// Where to go after signing in: `next` when it is one of our paths.
fn destination(next: Option<&str>) -> &str {
    match next {
        Some(next) if is_local_path(next) => next,
        _ => "/requests",
    }
}

pub async fn login_form(
    State(web): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<NextQuery>,
) -> Result<Response, Failure> {
    let visitor = Visitor::of(&web, &headers).await?;
    if visitor.person.is_some() {
        return Ok(visitor.see_other(destination(query.next.as_deref()), Vec::new()));
    }
    Ok(login_page(
        &visitor,
        StatusCode::OK,
        query.next.as_deref(),
        "",
        None,
    ))
}

fn login_page(
    visitor: &Visitor,
    status: StatusCode,
    next: Option<&str>,
    email: &str,
    error: Option<&str>,
) -> Response {
    let next = next.filter(|n| is_local_path(n)).unwrap_or_default();
    visitor.page(
        status,
        "login",
        json!({"title": super::pages::text(visitor.lang, "sign_in"), "next": next, "email": email, "error": error}),
    )
}

#[derive(Deserialize)]
pub struct LoginForm {
    csrf: Option<String>,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
}

pub async fn login(
    State(web): State<Shared>,
    headers: HeaderMap,
    Client(client): Client,
    Form(form): Form<LoginForm>,
) -> Result<Response, Failure> {
    let visitor = Visitor::of(&web, &headers).await?;
    visitor.check_csrf(form.csrf.as_deref())?;
    let next = form.next.as_deref();
    match accounts::sign_in(&web.store, &form.email, &form.password, &client, web.now()).await? {
        SignIn::Session(secret, _) => {
            // The session a visitor had before is not carried over.
            if let Some(old) = &visitor.session {
                let mut conn = web.store.acquire().await?;
                crate::store::accounts::delete_session(&mut conn, old).await?;
            }
            let cookie = web.cookie(
                SESSION_COOKIE,
                secret,
                Some(crate::domain::account::SESSION_SECS),
            );
            Ok(visitor.see_other(destination(next), vec![cookie]))
        }
        SignIn::WrongPassword => Ok(login_page(
            &visitor,
            StatusCode::UNAUTHORIZED,
            next,
            &form.email,
            Some(visitor.text("wrong_password")),
        )),
        SignIn::Refused(throttle) => {
            let key = match throttle {
                Throttle::ClientRefused => "client_refused",
                _ => "locked",
            };
            Ok(login_page(
                &visitor,
                StatusCode::TOO_MANY_REQUESTS,
                next,
                &form.email,
                Some(visitor.text(key)),
            ))
        }
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: Option<String>,
}

pub async fn logout(
    State(web): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Result<Response, Failure> {
    let visitor = Visitor::of(&web, &headers).await?;
    visitor.check_csrf(form.csrf.as_deref())?;
    if let Some(session) = &visitor.session {
        let mut conn = web.store.acquire().await?;
        crate::store::accounts::delete_session(&mut conn, session).await?;
    }
    let cleared = web.cookie(SESSION_COOKIE, String::new(), Some(0));
    Ok(visitor.see_other("/login", vec![cleared]))
}

pub async fn activate_form(
    State(web): State<Shared>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Result<Response, Failure> {
    link_form(&web, &headers, &token, TokenPurpose::Activation).await
}

pub async fn reset_form(
    State(web): State<Shared>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Result<Response, Failure> {
    link_form(&web, &headers, &token, TokenPurpose::PasswordReset).await
}

#[derive(Deserialize)]
pub struct PasswordForm {
    csrf: Option<String>,
    #[serde(default)]
    password: String,
    #[serde(default)]
    password_confirm: String,
}

pub async fn activate(
    State(web): State<Shared>,
    headers: HeaderMap,
    Path(token): Path<String>,
    Form(form): Form<PasswordForm>,
) -> Result<Response, Failure> {
    set_password(&web, &headers, &token, TokenPurpose::Activation, form).await
}

pub async fn reset(
    State(web): State<Shared>,
    headers: HeaderMap,
    Path(token): Path<String>,
    Form(form): Form<PasswordForm>,
) -> Result<Response, Failure> {
    set_password(&web, &headers, &token, TokenPurpose::PasswordReset, form).await
}

/// The form of a valid link; a used, expired or unknown one gets the same
/// "not valid" page (opening it records nothing, so scanners do no harm).
async fn link_form(
    web: &Shared,
    headers: &HeaderMap,
    token: &str,
    purpose: TokenPurpose,
) -> Result<Response, Failure> {
    let visitor = Visitor::of(web, headers).await?;
    let mut conn = web.store.read().await?;
    let person = crate::store::accounts::token_person(
        &mut conn,
        &accounts::digest(token),
        purpose,
        web.now(),
    )
    .await?;
    drop(conn);
    match person {
        Some(person) => Ok(password_page(
            &visitor,
            token,
            purpose,
            &person.email,
            StatusCode::OK,
            None,
        )),
        None => Err(visitor.failure(StatusCode::NOT_FOUND, "link_invalid")),
    }
}

fn password_page(
    visitor: &Visitor,
    token: &str,
    purpose: TokenPurpose,
    email: &str,
    status: StatusCode,
    error: Option<&str>,
) -> Response {
    let (title, intro, action) = match purpose {
        TokenPurpose::Activation => (
            "activate_title",
            "activate_intro",
            format!("/activate/{token}"),
        ),
        TokenPurpose::PasswordReset => (
            "reset_title",
            "reset_intro",
            format!("/password/reset/{token}"),
        ),
    };
    visitor.page(
        status,
        "set_password",
        json!({
            "title": super::pages::text(visitor.lang, title),
            "intro": super::pages::text(visitor.lang, intro),
            "action": action,
            "email": email,
            "error": error,
        }),
    )
}

async fn set_password(
    web: &Shared,
    headers: &HeaderMap,
    token: &str,
    purpose: TokenPurpose,
    form: PasswordForm,
) -> Result<Response, Failure> {
    let visitor = Visitor::of(web, headers).await?;
    visitor.check_csrf(form.csrf.as_deref())?;
    let now = web.now();
    let person = {
        let mut conn = web.store.read().await?;
        crate::store::accounts::token_person(&mut conn, &accounts::digest(token), purpose, now)
            .await?
    };
    let Some(person) = person else {
        return Err(visitor.failure(StatusCode::NOT_FOUND, "link_invalid"));
    };
    let problem = password_problem(
        &form.password,
        &form.password_confirm,
        &[person.email.as_str(), person.name.as_str()],
    );
    if let Some(problem) = problem {
        let key = match problem {
            PasswordProblem::TooShort => "too_short",
            PasswordProblem::Mismatch => "mismatch",
            PasswordProblem::Common => "common",
        };
        return Ok(password_page(
            &visitor,
            token,
            purpose,
            &person.email,
            StatusCode::BAD_REQUEST,
            Some(visitor.text(key)),
        ));
    }
    match accounts::set_password_by_link(&web.store, token, purpose, &form.password, now).await? {
        Some((secret, person)) => {
            tracing::info!(email = %person.email, "password set by {} link", purpose.as_str());
            let cookie = web.cookie(
                SESSION_COOKIE,
                secret,
                Some(crate::domain::account::SESSION_SECS),
            );
            Ok(visitor.see_other("/requests", vec![cookie]))
        }
        None => Err(visitor.failure(StatusCode::NOT_FOUND, "link_invalid")),
    }
}

pub async fn forgot_form(
    State(web): State<Shared>,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    let visitor = Visitor::of(&web, &headers).await?;
    Ok(visitor.page(
        StatusCode::OK,
        "forgot",
        json!({"title": super::pages::text(visitor.lang, "forgot_title"), "sent": false}),
    ))
}

#[derive(Deserialize)]
pub struct ForgotForm {
    csrf: Option<String>,
    #[serde(default)]
    email: String,
}

pub async fn forgot(
    State(web): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<ForgotForm>,
) -> Result<Response, Failure> {
    let visitor = Visitor::of(&web, &headers).await?;
    visitor.check_csrf(form.csrf.as_deref())?;
    let policy = web.acts.policy();
    if accounts::request_reset(&web.store, policy, &form.email, web.now()).await? {
        web.outbox_due.notify_one();
    }
    Ok(visitor
        .page(
            StatusCode::OK,
            "forgot",
            json!({"title": super::pages::text(visitor.lang, "forgot_title"), "sent": true}),
        )
        .into_response())
}
