//! Embeds every template of `templates/` (mails) and `templates/web/`
//! (the help center's pages) into the binary, so ticketgate runs without
//! its source tree; operators override mail templates by file name.

use std::fmt::Write;

fn main() {
    println!("cargo:rerun-if-changed=templates");
    println!("cargo:rerun-if-changed=fixtures/mail");
    embed("templates", "templates.rs", &[".hbs"]);
    embed("templates/web", "pages.rs", &[".hbs", ".css"]);
    // `ticketgate demo` ingests the sample mails.
    embed("fixtures/mail", "demo_mails.rs", &[".eml"]);
}

/// Writes `[(name, contents), …]` of the files in `dir` with one of
/// `extensions`.
fn embed(dir: &str, output: &str, extensions: &[&str]) {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("template directory exists")
        .map(|e| {
            e.expect("readable")
                .file_name()
                .into_string()
                .expect("UTF-8 name")
        })
        .filter(|n| extensions.iter().any(|e| n.ends_with(e)))
        .collect();
    names.sort();
    let mut out = String::from("[\n");
    // Mails are bytes (some are not UTF-8); templates are text.
    let include = if extensions == [".eml"] {
        "include_bytes!"
    } else {
        "include_str!"
    };
    for name in names {
        writeln!(
            out,
            "    ({name:?}, {include}(concat!(env!(\"CARGO_MANIFEST_DIR\"), \"/{dir}/{name}\"))),"
        )
        .unwrap();
    }
    out.push(']');
    let path = std::path::Path::new(&std::env::var("OUT_DIR").unwrap()).join(output);
    std::fs::write(path, out).unwrap();
}
