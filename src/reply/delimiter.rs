//! Finding our reply delimiter ("##- Bitte geben Sie Ihre Antwort über dieser Zeile
//! ein. -##") however a client mangled it.
//!
//! The whole body is reduced once to its lower-cased letters and digits, so quote
//! markers, NBSPs, doubled spaces, punctuation and line wraps (even with `> >`
//! prefixes on the continuation) all disappear; one linear regex search then finds
//! the phrase and a line table maps the hit back to its first line.

use regex::Regex;
use std::sync::OnceLock;

/// Squashed delimiter; "über" may arrive as "ueber", "uber", "Ã¼ber" (UTF-8 read as
/// Latin-1), "=C3=BCber" (undecoded quoted-printable), "&uuml;ber" or "?ber".
fn squashed_delimiter() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"bittegebensieihreantwort(?:ü|ue|u|ã¼|a¼|c3bc|uuml|ã|)berdieserzeileein")
            .expect("static regex is valid")
    })
}

/// Index of the first line that carries (the start of) the delimiter, if any.
pub fn find_delimiter_line(lines: &[&str]) -> Option<usize> {
    let mut squashed = String::new();
    // (offset in `squashed` where line i starts) for each line.
    let mut starts = Vec::with_capacity(lines.len());
    for line in lines {
        starts.push(squashed.len());
        for c in line.chars() {
            if c.is_ascii() {
                if c.is_ascii_alphanumeric() {
                    squashed.push(c.to_ascii_lowercase());
                }
            } else if c.is_alphanumeric() {
                squashed.extend(c.to_lowercase());
            }
        }
    }
    let hit = squashed_delimiter().find(&squashed)?.start();
    // Last line whose start is <= hit (the line holding the first letter).
    let mut idx = starts.partition_point(|&s| s <= hit).saturating_sub(1);
    // Skip back over empty-squash lines that share the same offset.
    while idx + 1 < starts.len() && starts[idx + 1] <= hit {
        idx += 1;
    }
    // "##-" wrapped onto its own line above "Bitte geben …".
    if idx > 0 {
        let above = strip_quote_prefix(lines[idx - 1]).trim_end();
        if above.ends_with("##-") || above.ends_with("##") {
            idx -= 1;
        }
    }
    Some(idx)
}

/// Text on the delimiter line before "##" (a client may join it with the reply).
pub fn text_before_marker(line: &str) -> Option<&str> {
    let pos = line.find("##")?;
    let before = &line[..pos];
    let content = strip_quote_prefix(before).trim();
    if content.is_empty() {
        None
    } else {
        Some(before.trim_end())
    }
}

fn strip_quote_prefix(s: &str) -> &str {
    s.trim_start_matches(|c: char| c == '>' || c.is_whitespace())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(text: &str) -> Option<usize> {
        let lines: Vec<&str> = text.lines().collect();
        find_delimiter_line(&lines)
    }

    #[test]
    fn plain_and_quoted() {
        let d = "##- Bitte geben Sie Ihre Antwort über dieser Zeile ein. -##";
        assert_eq!(find(&format!("Hallo\n\n{d}\nText")), Some(2));
        assert_eq!(find(&format!("Hallo\n> > {d}\n")), Some(1));
    }

    #[test]
    fn mangled_variants() {
        assert_eq!(
            find("x\n##-\u{a0}Bitte  geben Sie Ihre Antwort ueber dieser Zeile ein. -##"),
            Some(1)
        );
        assert_eq!(
            find("x\n##- Bitte geben Sie Ihre Antwort uber dieser Zeile ein. -##"),
            Some(1)
        );
        assert_eq!(
            find("x\n##- Bitte geben Sie Ihre Antwort Ã¼ber dieser Zeile ein. -##"),
            Some(1)
        );
        assert_eq!(
            find("x\n  ##- BITTE GEBEN SIE IHRE ANTWORT ÜBER DIESER ZEILE EIN. -##  "),
            Some(1)
        );
    }

    #[test]
    fn wrapped_over_two_lines() {
        assert_eq!(
            find("x\n> ##- Bitte geben Sie Ihre Antwort über dieser\n> Zeile ein. -##\n"),
            Some(1)
        );
        assert_eq!(
            find("x\n> ##-\n> Bitte geben Sie Ihre Antwort über dieser Zeile ein. -##"),
            Some(1)
        );
    }

    #[test]
    fn absent() {
        assert_eq!(find("Bitte geben Sie mir eine Antwort."), None);
        assert_eq!(find(""), None);
    }

    #[test]
    fn prefix_text() {
        assert_eq!(text_before_marker("Danke! ##- Bitte"), Some("Danke!"));
        assert_eq!(text_before_marker("> ##- Bitte"), None);
    }
}
