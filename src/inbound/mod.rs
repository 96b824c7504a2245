//! The inbound side: messages from files (files), raw bytes to
//! `InboundMail` (parse), the pipeline
//! that turns one mail into a committed outcome (process), the IMAP client
//! (imap), the daemon's mailbox poller (poller), and the leases that let
//! several instances share the mailboxes (lease).

pub mod files;
pub mod imap;
pub mod lease;
pub mod parse;
pub mod poller;
pub mod process;
