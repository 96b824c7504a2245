//! The inbound side: raw bytes to `InboundMail` (parse), the pipeline
//! that turns one mail into a committed outcome (process), the IMAP client
//! (imap) and the daemon's mailbox poller (poller).

pub mod imap;
pub mod parse;
pub mod poller;
pub mod process;
