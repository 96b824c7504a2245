//! A scripted IMAP server over in-memory pipes, for the protocol edge cases
//! a real Dovecot will not produce on demand: `BODY[] NIL`, a FETCH that
//! fails or drops the connection, a server that stalls, no MOVE/UIDPLUS, a
//! refused CREATE. It speaks just the IMAP4rev1 subset ticketgate uses,
//! with mailboxes in memory, and records every command it receives.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::Notify;

use ticketgate::inbound::imap::{Connector, ImapError, Io};

#[derive(Default, Clone)]
pub struct Faults {
    /// UIDs (of INBOX) whose FETCH gives `BODY[] NIL`.
    pub nil_body: HashSet<u32>,
    /// UIDs whose BODY[] FETCH is answered `NO`.
    pub fail_fetch: HashSet<u32>,
    /// UIDs whose FETCH (body or header) makes the server hang up.
    pub drop_on_fetch: HashSet<u32>,
    /// Commands (`FETCH`, `SELECT`, `GREETING`…) the server never answers.
    pub stall_on: HashSet<String>,
    /// CREATE is answered NO with this text.
    pub refuse_create: Option<String>,
    pub refuse_login: bool,
    /// No `\*` in PERMANENTFLAGS: keywords are not kept.
    pub no_keywords: bool,
}

pub struct Message {
    pub uid: u32,
    pub flags: BTreeSet<String>,
    pub raw: Vec<u8>,
}

#[derive(Default)]
pub struct Folder {
    pub messages: Vec<Message>,
    pub next_uid: u32,
}

pub struct State {
    pub capabilities: Vec<&'static str>,
    /// By the name on the wire (modified UTF-7).
    pub folders: BTreeMap<String, Folder>,
    pub delimiter: char,
    pub uid_validity: u32,
    pub faults: Faults,
    /// Every command line received, without its tag.
    pub log: Vec<String>,
    pub connections: usize,
}

#[derive(Clone)]
pub struct FakeImap {
    pub state: Arc<Mutex<State>>,
    arrived: Arc<Notify>,
}

pub const FULL: &[&str] = &["IMAP4rev1", "IDLE", "MOVE", "UIDPLUS", "LITERAL+"];
pub const BASIC: &[&str] = &["IMAP4rev1", "IDLE", "LITERAL+"];

