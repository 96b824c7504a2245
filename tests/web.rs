//! The help center over HTTP, in process: every route of SPEC section 9 is
//! requested as a browser would (cookies, forms, multipart), against a real
//! SQLite database that mail also writes to.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use common::{config_text, Mail, ANNA, JOHN, LENA, PETER};
use ticketgate::clock::Clock;
use ticketgate::config::Settings;
use ticketgate::store::Store;
use ticketgate::web::{router, Web};

const NOW: i64 = 1_796_000_000; // 2026-11-30

/// A database with the sample directory, and a help center on it.
struct HelpCenter {
    _dir: tempfile::TempDir,
    settings: Settings,
    store: Store,
}

impl HelpCenter {
    async fn new() -> HelpCenter {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("ticketgate.toml");
        std::fs::write(&config, config_text("")).unwrap();
        let settings = Settings::load(&config).unwrap();
        let store = Store::open(&settings.database.url).await.unwrap();
        let csv = std::fs::read(format!("{}/users.csv", common::FIXTURES)).unwrap();
        let entries = ticketgate::directory::parse(&csv).unwrap();
        ticketgate::directory::import(&store, &entries)
            .await
            .unwrap();
        HelpCenter {
            _dir: dir,
            settings,
            store,
        }
    }

    fn app(&self, now: i64) -> axum::Router {
        router(Arc::new(Web::new(
            &self.settings,
            self.store.clone(),
            Clock::Fixed(now),
            Arc::default(),
            Arc::default(),
        )))
    }

    /// A browser of this help center, at `NOW`.
    fn browser(&self) -> Browser {
        Browser::new(self.app(NOW))
    }

    /// Ingests a mail; returns its outcome line.
    async fn mail(&self, mail: Mail) -> ticketgate::inbound::process::Report {
        let pipeline = ticketgate::inbound::process::Pipeline::new(&self.settings);
        let mut reports = pipeline
            .process_batch(&self.store, &[mail.render().into_bytes()], NOW)
            .await
            .unwrap();
        reports.remove(0)
    }

    /// A ticket of Anna's organization, opened by mail.
    async fn annas_ticket(&self) -> i64 {
        let report = self
            .mail(Mail::new(ANNA, "Wareneingang hängt", "Seit heute früh."))
            .await;
        report.ticket.unwrap()
    }

    /// Sets a password as the invitation would, and signs in.
    async fn signed_in(&self, email: &str) -> Browser {
        let mut browser = self.browser();
        let link = self.invitation_link(email).await;
        browser.get(&link).await;
        let response = browser
            .post_form(
                &link,
                &[("password", PASSWORD), ("password_confirm", PASSWORD)],
            )
            .await;
        assert_eq!(response.status, StatusCode::SEE_OTHER, "{}", response.body);
        browser
    }

    async fn invitation_link(&self, email: &str) -> String {
        let mut conn = self.store.acquire().await.unwrap();
        let person = ticketgate::store::directory::person_by_email(&mut conn, email)
            .await
            .unwrap()
            .unwrap();
        drop(conn);
        ticketgate::accounts::invite(&self.store, &self.settings.policy(), &[person], NOW)
            .await
            .unwrap();
        let contexts = self.outbox_contexts("invitation", email).await;
        let link = contexts.last().unwrap()["link"]
            .as_str()
            .unwrap()
            .to_string();
        link.strip_prefix("https://help.example.com")
            .unwrap()
            .to_string()
    }

    /// The template contexts of the outbox rows of `event` to `to`.
    async fn outbox_contexts(&self, event: &str, to: &str) -> Vec<Value> {
        let mut conn = self.store.acquire().await.unwrap();
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT context FROM outbox WHERE event = $1 AND recipients = $2 ORDER BY id",
        )
        .bind(event)
        .bind(serde_json::to_string(&[to]).unwrap())
        .fetch_all(&mut *conn)
        .await
        .unwrap();
        rows.iter()
            .map(|(c,)| serde_json::from_str(c).unwrap())
            .collect()
    }

    async fn ticket(&self, id: i64) -> ticketgate::store::tickets::TicketView {
        let mut conn = self.store.acquire().await.unwrap();
        ticketgate::store::tickets::view(&mut conn, id)
            .await
            .unwrap()
            .unwrap()
    }

    async fn count(&self, sql: &str) -> i64 {
        let mut conn = self.store.acquire().await.unwrap();
        sqlx::query_scalar(sql).fetch_one(&mut *conn).await.unwrap()
    }
}

const PASSWORD: &str = "Lange-Wiese-am-Bach-42";

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Answer {
    fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .map(|v| v.to_str().unwrap())
            .unwrap_or_default()
    }
}

/// Cookies and the last page's form token, like a browser keeps them.
struct Browser {
    app: axum::Router,
    cookies: HashMap<String, String>,
    csrf: Option<String>,
    client: SocketAddr,
    language: Option<String>,
}

impl Browser {
    fn new(app: axum::Router) -> Browser {
        Browser {
            app,
            cookies: HashMap::new(),
            csrf: None,
            client: "192.0.2.10:40000".parse().unwrap(),
            language: None,
        }
    }

