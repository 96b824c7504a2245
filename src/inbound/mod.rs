//! The inbound side: messages from files (files), raw bytes to
//! `InboundMail` (parse), the pipeline
//! that turns one mail into a committed outcome (process), the IMAP client
//! (imap) and the daemon's mailbox poller (poller).

pub mod files;
pub mod imap;
pub mod parse;
pub mod poller;
pub mod process;