impl FakeImap {
    pub fn new(capabilities: &[&'static str]) -> FakeImap {
        let mut folders = BTreeMap::new();
        folders.insert(
            "INBOX".to_string(),
            Folder {
                next_uid: 1,
                ..Default::default()
            },
        );
        FakeImap {
            state: Arc::new(Mutex::new(State {
                capabilities: capabilities.to_vec(),
                folders,
                delimiter: '.',
                uid_validity: 1_700_000_000,
                faults: Faults::default(),
                log: Vec::new(),
                connections: 0,
            })),
            arrived: Arc::new(Notify::new()),
        }
    }

    pub fn faults(&self, change: impl FnOnce(&mut Faults)) {
        change(&mut self.state.lock().unwrap().faults);
    }

    /// Delivers a message into `folder` (created if needed); returns its UID.
    pub fn append(&self, folder: &str, raw: &[u8], flags: &[&str]) -> u32 {
        let uid = {
            let mut state = self.state.lock().unwrap();
            let folder = state.folders.entry(folder.to_string()).or_default();
            folder.next_uid = folder.next_uid.max(1);
            let uid = folder.next_uid;
            folder.next_uid += 1;
            folder.messages.push(Message {
                uid,
                flags: flags.iter().map(|f| f.to_string()).collect(),
                raw: raw.to_vec(),
            });
            uid
        };
        self.arrived.notify_waiters();
        uid
    }

    pub fn uids(&self, folder: &str) -> Vec<u32> {
        let state = self.state.lock().unwrap();
        state
            .folders
            .get(folder)
            .map(|f| f.messages.iter().map(|m| m.uid).collect())
            .unwrap_or_default()
    }

    pub fn count(&self, folder: &str) -> usize {
        self.uids(folder).len()
    }

    pub fn log(&self) -> Vec<String> {
        self.state.lock().unwrap().log.clone()
    }

    pub fn connections(&self) -> usize {
        self.state.lock().unwrap().connections
    }

    pub fn connector(&self) -> FakeConnector {
        FakeConnector(self.clone())
    }
}

pub struct FakeConnector(FakeImap);

impl Connector for FakeConnector {
    async fn connect(&self) -> Result<Box<dyn Io>, ImapError> {
        let (client, server) = tokio::io::duplex(1 << 20);
        let fake = self.0.clone();
        fake.state.lock().unwrap().connections += 1;
        tokio::spawn(async move {
            let _ = serve(fake, server).await;
        });
        Ok(Box::new(client))
    }
}

fn stalls(fake: &FakeImap, command: &str) -> bool {
    fake.state.lock().unwrap().faults.stall_on.contains(command)
}

async fn serve(fake: FakeImap, stream: tokio::io::DuplexStream) -> std::io::Result<()> {
    let (read, mut write) = tokio::io::split(stream);
    let mut lines = BufReader::new(read).lines();
    if stalls(&fake, "GREETING") {
        std::future::pending::<()>().await;
    }
    write.write_all(b"* OK fake IMAP ready\r\n").await?;
    let mut selected: Option<String> = None;
    while let Some(line) = lines.next_line().await? {
        let (tag, command) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        let (tag, command) = (tag.to_string(), command.to_string());
        fake.state.lock().unwrap().log.push(command.clone());
        let words = tokens(&command);
        let mut name = words
            .first()
            .cloned()
            .unwrap_or_default()
            .to_ascii_uppercase();
        let mut args = &words[1.min(words.len())..];
        if name == "UID" && !args.is_empty() {
            name = args[0].to_ascii_uppercase();
            args = &args[1..];
        }
        if stalls(&fake, &name) {
            std::future::pending::<()>().await;
        }
        let reply = match name.as_str() {
            "CAPABILITY" => {
                let caps = fake.state.lock().unwrap().capabilities.join(" ");
                format!("* CAPABILITY {caps}\r\n{tag} OK done\r\n")
            }
            "LOGIN" | "AUTHENTICATE" => {
                if fake.state.lock().unwrap().faults.refuse_login {
                    format!("{tag} NO [AUTHENTICATIONFAILED] Authentication failed.\r\n")
                } else {
                    format!("{tag} OK Logged in\r\n")
                }
            }
            "NOOP" => format!("{tag} OK NOOP completed\r\n"),
            "LOGOUT" => {
                write
                    .write_all(
                        format!("* BYE Logging out\r\n{tag} OK Logout completed\r\n").as_bytes(),
                    )
                    .await?;
                return Ok(());
            }
            "SELECT" | "EXAMINE" => {
                let folder = unquote(&args[0]);
                let state = fake.state.lock().unwrap();
                match state.folders.get(&folder) {
                    Some(f) => {
                        selected = Some(folder.clone());
                        let star = if state.faults.no_keywords { "" } else { " \\*" };
                        format!(
                            "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n\
                             * OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft{star})] Flags permitted\r\n\
                             * {} EXISTS\r\n* 0 RECENT\r\n\
                             * OK [UIDVALIDITY {}] UIDs valid\r\n* OK [UIDNEXT {}] Predicted next UID\r\n\
                             {tag} OK [READ-WRITE] Select completed\r\n",
                            f.messages.len(),
                            state.uid_validity,
                            f.next_uid.max(1)
                        )
                    }
                    None => {
                        selected = None;
                        format!("{tag} NO [NONEXISTENT] Mailbox doesn't exist: {folder}\r\n")
                    }
                }
            }
            "LIST" => {
                let pattern = unquote(args.get(1).map(String::as_str).unwrap_or(""));
                let state = fake.state.lock().unwrap();
                let d = state.delimiter;
                let mut out = String::new();
                if pattern.is_empty() {
                    out.push_str(&format!("* LIST (\\Noselect) \"{d}\" \"\"\r\n"));
                } else if state.folders.contains_key(&pattern) {
                    out.push_str(&format!(
                        "* LIST (\\HasNoChildren) \"{d}\" \"{pattern}\"\r\n"
                    ));
                }
                out.push_str(&format!("{tag} OK List completed\r\n"));
                out
            }
            "CREATE" => {
                let folder = unquote(&args[0]);
                let mut state = fake.state.lock().unwrap();
                if let Some(text) = state.faults.refuse_create.clone() {
                    format!("{tag} NO [CANNOT] {text}\r\n")
                } else {
                    match state.folders.entry(folder) {
                        std::collections::btree_map::Entry::Occupied(_) => {
                            format!("{tag} NO [ALREADYEXISTS] Mailbox already exists\r\n")
                        }
                        std::collections::btree_map::Entry::Vacant(slot) => {
                            slot.insert(Folder {
                                next_uid: 1,
                                ..Default::default()
                            });
                            format!("{tag} OK Create completed\r\n")
                        }
                    }
                }
            }
            "STATUS" => {
                let folder = unquote(&args[0]);
                let state = fake.state.lock().unwrap();
                if state.folders.contains_key(&folder) {
                    format!(
                        "* STATUS \"{folder}\" (UIDVALIDITY {})\r\n{tag} OK Status completed\r\n",
                        state.uid_validity
                    )
                } else {
                    format!("{tag} NO [NONEXISTENT] Mailbox doesn't exist: {folder}\r\n")
                }
            }
            "SEARCH" => {
                let state = fake.state.lock().unwrap();
                let folder = &state.folders[selected.as_ref().expect("selected")];
                let found: Vec<String> = folder
                    .messages
                    .iter()
                    .filter(|m| matches_all(m, args, folder))
                    .map(|m| m.uid.to_string())
                    .collect();
                format!(
                    "* SEARCH {}\r\n{tag} OK Search completed\r\n",
                    found.join(" ")
                )
            }
            "FETCH" => {
                let items = command.to_ascii_uppercase();
                let body = items.contains("BODY.PEEK[]");
                let header = items.contains("BODY.PEEK[HEADER]");
                let mut out: Vec<u8> = Vec::new();
                let mut hang_up = false;
                let mut refuse = false;
                {
                    let state = fake.state.lock().unwrap();
                    let folder = &state.folders[selected.as_ref().expect("selected")];
                    for (i, m) in folder.messages.iter().enumerate() {
                        if !in_set(m.uid, &args[0], folder) {
                            continue;
                        }
                        if (body || header) && state.faults.drop_on_fetch.contains(&m.uid) {
                            hang_up = true;
                        }
                        if body && state.faults.fail_fetch.contains(&m.uid) {
                            refuse = true;
                        }
                        out.extend(format!("* {} FETCH (UID {}", i + 1, m.uid).as_bytes());
                        if items.contains("RFC822.SIZE") {
                            out.extend(format!(" RFC822.SIZE {}", m.raw.len()).as_bytes());
                        }
                        if items.contains("FLAGS") {
                            let flags: Vec<&str> = m.flags.iter().map(String::as_str).collect();
                            out.extend(format!(" FLAGS ({})", flags.join(" ")).as_bytes());
                        }
                        if body {
                            if state.faults.nil_body.contains(&m.uid) {
                                out.extend(b" BODY[] NIL");
                            } else {
                                out.extend(format!(" BODY[] {{{}}}\r\n", m.raw.len()).as_bytes());
                                out.extend(&m.raw);
                            }
                        }
                        if header {
                            let end = find(&m.raw, b"\r\n\r\n").map_or(m.raw.len(), |p| p + 4);
                            out.extend(format!(" BODY[HEADER] {{{end}}}\r\n").as_bytes());
                            out.extend(&m.raw[..end]);
                        }
                        out.extend(b")\r\n");
                    }
                }
                if hang_up {
                    write
                        .write_all(b"* BYE Internal error occurred\r\n")
                        .await?;
                    return Ok(());
                }
                if refuse {
                    format!("{tag} NO [SERVERBUG] Internal error occurred. Refer to server log for more information.\r\n")
                } else {
                    write.write_all(&out).await?;
                    format!("{tag} OK Fetch completed\r\n")
                }
            }
            "STORE" => {
                let add: Vec<String> = flag_list(&command);
                let mut state = fake.state.lock().unwrap();
                let current = selected.clone().expect("selected");
                let folder = state.folders.get_mut(&current).unwrap();
                let set = args[0].clone();
                let max = folder.messages.iter().map(|m| m.uid).max().unwrap_or(0);
                for m in folder.messages.iter_mut() {
                    if in_set_max(m.uid, &set, max) {
                        m.flags.extend(add.iter().cloned());
                    }
                }
                format!("{tag} OK Store completed\r\n")
            }
            "COPY" | "MOVE" => {
                let target = unquote(&args[1]);
                let mut state = fake.state.lock().unwrap();
                let current = selected.clone().expect("selected");
                if !state.folders.contains_key(&target) {
                    format!("{tag} NO [TRYCREATE] Mailbox doesn't exist: {target}\r\n")
                } else {
                    let source = &state.folders[&current];
                    let copies: Vec<(u32, BTreeSet<String>, Vec<u8>)> = source
                        .messages
                        .iter()
                        .filter(|m| in_set(m.uid, &args[0], source))
                        .map(|m| (m.uid, m.flags.clone(), m.raw.clone()))
                        .collect();
                    let dest = state.folders.get_mut(&target).unwrap();
                    for (_, flags, raw) in &copies {
                        dest.next_uid = dest.next_uid.max(1);
                        dest.messages.push(Message {
                            uid: dest.next_uid,
                            flags: flags.clone(),
                            raw: raw.clone(),
                        });
                        dest.next_uid += 1;
                    }
                    let mut out = String::new();
                    if name == "MOVE" {
                        let moved: HashSet<u32> = copies.iter().map(|c| c.0).collect();
                        out.push_str(&expunge(state.folders.get_mut(&current).unwrap(), |m| {
                            moved.contains(&m.uid)
                        }));
                    }
                    out.push_str(&format!("{tag} OK Done\r\n"));
                    out
                }
            }
            "EXPUNGE" => {
                let mut state = fake.state.lock().unwrap();
                let current = selected.clone().expect("selected");
                let folder = state.folders.get_mut(&current).unwrap();
                let out = if let Some(set) = args.first() {
                    let max = folder.messages.iter().map(|m| m.uid).max().unwrap_or(0);
                    let set = set.clone();
                    expunge(folder, |m| {
                        m.flags.contains("\\Deleted") && in_set_max(m.uid, &set, max)
                    })
                } else {
                    expunge(folder, |m| m.flags.contains("\\Deleted"))
                };
                format!("{out}{tag} OK Expunge completed\r\n")
            }
            "IDLE" => {
                write.write_all(b"+ idling\r\n").await?;
                let exists = |fake: &FakeImap| {
                    let state = fake.state.lock().unwrap();
                    state.folders[selected.as_ref().expect("selected")]
                        .messages
                        .len()
                };
                let before = exists(&fake);
                loop {
                    let arrived = fake.arrived.notified();
                    tokio::select! {
                        line = lines.next_line() => {
                            let line = line?.unwrap_or_default();
                            fake.state.lock().unwrap().log.push(line.clone());
                            break;
                        }
                        _ = arrived => {
                            let now = exists(&fake);
                            if now != before {
                                write.write_all(format!("* {now} EXISTS\r\n").as_bytes()).await?;
                            }
                        }
                    }
                }
                format!("{tag} OK Idle completed\r\n")
            }
            _ => format!("{tag} BAD unknown command\r\n"),
        };
        write.write_all(reply.as_bytes()).await?;
    }
    Ok(())
}

/// Removes matching messages; the untagged EXPUNGE lines, by sequence number.
fn expunge(folder: &mut Folder, remove: impl Fn(&Message) -> bool) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < folder.messages.len() {
        if remove(&folder.messages[i]) {
            folder.messages.remove(i);
            out.push_str(&format!("* {} EXPUNGE\r\n", i + 1));
        } else {
            i += 1;
        }
    }
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Words of a command line; quoted strings and parenthesised lists stay
/// whole.
fn tokens(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut depth = 0;
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if quoted => {
                current.push(c);
                if let Some(n) = chars.next() {
                    current.push(n);
                }
            }
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            '(' if !quoted => {
                depth += 1;
                current.push(c);
            }
            ')' if !quoted => {
                depth -= 1;
                current.push(c);
            }
            ' ' if !quoted && depth == 0 => {
                if !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
            }
            _ => current.push(c),
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    match s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        Some(inner) => inner.replace("\\\"", "\"").replace("\\\\", "\\"),
        None => s.to_string(),
    }
}

