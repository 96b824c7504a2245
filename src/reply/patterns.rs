//! Line-level recognisers: quote headers, Outlook header blocks, separators,
//! signatures. Every function looks at one line (or a short join of a few lines)
//! and is bounded by `MAX_HEADER_LEN`, so the regexes never scan long bodies.

use regex::Regex;
use std::sync::OnceLock;

/// Longest text examined as a possible quote header. Real headers are far
/// shorter; the cap keeps per-line regex work constant on huge lines.
pub const MAX_HEADER_LEN: usize = 600;

macro_rules! regex {
    ($re:expr) => {{
        static RE: OnceLock<Regex> = OnceLock::new();
        RE.get_or_init(|| Regex::new($re).expect("static regex is valid"))
    }};
}

/// Verbs that end an attribution line ("… wrote:") in the languages we see.
const VERBS: &str = r"wrote|writes|schrieb|geschrieben|a\s+écrit|a\s+ecrit|escribió|escribio|escreveu|ha\s+scritto|ha\s+escrit|schreef|geschreven|napisał\(a\)|napisała|napisał|pisze|skrev|skrevet|kirjoitti|написал\(а\)|написала|написал|написав|пише|写道|寫道|작성|のメッセージ|đã\s+viết|írta|yazdı|έγραψε|napsal|napísal";

fn end_verb_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        let pat = format!(r#"(?i)(?:^|[\s>)\]"'»,])(?:{VERBS}|sent)\s*(?:[:：]\s*)?(?:-+\s*)?$"#);
        Regex::new(&pat).expect("static regex is valid")
    })
}

fn verb_anywhere_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        let pat = format!(r"(?i)(?:^|\s)(?:{VERBS})\s");
        Regex::new(&pat).expect("static regex is valid")
    })
}

fn dash_wrapped_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        let pat = format!(r"(?i)^-{{2,}}.*\b(?:{VERBS})\b.*-{{2,}}$");
        Regex::new(&pat).expect("static regex is valid")
    })
}

/// Words that open an attribution in several languages ("On …", "Am …", "Le …").
fn starts_with_starter(s: &str) -> bool {
    regex!(r"(?i)^[-\s*]*(?:on|am|le|el|il|in\s+data|em|op|w\s+dniu|dnia|den|på|vào|at|ons)\s")
        .is_match(s)
}

