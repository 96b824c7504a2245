//! Who wrote: is the From believable (Authentication-Results), and what may
//! that person do (roles from the directory).

use super::mail::InboundMail;

/// An address as ticketgate compares it: trimmed, ASCII letters
/// lowercased. Nothing else is folded: Unicode case folding would make
/// `bernd.\u{212A}uehn@…` (KELVIN SIGN) the key user `bernd.kuehn@…`, and
/// DMARC does not cover local parts. Non-ASCII addresses match exactly.
pub fn normalize_email(address: &str) -> String {
    address.trim().to_ascii_lowercase()
}

super::ticket::text_enum! {
    pub enum Role {
        KeyUser,
        Member,
        Agent,
    }
}

/// A person from the directory.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Person {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub organization_id: i64,
    pub role: Role,
    pub locale: String,
}

impl Person {
    /// Whether this person may see the tickets of `organization_id`:
    /// agents everywhere, key users and members in their own organization.
    pub fn may_read(&self, organization_id: i64) -> bool {
        self.role == Role::Agent || self.organization_id == organization_id
    }

    /// Whether this person may write on a ticket of `organization_id`:
    /// agents everywhere, key users in their own organization.
    pub fn may_write_on(&self, organization_id: i64) -> bool {
        match self.role {
            Role::Agent => true,
            Role::KeyUser => self.organization_id == organization_id,
            Role::Member => false,
        }
    }
}

/// Why the From of a message cannot be believed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Distrust {
    /// A trusted server says `dmarc=fail`, or without a DMARC verdict both
    /// `spf=fail` and `dkim=fail` (and no passing DKIM signature).
    Spoofed,
    /// The sender cannot be told unambiguously: several From fields or
    /// mailboxes, a Sender of another domain, or a trusted server that
    /// checked another domain (`header.from`) than the From shows.
    Ambiguous(String),
}

/// What the trusted receiving servers' Authentication-Results and the
/// message's own sender fields say of its From. Results from servers we do
/// not trust are ignored: anybody can write such a header. A forged result
/// under a trusted name can only make things stricter: every trusted
/// verdict counts, and any failure is enough.
pub fn authenticate(mail: &InboundMail, trusted_authserv_ids: &[String]) -> Option<Distrust> {
    let trusted: Vec<AuthenticationResults> = mail
        .header_values("authentication-results")
        .filter_map(parse_authentication_results)
        .filter(|r| {
            trusted_authserv_ids
                .iter()
                .any(|id| id.eq_ignore_ascii_case(&r.authserv_id))
        })
        .collect();
    if trusted.iter().any(AuthenticationResults::says_spoofed) {
        return Some(Distrust::Spoofed);
    }
    if let Some(problem) = &mail.sender_problem {
        return Some(Distrust::Ambiguous(problem.clone()));
    }
    let from_domain = mail
        .from
        .as_deref()
        .and_then(|f| f.rsplit_once('@'))
        .map(|(_, d)| d);
    for result in &trusted {
        for checked in &result.header_from {
            if from_domain.is_some_and(|d| !d.eq_ignore_ascii_case(checked)) {
                return Some(Distrust::Ambiguous(format!(
                    "{} checked header.from={checked}, but From is in {}",
                    result.authserv_id,
                    from_domain.unwrap_or_default()
                )));
            }
        }
    }
    None
}

#[derive(Debug, Default)]
struct AuthenticationResults {
    authserv_id: String,
    dmarc: Vec<String>,
    spf: Vec<String>,
    dkim: Vec<String>,
    /// The From domains a result was computed for (`header.from=`).
    header_from: Vec<String>,
}

impl AuthenticationResults {
    fn says_spoofed(&self) -> bool {
        let has = |results: &[String], wanted: &str| results.iter().any(|r| r == wanted);
        if !self.dmarc.is_empty() {
            return has(&self.dmarc, "fail");
        }
        has(&self.spf, "fail") && has(&self.dkim, "fail") && !has(&self.dkim, "pass")
    }
}

/// RFC 8601: `authserv-id [version]; method=result props; method=result …`.
fn parse_authentication_results(value: &str) -> Option<AuthenticationResults> {
    let value = strip_comments(value);
    let mut segments = value.split(';');
    let authserv_id = segments.next()?.split_whitespace().next()?.to_string();
    let mut results = AuthenticationResults {
        authserv_id,
        ..Default::default()
    };
    for segment in segments {
        // A segment may hold several method=result pairs when a server
        // omits the semicolons; each starts a result only if it is a method.
        for token in segment.split_whitespace() {
            let Some((method, result)) = token.split_once('=') else {
                continue;
            };
            let result = result.to_ascii_lowercase();
            match method.to_ascii_lowercase().as_str() {
                "dmarc" => results.dmarc.push(result),
                "spf" => results.spf.push(result),
                "dkim" => results.dkim.push(result),
                "header.from" => results
                    .header_from
                    .push(result.trim_matches(|c| c == '"' || c == ';').to_string()),
                _ => {}
            }
        }
    }
    Some(results)
}

