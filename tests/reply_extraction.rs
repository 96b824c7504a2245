//! Table-driven checks over `fixtures/replies/`: `NAME.txt` (plain body) or
//! `NAME.html` (HTML body) next to `NAME.expected.txt`. Every case also runs with
//! CRLF line endings, as mail arrives on the wire.

use std::fs;
use std::path::Path;
use ticketgate::reply::{extract_reply, extract_reply_html};

/// Trailing whitespace per line and blank space around the text do not count.
fn normalize(text: &str) -> String {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let lines: Vec<&str> = text.split('\n').map(str::trim_end).collect();
    lines.join("\n").trim().to_string()
}

#[test]
fn fixtures_match_expected_replies() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/replies");
    let mut entries: Vec<_> = fs::read_dir(&dir)
        .expect("fixtures/replies exists")
        .map(|e| e.expect("readable dir entry").path())
        .collect();
    entries.sort();

    let mut failures = Vec::new();
    let mut cases = 0;
    for path in entries {
        let file = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if file.ends_with(".expected.txt") {
            continue;
        }
        let (name, html) = if let Some(n) = file.strip_suffix(".html") {
            (n, true)
        } else if let Some(n) = file.strip_suffix(".txt") {
            (n, false)
        } else {
            continue;
        };
        let input = fs::read_to_string(&path).expect("fixture is UTF-8");
        let expected_path = dir.join(format!("{name}.expected.txt"));
        let Ok(expected) = fs::read_to_string(&expected_path) else {
            failures.push(format!("{name} (missing {name}.expected.txt)"));
            continue;
        };
        let expected = normalize(&expected);
        let extract = |body: &str| {
            if html {
                extract_reply_html(body)
            } else {
                extract_reply(body)
            }
        };
        cases += 1;
        let lf = normalize(&extract(&input));
        if lf != expected {
            failures.push(format!("{name}\n--- expected\n{expected}\n--- got\n{lf}"));
        }
        let crlf_input = input.replace("\r\n", "\n").replace('\n', "\r\n");
        let crlf = normalize(&extract(&crlf_input));
        if crlf != expected {
            failures.push(format!(
                "{name} [CRLF]\n--- expected\n{expected}\n--- got\n{crlf}"
            ));
        }
    }
    assert!(
        cases >= 30,
        "expected at least 30 fixture cases, found {cases}"
    );
    assert!(
        failures.is_empty(),
        "{} fixture case(s) differ:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
