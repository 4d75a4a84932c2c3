//! The edits that hide a dialog's topology, computed from message bytes
//! alone (`sip::edit::Edit`s, which the FFI layer turns into Kamailio
//! lumps); nothing here
//! knows Kamailio, so every rule is unit-tested.
//!
//! What each side sees:
//! - Record-Route: its own side's entries and Kamailio's, nothing of the
//!   other side (the callee sees only Kamailio's).
//! - Contact: `<sip:TOKEN@kamailio>` for the other side, where TOKEN names
//!   the dialog and the direction.
//! - Route: the route set toward the receiving side only.
//! - Call-ID: with mask_callid, the callee side sees a different one.

use crate::sip::edit::{Edit, SEND_ADDRESS, SEND_SOCKET, SEND_TRANSPORT};
use crate::sip::headers::{map_cow, Headers};
use crate::sip::name_addr::{entry_uri, split_entries, uri_host_port};
use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanError {
    NoCallId,
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanError::NoCallId => write!(f, "no Call-ID header"),
        }
    }
}

impl std::error::Error for PlanError {}

/// Where a masked Contact points: the host part Kamailio shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContactHost {
    /// The socket the message leaves on, filled in by the core for each
    /// branch (requests): `sip::edit::SEND_SOCKET`.
    SendSocket,
    /// `host:port[;transport=x]` known now (a reply: the socket its
    /// request came in on; or `contact_host`).
    Known(String),
    /// An operator's `host[:port]` (`topos_set_contact()`) in a request:
    /// the transport of the socket it leaves on is filled in by the core.
    Custom(String),
}

/// The Contact Kamailio shows in place of a party's own:
/// `<sip:TOKEN@host[:port][;transport=x]>`, or with a user part of its
/// own `<sip:user@host...;tps=TOKEN>` (`contact_mode` 1, a user set by
/// `topos_set_contact()`). The scheme is `sips:` when the request it is
/// for (or answers) has a SIPS Request-URI (RFC 3261 8.1.1.8, 12.1.1);
/// such a Contact names no transport (TLS is implied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskedContact {
    /// Opaque: `dialog::token` makes and parses it.
    pub token: String,
    /// The user part shown; None: the token is the user part. Some (even
    /// empty: no user part at all): the token goes into `token_param`.
    pub user: Option<String>,
    /// Name of the URI parameter that carries the token when the user
    /// part holds something else (`contact_param`).
    pub token_param: &'static str,
    pub host: ContactHost,
    pub sips: bool,
}

impl MaskedContact {
    /// A masked Contact of `contact_mode` 0 with no choices of the
    /// operator: `<sip:TOKEN@host>`.
    pub fn plain(token: String, host: ContactHost) -> MaskedContact {
        MaskedContact {
            token,
            user: None,
            token_param: "tps",
            host,
            sips: false,
        }
    }

    /// The whole header line, `Contact: <...>\r\n`.
    pub fn header(&self) -> Vec<u8> {
        let user_len = self
            .user
            .as_ref()
            .map_or(0, |u| u.len() + self.token_param.len() + 2);
        let mut out = Vec::with_capacity(40 + self.token.len() + user_len);
        out.extend_from_slice(if self.sips {
            b"Contact: <sips:"
        } else {
            b"Contact: <sip:"
        });
        match &self.user {
            None => {
                out.extend_from_slice(self.token.as_bytes());
                out.push(b'@');
            }
            Some(u) if !u.is_empty() => {
                out.extend_from_slice(u.as_bytes());
                out.push(b'@');
            }
            Some(_) => {}
        }
        match (&self.host, self.sips) {
            (ContactHost::SendSocket, false) => out.extend_from_slice(SEND_SOCKET.as_bytes()),
            (ContactHost::SendSocket, true) => out.extend_from_slice(SEND_ADDRESS.as_bytes()),
            (ContactHost::Known(h), false) => out.extend_from_slice(h.as_bytes()),
            // A sips: URI names no transport: the known one goes.
            (ContactHost::Known(h), true) => {
                out.extend_from_slice(h.split(';').next().unwrap_or("").as_bytes())
            }
            (ContactHost::Custom(h), sips) => {
                out.extend_from_slice(h.as_bytes());
                if !sips {
                    out.extend_from_slice(SEND_TRANSPORT.as_bytes());
                }
            }
        }
        if self.user.is_some() {
            push_token_param(&mut out, self.token_param, &self.token);
        }
        out.extend_from_slice(b">\r\n");
        out
    }
}

fn push_token_param(out: &mut Vec<u8>, name: &str, token: &str) {
    out.push(b';');
    out.extend_from_slice(name.as_bytes());
    out.push(b'=');
    out.extend_from_slice(token.as_bytes());
}

/// Who receives a message, and so what it shows of the sender's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receiver {
    /// An untrusted side: everything of the other side hidden, the masked
    /// Contact in place of its own.
    Untrusted,
    /// A trusted side (one-way hiding) that Kamailio does not record-route:
    /// it sees Vias, the Call-ID and the Contacts of failures as a proxy
    /// without topos_rs passes them, but a dialog's Record-Routes and
    /// Contact stay hidden: with them its in-dialog requests would go
    /// around Kamailio, straight to the other side.
    Trusted,
    /// A trusted side that Kamailio record-routes: its in-dialog requests
    /// come back through Kamailio whatever they are sent to, so it sees
    /// the other side's Record-Routes and real Contact too; that Contact
    /// carries the masked Contact's token in the URI parameter
    /// `token_param`, so those requests find their dialog.
    TrustedRecordRouted,
}

/// What a message shows its receiver of the other side: the masked
/// Contact (None: none now; sealed tokens put it in per branch, see
/// `contact_insert`) and who the receiver is.
#[derive(Debug, Clone, Copy)]
pub struct Shown<'a> {
    pub masked: Option<&'a MaskedContact>,
    pub receiver: Receiver,
}

