//! "Meine Aktivitäten", the request form, a ticket with its conversation,
//! comments, solving, and attachments. Reading is checked here (a ticket
//! of another organization does not exist); every change is decided by
//! `domain::decide` through `Acts`, as by mail.

use axum::extract::{Multipart, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Form;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{Failure, Shared, Visitor};
use crate::domain::decide::{self, Contribution, Decision, Refusal};
use crate::domain::mail::Attachment;
use crate::domain::sender::{Person, Role};
use crate::domain::ticket::{is_emergency, AgentCommands, Category, Status};
use crate::store::facts::Wanted;
use crate::store::tickets::{self, Scope};

const PAGE_SIZE: i64 = 25;

#[derive(Deserialize, Default)]
pub struct ListQuery {
    scope: Option<String>,
    status: Option<String>,
    page: Option<i64>,
}

pub async fn list(
    State(web): State<Shared>,
    headers: HeaderMap,
    uri: Uri,
    Query(query): Query<ListQuery>,
) -> Result<Response, Failure> {
    let visitor = Visitor::of(&web, &headers).await?;
    let person = visitor.signed_in(&uri)?;
    let organization = query.scope.as_deref() == Some("organization");
    let status: Option<Status> = query.status.as_deref().and_then(|s| s.parse().ok());
    let page = query.page.unwrap_or(1).clamp(1, 10_000);
    let scope = match (organization, person.role) {
        (false, _) => Scope::Requester(person.id),
        (true, Role::Agent) => Scope::All,
        (true, _) => Scope::Organization(person.organization_id),
    };
    let mut rows = {
        let mut conn = web.store.read().await?;
        tickets::page(&mut conn, scope, status, PAGE_SIZE, (page - 1) * PAGE_SIZE).await?
    };
    let more = rows.len() as i64 > PAGE_SIZE;
    rows.truncate(PAGE_SIZE as usize);
    let scope_name = if organization { "organization" } else { "mine" };
    let link = |page: i64| {
        let mut pairs = vec![("scope", scope_name.to_string())];
        if let Some(status) = status {
            pairs.push(("status", status.as_str().to_string()));
        }
        pairs.push(("page", page.to_string()));
        format!(
            "/requests?{}",
            serde_urlencoded::to_string(pairs).unwrap_or_default()
        )
    };
    let lang = visitor.lang;
    let tickets: Vec<Value> = rows
        .iter()
        .map(|t| {
            json!({
                "id": t.id,
                "subject": t.subject,
                "status": t.status.as_str(),
                "status_label": t.status.label(lang),
                "requester": t.requester,
                "updated_at": t.updated_at,
            })
        })
        .collect();
    let statuses: Vec<Value> = <Status as strum::VariantArray>::VARIANTS
        .iter()
        .map(
            |s| json!({"code": s.as_str(), "label": s.label(lang), "selected": Some(*s) == status}),
        )
        .collect();
    Ok(visitor.page(
        StatusCode::OK,
        "requests",
        json!({
            "title": super::pages::text(lang, "my_activities"),
            "nav": "requests",
            "scope": scope_name,
            "status": status.map(Status::as_str),
            "statuses": statuses,
            "tickets": tickets,
            "show_requester": organization,
            "previous": (page > 1).then(|| link(page - 1)),
            "next": more.then(|| link(page + 1)),
        }),
    ))
}

#[derive(Deserialize, Default)]
pub struct NewQuery {
    followup_of: Option<String>,
}

pub async fn new_form(
    State(web): State<Shared>,
    headers: HeaderMap,
    uri: Uri,
    Query(query): Query<NewQuery>,
) -> Result<Response, Failure> {
    let visitor = Visitor::of(&web, &headers).await?;
    let person = visitor.signed_in(&uri)?;
    if person.role == Role::Member {
        return Err(visitor.failure(StatusCode::FORBIDDEN, "forbidden"));
    }
    let mut form = RequestForm::default();
    if let Some(raw) = query.followup_of.as_deref().filter(|r| !r.is_empty()) {
        let old = readable_ticket(&web, &visitor, person, raw).await?;
        form.subject = old.subject;
        form.followup_of = Some(old.id);
        form.category = old.category.as_str().to_string();
    }
    Ok(request_page(&web, &visitor, StatusCode::OK, &form, &[]))
}

/// The request form's values, kept when it is shown again with errors.
#[derive(Default)]
struct RequestForm {
    subject: String,
    description: String,
    category: String,
    emergency: bool,
    followup_of: Option<i64>,
}

fn request_page(
    web: &Shared,
    visitor: &Visitor,
    status: StatusCode,
    form: &RequestForm,
    errors: &[&str],
) -> Response {
    let lang = visitor.lang;
    let chosen: Category = form.category.parse().unwrap_or_default();
    let categories: Vec<Value> = <Category as strum::VariantArray>::VARIANTS
        .iter()
        .map(|c| json!({"code": c.as_str(), "label": c.label(lang), "selected": *c == chosen}))
        .collect();
    visitor.page(
        status,
        "new_request",
        json!({
            "title": super::pages::text(lang, if form.followup_of.is_some() { "followup_title" } else { "submit_request" }),
            "nav": "new",
            "subject": form.subject,
            "description": form.description,
            "categories": categories,
            "emergency": form.emergency,
            "followup_of": form.followup_of,
            "errors": errors,
            "upload_hint": upload_hint(web, lang),
        }),
    )
}

fn upload_hint(web: &Shared, lang: &str) -> String {
    format!(
        "{} {} {} {}",
        super::pages::message(lang, "upload_hint"),
        web.max_upload_files,
        super::pages::message(lang, "files_in_all"),
        size_label(web.max_upload_bytes as i64)
    )
}

/// A request's multipart form: its text fields and its files.
struct Upload {
    fields: std::collections::HashMap<String, String>,
    files: Vec<Attachment>,
}

#[derive(Debug)]
enum UploadError {
    TooLarge,
    TooManyFiles,
    Malformed,
}

async fn read_upload(web: &Shared, mut multipart: Multipart) -> Result<Upload, UploadError> {
    let mut upload = Upload {
        fields: Default::default(),
        files: Vec::new(),
    };
    let mut total: u64 = 0;
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(UploadError::TooLarge)
            }
            Err(_) => return Err(UploadError::Malformed),
        };
        let name = field.name().unwrap_or_default().to_string();
        let filename = field.file_name().map(str::to_string);
        let content_type = field.content_type().map(str::to_string);
        let data = match field.bytes().await {
            Ok(data) => data,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(UploadError::TooLarge)
            }
            Err(_) => return Err(UploadError::Malformed),
        };
        if name == "attachments" {
            // A file input left empty sends a part without name or data.
            let Some(filename) = filename.filter(|f| !f.is_empty()) else {
                continue;
            };
            total += data.len() as u64;
            if total > web.max_upload_bytes {
                return Err(UploadError::TooLarge);
            }
            if upload.files.len() >= web.max_upload_files {
                return Err(UploadError::TooManyFiles);
            }
            upload
                .files
                .push(uploaded(&filename, content_type.as_deref(), data.to_vec()));
        } else if upload.fields.len() < 32 {
            upload
                .fields
                .insert(name, String::from_utf8_lossy(&data).into_owned());
        }
    }
    Ok(upload)
}

