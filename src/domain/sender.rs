//! Who wrote: is the From believable (Authentication-Results), and what may
//! that person do (roles from the directory).

use super::mail::InboundMail;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    KeyUser,
    Member,
    Agent,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s.trim().to_ascii_lowercase().as_str() {
            "key_user" => Some(Role::KeyUser),
            "member" => Some(Role::Member),
            "agent" => Some(Role::Agent),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::KeyUser => "key_user",
            Role::Member => "member",
            Role::Agent => "agent",
        }
    }
}

/// A person from the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub organization_id: i64,
    pub role: Role,
    pub locale: String,
}

impl Person {
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

/// True when a trusted receiving server says the From cannot be believed:
/// `dmarc=fail`, or without a DMARC verdict both `spf=fail` and `dkim=fail`
/// (and no passing DKIM signature). Results from servers we do not trust
/// are ignored: anybody can write such a header.
pub fn is_spoofed(mail: &InboundMail, trusted_authserv_ids: &[String]) -> bool {
    mail.header_values("authentication-results")
        .filter_map(parse_authentication_results)
        .filter(|r| {
            trusted_authserv_ids
                .iter()
                .any(|id| id.eq_ignore_ascii_case(&r.authserv_id))
        })
        .any(|r| r.says_spoofed())
}

#[derive(Debug, Default)]
struct AuthenticationResults {
    authserv_id: String,
    dmarc: Vec<String>,
    spf: Vec<String>,
    dkim: Vec<String>,
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
        assert!(is_spoofed(&mail, &trusted()));
    }

    #[test]
    fn dmarc_pass_wins_over_failing_spf() {
        let mail = with_results(&["mx.example.com; spf=fail; dkim=fail; dmarc=pass"]);
        assert!(!is_spoofed(&mail, &trusted()));
    }

    #[test]
    fn without_dmarc_both_spf_and_dkim_must_fail() {
        assert!(is_spoofed(
            &with_results(&["mx.example.com; spf=fail smtp.mailfrom=x; dkim=fail header.d=x"]),
            &trusted()
        ));
        assert!(!is_spoofed(
            &with_results(&["mx.example.com; spf=fail; dkim=pass"]),
            &trusted()
        ));
        assert!(!is_spoofed(
            &with_results(&["mx.example.com; spf=softfail; dkim=fail"]),
            &trusted()
        ));
        assert!(!is_spoofed(
            &with_results(&["mx.example.com; spf=fail; dkim=fail; dkim=pass header.d=y"]),
            &trusted()
        ));
    }

    #[test]
    fn untrusted_servers_are_ignored() {
        let mail = with_results(&["evil.example.net; dmarc=fail"]);
        assert!(!is_spoofed(&mail, &trusted()));
    }

    #[test]
    fn version_comments_and_case() {
        let mail =
            with_results(&["MX.Example.COM 1; (comment; dmarc=pass) DMARC=Fail header.from=a.de"]);
        assert!(is_spoofed(&mail, &trusted()));
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
