//! The rules of ticketgate as plain functions over plain types: no I/O, no
//! clock, no database. Everything here is tested without servers.
//!
//! - [`account`]: passwords, links, sessions and sign-in throttling.
//! - [`mail`]: an inbound message, decoded.
//! - [`classify`]: machine mail (loops, bounces, auto-replies).
//! - [`sender`]: roles, and whether a From can be believed.
//! - [`thread`]: reply tokens, references and subject tags.
//! - [`ticket`]: the ticket, its enums and state machine (SPEC 3 and 4).
//! - [`notice`]: what a notification says, fixed at its event.
//! - [`decide`]: facts and a message (or an act) in, one decision out.
//! - [`retry`]: when to try a delivery or a peer again.

pub mod account;
pub mod classify;
pub mod decide;
pub mod mail;
pub mod notice;
pub mod retry;
pub mod sender;
pub mod thread;
pub mod ticket;
