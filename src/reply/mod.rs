//! Reply extraction: the text a customer wrote this time, without the quoted
//! history, quote headers and signatures.
//!
//! # How
//! 1. Our delimiter `##- Bitte geben Sie Ihre Antwort über dieser Zeile ein. -##`
//!    is searched first, tolerant of `>` prefixes, wrapping, NBSPs, spacing and
//!    re-encoded umlauts. Everything from it down goes, as does the attribution
//!    directly above it; the rest runs through the heuristics below.
//! 2. Without it, one top-down pass over the lines finds quote headers (attribution
//!    lines in ~20 languages, possibly wrapped over up to four lines; Outlook
//!    "From:/Sent:/To:/Subject:" blocks; "-----Original Message-----"
//!    separators), `>` blocks, signatures and footers.
//!
//! # Policy decisions (where the public test suites disagree)
//! - **Signatures go**: a `-- `/`--` block, a `---` followed by at most four lines,
//!   mobile footers ("Sent from my iPhone", "Von meinem iPhone gesendet",
//!   "Gesendet von Outlook für Android", "Get Outlook for iOS"), a mailing-list
//!   footer under an underscore rule, and a lone "-Name" closing line.
//!   A signature alone (nothing above it) is kept: it is all the customer sent.
//! - **Closing words stay**: "Regards, Roman", "Best regards,\n//Jef" are the
//!   customer's text; guessing where a closing starts loses real content.
//! - **Forwards stay**: a message the customer forwards ("---------- Forwarded
//!   message ---------", "Begin forwarded message:", "Weitergeleitete Nachricht")
//!   is the content, header included, even below a signature. A forward inside
//!   quoted history is history.
//! - **Interleaved and bottom-posted replies**: quoted lines (and the header that
//!   introduces them) go, the customer's lines between and below them stay. When
//!   nothing is written above an unquoted original, the text below its header is
//!   the reply.
//! - **Customer quotations stay**: a `>` block without a quote header is kept when
//!   text follows it, when the line before ends with ":" ("I get this error:"),
//!   or when it is glued to the line above (shell continuation prompts); fenced
//!   code is never touched. A headerless `>` block at the very end is history.
//! - **Quote-only mails**: if nothing remains, the whole body is returned, unless
//!   it consists only of quote headers and empty quote lines (e.g. a chain of
//!   nested "On … wrote:" with no text), which yields the empty string. With our
//!   delimiter present, an empty reply stays empty: everything below is ours.

/// The line every notification starts with; the customer answers above it.
pub const DELIMITER: &str = "##- Bitte geben Sie Ihre Antwort über dieser Zeile ein. -##";

mod delimiter;
mod html;
mod patterns;
mod quote;

use std::borrow::Cow;

/// Text the customer wrote this time, cut from a plain-text body.
pub fn extract_reply(text: &str) -> String {
    let text = normalize_newlines(text);
    let lines: Vec<&str> = text.split('\n').collect();
    if let Some(d) = delimiter::find_delimiter_line(&lines) {
        return extract_above_delimiter(&lines, d);
    }
    let kept = render(&quote::keep_reply_lines(&lines).lines);
    if !kept.is_empty() {
        return kept;
    }
    if is_only_quote_headers(&lines) {
        String::new()
    } else {
        render(&lines)
    }
}

/// Same for an HTML-only body: convert to readable text (lists, links, line breaks) and extract,
/// honouring `<blockquote>` / Outlook's divRplyFwdMsg / gmail_quote structure where useful.
pub fn extract_reply_html(html: &str) -> String {
    extract_html(html, html::DEFAULT_MAX_ELEMENTS).reply
}

/// What an HTML-only body says: the reply, and the whole text beside it.
pub struct HtmlText {
    pub reply: String,
    pub full_text: String,
}

/// The reply and the whole text of an HTML body, converted once. HTML with
/// more than `max_elements` elements is only stripped of its tags.
pub fn extract_html(html: &str, max_elements: usize) -> HtmlText {
    let full_text = html::html_to_text(html, max_elements);
    let full_lines: Vec<&str> = full_text.split('\n').collect();
    let reply = if delimiter::find_delimiter_line(&full_lines).is_some() {
        extract_reply(&full_text)
    } else {
        // The client marked where its quote starts; text conversion of the
        // part before it is more reliable than recognising a header in any
        // language.
        html::quote_start(html)
            .map(|pos| extract_reply(&html::html_to_text(&html[..pos], max_elements)))
            .filter(|reply| !reply.is_empty())
            .unwrap_or_else(|| extract_reply(&full_text))
    };
    HtmlText { reply, full_text }
}

