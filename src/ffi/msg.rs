//! `SipMsg`: the safe face of Kamailio's `struct sip_msg`. All raw pointer
//! access to a message happens here; the rest of the module works on byte
//! slices and offsets.

use super::bindings::{
    anchor_lump, check_self, del_lump, insert_new_lump_after, ip_addr2a, lump_op_LUMP_ADD,
    lump_op_LUMP_ADD_SUBST, lump_op_LUMP_DEL, lump_op_LUMP_NOP, lump_subst_SUBST_NOP,
    received_builder, received_test, request_method_METHOD_ACK, reset_dst_uri, rewrite_uri,
    rport_builder, set_dst_uri, sip_msg, sip_protos_PROTO_SCTP, sip_protos_PROTO_TCP,
    sip_protos_PROTO_TLS, sip_protos_PROTO_WS, sip_protos_PROTO_WSS, str_, topos_shim_callid_cseq,
    lump, lump_subst, lump_subst_SUBST_SND_ALL, lump_subst_SUBST_SND_IP, lump_subst_SUBST_SND_PORT,
    lump_subst_SUBST_SND_PROTO, sip_protos_PROTO_UDP, topos_shim_cond_diff_proto_after,
    topos_shim_current_ruri, topos_shim_has_record_route_lump, topos_shim_param_str,
    topos_shim_parse_to_eoh, topos_shim_pkg_free, topos_shim_subst_after,
    topos_shim_pkg_malloc, topos_shim_rcv_socket, topos_shim_set_pv_str, topos_shim_to_tag,
    SIP_REPLY, SIP_REQUEST,
};
use crate::error::{Error, Result};
use crate::message_context::MsgId;
use crate::sip::edit::{self, coalesce, Edit, Piece, SEND_ADDRESS, SEND_SOCKET};
use crate::sip::name_addr::uri_host_port;
use crate::sip::restore::TopViaUpdate;
use std::marker::PhantomData;
use std::ops::Range;
use std::os::raw::{c_char, c_int, c_uint};
use std::ptr::NonNull;

/// A cfg script function parameter after its fixup (Kamailio passes it as
/// an opaque `char *`): a string that may hold pseudo-variables, or a
/// writable pseudo-variable, depending on the function's fixup. Only the FFI
/// layer sees it (handlers get `script_args::ScriptArgs`).
#[derive(Clone, Copy)]
pub(in crate::ffi) struct ScriptParam(pub(in crate::ffi) *mut c_char);

/// A message Kamailio handed to the module (a received request or reply, a
/// tm "faked" request, or a transaction's shm copy of its request), valid
/// for `'k` (the call that received it). Its bytes never change during that
/// time (edits become lumps), so views of them (`buf`) live for `'k` too and
/// do not hold the message borrowed.
pub struct SipMsg<'k> {
    raw: NonNull<sip_msg>,
    /// Edits not yet turned into lumps (see `commit`).
    pending: Vec<Edit>,
    _valid: PhantomData<&'k sip_msg>,
}

/// The `;received=` / `;rport=` texts the core would write into a request's
/// top Via when relaying it.
#[derive(Debug, Default)]
pub struct OwnedTopViaUpdate {
    pub received: Option<Vec<u8>>,
    pub rport: Option<Vec<u8>>,
}

impl OwnedTopViaUpdate {
    pub fn as_update(&self) -> TopViaUpdate<'_> {
        TopViaUpdate {
            received: self.received.as_deref(),
            rport: self.rport.as_deref(),
        }
    }
}

