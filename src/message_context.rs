//! What topos_rs remembers about the message this process is handling,
//! for the later steps of the same message: the script may call a function
//! twice, tm's callbacks run between the script's steps, and billing reads
//! what hiding found.
//!
//! One Kamailio process handles one message at a time (one thread each),
//! but Kamailio may run a message of its own in the middle of another's
//! handling (tm's faked request in failure_route, a local request in
//! event_route[tm:local-request]), and that one may be hidden or billed
//! too. So the process keeps the contexts of the last two messages it
//! wrote for, each named by its `MsgId`: the nested message's facts never
//! evict the outer message's, which its later steps still read.

use crate::dialog::knobs::DialogKnobs;
use std::cell::RefCell;

/// Identifies a message within this process: the `sip_msg`'s address,
/// its id and the pid that received it (an address alone is reused by
/// the next message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsgId {
    address: usize,
    id: u32,
    pid: i32,
}

impl MsgId {
    pub const fn new(address: usize, id: u32, pid: i32) -> MsgId {
        MsgId { address, id, pid }
    }
}

/// The facts about one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageContext {
    /// `topos_request()` hid this request (a second call changes nothing;
    /// the dialog module's creation callback asks).
    pub hidden: bool,
    /// This reply of a hidden transaction was hidden (by the tm callback or
    /// `topos_reply()`, whichever ran first).
    pub restored: bool,
    /// The Call-ID as the caller's side knows it, for an in-dialog request
    /// `topos_request()` routed (with mask_callid it differs from the
    /// message's).
    pub caller_call_id: Option<String>,
    /// `billing_start()` ran in the core `onreply_route`, before tm matched
    /// this reply: billing starts when tm matches it to a hidden INVITE.
    pub deferred_billing_start: bool,
    /// The `$billing(...)` fields of the call `billing_stop()` billed for
    /// this BYE.
    pub last_bill: Option<Vec<String>>,
    /// What `topos_set_contact()` / `topos_trust()` chose for this
    /// message's dialog (a dialog-creating request before
    /// `topos_request()`, a reply in the core `onreply_route`).
    pub knobs: Option<Box<DialogKnobs>>,
    /// `topos_request()` left this dialog-creating request's Record-Routes
    /// in (a trusted callee sees them): the dialog module must count them.
    pub record_routes_kept: bool,
}

impl MessageContext {
    /// What is known about a message nothing was remembered for.
    pub const EMPTY: MessageContext = MessageContext {
        hidden: false,
        restored: false,
        caller_call_id: None,
        deferred_billing_start: false,
        last_bill: None,
        knobs: None,
        record_routes_kept: false,
    };
}

/// How many messages' contexts a process keeps: the message being handled
/// and one Kamailio runs in the middle of it.
const KEPT: usize = 2;

struct Kept {
    /// Least recently written first: a new message takes `slots[0]`'s place.
    slots: [Option<(MsgId, MessageContext)>; KEPT],
}

thread_local! {
    static KEPT_CONTEXTS: RefCell<Kept> = const { RefCell::new(Kept { slots: [None, None] }) };
}

/// `f` of what is known about message `id` (`MessageContext::EMPTY` if
/// nothing is kept for it).
pub fn read<T>(id: MsgId, f: impl FnOnce(&MessageContext) -> T) -> T {
    KEPT_CONTEXTS.with_borrow(
        |k| match k.slots.iter().flatten().find(|(kept, _)| *kept == id) {
            Some((_, context)) => f(context),
            None => f(&MessageContext::EMPTY),
        },
    )
}

/// Changes what is known about message `id`; a message nothing is kept
/// for starts empty and takes the place of the least recently written one.
pub fn write<T>(id: MsgId, f: impl FnOnce(&mut MessageContext) -> T) -> T {
    KEPT_CONTEXTS.with_borrow_mut(|k| {
        let last = KEPT - 1;
        match k
            .slots
            .iter()
            .position(|s| s.as_ref().is_some_and(|(kept, _)| *kept == id))
        {
            // The most recently written message moves to the end.
            Some(i) => k.slots[i..].rotate_left(1),
            None => {
                k.slots.rotate_left(1);
                k.slots[last] = Some((id, MessageContext::EMPTY));
            }
        }
        match &mut k.slots[last] {
            Some((_, context)) => f(context),
            None => unreachable!("the last slot holds the message just written for"),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_belong_to_one_message() {
        let a = MsgId::new(0x1000, 7, 42);
        let b = MsgId::new(0x1000, 8, 42);
        write(a, |c| {
            c.hidden = true;
            c.caller_call_id = Some("caller-id".into());
        });
        write(a, |c| c.last_bill = Some(vec!["60".into()]));
        assert!(read(a, |c| c.hidden));
        assert_eq!(
            read(a, |c| c.caller_call_id.clone()).as_deref(),
            Some("caller-id")
        );
        assert_eq!(read(a, |c| c.last_bill.clone()), Some(vec!["60".into()]));
        // Another message at the same address sees nothing of them.
        assert_eq!(read(b, Clone::clone), MessageContext::EMPTY);
        // A message handled in the middle of `a` keeps `a`'s facts.
        write(b, |c| c.restored = true);
        assert!(read(a, |c| c.hidden));
        assert!(read(b, |c| c.restored && !c.hidden));
        // A third message evicts the one written for least recently.
        write(a, |c| c.deferred_billing_start = true);
        let c3 = MsgId::new(0x1000, 9, 42);
        write(c3, |c| c.hidden = true);
        assert_eq!(read(b, Clone::clone), MessageContext::EMPTY);
        assert!(read(a, |c| c.hidden && c.deferred_billing_start));
        assert!(read(c3, |c| c.hidden && !c.restored));
    }
}