/// An uploaded file as a comment's attachment, its name made safe as a
/// mail's would be.
fn uploaded(filename: &str, content_type: Option<&str>, data: Vec<u8>) -> Attachment {
    let safe = crate::inbound::parse::safe_filename(filename);
    let content_type = content_type
        .filter(|t| {
            t.len() <= 100
                && t.split_once('/').is_some_and(|(a, b)| {
                    !a.is_empty()
                        && !b.is_empty()
                        && (a.chars().chain(b.chars()))
                            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
                })
        })
        .unwrap_or("application/octet-stream")
        .to_ascii_lowercase();
    Attachment {
        original_filename: (safe != filename).then(|| filename.to_string()),
        filename: safe,
        content_type,
        sha256: crate::domain::mail::sha256_hex(&data),
        data,
    }
}

fn upload_error(visitor: &Visitor, error: UploadError) -> &'static str {
    match error {
        UploadError::TooLarge => visitor.text("too_large"),
        UploadError::TooManyFiles => visitor.text("too_many_files"),
        UploadError::Malformed => visitor.text("error"),
    }
}

pub async fn create(
    State(web): State<Shared>,
    headers: HeaderMap,
    uri: Uri,
    multipart: Multipart,
) -> Result<Response, Failure> {
    let visitor = Visitor::of(&web, &headers).await?;
    let person = visitor.signed_in(&uri)?.clone();
    let upload = match read_upload(&web, multipart).await {
        Ok(upload) => upload,
        Err(error) => {
            let message = upload_error(&visitor, error);
            return Ok(request_page(
                &web,
                &visitor,
                StatusCode::PAYLOAD_TOO_LARGE,
                &RequestForm::default(),
                &[message],
            ));
        }
    };
    let field = |name: &str| upload.fields.get(name).map(String::as_str);
    visitor.check_csrf(field("csrf"))?;
    if person.role == Role::Member {
        return Err(visitor.failure(StatusCode::FORBIDDEN, "forbidden"));
    }
    let followup_of = match field("followup_of").filter(|f| !f.is_empty()) {
        Some(raw) => Some(readable_ticket(&web, &visitor, &person, raw).await?.id),
        None => None,
    };
    let form = RequestForm {
        subject: field("subject").unwrap_or_default().trim().to_string(),
        description: field("description")
            .unwrap_or_default()
            .trim_end()
            .to_string(),
        category: field("category").unwrap_or("customer_support").to_string(),
        emergency: field("emergency") == Some("1"),
        followup_of,
    };
    let category: Option<Category> = form.category.parse().ok();
    let mut errors = Vec::new();
    if form.subject.is_empty() && followup_of.is_none() {
        errors.push(visitor.text("subject_missing"));
    }
    if form.description.trim().is_empty() {
        errors.push(visitor.text("description_missing"));
    }
    if category.is_none() {
        errors.push(visitor.text("category_invalid"));
    }
    if !errors.is_empty() {
        return Ok(request_page(
            &web,
            &visitor,
            StatusCode::BAD_REQUEST,
            &form,
            &errors,
        ));
    }
    let policy = web.acts.policy();
    let urgent = form.emergency || is_emergency(&form.subject, &policy.emergency_markers);
    let now = web.now();
    let mut wanted = Wanted::default();
    wanted.emails.insert(person.email.clone());
    wanted.tickets.extend(followup_of);
    let decision = web
        .acts
        .run(&web.store, wanted, now, |world, policy| {
            let author = world
                .person(&person.email)
                .cloned()
                .ok_or_else(|| Refusal::NotAllowed(person.email.clone()))?;
            let request = Contribution {
                author,
                subject: form.subject.clone(),
                body: form.description.clone(),
                full_text: form.description.clone(),
                attachments: upload.files,
                message_id: None,
                category,
                urgent,
                cc: Vec::new(),
            };
            decide::open_ticket(world, policy, request, followup_of, now)
        })
        .await?;
    let decision = refused(&visitor, decision)?;
    web.outbox_due.notify_one();
    let (id, _) = decision.ticket.expect("a new request names its ticket");
    tracing::info!(ticket = id, by = %person.email, outcome = %decision.outcome, "request from the help center");
    Ok(visitor.see_other(&format!("/tickets/{id}"), Vec::new()))
}

