//! The help center's pages: handlebars templates from `templates/web/`
//! (compiled into the binary), HTML-escaped, German and English through the
//! `t` helper and the table of texts below.

use handlebars::{
    Context, Handlebars, Helper, HelperDef, HelperResult, Output, RenderContext, RenderError,
    RenderErrorReason,
};
use serde_json::Value;

/// The page templates and the style sheet, by file name.
const BUILT_IN: &[(&str, &str)] = &include!(concat!(env!("OUT_DIR"), "/pages.rs"));

pub struct Pages {
    registry: Handlebars<'static>,
    pub style: &'static str,
}

impl Pages {
    /// Compiles every page; a template that does not compile is a bug
    /// caught by the tests, so this panics naming it.
    pub fn load() -> Pages {
        let mut registry = Handlebars::new();
        registry.register_helper("t", Box::new(Translate));
        registry.register_helper("date", Box::new(Date));
        let mut style = "";
        for (file, source) in BUILT_IN {
            if let Some(name) = file.strip_suffix(".hbs") {
                registry
                    .register_template_string(name, *source)
                    .unwrap_or_else(|e| panic!("templates/web/{file}: {e}"));
                if name == "layout" {
                    registry
                        .register_partial(name, *source)
                        .unwrap_or_else(|e| panic!("templates/web/{file}: {e}"));
                }
            } else if *file == "style.css" {
                style = source;
            }
        }
        Pages { registry, style }
    }

    /// Renders `page` with `data` (which carries `lang`, used by `t`).
    pub fn render(&self, page: &str, data: &Value) -> Result<String, RenderError> {
        self.registry.render(page, data)
    }
}

/// `{{t "key"}}`: the text of `key` in the page's language.
struct Translate;

impl HelperDef for Translate {
    fn call<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        ctx: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        let key = h
            .param(0)
            .and_then(|p| p.value().as_str())
            .ok_or(RenderErrorReason::ParamNotFoundForIndex("t", 0))?;
        let lang = lang_of(ctx);
        let text = text(lang, key)
            .ok_or_else(|| RenderErrorReason::Other(format!("no text for {key:?}")))?;
        out.write(&handlebars::html_escape(text))?;
        Ok(())
    }
}

/// `{{date unix_seconds}}`: a date and time (UTC) as the language writes it.
struct Date;

impl HelperDef for Date {
    fn call<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        ctx: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        let seconds = h
            .param(0)
            .and_then(|p| p.value().as_i64())
            .ok_or(RenderErrorReason::ParamNotFoundForIndex("date", 0))?;
        let Some(time) = chrono::DateTime::from_timestamp(seconds, 0) else {
            return Ok(());
        };
        let format = if lang_of(ctx) == "en" {
            "%Y-%m-%d %H:%M UTC"
        } else {
            "%d.%m.%Y %H:%M UTC"
        };
        out.write(&time.format(format).to_string())?;
        Ok(())
    }
}

fn lang_of(ctx: &Context) -> &str {
    match ctx.data().get("lang").and_then(Value::as_str) {
        Some("en") => "en",
        _ => "de",
    }
}

/// The page language: the user's locale when signed in, else the first of
/// German and English in `Accept-Language`; German by default.
pub fn language(locale: Option<&str>, accept_language: Option<&str>) -> &'static str {
    if let Some(locale) = locale {
        return if locale.starts_with("en") { "en" } else { "de" };
    }
    let mut ranked: Vec<(f32, &str)> = accept_language
        .unwrap_or_default()
        .split(',')
        .filter_map(|part| {
            let mut pieces = part.split(';');
            let tag = pieces.next()?.trim();
            let quality = pieces
                .find_map(|p| p.trim().strip_prefix("q="))
                .map_or(Some(1.0), |q| q.parse().ok())?;
            Some((quality, tag))
        })
        .collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
    for (quality, tag) in ranked {
        let primary = tag.split('-').next().unwrap_or_default();
        if quality > 0.0 && primary.eq_ignore_ascii_case("en") {
            return "en";
        }
        if quality > 0.0 && primary.eq_ignore_ascii_case("de") {
            return "de";
        }
    }
    "de"
}