impl<'a> Shown<'a> {
    /// To an untrusted side: everything hidden.
    pub fn hidden(masked: Option<&'a MaskedContact>) -> Shown<'a> {
        Shown {
            masked,
            receiver: Receiver::Untrusted,
        }
    }

    fn trusted(&self) -> bool {
        self.receiver != Receiver::Untrusted
    }

    /// Sees the other side's Record-Routes (and real Contact).
    fn sees_routing(&self) -> bool {
        self.receiver == Receiver::TrustedRecordRouted && self.masked.is_some()
    }
}

/// Edits that put `;name=token` into the first Contact's URI (before its
/// headers, `?...`), turning an addr-spec into a name-addr so that the
/// parameter belongs to the URI. None if the Contact cannot be located.
pub fn contact_with_token(h: Headers<'_>, name: &str, token: &str) -> Option<Vec<Edit>> {
    let range = contact_uri_range(h)?;
    let uri = &h.msg[range.clone()];
    let at = range.start + uri.iter().position(|&b| b == b'?').unwrap_or(uri.len());
    let bracketed = range.start > 0 && h.msg[..range.start].trim_ascii_end().ends_with(b"<");
    let mut param = Vec::with_capacity(name.len() + token.len() + 2);
    push_token_param(&mut param, name, token);
    let mut edits = Vec::with_capacity(3);
    if !bracketed {
        edits.push(Edit::Insert(range.start, b"<".to_vec()));
    }
    edits.push(Edit::Insert(at, param));
    if !bracketed {
        edits.push(Edit::Insert(range.end, b">".to_vec()));
    }
    Some(edits)
}

/// The Contact a dialog message shows (its Contact field is usable:
/// `has_contact`): the edits for it.
fn show_contact(h: Headers<'_>, shown: Shown<'_>, has_contact: bool, edits: &mut Vec<Edit>) {
    if let (true, Some(m)) = (shown.sees_routing(), shown.masked) {
        // The real Contact with the token; one it cannot place the token
        // in goes to the trusted side as it is.
        if let Some(e) = contact_with_token(h, m.token_param, &m.token) {
            edits.extend(e);
        }
        return;
    }
    let contact = match shown.masked {
        Some(m) if has_contact => m.header(),
        _ => Vec::new(),
    };
    replace_fields(h, "contact", Some("m"), contact, edits);
}

/// Every entry of every field called `long`, in message order; borrowed
/// from the message unless a value was not UTF-8.
fn entries<'a>(
    h: Headers<'a>,
    long: &'static str,
    compact: Option<&'static str>,
) -> Vec<Cow<'a, str>> {
    let mut out = Vec::new();
    for f in h.named(long, compact) {
        match h.value(f) {
            Cow::Borrowed(v) => out.extend(split_entries(v).into_iter().map(Cow::Borrowed)),
            Cow::Owned(v) => out.extend(
                split_entries(&v)
                    .into_iter()
                    .map(|e| Cow::Owned(e.to_string())),
            ),
        }
    }
    out
}

/// The first Contact URI.
pub fn contact_uri(h: Headers<'_>) -> Option<Cow<'_, str>> {
    let first = entries(h, "contact", Some("m")).into_iter().next()?;
    map_cow(first, |e| {
        Some(entry_uri(e)).filter(|u| !u.is_empty() && *u != "*")
    })
}

/// Replaces every field called `long` with `replacement` (one block at the
/// first field's place, or at the end of the headers if there is none).
fn replace_fields(
    h: Headers<'_>,
    long: &'static str,
    compact: Option<&'static str>,
    replacement: Vec<u8>,
    edits: &mut Vec<Edit>,
) {
    let mut at = None;
    for f in h.named(long, compact) {
        at.get_or_insert(f.line.start);
        edits.push(Edit::Delete(f.line.clone()));
    }
    if !replacement.is_empty() {
        edits.push(Edit::Insert(
            at.unwrap_or_else(|| h.end_of_headers()),
            replacement,
        ));
    }
}

/// One `name: entry` line per entry.
fn header_lines<'e>(name: &str, entries: impl Iterator<Item = &'e str>) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(e.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn call_id_line(call_id: &str) -> Vec<u8> {
    header_lines("Call-ID", std::iter::once(call_id))
}

/// The first Call-ID value.
pub fn call_id(h: Headers<'_>) -> Result<Cow<'_, str>, PlanError> {
    h.named("call-id", Some("i"))
        .next()
        .and_then(|f| map_cow(h.value(f), |v| Some(v.trim())))
        .ok_or(PlanError::NoCallId)
}

/// Edits that give a message another Call-ID.
pub fn replace_call_id(h: Headers<'_>, call_id: &str) -> Vec<Edit> {
    let mut edits = Vec::new();
    replace_fields(h, "call-id", Some("i"), call_id_line(call_id), &mut edits);
    edits
}

/// What the caller's dialog-creating request tells about the caller side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerSide {
    pub call_id: String,
    pub contact: String,
    /// Record-Route entries as received (nearest to Kamailio first), which
    /// is also the route set from Kamailio back to the caller.
    pub route: Vec<String>,
}

/// Where the first Contact URI sits in the message (None if there is no
/// usable one, or its text had to be copied: not UTF-8).
pub fn contact_uri_range(h: Headers<'_>) -> Option<Range<usize>> {
    match contact_uri(h)? {
        Cow::Borrowed(uri) => {
            let start = (uri.as_ptr() as usize).checked_sub(h.msg.as_ptr() as usize)?;
            let end = start + uri.len();
            (end <= h.msg.len()).then_some(start..end)
        }
        Cow::Owned(_) => None,
    }
}

/// Reads the caller side of a dialog-creating request (as received).
pub fn caller_side(request: Headers<'_>) -> Result<CallerSide, PlanError> {
    Ok(CallerSide {
        call_id: call_id(request)?.into_owned(),
        // Empty when the request has none: nothing can be routed to it.
        contact: contact_uri(request)
            .map(Cow::into_owned)
            .unwrap_or_default(),
        route: entries(request, "record-route", None)
            .into_iter()
            .map(Cow::into_owned)
            .collect(),
    })
}

/// A dialog-creating request going to the callee: the caller side's
/// Record-Routes go (Kamailio adds its own as a lump of its own), the
/// Contact is masked, the Call-ID replaced if masked. A trusted,
/// record-routed callee gets the Record-Routes and the real Contact.
/// `shown.masked` None: the Contact goes and comes back later
/// (`contact_insert`, sealed tokens: made when tm builds each branch).
pub fn initial_request(
    request: Headers<'_>,
    shown: Shown<'_>,
    callee_call_id: Option<&str>,
) -> Vec<Edit> {
    let mut edits = Vec::new();
    if !shown.sees_routing() {
        replace_fields(request, "record-route", None, Vec::new(), &mut edits);
    }
    // Without a Contact (malformed) nothing can reach the caller later;
    // any Contact field (even unreadable) is still replaced.
    show_contact(request, shown, contact_uri(request).is_some(), &mut edits);
    if let Some(id) = callee_call_id {
        replace_fields(request, "call-id", Some("i"), call_id_line(id), &mut edits);
    }
    edits
}

/// The masked Contact going in where the request's Contact fields were
/// (`initial_request` removed them); nothing if it had no usable Contact.
pub fn contact_insert(request: Headers<'_>, masked: &MaskedContact) -> Vec<Edit> {
    match (
        contact_uri(request),
        request.named("contact", Some("m")).next(),
    ) {
        (Some(_), Some(first)) => vec![Edit::Insert(first.line.start, masked.header())],
        _ => Vec::new(),
    }
}

/// What a reply of the callee side tells about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalleeSide {
    pub contact: Option<String>,
    /// Route set from Kamailio to the callee: the callee side's
    /// Record-Route entries, nearest to Kamailio first.
    pub route: Vec<String>,
}

