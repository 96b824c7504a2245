//! The help center's account rules: what a password must be, how long
//! links and sessions live, and when sign-in is throttled. Pure; hashing,
//! randomness and storage are `crate::accounts`.

use super::ticket::text_enum;

/// An invitation's activation link is valid this long (SPEC 9: 7 days).
pub const ACTIVATION_SECS: i64 = 7 * 24 * 3_600;
/// A password reset link: long enough to find the mail, short enough that
/// a mailbox read later opens nothing.
pub const RESET_SECS: i64 = 2 * 3_600;
/// A session ends this long after sign-in (it is not extended by use, so a
/// page view writes nothing).
pub const SESSION_SECS: i64 = 14 * 24 * 3_600;

/// Failed sign-ins per account, in [`THROTTLE_WINDOW_SECS`], that lock it
/// for [`LOCK_SECS`].
pub const ACCOUNT_FAILURES: i64 = 10;
/// Failed sign-ins per client address in the window that refuse that
/// address: higher, so colleagues behind one NAT are not locked out by one
/// of them.
pub const CLIENT_FAILURES: i64 = 100;
pub const THROTTLE_WINDOW_SECS: i64 = 15 * 60;
pub const LOCK_SECS: i64 = 15 * 60;

/// At most this many reset mails per address and hour (SPEC 5).
pub const RESET_MAILS_PER_HOUR: i64 = 3;

pub const MIN_PASSWORD_CHARS: usize = 10;

text_enum! {
    pub enum TokenPurpose {
        Activation,
        PasswordReset,
    }
}

impl TokenPurpose {
    pub fn lifetime(self) -> i64 {
        match self {
            TokenPurpose::Activation => ACTIVATION_SECS,
            TokenPurpose::PasswordReset => RESET_SECS,
        }
    }
}

/// What is wrong with a new password, for the form to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordProblem {
    TooShort,
    Mismatch,
    /// On the lists of passwords that attackers try first, or built only
    /// from the user's own name or address.
    Common,
}

/// Checks a new password and its confirmation. Guessability is zxcvbn's
/// estimate, with the user's address and name as words an attacker knows:
/// a score of 0 or 1 (fewer than about a million guesses) is refused.
pub fn password_problem(
    password: &str,
    confirmation: &str,
    known_words: &[&str],
) -> Option<PasswordProblem> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Some(PasswordProblem::TooShort);
    }
    if password != confirmation {
        return Some(PasswordProblem::Mismatch);
    }
    // Each part of an address or a name is a word an attacker tries.
    let mut words: Vec<&str> = known_words.to_vec();
    for word in known_words {
        words.extend(
            word.split(|c: char| !c.is_alphanumeric())
                .filter(|w| w.len() > 1),
        );
    }
    let score = zxcvbn::zxcvbn(password, &words).score();
    if (score as u8) < 2 || only_known_words(password, &words) {
        return Some(PasswordProblem::Common);
    }
    None
}

/// Whether the password's letters are nothing but the user's own words
/// (`AnnaSchmidt2026!`): zxcvbn rates such a pair of words with digits as
/// fair, but they are the first thing anyone who knows the user tries.
fn only_known_words(password: &str, words: &[&str]) -> bool {
    let letters: Vec<char> = password
        .chars()
        .filter(|c| c.is_alphabetic())
        .flat_map(char::to_lowercase)
        .collect();
    let words: Vec<Vec<char>> = words
        .iter()
        .filter(|w| w.chars().count() > 1)
        .map(|w| w.chars().flat_map(char::to_lowercase).collect())
        .collect();
    // reachable[i]: the first i letters are a sequence of known words.
    let mut reachable = vec![false; letters.len() + 1];
    reachable[0] = true;
    for i in 0..letters.len() {
        if !reachable[i] {
            continue;
        }
        for word in &words {
            if letters[i..].starts_with(word) {
                reachable[i + word.len()] = true;
            }
        }
    }
    !letters.is_empty() && reachable[letters.len()]
}

/// What the sign-in counters say before a password is even checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Throttle {
    Allowed,
    /// This account is locked until then (even the right password fails).
    AccountLocked {
        until: i64,
    },
    /// This client address tried too many wrong passwords.
    ClientRefused,
}

/// Sign-in may be tried unless the account is locked or the client has
/// failed too often in the window.
pub fn throttle(locked_until: Option<i64>, client_failures: i64, now: i64) -> Throttle {
    match locked_until {
        Some(until) if until > now => Throttle::AccountLocked { until },
        _ if client_failures >= CLIENT_FAILURES => Throttle::ClientRefused,
        _ => Throttle::Allowed,
    }
}

/// After a wrong password: the lock to set, when the account's failures in
/// the window (this one included) reach the limit. Attempts refused while
/// locked are not failures, so a lock ends 15 minutes after it began.
pub fn lock_after_failure(account_failures: i64, now: i64) -> Option<i64> {
    (account_failures >= ACCOUNT_FAILURES).then_some(now + LOCK_SECS)
}

/// Whether `next` is a path of ours: `/…` but not `//host` or `/\host`
/// (which browsers read as another site), no scheme, no control
/// characters.
pub fn is_local_path(next: &str) -> bool {
    next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && !next.chars().any(|c| c.is_control() || c == '\\')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_need_ten_characters_a_match_and_some_strength() {
        let words = ["anna.schmidt@acme.example", "Anna Schmidt"];
        assert_eq!(
            password_problem("kurz", "kurz", &words),
            Some(PasswordProblem::TooShort)
        );
        // Ten characters, counted as characters, not bytes.
        assert_eq!(
            password_problem("äöüäöü", "äöüäöü", &words),
            Some(PasswordProblem::TooShort)
        );
        assert_eq!(
            password_problem("Lange-Wiese-42", "Lange-Wiese-43", &words),
            Some(PasswordProblem::Mismatch)
        );
        for common in [
            "password123",
            "1234567890",
            "qwertzuiop",
            "annaschmidt1",
            "Schmidt.Anna-2026!",
        ] {
            assert_eq!(
                password_problem(common, common, &words),
                Some(PasswordProblem::Common),
                "{common}"
            );
        }
        assert_eq!(
            password_problem("Lange-Wiese-42", "Lange-Wiese-42", &words),
            None
        );
    }

    #[test]
    fn ten_failures_lock_the_account_for_fifteen_minutes() {
        assert_eq!(lock_after_failure(9, 1_000), None);
        assert_eq!(lock_after_failure(10, 1_000), Some(1_000 + 15 * 60));
        let until = 1_000 + LOCK_SECS;
        assert_eq!(
            throttle(Some(until), 0, 1_001),
            Throttle::AccountLocked { until }
        );
        assert_eq!(throttle(Some(until), 0, until), Throttle::Allowed);
    }

    #[test]
    fn a_client_address_is_refused_only_after_a_hundred_failures() {
        assert_eq!(throttle(None, 99, 0), Throttle::Allowed);
        assert_eq!(throttle(None, 100, 0), Throttle::ClientRefused);
    }

    #[test]
    fn next_must_be_a_local_path() {
        for good in ["/requests", "/tickets/12?x=1", "/"] {
            assert!(is_local_path(good), "{good}");
        }
        for bad in [
            "https://evil.example/",
            "//evil.example",
            "/\\evil.example",
            "javascript:alert(1)",
            "requests",
            "/a\r\nSet-Cookie: x",
            "",
        ] {
            assert!(!is_local_path(bad), "{bad}");
        }
    }
}