    async fn send(&mut self, request: axum::http::request::Builder, body: Body) -> Answer {
        let cookie: Vec<String> = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let mut request = request.header(header::COOKIE, cookie.join("; "));
        if let Some(language) = &self.language {
            request = request.header(header::ACCEPT_LANGUAGE, language);
        }
        let mut request = request.body(body).unwrap();
        request.extensions_mut().insert(ConnectInfo(self.client));
        let response = self.app.clone().oneshot(request).await.unwrap();
        for set in response.headers().get_all(header::SET_COOKIE) {
            let set = set.to_str().unwrap();
            let pair = set.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.into(), value.into());
            }
        }
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = String::from_utf8_lossy(&bytes).into_owned();
        if let Some(token) = regex::Regex::new(r#"name="csrf" value="([^"]+)""#)
            .unwrap()
            .captures(&body)
        {
            self.csrf = Some(token[1].to_string());
        }
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn get(&mut self, path: &str) -> Answer {
        self.send(Request::get(path), Body::empty()).await
    }

    /// A form POST with the page's CSRF token added.
    async fn post_form(&mut self, path: &str, fields: &[(&str, &str)]) -> Answer {
        let csrf = self.csrf.clone().unwrap_or_default();
        let mut all: Vec<(&str, &str)> = vec![("csrf", &csrf)];
        all.extend_from_slice(fields);
        self.post_raw(path, &all).await
    }

    /// A form POST exactly as given (no token added).
    async fn post_raw(&mut self, path: &str, fields: &[(&str, &str)]) -> Answer {
        let body = serde_urlencoded::to_string(fields).unwrap();
        self.send(
            Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded"),
            Body::from(body),
        )
        .await
    }

    /// A multipart POST with the page's CSRF token, fields and files.
    async fn post_multipart(
        &mut self,
        path: &str,
        fields: &[(&str, &str)],
        files: &[(&str, &str, &[u8])],
    ) -> Answer {
        let csrf = self.csrf.clone().unwrap_or_default();
        let mut all: Vec<(&str, &str)> = vec![("csrf", &csrf)];
        all.extend_from_slice(fields);
        self.post_multipart_raw(path, &all, files).await
    }

    async fn post_multipart_raw(
        &mut self,
        path: &str,
        fields: &[(&str, &str)],
        files: &[(&str, &str, &[u8])],
    ) -> Answer {
        let boundary = "----ticketgate-test-boundary";
        let mut body: Vec<u8> = Vec::new();
        for (name, value) in fields {
            body.extend(
                format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                    .as_bytes(),
            );
        }
        for (filename, content_type, data) in files {
            body.extend(
                format!("--{boundary}\r\nContent-Disposition: form-data; name=\"attachments\"; filename=\"{filename}\"\r\nContent-Type: {content_type}\r\n\r\n")
                    .as_bytes(),
            );
            body.extend(*data);
            body.extend(b"\r\n");
        }
        body.extend(format!("--{boundary}--\r\n").as_bytes());
        self.send(
            Request::post(path).header(
                header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={boundary}"),
            ),
            Body::from(body),
        )
        .await
    }

    async fn sign_in(&mut self, email: &str, password: &str) -> Answer {
        self.get("/login").await;
        self.post_form("/login", &[("email", email), ("password", password)])
            .await
    }
}