/// The callee side of a reply to the dialog-creating request: its Contact
/// and its route set (the Record-Route entries before Kamailio's own, see
/// `kamailio_entries`). `is_kamailio(uri)` says whether a URI is this
/// server.
pub fn callee_side(reply: Headers<'_>, is_kamailio: &dyn Fn(&str) -> bool) -> CalleeSide {
    let rr = entries(reply, "record-route", None);
    let ours = kamailio_entries(&rr, is_kamailio);
    CalleeSide {
        contact: contact_uri(reply).map(Cow::into_owned),
        route: rr[..ours.start]
            .iter()
            .rev()
            .map(|e| e.to_string())
            .collect(),
    }
}

/// Where Kamailio's own entries are in a reply's Record-Route list: the
/// last run of them. The callee side's entries come before it (Kamailio
/// was the last to record-route before the callee side); entries after it
/// are the caller side's as a trusted callee got them in the INVITE, shown
/// to the caller from the request instead (and anything else there is not
/// a route of the callee side).
fn kamailio_entries(rr: &[Cow<'_, str>], is_kamailio: &dyn Fn(&str) -> bool) -> Range<usize> {
    let ours = |e: &Cow<'_, str>| is_kamailio(entry_uri(e));
    match rr.iter().rposition(ours) {
        None => rr.len()..rr.len(),
        Some(last) => {
            let first = rr[..last]
                .iter()
                .rposition(|e| !ours(e))
                .map_or(0, |p| p + 1);
            first..last + 1
        }
    }
}

/// The Record-Route parameter that carries the route set toward the callee
/// (sealed) in Kamailio's own entry as the caller sees it.
pub const ROUTE_PARAM: &str = "tpr";

/// What Kamailio's own Record-Route entry shown to the caller carries: the
/// sealed route set toward the callee, and the entry to show if the
/// script did not record-route (`<sip:HOST;lr>` for the socket the reply
/// leaves on).
pub struct RouteCarrier<'a> {
    pub sealed: &'a str,
    pub hostport: &'a str,
}

/// `entry` (a name-addr) with `;name=value` added to its URI.
fn with_uri_param(entry: &str, name: &str, value: &str) -> String {
    match entry.rfind('>') {
        Some(end) => format!("{};{name}={value}{}", &entry[..end], &entry[end..]),
        None => format!("<{entry};{name}={value}>"),
    }
}

/// A reply to the dialog-creating request, going back to the caller: the
/// Record-Route list becomes Kamailio's entries plus the caller side's (as
/// they were in the request); the callee's Contact is masked when the reply
/// sets up a dialog (`creates_dialog`: 101-299, with `shown.masked`) and
/// removed otherwise (a 3xx's redirect targets and any Contact of a failure
/// name the callee side); every Contact field goes, whatever it holds
/// (`<>`, `*`, a list), so nothing of it can pass; the Call-ID is the
/// caller's. `carrier` (sealed tokens): Kamailio's entries carry the route
/// set toward the callee, in an entry of Kamailio's own if it has none. A
/// trusted caller sees every Contact of a reply that sets up no dialog,
/// and, record-routed, the callee side's Record-Routes and real Contact too.
pub fn reply_to_caller(
    reply: Headers<'_>,
    caller_route: &[String],
    shown: Shown<'_>,
    caller_call_id: Option<&str>,
    is_kamailio: &dyn Fn(&str) -> bool,
    creates_dialog: bool,
    carrier: Option<&RouteCarrier>,
) -> Vec<Edit> {
    let rr = entries(reply, "record-route", None);
    let range = kamailio_entries(&rr, is_kamailio);
    let first_shown = if shown.sees_routing() { 0 } else { range.start };
    let mut ours: Vec<Cow<'_, str>> = rr[first_shown..range.end].to_vec();
    if let Some(c) = carrier {
        if ours.is_empty() {
            ours.push(Cow::Owned(format!("<sip:{};lr>", c.hostport)));
        }
        for e in ours.iter_mut() {
            *e = Cow::Owned(with_uri_param(e, ROUTE_PARAM, c.sealed));
        }
    }
    let listed = ours
        .iter()
        .map(|e| e.as_ref())
        .chain(caller_route.iter().map(String::as_str));
    let mut edits = Vec::new();
    replace_fields(
        reply,
        "record-route",
        None,
        header_lines("Record-Route", listed),
        &mut edits,
    );
    if creates_dialog {
        show_contact(reply, shown, contact_uri(reply).is_some(), &mut edits);
    } else if !shown.trusted() {
        replace_fields(reply, "contact", Some("m"), Vec::new(), &mut edits);
    }
    if let Some(id) = caller_call_id {
        replace_fields(reply, "call-id", Some("i"), call_id_line(id), &mut edits);
    }
    edits
}

