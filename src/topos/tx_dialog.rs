//! The dialog a hidden transaction belongs to, as `TxState` keeps it (plain
//! bytes in shared memory): its id, both sides' token secrets, the
//! operator's choices for its sides and, for an in-dialog request, the side
//! it goes to.

use crate::dialog::knobs::DialogKnobs;
use crate::dialog::token::{DialogId, Secrets, Side};
use crate::error::{Error, Result};
use crate::ffi::tx_state::{Kind, NewTxState, TxState};

/// A transaction state of dialog `id` (out of shared memory: an error).
pub fn new_state(
    kind: Kind,
    id: DialogId,
    secrets: Secrets,
    knobs: &DialogKnobs,
) -> Result<NewTxState> {
    NewTxState::alloc(
        kind,
        id.0,
        secrets.caller,
        secrets.callee,
        knobs.flags(),
        &knobs.encode_texts(),
    )
    .ok_or(Error::OutOfMemory("out of shared memory"))
}

/// An in-dialog request's state: the side it goes to, the record's callee
/// tag hash, and whether a 2xx refreshes the remote targets.
pub fn set_in_dialog(st: &mut NewTxState, target: Side, callee_tag_hash: u64, refresh: bool) {
    st.get_mut()
        .set_in_dialog(target == Side::Callee, callee_tag_hash, refresh);
}

/// Reads the dialog of a transaction's state.
pub trait TxDialog {
    fn dialog_id(&self) -> DialogId;
    fn secrets(&self) -> Secrets;
    /// In-dialog: the side the request goes to.
    fn target(&self) -> Side;
    /// The operator's choices for the dialog's sides.
    fn knobs(&self) -> DialogKnobs;
}

impl TxDialog for TxState {
    fn dialog_id(&self) -> DialogId {
        DialogId(self.dialog_id_bytes())
    }

    fn secrets(&self) -> Secrets {
        Secrets {
            caller: self.caller_secret(),
            callee: self.callee_secret(),
        }
    }

    fn target(&self) -> Side {
        if self.to_callee() {
            Side::Callee
        } else {
            Side::Caller
        }
    }

    fn knobs(&self) -> DialogKnobs {
        let mut k = DialogKnobs::default();
        k.set_flags(self.knob_flags());
        // Written from a DialogKnobs by new_state: always readable.
        k.decode_texts(self.knob_texts());
        k
    }
}