#[tokio::test]
async fn an_invitation_sets_a_password_once_and_signs_in() {
    let hc = HelpCenter::new().await;
    let link = hc.invitation_link(ANNA).await;
    assert!(link.starts_with("/activate/"), "{link}");
    let mut browser = hc.browser();
    let form = browser.get(&link).await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.body.contains(ANNA));

    for (password, confirmation, problem) in [
        ("kurz", "kurz", "zu kurz"),
        ("Lange-Wiese-42", "Lange-Wiese-43", "stimmen nicht überein"),
        ("password1234", "password1234", "zu leicht zu erraten"),
        ("annaschmidt12", "annaschmidt12", "zu leicht zu erraten"),
    ] {
        let answer = browser
            .post_form(
                &link,
                &[("password", password), ("password_confirm", confirmation)],
            )
            .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{password}");
        assert!(answer.body.contains(problem), "{password}: {}", answer.body);
    }
    let hash: Option<String> = {
        let mut conn = hc.store.acquire().await.unwrap();
        ticketgate::store::accounts::credentials(&mut conn, ANNA)
            .await
            .unwrap()
            .unwrap()
            .1
    };
    assert_eq!(hash, None, "no refused password was stored");

    let done = browser
        .post_form(
            &link,
            &[("password", PASSWORD), ("password_confirm", PASSWORD)],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    assert_eq!(done.location(), "/requests");
    let cookie = done
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("tg_session="))
        .unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(cookie.contains("Secure"), "https base URL: {cookie}");
    let mut fresh = hc.browser();
    let login = fresh.get("/login").await;
    let csrf_cookie = login
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("tg_csrf="))
        .unwrap();
    assert!(
        csrf_cookie.contains("HttpOnly")
            && csrf_cookie.contains("SameSite=Lax")
            && csrf_cookie.contains("Secure"),
        "{csrf_cookie}"
    );
    let stored: String = {
        let mut conn = hc.store.acquire().await.unwrap();
        ticketgate::store::accounts::credentials(&mut conn, ANNA)
            .await
            .unwrap()
            .unwrap()
            .1
            .unwrap()
    };
    assert!(stored.starts_with("$argon2id$"), "{stored}");

    let home = browser.get("/requests").await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(home.body.contains("Meine Aktivitäten"));
    assert!(home.body.contains(r#"action="/logout""#), "sign-out form");

    // The link works once.
    let mut other = hc.browser();
    let again = other.get(&link).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert!(again.body.contains("nicht mehr gültig"));

    // And only for 7 days.
    let late_link = hc.invitation_link(JOHN).await;
    let mut late = Browser::new(hc.app(NOW + 7 * 86_400 + 1));
    assert_eq!(late.get(&late_link).await.status, StatusCode::NOT_FOUND);
    let mut in_time = Browser::new(hc.app(NOW + 7 * 86_400 - 60));
    assert_eq!(in_time.get(&late_link).await.status, StatusCode::OK);
}

#[tokio::test]
async fn signed_out_visitors_go_to_the_sign_in_page_and_come_back_to_local_paths_only() {
    let hc = HelpCenter::new().await;
    let ticket = hc.annas_ticket().await;
    hc.signed_in(ANNA).await;
    let mut browser = hc.browser();
    for path in [
        format!("/tickets/{ticket}"),
        "/requests?scope=organization".to_string(),
        "/requests/new".to_string(),
        format!("/tickets/{ticket}/attachments/1"),
    ] {
        let answer = browser.get(&path).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{path}");
        let expected = format!(
            "/login?{}",
            serde_urlencoded::to_string([("next", &path)]).unwrap()
        );
        assert_eq!(answer.location(), expected, "{path}");
    }
    browser.get(&format!("/login?next=/tickets/{ticket}")).await;
    let back = browser
        .post_form(
            "/login",
            &[
                ("email", ANNA),
                ("password", PASSWORD),
                ("next", &format!("/tickets/{ticket}")),
            ],
        )
        .await;
    assert_eq!(back.location(), format!("/tickets/{ticket}"));

    for evil in [
        "https://evil.example/",
        "//evil.example/x",
        "/\\evil.example",
    ] {
        let mut browser = hc.browser();
        browser.get("/login").await;
        let answer = browser
            .post_form(
                "/login",
                &[("email", ANNA), ("password", PASSWORD), ("next", evil)],
            )
            .await;
        assert_eq!(answer.location(), "/requests", "{evil}");
    }
}

#[tokio::test]
async fn members_read_their_organizations_tickets_but_cannot_write() {
    let hc = HelpCenter::new().await;
    let ticket = hc.annas_ticket().await;
    let mut peter = hc.signed_in(PETER).await;
    let page = peter.get(&format!("/tickets/{ticket}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Wareneingang hängt"));
    assert!(!page.body.contains("/comments\""), "no comment form");
    assert!(!page.body.contains("Als gelöst markieren"));
    let list = peter.get("/requests?scope=organization").await;
    assert!(list.body.contains(&format!("data-ticket-id=\"{ticket}\"")));

    let comment = peter
        .post_multipart(
            &format!("/tickets/{ticket}/comments"),
            &[("body", "Ich auch!")],
            &[],
        )
        .await;
    assert_eq!(comment.status, StatusCode::FORBIDDEN);
    let solve = peter
        .post_form(&format!("/tickets/{ticket}/solve"), &[])
        .await;
    assert_eq!(solve.status, StatusCode::FORBIDDEN);
    assert_eq!(
        peter.get("/requests/new").await.status,
        StatusCode::FORBIDDEN
    );
    let request = peter
        .post_multipart(
            "/requests",
            &[
                ("subject", "Neu"),
                ("description", "x"),
                ("category", "billing"),
            ],
            &[],
        )
        .await;
    assert_eq!(request.status, StatusCode::FORBIDDEN);

    let view = hc.ticket(ticket).await;
    assert_eq!(view.comments.len(), 1);
    assert_eq!(view.status, ticketgate::domain::ticket::Status::Open);
    assert_eq!(hc.count("SELECT COUNT(*) FROM tickets").await, 1);
}

#[tokio::test]
async fn another_organizations_tickets_and_attachments_do_not_exist() {
    let hc = HelpCenter::new().await;
    let ticket = hc.annas_ticket().await;
    let mut anna = hc.signed_in(ANNA).await;
    anna.get(&format!("/tickets/{ticket}")).await;
    let commented = anna
        .post_multipart(
            &format!("/tickets/{ticket}/comments"),
            &[("body", "Anbei das Protokoll.")],
            &[("protokoll.txt", "text/plain", b"Fehler 42")],
        )
        .await;
    assert_eq!(commented.status, StatusCode::SEE_OTHER);
    let attachment: i64 = hc.count("SELECT MAX(id) FROM attachments").await;

    let mut john = hc.signed_in(JOHN).await;
    let foreign = john.get(&format!("/tickets/{ticket}")).await;
    let missing = john.get("/tickets/999").await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(
        foreign.body, missing.body,
        "nobody learns which numbers exist"
    );
    assert_eq!(
        john.get(&format!("/tickets/{ticket}/attachments/{attachment}"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    john.get("/requests").await;
    let write = john
        .post_multipart(
            &format!("/tickets/{ticket}/comments"),
            &[("body", "Hallo?")],
            &[],
        )
        .await;
    assert_eq!(write.status, StatusCode::NOT_FOUND);
    let solve = john
        .post_form(&format!("/tickets/{ticket}/solve"), &[])
        .await;
    assert_eq!(solve.status, StatusCode::NOT_FOUND);
    let followup = john
        .get(&format!("/requests/new?followup_of={ticket}"))
        .await;
    assert_eq!(followup.status, StatusCode::NOT_FOUND);
    let list = john.get("/requests?scope=organization").await;
    assert!(!list.body.contains("data-ticket-id"), "{}", list.body);
    assert_eq!(hc.ticket(ticket).await.comments.len(), 2);

    // Anna downloads her file: as a download, never sniffed.
    let download = anna
        .get(&format!("/tickets/{ticket}/attachments/{attachment}"))
        .await;
    assert_eq!(download.status, StatusCode::OK);
    assert_eq!(download.body, "Fehler 42");
    let disposition = download.headers[header::CONTENT_DISPOSITION]
        .to_str()
        .unwrap();
    assert!(disposition.starts_with("attachment;"), "{disposition}");
    assert!(disposition.contains("protokoll.txt"), "{disposition}");
    assert_eq!(download.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
}

#[tokio::test]
async fn every_post_needs_the_forms_token() {
    let hc = HelpCenter::new().await;
    let ticket = hc.annas_ticket().await;
    let mut anna = hc.signed_in(ANNA).await;
    anna.get(&format!("/tickets/{ticket}")).await;
    let path = format!("/tickets/{ticket}/comments");
    let without = anna
        .post_multipart_raw(&path, &[("body", "ohne Token")], &[])
        .await;
    assert_eq!(without.status, StatusCode::FORBIDDEN);
    let wrong = anna
        .post_multipart_raw(
            &path,
            &[
                ("csrf", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
                ("body", "falsch"),
            ],
            &[],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    for (path, fields) in [
        (format!("/tickets/{ticket}/solve"), vec![]),
        ("/logout".to_string(), vec![]),
        (
            "/login".to_string(),
            vec![("email", ANNA), ("password", PASSWORD)],
        ),
        ("/password/forgot".to_string(), vec![("email", ANNA)]),
    ] {
        let answer = anna.post_raw(&path, &fields).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{path}");
    }
    // A stranger's page has a token of its own, not the victim's.
    let mut attacker = hc.browser();
    attacker.get("/login").await;
    let stolen_form = attacker.csrf.clone().unwrap();
    let forged = anna
        .post_raw(
            &format!("/tickets/{ticket}/solve"),
            &[("csrf", &stolen_form)],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);

    let view = hc.ticket(ticket).await;
    assert_eq!(view.comments.len(), 1, "nothing was written");
    assert_eq!(view.status, ticketgate::domain::ticket::Status::Open);
    assert_eq!(
        hc.count("SELECT COUNT(*) FROM outbox WHERE event = 'password_reset'")
            .await,
        0
    );
    // Still signed in: the logout without token did nothing.
    assert_eq!(anna.get("/requests").await.status, StatusCode::OK);
}

#[tokio::test]
async fn whatever_a_user_types_is_escaped_and_no_page_runs_scripts() {
    let hc = HelpCenter::new().await;
    let mut anna = hc.signed_in(ANNA).await;
    anna.get("/requests/new").await;
    let created = anna
        .post_multipart(
            "/requests",
            &[
                ("subject", "<script>alert('s')</script>"),
                (
                    "description",
                    "<img src=x onerror=alert(1)> & {{recipient.name}}",
                ),
                ("category", "developer_support"),
            ],
            &[("<b>bild</b>.png", "image/png", b"\x89PNG")],
        )
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
    let page = anna.get(created.location()).await;
    assert!(!page.body.contains("<script>alert"), "{}", page.body);
    assert!(page
        .body
        .contains("&lt;script&gt;alert(&#x27;s&#x27;)&lt;/script&gt;"));
    assert!(!page.body.contains("<img src=x"));
    assert!(page
        .body
        .contains("&lt;img src&#x3D;x onerror&#x3D;alert(1)&gt; &amp; {{recipient.name}}"));
    assert!(!page.body.contains("<b>bild"));
    let list = anna.get("/requests").await;
    assert!(!list.body.contains("<script>alert"));
    let csp = page.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(!page.body.contains("<script"), "no scripts at all");
}

#[tokio::test]
async fn wrong_passwords_lock_an_account_for_fifteen_minutes_known_or_not() {
    let hc = HelpCenter::new().await;
    hc.signed_in(ANNA).await;
    let mut browser = hc.browser();
    for attempt in 1..=10 {
        let answer = browser.sign_in(ANNA, "falsch-falsch").await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "attempt {attempt}");
        assert!(answer.body.contains("Passwort ist falsch"));
    }
    let locked = browser.sign_in(ANNA, PASSWORD).await;
    assert_eq!(locked.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(locked.body.contains("15 Minuten"), "{}", locked.body);

    // An unknown address answers the same, so locks tell nothing either.
    let mut prober = hc.browser();
    prober.client = "192.0.2.99:1".parse().unwrap();
    let mut unknown = Vec::new();
    for _ in 1..=11 {
        unknown.push(
            prober
                .sign_in("nobody@mueller-maschinenbau.de", "x")
                .await
                .status,
        );
    }
    assert_eq!(unknown[..10], [StatusCode::UNAUTHORIZED; 10]);
    assert_eq!(unknown[10], StatusCode::TOO_MANY_REQUESTS);

    // Fifteen minutes later the right password works again.
    let mut later = Browser::new(hc.app(NOW + 15 * 60));
    let answer = later.sign_in(ANNA, PASSWORD).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn one_client_address_is_refused_after_a_hundred_failures_others_are_not() {
    let hc = HelpCenter::new().await;
    hc.signed_in(ANNA).await;
    {
        // 99 failures from one address, spread over many accounts.
        let mut tx = hc.store.begin().await.unwrap();
        for n in 0..99 {
            ticketgate::store::accounts::record_failure(
                &mut tx,
                &format!("guess{n}@example.org"),
                "192.0.2.10",
                NOW - 60,
                NOW - 900,
            )
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
    }
    let mut office = hc.browser();
    assert_eq!(
        office.sign_in(ANNA, "noch-falsch").await.status,
        StatusCode::UNAUTHORIZED,
        "the hundredth"
    );
    assert_eq!(
        office.sign_in(ANNA, PASSWORD).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    let mut elsewhere = hc.browser();
    elsewhere.client = "198.51.100.7:5000".parse().unwrap();
    assert_eq!(
        elsewhere.sign_in(ANNA, PASSWORD).await.status,
        StatusCode::SEE_OTHER,
        "the account itself is not locked"
    );
}

#[tokio::test]
async fn opening_a_rating_link_records_nothing_only_the_form_does() {
    let hc = HelpCenter::new().await;
    let ticket = hc.annas_ticket().await;
    let acts = ticketgate::acts::Acts::new(&hc.settings);
    let mut wanted = ticketgate::store::facts::Wanted::default();
    wanted.tickets.insert(ticket);
    acts.run(&hc.store, wanted, NOW, |world, policy| {
        ticketgate::domain::decide::solve(world, policy, ticket, NOW)
    })
    .await
    .unwrap()
    .unwrap();
    let solved = hc.outbox_contexts("ticket_solved", ANNA).await;
    let good = solved[0]["rating"]["good"].as_str().unwrap();
    let good = good.strip_prefix("https://help.example.com").unwrap();
    let bad = good.replace("/good", "/bad");

    // A mail scanner opens both links, several times, without cookies.
    for _ in 0..3 {
        for link in [good, bad.as_str()] {
            let mut scanner = hc.browser();
            let page = scanner.get(link).await;
            assert_eq!(page.status, StatusCode::OK);
        }
    }
    assert_eq!(hc.ticket(ticket).await.rating, None);

    let mut anna = hc.browser();
    let page = anna.get(&bad).await;
    assert!(
        page.body.contains(r#"name="rating" value="bad" checked"#),
        "{}",
        page.body
    );
    assert!(!page.body.contains(r#"value="good" checked"#));
    let token = good
        .strip_prefix("/rate/")
        .unwrap()
        .strip_suffix("/good")
        .unwrap();
    let rated = anna
        .post_form(
            &format!("/rate/{token}"),
            &[("rating", "bad"), ("comment", "Hat zu lange gedauert.")],
        )
        .await;
    assert_eq!(rated.status, StatusCode::OK);
    assert!(rated.body.contains("Vielen Dank"));
    let view = hc.ticket(ticket).await;
    assert_eq!(view.rating, Some(ticketgate::domain::ticket::Rating::Bad));
    assert_eq!(
        view.rating_comment.as_deref(),
        Some("Hat zu lange gedauert.")
    );

    // Changeable while solved; a forged token rates nothing.
    anna.get(good).await;
    anna.post_form(&format!("/rate/{token}"), &[("rating", "good")])
        .await;
    assert_eq!(
        hc.ticket(ticket).await.rating,
        Some(ticketgate::domain::ticket::Rating::Good)
    );
    let forged = anna
        .post_form(
            &format!("/rate/{ticket}-aaaaaaaaaaaaaaaa"),
            &[("rating", "bad")],
        )
        .await;
    assert_eq!(forged.status, StatusCode::NOT_FOUND);
    assert!(
        forged.body.contains("Bewertungslink ist nicht gültig"),
        "{}",
        forged.body
    );
    assert!(
        !forged.body.contains("/password/forgot"),
        "not an account link"
    );
    assert_eq!(
        hc.ticket(ticket).await.rating,
        Some(ticketgate::domain::ticket::Rating::Good)
    );
}

#[tokio::test]
async fn password_reset_says_the_same_for_every_address_and_ends_other_sessions() {
    let hc = HelpCenter::new().await;
    let mut old_session = hc.signed_in(ANNA).await;
    assert_eq!(old_session.get("/requests").await.status, StatusCode::OK);

    let mut answers = Vec::new();
    for email in [ANNA, "nobody@example.org", ANNA, ANNA, ANNA] {
        let mut browser = hc.browser();
        browser.get("/password/forgot").await;
        let answer = browser
            .post_form("/password/forgot", &[("email", email)])
            .await;
        assert_eq!(answer.status, StatusCode::OK);
        let token = browser.csrf.clone().unwrap();
        answers.push(answer.body.replace(&token, "TOKEN"));
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "same answer");
    let resets = hc.outbox_contexts("password_reset", ANNA).await;
    assert_eq!(resets.len(), 3, "at most three reset mails an hour");
    let link = resets[2]["link"].as_str().unwrap();
    let link = link.strip_prefix("https://help.example.com").unwrap();
    assert!(link.starts_with("/password/reset/"));
    // Only the newest link counts.
    let older = resets[0]["link"].as_str().unwrap();
    let older = older.strip_prefix("https://help.example.com").unwrap();
    assert_eq!(hc.browser().get(older).await.status, StatusCode::NOT_FOUND);

    let mut browser = hc.browser();
    browser.get(link).await;
    let new_password = "Neues-Passwort-fuer-Anna-7";
    let done = browser
        .post_form(
            link,
            &[
                ("password", new_password),
                ("password_confirm", new_password),
            ],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    assert_eq!(browser.get("/requests").await.status, StatusCode::OK);
    assert_eq!(
        old_session.get("/requests").await.status,
        StatusCode::SEE_OTHER,
        "the other session ended"
    );
    assert_eq!(
        hc.browser().sign_in(ANNA, PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        hc.browser().sign_in(ANNA, new_password).await.status,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn sign_out_ends_the_session_in_the_database() {
    let hc = HelpCenter::new().await;
    let mut anna = hc.signed_in(ANNA).await;
    let stolen = anna.cookies.clone();
    anna.get("/requests").await;
    let out = anna.post_form("/logout", &[]).await;
    assert_eq!(out.location(), "/login");
    let mut thief = hc.browser();
    thief.cookies = stolen;
    assert_eq!(thief.get("/requests").await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_comment_in_the_browser_follows_the_same_rules_as_one_by_mail() {
    let hc = HelpCenter::new().await;
    let ticket = hc.annas_ticket().await;
    // The agent answers (pending), Anna answers in the browser (open).
    let acts = ticketgate::acts::Acts::new(&hc.settings);
    let mut wanted = ticketgate::store::facts::Wanted::default();
    wanted.tickets.insert(ticket);
    wanted.emails.insert(LENA.into());
    acts.run(&hc.store, wanted, NOW, |world, policy| {
        let author = world.person(LENA).cloned().unwrap();
        let answer = ticketgate::domain::decide::Contribution {
            author,
            subject: String::new(),
            body: "Bitte starten Sie den Dienst neu.".into(),
            full_text: String::new(),
            attachments: Vec::new(),
            message_id: None,
            category: None,
            urgent: false,
            cc: Vec::new(),
        };
        ticketgate::domain::decide::agent_comment(
            world,
            policy,
            answer,
            ticket,
            &Default::default(),
            NOW,
        )
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        hc.ticket(ticket).await.status,
        ticketgate::domain::ticket::Status::Pending
    );
    let mut anna = hc.signed_in(ANNA).await;
    let page = anna.get(&format!("/tickets/{ticket}")).await;
    assert!(page.body.contains("Wartet auf Ihre Antwort"));
    assert!(page.body.contains("Bitte starten Sie den Dienst neu."));
    let before = hc
        .outbox_contexts("agent_customer_reply", "team@example.com")
        .await
        .len();
    let answer = anna
        .post_multipart(
            &format!("/tickets/{ticket}/comments"),
            &[("body", "Neustart hat nicht geholfen.")],
            &[],
        )
        .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    let view = hc.ticket(ticket).await;
    assert_eq!(view.status, ticketgate::domain::ticket::Status::Open);
    assert_eq!(
        view.comments.last().unwrap().body,
        "Neustart hat nicht geholfen."
    );
    assert_eq!(
        hc.outbox_contexts("agent_customer_reply", "team@example.com")
            .await
            .len(),
        before + 1,
        "the team hears of it as of a mail"
    );
    // The comment's anchor is in the redirect.
    assert!(answer
        .location()
        .starts_with(&format!("/tickets/{ticket}#comment-")));

    // Solving from the browser: the solved notice with rating links.
    anna.get(&format!("/tickets/{ticket}")).await;
    let solved = anna
        .post_form(&format!("/tickets/{ticket}/solve"), &[])
        .await;
    assert_eq!(solved.status, StatusCode::SEE_OTHER);
    assert_eq!(
        hc.ticket(ticket).await.status,
        ticketgate::domain::ticket::Status::Solved
    );
    assert_eq!(hc.outbox_contexts("ticket_solved", ANNA).await.len(), 1);
    // A comment on the solved ticket reopens it, as by mail.
    anna.get(&format!("/tickets/{ticket}")).await;
    anna.post_multipart(
        &format!("/tickets/{ticket}/comments"),
        &[("body", "Doch noch nicht.")],
        &[],
    )
    .await;
    assert_eq!(
        hc.ticket(ticket).await.status,
        ticketgate::domain::ticket::Status::Open
    );
}

#[tokio::test]
async fn requests_need_a_subject_a_description_and_files_within_the_limits() {
    let hc = HelpCenter::new().await;
    let mut anna = hc.signed_in(ANNA).await;
    anna.get("/requests/new").await;
    let empty = anna
        .post_multipart("/requests", &[("subject", " "), ("description", "")], &[])
        .await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    assert!(empty.body.contains("Bitte geben Sie einen Betreff an."));
    assert!(empty.body.contains("Bitte beschreiben Sie Ihr Anliegen."));
    let wrong_category = anna
        .post_multipart(
            "/requests",
            &[
                ("subject", "A"),
                ("description", "B"),
                ("category", "sales"),
            ],
            &[],
        )
        .await;
    assert_eq!(wrong_category.status, StatusCode::BAD_REQUEST);
    assert!(
        wrong_category.body.contains("value=\"A\""),
        "the form keeps what was typed"
    );

    let big = vec![b'x'; 21 * 1024 * 1024];
    let too_large = anna
        .post_multipart(
            "/requests",
            &[("subject", "Logs"), ("description", "Anbei")],
            &[("logs.zip", "application/zip", &big)],
        )
        .await;
    assert_eq!(too_large.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        too_large.body.contains("Die Anhänge sind zu groß."),
        "{}",
        too_large.body
    );
    let eleven: Vec<(&str, &str, &[u8])> = (0..11)
        .map(|_| ("a.txt", "text/plain", &b"a"[..]))
        .collect();
    anna.get("/requests/new").await;
    let too_many = anna
        .post_multipart(
            "/requests",
            &[("subject", "Logs"), ("description", "Anbei")],
            &eleven,
        )
        .await;
    assert_eq!(too_many.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(too_many.body.contains("Zu viele Anhänge."));
    assert_eq!(hc.count("SELECT COUNT(*) FROM tickets").await, 0);

    anna.get("/requests/new").await;
    let created = anna
        .post_multipart(
            "/requests",
            &[
                ("subject", "Server steht"),
                ("description", "Nichts geht mehr."),
                ("category", "developer_support"),
                ("emergency", "1"),
            ],
            &[
                ("a.log", "text/plain", b"eins"),
                ("b.log", "text/plain", b"zwei"),
            ],
        )
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER);
    let id: i64 = created
        .location()
        .strip_prefix("/tickets/")
        .unwrap()
        .parse()
        .unwrap();
    let view = hc.ticket(id).await;
    assert_eq!(
        view.category,
        ticketgate::domain::ticket::Category::DeveloperSupport
    );
    assert_eq!(view.priority, ticketgate::domain::ticket::Priority::Urgent);
    assert_eq!(view.comments[0].body, "Nichts geht mehr.");
    assert_eq!(view.comments[0].attachments.len(), 2);
    assert_eq!(hc.outbox_contexts("ticket_created", ANNA).await.len(), 1);
    assert_eq!(
        hc.outbox_contexts("urgent_ticket", "oncall@example.com")
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn pages_speak_the_users_language_and_before_sign_in_the_browsers() {
    let hc = HelpCenter::new().await;
    let mut visitor = hc.browser();
    visitor.language = Some("en-GB,en;q=0.9,de;q=0.5".into());
    let login = visitor.get("/login").await;
    assert!(login.body.contains("<html lang=\"en\">"));
    assert!(login.body.contains("Forgot your password?"));
    visitor.language = None;
    assert!(visitor
        .get("/login")
        .await
        .body
        .contains("Passwort vergessen?"));

    // John's locale is English, whatever his browser says.
    let mut john = hc.signed_in(JOHN).await;
    john.language = Some("de".into());
    let home = john.get("/requests").await;
    assert!(home.body.contains("My activities"), "{}", home.body);
    assert!(home.body.contains("Sign out"));
}

#[tokio::test]
async fn health_and_unknown_paths() {
    let hc = HelpCenter::new().await;
    let mut browser = hc.browser();
    let health = browser.get("/healthz").await;
    assert_eq!(health.status, StatusCode::OK);
    let unknown = browser.get("/wp-admin").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(unknown.body.contains("Nicht gefunden"));
    let style = browser.get("/static/style.css").await;
    assert_eq!(style.status, StatusCode::OK);
    assert!(style.headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/css"));
}

#[tokio::test]
async fn users_import_invites_new_customers_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ticketgate.toml");
    std::fs::write(&config, config_text("")).unwrap();
    let users = format!("{}/users.csv", common::FIXTURES);
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ticketgate"))
            .arg("--config")
            .arg(&config)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&["users", "import", &users]);
    run(&["users", "import", &users]);
    let settings = Settings::load(&config).unwrap();
    let store = Store::open(&settings.database.url).await.unwrap();
    let mut conn = store.acquire().await.unwrap();
    let invited: Vec<(String,)> =
        sqlx::query_as("SELECT recipients FROM outbox WHERE event = 'invitation' ORDER BY id")
            .fetch_all(&mut *conn)
            .await
            .unwrap();
    let invited: Vec<String> = invited.into_iter().map(|(r,)| r).collect();
    // Five customers (key users and members), once each; agents are not invited.
    assert_eq!(invited.len(), 5, "{invited:?}");
    assert!(
        invited.iter().all(|r| !r.contains("example.com\"")),
        "{invited:?}"
    );
    drop(conn);
    run(&["users", "invite", PETER]);
    let mut conn = store.acquire().await.unwrap();
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE event = 'invitation'")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(count, 6);
}

#[tokio::test]
async fn my_activities_filter_by_scope_and_status_and_page_by_25() {
    let hc = HelpCenter::new().await;
    let pipeline = ticketgate::inbound::process::Pipeline::new(&hc.settings);
    let mails: Vec<Vec<u8>> = (1..=30)
        .map(|n| {
            let from = if n <= 27 { ANNA } else { common::JONAS };
            Mail::new(from, &format!("Frage {n}"), "Text")
                .render()
                .into_bytes()
        })
        .collect();
    pipeline
        .process_batch(&hc.store, &mails, NOW)
        .await
        .unwrap();
    let acts = ticketgate::acts::Acts::new(&hc.settings);
    let mut wanted = ticketgate::store::facts::Wanted::default();
    wanted.tickets.insert(3);
    acts.run(&hc.store, wanted, NOW + 60, |world, policy| {
        ticketgate::domain::decide::solve(world, policy, 3, NOW + 60)
    })
    .await
    .unwrap()
    .unwrap();

    let mut anna = hc.signed_in(ANNA).await;
    let ids = |body: &str| -> Vec<(i64, String)> {
        regex::Regex::new(r#"data-ticket-id="(\d+)" data-status="(\w+)""#)
            .unwrap()
            .captures_iter(body)
            .map(|c| (c[1].parse().unwrap(), c[2].to_string()))
            .collect()
    };
    let first = anna.get("/requests").await;
    let page1 = ids(&first.body);
    assert_eq!(page1.len(), 25);
    assert_eq!(page1[0], (3, "solved".to_string()), "latest activity first");
    let next = regex::Regex::new(r#"rel="next" href="([^"]+)""#)
        .unwrap()
        .captures(&first.body)
        .map(|c| c[1].replace("&#x3D;", "=").replace("&amp;", "&"))
        .unwrap();
    assert_eq!(next, "/requests?scope=mine&page=2");
    let page2 = ids(&anna.get("/requests?scope=mine&page=2").await.body);
    assert_eq!(page2.len(), 2, "27 of Anna's own");
    let organization = ids(&anna.get("/requests?scope=organization&page=2").await.body);
    assert_eq!(organization.len(), 5, "30 of her organization");
    let solved = ids(&anna
        .get("/requests?scope=organization&status=solved")
        .await
        .body);
    assert_eq!(solved, vec![(3, "solved".to_string())]);
    let open = ids(&anna.get("/requests?status=open").await.body);
    assert_eq!(open.len(), 25);
    assert!(open.iter().all(|(_, s)| s == "open"));
}

#[tokio::test]
async fn a_closed_ticket_takes_no_comment_and_no_solve_but_offers_a_follow_up() {
    let hc = HelpCenter::new().await;
    let ticket = hc.annas_ticket().await;
    let mut anna = hc.signed_in(ANNA).await;
    anna.get(&format!("/tickets/{ticket}")).await;
    anna.post_form(&format!("/tickets/{ticket}/solve"), &[])
        .await;
    let scheduler_now = NOW + 15 * 86_400;
    let mut conn = hc.store.acquire().await.unwrap();
    let closed = ticketgate::store::tickets::close_solved_before(
        &mut conn,
        ticketgate::domain::ticket::close_cutoff(scheduler_now, 14),
        scheduler_now,
    )
    .await
    .unwrap();
    drop(conn);
    assert_eq!(closed, vec![ticket]);

    let page = anna.get(&format!("/tickets/{ticket}")).await;
    assert!(page
        .body
        .contains(&format!("href=\"/requests/new?followup_of={ticket}\"")));
    assert!(!page.body.contains("name=\"body\""), "no comment form");
    let comment = anna
        .post_multipart(
            &format!("/tickets/{ticket}/comments"),
            &[("body", "Noch eine Frage")],
            &[],
        )
        .await;
    assert_eq!(comment.status, StatusCode::FORBIDDEN);
    let solve = anna
        .post_form(&format!("/tickets/{ticket}/solve"), &[])
        .await;
    assert_eq!(solve.status, StatusCode::FORBIDDEN);
    let view = hc.ticket(ticket).await;
    assert_eq!(view.comments.len(), 1);
    assert_eq!(view.status, ticketgate::domain::ticket::Status::Closed);

    let form = anna
        .get(&format!("/requests/new?followup_of={ticket}"))
        .await;
    assert!(
        form.body.contains("value=\"Wareneingang hängt\""),
        "{}",
        form.body
    );
    let created = anna
        .post_multipart(
            "/requests",
            &[
                ("subject", "Wareneingang hängt"),
                ("description", "Schon wieder."),
                ("followup_of", &ticket.to_string()),
            ],
            &[],
        )
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER);
    let id: i64 = created
        .location()
        .strip_prefix("/tickets/")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(hc.ticket(id).await.followup_of, Some(ticket));
    assert_eq!(hc.outbox_contexts("followup_created", ANNA).await.len(), 1);
}
