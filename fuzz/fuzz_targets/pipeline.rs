//! The whole inbound pipeline, from raw bytes to the committed outcome:
//! parse, dedup, classify, authenticate, authorize, extract, thread, the
//! ticket rules and the notifications, in a real (in-memory SQLite)
//! transaction. An input holds up to four messages, separated by the byte
//! FF, so that threading and deduplication between them are explored
//! too. Any panic, a missing outcome or a failed commit is a finding.

#![no_main]

use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use ticketgate::config::Settings;
use ticketgate::inbound::process::Pipeline;
use ticketgate::store::Store;

/// A fresh database after this many inputs keeps memory flat.
const RUNS_PER_DATABASE: u32 = 2_000;

struct World {
    runtime: tokio::runtime::Runtime,
    store: Store,
    pipeline: Pipeline,
    runs: u32,
    _dir: tempfile::TempDir,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let config = "[mail]\nsupport_address = \"support@example.com\"\nagents_address = \"team@example.com\"\n\
                  oncall_address = \"oncall@example.com\"\n\
                  [security]\ntoken_secret = \"fuzz\"\ntrusted_authserv_ids = [\"mx.example.com\"]\n";
    let settings = Settings::parse(config, dir.path()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = runtime.block_on(async {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let csv = include_bytes!("../../fixtures/users.csv");
        let entries = ticketgate::directory::parse(csv).unwrap();
        ticketgate::directory::import(&store, &entries)
            .await
            .unwrap();
        store
    });
    World {
        pipeline: Pipeline::new(&settings),
        runtime,
        store,
        runs: 0,
        _dir: dir,
    }
}

thread_local! {
    static WORLD: RefCell<Option<World>> = const { RefCell::new(None) };
}

fuzz_target!(|data: &[u8]| {
    let messages: Vec<Vec<u8>> = data
        .split(|b| *b == 0xFF)
        .take(4)
        .map(|m| m.to_vec())
        .collect();
    WORLD.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|w| w.runs >= RUNS_PER_DATABASE) {
            *slot = Some(world());
        }
        let world = slot.as_mut().unwrap();
        world.runs += 1;
        let reports = world
            .runtime
            .block_on(
                world
                    .pipeline
                    .process_batch(&world.store, &messages, 1_795_773_600),
            )
            .expect("the pipeline commits an outcome for every message");
        assert_eq!(reports.len(), messages.len());
    });
});