/// Readable text from HTML.
pub fn html_to_text(html: &str) -> String {
    html::html_to_text(html, html::DEFAULT_MAX_ELEMENTS)
}

fn normalize_newlines(text: &str) -> Cow<'_, str> {
    if text.contains('\r') {
        Cow::Owned(text.replace("\r\n", "\n").replace('\r', "\n"))
    } else {
        Cow::Borrowed(text)
    }
}

fn extract_above_delimiter(lines: &[&str], d: usize) -> String {
    let mut above: Vec<&str> = lines[..d].to_vec();
    match delimiter::text_before_marker(lines[d]) {
        Some(text) => above.push(text),
        None => quote::strip_attribution_above(&mut above),
    }
    let kept = render(&quote::keep_reply_lines(&above).lines);
    if !kept.is_empty() {
        return kept;
    }
    // Bottom-posting below our quoted message: only the unquoted lines count.
    let below = &lines[d + 1..];
    let kept = quote::keep_reply_lines(below);
    if kept.cut {
        render(&kept.lines)
    } else {
        String::new()
    }
}

/// True when every non-blank line is a quote header or an empty quote line.
fn is_only_quote_headers(lines: &[&str]) -> bool {
    lines.iter().all(|l| {
        let u = quote::unquote(l).trim();
        u.is_empty()
            || patterns::is_attribution(u, false, false)
            || patterns::is_original_message_separator(u)
    })
}

/// Join lines, trimming line ends and blank lines around the text.
fn render<S: AsRef<str>>(lines: &[S]) -> String {
    let mut out = String::new();
    for line in lines {
        out.push_str(line.as_ref().trim_end());
        out.push('\n');
    }
    let trimmed = out.trim_end();
    let start = trimmed
        .find(|c: char| c != '\n' && !patterns::is_blank(&c.to_string()))
        .map_or(trimmed.len(), |i| {
            trimmed[..i].rfind('\n').map_or(0, |n| n + 1)
        });
    trimmed[start..].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DELIM: &str = "##- Bitte geben Sie Ihre Antwort über dieser Zeile ein. -##";

    #[test]
    fn cuts_at_delimiter_with_attribution() {
        let t = format!(
            "Vielen Dank!\n\nAm 01.02.2024 um 10:00 schrieb Support <support@firma.de>:\n> {DELIM}\n> Hallo"
        );
        assert_eq!(extract_reply(&t), "Vielen Dank!");
    }

    #[test]
    fn delimiter_with_crlf_and_signature() {
        let t = format!("Danke\r\n\r\n-- \r\nMax\r\n\r\nSupport wrote:\r\n{DELIM}\r\nalt");
        assert_eq!(extract_reply(&t), "Danke");
    }

    #[test]
    fn bottom_posting_below_delimiter() {
        let t = format!("Support <s@x.de> schrieb:\n> {DELIM}\n> Hallo\n\nGeht jetzt.");
        assert_eq!(extract_reply(&t), "Geht jetzt.");
    }

    #[test]
    fn only_quote_headers_give_empty() {
        let t = "> On Thu, Apr 30, 2020 at 10:07 AM, \"a\" <a@example.com> wrote:\n>\n>> On Thu, Apr 30, 2020 at 10:06 AM, \"a\" <a@example.com> wrote:";
        assert_eq!(extract_reply(t), "");
    }

    #[test]
    fn quote_only_mail_is_kept() {
        assert_eq!(
            extract_reply("> just a quote\n> here"),
            "> just a quote\n> here"
        );
    }

    #[test]
    fn never_panics_on_odd_input() {
        for s in [
            "",
            "\r",
            ">",
            "--",
            "ä\r\nö",
            "\u{feff}>\n-- ",
            "##",
            "On 1 wrote:",
        ] {
            let _ = extract_reply(s);
            let _ = extract_reply_html(s);
        }
    }

    #[test]
    fn html_outlook_reply() {
        let h = format!(
            "<div>Passt, danke.</div><hr><div id=\"divRplyFwdMsg\"><b>Von:</b> Support<br><b>Gesendet:</b> Montag<br></div><div>{DELIM}</div>"
        );
        assert_eq!(extract_reply_html(&h), "Passt, danke.");
    }
}