/// A request's Route fields replaced by `route` (nearest first; none: all
/// go): a transfer's INVITE goes through the route set of the side it is
/// sent to, whatever Route its sender put in.
pub fn route_set(request: Headers<'_>, route: &[String]) -> Vec<Edit> {
    let mut edits = Vec::new();
    replace_fields(
        request,
        "route",
        None,
        header_lines("Route", route.iter().map(String::as_str)),
        &mut edits,
    );
    edits
}

/// The value of Kamailio's route parameter in a request's Route header:
/// the first Route entry that carries one. Any entry will do (behind a
/// virtual address Kamailio may not take its own entry for itself): the
/// value is sealed to its dialog, so where it stands proves nothing.
pub fn route_param(request: Headers<'_>) -> Option<String> {
    entries(request, "route", None).into_iter().find_map(|e| {
        entry_uri(&e).split(';').skip(1).find_map(|p| {
            let (name, value) = p.split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case(ROUTE_PARAM)
                .then(|| value.trim().to_string())
        })
    })
}

/// True if the message has a usable Contact URI.
pub fn has_contact(h: Headers<'_>) -> bool {
    contact_uri(h).is_some()
}

/// Route is a request header (RFC 3261 20.34, table 2): a reply has none,
/// so any Route a peer put in one goes, whatever the reply (it would carry
/// that peer's addresses to the other side).
pub fn reply_without_route(reply: Headers<'_>) -> Vec<Edit> {
    let mut edits = Vec::new();
    replace_fields(reply, "route", None, Vec::new(), &mut edits);
    edits
}

/// The Route fields of a request outside a dialog (one that creates a
/// dialog, or none) that the script does not route by: a sender's Route
/// entries (a preloaded route) pass only when the script sent the request
/// along them (its next hop `next_hop` is their first entry past
/// Kamailio's own, as loose_route() sets it); otherwise they are hops the
/// sender chose, often on its own side, and they all go.
pub fn unrouted_routes(
    request: Headers<'_>,
    next_hop: Option<&str>,
    is_kamailio: &dyn Fn(&str) -> bool,
) -> Vec<Edit> {
    let routes = entries(request, "route", None);
    let first_other = routes
        .iter()
        .map(|e| entry_uri(e))
        .find(|u| !is_kamailio(u));
    let routed_by = |uri: &str| {
        next_hop.is_some_and(|hop| {
            hop.eq_ignore_ascii_case(uri)
                || (uri_host_port(hop).is_some() && uri_host_port(hop) == uri_host_port(uri))
        })
    };
    let mut edits = Vec::new();
    match first_other {
        Some(uri) if !routed_by(uri) => {
            replace_fields(request, "route", None, Vec::new(), &mut edits)
        }
        _ => {}
    }
    edits
}

/// A request outside any dialog that creates none (OPTIONS, MESSAGE,
/// REGISTER, ...), or a reply to one: Record-Route means nothing there, so
/// the other side's entries go, and so does its Contact (nothing is routed
/// to it later), except a REGISTER's and its 200's (`keep_contact`): the
/// binding it registers, the bindings the registrar lists back.
pub fn outside_dialog(message: Headers<'_>, keep_contact: bool) -> Vec<Edit> {
    let mut edits = Vec::new();
    replace_fields(message, "record-route", None, Vec::new(), &mut edits);
    if !keep_contact {
        replace_fields(message, "contact", Some("m"), Vec::new(), &mut edits);
    }
    edits
}

/// An in-dialog request from one side to the other: its Route and
/// Record-Route fields go and the route set toward the target comes in;
/// the sender's Contact (if any) is masked; the Call-ID becomes the
/// target's. A trusted, record-routed target sees Record-Routes and the
/// sender's real Contact. Returns the sender's Contact URI (a target
/// refresh).
pub fn in_dialog_request<'a>(
    request: Headers<'a>,
    route_to_target: &[String],
    shown: Shown<'_>,
    target_call_id: Option<&str>,
) -> (Vec<Edit>, Option<Cow<'a, str>>) {
    let contact = contact_uri(request);
    let mut edits = Vec::new();
    replace_fields(
        request,
        "route",
        None,
        header_lines("Route", route_to_target.iter().map(String::as_str)),
        &mut edits,
    );
    if !shown.sees_routing() {
        replace_fields(request, "record-route", None, Vec::new(), &mut edits);
    }
    // Every Contact field goes; the masked one comes in for a usable URI.
    show_contact(request, shown, contact.is_some(), &mut edits);
    if let Some(id) = target_call_id {
        replace_fields(request, "call-id", Some("i"), call_id_line(id), &mut edits);
    }
    (edits, contact)
}

