//! The node's billing journal at work: a billing event the store could not
//! take because it was unavailable (Redis down or not answering within
//! `redis_timeout`) is kept in the journal (`store::journal`, an LMDB
//! environment in Kamailio's runtime directory shared by the node's
//! processes) and written to the store once it is back, oldest first, by
//! the timer (`replay_pending`, every second while events wait) or by the
//! next script function that needs the store for the same call.
//!
//! Exactly once: an event leaves the journal only after its store operation
//! succeeded, and replaying an event twice (a crash between the store
//! operation and the removal, two processes on the same event) changes
//! nothing, because the store decides atomically (`billing_store`): an
//! answer opens a bill only where none is, an end ends only an open bill,
//! and the bill's tombstone stays `BILL_GRACE` after it.
//!
//! Only an unavailable store is journaled. A full store or a backend error
//! (Redis refusing a write: out of memory, a script error) is reported as
//! before: the store is up and answered, and writing the same thing again
//! later is not known to succeed.

use crate::billing::journal::{answer_index, AnswerEvent, EndEvent, Event};
use crate::billing_store::{close_bill, leave_pending_end, store_answer, Closed};
use crate::error::{Error, Result};
use crate::state;
use crate::stats;
use crate::store::journal::{Appended, Entry, Journal};
use crate::store::{StoreError, StoreResult};
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The journal's directory in Kamailio's runtime directory (-Y).
pub const DIR_NAME: &str = "topos_rs-journal";

/// How long one timer tick may spend writing events to the store (one more
/// store operation, bounded by redis_timeout, may end after it).
const TICK_BUDGET: Duration = Duration::from_millis(500);

/// Events read from the journal at a time.
const BATCH: usize = 64;

/// The journal's directory and map size (MiB), set at mod_init.
static CONFIG: OnceLock<(PathBuf, usize)> = OnceLock::new();

thread_local! {
    /// This process's handle and the fork generation it was opened in.
    static JOURNAL: RefCell<Option<(u64, Rc<Journal>)>> = const { RefCell::new(None) };
}

/// Sets the journal's place (mod_init, before the fork) and checks that
/// Kamailio may write there; returns the directory.
pub fn configure(runtime_dir: &Path, map_size_mib: usize) -> Result<PathBuf> {
    let dir = runtime_dir.join(DIR_NAME);
    crate::store::lmdb::LmdbStore::check_dir(&dir).map_err(|message| {
        Error::Store(StoreError::Backend(format!(
            "the billing journal: {message}"
        )))
    })?;
    let _ = CONFIG.set((dir.clone(), map_size_mib));
    Ok(dir)
}

/// True once configured (Redis storage).
pub fn enabled() -> bool {
    CONFIG.get().is_some()
}

/// This process's journal, opened after the fork.
fn journal() -> StoreResult<Rc<Journal>> {
    let (dir, map) = CONFIG
        .get()
        .ok_or_else(|| StoreError::Backend("no billing journal configured".into()))?;
    JOURNAL.with(|cell| {
        let mut slot = cell.borrow_mut();
        let generation = state::fork_generation();
        if let Some((g, j)) = slot.as_ref() {
            if *g == generation {
                return Ok(Rc::clone(j));
            }
        }
        // heed refuses a second handle of one environment in a process:
        // the one from before a fork goes first.
        *slot = None;
        let j = Journal::open(dir, *map, set_pending).map_err(|e| {
            StoreError::Backend(format!("the billing journal at {}: {e}", dir.display()))
        })?;
        let j = Rc::new(j);
        *slot = Some((generation, Rc::clone(&j)));
        Ok(j)
    })
}

/// Opens this process's journal (child_init) and publishes how many events
/// wait in it (some may be left from before a restart: the timer writes
/// them once the store answers).
pub fn open_for_this_process() -> Result<()> {
    journal()?.publish_len()?;
    Ok(())
}