thread_local! {
    // `local_hostport` per listening socket (a handful per server).
    static HOSTPORTS: std::cell::RefCell<Vec<((usize, i32), String)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// The URI parameter naming a transport (Kamailio's `sip_protos`); UDP,
/// the default, goes without one.
fn transport_param(proto: u32) -> &'static str {
    [
        (sip_protos_PROTO_TCP, ";transport=tcp"),
        (sip_protos_PROTO_TLS, ";transport=tls"),
        (sip_protos_PROTO_SCTP, ";transport=sctp"),
        (sip_protos_PROTO_WS, ";transport=ws"),
        (sip_protos_PROTO_WSS, ";transport=wss"),
    ]
    .iter()
    .find(|(p, _)| *p == proto)
    .map_or("", |(_, t)| *t)
}

/// `text` in pkg memory (lump text must be: Kamailio frees it with the lump).
fn pkg_copy(text: &[u8]) -> Result<*mut c_char> {
    // SAFETY: plain allocation, checked for null; filled before use.
    unsafe {
        let p = topos_shim_pkg_malloc(text.len().max(1)) as *mut c_char;
        if p.is_null() {
            return Err(Error::OutOfMemory("out of pkg memory for a lump"));
        }
        std::ptr::copy_nonoverlapping(text.as_ptr(), p as *mut u8, text.len());
        Ok(p)
    }
}

/// A lump with `text` (copied to pkg memory) after `after` in its chain.
fn text_after(after: *mut lump, text: &[u8]) -> Result<*mut lump> {
    let copy = pkg_copy(text)?;
    // SAFETY: `after` is a lump of the message being edited; `copy` holds
    // text.len() bytes and is adopted by the new lump, or ours to free.
    unsafe {
        let l = insert_new_lump_after(after, copy, text.len() as c_int, 0);
        if l.is_null() {
            topos_shim_pkg_free(copy.cast());
            return Err(Error::Kamailio("cannot create an insertion lump"));
        }
        Ok(l)
    }
}

/// A substitution lump (`subst`: filled in by the core) after `after`.
fn subst_after(after: *mut lump, subst: lump_subst) -> Result<*mut lump> {
    // SAFETY: `after` is a lump of the message being edited.
    let l = unsafe { topos_shim_subst_after(after, subst as c_int) };
    if l.is_null() {
        return Err(Error::OutOfMemory("out of pkg memory for a lump"));
    }
    Ok(l)
}

/// Copies a NUL-terminated pkg string built by the core, then frees it.
///
/// # Safety
/// `p` is null or a pkg_malloc'ed buffer of at least `len` bytes.
unsafe fn take_pkg_text(p: *mut c_char, len: c_uint) -> Option<Vec<u8>> {
    if p.is_null() {
        return None;
    }
    // SAFETY: per the function's contract, `len` bytes at `p` are ours to
    // read and then to free (once).
    unsafe {
        let v = std::slice::from_raw_parts(p as *const u8, len as usize).to_vec();
        topos_shim_pkg_free(p.cast());
        Some(v)
    }
}

