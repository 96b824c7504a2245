//! Finding the ticket a message belongs to: signed reply tokens in
//! `support+<token>@…`, referenced Message-IDs, and `[#123]` subject tags.
//! Only the hints are found here; the store resolves Message-IDs.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::mail::InboundMail;

type HmacSha256 = Hmac<Sha256>;

/// Bytes of the HMAC kept in a token: 64 bits cannot be guessed by mail,
/// and the token stays short enough for a local part.
const SIGNATURE_BYTES: usize = 8;

/// Signs and verifies the tokens ticketgate hands out (reply addresses,
/// rating links). A token is `<id>-<signature>`, the signature base32.
#[derive(Clone)]
pub struct TokenSigner {
    secret: Vec<u8>,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSigner(…)")
    }
}

impl TokenSigner {
    pub fn new(secret: &str) -> Self {
        Self {
            secret: secret.as_bytes().to_vec(),
        }
    }

    fn mac(&self, purpose: &str, id: i64) -> HmacSha256 {
        let mut mac =
            HmacSha256::new_from_slice(&self.secret).expect("HMAC accepts keys of any length");
        mac.update(purpose.as_bytes());
        mac.update(b":");
        mac.update(id.to_string().as_bytes());
        mac
    }

    /// A token for `id`, valid only for `purpose` (e.g. "reply").
    pub fn issue(&self, purpose: &str, id: i64) -> String {
        let signature = self.mac(purpose, id).finalize().into_bytes();
        let encoded = data_encoding::BASE32_NOPAD.encode(&signature[..SIGNATURE_BYTES]);
        format!("{id}-{}", encoded.to_ascii_lowercase())
    }

    /// The id in `token` if its signature is ours for `purpose`. The
    /// comparison is constant-time.
    pub fn verify(&self, purpose: &str, token: &str) -> Option<i64> {
        let (id, signature) = token.split_once('-')?;
        let id: i64 = id.parse().ok().filter(|id| *id > 0)?;
        let signature = data_encoding::BASE32_NOPAD
            .decode(signature.to_ascii_uppercase().as_bytes())
            .ok()?;
        if signature.len() != SIGNATURE_BYTES {
            return None;
        }
        self.mac(purpose, id)
            .verify_truncated_left(&signature)
            .ok()
            .map(|_| id)
    }
}

pub const REPLY_PURPOSE: &str = "reply";

/// The support mailbox, split once so that recipients can be matched
/// against its plus-addressed forms.
#[derive(Debug, Clone)]
pub struct SupportAddress {
    pub local: String,
    pub domain: String,
}

impl SupportAddress {
    /// Fails when `address` has no `@`.
    pub fn parse(address: &str) -> Option<Self> {
        let (local, domain) = address.trim().rsplit_once('@')?;
        if local.is_empty() || domain.is_empty() {
            return None;
        }
        Some(Self {
            local: local.to_ascii_lowercase(),
            domain: domain.to_ascii_lowercase(),
        })
    }

    /// `support+tag@domain` → `tag`.
    pub fn plus_tag<'a>(&self, recipient: &'a str) -> Option<&'a str> {
        let (local, domain) = recipient.rsplit_once('@')?;
        if !domain.eq_ignore_ascii_case(&self.domain) {
            return None;
        }
        let (base, tag) = local.split_once('+')?;
        (base.eq_ignore_ascii_case(&self.local) && !tag.is_empty()).then_some(tag)
    }

    pub fn with_tag(&self, tag: &str) -> String {
        format!("{}+{}@{}", self.local, tag, self.domain)
    }

    pub fn plain(&self) -> String {
        format!("{}@{}", self.local, self.domain)
    }
}

/// What a message says about its thread, in the order the hints are tried.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThreadHints {
    /// Tickets named by valid reply tokens.
    pub token_tickets: Vec<i64>,
    /// In-Reply-To first, then References from newest to oldest.
    pub referenced_ids: Vec<String>,
    /// Tickets named by `[#123]` tags in the subject.
    pub subject_tickets: Vec<i64>,
    /// Plus-address tags that are not tokens (category hints).
    pub category_tags: Vec<String>,
}

/// Hints of each kind looked at per message: a real reply has one or two;
/// a header crammed with thousands must not cost a lookup each.
const MAX_TICKET_HINTS: usize = 10;