fn flag_list(command: &str) -> Vec<String> {
    let Some(start) = command.rfind('(') else {
        return Vec::new();
    };
    let end = command.rfind(')').unwrap_or(command.len());
    command[start + 1..end]
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

fn in_set(uid: u32, set: &str, folder: &Folder) -> bool {
    let max = folder.messages.iter().map(|m| m.uid).max().unwrap_or(0);
    in_set_max(uid, set, max)
}

fn in_set_max(uid: u32, set: &str, max: u32) -> bool {
    set.split(',').any(|part| match part.split_once(':') {
        Some((a, b)) => {
            let a: u32 = if a == "*" {
                max
            } else {
                a.parse().unwrap_or(0)
            };
            let b: u32 = if b == "*" {
                max
            } else {
                b.parse().unwrap_or(0)
            };
            (a.min(b)..=a.max(b)).contains(&uid)
        }
        None => part.parse::<u32>().is_ok_and(|n| n == uid),
    })
}

/// The search keys ticketgate sends: ALL, UID set, DELETED, KEYWORD k,
/// NOT key, (keys), HEADER field value.
fn matches_all(m: &Message, keys: &[String], folder: &Folder) -> bool {
    let mut keys = keys
        .iter()
        .cloned()
        .collect::<std::collections::VecDeque<String>>();
    let mut all = true;
    while !keys.is_empty() {
        all &= matches_one(m, &mut keys, folder);
    }
    all
}

fn matches_one(
    m: &Message,
    keys: &mut std::collections::VecDeque<String>,
    folder: &Folder,
) -> bool {
    let key = keys.pop_front().unwrap();
    if let Some(inner) = key.strip_prefix('(').and_then(|k| k.strip_suffix(')')) {
        return matches_all(m, &tokens(inner), folder);
    }
    match key.to_ascii_uppercase().as_str() {
        "ALL" => true,
        "UID" => {
            let set = keys.pop_front().unwrap();
            in_set(m.uid, &set, folder)
        }
        "DELETED" => m.flags.contains("\\Deleted"),
        "UNDELETED" => !m.flags.contains("\\Deleted"),
        "KEYWORD" => {
            let k = keys.pop_front().unwrap();
            m.flags.iter().any(|f| f.eq_ignore_ascii_case(&k))
        }
        "NOT" => !matches_one(m, keys, folder),
        "HEADER" => {
            let field = keys.pop_front().unwrap();
            let value = unquote(&keys.pop_front().unwrap());
            let text = String::from_utf8_lossy(&m.raw).to_ascii_lowercase();
            text.lines().any(|l| {
                l.starts_with(&format!("{}:", field.to_ascii_lowercase()))
                    && l.contains(&value.to_ascii_lowercase())
            })
        }
        other => panic!("the fake server does not know search key {other}"),
    }
}
