//! HTML → readable text, and where in an HTML reply the quoted history starts.

use html2text::render::text_renderer::{TaggedLine, TextDecorator};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Effectively "never wrap": wrapping would split the customer's paragraphs and
/// our delimiter. Large widths cost nothing because we draw no table borders and
/// replace `<hr>` (rendered width-long) before conversion.
const WRAP_WIDTH: usize = 10_000;

/// html5ever checks element scopes by walking the open-element stack, which is
/// quadratic for absurd nesting (50 000 nested `<div>` took 12 s, and as many
/// `<div></span>` pairs, whose stray end tags each walk the stack, 60 s). The
/// open elements are followed as html5ever would keep them: tags deeper than
/// this are dropped before parsing, and so are end tags that close nothing.
/// Real mail stays far below it.
const MAX_DEPTH: usize = 200;

/// HTML with more elements than the `[limits]` allow is not laid out:
/// the plain tag stripper turns it into text, in linear time.
pub const DEFAULT_MAX_ELEMENTS: usize = 20_000;

// Private-use characters mark links in the rendered text so that the URL can be
// placed inline after the link text (html2text's plain mode lists links as
// footnotes at the very end, i.e. after the quote we cut away).
const LINK_OPEN: char = '\u{E000}';
const LINK_URL: char = '\u{E001}';
const LINK_CLOSE: char = '\u{E002}';

/// Plain text as a mail client would show it: inline links, "- " bullets,
/// "> " for blockquotes, no emphasis markers.
#[derive(Clone, Default)]
struct MailDecorator {
    open_links: Vec<String>,
}

impl TextDecorator for MailDecorator {
    type Annotation = ();

    fn decorate_link_start(&mut self, url: &str) -> (String, ()) {
        self.open_links.push(url.to_string());
        (LINK_OPEN.to_string(), ())
    }
    fn decorate_link_end(&mut self) -> String {
        let url = self.open_links.pop().unwrap_or_default();
        format!("{LINK_URL}{url}{LINK_CLOSE}")
    }
    fn decorate_em_start(&self) -> (String, ()) {
        (String::new(), ())
    }
    fn decorate_em_end(&self) -> String {
        String::new()
    }
    fn decorate_strong_start(&self) -> (String, ()) {
        (String::new(), ())
    }
    fn decorate_strong_end(&self) -> String {
        String::new()
    }
    fn decorate_strikeout_start(&self) -> (String, ()) {
        (String::new(), ())
    }
    fn decorate_strikeout_end(&self) -> String {
        String::new()
    }
    fn decorate_code_start(&self) -> (String, ()) {
        ("`".to_string(), ())
    }
    fn decorate_code_end(&self) -> String {
        "`".to_string()
    }
    fn decorate_preformat_first(&self) {}
    fn decorate_preformat_cont(&self) {}
    fn decorate_image(&mut self, _src: &str, title: &str) -> (String, ()) {
        // Tracking pixels and logos carry no text; alt text is worth keeping.
        (title.trim().to_string(), ())
    }
    fn header_prefix(&self, _level: usize) -> String {
        String::new()
    }
    fn quote_prefix(&self) -> String {
        "> ".to_string()
    }
    fn unordered_item_prefix(&self) -> String {
        "- ".to_string()
    }
    fn ordered_item_prefix(&self, i: i64) -> String {
        format!("{i}. ")
    }
    fn make_subblock_decorator(&self) -> Self {
        self.clone()
    }
    fn finalise(&mut self, _links: Vec<String>) -> Vec<TaggedLine<()>> {
        Vec::new()
    }
}

const VOID_TAGS: &[&str] = &[
    "area", "base", "br", "col", "embed", "img", "input", "link", "meta", "param", "source",
    "track", "wbr", "keygen",
];
/// Elements whose end tag is optional; counting them would inflate the depth.
const IMPLIED_END_TAGS: &[&str] = &[
    "p", "li", "td", "th", "tr", "dt", "dd", "option", "optgroup", "thead", "tbody", "tfoot",
    "colgroup", "rb", "rt", "rp", "html", "head", "body",
];
const RAW_TEXT_TAGS: &[&str] = &["script", "style", "textarea", "title", "xmp"];

