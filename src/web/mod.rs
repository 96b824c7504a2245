//! The help center (SPEC section 9): customers' pages over HTTP, served by
//! `run` (when `[web] listen` is set) and `serve`. Every act goes through
//! the same decisions as mail (`acts`, `domain::decide`); this module only
//! reads forms, checks who is asking, and renders pages.
//!
//! - [`pages`]: templates and texts, German and English.
//! - [`account`]: sign-in, sign-out, activation, password reset.
//! - [`tickets`]: "Meine Aktivitäten", the request form, a ticket, its
//!   comments, solving and attachments.
//! - [`rate`]: the rating page of the solved notice's links.

pub mod account;
pub mod pages;
pub mod rate;
pub mod tickets;

use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};

use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequestParts, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use serde_json::{json, Value};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::acts::Acts;
use crate::clock::Clock;
use crate::config::Settings;
use crate::domain::sender::{Person, Role};
use crate::metrics::Metrics;
use crate::store::Store;
use pages::Pages;

const SESSION_COOKIE: &str = "tg_session";
const CSRF_COOKIE: &str = "tg_csrf";

/// No scripts at all, styles only from our sheet, forms only to us, and
/// never inside another site's frame.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

static PAGES: LazyLock<Pages> = LazyLock::new(Pages::load);

/// What every handler shares.
pub struct Web {
    pub store: Store,
    pub acts: Acts,
    pub clock: Clock,
    /// Cookies carry `Secure` when the help center is reached by https.
    pub secure_cookies: bool,
    pub max_upload_bytes: u64,
    pub max_upload_files: usize,
    pub metrics: Arc<Metrics>,
    /// Woken when an act queued mail, so the daemon's worker sends it now.
    pub outbox_due: Arc<Notify>,
}

pub type Shared = Arc<Web>;

impl Web {
    pub fn new(
        settings: &Settings,
        store: Store,
        clock: Clock,
        metrics: Arc<Metrics>,
        outbox_due: Arc<Notify>,
    ) -> Web {
        Web {
            store,
            acts: Acts::new(settings),
            clock,
            secure_cookies: settings.web.base_url.starts_with("https://"),
            max_upload_bytes: settings.web.max_upload_bytes,
            max_upload_files: settings.web.max_upload_files,
            metrics,
            outbox_due,
        }
    }

    fn now(&self) -> i64 {
        self.clock.now()
    }

    fn cookie(&self, name: &'static str, value: String, max_age: Option<i64>) -> HeaderValue {
        cookie_header(name, value, self.secure_cookies, max_age)
    }
}

/// A `Set-Cookie` value as every cookie of ours is set: `HttpOnly`,
/// `SameSite=Lax`, the whole site, `Secure` behind https.
fn cookie_header(
    name: &'static str,
    value: String,
    secure: bool,
    max_age: Option<i64>,
) -> HeaderValue {
    let mut cookie = Cookie::build((name, value))
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .path("/");
    if let Some(seconds) = max_age {
        cookie = cookie.max_age(cookie::time::Duration::seconds(seconds));
    }
    HeaderValue::from_str(&cookie.build().to_string()).expect("cookie values are URL-safe")
}

/// The help center's routes, with the headers every answer carries.
pub fn router(web: Shared) -> Router {
    let body_limit = usize::try_from(web.max_upload_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(1024 * 1024);
    Router::new()
        .route("/", get(|| async { Redirect::to("/requests") }))
        .route("/login", get(account::login_form).post(account::login))
        .route("/logout", post(account::logout))
        .route(
            "/activate/{token}",
            get(account::activate_form).post(account::activate),
        )
        .route(
            "/password/forgot",
            get(account::forgot_form).post(account::forgot),
        )
        .route(
            "/password/reset/{token}",
            get(account::reset_form).post(account::reset),
        )
        .route("/requests", get(tickets::list).post(tickets::create))
        .route("/requests/new", get(tickets::new_form))
        .route("/tickets/{id}", get(tickets::show))
        .route("/tickets/{id}/comments", post(tickets::comment))
        .route("/tickets/{id}/solve", post(tickets::solve))
        .route(
            "/tickets/{id}/attachments/{attachment}",
            get(tickets::attachment),
        )
        .route("/rate/{token}/{value}", get(rate::form))
        .route("/rate/{token}", post(rate::record))
        .route("/healthz", get(healthz))
        .route("/static/style.css", get(style))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(
            web.clone(),
            count_requests,
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        // Rating and activation links carry their token in the path.
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .with_state(web)
}

/// Serves the help center on `listener` until `shutdown`.
pub async fn serve(
    web: Shared,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = router(web).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

async fn count_requests(
    State(web): State<Shared>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let response = next.run(request).await;
    web.metrics.count_web_request(response.status().as_u16());
    response
}

async fn healthz(State(web): State<Shared>) -> Response {
    let answer = match web.store.read().await {
        Ok(mut conn) => sqlx::query_scalar::<_, i64>("SELECT 1")
            .fetch_one(&mut *conn)
            .await
            .map(|_| ()),
        Err(e) => Err(e),
    };
    match answer {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => {
            tracing::warn!("healthz: database error: {e}");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n").into_response()
        }
    }
}

async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        PAGES.style,
    )
        .into_response()
}

async fn not_found(State(web): State<Shared>, headers: HeaderMap) -> Response {
    match Visitor::of(&web, &headers).await {
        Ok(visitor) => visitor
            .failure(StatusCode::NOT_FOUND, "not_found")
            .into_response(),
        Err(failure) => failure.into_response(),
    }
}

/// The client's address, for throttling sign-ins per address.
pub struct Client(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let address = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or_else(|| "unknown".to_string(), |c| c.0.ip().to_string());
        Ok(Client(address))
    }
}

