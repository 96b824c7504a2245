//! Notification bodies from handlebars templates, German and English, text
//! and HTML. The built-in templates (`templates/`) are compiled into the
//! binary; an operator's directory overrides any of them by file name. All
//! templates are compiled and test-rendered when the renderer is built, so a
//! broken template stops start-up instead of a mail at 3 a.m.

use std::path::Path;

use handlebars::{handlebars_helper, Handlebars};

use crate::domain::notice::{CommentRef, Context, Event, PersonRef, RatingLinks, TicketRef};
use crate::reply::DELIMITER;

pub const LOCALES: &[&str] = &["de", "en"];

/// Below the delimiter in English mail: what it asks.
pub const ENGLISH_HINT: &str = "##- Please type your reply above this line. -##";

/// The built-in templates, by file name.
const BUILT_IN: &[(&str, &str)] = &include!(concat!(env!("OUT_DIR"), "/templates.rs"));

#[derive(Debug, thiserror::Error)]
#[error("template {name}: {message}")]
pub struct TemplateError {
    pub name: String,
    pub message: String,
}

/// A rendered notification body.
#[derive(Debug, Clone, PartialEq)]
pub struct Body {
    pub text: String,
    pub html: String,
}

pub struct Renderer {
    text: Handlebars<'static>,
    html: Handlebars<'static>,
}

handlebars_helper!(paragraphs: |text: str| render_paragraphs(text));

impl Renderer {
    /// Compiles the built-in templates, replaced by same-named files from
    /// `override_dir`, and renders each once with sample data. Fails naming
    /// the first template that does not compile or render.
    pub fn load(override_dir: Option<&Path>) -> Result<Renderer, TemplateError> {
        let mut text = Handlebars::new();
        text.set_strict_mode(true);
        text.register_escape_fn(handlebars::no_escape);
        let mut html = Handlebars::new();
        html.set_strict_mode(true);
        html.register_helper("paragraphs", Box::new(paragraphs));

        for (file, built_in) in BUILT_IN {
            let source = match override_dir.map(|dir| dir.join(file)) {
                Some(path) if path.exists() => {
                    std::fs::read_to_string(&path).map_err(|e| TemplateError {
                        name: path.display().to_string(),
                        message: e.to_string(),
                    })?
                }
                _ => built_in.to_string(),
            };
            let name = file.trim_end_matches(".hbs");
            let registry = if name.ends_with(".html") {
                &mut html
            } else {
                &mut text
            };
            registry
                .register_template_string(name, source)
                .map_err(|e| TemplateError {
                    name: file.to_string(),
                    message: e.to_string(),
                })?;
        }
        let renderer = Renderer { text, html };
        for event in <Event as strum::VariantArray>::VARIANTS {
            for locale in LOCALES {
                renderer.render(*event, locale, &sample_context())?;
            }
        }
        Ok(renderer)
    }

    /// Renders one notification. The delimiter line is put first in both
    /// bodies here, not in the templates, so no template can lose it.
    pub fn render(
        &self,
        event: Event,
        locale: &str,
        context: &Context,
    ) -> Result<Body, TemplateError> {
        // Strict templates fail on a missing field; an event that has no
        // ticket, comment or rating gets empty ones, and templates test
        // what they use.
        let mut context = context.clone();
        context.ticket.get_or_insert_with(Default::default);
        context.comment.get_or_insert_with(Default::default);
        context.rating.get_or_insert_with(Default::default);
        let context = &context;
        let locale = if locale.starts_with("en") { "en" } else { "de" };
        let name = format!("{}.{locale}", event.as_str());
        let text_name = format!("{name}.txt");
        let html_name = format!("{name}.html");
        let failed = |name: &str, e: handlebars::RenderError| TemplateError {
            name: format!("{name}.hbs"),
            message: e.to_string(),
        };
        let text = self
            .text
            .render(&text_name, context)
            .map_err(|e| failed(&text_name, e))?;
        let html = self
            .html
            .render(&html_name, context)
            .map_err(|e| failed(&html_name, e))?;
        if event.is_account() {
            // No ticket to answer: a reply is mail like any other.
            return Ok(Body {
                text: text.trim_start().to_string(),
                html: format!(
                    "<div style=\"font-family:sans-serif\">\n{}</div>\n",
                    html.trim_start()
                ),
            });
        }
        // English readers get the line's meaning beside it; the German
        // line stays first and exact, since replies are cut at it.
        let (text_hint, html_hint) = if locale == "en" {
            (format!("\n{ENGLISH_HINT}"), format!("<br>{ENGLISH_HINT}"))
        } else {
            (String::new(), String::new())
        };
        Ok(Body {
            text: format!("{DELIMITER}{text_hint}\n\n{}", text.trim_start()),
            html: format!(
                "<div style=\"color:#8a8a8a;font-size:12px\">{DELIMITER}{html_hint}</div>\n\
                 <div style=\"font-family:sans-serif\">\n{}</div>\n",
                html.trim_start()
            ),
        })
    }
}

