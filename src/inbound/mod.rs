//! The inbound side: raw bytes to `InboundMail` (parse), and the pipeline
//! that turns one mail into a committed outcome (process).

pub mod imap;
pub mod parse;
pub mod process;