/// Who is asking: the signed-in person (if any), the form token, the
/// page language.
pub struct Visitor {
    pub person: Option<Person>,
    /// The digest of the session cookie, when it names a live session.
    session: Option<String>,
    pub csrf: String,
    /// The CSRF cookie is new and must be set with the answer.
    new_csrf: bool,
    /// Cookies carry `Secure` (the help center is reached by https).
    secure_cookies: bool,
    pub lang: &'static str,
}

/// An answer that ends a handler early (an error page or a redirect).
pub struct Failure(Box<Response>);

impl Failure {
    fn new(response: Response) -> Failure {
        Failure(Box::new(response))
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        *self.0
    }
}

impl From<sqlx::Error> for Failure {
    fn from(e: sqlx::Error) -> Failure {
        tracing::error!("help center: database error: {e}");
        let page = PAGES
            .render(
                "message",
                &json!({
                    "lang": "de",
                    "title": pages::message("de", "error_title"),
                    "text": pages::message("de", "error"),
                }),
            )
            .unwrap_or_default();
        Failure::new((StatusCode::SERVICE_UNAVAILABLE, Html::from(page)).into_response())
    }
}

type Html = axum::response::Html<String>;

impl Visitor {
    pub async fn of(web: &Web, headers: &HeaderMap) -> Result<Visitor, Failure> {
        let jar = CookieJar::from_headers(headers);
        let mut person = None;
        let mut session = None;
        if let Some(secret) = jar.get(SESSION_COOKIE).map(|c| c.value().to_string()) {
            let digest = crate::accounts::digest(&secret);
            let mut conn = web.store.read().await?;
            person = crate::store::accounts::session_person(&mut conn, &digest, web.now()).await?;
            session = person.as_ref().map(|_| digest);
        }
        let (csrf, new_csrf) = match jar.get(CSRF_COOKIE).map(|c| c.value().to_string()) {
            Some(value) if value.len() >= 32 => (value, false),
            _ => (crate::accounts::new_secret(), true),
        };
        let accept = headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok());
        let lang = pages::language(person.as_ref().map(|p| p.locale.as_str()), accept);
        Ok(Visitor {
            person,
            session,
            csrf,
            new_csrf,
            secure_cookies: web.secure_cookies,
            lang,
        })
    }

    /// The signed-in person, or a redirect to the sign-in page that comes
    /// back to `here`.
    pub fn signed_in(&self, here: &axum::http::Uri) -> Result<&Person, Failure> {
        self.person.as_ref().ok_or_else(|| {
            let path = here
                .path_and_query()
                .map_or_else(|| here.path().to_string(), |p| p.as_str().to_string());
            let query = serde_urlencoded::to_string([("next", path)]).unwrap_or_default();
            Failure::new(Redirect::to(&format!("/login?{query}")).into_response())
        })
    }

    /// A POST's form token must be the one of the visitor's cookie (a
    /// cross-site form cannot read it, nor set it).
    pub fn check_csrf(&self, field: Option<&str>) -> Result<(), Failure> {
        let field = field.unwrap_or_default().as_bytes();
        let cookie = self.csrf.as_bytes();
        let same = !self.new_csrf
            && field.len() == cookie.len()
            && field
                .iter()
                .zip(cookie)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if same {
            Ok(())
        } else {
            Err(self.failure(StatusCode::FORBIDDEN, "csrf"))
        }
    }

    pub fn text(&self, key: &str) -> &'static str {
        pages::message(self.lang, key)
    }

    /// Renders `page` with `data` and what every page needs.
    pub fn page(&self, status: StatusCode, page: &str, mut data: Value) -> Response {
        if let Value::Object(map) = &mut data {
            map.insert("lang".into(), json!(self.lang));
            map.insert("csrf".into(), json!(self.csrf));
            if let Some(person) = &self.person {
                map.insert(
                    "user".into(),
                    json!({
                        "name": person.name,
                        "email": person.email,
                        "writes": person.role != Role::Member,
                        "agent": person.role == Role::Agent,
                    }),
                );
            }
        }
        let mut response = match PAGES.render(page, &data) {
            Ok(html) => (status, Html::from(html)).into_response(),
            Err(e) => {
                tracing::error!("help center: page {page}: {e}");
                (StatusCode::INTERNAL_SERVER_ERROR, "page error\n").into_response()
            }
        };
        self.keep_csrf(&mut response);
        response
    }

    fn keep_csrf(&self, response: &mut Response) {
        if self.new_csrf {
            let cookie = cookie_header(CSRF_COOKIE, self.csrf.clone(), self.secure_cookies, None);
            response.headers_mut().append(header::SET_COOKIE, cookie);
        }
    }

    /// A message page: `key` and `key_title` from the texts.
    pub fn failure(&self, status: StatusCode, key: &str) -> Failure {
        let title_key = match key {
            "not_found" => "not_found_title",
            "forbidden" | "closed" => "forbidden_title",
            "csrf" => "csrf_title",
            "link_invalid" | "rating_link_invalid" => "link_invalid_title",
            "not_rateable" => "not_rateable_title",
            _ => "error_title",
        };
        let link = (key == "link_invalid")
            .then(|| json!({"href": "/password/forgot", "label": self.text("request_new_link")}));
        Failure::new(self.page(
            status,
            "message",
            json!({"title": self.text(title_key), "text": self.text(key), "link": link}),
        ))
    }

    /// A redirect after a form, with the cookies it sets.
    pub fn see_other(&self, to: &str, cookies: Vec<HeaderValue>) -> Response {
        let mut response = Redirect::to(to).into_response();
        for cookie in cookies {
            response.headers_mut().append(header::SET_COOKIE, cookie);
        }
        self.keep_csrf(&mut response);
        response
    }
}
