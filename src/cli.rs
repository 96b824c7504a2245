//! The command-line contract (SPEC section 8): arguments, output shapes and
//! exit codes. Each command opens what it needs and calls the library.

use std::collections::VecDeque;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use crate::acts::Acts;
use crate::clock::Clock;
use crate::config::{Settings, SAMPLE};
use crate::domain::decide::{agent_comment, Contribution, Decision, Refusal};
use crate::domain::sender::{normalize_email, Role};
use crate::domain::ticket::AgentCommands;
use crate::domain::ticket::Status;
use crate::inbound::files::Incoming;
use crate::inbound::process::{Overlapped, Pipeline, Report};
use crate::outbound::deliver::{Deliverer, Scope};
use crate::store::facts::Wanted;
use crate::store::{self, Store};

const AFTER_HELP: &str = "\
Configuration: --config FILE, else ticketgate.toml in the current directory;
relative paths in it resolve against the file's directory. `ticketgate init`
writes a commented sample.

Exit codes: 0 success; 2 usage or configuration error (the message names the
file, key or value); 1 any other failure (a ticket that does not exist, a
database that cannot be reached, a failed check). `ingest --mta` exits 75
(EX_TEMPFAIL) when a message could not be committed.

Examples:
  ticketgate demo
  ticketgate --config /etc/ticketgate/ticketgate.toml check
  ticketgate users import customers.csv
  ticketgate ingest --json mail/*.eml
  ticketgate ticket reply 12 --agent lena@example.com --body-file answer.txt --solve
  ticketgate --now 2026-12-24T10:00:00Z tick";

#[derive(Parser, Debug)]
#[command(
    name = "ticketgate",
    version,
    about = "Email-first support ticket gateway and help center",
    long_about = "Email-first support ticket gateway and help center: reads the support \
        mailbox, turns each message into a ticket or a comment, keeps customers informed \
        by mail, and serves the help center where they continue their tickets.",
    after_long_help = AFTER_HELP
)]
pub struct Cli {
    /// The configuration file.
    #[arg(
        long,
        global = true,
        default_value = "ticketgate.toml",
        value_name = "FILE"
    )]
    config: PathBuf,
    /// Evaluate every time-based rule as of this instant (RFC 3339, e.g.
    /// 2026-12-24T10:00:00Z): for tests and replays.
    #[arg(long, global = true, value_name = "TIME")]
    now: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write a commented sample config (unless one exists) with a random
    /// token_secret, and create the database.
    #[command(
        after_help = "Examples:\n  ticketgate --config demo/ticketgate.toml init\n  \
        sudo ticketgate --config /etc/ticketgate/ticketgate.toml init --system"
    )]
    Init {
        /// For a system service: absolute paths under --state-dir for the
        /// database, outbox files and attachments, the file readable by
        /// group ticketgate only; the service creates the database at its
        /// first start, as its own user.
        #[arg(long)]
        system: bool,
        /// The service's state directory (with --system).
        #[arg(
            long,
            default_value = "/var/lib/ticketgate",
            value_name = "DIR",
            requires = "system"
        )]
        state_dir: PathBuf,
    },
    /// The customer directory: import, invite, remove.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Run the pipeline on each message file (`-` for stdin), Maildir or
    /// mbox; one line per message.
    #[command(after_help = "Examples:\n  ticketgate ingest --json mail/*.eml\n  \
        ticketgate ingest ~/Maildir\n  ticketgate ingest archive.mbox\n  \
        ticketgate ingest --mta -        (Postfix pipe delivery)")]
    Ingest {
        /// One JSON object per message on stdout (SPEC section 8).
        #[arg(long)]
        json: bool,
        /// For MTA pipe delivery: exit 75 (EX_TEMPFAIL) when a message
        /// could not be committed, so the MTA keeps it queued and retries.
        #[arg(long)]
        mta: bool,
        /// Message files, `-` for stdin, Maildir directories (cur/ and
        /// new/) or mbox files.
        #[arg(required = true, value_name = "MESSAGE")]
        files: Vec<PathBuf>,
    },
    /// Tickets: show, list, answer, solve.
    #[command(subcommand)]
    Ticket(TicketCommand),
    /// The queue of messages that were not accepted.
    #[command(subcommand)]
    Suspended(SuspendedCommand),
    /// Queued and sent notifications.
    #[command(subcommand)]
    Outbox(OutboxCommand),
    /// The database itself: move it to PostgreSQL.
    #[command(subcommand)]
    Db(DbCommand),
    /// Run due scheduler jobs once (close tickets solved longer than
    /// reopen_days, retry due deliveries).
    Tick {
        /// A JSON summary on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Reply extraction alone: a body on stdin, the kept text on stdout.
    #[command(after_help = "Example:\n  ticketgate extract < reply.txt")]
    Extract {
        /// The body is HTML.
        #[arg(long)]
        html: bool,
    },
    /// The daemon: IMAP poller, outbox worker, scheduler, metrics, and the
    /// help center when `[web] listen` is set. Stops on SIGTERM or SIGINT.
    Run,
    /// The help center alone (`[web] listen`), on the real clock: for extra
    /// web instances beside the daemon.
    Serve,
    /// A first look: a demo directory with sample config, users and mails,
    /// ingested, and the help center served with a printed login.
    Demo {
        /// Where the demo's config, database and mails go.
        #[arg(long, default_value = "ticketgate-demo", value_name = "DIR")]
        dir: PathBuf,
        /// The help center's address.
        #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDRESS")]
        listen: String,
    },
    /// Checks the configuration, the secret, the templates and the
    /// connections to the database, IMAP and SMTP, one line each with ok or
    /// FAIL and the reason (exit 1 if anything failed).
    Check {
        /// Only the configuration, the secret and the templates, no
        /// connections: for a unit's ExecStartPre, so that a relay or a
        /// mailbox that is down does not keep the daemon (which retries)
        /// from starting.
        #[arg(long)]
        config_only: bool,
    },
    /// Shell completions, generated from these definitions, on stdout.
    #[command(
        after_help = "Example:\n  ticketgate completions bash > /etc/bash_completion.d/ticketgate"
    )]
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// The man page (roff), generated from these definitions, on stdout.
    #[command(after_help = "Example:\n  ticketgate man > /usr/local/share/man/man1/ticketgate.1")]
    Man,
}

#[derive(Subcommand, Debug)]
enum UsersCommand {
    /// Load or update the directory from CSV (organization,email,name,role,locale);
    /// new key users and members get an invitation to the help center.
    #[command(after_help = "Example:\n  ticketgate users import --sync customers.csv")]
    Import {
        /// The CSV file, with a header row.
        file: PathBuf,
        /// Send no invitations.
        #[arg(long)]
        no_invite: bool,
        /// The file is the whole directory: people not in it are
        /// deactivated (their tickets stay; they can no longer write, sign
        /// in or be notified).
        #[arg(long)]
        sync: bool,
    },
    /// Queue invitation mails with a fresh activation link (to every key
    /// user and member without a password when no address is given).
    Invite {
        /// Addresses of people in the directory.
        emails: Vec<String>,
    },
    /// Deactivate a person: their tickets stay, they can no longer write,
    /// sign in or be notified; their sessions end. `users import` of a row
    /// with them activates them again.
    Remove {
        /// The person's address.
        email: String,
    },
}

#[derive(Subcommand, Debug)]
enum TicketCommand {
    /// One ticket with its comments.
    Show {
        /// The ticket number.
        id: i64,
        /// The SPEC section 8 JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Tickets, one line each.
    List {
        /// One JSON object per ticket.
        #[arg(long)]
        json: bool,
        /// Only this organization's (its name as in the CSV).
        #[arg(long, value_name = "NAME")]
        org: Option<String>,
        /// Only this requester's (an address).
        #[arg(long, value_name = "EMAIL")]
        requester: Option<String>,
        /// Only tickets in this status.
        #[arg(long, value_parser = ["open", "pending", "solved", "closed"])]
        status: Option<String>,
    },
    /// An agent's answer: a public comment, the ticket pending (or solved),
    /// the requester told by mail.
    #[command(
        after_help = "Examples:\n  ticketgate ticket reply 12 --agent lena@example.com --body 'Erledigt.' --solve\n  \
        ticketgate ticket reply 12 --agent lena@example.com --body-file - < answer.txt"
    )]
    Reply(ReplyArgs),
    /// Stop sending a follower (a colleague who was in Cc) the answers.
    Unfollow {
        /// The ticket number.
        id: i64,
        /// The follower's address.
        email: String,
    },
    /// Solve a ticket: the requester gets the solved notice with rating links.
    Solve {
        /// The ticket number.
        id: i64,
        /// The new state as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
struct ReplyArgs {
    /// The ticket number.
    id: i64,
    /// The answering agent's address (an agent in the directory).
    #[arg(long, value_name = "EMAIL")]
    agent: String,
    /// The answer's text.
    #[arg(
        long,
        value_name = "TEXT",
        required_unless_present = "body_file",
        conflicts_with = "body_file"
    )]
    body: Option<String>,
    /// Read the answer's text from this file (`-` for stdin).
    #[arg(long, value_name = "FILE")]
    body_file: Option<PathBuf>,
    /// Solve the ticket with this answer.
    #[arg(long)]
    solve: bool,
    /// An internal note: the customer is not told.
    #[arg(long)]
    internal: bool,
    /// The new state as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand, Debug)]
enum SuspendedCommand {
    /// Every held message with its reason.
    List {
        /// One JSON object per message.
        #[arg(long)]
        json: bool,
    },
    /// A held message: its reason, headers and text, to decide on it.
    Show {
        /// The entry's id (from `suspended list`).
        id: i64,
    },
    /// Run the kept message through the pipeline again (not as a duplicate).
    Release {
        /// The entry's id.
        id: i64,
        /// Its outcome as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete a held message for good.
    Delete {
        /// The entry's id.
        id: i64,
    },
}

#[derive(Subcommand, Debug)]
enum DbCommand {
    /// Copy this (SQLite) database into an empty PostgreSQL database, and
    /// check the row counts; this one is left untouched.
    #[command(
        after_help = "Example:\n  ticketgate db copy --to postgres://ticketgate@db.example.com/ticketgate\n\n\
        Then set [database] url to the target and start the instances."
    )]
    Copy {
        /// The target, postgres://user@host/database.
        #[arg(long)]
        to: String,
    },
}

#[derive(Subcommand, Debug)]
enum OutboxCommand {
    /// Every notification, sent ones too, with its state.
    List {
        /// One JSON object per notification.
        #[arg(long)]
        json: bool,
    },
    /// Deliver queued mail now.
    Flush {
        /// A JSON summary on stdout.
        #[arg(long)]
        json: bool,
    },
}

/// A command's failure and the exit code it maps to.
#[derive(Debug)]
pub enum Failure {
    /// Usage or configuration: exit 2.
    Usage(String),
    /// Anything else: exit 1.
    Other(String),
}

impl From<sqlx::Error> for Failure {
    fn from(e: sqlx::Error) -> Self {
        Failure::Other(format!("database error: {e}"))
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Other(e.to_string())
    }
}

impl From<crate::inbound::process::PipelineError> for Failure {
    fn from(e: crate::inbound::process::PipelineError) -> Self {
        Failure::Other(e.to_string())
    }
}

type CliResult = Result<ExitCode, Failure>;

/// Batches of `ingest` in flight, with the names of each message.
struct IngestBatches {
    overlapped: Overlapped,
    names: VecDeque<Vec<PathBuf>>,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // One thread drives every command, the daemon included; parsing and
    // file writes go to blocking threads, the database to sqlx's worker.
    // Only the help center alone (`serve`, and the demo) renders pages on
    // every core: many browsers at once are its whole load.
    let builder = if matches!(cli.command, Command::Serve | Command::Demo { .. }) {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    let mut builder = builder;
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ticketgate: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let mta = matches!(cli.command, Command::Ingest { mta: true, .. });
    match runtime.block_on(execute(cli)) {
        Ok(code) => code,
        Err(Failure::Other(message)) if mta => {
            eprintln!("ticketgate: {message}");
            ExitCode::from(EX_TEMPFAIL)
        }
        Err(Failure::Usage(message)) => {
            eprintln!("ticketgate: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Other(message)) => {
            eprintln!("ticketgate: {message}");
            ExitCode::from(1)
        }
    }
}

/// Logs go to stderr, in colour only on a terminal (not into files and
/// journald); `TICKETGATE_LOG` (e.g. `debug`) overrides the level.
fn init_logging(default_level: &str, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TICKETGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn execute(cli: Cli) -> CliResult {
    let clock = match &cli.now {
        Some(value) => Clock::parse_fixed(value).map_err(Failure::Usage)?,
        None => Clock::System,
    };
    match cli.command {
        Command::Extract { html } => {
            init_logging("warn", false);
            extract(html)
        }
        Command::Demo { dir, listen } => {
            init_logging("info", false);
            crate::demo::run(&dir, &listen)
                .await
                .map_err(Failure::Other)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "ticketgate", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Man => {
            let command = <Cli as clap::CommandFactory>::command();
            clap_mangen::Man::new(command).render(&mut std::io::stdout())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Init { system, state_dir } => {
            init_logging("warn", false);
            if system {
                init_system(&cli.config, &state_dir)
            } else {
                init(&cli.config).await
            }
        }
        command => {
            let settings = Settings::load(&cli.config).map_err(|e| {
                init_logging("warn", false);
                Failure::Usage(e.to_string())
            })?;
            let daemon = matches!(command, Command::Run | Command::Serve);
            // One log format for every command: an operator's log pipeline
            // reads `ingest --mta` and `tick` lines like the daemon's.
            let json_logs = settings.daemon.log_format.as_deref() == Some("json");
            init_logging(if daemon { "info" } else { "warn" }, json_logs);
            if let Command::Check { config_only } = command {
                return check(&settings, config_only).await;
            }
            let store = Store::open(&settings.database.url).await.map_err(|e| {
                let message = format!("cannot open the database {}: {e}", settings.database.url);
                // A database this version cannot use is the config's error.
                match e {
                    sqlx::Error::Configuration(_) => {
                        Failure::Usage(format!("[database] url: {message}"))
                    }
                    _ => Failure::Other(message),
                }
            })?;
            let context = Context {
                settings,
                store,
                clock,
            };
            let result = context.run(command).await;
            context.store.close().await;
            result
        }
    }
}

fn extract(html: bool) -> CliResult {
    let mut input = Vec::new();
    std::io::stdin().read_to_end(&mut input)?;
    let body = String::from_utf8_lossy(&input);
    let kept = if html {
        crate::reply::extract_reply_html(&body)
    } else {
        crate::reply::extract_reply(&body)
    };
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{kept}")?;
    Ok(ExitCode::SUCCESS)
}

async fn init(config: &Path) -> CliResult {
    if config.exists() {
        eprintln!("{} exists; keeping it", config.display());
    } else {
        std::fs::write(config, with_random_secret(SAMPLE))
            .map_err(|e| Failure::Usage(format!("cannot write {}: {e}", config.display())))?;
        eprintln!("wrote {}", config.display());
    }
    let settings = Settings::load(config).map_err(|e| Failure::Usage(e.to_string()))?;
    let store = Store::open(&settings.database.url).await.map_err(|e| {
        Failure::Other(format!(
            "cannot create the database {}: {e}",
            settings.database.url
        ))
    })?;
    store.close().await;
    eprintln!("database ready: {}", settings.database.url);
    Ok(ExitCode::SUCCESS)
}

/// `ticketgate check`: one line per item, `ok` or `FAIL` with the reason;
/// the database is one of the items, so a database that cannot be opened
/// is a FAIL line, not an early exit.
async fn check(settings: &Settings, config_only: bool) -> CliResult {
    let mut failed = false;
    let mut report = |what: &str, result: Result<String, String>| match result {
        Ok(detail) => println!("ok    {what}: {detail}"),
        Err(reason) => {
            failed = true;
            println!("FAIL  {what}: {reason}");
        }
    };
    report("config", Ok(settings.config_dir.display().to_string()));
    report(
        "token_secret",
        settings
            .security
            .secret_problem()
            .map_or(Ok("set".into()), Err),
    );
    let templates = Deliverer::new(settings).map(|_| "all compile and render".to_string());
    report("templates", templates);
    if config_only {
        return Ok(if failed {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        });
    }
    let leases = match Store::open(&settings.database.url).await {
        Ok(store) => {
            report("database", Ok(settings.database.url.clone()));
            let leases = mailbox_leases(&store).await;
            store.close().await;
            leases
        }
        Err(e) => {
            report("database", Err(format!("{}: {e}", settings.database.url)));
            Default::default()
        }
    };
    if settings.mailboxes.is_empty() {
        report("imap", Ok("not configured (ingest only)".into()));
    }
    for imap in &settings.mailboxes {
        let connector = crate::inbound::imap::NetConnector::new(imap);
        for (what, result) in crate::inbound::poller::check(&connector, imap).await {
            report(&what, result);
        }
        // Who reads it is news, not a failure: nobody while no
        // `ticketgate run` is up.
        let held = leases.get(&imap.name).cloned();
        report(
            &format!("{} reader", imap.label()),
            Ok(held.unwrap_or_else(|| "no instance holds it".into())),
        );
    }
    let result = match crate::outbound::transport::Outbound::from_settings(settings) {
        Ok(transport) => transport.check().await,
        Err(e) => Err(e),
    };
    report(
        &format!("outbound ({})", settings.outbound.transport),
        result,
    );
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Mailbox name → who holds its lease, as `check` says it.
async fn mailbox_leases(store: &Store) -> std::collections::HashMap<String, String> {
    let leases = async {
        let mut conn = store.acquire().await?;
        crate::store::leases::all(&mut conn, store.backend).await
    };
    match leases.await {
        Ok((leases, now)) => leases
            .into_iter()
            .map(|lease| {
                let state = if lease.expires_at > now {
                    format!(
                        "held by {} since {} s, renewed until {} s from now",
                        lease.holder,
                        now - lease.taken_at,
                        lease.expires_at - now
                    )
                } else {
                    format!(
                        "free: {}'s lease ended {} s ago",
                        lease.holder,
                        now - lease.expires_at
                    )
                };
                (lease.mailbox, state)
            })
            .collect(),
        Err(error) => {
            tracing::warn!("cannot read the mailbox leases: {error}");
            Default::default()
        }
    }
}

/// The sample with a fresh secret in place of the placeholder.
fn with_random_secret(sample: &str) -> String {
    sample.replace(
        "token_secret = \"change-me\"",
        &format!("token_secret = \"{}\"", crate::accounts::new_secret()),
    )
}

/// `init --system`: the sample with absolute paths under `state_dir`, a
/// random secret, mode 0640 and group `ticketgate` when that group exists
/// (the unit reads it as that user; nobody else may, it holds passwords).
fn init_system(config: &Path, state_dir: &Path) -> CliResult {
    use std::os::unix::fs::PermissionsExt;
    if !state_dir.is_absolute() {
        return Err(Failure::Usage(format!(
            "--state-dir {} must be an absolute path",
            state_dir.display()
        )));
    }
    if config.exists() {
        eprintln!("{} exists; keeping it", config.display());
        return Ok(ExitCode::SUCCESS);
    }
    let state = state_dir.display();
    let text = with_random_secret(SAMPLE)
        .replace(
            "url = \"sqlite://ticketgate.db\"",
            &format!("url = \"sqlite://{state}/ticketgate.db\""),
        )
        .replace("dir = \"outbox\"", &format!("dir = \"{state}/outbox\""))
        .replace(
            "data_dir = \"data\"",
            &format!("data_dir = \"{state}/data\""),
        );
    if let Some(parent) = config.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| Failure::Usage(format!("cannot create {}: {e}", parent.display())))?;
    }
    std::fs::write(config, text)
        .map_err(|e| Failure::Usage(format!("cannot write {}: {e}", config.display())))?;
    std::fs::set_permissions(config, std::fs::Permissions::from_mode(0o640))?;
    if let Some(gid) = group_id("ticketgate") {
        std::os::unix::fs::chown(config, None, Some(gid))?;
    }
    Settings::load(config).map_err(|e| Failure::Usage(e.to_string()))?;
    eprintln!(
        "wrote {} (paths under {state}); edit the mailbox, relay and addresses, then start the service: it creates the database at its first start",
        config.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// A group's id from /etc/group (which sysusers writes).
fn group_id(name: &str) -> Option<u32> {
    std::fs::read_to_string("/etc/group")
        .ok()?
        .lines()
        .find_map(|line| {
            let mut fields = line.split(':');
            (fields.next() == Some(name))
                .then(|| fields.nth(1).and_then(|gid| gid.parse().ok()))
                .flatten()
        })
}

struct Context {
    settings: Settings,
    store: Store,
    clock: Clock,
}

fn print_json(value: &impl Serialize) -> Result<(), Failure> {
    let line = serde_json::to_string(value).map_err(|e| Failure::Other(e.to_string()))?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")?;
    Ok(())
}

/// sysexits.h: "temporary failure; try again later", which MTAs honour.
const EX_TEMPFAIL: u8 = 75;

/// Messages read per transaction by `ingest`: one durable commit per batch,
/// and at most this many bytes of messages in memory.
const INGEST_BATCH: usize = 200;
const INGEST_BATCH_BYTES: usize = 8 * 1024 * 1024;

impl Context {
    async fn run(&self, command: Command) -> CliResult {
        match command {
            Command::Users(UsersCommand::Import {
                file,
                no_invite,
                sync,
            }) => self.import_users(&file, !no_invite, sync).await,
            Command::Users(UsersCommand::Remove { email }) => {
                let mut conn = self.store.acquire().await?;
                if !store::directory::deactivate(&mut conn, &email).await? {
                    return Err(Failure::Other(format!(
                        "{email} is not an active person in the directory"
                    )));
                }
                eprintln!("deactivated {email}; their tickets stay");
                Ok(ExitCode::SUCCESS)
            }
            Command::Users(UsersCommand::Invite { emails }) => self.invite(&emails).await,
            Command::Ingest { json, files, .. } => self.ingest(&files, json).await,
            Command::Ticket(command) => self.ticket(command).await,
            Command::Suspended(command) => self.suspended(command).await,
            Command::Outbox(OutboxCommand::List { json }) => self.outbox_list(json).await,
            Command::Outbox(OutboxCommand::Flush { json }) => self.outbox_flush(json).await,
            Command::Tick { json } => self.tick(json).await,
            Command::Db(DbCommand::Copy { to }) => {
                let counts = store::copy::copy(&self.store, &to)
                    .await
                    .map_err(|e| Failure::Other(format!("db copy: {e}")))?;
                for (table, rows) in &counts {
                    println!("{table}: {rows} rows");
                }
                eprintln!(
                    "copied {} tables into {to}; the row counts match",
                    counts.len()
                );
                Ok(ExitCode::SUCCESS)
            }
            Command::Run => {
                crate::daemon::run(self.settings.clone(), self.store.clone(), self.clock)
                    .await
                    .map_err(Failure::Usage)?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Serve => {
                if matches!(self.clock, Clock::Fixed(_)) {
                    tracing::warn!("serve runs on the real clock; --now is not used");
                }
                crate::daemon::serve(self.settings.clone(), self.store.clone(), Clock::System)
                    .await
                    .map_err(Failure::Usage)?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Init { .. }
            | Command::Extract { .. }
            | Command::Demo { .. }
            | Command::Completions { .. }
            | Command::Man
            | Command::Check { .. } => {
                unreachable!("handled before loading the config")
            }
        }
    }

    async fn import_users(&self, file: &Path, invite: bool, sync: bool) -> CliResult {
        let data = std::fs::read(file)
            .map_err(|e| Failure::Other(format!("cannot read {}: {e}", file.display())))?;
        let entries = crate::directory::parse(&data).map_err(|e| {
            Failure::Other(format!("{}: {e}; nothing was imported", file.display()))
        })?;
        let new = crate::directory::import(&self.store, &entries).await?;
        eprintln!("imported {} people from {}", entries.len(), file.display());
        if sync {
            let listed: std::collections::BTreeSet<String> =
                entries.iter().map(|e| normalize_email(&e.email)).collect();
            let mut tx = self.store.begin().await?;
            let mut gone = 0;
            for email in store::directory::active_emails(&mut tx).await? {
                if !listed.contains(&email) {
                    store::directory::deactivate(&mut tx, &email).await?;
                    eprintln!("deactivated {email} (not in {})", file.display());
                    gone += 1;
                }
            }
            tx.commit().await?;
            eprintln!("{gone} people deactivated; their tickets stay");
        }
        if invite {
            let customers: Vec<_> = new.into_iter().filter(|p| p.role != Role::Agent).collect();
            let queued = crate::accounts::invite(
                &self.store,
                &self.settings.policy(),
                &customers,
                self.clock.now(),
            )
            .await?;
            eprintln!("queued {queued} invitation(s) to the help center");
        }
        Ok(ExitCode::SUCCESS)
    }

    async fn invite(&self, emails: &[String]) -> CliResult {
        let mut conn = self.store.acquire().await?;
        let people = if emails.is_empty() {
            store::accounts::people_without_password(&mut conn).await?
        } else {
            let mut people = Vec::new();
            for email in emails {
                let person = store::directory::person_by_email(&mut conn, email)
                    .await?
                    .ok_or_else(|| Failure::Other(format!("{email} is not in the directory")))?;
                people.push(person);
            }
            people
        };
        drop(conn);
        let queued = crate::accounts::invite(
            &self.store,
            &self.settings.policy(),
            &people,
            self.clock.now(),
        )
        .await?;
        eprintln!("queued {queued} invitation(s) to the help center");
        Ok(ExitCode::SUCCESS)
    }

    async fn ingest(&self, files: &[PathBuf], json: bool) -> CliResult {
        let pipeline = Pipeline::new(&self.settings);
        self.import_blob_files().await?;
        // A counter on the terminal only while the per-message lines go
        // elsewhere (a file, a pipe): on one screen they would run together.
        let show_progress = std::io::stderr().is_terminal()
            && !std::io::stdout().is_terminal()
            && (files.len() > 1 || files.iter().any(|f| f.is_dir()));
        let limits = &self.settings.limits;
        let mut out = IngestOutput {
            json,
            summary: Summary::default(),
        };
        let mut batches = IngestBatches {
            overlapped: Overlapped::new(&pipeline),
            names: VecDeque::new(),
        };
        let mut unreadable = 0usize;
        let mut batch: Vec<(PathBuf, Vec<u8>)> = Vec::new();
        let mut batch_bytes = 0usize;

        let messages = files
            .iter()
            .flat_map(|input| crate::inbound::files::messages(input, limits));
        for (done, (file, read)) in messages.enumerate() {
            match read {
                Ok(Incoming::Whole(raw)) => {
                    batch_bytes += raw.len();
                    batch.push((file, raw));
                    if batch.len() >= INGEST_BATCH || batch_bytes >= INGEST_BATCH_BYTES {
                        self.ingest_batch(&mut batches, &mut batch, &mut out)
                            .await?;
                        batch_bytes = 0;
                    }
                }
                Ok(Incoming::TooLarge { headers, size }) => {
                    // In order: what was read before it goes first.
                    self.ingest_batch(&mut batches, &mut batch, &mut out)
                        .await?;
                    self.ingest_finish(&mut batches, &mut out).await?;
                    batch_bytes = 0;
                    let report = pipeline
                        .suspend_oversized(&self.store, &headers, size, self.clock.now())
                        .await?;
                    out.emit(&file, &report)?;
                }
                Err(e) => {
                    eprintln!("ticketgate: cannot read {}: {e}", file.display());
                    unreadable += 1;
                }
            }
            if show_progress && (done + 1) % INGEST_BATCH == 0 {
                eprint!("\r{} messages", done + 1);
            }
        }
        self.ingest_batch(&mut batches, &mut batch, &mut out)
            .await?;
        self.ingest_finish(&mut batches, &mut out).await?;
        if show_progress {
            eprintln!();
        }
        eprintln!("{}", out.summary.line());
        Ok(if unreadable > 0 {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        })
    }

    /// Hands the messages read so far in as one batch (one transaction);
    /// prints the lines of the batch before it, committed meanwhile.
    async fn ingest_batch(
        &self,
        batches: &mut IngestBatches,
        batch: &mut Vec<(PathBuf, Vec<u8>)>,
        out: &mut IngestOutput,
    ) -> Result<(), Failure> {
        if batch.is_empty() {
            return Ok(());
        }
        let (names, raws): (Vec<PathBuf>, Vec<Vec<u8>>) = std::mem::take(batch).into_iter().unzip();
        batches.names.push_back(names);
        let reports = batches
            .overlapped
            .push(&self.store, raws, self.clock.now())
            .await?;
        if !reports.is_empty() {
            let names = batches.names.pop_front().unwrap_or_default();
            for (report, name) in reports.iter().zip(names) {
                out.emit(&name, report)?;
            }
        }
        Ok(())
    }

    /// Commits the batch handed in last and prints its lines.
    async fn ingest_finish(
        &self,
        batches: &mut IngestBatches,
        out: &mut IngestOutput,
    ) -> Result<(), Failure> {
        let reports = batches
            .overlapped
            .finish(&self.store, self.clock.now())
            .await?;
        if let Some(names) = batches.names.pop_front() {
            for (report, name) in reports.iter().zip(names) {
                out.emit(&name, report)?;
            }
        }
        Ok(())
    }

    async fn ticket(&self, command: TicketCommand) -> CliResult {
        let mut conn = self.store.acquire().await?;
        match command {
            TicketCommand::Show { id, json } => {
                let view = store::tickets::view(&mut conn, id)
                    .await?
                    .ok_or_else(|| Failure::Other(format!("ticket #{id} does not exist")))?;
                if json {
                    print_json(&view)?;
                } else {
                    println!(
                        "#{} {} [{}; {}; {}]",
                        view.id, view.subject, view.status, view.category, view.priority
                    );
                    println!("{} / {}", view.organization, view.requester);
                    for comment in &view.comments {
                        let visibility = if comment.public { "" } else { " (internal)" };
                        println!("\n--- {}{visibility}\n{}", comment.author, comment.body);
                    }
                }
            }
            TicketCommand::List {
                json,
                org,
                requester,
                status,
            } => {
                let status = match &status {
                    Some(status) => Some(status.parse::<Status>().map_err(|_| {
                        Failure::Usage(format!(
                            "--status {status:?} is not one of open, pending, solved, closed"
                        ))
                    })?),
                    None => None,
                };
                let filter = store::tickets::ListFilter {
                    organization: org,
                    requester,
                    status,
                };
                for ticket in store::tickets::list_tickets(&mut conn, &filter).await? {
                    if json {
                        print_json(&ticket)?;
                    } else {
                        println!(
                            "#{}\t{}\t{}\t{}\t{}",
                            ticket.id,
                            ticket.status,
                            ticket.organization,
                            ticket.requester,
                            ticket.subject
                        );
                    }
                }
            }
            TicketCommand::Reply(args) => {
                drop(conn);
                return self.reply(args).await;
            }
            TicketCommand::Solve { id, json } => {
                drop(conn);
                return self.solve(id, json).await;
            }
            TicketCommand::Unfollow { id, email } => {
                if !store::tickets::unfollow(&mut conn, id, &email).await? {
                    return Err(Failure::Other(format!(
                        "{email} does not follow ticket #{id}"
                    )));
                }
                eprintln!("{email} no longer follows #{id}");
            }
        }
        Ok(ExitCode::SUCCESS)
    }

    async fn reply(&self, args: ReplyArgs) -> CliResult {
        let body = match (&args.body, &args.body_file) {
            (Some(body), _) => body.clone(),
            (None, Some(path)) if path.as_os_str() == "-" => {
                let mut body = String::new();
                std::io::stdin().read_to_string(&mut body).map_err(|e| {
                    Failure::Other(format!("cannot read the answer from stdin: {e}"))
                })?;
                body
            }
            (None, Some(path)) => std::fs::read_to_string(path).map_err(|e| {
                Failure::Other(format!("cannot read --body-file {}: {e}", path.display()))
            })?,
            (None, None) => unreachable!("clap requires --body or --body-file"),
        };
        let now = self.clock.now();
        let acts = Acts::new(&self.settings);
        let agent = normalize_email(&args.agent);
        let mut wanted = Wanted::default();
        wanted.emails.insert(agent.clone());
        wanted.tickets.insert(args.id);
        let commands = AgentCommands {
            status: args.solve.then_some(Status::Solved),
            internal: args.internal,
            urgent: false,
        };
        let decision = acts
            .run(&self.store, wanted, now, |world, policy| {
                let author = world
                    .person(&agent)
                    .filter(|p| p.role == Role::Agent)
                    .cloned()
                    .ok_or_else(|| Refusal::NotAllowed(agent.clone()))?;
                let answer = Contribution {
                    author,
                    subject: String::new(),
                    body: body.clone(),
                    full_text: body.clone(),
                    attachments: Vec::new(),
                    message_id: None,
                    category: None,
                    urgent: false,
                    cc: Vec::new(),
                };
                agent_comment(world, policy, answer, args.id, &commands, now)
            })
            .await?
            .map_err(|refusal| match refusal {
                Refusal::NotAllowed(who) => {
                    Failure::Other(format!("{who} is not an agent in the directory"))
                }
                other => Failure::Other(other.to_string()),
            })?;
        self.print_ticket_state(&decision, args.json)
    }

    async fn solve(&self, id: i64, json: bool) -> CliResult {
        let now = self.clock.now();
        let acts = Acts::new(&self.settings);
        let mut wanted = Wanted::default();
        wanted.tickets.insert(id);
        let decision = acts
            .run(&self.store, wanted, now, |world, policy| {
                crate::domain::decide::solve(world, policy, id, now)
            })
            .await?
            .map_err(|refusal| Failure::Other(refusal.to_string()))?;
        self.print_ticket_state(&decision, json)
    }

    fn print_ticket_state(&self, decision: &Decision, json: bool) -> CliResult {
        let Some((id, status)) = decision.ticket else {
            return Ok(ExitCode::SUCCESS);
        };
        if json {
            print_json(&serde_json::json!({ "ticket": id, "status": status }))?;
        } else {
            println!("#{id} {status}");
        }
        Ok(ExitCode::SUCCESS)
    }

    /// Attachment files of versions before blobs-in-the-database, and
    /// temporary files killed writers left, go at the first start.
    async fn import_blob_files(&self) -> Result<(), Failure> {
        let dir = self.settings.storage.data_dir.join("attachments");
        let (moved, removed) = store::blobs::import_files(&self.store, &dir).await?;
        if moved + removed > 0 {
            tracing::info!(
                "moved {moved} attachment file(s) into the database, removed {removed} temporary file(s) of an interrupted run"
            );
        }
        Ok(())
    }

    async fn suspended(&self, command: SuspendedCommand) -> CliResult {
        match command {
            SuspendedCommand::List { json } => {
                let mut conn = self.store.acquire().await?;
                for item in store::suspended::list(&mut conn).await? {
                    if json {
                        print_json(&item)?;
                    } else {
                        println!(
                            "{}\t{}\t{}\t{}",
                            item.id,
                            item.reason,
                            item.from.as_deref().unwrap_or("-"),
                            item.subject
                        );
                    }
                }
            }
            SuspendedCommand::Release { id, json } => {
                let pipeline = Pipeline::new(&self.settings);
                let mut tx = self.store.begin().await?;
                let raw = store::suspended::raw(&mut tx, id)
                    .await?
                    .ok_or_else(|| Failure::Other(format!("no suspended message {id}")))?;
                store::suspended::delete(&mut tx, id).await?;
                let report = pipeline
                    .process_one(&mut tx, self.store.backend, &raw, self.clock.now())
                    .await?;
                tx.commit().await?;
                if json {
                    print_json(&report)?;
                } else {
                    println!("{}", describe(&report));
                }
            }
            SuspendedCommand::Show { id } => {
                let mut conn = self.store.acquire().await?;
                let entry = store::suspended::list(&mut conn)
                    .await?
                    .into_iter()
                    .find(|e| e.id == id)
                    .ok_or_else(|| Failure::Other(format!("no suspended message {id}")))?;
                let raw = store::suspended::raw(&mut conn, id)
                    .await?
                    .unwrap_or_default();
                print!("{}", show_suspended(&entry, &raw));
            }
            SuspendedCommand::Delete { id } => {
                let mut conn = self.store.acquire().await?;
                if !store::suspended::delete(&mut conn, id).await? {
                    return Err(Failure::Other(format!("no suspended message {id}")));
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    }

    async fn outbox_list(&self, json: bool) -> CliResult {
        let mut conn = self.store.acquire().await?;
        for row in store::outbox::list(&mut conn).await? {
            if json {
                print_json(&row)?;
            } else {
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    row.id,
                    row.state,
                    row.event,
                    row.to.0.join(","),
                    row.subject
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    }

    async fn outbox_flush(&self, json: bool) -> CliResult {
        let deliverer = Deliverer::new(&self.settings).map_err(Failure::Usage)?;
        let report = deliverer
            .flush(&self.store, self.clock.now(), Scope::All)
            .await?;
        if json {
            print_json(&report)?;
        } else {
            eprintln!(
                "sent {}, retrying {}, failed {}, suppressed {}",
                report.sent, report.retrying, report.failed, report.suppressed
            );
        }
        Ok(ExitCode::SUCCESS)
    }

    /// The scheduler's jobs, once: auto-close, then retries of deliveries
    /// that failed before and are due again.
    async fn tick(&self, json: bool) -> CliResult {
        let now = self.clock.now();
        let deliverer = Deliverer::new(&self.settings).map_err(Failure::Usage)?;
        let closed =
            crate::scheduler::close_solved(&self.store, self.settings.policy.reopen_days, now)
                .await?;
        let retries = deliverer.flush(&self.store, now, Scope::Retries).await?;
        if json {
            print_json(&serde_json::json!({ "job": "auto_close", "closed": closed }))?;
            print_json(&serde_json::json!({ "job": "outbox_retries", "delivery": retries }))?;
        } else {
            eprintln!(
                "closed {} ticket(s); retried deliveries: sent {}, failed {}",
                closed.len(),
                retries.sent,
                retries.failed
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// Where `ingest` writes its lines, and what it counts.
struct IngestOutput {
    json: bool,
    summary: Summary,
}

impl IngestOutput {
    fn emit(&mut self, name: &Path, report: &Report) -> Result<(), Failure> {
        self.summary.add(report);
        if self.json {
            print_json(report)
        } else {
            println!("{}: {}", name.display(), describe(report));
            Ok(())
        }
    }
}

/// A held message for an operator to judge: why, who, what it says.
fn show_suspended(entry: &store::suspended::SuspendedView, raw: &[u8]) -> String {
    let mut out = format!("id:         {}\nreason:     {}\n", entry.id, entry.reason);
    if let Some(detail) = &entry.detail {
        out.push_str(&format!("detail:     {detail}\n"));
    }
    out.push_str(&format!("message-id: {}\n", entry.message_id));
    out.push_str(&format!("size:       {} bytes\n\n", raw.len()));
    let header_end = crate::inbound::parse::header_end(raw).unwrap_or(raw.len());
    out.push_str(&String::from_utf8_lossy(&raw[..header_end]).replace("\r\n", "\n"));
    out.push('\n');
    let limits = crate::config::LimitsSettings::default();
    match crate::inbound::parse::parse(raw, &limits) {
        Some(mail) => {
            let text = mail.text.clone().or_else(|| {
                mail.html
                    .as_deref()
                    .map(|h| crate::reply::extract_html(h, limits.max_html_elements).full_text)
            });
            out.push_str(text.as_deref().unwrap_or("(no text)").trim_end());
            out.push('\n');
            for attachment in &mail.attachments {
                out.push_str(&format!(
                    "[attachment: {} ({}, {} bytes)]\n",
                    attachment.filename,
                    attachment.content_type,
                    attachment.data.len()
                ));
            }
        }
        None => out.push_str("(not a message that can be parsed)\n"),
    }
    out
}

fn describe(report: &Report) -> String {
    let mut text = report.outcome.as_str().to_string();
    if let Some(ticket) = report.ticket {
        text.push_str(&format!(" #{ticket}"));
    }
    if let Some(status) = report.status {
        text.push_str(&format!(" ({status})"));
    }
    if let Some(reason) = report.reason {
        text.push_str(&format!(": {}", reason.as_str()));
    }
    text
}

/// Messages by outcome, for the end of an `ingest`.
#[derive(Default)]
struct Summary {
    counts: std::collections::BTreeMap<&'static str, usize>,
    total: usize,
}

impl Summary {
    fn add(&mut self, report: &Report) {
        *self.counts.entry(report.outcome.as_str()).or_default() += 1;
        self.total += 1;
    }

    fn line(&self) -> String {
        let parts: Vec<String> = self
            .counts
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        format!("{} message(s): {}", self.total, parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every subcommand says what it does and every flag and argument what
    /// it is: `--help`, the man page and the completions are made of these.
    #[test]
    fn every_command_and_flag_has_help() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let builtin = matches!(arg.get_id().as_str(), "help" | "version");
                if !builtin && arg.get_help().is_none() {
                    missing.push(format!("{path} {}", arg.get_id()));
                }
            }
            for sub in command.get_subcommands() {
                let name = format!("{path} {}", sub.get_name());
                if sub.get_name() != "help" && sub.get_about().is_none() {
                    missing.push(name.clone());
                }
                walk(sub, &name, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "ticketgate", &mut missing);
        assert!(missing.is_empty(), "without help: {missing:?}");
        Cli::command().debug_assert();
    }
}