/// Data for the start-up check: every field set, as strict mode wants.
pub fn sample_context() -> Context {
    Context {
        recipient: PersonRef {
            name: "Anna Schmidt".into(),
            email: "anna@example.com".into(),
        },
        requester: PersonRef {
            name: "Anna Schmidt".into(),
            email: "anna@example.com".into(),
        },
        organization: "Beispiel GmbH".into(),
        ticket: Some(TicketRef {
            id: 1,
            subject: "Beispiel".into(),
            status: "open".into(),
            status_label: "Offen".into(),
            link: "https://help.example.com/tickets/1".into(),
            category: "customer_support".into(),
            priority: "normal".into(),
            urgent: false,
            followup_of: Some(0),
        }),
        comment: Some(CommentRef {
            author: "Lena Fischer".into(),
            body: "Hallo\n\nWelt".into(),
        }),
        rating: Some(RatingLinks {
            good: "https://help.example.com/rate/x/good".into(),
            bad: "https://help.example.com/rate/x/bad".into(),
        }),
        subject: "Frage".into(),
        reopen_days: 14,
        link: "https://help.example.com/activate/x".into(),
        key_users: vec![PersonRef {
            name: "Jonas Becker".into(),
            email: "jonas@example.com".into(),
        }],
    }
}

/// Plain text as HTML paragraphs: escaped, blank lines separate paragraphs,
/// single line breaks stay.
fn render_paragraphs(text: &str) -> String {
    let escaped = handlebars::html_escape(text.trim());
    escaped
        .replace("\r\n", "\n")
        .split("\n\n")
        .filter(|p| !p.trim().is_empty())
        .map(|p| format!("<p>{}</p>", p.trim().replace('\n', "<br>\n")))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_renders_in_both_languages_with_the_delimiter_first() {
        let renderer = Renderer::load(None).unwrap();
        let ticket_events = <Event as strum::VariantArray>::VARIANTS
            .iter()
            .filter(|e| !e.is_account());
        for event in ticket_events {
            for locale in LOCALES {
                let body = renderer.render(*event, locale, &sample_context()).unwrap();
                let first_text = body.text.lines().find(|l| !l.trim().is_empty()).unwrap();
                assert_eq!(first_text, DELIMITER, "{event:?} {locale}");
                let first_html = body.html.lines().find(|l| !l.trim().is_empty()).unwrap();
                assert!(first_html.contains(DELIMITER), "{event:?} {locale}");
            }
        }
    }

    #[test]
    fn html_is_escaped_text_is_not() {
        let renderer = Renderer::load(None).unwrap();
        let mut context = sample_context();
        context.comment.as_mut().unwrap().body = "a < b & <script>\n\nzwei".into();
        let body = renderer.render(Event::AgentReply, "de", &context).unwrap();
        assert!(body.text.contains("a < b & <script>"));
        assert!(
            body.html
                .contains("<p>a &lt; b &amp; &lt;script&gt;</p>\n<p>zwei</p>"),
            "{}",
            body.html
        );
    }

    #[test]
    fn english_mail_explains_the_german_line_below_it() {
        let renderer = Renderer::load(None).unwrap();
        let english = renderer
            .render(Event::AgentReply, "en", &sample_context())
            .unwrap();
        let mut lines = english.text.lines();
        assert_eq!(lines.next(), Some(DELIMITER));
        assert_eq!(lines.next(), Some(ENGLISH_HINT));
        assert!(english.html.contains(ENGLISH_HINT));
        let german = renderer
            .render(Event::AgentReply, "de", &sample_context())
            .unwrap();
        assert!(!german.text.contains(ENGLISH_HINT));
        // A reply above the lines keeps only the reply.
        let reply = format!("Thanks, that worked.\n\n{}", english.text);
        assert_eq!(crate::reply::extract_reply(&reply), "Thanks, that worked.");
    }

    #[test]
    fn unknown_locales_fall_back_to_german() {
        let renderer = Renderer::load(None).unwrap();
        let body = renderer
            .render(Event::TicketCreated, "fr", &sample_context())
            .unwrap();
        assert!(body.text.contains("vielen Dank"));
        let english = renderer
            .render(Event::TicketCreated, "en-GB", &sample_context())
            .unwrap();
        assert!(english.text.contains("thank you"));
    }

    #[test]
    fn a_broken_override_is_reported_at_load_by_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("agent_reply.en.txt.hbs"), "Hello {{#if}}").unwrap();
        let err = Renderer::load(Some(dir.path())).err().unwrap();
        assert_eq!(err.name, "agent_reply.en.txt.hbs");

        std::fs::write(
            dir.path().join("agent_reply.en.txt.hbs"),
            "Hello {{no.such.field}}",
        )
        .unwrap();
        let err = Renderer::load(Some(dir.path())).err().unwrap();
        assert!(err.name.contains("agent_reply.en.txt"), "{err}");

        std::fs::write(
            dir.path().join("agent_reply.en.txt.hbs"),
            "Hi {{recipient.name}}!",
        )
        .unwrap();
        let renderer = Renderer::load(Some(dir.path())).unwrap();
        let body = renderer
            .render(Event::AgentReply, "en", &sample_context())
            .unwrap();
        assert_eq!(
            body.text,
            format!("{DELIMITER}\n{ENGLISH_HINT}\n\nHi Anna Schmidt!")
        );
    }
}