/// The journal tells this how many events wait after each change (under
/// its writer lock, so the last number is the true one).
fn set_pending(n: u64) {
    if let Some(s) = stats::get() {
        s.billing_journal_pending.store(n, Ordering::Relaxed);
    }
}

/// Events waiting, as last published (one atomic load: the test every
/// billing function and timer tick makes before touching the journal).
fn pending() -> u64 {
    stats::get().map_or(1, |s| s.billing_journal_pending.load(Ordering::Relaxed))
}

/// What became of a billing event.
#[derive(Debug)]
pub enum Outcome<T> {
    /// Written to the store, with its result.
    Stored(T),
    /// The store was unavailable: kept in the journal.
    Journaled,
    /// The store was unavailable and the journal already holds this
    /// event's kind for the call (the first answer, the first BYE count).
    AlreadyJournaled,
}

/// A 2xx's answer: written to the store, or journaled while it is
/// unavailable. An earlier answer of the same bill still in the journal is
/// written first (the first answer's time is kept).
pub fn answer(a: &AnswerEvent) -> StoreResult<Outcome<()>> {
    let event = || Event::Answer(a.clone());
    match settle(&[answer_index(&a.key)]) {
        Err(StoreError::Unavailable(_)) => return keep(&event()),
        Err(e) => return Err(e),
        Ok(()) => {}
    }
    match store_answer(a) {
        Ok(()) => Ok(Outcome::Stored(())),
        Err(StoreError::Unavailable(_)) if enabled() => keep(&event()),
        Err(e) => Err(e),
    }
}

/// A BYE's end: the bill closed in the store, or the end journaled while
/// it is unavailable. What the journal holds for the call (its answer,
/// an earlier BYE) is written first, so a BYE that comes after the store
/// is back but before the timer wrote the call's answer bills from that
/// answer, and a BYE that repeats a journaled one bills nothing.
pub fn end(e: &EndEvent) -> StoreResult<Outcome<Closed>> {
    let event = || Event::End(e.clone());
    let mut indexes: Vec<Vec<u8>> = e
        .candidates()
        .iter()
        .map(|(key, _)| answer_index(key))
        .collect();
    indexes.push(e.index());
    match settle(&indexes) {
        Err(StoreError::Unavailable(_)) => return keep(&event()),
        Err(e) => return Err(e),
        Ok(()) => {}
    }
    match close_bill(e) {
        Ok(closed) => Ok(Outcome::Stored(closed)),
        Err(StoreError::Unavailable(_)) if enabled() => keep(&event()),
        Err(e) => Err(e),
    }
}

/// Keeps `event` in the journal.
fn keep<T>(event: &Event) -> StoreResult<Outcome<T>> {
    let (dir, _) = CONFIG
        .get()
        .ok_or_else(|| StoreError::Backend("no billing journal configured".into()))?;
    let appended = journal()
        .and_then(|j| j.append(&event.index(), &event.encode()))
        .map_err(|e| match e {
            StoreError::Backend(m) if m.starts_with("the billing journal") => {
                StoreError::Backend(m)
            }
            other => StoreError::Backend(format!("the billing journal: {other}")),
        })?;
    match appended {
        Appended::New { pending } => {
            stats::bump(|s| &s.billing_journaled);
            state::log_journaled(&format!(
                "billing: the store is unavailable; answers and BYEs are kept in the billing \
                 journal ({}, {pending} waiting) and billed once it is back",
                dir.display()
            ));
            Ok(Outcome::Journaled)
        }
        Appended::AlreadyThere => Ok(Outcome::AlreadyJournaled),
    }
}

