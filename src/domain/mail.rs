//! The parsed form of an inbound message: what the rules need, decoded.

/// One inbound message, decoded from MIME. Addresses are lowercased
/// (ASCII only, see `sender::normalize_email`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InboundMail {
    /// `Message-ID` with angle brackets, as the sender gave it.
    pub message_id: Option<String>,
    pub from: Option<String>,
    pub from_name: Option<String>,
    /// Why the author cannot be told for sure (several From fields or
    /// mailboxes, a Sender of another domain); such mail is never believed.
    pub sender_problem: Option<String>,
    /// `Return-Path`: `Some("")` for the null sender `<>`.
    pub return_path: Option<String>,
    /// Every address the message was delivered to: To, Cc, Delivered-To,
    /// X-Original-To (plus-addressing and reply tokens live here).
    pub recipients: Vec<String>,
    /// Decoded subject, as sent.
    pub subject: String,
    pub in_reply_to: Vec<String>,
    pub references: Vec<String>,
    /// Header fields the classifier and the authenticator look at, names
    /// lowercased, values unfolded.
    pub headers: Vec<(String, String)>,
    /// `multipart/report` (a delivery status notification).
    pub is_report: bool,
    pub text: Option<String>,
    pub html: Option<String>,
    pub attachments: Vec<Attachment>,
    /// Attachments beyond the limits, as "name (size)"; noted on the comment.
    pub dropped_attachments: Vec<String>,
    /// A limit the message exceeds (MIME parts, depth): it is suspended.
    pub over_limit: Option<String>,
    /// Message-IDs of messages quoted inside a report (`message/rfc822`,
    /// `text/rfc822-headers`): what a bounce refers to.
    pub embedded_message_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Attachment {
    /// The name the sender gave, made safe (`parse::safe_filename`);
    /// metadata only, never a path.
    pub filename: String,
    /// The name as sent, when making it safe changed it.
    pub original_filename: Option<String>,
    pub content_type: String,
    /// Hex SHA-256 of `data`.
    pub sha256: String,
    pub data: Vec<u8>,
}

impl InboundMail {
    /// All values of a header, by lowercase name.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Hex SHA-256: how attachment contents and messages are named.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    data_encoding::HEXLOWER.encode(&sha2::Sha256::digest(data))
}
