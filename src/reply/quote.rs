//! The line engine: walks a body top-down once, keeps the customer's lines and
//! drops quote headers, quoted blocks, signatures and footers.
//!
//! Every decision looks at the current line plus a bounded window (a wrapped
//! header spans at most a few lines, a signature tail at most a dozen), so the
//! whole pass is linear in the body size.

use super::patterns::{
    field_kind, inline_header_offset, is_attribution, is_blank, is_dash_name_closing,
    is_dated_label_line, is_forward_marker, is_mobile_signature, is_original_message_separator,
    is_rule_line, is_underscore_rule, may_continue_header, may_start_wrapped_attribution,
    sig_delimiter, FieldSet, SigDelimiter, MAX_HEADER_LEN,
};
use std::borrow::Cow;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Blank,
    /// Starts with `>` (at most two spaces of indentation).
    Quoted,
    Text,
    /// Inside a ``` / ~~~ fence: never a marker, never a quote.
    Code,
}

/// A recognised quote header (attribution, Outlook block or separator).
struct Header {
    /// Last line of the header.
    end: usize,
    /// Byte length of reply text sharing the header's line ("reply On Wed, … wrote:").
    prefix: Option<usize>,
    /// Outlook-style field block (may have a dated label line above it).
    field_block: bool,
}

/// Remove `>` quote markers and surrounding indentation.
pub fn unquote(s: &str) -> &str {
    s.trim_start_matches(|c: char| c == '>' || c.is_whitespace())
}

fn is_quoted(line: &str) -> bool {
    let rest = line.trim_start_matches(' ');
    line.len() - rest.len() <= 2 && rest.starts_with('>')
}

fn is_fence(line: &str) -> bool {
    let t = line.trim_start();
    t.starts_with("```") || t.starts_with("~~~")
}

fn classify(lines: &[&str]) -> Vec<Kind> {
    // An unmatched last fence would swallow the rest of the mail; ignore it.
    let fences = lines.iter().filter(|l| is_fence(l)).count();
    let mut usable_fences = fences - fences % 2;
    let mut in_fence = false;
    lines
        .iter()
        .map(|line| {
            if usable_fences > 0 && is_fence(line) {
                usable_fences -= 1;
                in_fence = !in_fence;
                return Kind::Code;
            }
            if in_fence {
                Kind::Code
            } else if is_blank(line) {
                Kind::Blank
            } else if is_quoted(line) {
                Kind::Quoted
            } else {
                Kind::Text
            }
        })
        .collect()
}

struct Body<'a> {
    lines: &'a [&'a str],
    kinds: Vec<Kind>,
}

