//! ticketgate: the mail side of a helpdesk. Customers write to `support@`;
//! ticketgate turns each message into a ticket or a comment and keeps the
//! customer informed. `docs/architecture.md` follows one mail through it.
//!
//! # Layout
//! - [`domain`]: the rules as pure functions over plain types: machine
//!   mail, senders, threading, the ticket state machine, what a
//!   notification says, and [`domain::decide`], which turns a message or
//!   an act into one decision.
//! - [`reply`]: cutting the customer's new text out of a reply (pure).
//! - [`inbound`]: messages from files (`files`) and IMAP (`imap`, any
//!   stream, every step under a timeout; `poller`, the daemon's mailbox
//!   reader; `lease`, one reader per mailbox among instances), raw bytes to a parsed mail within the limits (`parse`), and
//!   the pipeline (`process`): parse → facts → decide → write.
//! - [`acts`]: what people do at the CLI or in the help center, decided by
//!   the same rules as mail.
//! - [`web`]: the help center (SPEC section 9) on axum; [`accounts`]:
//!   invitations, passwords, sessions and sign-in throttling.
//! - [`rating`]: ratings by the links of solved notices.
//! - [`outbound`]: notifications rendered from the context they were
//!   queued with (render), composed (compose), delivered (deliver, over a
//!   transport) by the daemon's worker (worker) or `outbox flush`.
//! - [`store`]: all SQL; `facts` reads what a batch needs, `write` carries
//!   decisions out.
//! - [`daemon`]: `ticketgate run`, wiring only: a poller per mailbox, the outbox
//!   worker, the [`scheduler`], the help center and the [`metrics`]
//!   endpoint under one cancellation token; and `ticketgate serve`.
//! - [`demo`]: `ticketgate demo`, a first look in one command.
//! - [`cli`]: the command-line contract (SPEC section 8).
//! - [`config`]: the TOML configuration, validated, paths resolved.
//! - [`directory`]: the customer directory from CSV.
//! - [`clock`]: the one reader of the wall clock.
//!
//! ```text
//! IMAP / ingest ─▶ parse ─▶ dedup ─▶ facts (one read) ─▶ for each message:
//!     classify ─▶ authenticate ─▶ authorize ─▶ extract reply ─▶ thread
//!     ─▶ ticket rules ─▶ decision
//!   ─▶ one transaction: tickets, comments, attachments, outbox rows,
//!      references, suspended messages, message records
//!   ─▶ acknowledge in the mailbox
//!
//! outbox ─▶ claim ─▶ rate limit ─▶ render (snapshot) ─▶ compose ─▶ SMTP / file
//!        ─▶ sent | retry later | failed | suppressed   (bounces: bounced)
//! ```

pub mod accounts;
pub mod acts;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod directory;
pub mod domain;
pub mod inbound;
pub mod metrics;
pub mod outbound;
pub mod rating;
pub mod reply;
pub mod scheduler;
pub mod store;
pub mod web;
