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

#[derive(Parser, Debug)]
#[command(
    name = "ticketgate",
    version,
    about = "Email-first support ticket gateway"
)]
pub struct Cli {
    /// Configuration file.
    #[arg(long, global = true, default_value = "ticketgate.toml")]
    config: PathBuf,
    /// Evaluate every time-based rule as of this RFC 3339 instant.
    #[arg(long, global = true)]
    now: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write a commented sample config (unless one exists) and create the database.
    Init,
    /// The customer directory.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Run the pipeline on each message file (`-` for stdin).
    Ingest {
        #[arg(long)]
        json: bool,
        /// For MTA pipe delivery: exit 75 (EX_TEMPFAIL) when a message
        /// could not be committed, so the MTA keeps it queued and retries.
        #[arg(long)]
        mta: bool,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    #[command(subcommand)]
    Ticket(TicketCommand),
    /// The queue of messages that were not accepted.
    #[command(subcommand)]
    Suspended(SuspendedCommand),
    #[command(subcommand)]
    Outbox(OutboxCommand),
    /// Run due scheduler jobs once (auto-close solved tickets).
    Tick {
        #[arg(long)]
        json: bool,
    },
    /// Reply extraction alone: a body on stdin, the kept text on stdout.
    Extract {
        /// The body is HTML.
        #[arg(long)]
        html: bool,
    },
    /// The daemon: IMAP poller, outbox worker, scheduler, metrics, and the
    /// help center when `[web] listen` is set.
    Run,
    /// The help center alone (`[web] listen`), on the real clock: for extra
    /// web instances beside the daemon.
    Serve,
    /// A first look: a demo directory with sample config, users and mails,
    /// ingested, and the help center served with a printed login.
    Demo {
        /// Where the demo's config, database and mails go.
        #[arg(long, default_value = "ticketgate-demo")]
        dir: PathBuf,
        /// The help center's address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
    },
    /// Checks the configuration, the templates and the connections to the
    /// database, IMAP and SMTP, and says what is wrong.
    Check,
}

#[derive(Subcommand, Debug)]
enum UsersCommand {
    /// Load or update the directory from CSV (organization,email,name,role,locale);
    /// new key users and members get an invitation to the help center.
    Import {
        file: PathBuf,
        /// Send no invitations.
        #[arg(long)]
        no_invite: bool,
    },
    /// Queue invitation mails with a fresh activation link (to everyone
    /// without a password when no address is given).
    Invite { emails: Vec<String> },
}

#[derive(Subcommand, Debug)]
enum TicketCommand {
    Show {
        id: i64,
        #[arg(long)]
        json: bool,
    },
    List {
        #[arg(long)]
        json: bool,
        #[arg(long)]
        org: Option<String>,
        #[arg(long)]
        requester: Option<String>,
        #[arg(long)]
        status: Option<String>,
    },
    /// An agent's answer.
    Reply(ReplyArgs),
    Solve {
        id: i64,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
struct ReplyArgs {
    id: i64,
    #[arg(long)]
    agent: String,
    #[arg(long)]
    body: String,
    #[arg(long)]
    solve: bool,
    #[arg(long)]
    internal: bool,
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand, Debug)]
enum SuspendedCommand {
    List {
        #[arg(long)]
        json: bool,
    },
    /// Run the kept message through the pipeline again.
    Release {
        id: i64,
        #[arg(long)]
        json: bool,
    },
    Delete {
        id: i64,
    },
}

#[derive(Subcommand, Debug)]
enum OutboxCommand {
    List {
        #[arg(long)]
        json: bool,
    },
    /// Deliver queued mail now.
    Flush {
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

/// Batches of `ingest` in flight, with the file names of each.
struct IngestBatches<'a> {
    overlapped: Overlapped,
    names: VecDeque<Vec<&'a Path>>,
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
        Command::Init => {
            init_logging("warn", false);
            init(&cli.config).await
        }
        command => {
            let settings = Settings::load(&cli.config).map_err(|e| {
                init_logging("warn", false);
                Failure::Usage(e.to_string())
            })?;
            let daemon = matches!(command, Command::Run | Command::Serve);
            let json_logs = settings.daemon.log_format.as_deref() == Some("json");
            init_logging(if daemon { "info" } else { "warn" }, daemon && json_logs);
            let store = Store::open(&settings.database.url).await.map_err(|e| {
                Failure::Other(format!(
                    "cannot open the database {}: {e}",
                    settings.database.url
                ))
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
        std::fs::write(config, SAMPLE)
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
            Command::Users(UsersCommand::Import { file, no_invite }) => {
                self.import_users(&file, !no_invite).await
            }
            Command::Users(UsersCommand::Invite { emails }) => self.invite(&emails).await,
            Command::Ingest { json, files, .. } => self.ingest(&files, json).await,
            Command::Ticket(command) => self.ticket(command).await,
            Command::Suspended(command) => self.suspended(command).await,
            Command::Outbox(OutboxCommand::List { json }) => self.outbox_list(json).await,
            Command::Outbox(OutboxCommand::Flush { json }) => self.outbox_flush(json).await,
            Command::Tick { json } => self.tick(json).await,
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
            Command::Check => self.check().await,
            Command::Init | Command::Extract { .. } | Command::Demo { .. } => {
                unreachable!("handled before loading the config")
            }
        }
    }

    async fn import_users(&self, file: &Path, invite: bool) -> CliResult {
        let data = std::fs::read(file)
            .map_err(|e| Failure::Usage(format!("cannot read {}: {e}", file.display())))?;
        let entries = crate::directory::parse(&data).map_err(|e| {
            Failure::Other(format!("{}: {e}; nothing was imported", file.display()))
        })?;
        let new = crate::directory::import(&self.store, &entries).await?;
        eprintln!("imported {} people from {}", entries.len(), file.display());
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
        let show_progress = std::io::stderr().is_terminal() && files.len() > 1;
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
        let mut batch: Vec<(&Path, Vec<u8>)> = Vec::new();
        let mut batch_bytes = 0usize;

        for (done, file) in files.iter().enumerate() {
            match crate::inbound::files::read(file, limits) {
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
                    out.emit(file, &report)?;
                }
                Err(e) => {
                    eprintln!("ticketgate: cannot read {}: {e}", file.display());
                    unreadable += 1;
                }
            }
            if show_progress && (done + 1) % INGEST_BATCH == 0 {
                eprint!("\r{}/{} messages", done + 1, files.len());
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
    async fn ingest_batch<'a>(
        &self,
        batches: &mut IngestBatches<'a>,
        batch: &mut Vec<(&'a Path, Vec<u8>)>,
        out: &mut IngestOutput,
    ) -> Result<(), Failure> {
        if batch.is_empty() {
            return Ok(());
        }
        let (names, raws): (Vec<&Path>, Vec<Vec<u8>>) = std::mem::take(batch).into_iter().unzip();
        batches.names.push_back(names);
        let reports = batches
            .overlapped
            .push(&self.store, raws, self.clock.now())
            .await?;
        if !reports.is_empty() {
            let names = batches.names.pop_front().unwrap_or_default();
            for (report, name) in reports.iter().zip(names) {
                out.emit(name, report)?;
            }
        }
        Ok(())
    }

    /// Commits the batch handed in last and prints its lines.
    async fn ingest_finish(
        &self,
        batches: &mut IngestBatches<'_>,
        out: &mut IngestOutput,
    ) -> Result<(), Failure> {
        let reports = batches
            .overlapped
            .finish(&self.store, self.clock.now())
            .await?;
        if let Some(names) = batches.names.pop_front() {
            for (report, name) in reports.iter().zip(names) {
                out.emit(name, report)?;
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
        }
        Ok(ExitCode::SUCCESS)
    }

    async fn reply(&self, args: ReplyArgs) -> CliResult {
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
                    body: args.body.clone(),
                    full_text: args.body.clone(),
                    attachments: Vec::new(),
                    message_id: None,
                    category: None,
                    urgent: false,
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

    async fn check(&self) -> CliResult {
        let mut failed = false;
        let mut report = |what: &str, result: Result<String, String>| match result {
            Ok(detail) => println!("ok    {what}: {detail}"),
            Err(reason) => {
                failed = true;
                println!("FAIL  {what}: {reason}");
            }
        };
        report("config", Ok(self.settings.config_dir.display().to_string()));
        report("database", Ok(self.settings.database.url.clone()));
        let templates =
            Deliverer::new(&self.settings).map(|_| "all compile and render".to_string());
        report("templates", templates);
        match &self.settings.imap {
            Some(imap) => {
                let connector = crate::inbound::imap::NetConnector::new(imap);
                for (what, result) in crate::inbound::poller::check(&connector, imap).await {
                    report(&what, result);
                }
            }
            None => report("imap", Ok("not configured (ingest only)".into())),
        }
        let result = match crate::outbound::transport::Outbound::from_settings(&self.settings) {
            Ok(transport) => transport.check().await,
            Err(e) => Err(e),
        };
        report(
            &format!("outbound ({})", self.settings.outbound.transport),
            result,
        );
        Ok(if failed {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        })
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