fn has_email(s: &str) -> bool {
    regex!(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+").is_match(s)
}

fn has_digit(s: &str) -> bool {
    s.bytes().any(|b| b.is_ascii_digit())
}

/// Trim whitespace (incl. NBSP) and `*` emphasis that Outlook puts around headers.
pub fn tidy(s: &str) -> &str {
    s.trim().trim_matches('*').trim()
}

/// Does `j` (one line, or a wrapped header joined with spaces) read as an attribution
/// line such as "On Mon, 1 Jan 2024, Bob <b@x.org> wrote:"?
/// `quote_follows` relaxes the evidence needed when a `>` block comes right after it;
/// `lenient` is used directly above our own reply delimiter, where any "… wrote:" counts.
pub fn is_attribution(j: &str, quote_follows: bool, lenient: bool) -> bool {
    let j = tidy(j);
    if j.is_empty() || j.len() > MAX_HEADER_LEN {
        return false;
    }
    if j.starts_with("--") && dash_wrapped_re().is_match(j) {
        return true;
    }
    let digit = has_digit(j);
    let email = has_email(j);
    let colon = j.trim_end_matches(|c: char| c == '-' || c.is_whitespace());
    let colon = colon.ends_with(':') || colon.ends_with('：');
    if let Some(m) = end_verb_re().find(j) {
        let verb = m.as_str().to_lowercase();
        // "sent" is too common in prose ("the files you sent:"); only trust it
        // behind an "On …" style opener.
        let is_sent = verb.contains("sent");
        let starter = starts_with_starter(j);
        if is_sent && !starter {
            return false;
        }
        if colon && (digit || email) {
            return true;
        }
        if !colon && starter && digit {
            return true;
        }
        if colon && (quote_follows || lenient) {
            return true;
        }
    }
    // "ср, 30 апр. 2025 г. в 15:19, John Doe <doe@example.com>:"
    if digit && regex!(r"@[^\s@]*[\s>)\]]*[:：]$").is_match(j) {
        return true;
    }
    // "2013/7/20 sam <info@x.org>", "2016-03-03 17:21 GMT+01:00 Some One"
    if regex!(r"^\d{1,4}[-./]\s?\d{1,2}[-./]\s?\d{1,4}").is_match(j)
        && (regex!(r"@[^\s@]*>\s*[:：]?$").is_match(j) || regex!(r"GMT[+-]\d").is_match(j))
    {
        return true;
    }
    // Gmail (de): "Max <max@x.de> schrieb am Fr., 28. Apr. 2017 um 11:53 Uhr:"
    if colon && email && regex!(r"(?i)\bschrieb\s+am\b").is_match(j) {
        return true;
    }
    // Verb before the name: "Am 25.06.2015 um 10:55 schrieb Test user:"
    if colon && digit && starts_with_starter(j) && verb_anywhere_re().is_match(j) {
        return true;
    }
    false
}

/// Could this line be the first line of an attribution wrapped over several lines?
pub fn may_start_wrapped_attribution(s: &str) -> bool {
    let s = tidy(s);
    (has_digit(s) || has_email(s) || starts_with_starter(s)) && may_continue_header(s)
}

/// Can a wrapped header go on after this line? Not after a finished sentence.
pub fn may_continue_header(s: &str) -> bool {
    let s = tidy(s);
    if s.is_empty() || s.len() > 300 || s.ends_with('!') || s.ends_with('?') {
        return false;
    }
    // A finished sentence ("I called 3 times.") does not continue into a header;
    // "… schrieb am Fr., 28." or "Op 16 aug." do.
    if let Some(rest) = s.strip_suffix('.') {
        let last_word = rest.rsplit(' ').next().unwrap_or("");
        let abbreviation = last_word.chars().count() <= 4
            || last_word.chars().last().is_some_and(|c| c.is_ascii_digit());
        if !abbreviation {
            return false;
        }
    }
    true
}

/// Byte offset where an "On <date> … wrote:" header starts inside a line that also
/// carries reply text ("reply--- On Wed, Apr 4, 2012 … wrote:").
pub fn inline_header_offset(line: &str) -> Option<usize> {
    let m =
        regex!(r"(?:\s|-)-*\s*On\s+(?:[^\s]*\d|(?i:mon|tue|wed|thu|fri|sat|sun))").find(line)?;
    let start = m.start();
    let prefix = line[..start].trim_end_matches(|c: char| c == '-' || c.is_whitespace());
    if prefix.trim().is_empty() {
        None
    } else {
        Some(prefix.len())
    }
}

/// "-----Original Message-----", "-------- Ursprüngliche Nachricht --------", …
pub fn is_original_message_separator(s: &str) -> bool {
    let s = tidy(s);
    s.len() <= 120
        && regex!(
            r"(?i)^[\s_]*-{2,}\s*(?:original\s+message|original-nachricht|originalnachricht|urspr(?:ü|ue|u)ngliche\s+nachricht|antwort\s+nachricht|reply\s+message|oprindelig\s+(?:besked|meddelelse)|message\s+d'origine|message\s+original|mensaje\s+original|mensagem\s+original|messaggio\s+originale|oorspronkelijk\s+bericht|origineel\s+bericht|opprinnelig\s+melding|ursprungligt\s+meddelande|alkuperäinen\s+viesti|wiadomość\s+oryginalna|oryginalna\s+wiadomość|původní\s+zpráva|исходное\s+сообщение|原始邮件|原始郵件)\s*-*[\s_]*$"
        )
        .is_match(s)
}

/// Start of a forwarded message: by policy its content is kept.
pub fn is_forward_marker(s: &str) -> bool {
    let s = tidy(s);
    s.len() <= 120
        && regex!(
            r"(?i)^(?:-{2,}\s*(?:forwarded\s+message|weitergeleitete\s+nachricht|message\s+transféré|mensaje\s+reenviado|messaggio\s+inoltrato|doorgestuurd\s+bericht|videresendt\s+(?:besked|meddelelse)|vidarebefordrat\s+meddelande)\s*-*|begin\s+forwarded\s+message\s*:?|anfang\s+der\s+weitergeleiteten\s+nachricht\s*:?|début\s+du\s+message\s+réexpédié\s*:?|inicio\s+del\s+mensaje\s+reenviado\s*:?)$"
        )
        .is_match(s)
}

/// Kinds of fields in a client-generated header block ("From:/Sent:/To:/Subject:").
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Field {
    From,
    Date,
    To,
    Cc,
    Subject,
    ReplyTo,
}

impl Field {
    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// Which header field, if any, this line starts with ("*From:* …", "Von: …", "De : …").
pub fn field_kind(line: &str) -> Option<Field> {
    let s = line.trim_start_matches(|c: char| c.is_whitespace() || c == '>' || c == '*');
    // Field names are short; only look at the head of the line.
    let head_end = s.char_indices().nth(32).map(|(i, _)| i).unwrap_or(s.len());
    let head = &s[..head_end];
    let colon = head.find([':', '：'])?;
    let name = head[..colon].trim_end_matches(|c: char| c.is_whitespace() || c == '*');
    let name = name.to_lowercase();
    let kind = match name.as_str() {
        "from" | "von" | "de" | "da" | "van" | "fra" | "från" | "od" | "от" | "发件人"
        | "寄件者" | "差出人" | "보낸 사람" | "feladó" | "lähettäjä" | "mittente" | "remetente"
        | "afzender" | "avsändare" => Field::From,
        "sent"
        | "date"
        | "gesendet"
        | "datum"
        | "envoyé"
        | "envoyé le"
        | "enviado"
        | "enviada"
        | "fecha"
        | "data"
        | "inviato"
        | "verzonden"
        | "verstuurd"
        | "sendt"
        | "skickat"
        | "dato"
        | "päivämäärä"
        | "lähetetty"
        | "wysłano"
        | "wysłane"
        | "отправлено"
        | "дата"
        | "发送时间"
        | "發送時間"
        | "日期"
        | "送信日時"
        | "날짜"
        | "보낸 날짜"
        | "elküldve"
        | "dátum"
        | "sent at" => Field::Date,
        "to" | "an" | "à" | "a" | "para" | "aan" | "til" | "till" | "do" | "кому" | "收件人"
        | "宛先" | "받는 사람" | "címzett" | "vastaanottaja" | "destinatario" => Field::To,
        "cc" | "kopie" | "copie à" | "copie" | "cc." | "抄送" | "копия" | "kopia" => {
            Field::Cc
        }
        "subject" | "betreff" | "objet" | "oggetto" | "asunto" | "assunto" | "onderwerp"
        | "emne" | "ämne" | "temat" | "tema" | "тема" | "主题" | "主旨" | "件名" | "제목"
        | "tárgy" | "aihe" => Field::Subject,
        "reply-to" | "antwort an" | "répondre à" | "risposta" | "responder a" => Field::ReplyTo,
        _ => return None,
    };
    Some(kind)
}

/// Tracks the fields seen in a candidate header block.
#[derive(Default)]
pub struct FieldSet(u8);

impl FieldSet {
    pub fn add(&mut self, f: Field) {
        self.0 |= f.bit();
    }
    fn has(&self, f: Field) -> bool {
        self.0 & f.bit() != 0
    }
    /// Two different fields including a sender or a date: "Date:/Time:/Address:"
    /// in an invitation is not a header block, "From:/Sent:" is.
    pub fn is_header_block(&self) -> bool {
        self.0.count_ones() >= 2
            && (self.has(Field::From)
                || (self.has(Field::Date) && (self.has(Field::To) || self.has(Field::Subject))))
    }
}

/// A "label : value" line with a date in it, e.g. "Message du : 12/12/2016 13:20",
/// which some webmailers put right above their header block.
pub fn is_dated_label_line(s: &str) -> bool {
    let s = s.trim();
    s.len() <= 80 && has_digit(s) && regex!(r"^\p{L}[\p{L} ]{0,24}\s?:\s?\S").is_match(s)
}

/// Signature delimiters: "-- " (RFC 3676) and the common "--"; "---" only when
/// followed by a short tail, since it is also a markdown rule.
#[derive(PartialEq, Eq, Debug)]
pub enum SigDelimiter {
    None,
    Hard,
    Soft,
}

pub fn sig_delimiter(line: &str) -> SigDelimiter {
    match line.trim_end() {
        "--" => SigDelimiter::Hard,
        "---" => SigDelimiter::Soft,
        _ => SigDelimiter::None,
    }
}

/// "Sent from my iPhone", "Von meinem iPhone gesendet", "Get Outlook for iOS<…>", …
pub fn is_mobile_signature(line: &str) -> bool {
    let s = tidy(line);
    if s.is_empty() || s.len() > 160 {
        return false;
    }
    // Drop a trailing link ("…for Android<https://aka.ms/…>") and wrapping brackets.
    let s = match s.find(['<', '(']) {
        Some(i) if i > 0 && (s.ends_with('>') || s.ends_with(')')) => s[..i].trim_end(),
        _ => s,
    };
    let s = s
        .trim_start_matches(['(', '<', '['])
        .trim_end_matches([')', '>', ']', '.', '!'])
        .trim();
    if s.is_empty() || s.chars().count() > 80 || s.contains([',', ':', ';', '?']) {
        return false;
    }
    // English needs "my"/"the" or a product name: "Sent from a magnificent torch
    // of pixels" is prose, "Sent from Mailbox" is a client footer.
    if regex!(
        r"^(?:[Ss]ent|SENT)(?:\s+wirelessly)?\s+(?:from|via|with|using)\s+(?:my\s|the\s|[A-Z\[])"
    )
    .is_match(s)
    {
        return true;
    }
    regex!(
        r"(?i)^(?:von\s+meinem\s+.{1,40}\s+gesendet|gesendet\s+(?:von|mit|vom|aus|über)\s+\S.{0,50}|diese\s+nachricht\s+wurde\s+von\s+meinem\s+.{1,60}\s+gesendet|envoyé\s+(?:de|depuis|à\s+partir\s+de|avec|par|sans\s+fil\s+par)\s+.{1,60}|enviado\s+(?:desde|de|con|do)\s+.{1,60}|inviato\s+da\s+.{1,50}|verzonden\s+(?:met|vanaf|van)\s+.{1,50}|sendt\s+fra\s+.{1,50}|skickat\s+från\s+.{1,50}|lähetetty\s+.{1,50}|get\s+\[?outlook\s+for\s+.{1,60}|從我的\s?.{1,30}傳送|发自我的.{1,30})$"
    )
    .is_match(s)
}

/// A line made only of rule characters ("____", "=====", "-----", "ᐧ").
pub fn is_rule_line(s: &str) -> bool {
    let s = s.trim();
    !s.is_empty()
        && s.chars()
            .all(|c| matches!(c, '-' | '_' | '=' | '*' | '~' | '#' | '+' | '─' | '—' | 'ᐧ'))
}

/// Underscore-only line that starts a mailing-list footer ("__" / "_____…").
pub fn is_underscore_rule(s: &str) -> bool {
    let s = s.trim();
    s.len() >= 2 && s.chars().all(|c| c == '_')
}

/// A closing like "-Abhishek Kona" or "- roman" (not a list item, not an em-dash).
pub fn is_dash_name_closing(s: &str) -> bool {
    let s = s.trim_end();
    s.len() <= 32 && regex!(r"^-\s?\p{L}[\p{L}.'’]*(?:\s\p{L}[\p{L}.'’]*){0,2}$").is_match(s)
}

/// Blank for our purposes: whitespace, zero-width characters, Gmail's "ᐧ" tracker.
pub fn is_blank(s: &str) -> bool {
    s.chars().all(|c| {
        c.is_whitespace() || matches!(c, '\u{200b}' | '\u{200c}' | '\u{200d}' | '\u{feff}' | 'ᐧ')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribution_lines_in_several_languages() {
        for s in [
            "On Mon, Apr 2, 2012 at 6:26 PM, Megan One <xxx@gmail.com> wrote:",
            "Am 25.06.2015 um 10:55 schrieb Test user:",
            "Test user <test@example.com> schrieb:",
            "Le 19/03/2014 11:34, Georges du chemin a écrit :",
            "El 19/03/2014 11:34, Juan Pérez <juan.perez@mailcatch.com> escribió:",
            "2014-03-20 8:48 GMT+01:00 Rémi Dolan <do_not_reply@dolan.com>:",
            "ср, 30 апр. 2025 г. в 15:19, John Doe <doe@example.com>:",
            "---- John Smith wrote ----",
            "On Wed, 14 Nov 2018 08:14:43 -0200 John Doe <john@doe.com> wrote",
            "2016/11/08 14:26、Test user <test@example.com> のメッセージ:",
            "Max <m@x.de> schrieb am Fr., 28. Apr. 2017 um 11:53 Uhr:",
        ] {
            assert!(is_attribution(s, false, false), "{s}");
        }
    }

    #[test]
    fn prose_is_not_an_attribution() {
        for s in [
            "On the surface, this looks like a quote header but it's not.",
            "Something wrote:",
            "The 3 files you sent:",
            "On your remote host you can run:",
            "2024-01-15 14:30:25",
            "01/15/2024 at 2:30 PM",
        ] {
            assert!(!is_attribution(s, false, false), "{s}");
        }
        assert!(is_attribution("Something wrote:", true, false));
    }

    #[test]
    fn separators_and_forwards() {
        assert!(is_original_message_separator("-----Original Message-----"));
        assert!(is_original_message_separator(
            "-------- Ursprüngliche Nachricht --------"
        ));
        assert!(is_original_message_separator(
            "*-------- Original Message --------*"
        ));
        assert!(!is_original_message_separator(
            "------ Enter Feedback Below ------"
        ));
        assert!(is_forward_marker("---------- Forwarded message ---------"));
        assert!(is_forward_marker(
            "-------- Weitergeleitete Nachricht --------"
        ));
        assert!(is_forward_marker("Begin forwarded message:"));
    }

    #[test]
    fn header_fields() {
        assert_eq!(field_kind("*From:* Outlook user"), Some(Field::From));
        assert_eq!(
            field_kind("Envoyé le :jeudi 15 décembre"),
            Some(Field::Date)
        );
        assert_eq!(field_kind("Betreff: Test"), Some(Field::Subject));
        assert_eq!(field_kind("Time: 7 : 00am"), None);
        let mut set = FieldSet::default();
        set.add(Field::Date);
        assert!(!set.is_header_block());
        set.add(Field::From);
        assert!(set.is_header_block());
    }

    #[test]
    fn mobile_signatures() {
        for s in [
            "Sent from my iPhone",
            "Von meinem iPhone gesendet",
            "Von meinem Mobilgerät gesendet",
            "Gesendet von Outlook für Android<https://aka.ms/AAb9ysg>",
            "Get Outlook for iOS<https://aka.ms/o0ukef>",
            "Sent from Mailbox for iPhone",
            "Envoyé depuis mon iPhone",
        ] {
            assert!(is_mobile_signature(s), "{s}");
        }
        for s in [
            "Sent from my desk, is much easier then my mobile phone.",
            "Sent from a magnificent torch of pixels",
            "Gesendet: Montag, 12. Juni 2023 um 10:00 Uhr",
        ] {
            assert!(!is_mobile_signature(s), "{s}");
        }
    }

    #[test]
    fn signature_delimiters() {
        assert_eq!(sig_delimiter("-- "), SigDelimiter::Hard);
        assert_eq!(sig_delimiter("--"), SigDelimiter::Hard);
        assert_eq!(sig_delimiter("---"), SigDelimiter::Soft);
        assert_eq!(sig_delimiter("--> one"), SigDelimiter::None);
        assert!(is_dash_name_closing("-Abhishek Kona"));
        assert!(is_dash_name_closing("- roman"));
        assert!(!is_dash_name_closing("—Ryan"));
        assert!(!is_dash_name_closing("- Item #2"));
    }
}