impl<'a> Body<'a> {
    fn new(lines: &'a [&'a str]) -> Self {
        Body {
            lines,
            kinds: classify(lines),
        }
    }

    fn len(&self) -> usize {
        self.lines.len()
    }

    fn next_nonblank(&self, from: usize) -> Option<usize> {
        (from..self.len()).find(|&k| self.kinds[k] != Kind::Blank)
    }

    fn quote_follows(&self, end: usize) -> bool {
        self.next_nonblank(end + 1)
            .is_some_and(|k| self.kinds[k] == Kind::Quoted)
    }

    /// Recognise a quote header starting at line `i` (quoted or not).
    fn header_at(&self, i: usize, lenient: bool) -> Option<Header> {
        let kind = self.kinds[i];
        if kind == Kind::Code || kind == Kind::Blank {
            return None;
        }
        let first = unquote(self.lines[i]).trim();
        if first.is_empty() || first.len() > MAX_HEADER_LEN {
            return None;
        }
        if is_original_message_separator(first) {
            return Some(Header {
                end: i,
                prefix: None,
                field_block: false,
            });
        }
        if field_kind(first).is_some() {
            if let Some(end) = self.field_block_end(i) {
                return Some(Header {
                    end,
                    prefix: None,
                    field_block: true,
                });
            }
        }
        let first_quoted = kind == Kind::Quoted;
        let mut joined = first.to_string();
        let mut end = i;
        for step in 0..4 {
            if is_attribution(&joined, self.quote_follows(end), lenient) {
                let prefix = if step == 0 && !first_quoted {
                    // `first` is a sub-slice of the raw line; convert to a raw offset.
                    let lead = first.as_ptr() as usize - self.lines[i].as_ptr() as usize;
                    inline_header_offset(first).map(|p| lead + p)
                } else {
                    None
                };
                return Some(Header {
                    end,
                    prefix,
                    field_block: false,
                });
            }
            if step == 0 && !may_start_wrapped_attribution(first) {
                break;
            }
            // Continuation: the next line, or after up to two blank lines when it
            // starts with "<" (Polymail puts the address on its own lines).
            let mut k = end + 1;
            let mut blanks = 0;
            while k < self.len() && self.kinds[k] == Kind::Blank && blanks < 2 {
                k += 1;
                blanks += 1;
            }
            if k >= self.len() {
                break;
            }
            let cont = match self.kinds[k] {
                Kind::Text => self.lines[k].trim(),
                Kind::Quoted => {
                    let u = unquote(self.lines[k]).trim();
                    // An unquoted header wraps into "> wrote:" / ">:" only briefly.
                    if !first_quoted && u.len() > 30 {
                        break;
                    }
                    if !first_quoted && u.is_empty() {
                        break;
                    }
                    u
                }
                _ => break,
            };
            if blanks > 0 && !cont.starts_with('<') {
                break;
            }
            if cont.is_empty() || cont.len() > 300 || joined.len() + cont.len() > MAX_HEADER_LEN {
                break;
            }
            if step > 0 && !may_continue_header(self.lines[end]) {
                break;
            }
            joined.push(' ');
            joined.push_str(cont);
            end = k;
        }
        None
    }

    /// End of an Outlook-style "From:/Sent:/To:/Subject:" block starting at `i`.
    fn field_block_end(&self, i: usize) -> Option<usize> {
        let mut set = FieldSet::default();
        let mut end = i;
        let mut continuation = 0;
        let limit = (i + 14).min(self.len());
        for k in i..limit {
            if matches!(self.kinds[k], Kind::Blank | Kind::Code) {
                break;
            }
            let content = unquote(self.lines[k]);
            if let Some(f) = field_kind(content) {
                set.add(f);
                end = k;
                continuation = 0;
            } else {
                // Wrapped values ("From: Human Resources\n<long@address>").
                continuation += 1;
                if continuation > 2 {
                    break;
                }
            }
        }
        set.is_header_block().then_some(end)
    }

    /// Exclusive end of the `>` region starting at `i`: quoted lines, blank lines
    /// between them, lines a client broke out of a quoted paragraph (an unquoted
    /// line squeezed between two quoted ones), and the blank lines after it.
    fn quote_region_end(&self, i: usize) -> usize {
        let mut k = i;
        while k < self.len() {
            match self.kinds[k] {
                Kind::Quoted | Kind::Blank => k += 1,
                Kind::Text
                    if k > i
                        && self.kinds[k - 1] == Kind::Quoted
                        && k + 1 < self.len()
                        && self.kinds[k + 1] == Kind::Quoted =>
                {
                    k += 1
                }
                _ => break,
            }
        }
        k
    }

    /// Does a `>` region begin with a quote header ("> On … wrote:", "> From: …")?
    fn region_starts_with_header(&self, start: usize) -> bool {
        self.header_at(start, false).is_some()
    }

    fn region_is_forward(&self, start: usize) -> bool {
        is_forward_marker(unquote(self.lines[start]))
    }

    /// Is line `k` where the customer's text ends anyway (signature, footer, header)?
    fn is_tail_marker(&self, k: usize) -> bool {
        let line = self.lines[k];
        self.kinds[k] == Kind::Text
            && (sig_delimiter(line) != SigDelimiter::None
                || is_mobile_signature(line)
                || is_underscore_rule(line)
                || self.header_at(k, false).is_some())
    }

    /// At most `max` non-blank lines, each at most `width` bytes, follow line `i`
    /// (what a signature or list footer looks like, unlike a paragraph).
    fn short_tail(&self, i: usize, max: usize, width: usize) -> bool {
        let mut count = 0;
        for k in i + 1..self.len() {
            if self.kinds[k] != Kind::Blank {
                count += 1;
                if count > max || self.lines[k].len() > width {
                    return false;
                }
            }
        }
        true
    }

    /// First forwarded-message marker after line `i`.
    fn forward_after(&self, i: usize) -> Option<usize> {
        (i + 1..self.len())
            .find(|&k| self.kinds[k] == Kind::Text && is_forward_marker(self.lines[k]))
    }
}

/// Outcome of one pass: kept lines, and whether anything was cut away.
pub struct Kept<'a> {
    pub lines: Vec<Cow<'a, str>>,
    pub cut: bool,
}

