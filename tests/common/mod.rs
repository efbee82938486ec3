//! Helpers shared by the integration tests: a value type that counts its
//! creations and drops and notices when two guards hold it at once.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

/// Counts shared by every `Tracked` value of one test.
#[derive(Debug, Default)]
pub struct Ledger {
    pub created: AtomicUsize,
    pub dropped: AtomicUsize,
    /// Set if a value is ever entered by a second user while in use.
    pub double_use: AtomicBool,
}

impl Ledger {
    pub fn new() -> Arc<Ledger> {
        Arc::new(Ledger::default())
    }

    pub fn created(&self) -> usize {
        self.created.load(SeqCst)
    }

    pub fn dropped(&self) -> usize {
        self.dropped.load(SeqCst)
    }

    pub fn make(self: &Arc<Self>) -> Tracked {
        let id = self.created.fetch_add(1, SeqCst);
        Tracked {
            id,
            ledger: Arc::clone(self),
            in_use: AtomicBool::new(false),
        }
    }
}

/// A value that knows its ledger and whether a user holds it now.
#[derive(Debug)]
pub struct Tracked {
    pub id: usize,
    ledger: Arc<Ledger>,
    in_use: AtomicBool,
}

impl Tracked {
    /// Marks the value in use for the duration of `f`; records a double use
    /// if somebody else already had it marked.
    pub fn use_for<R>(&self, f: impl FnOnce() -> R) -> R {
        if self.in_use.swap(true, SeqCst) {
            self.ledger.double_use.store(true, SeqCst);
        }
        let r = f();
        self.in_use.store(false, SeqCst);
        r
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if self.in_use.load(SeqCst) {
            self.ledger.double_use.store(true, SeqCst);
        }
        self.ledger.dropped.fetch_add(1, SeqCst);
    }
}

/// Runs `$body` once for each built-in spill strategy, with `$spill` bound to
/// a fresh instance of it (and `$name` to its name, for messages).
#[macro_export]
macro_rules! for_each_spill {
    (|$name:ident, $spill:ident| $body:block) => {{
        {
            let $name = "Mutex";
            let $spill = mempool::spill::Mutex::default();
            $body
        }
        {
            let $name = "LockFree";
            let $spill = mempool::spill::LockFree::default();
            $body
        }
        {
            let $name = "Bounded";
            let $spill = mempool::spill::Bounded::new(16);
            $body
        }
        {
            let $name = "None";
            let $spill = mempool::spill::None;
            $body
        }
        {
            let $name = "PerThread";
            let $spill = mempool::spill::PerThread::default();
            $body
        }
    }};
}