/// A refusal of the rules as the page it becomes.
fn refused(visitor: &Visitor, decision: Result<Decision, Refusal>) -> Result<Decision, Failure> {
    decision.map_err(|refusal| match refusal {
        Refusal::NoSuchTicket(_) | Refusal::InvalidLink => {
            visitor.failure(StatusCode::NOT_FOUND, "not_found")
        }
        Refusal::Closed(_) => visitor.failure(StatusCode::FORBIDDEN, "closed"),
        Refusal::NotAllowed(_) | Refusal::NotRateable(_) => {
            visitor.failure(StatusCode::FORBIDDEN, "forbidden")
        }
    })
}

/// The ticket `raw` names, if `person` may read it; 404 otherwise, the
/// same for tickets of other organizations as for numbers never used.
async fn readable_ticket(
    web: &Shared,
    visitor: &Visitor,
    person: &Person,
    raw: &str,
) -> Result<tickets::TicketView, Failure> {
    let not_found = || visitor.failure(StatusCode::NOT_FOUND, "not_found");
    let id: i64 = raw.parse().map_err(|_| not_found())?;
    let mut conn = web.store.read().await?;
    tickets::view(&mut conn, id)
        .await?
        .filter(|t| person.may_read(t.organization_id))
        .ok_or_else(not_found)
}