/// Replace `<hr>` by an Outlook-style underscore rule, drop tags nested deeper
/// than `MAX_DEPTH` and end tags that close no open element. A light tokenizer:
/// exact HTML parsing is html5ever's job. `None` when there are more than
/// `max_elements` elements.
fn prepare_html(html: &str, max_elements: usize) -> Option<String> {
    let html: String = html
        .chars()
        .filter(|c| !matches!(*c, LINK_OPEN | LINK_URL | LINK_CLOSE))
        .collect();
    let lower = html.to_ascii_lowercase();
    let bytes = html.as_bytes();
    let mut out = String::with_capacity(html.len() + 64);
    let mut copied = 0;
    let mut open: Vec<&str> = Vec::new();
    let mut elements = 0usize;
    let mut i = 0;
    while let Some(off) = html[i..].find('<') {
        let lt = i + off;
        if lower[lt..].starts_with("<!--") {
            i = lower[lt + 4..]
                .find("-->")
                .map_or(html.len(), |e| lt + 4 + e + 3);
            continue;
        }
        let closing = bytes.get(lt + 1) == Some(&b'/');
        let name_start = lt + 1 + usize::from(closing);
        let name_len = bytes[name_start.min(bytes.len())..]
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric())
            .count();
        if name_len == 0 {
            i = lt + 1;
            continue;
        }
        let name_end = name_start + name_len;
        let Some(gt) = html[name_end..].find('>').map(|e| name_end + e) else {
            break;
        };
        let tag_end = gt + 1;
        let name = &lower[name_start..name_end];
        if !closing {
            elements += 1;
            if elements > max_elements {
                return None;
            }
        }
        if !closing && RAW_TEXT_TAGS.contains(&name) {
            let close = format!("</{name}");
            i = lower[tag_end..]
                .find(&close)
                .map_or(html.len(), |e| tag_end + e);
            continue;
        }
        let drop = if name == "hr" {
            out.push_str(&html[copied..lt]);
            out.push_str("<p>________________________________</p>");
            copied = tag_end;
            false
        } else if VOID_TAGS.contains(&name)
            || IMPLIED_END_TAGS.contains(&name)
            || bytes[gt - 1] == b'/'
        {
            false
        } else if closing {
            // Closes the innermost open element of that name, and what is
            // open inside it; an end tag that closes nothing is dropped.
            match open.iter().rposition(|n| *n == name) {
                Some(at) => {
                    open.truncate(at);
                    false
                }
                None => true,
            }
        } else if open.len() >= MAX_DEPTH {
            true
        } else {
            open.push(name);
            false
        };
        if drop {
            out.push_str(&html[copied..lt]);
            copied = tag_end;
        }
        i = tag_end;
    }
    out.push_str(&html[copied..]);
    Some(out)
}

/// Put link targets inline: "text <url>", or just the text when it already is the URL.
fn inline_links(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find(LINK_OPEN) {
        out.push_str(&rest[..open]);
        let after = &rest[open + LINK_OPEN.len_utf8()..];
        let (Some(u), Some(c)) = (after.find(LINK_URL), after.find(LINK_CLOSE)) else {
            rest = after;
            continue;
        };
        if c < u {
            rest = after;
            continue;
        }
        let label = &after[..u];
        let url = &after[u + LINK_URL.len_utf8()..c];
        out.push_str(label);
        let shown = label.trim();
        let redundant = url.is_empty()
            || url.starts_with('#')
            || url.starts_with("javascript:")
            || shown == url
            || url.strip_prefix("mailto:") == Some(shown)
            || url
                .split_once("://")
                .is_some_and(|(_, u)| u.trim_end_matches('/') == shown);
        if !redundant {
            if shown.is_empty() {
                out.push_str(url);
            } else {
                out.push_str(" <");
                out.push_str(url);
                out.push('>');
            }
        }
        rest = &after[c + LINK_CLOSE.len_utf8()..];
    }
    out.push_str(rest);
    out.retain(|c| !matches!(c, LINK_OPEN | LINK_URL | LINK_CLOSE));
    out
}