/// A text of the pages in `lang` ("de" or "en").
pub fn text(lang: &str, key: &str) -> Option<&'static str> {
    let (de, en) = match key {
        "help_center" => ("Help Center", "Help center"),
        "navigation" => ("Navigation", "Navigation"),
        "my_activities" => ("Meine Aktivitäten", "My activities"),
        "submit_request" => ("Anfrage einreichen", "Submit a request"),
        "sign_out" => ("Abmelden", "Sign out"),
        "sign_in" => ("Anmelden", "Sign in"),
        "email" => ("E-Mail-Adresse", "Email address"),
        "password" => ("Passwort", "Password"),
        "forgot_password" => ("Passwort vergessen?", "Forgot your password?"),
        "new_password" => ("Neues Passwort", "New password"),
        "confirm_password" => ("Passwort wiederholen", "Repeat the password"),
        "password_rules" => (
            "Mindestens 10 Zeichen; keines der gängigen Passwörter und nicht Ihr Name.",
            "At least 10 characters; none of the common passwords and not your name.",
        ),
        "save_password" => ("Passwort speichern", "Save password"),
        "activate_title" => ("Willkommen im Help Center", "Welcome to the help center"),
        "activate_intro" => (
            "Legen Sie Ihr Passwort fest für",
            "Choose your password for",
        ),
        "reset_title" => ("Neues Passwort festlegen", "Choose a new password"),
        "reset_intro" => ("Neues Passwort für", "New password for"),
        "forgot_title" => ("Passwort vergessen", "Forgot your password"),
        "forgot_intro" => (
            "Geben Sie Ihre E-Mail-Adresse ein. Wir senden Ihnen einen Link, mit dem Sie ein neues Passwort festlegen.",
            "Enter your email address. We will send you a link to choose a new password.",
        ),
        "forgot_sent" => (
            "Wenn diese Adresse bei uns bekannt ist, ist eine E-Mail mit einem Link unterwegs. Er gilt 2 Stunden.",
            "If we know this address, a mail with a link is on its way. It works for 2 hours.",
        ),
        "send_link" => ("Link senden", "Send the link"),
        "back_to_sign_in" => ("Zur Anmeldung", "Back to sign in"),
        "scope" => ("Auswahl", "Scope"),
        "my_requests" => ("Meine Anfragen", "My requests"),
        "organization_requests" => ("Anfragen meiner Organisation", "My organization's requests"),
        "all_requests" => ("Alle Anfragen", "All requests"),
        "status" => ("Status", "Status"),
        "any_status" => ("Alle", "Any"),
        "filter" => ("Anzeigen", "Show"),
        "updated" => ("zuletzt", "updated"),
        "no_requests" => ("Hier gibt es keine Anfragen.", "There are no requests here."),
        "pages" => ("Seiten", "Pages"),
        "newer" => ("← Neuere", "← Newer"),
        "older" => ("Ältere →", "Older →"),
        "followup_title" => ("Folgeanfrage erstellen", "Create a follow-up"),
        "followup_of" => ("Folgeanfrage zu", "Follow-up of"),
        "subject" => ("Betreff", "Subject"),
        "description" => ("Beschreibung", "Description"),
        "description_hint" => (
            "Was ist passiert, was haben Sie erwartet, und seit wann?",
            "What happened, what did you expect, and since when?",
        ),
        "category" => ("Kategorie", "Category"),
        "emergency" => ("Ich habe einen Notfall!", "I have an emergency!"),
        "emergency_hint" => (
            "Nur wenn Ihr Betrieb stillsteht: Unser Bereitschaftsdienst wird sofort benachrichtigt.",
            "Only when your business is at a standstill: our on-call team is told at once.",
        ),
        "attachments" => ("Anhänge", "Attachments"),
        "send" => ("Absenden", "Submit"),
        "urgent" => ("Notfall", "Emergency"),
        "requester" => ("Angefragt von", "Requested by"),
        "internal" => ("intern", "internal"),
        "ticket_closed" => (
            "Dieses Ticket ist geschlossen und nimmt keine Kommentare mehr an.",
            "This ticket is closed and takes no more comments.",
        ),
        "create_followup" => ("Folgeanfrage erstellen", "Create a follow-up"),
        "add_comment" => ("Ihr Kommentar", "Your comment"),
        "send_comment" => ("Kommentar senden", "Send comment"),
        "solve_hint" => (
            "Ist Ihr Anliegen erledigt? Dann schließen Sie die Anfrage ab.",
            "Has your issue been dealt with? Then close the request.",
        ),
        "mark_solved" => ("Als gelöst markieren", "Mark as solved"),
        "member_read_only" => (
            "Sie können die Tickets Ihrer Organisation lesen. Anfragen stellen und beantworten können die Key-User Ihrer Organisation.",
            "You can read your organization's tickets. Your organization's key users submit and answer requests.",
        ),
        "rate_title" => ("Ihre Bewertung", "Your rating"),
        "rate_intro" => ("Wie war unser Support bei", "How was our support with"),
        "rate_question" => ("Ihre Bewertung", "Your rating"),
        "rating_good" => ("Gut, ich bin zufrieden", "Good, I'm satisfied"),
        "rating_bad" => ("Schlecht, ich bin nicht zufrieden", "Bad, I'm not satisfied"),
        "rate_comment" => ("Kommentar (freiwillig)", "Comment (optional)"),
        "send_rating" => ("Bewertung senden", "Send rating"),
        _ => return None,
    };
    Some(if lang == "en" { en } else { de })
}