/// Keep the customer's lines of `lines` (see the module doc of `reply`).
pub fn keep_reply_lines<'a>(lines: &'a [&'a str]) -> Kept<'a> {
    let body = Body::new(lines);
    let n = body.len();
    let mut out: Vec<Cow<'a, str>> = Vec::new();
    let mut has_content = false;
    let mut seen_header = false;
    let mut cut = false;
    let mut i = 0;
    while i < n {
        let line = lines[i];
        match body.kinds[i] {
            Kind::Blank => {
                out.push(Cow::Borrowed(line));
                i += 1;
            }
            Kind::Code => {
                out.push(Cow::Borrowed(line));
                has_content = true;
                i += 1;
            }
            Kind::Quoted => {
                let end = body.quote_region_end(i);
                let keep = if body.region_is_forward(i) {
                    true
                } else if seen_header || !has_content || body.region_starts_with_header(i) {
                    false
                } else {
                    // A headerless quote is the customer's own quotation (an error
                    // message, a shell session) unless it trails the mail, is not
                    // introduced by "…:", and is not glued to the line above it.
                    let trailing = body
                        .next_nonblank(end)
                        .is_none_or(|k| body.is_tail_marker(k));
                    let introduced = out
                        .iter()
                        .rev()
                        .find(|l| !is_blank(l))
                        .is_some_and(|l| l.trim_end().ends_with(':'));
                    let attached = i > 0 && body.kinds[i - 1] == Kind::Text;
                    !trailing || introduced || attached
                };
                if keep {
                    out.extend(lines[i..end].iter().map(|l| Cow::Borrowed(*l)));
                    has_content = true;
                } else {
                    cut = true;
                    seen_header = true;
                }
                i = end;
            }
            Kind::Text => {
                if is_forward_marker(line) {
                    out.extend(lines[i..].iter().map(|l| Cow::Borrowed(*l)));
                    break;
                }
                if let Some(h) = body.header_at(i, false) {
                    cut = true;
                    if let Some(p) = h.prefix {
                        out.push(Cow::Borrowed(&line[..p]));
                        has_content = true;
                    }
                    if h.field_block
                        && out
                            .last()
                            .is_some_and(|l| is_dated_label_line(l) && field_kind(l).is_none())
                    {
                        out.pop();
                    }
                    if body.quote_follows(h.end) {
                        seen_header = true;
                        let start = body.next_nonblank(h.end + 1).unwrap_or(n);
                        i = body.quote_region_end(start);
                        continue;
                    }
                    if has_content {
                        break;
                    }
                    // Nothing above the header: the customer wrote below it.
                    i = h.end + 1;
                    continue;
                }
                if has_content {
                    let ends_here = match sig_delimiter(line) {
                        SigDelimiter::Hard => true,
                        SigDelimiter::Soft => body.short_tail(i, 4, 60),
                        SigDelimiter::None => {
                            is_mobile_signature(line)
                                || (is_underscore_rule(line) && body.short_tail(i, 10, 200))
                        }
                    };
                    if ends_here {
                        cut = true;
                        // A forwarded message below the signature is still content.
                        if let Some(f) = body.forward_after(i) {
                            out.extend(lines[f..].iter().map(|l| Cow::Borrowed(*l)));
                        }
                        break;
                    }
                }
                out.push(Cow::Borrowed(line));
                if !is_mobile_signature(line) {
                    has_content = true;
                }
                i += 1;
            }
        }
    }
    tidy_tail(&mut out, cut);
    Kept { lines: out, cut }
}

/// Drop trailing blank lines, rules left above a cut header, and a "-Name" closing.
fn tidy_tail(out: &mut Vec<Cow<'_, str>>, cut: bool) {
    let pop_blank = |out: &mut Vec<Cow<'_, str>>| {
        while out.last().is_some_and(|l| is_blank(l)) {
            out.pop();
        }
    };
    pop_blank(out);
    if cut {
        while out.last().is_some_and(|l| is_blank(l) || is_rule_line(l)) {
            out.pop();
        }
    }
    if let Some(last) = out.last() {
        if is_dash_name_closing(last) {
            let prev = out[..out.len() - 1].iter().rev().find(|l| !is_blank(l));
            let list_or_intro =
                prev.is_none_or(|p| p.trim_start().starts_with('-') || p.trim_end().ends_with(':'));
            if !list_or_intro {
                out.pop();
                pop_blank(out);
            }
        }
    }
}