/// When the converter fails or the HTML is too big to lay out: drop tags,
/// keep text, block elements on lines of their own; one pass.
fn strip_tags(html: &str) -> String {
    const BLOCKS: &[&str] = &[
        "p",
        "div",
        "br",
        "tr",
        "li",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "table",
        "blockquote",
        "pre",
        "hr",
        "ul",
        "ol",
    ];
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(lt) = rest.find('<') {
        out.push_str(&rest[..lt]);
        let Some(gt) = rest[lt..].find('>') else {
            rest = "";
            break;
        };
        let tag = &rest[lt + 1..lt + gt];
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        if BLOCKS.contains(&name.as_str()) {
            out.push('\n');
        }
        rest = &rest[lt + gt + 1..];
    }
    out.push_str(rest);
    out.replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// Trim line ends and squeeze runs of blank lines that block elements leave behind.
fn tidy_lines(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank_run = 0;
    for line in text.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            blank_run += 1;
            if blank_run > 1 {
                continue;
            }
        } else {
            blank_run = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.trim_matches('\n').to_string()
}

/// Readable text from HTML: paragraphs and `<br>` become lines, lists get "- " /
/// "1. ", links are written "text <url>", blockquotes are prefixed with "> ".
/// Beyond `max_elements` elements, tags are only stripped.
pub fn html_to_text(html: &str, max_elements: usize) -> String {
    let Some(prepared) = prepare_html(html, max_elements) else {
        return tidy_lines(&strip_tags(html));
    };
    let rendered = catch_unwind(AssertUnwindSafe(|| {
        html2text::config::with_decorator(MailDecorator::default())
            .raw_mode(true)
            .string_from_read(prepared.as_bytes(), WRAP_WIDTH)
    }));
    let text = match rendered {
        Ok(Ok(text)) => inline_links(&text),
        _ => strip_tags(&prepared),
    };
    tidy_lines(&text)
}

/// Attributes that mark where a client put the quoted history.
const QUOTE_MARKERS: &[&str] = &[
    "id=\"divrplyfwdmsg\"",
    "id=\"appendonsend\"",
    "class=\"gmail_quote",
    "class=\"gmail_attr\"",
    "class=\"moz-cite-prefix\"",
    "class=\"yahoo_quoted\"",
    "type=\"cite\"",
];

const FORWARD_WORDS: &[&str] = &[
    "forwarded message",
    "weitergeleitete nachricht",
    "begin forwarded message",
    "anfang der weitergeleiteten nachricht",
    "message transféré",
    "mensaje reenviado",
];

/// Byte offset of the tag that opens the quoted history (Outlook's
/// `divRplyFwdMsg`, Gmail's `gmail_quote`, Apple/Thunderbird `type="cite"`, …),
/// unless that block is a forwarded message, which we keep.
pub fn quote_start(html: &str) -> Option<usize> {
    let lower = html.to_ascii_lowercase();
    let attr = QUOTE_MARKERS.iter().filter_map(|m| lower.find(m)).min()?;
    let tag = lower[..attr].rfind('<')?;
    let mut window_end = (attr + 4000).min(lower.len());
    while !lower.is_char_boundary(window_end) {
        window_end -= 1;
    }
    let window = strip_tags(&lower[tag..window_end]);
    if FORWARD_WORDS.iter().any(|w| window.contains(w)) {
        return None;
    }
    Some(tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn html_to_text_default(html: &str) -> String {
        html_to_text(html, DEFAULT_MAX_ELEMENTS)
    }

    #[test]
    fn stray_end_tags_cannot_make_the_parser_quadratic() {
        let html = "<div></span>".repeat(100_000);
        let t = std::time::Instant::now();
        let _ = html_to_text(&html, usize::MAX);
        assert!(t.elapsed().as_secs() < 5, "{:?}", t.elapsed());
        assert_eq!(
            prepare_html("<div>a</span>b</div>", 100).unwrap(),
            "<div>ab</div>"
        );
    }

    #[test]
    fn too_many_elements_are_stripped_not_laid_out() {
        let html = format!("<p>Hallo</p>{}", "<b>x</b>".repeat(50));
        assert_eq!(prepare_html(&html, 10), None);
        let text = html_to_text(&html, 10);
        assert!(text.starts_with("Hallo"), "{text}");
    }

    #[test]
    fn tables_are_not_padded_to_the_wrap_width() {
        let html = format!(
            "<table>{}</table>",
            "<tr><td>Artikel</td><td>4711</td></tr>".repeat(2_000)
        );
        let text = html_to_text(&html, DEFAULT_MAX_ELEMENTS);
        assert!(text.len() < 100_000, "{} bytes", text.len());
        assert!(text.contains("Artikel") && text.contains("4711"));
    }

    #[test]
    fn lists_links_and_breaks() {
        let t = html_to_text_default(
            "<p>Hallo<br>Welt</p><ul><li>eins</li><li>zwei</li></ul><p><a href=\"https://x.org/a\">Link</a> und <a href=\"https://y.org\">https://y.org</a></p>",
        );
        assert_eq!(
            t,
            "Hallo\nWelt\n\n- eins\n- zwei\n\nLink <https://x.org/a> und https://y.org"
        );
    }

    #[test]
    fn blockquote_is_prefixed() {
        let t =
            html_to_text_default("<p>Antwort</p><blockquote type=\"cite\"><p>alt</p></blockquote>");
        assert_eq!(t, "Antwort\n\n> alt");
    }

    #[test]
    fn hr_becomes_rule() {
        assert_eq!(
            html_to_text_default("a<hr>b"),
            "a\n\n________________________________\n\nb"
        );
    }

    #[test]
    fn deep_nesting_is_fast_and_safe() {
        let html = format!("{}x{}", "<div>".repeat(50_000), "</div>".repeat(50_000));
        let t = std::time::Instant::now();
        assert_eq!(html_to_text_default(&html), "x");
        assert!(t.elapsed().as_secs() < 5);
    }

    #[test]
    fn garbage_does_not_panic() {
        for s in [
            "<",
            "<a href=",
            "</",
            "<!--",
            "<script>",
            "\u{E000}<b>",
            "<a\u{E001}>x</a>",
        ] {
            let _ = html_to_text_default(s);
        }
    }

    #[test]
    fn quote_start_markers() {
        let h = "<div>Hi</div><div class=\"gmail_quote\"><div class=\"gmail_attr\">On x wrote:</div></div>";
        assert_eq!(quote_start(h), Some(13));
        let f =
            "<div>FYI</div><div class=\"gmail_quote\">---------- Forwarded message ---------</div>";
        assert_eq!(quote_start(f), None);
    }
}