pub async fn show(
    State(web): State<Shared>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Result<Response, Failure> {
    let visitor = Visitor::of(&web, &headers).await?;
    let person = visitor.signed_in(&uri)?;
    let ticket = readable_ticket(&web, &visitor, person, &id).await?;
    Ok(ticket_page(
        &web,
        &visitor,
        person,
        &ticket,
        StatusCode::OK,
        None,
        "",
    ))
}

fn ticket_page(
    web: &Shared,
    visitor: &Visitor,
    person: &Person,
    ticket: &tickets::TicketView,
    status: StatusCode,
    error: Option<&str>,
    draft: &str,
) -> Response {
    let lang = visitor.lang;
    let agent = person.role == Role::Agent;
    let requester_name = ticket
        .comments
        .first()
        .filter(|c| c.author == ticket.requester)
        .map_or(ticket.requester.as_str(), |c| c.author_name.as_str());
    let comments: Vec<Value> = ticket
        .comments
        .iter()
        .filter(|c| c.public || agent)
        .map(|c| {
            let files: Vec<Value> = c
                .attachments
                .iter()
                .map(|a| json!({"id": a.id, "filename": a.filename, "size": size_label(a.size)}))
                .collect();
            json!({
                "id": c.id,
                "author_name": c.author_name,
                "public": c.public,
                "body": c.body,
                "created_at": c.created_at,
                "attachments": files,
            })
        })
        .collect();
    let may_write = person.may_write_on(ticket.organization_id);
    visitor.page(
        status,
        "ticket",
        json!({
            "title": format!("#{} {}", ticket.id, ticket.subject),
            "ticket": {
                "id": ticket.id,
                "subject": ticket.subject,
                "status": ticket.status.as_str(),
                "status_label": ticket.status.label(lang),
                "category_label": ticket.category.label(lang),
                "urgent": ticket.priority == crate::domain::ticket::Priority::Urgent,
                "requester_name": requester_name,
                "followup_of": ticket.followup_of,
            },
            "comments": comments,
            "closed": ticket.status == Status::Closed,
            "may_write": may_write,
            "may_solve": may_write && matches!(ticket.status, Status::Open | Status::Pending),
            "error": error,
            "draft": draft,
            "upload_hint": upload_hint(web, lang),
        }),
    )
}

pub async fn comment(
    State(web): State<Shared>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    multipart: Multipart,
) -> Result<Response, Failure> {
    let visitor = Visitor::of(&web, &headers).await?;
    let person = visitor.signed_in(&uri)?.clone();
    let upload = read_upload(&web, multipart).await;
    let ticket = readable_ticket(&web, &visitor, &person, &id).await?;
    let upload = match upload {
        Ok(upload) => upload,
        Err(error) => {
            let message = upload_error(&visitor, error);
            return Ok(ticket_page(
                &web,
                &visitor,
                &person,
                &ticket,
                StatusCode::PAYLOAD_TOO_LARGE,
                Some(message),
                "",
            ));
        }
    };
    visitor.check_csrf(upload.fields.get("csrf").map(String::as_str))?;
    let body = upload
        .fields
        .get("body")
        .map(|b| b.trim_end().to_string())
        .unwrap_or_default();
    if body.trim().is_empty()
        && upload.files.is_empty()
        && person.may_write_on(ticket.organization_id)
    {
        return Ok(ticket_page(
            &web,
            &visitor,
            &person,
            &ticket,
            StatusCode::BAD_REQUEST,
            Some(visitor.text("empty_comment")),
            "",
        ));
    }
    let now = web.now();
    let mut wanted = Wanted::default();
    wanted.emails.insert(person.email.clone());
    wanted.tickets.insert(ticket.id);
    let decision = web
        .acts
        .run(&web.store, wanted, now, |world, policy| {
            let author = world
                .person(&person.email)
                .cloned()
                .ok_or_else(|| Refusal::NotAllowed(person.email.clone()))?;
            let comment = Contribution {
                author: author.clone(),
                subject: String::new(),
                body: body.clone(),
                full_text: body.clone(),
                attachments: upload.files,
                message_id: None,
                category: None,
                urgent: false,
                cc: Vec::new(),
            };
            if author.role == Role::Agent {
                decide::agent_comment(
                    world,
                    policy,
                    comment,
                    ticket.id,
                    &AgentCommands::default(),
                    now,
                )
            } else {
                decide::customer_comment(world, policy, comment, ticket.id, now)
            }
        })
        .await?;
    let decision = refused(&visitor, decision)?;
    web.outbox_due.notify_one();
    let (target, _) = decision.ticket.expect("a comment names its ticket");
    let anchor = decision
        .writes
        .comment
        .as_ref()
        .map(|c| format!("#comment-{}", c.id))
        .unwrap_or_default();
    Ok(visitor.see_other(&format!("/tickets/{target}{anchor}"), Vec::new()))
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: Option<String>,
}

pub async fn solve(
    State(web): State<Shared>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, Failure> {
    let visitor = Visitor::of(&web, &headers).await?;
    let person = visitor.signed_in(&uri)?.clone();
    visitor.check_csrf(form.csrf.as_deref())?;
    let id: i64 = id
        .parse()
        .map_err(|_| visitor.failure(StatusCode::NOT_FOUND, "not_found"))?;
    let now = web.now();
    let mut wanted = Wanted::default();
    wanted.emails.insert(person.email.clone());
    wanted.tickets.insert(id);
    let decision = web
        .acts
        .run(&web.store, wanted, now, |world, policy| {
            decide::solve_as(world, policy, &person.email, id, now)
        })
        .await?;
    refused(&visitor, decision)?;
    web.outbox_due.notify_one();
    Ok(visitor.see_other(&format!("/tickets/{id}"), Vec::new()))
}

pub async fn attachment(
    State(web): State<Shared>,
    headers: HeaderMap,
    uri: Uri,
    Path((id, attachment_id)): Path<(String, String)>,
) -> Result<Response, Failure> {
    let visitor = Visitor::of(&web, &headers).await?;
    let person = visitor.signed_in(&uri)?;
    let ticket = readable_ticket(&web, &visitor, person, &id).await?;
    let not_found = || visitor.failure(StatusCode::NOT_FOUND, "not_found");
    let attachment_id: i64 = attachment_id.parse().map_err(|_| not_found())?;
    let mut conn = web.store.read().await?;
    let file = tickets::attachment(&mut conn, ticket.id, attachment_id)
        .await?
        .filter(|f| f.public != 0 || person.role == Role::Agent)
        .ok_or_else(not_found)?;
    let data = crate::store::blobs::get(&mut conn, &file.sha256)
        .await?
        .ok_or_else(not_found)?;
    drop(conn);
    let disposition = content_disposition(&file.filename);
    let mut response = data.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&file.content_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&disposition).expect("encoded as ASCII"),
    );
    // Even a browser that ignored the disposition runs nothing of it.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    Ok(response)
}

