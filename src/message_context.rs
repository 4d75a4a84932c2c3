//! What topos_rs remembers about the message this process is handling,
//! for the later steps of the same message: the script may call a function
//! twice, tm's callbacks run between the script's steps, and billing reads
//! what hiding found.
//!
//! One Kamailio process handles one message at a time (one thread each),
//! so one context per process is enough: it belongs to one message, named
//! by its `MsgId`, and a write for another message starts a fresh one.
//! Reads never reset it: a message of its own that Kamailio runs in the
//! middle of another's handling (tm's faked request in failure_route, a
//! local request in event_route[tm:local-request]) only reads the
//! context unless it is itself hidden or billed, and the outer message's
//! facts stay for its later steps.

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
}

impl MessageContext {
    /// What is known about a message nothing was remembered for.
    pub const EMPTY: MessageContext = MessageContext {
        hidden: false,
        restored: false,
        caller_call_id: None,
        deferred_billing_start: false,
        last_bill: None,
    };
}

struct Current {
    id: Option<MsgId>,
    context: MessageContext,
}

thread_local! {
    static CURRENT: RefCell<Current> = const {
        RefCell::new(Current {
            id: None,
            context: MessageContext::EMPTY,
        })
    };
}

/// `f` of what is known about message `id` (`MessageContext::EMPTY` if the
/// context belongs to another message).
pub fn read<T>(id: MsgId, f: impl FnOnce(&MessageContext) -> T) -> T {
    CURRENT.with_borrow(|c| {
        if c.id == Some(id) {
            f(&c.context)
        } else {
            f(&MessageContext::EMPTY)
        }
    })
}

/// Changes what is known about message `id`; the facts of the message
/// before it are dropped.
pub fn write<T>(id: MsgId, f: impl FnOnce(&mut MessageContext) -> T) -> T {
    CURRENT.with_borrow_mut(|c| {
        if c.id != Some(id) {
            c.id = Some(id);
            c.context = MessageContext::EMPTY;
        }
        f(&mut c.context)
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
        // Reading for it keeps them; writing for it starts afresh.
        assert!(read(a, |c| c.hidden));
        write(b, |c| c.restored = true);
        assert_eq!(read(a, Clone::clone), MessageContext::EMPTY);
        assert!(read(b, |c| c.restored && !c.hidden));
    }
}