/// Texts that handlers put into pages (errors and messages), by language.
pub fn message(lang: &str, key: &str) -> &'static str {
    let (de, en) = match key {
        "wrong_password" => (
            "E-Mail-Adresse oder Passwort ist falsch.",
            "The email address or the password is wrong.",
        ),
        "locked" => (
            "Zu viele falsche Passwörter: Die Anmeldung ist für 15 Minuten gesperrt. Mit „Passwort vergessen?“ setzen Sie ein neues.",
            "Too many wrong passwords: sign-in is locked for 15 minutes. “Forgot your password?” lets you choose a new one.",
        ),
        "client_refused" => (
            "Zu viele falsche Passwörter von dieser Adresse. Bitte versuchen Sie es in 15 Minuten wieder.",
            "Too many wrong passwords from this address. Please try again in 15 minutes.",
        ),
        "too_short" => (
            "Das Passwort ist zu kurz: mindestens 10 Zeichen.",
            "The password is too short: at least 10 characters.",
        ),
        "mismatch" => (
            "Die beiden Passwörter stimmen nicht überein.",
            "The two passwords do not match.",
        ),
        "common" => (
            "Dieses Passwort ist zu leicht zu erraten (ein gängiges Passwort, oder aus Ihrem Namen gebildet). Bitte wählen Sie ein anderes.",
            "This password is too easy to guess (a common one, or made from your name). Please choose another.",
        ),
        "link_invalid_title" => ("Link ungültig", "Link not valid"),
        "link_invalid" => (
            "Dieser Link ist nicht mehr gültig: Er wurde schon benutzt, ist abgelaufen oder durch einen neueren ersetzt.",
            "This link no longer works: it was used already, has expired or was replaced by a newer one.",
        ),
        "request_new_link" => ("Neuen Link anfordern", "Ask for a new link"),
        "rating_link_invalid" => (
            "Dieser Bewertungslink ist nicht gültig. Bitte nutzen Sie den Link aus der E-Mail unverändert.",
            "This rating link is not valid. Please use the link from the mail as it is.",
        ),
        "not_found_title" => ("Nicht gefunden", "Not found"),
        "not_found" => (
            "Diese Seite gibt es nicht, oder sie ist für Sie nicht sichtbar.",
            "This page does not exist, or you may not see it.",
        ),
        "forbidden_title" => ("Nicht erlaubt", "Not allowed"),
        "forbidden" => (
            "Das dürfen Sie hier nicht. Anfragen stellen und beantworten können die Key-User Ihrer Organisation.",
            "You may not do this here. Your organization's key users submit and answer requests.",
        ),
        "csrf_title" => ("Formular abgelaufen", "Form expired"),
        "csrf" => (
            "Das Formular war nicht mehr gültig; es wurde nichts geändert. Bitte laden Sie die Seite neu und senden Sie es noch einmal.",
            "The form was no longer valid; nothing was changed. Please reload the page and send it again.",
        ),
        "closed" => (
            "Dieses Ticket ist geschlossen und nimmt keine Kommentare an.",
            "This ticket is closed and takes no comments.",
        ),
        "empty_comment" => (
            "Bitte schreiben Sie einen Kommentar.",
            "Please write a comment.",
        ),
        "subject_missing" => ("Bitte geben Sie einen Betreff an.", "Please give a subject."),
        "description_missing" => (
            "Bitte beschreiben Sie Ihr Anliegen.",
            "Please describe your issue.",
        ),
        "category_invalid" => ("Bitte wählen Sie eine Kategorie.", "Please choose a category."),
        "too_large" => (
            "Die Anhänge sind zu groß.",
            "The attachments are too large.",
        ),
        "too_many_files" => ("Zu viele Anhänge.", "Too many attachments."),
        "upload_hint" => ("Höchstens", "At most"),
        "files_in_all" => ("Dateien, zusammen", "files, together"),
        "rated_title" => ("Vielen Dank!", "Thank you!"),
        "rated" => (
            "Ihre Bewertung ist gespeichert. Solange das Ticket gelöst ist, können Sie sie über den Link in der E-Mail noch ändern.",
            "Your rating is saved. While the ticket stays solved, the link in the mail lets you change it.",
        ),
        "not_rateable_title" => ("Keine Bewertung möglich", "No rating possible"),
        "not_rateable" => (
            "Dieses Ticket ist nicht mehr gelöst (wieder geöffnet, erneut gelöst oder geschlossen); dieser Bewertungslink gilt nicht mehr.",
            "This ticket is no longer solved (reopened, solved again or closed); this rating link no longer works.",
        ),
        "choose_rating" => ("Bitte wählen Sie eine Bewertung.", "Please choose a rating."),
        "to_ticket" => ("Zum Ticket", "To the ticket"),
        "error_title" => ("Fehler", "Error"),
        "error" => (
            "Etwas ist schiefgegangen; es wurde nichts geändert. Bitte versuchen Sie es gleich noch einmal.",
            "Something went wrong; nothing was changed. Please try again in a moment.",
        ),
        _ => ("", ""),
    };
    if lang == "en" {
        en
    } else {
        de
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_picks_the_first_of_german_and_english_by_quality() {
        assert_eq!(language(None, None), "de");
        assert_eq!(language(None, Some("en-US,en;q=0.9")), "en");
        assert_eq!(language(None, Some("fr-FR, en;q=0.5, de;q=0.8")), "de");
        assert_eq!(language(None, Some("fr, en;q=0.3")), "en");
        assert_eq!(language(None, Some("en;q=0, de")), "de");
        assert_eq!(language(Some("en"), Some("de")), "en");
        assert_eq!(language(Some("de"), Some("en")), "de");
    }

    #[test]
    fn a_missing_text_fails_the_page_instead_of_showing_a_key() {
        let mut registry = Handlebars::new();
        registry.register_helper("t", Box::new(Translate));
        registry
            .register_template_string("p", "{{t \"no_such_text\"}}")
            .unwrap();
        assert!(registry
            .render("p", &serde_json::json!({"lang": "de"}))
            .is_err());
        registry
            .register_template_string("q", "{{t \"mark_solved\"}}")
            .unwrap();
        let english = registry
            .render("q", &serde_json::json!({"lang": "en"}))
            .unwrap();
        assert_eq!(english, "Mark as solved");
    }
}
