//! What topos_rs remembers about one tm transaction, in shared memory: the
//! parameter of the transaction's callback, freed by tm with the
//! transaction. Replies of one transaction may be handled by different
//! worker processes at once, so the fields that change are atomics (shared
//! memory is the same physical memory in every process).
//!
//! It holds plain data (ids, secrets and hashes as bytes and numbers); what
//! they mean is `crate::dialog::token`'s and `crate::topos`'s business.

use super::bindings::{topos_shim_shm_free, topos_shim_shm_malloc};
use std::os::raw::c_void;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

const MAGIC: u64 = 0x746f_706f_735f_7273; // "topos_rs"

/// How many early dialogs (callee tags) one INVITE transaction tracks.
pub const MAX_EARLY: usize = 8;
const MAX_CALL_ID: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Via hiding only (not a dialog-creating or in-dialog request).
    ViaOnly,
    /// A dialog-creating request (INVITE, SUBSCRIBE) of a new dialog.
    Initial,
    /// A request inside a hidden dialog.
    InDialog,
}

#[repr(C)]
pub struct TxState {
    magic: u64,
    kind: u8,
    /// In-dialog: 1 if the request goes to the callee side, 0 if to the
    /// caller side.
    to_callee: u8,
    /// In-dialog: INVITE or UPDATE (a 2xx refreshes remote targets).
    target_refresh: u8,
    callee_call_id_len: u8,
    /// 1: the dialog's tokens are sealed (no record in the store).
    sealed: u8,
    /// Sealed, with mask_callid: 1 and the fingerprint of the masking key.
    has_mask_key: u8,
    mask_key: u8,
    /// In-dialog: the request is a BYE.
    bye: u8,
    /// Sealed, dialog-creating: the caller's masked Contact goes in when
    /// tm builds each branch (the Contact as the whole script left it).
    contact_pending: u8,
    /// The operator's choices for the dialog (`dialog::knobs` flags).
    knob_flags: u8,
    /// 1: the request left with its Vias (towards a trusted side): its
    /// replies have their stack already.
    vias_kept: u8,
    /// Bytes after the struct, in the same allocation: the operator's
    /// texts for the dialog (`dialog::knobs`), none for most calls.
    tail_len: u16,
    dialog_id: [u8; 16],
    /// Both sides' token secrets (Initial: made with the dialog; InDialog:
    /// from its record).
    caller_secret: [u8; 16],
    callee_secret: [u8; 16],
    /// In-dialog: hash of the dialog's callee tag (its record key).
    callee_tag_hash: u64,
    /// Initial, with mask_callid: the Call-ID the callee side sees.
    callee_call_id: [u8; MAX_CALL_ID],
    /// Initial: hashes of the callee tags with a stored record (0 = free).
    early: [AtomicU64; MAX_EARLY],
    /// Initial: 1 once a 2xx confirmed that tag's dialog.
    confirmed: [AtomicU8; MAX_EARLY],
}

/// A TxState owned by Rust until tm adopts it as a callback parameter.
pub struct NewTxState(*mut TxState);

impl NewTxState {
    /// A state for a transaction of dialog `dialog_id`, with both sides'
    /// token secrets, the operator's flags for the dialog and `tail` (its
    /// texts, kept right after the struct: no allocation of its own, and
    /// none at all when empty).
    pub fn alloc(
        kind: Kind,
        dialog_id: [u8; 16],
        caller_secret: [u8; 16],
        callee_secret: [u8; 16],
        knob_flags: u8,
        tail: &[u8],
    ) -> Option<NewTxState> {
        let tail_len = u16::try_from(tail.len()).ok()?;
        // SAFETY: plain shared-memory allocation of the struct and its
        // tail, checked for null; both are fully written before use.
        unsafe {
            let p = topos_shim_shm_malloc(std::mem::size_of::<TxState>() + tail.len())
                as *mut TxState;
            if p.is_null() {
                return None;
            }
            std::ptr::write(
                p,
                TxState {
                    magic: MAGIC,
                    kind: kind as u8,
                    to_callee: 0,
                    target_refresh: 0,
                    callee_call_id_len: 0,
                    sealed: 0,
                    has_mask_key: 0,
                    mask_key: 0,
                    bye: 0,
                    contact_pending: 0,
                    knob_flags,
                    vias_kept: 0,
                    tail_len,
                    dialog_id,
                    caller_secret,
                    callee_secret,
                    callee_tag_hash: 0,
                    callee_call_id: [0; MAX_CALL_ID],
                    early: Default::default(),
                    confirmed: Default::default(),
                },
            );
            std::ptr::copy_nonoverlapping(tail.as_ptr(), p.add(1).cast::<u8>(), tail.len());
            Some(NewTxState(p))
        }
    }

    pub fn get_mut(&mut self) -> &mut TxState {
        // SAFETY: allocated and written in alloc; not shared yet.
        unsafe { &mut *self.0 }
    }

    /// Hands the state to tm (as the callback parameter).
    pub fn into_raw(self) -> *mut c_void {
        let p = self.0 as *mut c_void;
        std::mem::forget(self);
        p
    }
}

impl Drop for NewTxState {
    fn drop(&mut self) {
        // SAFETY: never handed to tm (into_raw forgets self), so ours.
        unsafe { release(self.0 as *mut c_void) };
    }
}

