//! Reply extraction: the text the customer wrote this time.

/// The line every notification starts with; the customer answers above it.
pub const DELIMITER: &str = "##- Bitte geben Sie Ihre Antwort über dieser Zeile ein. -##";

/// Text the customer wrote this time, cut from a plain-text body.
pub fn extract_reply(text: &str) -> String {
    let mut kept = Vec::new();
    for line in text.lines() {
        if line.contains(DELIMITER) {
            break;
        }
        kept.push(line.trim_end());
    }
    while kept.last().is_some_and(|l| l.is_empty()) {
        kept.pop();
    }
    kept.join("\n").trim_start_matches('\n').to_string()
}

/// Same for an HTML-only body.
pub fn extract_reply_html(html: &str) -> String {
    extract_reply(&html_to_text(html))
}

/// Readable text from HTML.
pub fn html_to_text(html: &str) -> String {
    html2text::from_read(html.as_bytes(), 100)
}
