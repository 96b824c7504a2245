//! Throughput of reply extraction, measured with `std::time` only:
//! `cargo bench --bench extract` (release profile).

use std::hint::black_box;
use std::time::{Duration, Instant};
use ticketgate::reply::{extract_reply, extract_reply_html};

const MB: usize = 1 << 20;

/// A ~2 KB top-posted reply: text, signature, Gmail attribution, quoted answer.
fn typical_reply() -> String {
    let mut s = String::from(
        "Hallo Support-Team,\n\nvielen Dank für die schnelle Antwort. Leider tritt der Fehler \
         weiterhin auf, auch nach dem Neustart des Routers und dem Update auf Version 2.3.1.\n\
         Anbei noch einmal die Seriennummer: AB-1234-XYZ.\n\nKönnen Sie mich morgen zwischen \
         9 und 12 Uhr zurückrufen?\n\nViele Grüße\nMax Mustermann\n\n-- \nMax Mustermann\n\
         Musterstraße 1, 12345 Musterstadt\n\n",
    );
    s.push_str("Am 12.03.2024 um 09:15 schrieb Support <support@example.com>:\n");
    s.push_str("> ##- Bitte geben Sie Ihre Antwort über dieser Zeile ein. -##\n>\n");
    while s.len() < 2048 {
        s.push_str("> Sehr geehrter Herr Mustermann, bitte starten Sie das Gerät neu und\n");
    }
    s
}

fn typical_html() -> String {
    let mut s = String::from(
        "<div>Hallo Support-Team,</div><div><br></div><div>der Fehler tritt weiterhin auf, \
         siehe <a href=\"https://example.org/log\">Log</a>.</div><ul><li>Version 2.3.1</li>\
         <li>Router neu gestartet</li></ul><div>Viele Grüße<br>Max</div>\
         <div class=\"gmail_quote\"><div class=\"gmail_attr\">Am 12.03.2024 um 09:15 schrieb \
         Support:</div><blockquote class=\"gmail_quote\">",
    );
    while s.len() < 2048 {
        s.push_str("<div>Sehr geehrter Herr Mustermann, bitte starten Sie das Gerät neu.</div>");
    }
    s.push_str("</blockquote></div>");
    s
}

fn long_quote() -> String {
    let mut s = String::from(
        "Thanks, works now.\n\nOn Mon, Mar 11, 2024 at 6:02 PM, Support <support@example.com> wrote:\n",
    );
    let mut n = 0u64;
    while s.len() < MB {
        n += 1;
        s.push_str(&format!(
            "> line {n}: On Tuesday we wrote to support@example.com about ticket #{n}:\n"
        ));
    }
    s
}

fn gt_lines() -> String {
    ">\n".repeat(MB / 2)
}

fn no_newlines() -> String {
    let unit = "On Mon, 1 Jan 2024 Bob <bob@example.org> wrote: -- > ##- Bitte ";
    unit.repeat(MB / unit.len() + 1)
}

/// Run `f` until `min_time` has passed; return mean duration per call.
fn measure(min_time: Duration, mut f: impl FnMut() -> usize) -> Duration {
    let mut iters = 0u32;
    let start = Instant::now();
    while start.elapsed() < min_time || iters < 3 {
        black_box(f());
        iters += 1;
    }
    start.elapsed() / iters
}

fn report(name: &str, input_len: usize, per_call: Duration) {
    let mbps = input_len as f64 / MB as f64 / per_call.as_secs_f64();
    println!(
        "{name:<32} {:>9} bytes  {:>10.1} µs/call  {:>8.1} MB/s",
        input_len,
        per_call.as_secs_f64() * 1e6,
        mbps
    );
}

fn main() {
    let budget = Duration::from_secs(2);
    let typical = typical_reply();
    let t = measure(budget, || extract_reply(black_box(&typical)).len());
    report("typical reply (plain, ~2 KB)", typical.len(), t);

    let html = typical_html();
    let t = measure(budget, || extract_reply_html(black_box(&html)).len());
    report("typical reply (HTML, ~2 KB)", html.len(), t);

    for (name, body) in [
        ("1 MB long quote block", long_quote()),
        ("1 MB of '>' lines", gt_lines()),
        ("1 MB without newlines", no_newlines()),
    ] {
        let t = measure(budget, || extract_reply(black_box(&body)).len());
        report(name, body.len(), t);
    }
}
