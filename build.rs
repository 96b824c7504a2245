//! Embeds every file of `templates/` into the binary, so ticketgate runs
//! without its source tree; operators override templates by file name.

use std::fmt::Write;

fn main() {
    println!("cargo:rerun-if-changed=templates");
    let mut names: Vec<String> = std::fs::read_dir("templates")
        .expect("templates/ exists")
        .map(|e| {
            e.expect("readable")
                .file_name()
                .into_string()
                .expect("UTF-8 name")
        })
        .filter(|n| n.ends_with(".hbs"))
        .collect();
    names.sort();
    let mut out = String::from("[\n");
    for name in names {
        writeln!(
            out,
            "    ({name:?}, include_str!(concat!(env!(\"CARGO_MANIFEST_DIR\"), \"/templates/{name}\"))),"
        )
        .unwrap();
    }
    out.push(']');
    let path = std::path::Path::new(&std::env::var("OUT_DIR").unwrap()).join("templates.rs");
    std::fs::write(path, out).unwrap();
}