/// Frees a state (tm's release function for the callback parameter).
///
/// # Safety
/// `p` is null or came from `NewTxState::alloc` and is freed only once.
pub unsafe fn release(p: *mut c_void) {
    if !p.is_null() {
        // SAFETY: per the function's contract.
        unsafe { topos_shim_shm_free(p) };
    }
}

impl TxState {
    /// # Safety
    /// `p` is a callback parameter registered by this module.
    pub unsafe fn from_param<'a>(p: *mut c_void) -> Option<&'a TxState> {
        // SAFETY: per the contract; the magic guards against mix-ups.
        let s = unsafe { (p as *const TxState).as_ref()? };
        (s.magic == MAGIC).then_some(s)
    }

    pub fn kind(&self) -> Kind {
        match self.kind {
            1 => Kind::Initial,
            2 => Kind::InDialog,
            _ => Kind::ViaOnly,
        }
    }

    pub fn dialog_id_bytes(&self) -> [u8; 16] {
        self.dialog_id
    }

    pub fn caller_secret(&self) -> [u8; 16] {
        self.caller_secret
    }

    pub fn callee_secret(&self) -> [u8; 16] {
        self.callee_secret
    }

    pub fn knob_flags(&self) -> u8 {
        self.knob_flags
    }

    /// The texts kept after the struct (empty for most calls).
    pub fn knob_texts(&self) -> &[u8] {
        // SAFETY: `alloc` allocated `tail_len` bytes right after the
        // struct, in the same allocation, and wrote them; they never change.
        unsafe {
            std::slice::from_raw_parts(
                (self as *const TxState).add(1).cast::<u8>(),
                self.tail_len as usize,
            )
        }
    }

    /// The request leaves with its Vias (towards a trusted side).
    pub fn set_vias_kept(&mut self) {
        self.vias_kept = 1;
    }

    /// True if the request left with its Vias: its replies need no stack
    /// restored, and tm must let the core write `received=` / `rport=`.
    pub fn vias_kept(&self) -> bool {
        self.vias_kept != 0
    }

    pub fn set_in_dialog(&mut self, to_callee: bool, callee_tag_hash: u64, target_refresh: bool) {
        self.to_callee = to_callee as u8;
        self.callee_tag_hash = callee_tag_hash;
        self.target_refresh = target_refresh as u8;
    }

    /// In-dialog: true if the request goes to the callee side.
    pub fn to_callee(&self) -> bool {
        self.to_callee == 1
    }

    pub fn callee_tag_hash(&self) -> u64 {
        self.callee_tag_hash
    }

    pub fn is_target_refresh(&self) -> bool {
        self.target_refresh != 0
    }

    /// Marks the dialog's tokens sealed (no record in the store).
    pub fn set_sealed(&mut self) {
        self.sealed = 1;
    }

    pub fn is_sealed(&self) -> bool {
        self.sealed == 1
    }

    /// The fingerprint of the key whose deterministic mask is the callee's
    /// Call-ID (mask_callid with token_mode sealed; None: no such mask).
    pub fn set_mask_key(&mut self, mask_key: Option<u8>) {
        self.has_mask_key = mask_key.is_some() as u8;
        self.mask_key = mask_key.unwrap_or(0);
    }

    pub fn mask_key(&self) -> Option<u8> {
        (self.has_mask_key == 1).then_some(self.mask_key)
    }

    /// The caller's masked Contact is made per branch (sealed INVITEs).
    pub fn set_contact_pending(&mut self) {
        self.contact_pending = 1;
    }

    pub fn contact_pending(&self) -> bool {
        self.contact_pending == 1
    }

    pub fn set_bye(&mut self, bye: bool) {
        self.bye = bye as u8;
    }

    /// In-dialog: the request is a BYE.
    pub fn is_bye(&self) -> bool {
        self.bye == 1
    }

    /// Remembers the Call-ID the callee side sees (mask_callid); false if
    /// it does not fit.
    pub fn set_callee_call_id(&mut self, id: &str) -> bool {
        if id.len() > MAX_CALL_ID {
            return false;
        }
        self.callee_call_id[..id.len()].copy_from_slice(id.as_bytes());
        self.callee_call_id_len = id.len() as u8;
        true
    }

    pub fn callee_call_id(&self) -> Option<&str> {
        let n = self.callee_call_id_len as usize;
        (n > 0)
            .then(|| std::str::from_utf8(&self.callee_call_id[..n]).ok())
            .flatten()
    }

    /// Notes that a record for callee tag `h` exists; returns
    /// (slot, newly noted). None when every slot is taken.
    pub fn note_early(&self, h: u64) -> Option<(usize, bool)> {
        for (i, slot) in self.early.iter().enumerate() {
            match slot.compare_exchange(0, h, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Some((i, true)),
                Err(v) if v == h => return Some((i, false)),
                Err(_) => {}
            }
        }
        None
    }

    /// Marks slot `i` confirmed; true the first time.
    pub fn confirm(&self, i: usize) -> bool {
        self.confirmed[i].swap(1, Ordering::AcqRel) == 0
    }

    /// Callee tags noted and not confirmed.
    pub fn unconfirmed(&self) -> Vec<u64> {
        self.early
            .iter()
            .zip(&self.confirmed)
            .filter_map(|(e, c)| {
                let h = e.load(Ordering::Acquire);
                (h != 0 && c.load(Ordering::Acquire) == 0).then_some(h)
            })
            .collect()
    }
}
