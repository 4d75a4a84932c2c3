//! The per-call script functions of the knobs operators use in Kamailio's
//! topos and OpenSIPS's topology_hiding:
//!
//! - `topos_set_contact(side, user, host)`: the user part and host of the
//!   masked Contact that stands in for `side` (`caller` or `callee`) in
//!   what the other side sees of this dialog. On the dialog-creating
//!   request before `topos_request()` (either side), or in the core
//!   `onreply_route` for the callee side (for the reply it runs for; the
//!   2xx's choice is the dialog's). An empty user or host keeps the
//!   default.
//! - `topos_trust(side)`: messages towards `side` leave unhidden (one-way
//!   hiding), on the dialog-creating request before `topos_request()`.
//!
//! What they set is a fact of the message (`message_context`), read by
//! `topos_request()` (and by the reply's hiding) and kept with the dialog.
//! A value that would break the URI is refused: -1, one error line, and
//! nothing set.

use crate::dialog::knobs::{check_host, check_user, parse_side, DialogKnobs};
use crate::dialog::token::Side;
use crate::error::Result;
use crate::ffi::msg::SipMsg;
use crate::ffi::route::{current_route, Route};
use crate::ffi::script_args::ScriptArgs;
use crate::log_text::printable;
use crate::message_context;

fn text(msg: &mut SipMsg, args: &ScriptArgs, n: usize) -> Result<String> {
    Ok(String::from_utf8_lossy(&args.text(msg, n)?).into_owned())
}

/// Where a function of a dialog-creating request may run: the request,
/// before `topos_request()` hid it. Logs why not.
fn before_topos_request(function: &str, msg: &mut SipMsg) -> bool {
    if !msg.is_request() || msg.parsed_to_tag().is_some() {
        log::error!(
            "{function}: only for a dialog-creating request (in-dialog requests use what \
             was set for their dialog); nothing set"
        );
        return false;
    }
    if message_context::read(msg.identity(), |c| c.hidden) {
        log::error!("{function}: call it before topos_request(); nothing set");
        return false;
    }
    true
}

/// `topos_set_contact(side, user, host)`.
pub fn topos_set_contact(msg: &mut SipMsg, args: &ScriptArgs) -> Result<bool> {
    const F: &str = "topos_set_contact";
    let (side_text, user, host) = (
        text(msg, args, 0)?,
        text(msg, args, 1)?,
        text(msg, args, 2)?,
    );
    let Some(side) = parse_side(&side_text) else {
        log::error!(
            "{F}: side {:?} is neither \"caller\" nor \"callee\"; nothing set",
            printable(&side_text)
        );
        return Ok(false);
    };
    if let Err(why) = check_user(&user) {
        log::error!("{F}: user {:?} {why}; nothing set", printable(&user));
        return Ok(false);
    }
    if let Err(why) = check_host(&host).or_else(|e| if host.is_empty() { Ok(()) } else { Err(e) }) {
        log::error!("{F}: host {:?} {why}; nothing set", printable(&host));
        return Ok(false);
    }
    match current_route() {
        Route::CoreOnReply | Route::TmOnReply if side == Side::Caller => {
            log::error!(
                "{F}: the caller side's Contact is chosen on the INVITE, before \
                 topos_request(); nothing set"
            );
            return Ok(false);
        }
        // tm hides a reply when it matches it, before a named reply route
        // runs: only the core onreply_route comes first.
        Route::TmOnReply => {
            log::error!(
                "{F}: in a named reply route (t_on_reply) the reply is hidden already; \
                 call it in the core onreply_route; nothing set"
            );
            return Ok(false);
        }
        Route::CoreOnReply => {}
        _ if !before_topos_request(F, msg) => return Ok(false),
        _ => {}
    }
    message_context::write(msg.identity(), |c| {
        let k = c.knobs.get_or_insert_with(Box::<DialogKnobs>::default);
        let shown = &mut k.of_mut(side).contact;
        shown.user = user;
        shown.host = host;
    });
    Ok(true)
}

/// `topos_trust(side)`.
pub fn topos_trust(msg: &mut SipMsg, args: &ScriptArgs) -> Result<bool> {
    const F: &str = "topos_trust";
    let side_text = text(msg, args, 0)?;
    let Some(side) = parse_side(&side_text) else {
        log::error!(
            "{F}: side {:?} is neither \"caller\" nor \"callee\"; nothing set",
            printable(&side_text)
        );
        return Ok(false);
    };
    if !before_topos_request(F, msg) {
        return Ok(false);
    }
    message_context::write(msg.identity(), |c| {
        c.knobs
            .get_or_insert_with(Box::<DialogKnobs>::default)
            .of_mut(side)
            .trusted = true;
    });
    Ok(true)
}
