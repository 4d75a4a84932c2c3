//! What each side of a hidden dialog is shown of the other: the masked
//! Contact that stands in for a party (user part, host, scheme, from the
//! configuration and the operator's choices for the dialog), and whether
//! the receiving side is trusted (one-way hiding). The one place that
//! builds a `MaskedContact`; `dialog::plan` renders it.

use crate::config::{ContactMode, ModuleConfig};
use crate::dialog::knobs::{check_user, DialogKnobs, SideKnobs};
use crate::dialog::plan::{ContactHost, MaskedContact, Receiver, Shown};
use crate::dialog::token_uri::without_token_param;
use crate::error::{Error, Result};
use crate::ffi::msg::SipMsg;
use crate::ffi::sockets;
use crate::message_context;
use crate::sip::name_addr::uri_user;

/// True if `uri` is a SIPS URI.
pub fn is_sips(uri: &[u8]) -> bool {
    uri.get(..5)
        .is_some_and(|s| s.eq_ignore_ascii_case(b"sips:"))
}

/// The user part a party's masked Contact shows (None: the token is the
/// user part): the operator's, else with `contact_mode` 1 the party's own
/// (`own_contact`: its Contact URI; a user part that is not safe to copy,
/// or none, shows no user part).
fn user_shown(
    cfg: &ModuleConfig,
    side: &SideKnobs,
    own_contact: impl FnOnce() -> Option<String>,
) -> Option<String> {
    if !side.contact.user.is_empty() {
        return Some(side.contact.user.clone());
    }
    if cfg.contact_mode != ContactMode::OwnUser {
        return None;
    }
    let contact = own_contact().unwrap_or_default();
    let user = uri_user(&contact).unwrap_or("");
    Some(if check_user(user).is_ok() {
        user.to_string()
    } else {
        String::new()
    })
}

/// The masked Contact of `side` in a request: the socket it leaves on
/// (filled in per branch), `contact_host`, or the operator's host with the
/// transport of that socket. `sips`: the request's Request-URI is one.
pub fn in_request(
    cfg: &'static ModuleConfig,
    token: String,
    side: &SideKnobs,
    own_contact: impl FnOnce() -> Option<String>,
    sips: bool,
) -> MaskedContact {
    let host = if !side.contact.host.is_empty() {
        ContactHost::Custom(side.contact.host.clone())
    } else if let Some(h) = &cfg.contact_host {
        ContactHost::Known(h.clone())
    } else {
        ContactHost::SendSocket
    };
    MaskedContact {
        user: user_shown(cfg, side, own_contact),
        token,
        token_param: &cfg.contact_param,
        host,
        sips,
    }
}

/// The masked Contact of `side` in a reply to `request`: the socket the
/// request came in on (which the reply leaves on), `contact_host`, or the
/// operator's host with that socket's transport. `sips`: the request's
/// Request-URI is one.
pub fn in_reply(
    cfg: &'static ModuleConfig,
    token: String,
    side: &SideKnobs,
    own_contact: impl FnOnce() -> Option<String>,
    sips: bool,
    request: &SipMsg,
) -> Result<MaskedContact> {
    let host = if !side.contact.host.is_empty() {
        ContactHost::Known(format!(
            "{}{}",
            side.contact.host,
            request.local_transport_param()
        ))
    } else if let Some(h) = &cfg.contact_host {
        ContactHost::Known(h.clone())
    } else {
        ContactHost::Known(request.local_hostport().ok_or(Error::Config(
            "no local socket for the masked Contact; set contact_host",
        ))?)
    };
    Ok(MaskedContact {
        user: user_shown(cfg, side, own_contact),
        token,
        token_param: &cfg.contact_param,
        host,
        sips,
    })
}

/// A party's Contact URI as Kamailio reads it back from a request it
/// relayed (with its own changes): without the token parameter it added
/// for a receiver that sees contacts (`added`), so the dialog keeps the
/// Contact the party sent.
pub fn as_the_party_sent_it(contact: String, added: bool) -> String {
    if !added {
        return contact;
    }
    let param = crate::state::config().map_or("tps", |c| c.contact_param.as_str());
    without_token_param(&contact, param)
}

/// Who a side with these choices is, as a receiver.
pub fn receiver(to: &SideKnobs) -> Receiver {
    match (to.trusted, to.sees_contacts) {
        (false, _) => Receiver::Untrusted,
        (true, false) => Receiver::Trusted,
        (true, true) => Receiver::TrustedRecordRouted,
    }
}

/// What a message to a side with these choices shows of the other side,
/// `masked` standing in for its Contact.
pub fn shown<'m>(to: &SideKnobs, masked: &'m MaskedContact) -> Shown<'m> {
    Shown {
        masked: Some(masked),
        receiver: receiver(to),
    }
}

/// The operator's choices for the dialog a dialog-creating request sets
/// up: what the script chose for it (`topos_set_contact()`,
/// `topos_trust()`), and the trusted sockets it came in on (caller) or
/// leaves on (callee). A trusted side sees real Contacts when the script
/// record-routed the request already (its in-dialog requests then come
/// back through Kamailio).
pub fn for_new_dialog(msg: &SipMsg) -> DialogKnobs {
    let mut k =
        message_context::read(msg.identity(), |c| c.knobs.as_deref().cloned()).unwrap_or_default();
    k.caller.trusted |= sockets::came_in_trusted(msg);
    k.callee.trusted |= sockets::leaves_trusted(msg);
    if k.caller.trusted || k.callee.trusted {
        let rr = msg.has_record_route_lump();
        k.caller.sees_contacts = k.caller.trusted && rr;
        k.callee.sees_contacts = k.callee.trusted && rr;
    }
    k
}

/// The callee side's Contact choices `topos_set_contact("callee", ...)`
/// made for this reply in the core onreply_route, over those of the INVITE.
pub fn with_reply_choices(mut k: DialogKnobs, reply: &SipMsg) -> DialogKnobs {
    let chosen = message_context::read(reply.identity(), |c| {
        c.knobs.as_ref().map(|r| r.callee.contact.clone())
    });
    if let Some(c) = chosen {
        if !c.user.is_empty() {
            k.callee.contact.user = c.user;
        }
        if !c.host.is_empty() {
            k.callee.contact.host = c.host;
        }
    }
    k
}

thread_local! {
    static WARNED_SEALED_REPLY_CHOICE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// A reply of a dialog with sealed tokens for which the core
/// onreply_route called `topos_set_contact("callee", ...)`: sealed tokens
/// do not carry the choice, so it is not applied (one WARNING per
/// process).
pub fn note_reply_choices_of_sealed_dialog(reply: &SipMsg) {
    if !message_context::read(reply.identity(), |c| c.knobs.is_some()) {
        return;
    }
    if WARNED_SEALED_REPLY_CHOICE.replace(true) {
        return;
    }
    log::warn!(
        "topos_set_contact(\"callee\", ...) in the reply route is not applied to a dialog with \
         sealed tokens: call it on the INVITE, before topos_request() (the dialog is then kept \
         in the store); further cases are not logged"
    );
}
