//! The rules of ticketgate as plain functions over plain types: no I/O, no
//! clock, no database. Everything here is tested without servers.

pub mod classify;
pub mod mail;
pub mod retry;
pub mod sender;
pub mod thread;
pub mod ticket;