/// A reply to an in-dialog request, going back to its sender: the
/// replier's Contact is masked, stray Record-Routes go, and the Call-ID is
/// the sender's. A trusted, record-routed sender gets them as they are
/// (the Contact with the token). Returns the replier's Contact URI.
pub fn in_dialog_reply<'a>(
    reply: Headers<'a>,
    shown: Shown<'_>,
    sender_call_id: Option<&str>,
) -> (Vec<Edit>, Option<Cow<'a, str>>) {
    let contact = contact_uri(reply);
    let mut edits = Vec::new();
    if !shown.sees_routing() {
        replace_fields(reply, "record-route", None, Vec::new(), &mut edits);
    }
    show_contact(reply, shown, contact.is_some(), &mut edits);
    if let Some(id) = sender_call_id {
        replace_fields(reply, "call-id", Some("i"), call_id_line(id), &mut edits);
    }
    (edits, contact)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::edit::apply;
    use crate::sip::headers::Scanned;

    const INVITE: &str = "INVITE sip:bob@10.2.2.2 SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.1.1.1;branch=z9hG4bK1\r\n\
Record-Route: <sip:a2.caller.net;lr>\r\n\
Record-Route: <sip:a1.caller.net;lr>, <sip:a0.caller.net;lr>\r\n\
From: <sip:alice@caller.net>;tag=ft\r\n\
To: <sip:bob@callee.net>\r\n\
Call-ID: secret-call@caller.net\r\n\
CSeq: 1 INVITE\r\n\
Contact: \"Alice\" <sip:alice@192.168.1.10:5060;transport=udp>;+sip.instance=\"<urn:uuid:1>\"\r\n\
Content-Length: 0\r\n\r\n";

    fn masked(token: &str) -> MaskedContact {
        MaskedContact::plain(token.into(), ContactHost::Known("203.0.113.1:5060".into()))
    }

    fn text(msg: &str, edits: &[Edit]) -> String {
        String::from_utf8(apply(msg.as_bytes(), edits)).unwrap()
    }

    #[test]
    fn caller_side_of_an_invite() {
        let c = caller_side(Scanned::new(INVITE).h()).unwrap();
        assert_eq!(c.contact, "sip:alice@192.168.1.10:5060;transport=udp");
        assert_eq!(
            c.route,
            [
                "<sip:a2.caller.net;lr>",
                "<sip:a1.caller.net;lr>",
                "<sip:a0.caller.net;lr>"
            ]
        );
    }

    #[test]
    fn initial_request_hides_record_route_contact_and_call_id() {
        let e = initial_request(
            Scanned::new(INVITE).h(),
            Shown::hidden(Some(&masked("TOKa"))),
            Some("masked-id"),
        );
        let out = text(INVITE, &e);
        assert!(!out.contains("caller.net;lr"), "{out}");
        assert!(!out.contains("192.168.1.10"), "{out}");
        assert!(!out.contains("urn:uuid"), "{out}");
        assert!(!out.contains("secret-call"), "{out}");
        assert!(
            out.contains("\r\nContact: <sip:TOKa@203.0.113.1:5060>\r\n"),
            "{out}"
        );
        assert!(out.contains("\r\nCall-ID: masked-id\r\n"), "{out}");
        assert!(out.contains("From: <sip:alice@caller.net>;tag=ft\r\n"));
        assert!(out.ends_with("Content-Length: 0\r\n\r\n"));
    }

    #[test]
    fn initial_request_without_contact_is_still_hidden() {
        let msg = INVITE.replace("Contact: \"Alice\"", "X-Note: \"Alice\"");
        let out = text(
            &msg,
            &initial_request(
                Scanned::new(&msg).h(),
                Shown::hidden(Some(&masked("T"))),
                None,
            ),
        );
        assert!(
            !out.contains("caller.net;lr") && !out.contains("Contact:"),
            "{out}"
        );
        // An unreadable Contact is removed, not passed on.
        let broken = INVITE.replace("<sip:alice@192.168.1.10:5060;transport=udp>", "<sip:");
        let out = text(
            &broken,
            &initial_request(
                Scanned::new(&broken).h(),
                Shown::hidden(Some(&masked("T"))),
                None,
            ),
        );
        assert!(!out.contains("Alice"), "{out}");
    }

    const REPLY: &str = "SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 203.0.113.1;branch=z9hG4bKk\r\n\
Record-Route: <sip:b1.callee.net;lr>,<sip:b0.callee.net;lr>\r\n\
Record-Route: <sip:203.0.113.1;lr;ftag=ft>\r\n\
From: <sip:alice@caller.net>;tag=ft\r\n\
To: <sip:bob@callee.net>;tag=tt\r\n\
i: masked-id\r\n\
CSeq: 1 INVITE\r\n\
m: <sip:bob@10.2.2.2:5080>\r\n\
Content-Length: 0\r\n\r\n";

    fn is_k(uri: &str) -> bool {
        uri.starts_with("sip:203.0.113.1")
    }

    #[test]
    fn reply_to_caller_shows_kamailio_and_caller_side_only() {
        let caller = caller_side(Scanned::new(INVITE).h()).unwrap();
        let callee = callee_side(Scanned::new(REPLY).h(), &is_k);
        let e = reply_to_caller(
            Scanned::new(REPLY).h(),
            &caller.route,
            Shown::hidden(Some(&masked("TOKb"))),
            Some("secret-call@caller.net"),
            &is_k,
            true,
            None,
        );
        assert_eq!(callee.contact.as_deref(), Some("sip:bob@10.2.2.2:5080"));
        // Nearest to Kamailio first.
        assert_eq!(
            callee.route,
            ["<sip:b0.callee.net;lr>", "<sip:b1.callee.net;lr>"]
        );
        let out = text(REPLY, &e);
        assert!(
            out.contains(
                "Record-Route: <sip:203.0.113.1;lr;ftag=ft>\r\n\
Record-Route: <sip:a2.caller.net;lr>\r\n\
Record-Route: <sip:a1.caller.net;lr>\r\n\
Record-Route: <sip:a0.caller.net;lr>\r\n"
            ),
            "{out}"
        );
        assert!(!out.contains("callee.net;lr"), "{out}");
        assert!(!out.contains("10.2.2.2"), "{out}");
        assert!(!out.contains("masked-id"), "{out}");
        assert!(
            out.contains("Contact: <sip:TOKb@203.0.113.1:5060>\r\n"),
            "{out}"
        );
        assert!(out.contains("Call-ID: secret-call@caller.net\r\n"), "{out}");
    }

    #[test]
    fn reply_without_kamailio_record_route() {
        let reply = REPLY.replace("Record-Route: <sip:203.0.113.1;lr;ftag=ft>\r\n", "");
        let callee = callee_side(Scanned::new(&reply).h(), &is_k);
        let e = reply_to_caller(
            Scanned::new(&reply).h(),
            &[],
            Shown::hidden(Some(&masked("T"))),
            None,
            &is_k,
            true,
            None,
        );
        assert_eq!(callee.route.len(), 2);
        let out = text(&reply, &e);
        assert!(!out.contains("Record-Route"), "{out}");
    }

    #[test]
    fn the_route_set_toward_the_callee_rides_in_kamailios_entry() {
        let carrier = RouteCarrier {
            sealed: "SEALED",
            hostport: "203.0.113.1:5060",
        };
        let e = reply_to_caller(
            Scanned::new(REPLY).h(),
            &[],
            Shown::hidden(Some(&masked("T"))),
            None,
            &is_k,
            true,
            Some(&carrier),
        );
        let out = text(REPLY, &e);
        assert!(
            out.contains("Record-Route: <sip:203.0.113.1;lr;ftag=ft;tpr=SEALED>\r\n"),
            "{out}"
        );
        // The caller's requests bring it back in their Route.
        let bye = "BYE sip:T@203.0.113.1 SIP/2.0\r\nRoute: <sip:a0.caller.net;lr>, \
<sip:203.0.113.1;lr;ftag=ft;tpr=SEALED>\r\nCall-ID: c\r\n\r\n";
        assert_eq!(
            route_param(Scanned::new(bye).h()).as_deref(),
            Some("SEALED")
        );
        // A script that did not record-route: Kamailio's own entry comes in.
        let reply = REPLY.replace("Record-Route: <sip:203.0.113.1;lr;ftag=ft>\r\n", "");
        let e = reply_to_caller(
            Scanned::new(&reply).h(),
            &[],
            Shown::hidden(Some(&masked("T"))),
            None,
            &is_k,
            true,
            Some(&carrier),
        );
        let out = text(&reply, &e);
        assert!(
            out.contains("Record-Route: <sip:203.0.113.1:5060;lr;tpr=SEALED>\r\n")
                && !out.contains("callee.net;lr"),
            "{out}"
        );
    }

    #[test]
    fn provisional_reply_without_contact_keeps_no_contact() {
        let reply = REPLY.replace("m: <sip:bob@10.2.2.2:5080>\r\n", "");
        let callee = callee_side(Scanned::new(&reply).h(), &is_k);
        let e = reply_to_caller(
            Scanned::new(&reply).h(),
            &[],
            Shown::hidden(Some(&masked("T"))),
            None,
            &is_k,
            true,
            None,
        );
        assert_eq!(callee.contact, None);
        assert!(!text(&reply, &e).contains("Contact"));
    }

    #[test]
    fn unusable_contacts_and_failures_leave_no_contact_at_all() {
        for contact in [
            "m: <>, <sip:bob@10.2.2.2:5080>",
            "m: *, <sip:bob@10.2.2.2:5080>",
        ] {
            let reply = REPLY.replace("m: <sip:bob@10.2.2.2:5080>", contact);
            let callee = callee_side(Scanned::new(&reply).h(), &is_k);
            let e = reply_to_caller(
                Scanned::new(&reply).h(),
                &[],
                Shown::hidden(Some(&masked("T"))),
                None,
                &is_k,
                true,
                None,
            );
            assert_eq!(callee.contact, None);
            let out = text(&reply, &e);
            assert!(
                !out.contains("10.2.2.2") && !out.contains("\r\nm:"),
                "{out}"
            );
        }
        // A 302's redirect target and a failure's Contact go; no masked one.
        let redirect = REPLY.replace("200 OK", "302 Moved");
        let e = reply_to_caller(
            Scanned::new(&redirect).h(),
            &[],
            Shown::hidden(Some(&masked("T"))),
            None,
            &is_k,
            false,
            None,
        );
        let out = text(&redirect, &e);
        assert!(
            !out.contains("10.2.2.2") && !out.contains("Contact"),
            "{out}"
        );
        assert!(!out.contains("callee.net;lr"), "{out}");
    }

    #[test]
    fn outside_dialogs_no_record_route_and_no_contact_but_register_bindings() {
        let reply = REPLY.replace("CSeq: 1 INVITE", "CSeq: 1 OPTIONS");
        let out = text(&reply, &outside_dialog(Scanned::new(&reply).h(), false));
        assert!(
            !out.contains("Record-Route") && !out.contains("10.2.2.2"),
            "{out}"
        );
        let out = text(&reply, &outside_dialog(Scanned::new(&reply).h(), true));
        assert!(
            !out.contains("Record-Route") && out.contains("m: <sip:bob@10.2.2.2:5080>"),
            "{out}"
        );
        let out = text(INVITE, &outside_dialog(Scanned::new(INVITE).h(), false));
        assert!(
            !out.contains("caller.net;lr") && !out.contains("192.168.1.10"),
            "{out}"
        );
        let out = text(INVITE, &outside_dialog(Scanned::new(INVITE).h(), true));
        assert!(
            !out.contains("caller.net;lr") && out.contains("192.168.1.10"),
            "{out}"
        );
    }

    #[test]
    fn in_dialog_request_gets_the_target_route_set() {
        let bye = "BYE sip:TOKb@203.0.113.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.1.1.1;branch=z9hG4bK2\r\n\
Route: <sip:evil.example;lr>\r\n\
From: <sip:alice@caller.net>;tag=ft\r\n\
To: <sip:bob@callee.net>;tag=tt\r\n\
Call-ID: secret-call@caller.net\r\n\
CSeq: 2 BYE\r\n\
Contact: <sip:alice@192.168.1.99>\r\n\
Content-Length: 0\r\n\r\n";
        let route = vec!["<sip:b0.callee.net;lr>".to_string()];
        let bye_scanned = Scanned::new(bye);
        let (e, contact) = in_dialog_request(
            bye_scanned.h(),
            &route,
            Shown::hidden(Some(&masked("TOKa"))),
            Some("masked-id"),
        );
        assert_eq!(contact.as_deref(), Some("sip:alice@192.168.1.99"));
        let out = text(bye, &e);
        assert!(out.contains("Route: <sip:b0.callee.net;lr>\r\n"), "{out}");
        assert!(!out.contains("evil.example"), "{out}");
        assert!(!out.contains("192.168.1.99"), "{out}");
        assert!(out.contains("Contact: <sip:TOKa@203.0.113.1:5060>\r\n"));
        assert!(out.contains("Call-ID: masked-id\r\n"));
    }

    #[test]
    fn in_dialog_reply_masks_the_replier() {
        let reply = Scanned::new(REPLY);
        let (e, contact) = in_dialog_reply(
            reply.h(),
            Shown::hidden(Some(&masked("TOKb"))),
            Some("orig"),
        );
        assert_eq!(contact.as_deref(), Some("sip:bob@10.2.2.2:5080"));
        let out = text(REPLY, &e);
        assert!(!out.contains("Record-Route"));
        assert!(out.contains("Contact: <sip:TOKb@203.0.113.1:5060>\r\n"));
        assert!(out.contains("Call-ID: orig\r\n"));
    }

    #[test]
    fn a_sender_route_passes_only_when_the_script_routes_by_it() {
        let invite = "INVITE sip:bob@10.2.2.2 SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\n\
Route: <sip:203.0.113.1;lr>, <sip:10.9.9.9;lr>\r\nRoute: <sip:10.8.8.8;lr>\r\n\
Call-ID: c\r\n\r\n";
        let h = Scanned::new(invite);
        // loose_route() sent it to the first route past Kamailio's own.
        assert!(unrouted_routes(h.h(), Some("sip:10.9.9.9;lr"), &is_k).is_empty());
        // Not routed by them (no next hop, or another one): they all go.
        for hop in [None, Some("sip:10.2.2.2")] {
            let out = text(invite, &unrouted_routes(h.h(), hop, &is_k));
            assert!(!out.contains("Route"), "{out}");
        }
        // Only Kamailio's own, or none: nothing to do.
        let own = "OPTIONS sip:b@x SIP/2.0\r\nRoute: <sip:203.0.113.1;lr>\r\n\r\n";
        assert!(unrouted_routes(Scanned::new(own).h(), None, &is_k).is_empty());
    }

    #[test]
    fn a_route_set_replaces_the_senders_route() {
        let invite = "INVITE sip:T@203.0.113.1 SIP/2.0\r\nRoute: <sip:10.9.9.9;lr>\r\n\
Call-ID: c\r\nroute: <sip:10.9.9.8;lr>\r\n\r\n";
        let h = Scanned::new(invite);
        let route = vec!["<sip:p1;lr>".to_string(), "<sip:p2;lr>".to_string()];
        assert_eq!(
            text(invite, &route_set(h.h(), &route)),
            "INVITE sip:T@203.0.113.1 SIP/2.0\r\nRoute: <sip:p1;lr>\r\nRoute: <sip:p2;lr>\r\n\
Call-ID: c\r\n\r\n"
        );
        assert_eq!(
            text(invite, &route_set(h.h(), &[])),
            "INVITE sip:T@203.0.113.1 SIP/2.0\r\nCall-ID: c\r\n\r\n"
        );
    }

    #[test]
    fn a_reply_loses_every_route_field() {
        let reply = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP k;branch=z9hG4bK1\r\n\
Route: <sip:10.9.9.9;lr>\r\nFrom: <sip:a@x>;tag=1\r\nROUTE: <sip:10.9.9.8;lr>, <sip:10.9.9.7>\r\n\
Call-ID: c\r\nContent-Length: 0\r\n\r\n";
        let scanned = Scanned::new(reply);
        assert_eq!(
            text(reply, &reply_without_route(scanned.h())),
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP k;branch=z9hG4bK1\r\n\
From: <sip:a@x>;tag=1\r\nCall-ID: c\r\nContent-Length: 0\r\n\r\n"
        );
    }

    #[test]
    fn contact_uri_range_points_at_the_uri() {
        let scanned = Scanned::new(INVITE);
        let r = contact_uri_range(scanned.h()).unwrap();
        assert_eq!(&INVITE[r], "sip:alice@192.168.1.10:5060;transport=udp");
    }

    #[test]
    fn call_id_of_a_message() {
        assert_eq!(call_id(Scanned::new(REPLY).h()).unwrap(), "masked-id");
        assert_eq!(
            call_id(Scanned::new("SIP/2.0 200 OK\r\nTo: x\r\n\r\n").h()),
            Err(PlanError::NoCallId)
        );
    }

    fn contact_line(m: &MaskedContact) -> String {
        String::from_utf8(m.header()).unwrap()
    }

    #[test]
    fn masked_contacts_in_every_form() {
        let known = ContactHost::Known("203.0.113.1:5061;transport=tls".into());
        let mut m = MaskedContact::plain("T0K".into(), known.clone());
        assert_eq!(
            contact_line(&m),
            "Contact: <sip:T0K@203.0.113.1:5061;transport=tls>\r\n"
        );
        // A SIPS Request-URI: a sips: Contact, TLS implied.
        m.sips = true;
        assert_eq!(contact_line(&m), "Contact: <sips:T0K@203.0.113.1:5061>\r\n");
        // A user part of its own: the token goes into the parameter.
        m.user = Some("alice".into());
        m.token_param = "xyz";
        assert_eq!(
            contact_line(&m),
            "Contact: <sips:alice@203.0.113.1:5061;xyz=T0K>\r\n"
        );
        // A party without a user part (contact_mode 1).
        m.user = Some(String::new());
        m.sips = false;
        assert_eq!(
            contact_line(&m),
            "Contact: <sip:203.0.113.1:5061;transport=tls;xyz=T0K>\r\n"
        );
        // In a request: the core fills in the socket, or the transport
        // after an operator's host.
        let m = MaskedContact::plain("T0K".into(), ContactHost::SendSocket);
        assert_eq!(
            contact_line(&m),
            format!("Contact: <sip:T0K@{SEND_SOCKET}>\r\n")
        );
        let m = MaskedContact { sips: true, ..m };
        assert_eq!(
            contact_line(&m),
            format!("Contact: <sips:T0K@{SEND_ADDRESS}>\r\n")
        );
        let m = MaskedContact {
            user: Some("bob".into()),
            host: ContactHost::Custom("sbc.example.com".into()),
            sips: false,
            ..m
        };
        assert_eq!(
            contact_line(&m),
            format!("Contact: <sip:bob@sbc.example.com{SEND_TRANSPORT};tps=T0K>\r\n")
        );
        let m = MaskedContact { sips: true, ..m };
        assert_eq!(
            contact_line(&m),
            "Contact: <sips:bob@sbc.example.com;tps=T0K>\r\n"
        );
    }

    #[test]
    fn a_trusted_callee_sees_the_caller_side_with_the_token_in_its_contact() {
        let m = masked("TOKa");
        let out = text(
            INVITE,
            &initial_request(
                Scanned::new(INVITE).h(),
                Shown {
                    masked: Some(&m),
                    receiver: Receiver::TrustedRecordRouted,
                },
                None,
            ),
        );
        assert!(
            out.contains("Record-Route: <sip:a2.caller.net;lr>\r\n"),
            "{out}"
        );
        assert!(out.contains("Call-ID: secret-call@caller.net\r\n"), "{out}");
        assert!(
            out.contains(
                "Contact: \"Alice\" <sip:alice@192.168.1.10:5060;transport=udp;tps=TOKa>;+sip.instance"
            ),
            "{out}"
        );
        // Trusted, but not record-routed: its requests must not go around
        // Kamailio (no Record-Route of the caller side, the masked Contact).
        let out = text(
            INVITE,
            &initial_request(
                Scanned::new(INVITE).h(),
                Shown {
                    masked: Some(&m),
                    receiver: Receiver::Trusted,
                },
                None,
            ),
        );
        assert!(!out.contains("caller.net;lr"), "{out}");
        assert!(
            out.contains("\r\nContact: <sip:TOKa@203.0.113.1:5060>\r\n"),
            "{out}"
        );
    }

    #[test]
    fn the_token_goes_into_the_uri_of_any_contact_form() {
        for (contact, shown) in [
            (
                "m: sip:bob@10.2.2.2:5080",
                "m: <sip:bob@10.2.2.2:5080;tps=T>",
            ),
            (
                "m: sip:bob@10.2.2.2;expires=60",
                "m: <sip:bob@10.2.2.2;tps=T>;expires=60",
            ),
            (
                "m: <sip:bob@10.2.2.2?Subject=x>",
                "m: <sip:bob@10.2.2.2;tps=T?Subject=x>",
            ),
            (
                "m: \"B\" < sip:bob@[::1] >",
                "m: \"B\" < sip:bob@[::1];tps=T >",
            ),
        ] {
            let reply = REPLY.replace("m: <sip:bob@10.2.2.2:5080>", contact);
            let e = contact_with_token(Scanned::new(&reply).h(), "tps", "T").unwrap();
            assert!(
                text(&reply, &e).contains(&format!("\r\n{shown}\r\n")),
                "{contact}"
            );
        }
    }

    #[test]
    fn a_trusted_caller_sees_the_callee_side_as_it_is() {
        let caller = caller_side(Scanned::new(INVITE).h()).unwrap();
        let m = masked("TOKb");
        let callee = callee_side(Scanned::new(REPLY).h(), &is_k);
        let e = reply_to_caller(
            Scanned::new(REPLY).h(),
            &caller.route,
            Shown {
                masked: Some(&m),
                receiver: Receiver::TrustedRecordRouted,
            },
            None,
            &is_k,
            true,
            None,
        );
        assert_eq!(callee.route.len(), 2);
        let out = text(REPLY, &e);
        assert!(
            out.contains(
                "Record-Route: <sip:b1.callee.net;lr>\r\nRecord-Route: <sip:b0.callee.net;lr>\r\n\
Record-Route: <sip:203.0.113.1;lr;ftag=ft>\r\nRecord-Route: <sip:a2.caller.net;lr>\r\n"
            ),
            "{out}"
        );
        assert!(
            out.contains("m: <sip:bob@10.2.2.2:5080;tps=TOKb>\r\n"),
            "{out}"
        );
        // A failure's Contact passes to a trusted caller.
        let busy = REPLY.replace("200 OK", "486 Busy");
        let e = reply_to_caller(
            Scanned::new(&busy).h(),
            &[],
            Shown {
                masked: Some(&m),
                receiver: Receiver::Trusted,
            },
            None,
            &is_k,
            false,
            None,
        );
        assert!(text(&busy, &e).contains("m: <sip:bob@10.2.2.2:5080>\r\n"));
    }

    #[test]
    fn a_trusted_callee_echoes_the_caller_route_which_the_caller_sees_once() {
        let caller = caller_side(Scanned::new(INVITE).h()).unwrap();
        let echoed = REPLY.replace(
            "Record-Route: <sip:203.0.113.1;lr;ftag=ft>\r\n",
            "Record-Route: <sip:203.0.113.1;lr;ftag=ft>\r\nRecord-Route: <sip:a2.caller.net;lr>\r\n\
Record-Route: <sip:a1.caller.net;lr>, <sip:a0.caller.net;lr>\r\n",
        );
        let callee = callee_side(Scanned::new(&echoed).h(), &is_k);
        let e = reply_to_caller(
            Scanned::new(&echoed).h(),
            &caller.route,
            Shown::hidden(Some(&masked("TOKb"))),
            None,
            &is_k,
            true,
            None,
        );
        assert_eq!(
            callee.route,
            ["<sip:b0.callee.net;lr>", "<sip:b1.callee.net;lr>"]
        );
        let out = text(&echoed, &e);
        assert_eq!(out.matches("a2.caller.net").count(), 1, "{out}");
        assert!(!out.contains("callee.net;lr"), "{out}");
    }
}
