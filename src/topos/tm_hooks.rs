//! What topos_rs does on the events of a hidden transaction, registered with
//! the tm wrapper (`ffi::tm::register_hooks`) at mod_init.

use super::{dialog_hiding, hide_reply, reduce_reply};
use crate::ffi::msg::SipMsg;
use crate::ffi::tm::{Transaction, TransactionHooks};
use crate::ffi::tx_state::{Kind, TxState};
use crate::message_context;
use crate::stats;

pub struct ToposHooks;

/// The hooks mod_init registers.
pub static TM_HOOKS: ToposHooks = ToposHooks;

impl TransactionHooks for ToposHooks {
    /// Hides the reply; one that cannot be hidden is reduced (fail closed:
    /// it never goes out as it came).
    fn reply_received(&self, t: &Transaction, reply: &mut SipMsg) {
        let status = reply.status();
        let Err(e) = hide_reply(t, reply) else {
            return;
        };
        stats::bump(|s| &s.replies_reduced);
        log::error!(
            "a {status} reply of a hidden transaction could not be hidden ({e}); \
             relayed reduced to its status line, the caller's Via stack, From, \
             To, Call-ID and CSeq"
        );
        // Nothing of the failed attempt is applied.
        reply.discard_pending();
        if let Err(e) = reduce_reply(t, reply) {
            log::error!("reducing a {status} reply: {e}");
        }
        // The reply is done with: a topos_reply() in the transaction's
        // reply route must not hide what was reduced.
        message_context::write(reply.identity(), |c| c.restored = true);
    }

    fn request_forwarded(&self, state: &TxState, req: &mut SipMsg) {
        if state.kind() == Kind::Initial && state.contact_pending() {
            if let Err(e) = super::sealed_caller_contact(req) {
                // The Contact was removed in topos_request(): the branch
                // leaves without one (nothing of the caller shows), and
                // the callee cannot reach the caller in the dialog.
                log::error!("the caller's masked Contact could not be made: {e}");
            }
        }
    }

    fn reply_sent(&self, state: &TxState, code: i32) {
        match (state.kind(), state.is_sealed()) {
            // Stored dialogs: the records of early dialogs no 2xx confirmed.
            (Kind::Initial, false) => dialog_hiding::initial_reply_sent(state, code),
            (Kind::InDialog, true) => super::sealed_in_dialog_reply_sent(state, code),
            _ => {}
        }
    }
}