/// Writes the journal's events with these index entries to the store,
/// oldest first (nothing to do, and no journal read, while none wait).
fn settle(indexes: &[Vec<u8>]) -> StoreResult<()> {
    if !enabled() || pending() == 0 {
        return Ok(());
    }
    let j = journal()?;
    let mut found = Vec::new();
    for i in indexes {
        if let Some(entry) = j.find(i)? {
            found.push(entry);
        }
    }
    found.sort_by_key(|e| e.seq);
    for entry in found {
        replay(&j, &entry)?;
        replayed(&j, entry.seq)?;
    }
    Ok(())
}

/// Removes a written event and counts it.
fn replayed(j: &Journal, seq: u64) -> StoreResult<()> {
    j.remove(seq)?;
    stats::bump(|s| &s.billing_journal_replayed);
    Ok(())
}

/// Writes one journaled event to the store. Ok: it can leave the journal.
fn replay(j: &Journal, entry: &Entry) -> StoreResult<()> {
    match Event::decode(&entry.payload) {
        Ok(Event::Answer(a)) => store_answer(&a),
        Ok(Event::End(e)) => replay_end(j, &e),
        Err(error) => {
            // Never expected (the module wrote it); kept out of the way
            // of the events behind it, with what can be shown of it.
            log::error!(
                "billing journal: event {} is unreadable ({error}); removed: {}",
                entry.seq,
                crate::log_text::printable(&String::from_utf8_lossy(&entry.payload))
            );
            Ok(())
        }
    }
}

/// A journaled BYE: closes the bill; if there is none, the answer may be
/// behind it in this journal (two workers journaled both as the outage
/// began) and is written first; if it is in no journal of this node, the
/// end waits in the store for the answer (still in another node's
/// journal).
fn replay_end(j: &Journal, e: &EndEvent) -> StoreResult<()> {
    if !matches!(close_bill(e)?, Closed::NoBill) {
        return Ok(());
    }
    let mut answered = false;
    for (key, _) in e.candidates() {
        if let Some(entry) = j.find(&answer_index(&key))? {
            replay(j, &entry)?;
            replayed(j, entry.seq)?;
            answered = true;
        }
    }
    if answered && !matches!(close_bill(e)?, Closed::NoBill) {
        return Ok(());
    }
    if leave_pending_end(e)? {
        close_bill(e)?;
    }
    Ok(())
}

/// The timer's tick: while events wait, writes them to the store, oldest
/// first, until the store fails (they wait for the next tick) or the tick's
/// budget is spent. One atomic load when none wait.
pub fn replay_pending() {
    if !enabled() || pending() == 0 {
        return;
    }
    let j = match journal() {
        Ok(j) => j,
        Err(e) => {
            log::error!("billing journal: {e}");
            return;
        }
    };
    let deadline = Instant::now() + TICK_BUDGET;
    let mut written = 0u64;
    'ticks: while Instant::now() < deadline {
        let batch = match j.oldest(BATCH) {
            Ok(b) if !b.is_empty() => b,
            Ok(_) => break,
            Err(e) => {
                log::error!("billing journal: {e}");
                break;
            }
        };
        for entry in batch {
            match replay(&j, &entry).and_then(|()| replayed(&j, entry.seq)) {
                Ok(()) => written += 1,
                // Still down (logged by the store, rate-limited): the next
                // tick tries again.
                Err(StoreError::Unavailable(_)) => break 'ticks,
                // Up but refusing (e.g. out of memory): the event stays,
                // and the ones behind it keep their order.
                Err(e) => {
                    state::log_journaled(&format!(
                        "billing journal: event {} not written yet ({e}); tried again each second",
                        entry.seq
                    ));
                    break 'ticks;
                }
            }
            if Instant::now() >= deadline {
                break 'ticks;
            }
        }
    }
    // A number left too high by a failed commit is corrected here.
    if let Err(e) = j.publish_len() {
        log::error!("billing journal: {e}");
    }
    if let Err(e) = j.flush() {
        log::error!("billing journal: flushing to disk: {e}");
    }
    if written > 0 {
        log::info!(
            "billing journal: {written} events written to the store, {} waiting",
            pending()
        );
    }
}
