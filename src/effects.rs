//! What a scan proposes to change, as data: stage 4 ("commit") of the
//! pipeline. Scanning never writes the store, starts a hold or runs a
//! process; it returns these with its report, and the front end decides
//! what to apply (`Engine::commit`): the milter everything,
//! `learn` only the remembering, `check` nothing.

use std::sync::Mutex;

use crate::store::threads::Remembrance;
use crate::store::WriteOp;

/// One proposed change.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Store writes to make as they are: an outbound account's window
    /// counters and known recipients, the From identities it learns.
    Write(Vec<WriteOp>),
    /// An outbound message of `account`: its hold is brought up to date
    /// (an expired one ends, a held account's episode counts the message)
    /// and, when the message tripped a limit, a hold starts or runs on.
    Hold {
        account: String,
        queue_id: String,
        trip: Option<Trip>,
    },
    /// Remember the message (thread, correspondents, mailing list): only
    /// proposed for mail that passes clean. `believed`: the organisation's
    /// own outbound mail, remembered whole (`store::threads::Trust`).
    Remember {
        message: Box<Remembrance>,
        believed: bool,
    },
}

/// Why an outbound message trips its account's hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trip {
    /// The rule that tripped first (`outbound.rate_exceeded`, ...), for the
    /// notify command.
    pub rule: &'static str,
    /// Every tripped rule with its evidence.
    pub reason: String,
    /// The account's window counters, for the alert line and the episode.
    pub counters: String,
}

/// Where detectors put their proposals during one scan (they only hold a
/// shared reference to the scan context).
#[derive(Debug, Default)]
pub struct Proposals(Mutex<Vec<Effect>>);

impl Proposals {
    pub fn propose(&self, effect: Effect) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(effect);
    }

    pub fn into_inner(self) -> Vec<Effect> {
        self.0.into_inner().unwrap_or_else(|e| e.into_inner())
    }
}
