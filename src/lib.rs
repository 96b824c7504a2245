//! ticketgate: the mail side of a helpdesk. Customers write to `support@`;
//! ticketgate turns each message into a ticket or a comment and keeps the
//! customer informed.
//!
//! # Layout
//! - [`cli`]: the command-line contract (SPEC section 8).
//! - [`config`]: the TOML configuration, validated, paths resolved.
//! - [`clock`]: the one reader of the wall clock.
//! - [`domain`]: the rules as pure functions: classifying machine mail,
//!   authenticating and authorizing senders, threading, the ticket state
//!   machine.
//! - [`reply`]: cutting the customer's new text out of a reply (pure).
//! - [`inbound`]: raw bytes to a parsed mail, the pipeline that commits
//!   one outcome per message (its ticket rules in `process::apply`), the
//!   IMAP client over any stream (`imap`, every step under a timeout) and
//!   the daemon's mailbox poller (`poller`).
//! - [`outbound`]: notifications: queued in the outbox (enqueue), rendered
//!   from templates (render), composed (compose) and delivered over SMTP or
//!   to files with retries and the rate limit (deliver, transport).
//! - [`rating`]: signed rating links and storing a rating.
//! - [`daemon`]: `ticketgate run`, wiring only: the poller, the outbox
//!   worker (`outbound::worker`), the scheduler and the metrics endpoint
//!   under one cancellation token.
//! - [`metrics`]: counters and the Prometheus text.
//! - [`scheduler`]: due jobs (auto-close).
//! - [`directory`]: the customer directory from CSV.
//! - [`blobs`]: attachment contents on disk, content-addressed.
//! - [`cpu`]: keeping the pipeline on one CPU with its database worker.
//! - [`store`]: all SQL.
//!
//! ```text
//! IMAP / ingest ─▶ parse ─▶ dedup ─▶ classify ─▶ authenticate ─▶ authorize
//!   ─▶ extract reply ─▶ thread ─▶ apply ticket rules ─▶ one transaction:
//!      ticket, comment, attachments, outbox rows, message record
//!   ─▶ acknowledge in the mailbox
//!
//! outbox ─▶ claim ─▶ rate limit ─▶ render ─▶ compose ─▶ SMTP / file
//!        ─▶ sent | retry later | failed | suppressed   (bounces: bounced)
//! ```

pub mod acts;
pub mod cli;
pub mod clock;
pub mod config;
pub mod cpu;
pub mod daemon;
pub mod directory;
pub mod domain;
pub mod inbound;
pub mod metrics;
pub mod outbound;
pub mod rating;
pub mod reply;
pub mod scheduler;
pub mod store;