/// Removes RFC 5322 comments `( … )`, which may contain `;` or `=`.
fn strip_comments(value: &str) -> String {
    let mut depth = 0usize;
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '(' => depth += 1,
            ')' if depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_results(values: &[&str]) -> InboundMail {
        InboundMail {
            headers: values
                .iter()
                .map(|v| ("authentication-results".to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }
    }

    fn trusted() -> Vec<String> {
        vec!["mx.example.com".to_string()]
    }

    #[test]
    fn dmarc_fail_from_trusted_server_is_spoof() {
        let mail = with_results(&["mx.example.com; spf=pass smtp.mailfrom=a.de; dkim=pass header.d=a.de; dmarc=fail (p=reject) header.from=a.de"]);
        assert_eq!(authenticate(&mail, &trusted()), Some(Distrust::Spoofed));
    }

    #[test]
    fn dmarc_pass_wins_over_failing_spf() {
        let mail = with_results(&["mx.example.com; spf=fail; dkim=fail; dmarc=pass"]);
        assert_eq!(authenticate(&mail, &trusted()), None);
    }

    #[test]
    fn without_dmarc_both_spf_and_dkim_must_fail() {
        assert_eq!(
            authenticate(
                &with_results(&["mx.example.com; spf=fail smtp.mailfrom=x; dkim=fail header.d=x"]),
                &trusted()
            ),
            Some(Distrust::Spoofed)
        );
        for believed in [
            "mx.example.com; spf=fail; dkim=pass",
            "mx.example.com; spf=softfail; dkim=fail",
            "mx.example.com; spf=fail; dkim=fail; dkim=pass header.d=y",
        ] {
            assert_eq!(authenticate(&with_results(&[believed]), &trusted()), None);
        }
    }

    #[test]
    fn untrusted_servers_are_ignored() {
        let mail = with_results(&["evil.example.net; dmarc=fail"]);
        assert_eq!(authenticate(&mail, &trusted()), None);
    }

    #[test]
    fn version_comments_and_case() {
        let mail =
            with_results(&["MX.Example.COM 1; (comment; dmarc=pass) DMARC=Fail header.from=a.de"]);
        assert_eq!(authenticate(&mail, &trusted()), Some(Distrust::Spoofed));
    }

    #[test]
    fn a_trusted_check_of_another_domain_is_not_a_pass_for_this_one() {
        let mut mail = with_results(&[
            "mx.example.com; spf=pass; dkim=pass header.d=evil.example; dmarc=pass header.from=evil.example",
        ]);
        mail.from = Some("anna@acme.example".into());
        assert!(matches!(
            authenticate(&mail, &trusted()),
            Some(Distrust::Ambiguous(why)) if why.contains("header.from=evil.example")
        ));
        mail.from = Some("anna@Evil.Example".into());
        assert_eq!(authenticate(&mail, &trusted()), None);
    }

    #[test]
    fn a_forged_pass_below_the_trusted_failure_does_not_help() {
        let mail = with_results(&[
            "mx.example.com; dmarc=fail header.from=acme.example",
            "mx.example.com; dmarc=pass header.from=acme.example",
        ]);
        assert_eq!(authenticate(&mail, &trusted()), Some(Distrust::Spoofed));
    }

    #[test]
    fn ambiguous_senders_noted_by_the_parser_are_distrusted() {
        let mail = InboundMail {
            sender_problem: Some("the message has 2 From fields".into()),
            ..Default::default()
        };
        assert_eq!(
            authenticate(&mail, &trusted()),
            Some(Distrust::Ambiguous("the message has 2 From fields".into()))
        );
    }

    #[test]
    fn addresses_compare_ascii_case_insensitively_only() {
        assert_eq!(
            normalize_email(" Anna.Schmidt@Mueller.DE "),
            "anna.schmidt@mueller.de"
        );
        assert_eq!(
            normalize_email("bernd.\u{212A}uehn@acme.example"),
            "bernd.\u{212A}uehn@acme.example"
        );
        assert_ne!(normalize_email("ÄNNE@x.de"), normalize_email("änne@x.de"));
    }

    #[test]
    fn only_key_users_of_the_organization_and_agents_may_write() {
        let person = |role| Person {
            id: 1,
            email: "x@y".into(),
            name: "X".into(),
            organization_id: 7,
            role,
            locale: "de".into(),
        };
        assert!(person(Role::KeyUser).may_write_on(7));
        assert!(!person(Role::KeyUser).may_write_on(8));
        assert!(!person(Role::Member).may_write_on(7));
        assert!(person(Role::Agent).may_write_on(8));
    }
}