/// Remove the attribution that sits directly above our delimiter ("Am … schrieb
/// Support:", an Outlook block, "-----Original Message-----"). Here any
/// "… wrote:" line counts: its position alone proves it is a quote header.
pub fn strip_attribution_above(above: &mut Vec<&str>) {
    for _ in 0..3 {
        while above
            .last()
            .is_some_and(|l| is_blank(unquote(l)) || is_rule_line(unquote(l)))
        {
            above.pop();
        }
        let Some(e) = above.len().checked_sub(1) else {
            return;
        };
        let body = Body::new(above);
        let found = (e.saturating_sub(12)..=e).find_map(|s| {
            let h = body.header_at(s, true)?;
            (h.end == e).then_some((s, h.prefix))
        });
        match found {
            Some((s, prefix)) => {
                let line = above[s];
                above.truncate(s);
                if let Some(p) = prefix {
                    above.push(&line[..p]);
                }
            }
            None => {
                if is_original_message_separator(unquote(above[e])) {
                    above.truncate(e);
                } else {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str) -> String {
        let lines: Vec<&str> = text.split('\n').collect();
        let kept = keep_reply_lines(&lines);
        kept.lines.join("\n").trim().to_string()
    }

    #[test]
    fn top_posting_with_quoted_history() {
        let t =
            "Thanks!\n\nOn Mon, Jan 1, 2024 at 10:00 AM, Bob <bob@x.org> wrote:\n> old\n> text\n";
        assert_eq!(run(t), "Thanks!");
    }

    #[test]
    fn interleaved_answers_are_kept() {
        let t = "On Mon, Jan 1, 2024 at 10:00 AM, Bob <bob@x.org> wrote:\n> q1\n\na1\n\n> q2\n\na2";
        assert_eq!(run(t), "a1\n\na2");
    }

    #[test]
    fn bottom_posting_is_kept() {
        let t = "Am 01.02.2024 um 10:00 schrieb Support <s@x.de>:\n> alt\n\nNeue Antwort";
        assert_eq!(run(t), "Neue Antwort");
    }

    #[test]
    fn unquoted_original_below_header_is_dropped() {
        let t = "Antwort\n\nVon: Support <s@x.de>\nGesendet: Montag, 1. Januar 2024 10:00\nAn: Kunde\nBetreff: Test\n\nAlter Text";
        assert_eq!(run(t), "Antwort");
    }

    #[test]
    fn customer_quotation_in_the_middle_is_kept() {
        let t = "I get this error:\n\n> Error: connection refused\n\nPlease help.";
        assert_eq!(run(t), t);
    }

    #[test]
    fn shell_session_with_prompt_is_kept() {
        let t = "I ran:\n$ cat <<EOF\n> hello\n> EOF\nand it hangs.\n\nOn Mon, Jan 1, 2024 at 10:00 AM, Bob <bob@x.org> wrote:\n> old";
        assert_eq!(run(t), "I ran:\n$ cat <<EOF\n> hello\n> EOF\nand it hangs.");
    }

    #[test]
    fn fenced_code_is_never_cut() {
        let t = "Code:\n```\n> not a quote\n-- \nOn 1.1.2024, x <a@b.c> wrote:\n```\nEnd.";
        assert_eq!(run(t), t);
    }

    #[test]
    fn signature_block_goes() {
        assert_eq!(run("Hello\n\n-- \nJohn Doe\nACME"), "Hello");
        assert_eq!(run("Hello\nSent from my iPhone"), "Hello");
        assert_eq!(run("--\nRoman"), "--\nRoman");
    }

    #[test]
    fn forwarded_message_stays() {
        let t =
            "FYI\n\n---------- Forwarded message ---------\nFrom: a@b.c\nDate: 1.1.2024\n\nBody";
        assert_eq!(run(t), t);
        let t = "FYI\n-- \nJohn\n\n---------- Forwarded message ---------\nBody";
        assert_eq!(run(t), "FYI\n---------- Forwarded message ---------\nBody");
    }

    #[test]
    fn dash_name_closing_goes_but_not_lists() {
        assert_eq!(run("Hey!\n\n- roman"), "Hey!");
        assert_eq!(
            run("Items:\n- Apples\n- Pears"),
            "Items:\n- Apples\n- Pears"
        );
    }

    #[test]
    fn shared_line_header() {
        assert_eq!(
            run("reply On Wed, Apr 4, 2012 at 3:59 PM, bob@example.com wrote:\n> Hi"),
            "reply"
        );
    }

    #[test]
    fn attribution_above_delimiter() {
        let mut above = vec!["Danke", "", "Support Team wrote:", ">"];
        strip_attribution_above(&mut above);
        assert_eq!(above, vec!["Danke"]);
    }
}