pub fn thread_hints(
    mail: &InboundMail,
    support: &SupportAddress,
    signer: &TokenSigner,
) -> ThreadHints {
    let mut hints = ThreadHints::default();
    for recipient in &mail.recipients {
        let Some(tag) = support.plus_tag(recipient) else {
            continue;
        };
        match signer.verify(REPLY_PURPOSE, tag) {
            Some(id) => push_unique(&mut hints.token_tickets, id),
            // A token-shaped tag that fails verification is a forgery, not
            // a category.
            None if looks_like_token(tag) => {}
            None => push_unique(&mut hints.category_tags, tag.to_ascii_lowercase()),
        }
    }
    for id in mail.in_reply_to.iter().chain(mail.references.iter().rev()) {
        push_unique(&mut hints.referenced_ids, id.clone());
    }
    for id in subject_tags(&mail.subject) {
        push_unique(&mut hints.subject_tickets, id);
    }
    hints
}

fn looks_like_token(tag: &str) -> bool {
    tag.split_once('-')
        .is_some_and(|(id, _)| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
}

/// Adds `item` unless it is there, up to `MAX_TICKET_HINTS` items (which
/// also keeps the search for it short).
fn push_unique<T: PartialEq>(list: &mut Vec<T>, item: T) {
    if list.len() < MAX_TICKET_HINTS && !list.contains(&item) {
        list.push(item);
    }
}

/// Ticket numbers in `[#123]` tags, in order of appearance.
pub fn subject_tags(subject: &str) -> Vec<i64> {
    let mut found = Vec::new();
    let mut rest = subject;
    while let Some(start) = rest.find("[#") {
        let after = &rest[start + 2..];
        let digits: String = after.chars().take_while(|c| c.is_ascii_digit()).collect();
        if !digits.is_empty() && after[digits.len()..].starts_with(']') {
            if let Ok(id) = digits.parse::<i64>() {
                found.push(id);
            }
        }
        rest = after;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> TokenSigner {
        TokenSigner::new("s3cret")
    }

    #[test]
    fn tokens_round_trip_and_reject_forgeries() {
        let token = signer().issue(REPLY_PURPOSE, 123);
        assert!(token.starts_with("123-"));
        assert!(token.len() <= 20, "fits a local part: {token}");
        assert_eq!(signer().verify(REPLY_PURPOSE, &token), Some(123));
        assert_eq!(
            signer().verify(REPLY_PURPOSE, &token.to_uppercase()),
            Some(123)
        );
        assert_eq!(signer().verify("rate", &token), None, "purpose is bound");
        let other_ticket = token.replacen("123-", "124-", 1);
        assert_eq!(signer().verify(REPLY_PURPOSE, &other_ticket), None);
        assert_eq!(
            TokenSigner::new("other").verify(REPLY_PURPOSE, &token),
            None
        );
        assert_eq!(signer().verify(REPLY_PURPOSE, "123-"), None);
        assert_eq!(signer().verify(REPLY_PURPOSE, "abc"), None);
    }

    #[test]
    fn subject_tags_are_found_anywhere() {
        assert_eq!(subject_tags("AW: [#12] Login"), vec![12]);
        assert_eq!(subject_tags("Re: [#5] Re: [#1] x"), vec![5, 1]);
        assert_eq!(subject_tags("[#] [#x1] #3 [#4"), Vec::<i64>::new());
        assert_eq!(
            subject_tags("[#99999999999999999999999]"),
            Vec::<i64>::new()
        );
    }

    #[test]
    fn hints_from_recipients_references_and_subject() {
        let support = SupportAddress::parse("Support@Example.com").unwrap();
        let token = signer().issue(REPLY_PURPOSE, 7);
        let mail = InboundMail {
            recipients: vec![
                format!("support+{token}@example.com"),
                "support+billing@example.com".into(),
                "support+9-aaaaaaaaaaaaa@example.com".into(),
                "support+dev@other.example".into(),
            ],
            in_reply_to: vec!["<b@x>".into()],
            references: vec!["<a@x>".into(), "<b@x>".into()],
            subject: "Re: [#3] Frage".into(),
            ..Default::default()
        };
        let hints = thread_hints(&mail, &support, &signer());
        assert_eq!(hints.token_tickets, vec![7]);
        assert_eq!(hints.category_tags, vec!["billing".to_string()]);
        assert_eq!(
            hints.referenced_ids,
            vec!["<b@x>".to_string(), "<a@x>".to_string()]
        );
        assert_eq!(hints.subject_tickets, vec![3]);
    }
}
