//! Acts of people at the CLI or in the help center — answers, solves,
//! comments, requests, ratings: the facts an act needs are loaded, the act
//! is decided by the same rules as mail (`domain::decide`), and written in
//! one transaction. Mail, CLI and web are three doors into the same rules.

use crate::config::Settings;
use crate::domain::decide::{Decision, Policy, Refusal, World};
use crate::domain::sender::normalize_email;
use crate::store::facts::{self, Wanted};
use crate::store::write::{self, Item};
use crate::store::Store;

pub struct Acts {
    policy: Policy,
}

impl Acts {
    pub fn new(settings: &Settings) -> Acts {
        Acts {
            policy: settings.policy(),
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Runs `act` over the facts `wanted` names (and the staff addresses),
    /// and writes its decision. A refusal writes nothing. Fails only on
    /// database errors.
    pub async fn run(
        &self,
        store: &Store,
        mut wanted: Wanted,
        now: i64,
        act: impl FnOnce(&mut World, &Policy) -> Result<Decision, Refusal>,
    ) -> Result<Result<Decision, Refusal>, sqlx::Error> {
        for staff in [&self.policy.agents_address, &self.policy.oncall_address]
            .into_iter()
            .flatten()
        {
            wanted.emails.insert(normalize_email(staff));
        }
        let mut tx = store.begin().await?;
        let result = async {
            let mut world = facts::load(&mut tx, store.backend, &wanted, None).await?;
            let decision = match act(&mut world, &self.policy) {
                Ok(decision) => decision,
                Err(refusal) => return Ok(Err(refusal)),
            };
            let item = Item {
                decision: &decision,
                message_id: "",
                record: None,
                suspended: None,
            };
            write::apply(&mut tx, &[item], &world, now).await?;
            Ok(Ok(decision))
        }
        .await;
        match result {
            // A refusal wrote nothing: its locks go now, not whenever the
            // connection is next used.
            Ok(Err(refusal)) => {
                tx.rollback().await?;
                Ok(Err(refusal))
            }
            other => crate::store::settle(tx, other).await,
        }
    }
}