/// `attachment; filename="…"; filename*=UTF-8''…` (RFC 6266): an ASCII
/// fallback and the exact name.
fn content_disposition(filename: &str) -> String {
    let fallback: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for byte in filename.bytes() {
        if byte.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

fn size_label(bytes: i64) -> String {
    match bytes {
        b if b < 1024 => format!("{b} B"),
        b if b < 1024 * 1024 => format!("{} KB", (b + 1023) / 1024),
        b => format!("{:.1} MB", b as f64 / (1024.0 * 1024.0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downloads_name_the_file_safely_for_every_browser() {
        assert_eq!(
            content_disposition("Rechnung März.pdf"),
            "attachment; filename=\"Rechnung M_rz.pdf\"; filename*=UTF-8''Rechnung%20M%C3%A4rz.pdf"
        );
        let quoted = content_disposition("a\"b\\c.txt");
        assert!(
            quoted.starts_with("attachment; filename=\"a_b_c.txt\""),
            "{quoted}"
        );
    }

    #[test]
    fn uploaded_files_get_safe_names_and_plain_content_types() {
        let a = uploaded("../../etc/passwd", Some("text/html"), b"x".to_vec());
        assert_eq!(a.filename, "passwd");
        assert_eq!(a.original_filename.as_deref(), Some("../../etc/passwd"));
        assert_eq!(a.content_type, "text/html");
        let b = uploaded("bild.png", Some("image/png\r\nX-Evil: 1"), b"x".to_vec());
        assert_eq!(b.content_type, "application/octet-stream");
        assert_eq!(b.original_filename, None);
    }
}