impl<'k> SipMsg<'k> {
    /// # Safety
    /// `p` is null or points to a `sip_msg` that stays valid, is not
    /// accessed by anyone else, and whose `buf` is not replaced, for `'k`.
    pub unsafe fn from_raw(p: *mut sip_msg) -> Option<SipMsg<'k>> {
        NonNull::new(p).map(|raw| SipMsg {
            raw,
            pending: Vec::new(),
            _valid: PhantomData,
        })
    }

    pub fn as_ptr(&self) -> *mut sip_msg {
        self.raw.as_ptr()
    }

    fn get(&self) -> &sip_msg {
        // SAFETY: from_raw's contract keeps the pointer valid.
        unsafe { self.raw.as_ref() }
    }

    /// The raw struct, for the FFI code that must change its fields.
    pub(super) fn raw_mut(&mut self) -> &mut sip_msg {
        // SAFETY: from_raw's contract: valid and not aliased while in use.
        unsafe { self.raw.as_mut() }
    }

    /// The message as received (lumps not applied).
    pub fn buf(&self) -> &'k [u8] {
        let m = self.get();
        if m.buf.is_null() || m.len == 0 {
            return &[];
        }
        // SAFETY: Kamailio keeps `len` bytes at `buf` for the message's life.
        unsafe { std::slice::from_raw_parts(m.buf as *const u8, m.len as usize) }
    }

    pub fn is_request(&self) -> bool {
        self.get().first_line.type_ as u32 == SIP_REQUEST
    }

    pub fn is_reply(&self) -> bool {
        self.get().first_line.type_ as u32 == SIP_REPLY
    }

    pub fn is_ack(&self) -> bool {
        // SAFETY: the union's request arm is valid for requests.
        self.is_request()
            && unsafe { self.get().first_line.u.request.method_value } as u32
                == request_method_METHOD_ACK
    }

    /// Reply status code (0 for requests).
    pub fn status(&self) -> u32 {
        if !self.is_reply() {
            return 0;
        }
        // SAFETY: the union's reply arm is valid for replies.
        unsafe { self.get().first_line.u.reply.statuscode }
    }

    /// Identifies this message within this process.
    pub fn identity(&self) -> MsgId {
        let m = self.get();
        MsgId::new(self.raw.as_ptr() as usize, m.id, m.pid)
    }

    /// Queues a plan's edits: deletions of original bytes and insertions
    /// at original offsets, turned into lumps at `commit`.
    pub fn apply(&mut self, edits: Vec<Edit>) -> Result<()> {
        for e in edits {
            let range = match &e {
                Edit::Delete(r) => r.clone(),
                Edit::Insert(at, _) => *at..*at,
            };
            self.check_range(&range)?;
            self.pending.push(e);
        }
        Ok(())
    }

    /// Drops the edits queued since the last `commit` (a plan that failed
    /// half-way).
    pub fn discard_pending(&mut self) {
        self.pending.clear();
    }

    /// Turns the queued edits into lumps, adjacent deletions merged: every
    /// lump costs Kamailio an allocation (and tm a copy in shared memory).
    /// Nothing is applied if an edit was refused before.
    pub fn commit(&mut self) -> Result<()> {
        for e in coalesce(std::mem::take(&mut self.pending)) {
            match e {
                Edit::Delete(r) => self.delete_lump(r)?,
                Edit::Insert(at, text) => self.insert_lump(at, &text)?,
            }
        }
        Ok(())
    }

    /// Neutralizes every change queued strictly inside a range the message
    /// deletes (another module's edit of a header topos_rs removed, e.g.
    /// nathelper's fix of the Contact URI): the core would otherwise move
    /// it to the end of the deleted range, gluing a URI fragment onto the
    /// next header and showing the far side what topos_rs hid. Changes at
    /// the start of a line (a whole header added where another went, or
    /// topos_rs's own inside a run of deleted lines) are kept: moved to the
    /// end of the deletion they still stand between headers. Returns how
    /// many were neutralized.
    pub fn drop_edits_inside_deletions(&mut self) -> usize {
        let buf = self.buf();
        let first = self.get().add_rm;
        let mut deleted = Vec::new();
        let mut t = first;
        while !t.is_null() {
            // SAFETY: the message's lump list, as in text_with_lumps.
            let l = unsafe { &*t };
            if l.op == lump_op_LUMP_DEL && l.len > 0 {
                // SAFETY: a DEL lump's union holds its offset.
                let off = unsafe { l.u.offset };
                deleted.push(off..off + l.len);
            }
            t = l.next;
        }
        let mut dropped = 0;
        let mut t = first;
        while !t.is_null() {
            // SAFETY: as above; the lumps belong to this message, which
            // this process alone is building now.
            let l = unsafe { &mut *t };
            t = l.next;
            if l.op != lump_op_LUMP_DEL && l.op != lump_op_LUMP_NOP {
                continue;
            }
            // SAFETY: DEL and NOP lumps hold an offset.
            let off = unsafe { l.u.offset };
            let line_start = off <= 0 || buf.get(off as usize - 1) == Some(&b'\n');
            if line_start || !deleted.iter().any(|d| off > d.start && off < d.end) {
                continue;
            }
            if l.op == lump_op_LUMP_DEL {
                l.len = 0;
            }
            for first in [l.before, l.after] {
                let mut r = first;
                while !r.is_null() {
                    // SAFETY: the lump's before/after chain.
                    let x = unsafe { &mut *r };
                    if x.op == lump_op_LUMP_ADD_SUBST {
                        x.u.subst = lump_subst_SUBST_NOP;
                    } else {
                        x.len = 0;
                    }
                    r = if first == l.before { x.before } else { x.after };
                }
            }
            dropped += 1;
        }
        dropped
    }

    /// The lump type is 0, not HDR_VIA_T: tm drops Via-typed lumps when it
    /// clones a request into a transaction.
    fn delete_lump(&mut self, range: Range<usize>) -> Result<()> {
        // SAFETY: check_range vetted the range against the message buffer.
        let l = unsafe { del_lump(self.as_ptr(), range.start as c_int, range.len() as c_int, 0) };
        if l.is_null() {
            return Err(Error::OutOfMemory(
                "cannot create a deletion lump (out of pkg memory?)",
            ));
        }
        Ok(())
    }

    fn anchor(&mut self, at: usize) -> Result<*mut lump> {
        // SAFETY: check_range vetted the offset against the message buffer.
        let anchor = unsafe { anchor_lump(self.as_ptr(), at as c_int, 0, 0) };
        if anchor.is_null() {
            return Err(Error::OutOfMemory(
                "cannot create an anchor lump (out of pkg memory?)",
            ));
        }
        Ok(anchor)
    }

    /// Inserts `text` at `at`. Markers in it (`sip::edit::MARKERS`) become
    /// Kamailio's substitutions, filled in for each copy of the message the
    /// core builds (the socket it leaves on).
    fn insert_lump(&mut self, at: usize, text: &[u8]) -> Result<()> {
        let mut chain = self.anchor(at)?;
        for piece in edit::pieces(text) {
            chain = match piece {
                Piece::Text(t) => text_after(chain, t)?,
                Piece::Marker(m) if m == SEND_SOCKET => {
                    subst_after(chain, lump_subst_SUBST_SND_ALL)?
                }
                Piece::Marker(m) if m == SEND_ADDRESS => {
                    let ip = subst_after(chain, lump_subst_SUBST_SND_IP)?;
                    let colon = text_after(ip, b":")?;
                    subst_after(colon, lump_subst_SUBST_SND_PORT)?
                }
                Piece::Marker(_) => self.send_transport_after(at, chain)?,
            };
        }
        Ok(())
    }

    /// Queues the deletion of `range` of the message body. The core keeps
    /// body changes apart and rewrites Content-Length for them, but only
    /// once it knows where the headers end: they are all parsed first.
    pub fn delete_from_body(&mut self, range: Range<usize>) -> Result<()> {
        // SAFETY: parses this message's headers (the core's own parser).
        if unsafe { topos_shim_parse_to_eoh(self.as_ptr()) } < 0 {
            return Err(Error::Malformed("cannot find the end of the headers"));
        }
        self.apply(vec![Edit::Delete(range)])
    }

    /// `;transport=x` of the socket the message leaves on, after `chain`;
    /// returns where the text goes on. For a message that came in over
    /// UDP, only when it leaves over another transport (the core decides
    /// per copy, so UDP gets none, as in its own URIs); the condition cuts
    /// the rest of its chain, so it sits on an anchor of its own at the
    /// same place and the text after it goes on a third one.
    fn send_transport_after(&mut self, at: usize, chain: *mut lump) -> Result<*mut lump> {
        if self.get().rcv.proto as u32 != sip_protos_PROTO_UDP {
            let t = text_after(chain, b";transport=")?;
            return subst_after(t, lump_subst_SUBST_SND_PROTO);
        }
        let own = self.anchor(at)?;
        // SAFETY: `own` is a fresh anchor lump of this message.
        let cond = unsafe { topos_shim_cond_diff_proto_after(own) };
        if cond.is_null() {
            return Err(Error::OutOfMemory("out of pkg memory for a lump"));
        }
        let t = text_after(cond, b";transport=")?;
        subst_after(t, lump_subst_SUBST_SND_PROTO)?;
        self.anchor(at)
    }

    /// The next hop the script set ($du: loose_route() or the script
    /// itself), if any.
    pub fn next_hop(&self) -> Option<&str> {
        let d = &self.get().dst_uri;
        if d.s.is_null() || d.len <= 0 {
            return None;
        }
        // SAFETY: the core's copy of the next hop, valid while the message
        // is; only read here.
        let bytes = unsafe { std::slice::from_raw_parts(d.s as *const u8, d.len as usize) };
        std::str::from_utf8(bytes).ok()
    }

    /// Where the script sends the request now: its next hop ($du) if it
    /// set one, else its Request-URI as the script left it ($ru).
    pub fn destination(&self) -> Option<String> {
        if let Some(hop) = self.next_hop() {
            return Some(hop.to_string());
        }
        let m = self.get();
        let u = if !m.new_uri.s.is_null() && m.new_uri.len > 0 {
            m.new_uri
        } else if self.is_request() {
            // SAFETY: the union's request arm is valid for requests.
            unsafe { m.first_line.u.request.uri }
        } else {
            return None;
        };
        if u.s.is_null() || u.len <= 0 {
            return None;
        }
        // SAFETY: the core's copy of the URI (pkg memory or the message
        // buffer), valid while the message is; only read here.
        let bytes = unsafe { std::slice::from_raw_parts(u.s as *const u8, u.len as usize) };
        std::str::from_utf8(bytes).ok().map(str::to_string)
    }

    /// Sends the request to `uri` (new Request-URI) through `next_hop`
    /// (the first Route URI) if any.
    pub fn retarget(&mut self, uri: &str, next_hop: Option<&str>) -> Result<()> {
        let mut u = str_ {
            s: uri.as_ptr() as *mut c_char,
            len: uri.len() as c_int,
        };
        // SAFETY: the core copies the URI into the message (pkg memory).
        if unsafe { rewrite_uri(self.as_ptr(), &mut u) } < 0 {
            return Err(Error::Kamailio("cannot set the Request-URI"));
        }
        match next_hop {
            Some(hop) => {
                let h = str_ {
                    s: hop.as_ptr() as *mut c_char,
                    len: hop.len() as c_int,
                };
                // SAFETY: as above.
                if unsafe { set_dst_uri(self.as_ptr(), &h) } < 0 {
                    return Err(Error::Kamailio("cannot set the next hop"));
                }
            }
            // SAFETY: clears a next hop loose_route() may have set.
            None => unsafe { reset_dst_uri(self.as_ptr()) },
        }
        Ok(())
    }

    /// Points this reply's second Via (what the core reads to decide on a
    /// Content-Length for stream transports) at `request`'s top Via. The
    /// request is the transaction's copy in shared memory, which outlives
    /// the reply; the reply's own Via structures stay where they are (the
    /// core frees them through its header list, never through `via2`).
    pub fn take_via2_from(&mut self, request: &SipMsg) {
        let top = request.get().via1;
        if !top.is_null() {
            self.raw_mut().via2 = top;
        }
    }

    /// The bytes at `range` as the script's changes leave them: deletions
    /// and insertions other modules queued inside the range (nathelper's
    /// `fix_nated_contact()` or `set_contact_alias()` on a Contact URI,
    /// before or after topos_rs) applied. None if an insertion there is
    /// not plain text (filled in only when the message is built).
    pub fn text_with_lumps(&self, range: Range<usize>) -> Option<Vec<u8>> {
        let base = self.buf().get(range.clone())?;
        let (start, end) = (range.start as i64, range.end as i64);
        let mut edits = Vec::new();
        let mut t = self.get().add_rm;
        while !t.is_null() {
            // SAFETY: the message's lump list: a null-terminated list of
            // lumps owned by the message, not changed while we read it.
            let l = unsafe { &*t };
            t = l.next;
            // SAFETY: for DEL and NOP lumps the union holds an offset.
            let offset = unsafe { l.u.offset } as i64;
            let inside = if l.op == lump_op_LUMP_DEL {
                offset >= start && offset + l.len as i64 <= end
            } else if l.op == lump_op_LUMP_NOP {
                offset >= start && offset <= end
            } else {
                false
            };
            if !inside {
                continue;
            }
            let at = (offset - start) as usize;
            let mut text = Vec::new();
            for first in [l.before, l.after] {
                let mut r = first;
                while !r.is_null() {
                    // SAFETY: before/after chains of a lump, as above.
                    let x = unsafe { &*r };
                    if x.op != lump_op_LUMP_ADD {
                        return None;
                    }
                    // SAFETY: an ADD lump's value holds len bytes.
                    let v = unsafe {
                        std::slice::from_raw_parts(x.u.value as *const u8, x.len.max(0) as usize)
                    };
                    text.extend_from_slice(v);
                    r = if first == l.before { x.before } else { x.after };
                }
            }
            if !text.is_empty() {
                edits.push(Edit::Insert(at, text));
            }
            if l.op == lump_op_LUMP_DEL {
                edits.push(Edit::Delete(at..at + l.len as usize));
            }
        }
        Some(edit::apply(base, &edits))
    }

    /// Where the message came from, as a SIP URI the core can send to
    /// (`sip:ip:port;transport=x`).
    pub fn source_uri(&self) -> String {
        let m = self.get();
        let ip = self.source_ip();
        let transport = transport_param(m.rcv.proto as u32);
        if ip.contains(':') {
            format!("sip:[{ip}]:{}{transport}", m.rcv.src_port)
        } else {
            format!("sip:{ip}:{}{transport}", m.rcv.src_port)
        }
    }

    /// The IP address the message came from, as text.
    pub fn source_ip(&self) -> String {
        let m = self.get();
        let mut ip = m.rcv.src_ip;
        // SAFETY: ip_addr2a formats a copy of the message's source address
        // into a static buffer, copied at once.
        unsafe { std::ffi::CStr::from_ptr(ip_addr2a(&mut ip)) }
            .to_string_lossy()
            .into_owned()
    }

    /// `;transport=x` of the transport the message came in over (empty
    /// for UDP).
    pub fn local_transport_param(&self) -> &'static str {
        transport_param(self.get().rcv.proto as u32)
    }

    /// True if the script's `record_route()` queued a Record-Route for
    /// this request (Kamailio stays in its dialog's route set).
    pub fn has_record_route_lump(&self) -> bool {
        // SAFETY: the shim walks this message's lump list, changing nothing.
        unsafe { topos_shim_has_record_route_lump(self.as_ptr()) == 1 }
    }

    /// True if the Request-URI the request will be relayed with (after the
    /// script's changes) is a SIPS URI.
    pub fn relayed_ruri_is_sips(&self) -> bool {
        let mut u = str_::default();
        // SAFETY: the shim points `u` at the message's current Request-URI,
        // which lives as long as the message; only its first bytes are read.
        unsafe {
            if topos_shim_current_ruri(self.as_ptr(), &mut u) < 0 || u.s.is_null() || u.len < 5 {
                return false;
            }
            std::slice::from_raw_parts(u.s as *const u8, 5).eq_ignore_ascii_case(b"sips:")
        }
    }

    /// `host:port[;transport=x]` of the local socket the message came in on.
    pub fn local_hostport(&self) -> Option<String> {
        let (mut addr, mut port) = (str_::default(), str_::default());
        let mut proto = 0;
        // SAFETY: the shim reads the message's receive socket; its address
        // and port texts live as long as the socket (the whole run).
        let (host, port) = unsafe {
            if topos_shim_rcv_socket(self.as_ptr(), &mut addr, &mut port, &mut proto) < 0 {
                return None;
            }
            let text =
                |s: &str_| std::slice::from_raw_parts(s.s as *const u8, s.len.max(0) as usize);
            (text(&addr), text(&port))
        };
        // Sockets live for the whole run: their text is built once per
        // socket, transport and process (keyed by the address text's
        // location and the transport: WS shares a TCP socket).
        let key = (addr.s as usize, proto);
        let cached =
            HOSTPORTS.with_borrow(|c| c.iter().find(|(k, _)| *k == key).map(|(_, v)| v.clone()));
        if cached.is_some() {
            return cached;
        }
        let transport = transport_param(proto as u32);
        let bracket = host.contains(&b':') && !host.starts_with(b"[");
        let mut out = String::with_capacity(host.len() + port.len() + 3 + transport.len());
        if bracket {
            out.push('[');
        }
        out.push_str(&String::from_utf8_lossy(host));
        if bracket {
            out.push(']');
        }
        out.push(':');
        out.push_str(&String::from_utf8_lossy(port));
        out.push_str(transport);
        HOSTPORTS.with_borrow_mut(|c| c.push((key, out.clone())));
        Some(out)
    }

    fn check_range(&self, r: &Range<usize>) -> Result<()> {
        if r.start > r.end || r.end > self.buf().len() {
            return Err(Error::LumpOutOfRange {
                start: r.start,
                end: r.end,
                len: self.buf().len(),
            });
        }
        Ok(())
    }

    /// What the core would add to this request's top Via when relaying it
    /// (core/msg_translator.c: received_test(), then the rport rule of the
    /// version built against, see `rport_rule`).
    pub fn top_via_update(&self) -> Result<OwnedTopViaUpdate> {
        let m = self.get();
        if m.via1.is_null() {
            return Err(Error::Malformed("request has no parsed top Via"));
        }
        let mut out = OwnedTopViaUpdate::default();
        // SAFETY: via1 is non-null and belongs to this message; the
        // builders return pkg strings that take_pkg_text frees.
        unsafe {
            if received_test(self.as_ptr()) != 0 {
                let mut len = 0;
                let p = received_builder(self.as_ptr(), &mut len);
                out.received =
                    Some(take_pkg_text(p, len).ok_or(Error::Kamailio("received_builder failed"))?);
            }
            if rport_rule(self.as_ptr()) {
                let mut len = 0;
                let p = rport_builder(self.as_ptr(), &mut len);
                out.rport =
                    Some(take_pkg_text(p, len).ok_or(Error::Kamailio("rport_builder failed"))?);
            }
        }
        Ok(out)
    }

    /// A string parameter's value for this message (pseudo-variables
    /// expanded).
    pub(in crate::ffi) fn param_str(&mut self, p: ScriptParam) -> Result<Vec<u8>> {
        let mut out = str_::default();
        // SAFETY: `p` was fixed up as a string parameter for this function;
        // the result points into pkg/static memory valid during the call.
        unsafe {
            if topos_shim_param_str(self.as_ptr(), p.0.cast(), &mut out) < 0 {
                return Err(Error::Kamailio("cannot evaluate a string parameter"));
            }
            if out.s.is_null() || out.len <= 0 {
                return Ok(Vec::new());
            }
            Ok(std::slice::from_raw_parts(out.s as *const u8, out.len as usize).to_vec())
        }
    }

    /// Sets a writable pseudo-variable parameter to `value`.
    pub(in crate::ffi) fn set_pv_str(&mut self, p: ScriptParam, value: &[u8]) -> Result<()> {
        // SAFETY: `p` was fixed up as a writable pseudo-variable; Kamailio
        // copies the value.
        let rc = unsafe {
            topos_shim_set_pv_str(
                self.as_ptr(),
                p.0.cast(),
                value.as_ptr().cast(),
                value.len() as c_int,
            )
        };
        if rc < 0 {
            return Err(Error::Kamailio("cannot set the result variable"));
        }
        Ok(())
    }

    /// The To-tag as Kamailio's own parser read it (None if it has none or
    /// the To header cannot be parsed).
    pub fn parsed_to_tag(&mut self) -> Option<&'k [u8]> {
        let mut tag = str_::default();
        // SAFETY: the shim parses this message's To header; the tag points
        // into the message buffer, which lives for 'k.
        unsafe {
            if topos_shim_to_tag(self.as_ptr(), &mut tag) < 0 || tag.s.is_null() || tag.len <= 0 {
                return None;
            }
            Some(std::slice::from_raw_parts(
                tag.s as *const u8,
                tag.len as usize,
            ))
        }
    }

    /// The Call-ID body and the CSeq number, as Kamailio parsed them.
    pub fn callid_and_cseq(&mut self) -> Result<(&'k [u8], &'k [u8])> {
        let mut callid = str_::default();
        let mut cseq = str_::default();
        // SAFETY: the shim parses this message and returns views into it.
        if unsafe { topos_shim_callid_cseq(self.as_ptr(), &mut callid, &mut cseq) } < 0 {
            return Err(Error::Malformed("cannot parse Call-ID / CSeq"));
        }
        let bytes = |s: str_| -> &'k [u8] {
            if s.s.is_null() || s.len <= 0 {
                return &[];
            }
            // SAFETY: views into this message's buffer, which lives for 'k.
            unsafe { std::slice::from_raw_parts(s.s as *const u8, s.len as usize) }
        };
        Ok((bytes(callid), bytes(cseq)))
    }
}

/// True if `uri` names this Kamailio (one of its sockets or aliases).
pub fn is_kamailio_uri(uri: &str) -> bool {
    let Some((host, port)) = uri_host_port(uri) else {
        return false;
    };
    // No host name is longer (RFC 1035); the core's socket lookup never
    // sees attacker-sized text.
    if host.is_empty() || host.len() > 255 {
        return false;
    }
    let mut h = str_ {
        s: host.as_ptr() as *mut c_char,
        len: host.len() as c_int,
    };
    // SAFETY: check_self only reads the host text during the call.
    unsafe { check_self(&mut h, port.unwrap_or(0), 0) == 1 }
}

/// Whether the core adds `;rport=` to the top Via of `msg` when relaying it.
/// Kamailio 6.0 (cfg `kamailio_via_noreceived`, set by build.rs from the
/// headers): its own `rport_test()`, which also honours FL_VIA_NORECEIVED.
///
/// # Safety
/// `msg` is a valid message with a parsed, non-null `via1`.
#[cfg(kamailio_via_noreceived)]
unsafe fn rport_rule(msg: *mut sip_msg) -> bool {
    // SAFETY: per the function's contract.
    unsafe { super::bindings::rport_test(msg) != 0 }
}

/// Whether the core adds `;rport=` to the top Via of `msg` when relaying it.
/// Kamailio 5.6 has no `rport_test()`: FL_FORCE_RPORT (message or global)
/// or an rport parameter in the Via.
///
/// # Safety
/// `msg` is a valid message with a parsed, non-null `via1`.
#[cfg(not(kamailio_via_noreceived))]
unsafe fn rport_rule(msg: *mut sip_msg) -> bool {
    use super::bindings::{global_req_flags, FL_FORCE_RPORT};
    // SAFETY: per the function's contract; global_req_flags is a core
    // global, read in the process that routes `msg`.
    unsafe {
        ((*msg).msg_flags | global_req_flags) & FL_FORCE_RPORT != 0
            || !(*(*msg).via1).rport.is_null()
    }
}
