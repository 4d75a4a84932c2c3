//! Sealed dialog tokens (`token_mode` "sealed"): a side's token is the
//! routing state of that side, sealed (crate::crypto), so routing an
//! in-dialog request reads no store and any node with the key routes it.
//!
//! A token addresses one side and is presented by the other. It carries
//! that side's remote target, the address its messages came from
//! (`route_to_source`), its IP (to bind the other side's next token with
//! `bind_source`), the route set toward the caller (a token to the callee
//! carries it so that a caller's target refresh can be given a new token),
//! the key fingerprint of the callee's Call-ID mask, and an expiry. The
//! route set toward the callee is known only from the callee's first reply,
//! after the callee got its token in the INVITE, so it travels separately:
//! sealed in a parameter of Kamailio's own Record-Route entry as the caller
//! sees it (`seal_route`), which every request of the caller brings back.
//!
//! Associated data (never in the token): the caller's Call-ID, the caller's
//! tag, the callee's tag (once it exists: not in the INVITE's token) and,
//! with `bind_source`, the presenting side's IP. The token's clear byte
//! says which side it addresses and which of these it is bound to, so a
//! token opens only in its own dialog, from the side it was given to.

use crate::crypto::keys::KeyRing;
use crate::crypto::seal::{seal, Sealed};
use crate::crypto::text;
use crate::dialog::token::Side;

/// Longest token text read (a token is never made longer than this).
pub const MAX_TOKEN_TEXT: usize = 1024;

const CLEAR_TO_CALLEE: u8 = 1;
const CLEAR_CALLEE_TAG: u8 = 2;
const CLEAR_SOURCE: u8 = 4;
/// A transfer token (`seal_transfer`): opens only a dialog-creating INVITE
/// whose Replaces names its dialog, never an in-dialog request.
const CLEAR_TRANSFER: u8 = 8;

/// Associated-data labels: a token of one kind never opens as another.
const LABEL_TOKEN: &[u8] = b"tok";
const LABEL_TRANSFER: &[u8] = b"xfer";

/// What the route set toward the callee is for requests with this token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CalleeRoute {
    /// Not known when the token was made (the INVITE's token): a route
    /// parameter is used if the request brings one.
    Unknown,
    /// Empty: the callee side has no proxy of its own.
    Empty,
    /// In the route parameter, which requests must bring.
    InParameter,
    /// In the route parameter, and in the token itself
    /// (`SideState::callee_routes`): a token addressing the callee carries
    /// it when it fits, so a transfer to the callee (an INVITE that never
    /// saw the dialog's Record-Route) goes through the callee's proxies.
    InToken,
}

/// A side's routing state, as a token carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SideState {
    /// The side the token addresses.
    pub side: Side,
    /// Unix time (s) after which the token is refused.
    pub expires: u32,
    /// Fingerprint of the key that masks the callee's Call-ID (None: no
    /// mask, `mask_callid` was off when the dialog began).
    pub mask_key: Option<u8>,
    pub callee_route: CalleeRoute,
    /// That side's remote target (its Contact URI).
    pub target: String,
    /// Where that side's messages came from, as a SIP URI (empty unless
    /// `route_to_source`).
    pub target_hop: String,
    /// That side's IP (empty unless `bind_source`).
    pub target_source: String,
    /// Route set from Kamailio toward the caller, nearest first.
    pub caller_route: Vec<String>,
    /// Route set from Kamailio toward the callee, nearest first, when
    /// `callee_route` is `InToken` (empty otherwise).
    pub callee_routes: Vec<String>,
}

/// What binds a token or a route to its dialog (associated data).
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    /// The Call-ID as the caller's side knows it.
    pub call_id: &'a [u8],
    pub caller_tag: &'a [u8],
    /// None before the callee answered (the INVITE's token).
    pub callee_tag: Option<&'a [u8]>,
    /// The IP of the side that presents the token (`bind_source`).
    pub source: Option<&'a [u8]>,
}

impl Binding<'_> {
    fn aad(&self, label: &[u8]) -> Vec<u8> {
        let parts = [
            self.call_id,
            self.caller_tag,
            self.callee_tag.unwrap_or_default(),
            self.source.unwrap_or_default(),
        ];
        let mut out =
            Vec::with_capacity(label.len() + 32 + parts.iter().map(|p| p.len()).sum::<usize>());
        out.extend_from_slice(label);
        // Lengths first: no two bindings collide by moving bytes across.
        for p in parts {
            out.extend_from_slice(&(p.len() as u32).to_be_bytes());
            out.extend_from_slice(p);
        }
        out
    }
}

// ---- compact encoding of the plaintext ----

fn put_len(out: &mut Vec<u8>, n: usize) {
    if n < 0x80 {
        out.push(n as u8);
    } else {
        out.push(0x80 | (n >> 8) as u8);
        out.push(n as u8);
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_len(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

/// A route entry (`<sip:host;lr>` almost always): the common frame is a
/// flag, the rest is kept as written.
fn put_route_entry(out: &mut Vec<u8>, e: &str) {
    if let Some(mid) = e.strip_prefix("<sip:").and_then(|r| r.strip_suffix(";lr>")) {
        out.push(1);
        put_str(out, mid);
    } else if let Some(mid) = e.strip_prefix("<sip:").and_then(|r| r.strip_suffix('>')) {
        out.push(2);
        put_str(out, mid);
    } else {
        out.push(0);
        put_str(out, e);
    }
}

fn put_routes(out: &mut Vec<u8>, routes: &[String]) {
    put_len(out, routes.len());
    for r in routes {
        put_route_entry(out, r);
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn len(&mut self) -> Option<usize> {
        let b = self.byte()? as usize;
        if b < 0x80 {
            return Some(b);
        }
        Some(((b & 0x7f) << 8) | self.byte()? as usize)
    }
    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn string(&mut self) -> Option<String> {
        let n = self.len()?;
        String::from_utf8(self.bytes(n)?.to_vec()).ok()
    }
    fn route_entry(&mut self) -> Option<String> {
        let kind = self.byte()?;
        let mid = self.string()?;
        match kind {
            0 => Some(mid),
            1 => Some(format!("<sip:{mid};lr>")),
            2 => Some(format!("<sip:{mid}>")),
            _ => None,
        }
    }
    fn routes(&mut self) -> Option<Vec<String>> {
        let n = self.len()?;
        (0..n).map(|_| self.route_entry()).collect()
    }
}

impl SideState {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.target.len());
        let route = match self.callee_route {
            CalleeRoute::Unknown => 0,
            CalleeRoute::Empty => 1,
            CalleeRoute::InParameter => 2,
            CalleeRoute::InToken => 3,
        };
        out.push(route);
        out.extend_from_slice(&self.expires.to_be_bytes());
        match self.mask_key {
            Some(fp) => out.extend_from_slice(&[1, fp]),
            None => out.push(0),
        }
        put_str(
            &mut out,
            self.target.strip_prefix("sip:").unwrap_or(&self.target),
        );
        out.push(self.target.starts_with("sip:") as u8);
        put_str(&mut out, &self.target_hop);
        put_str(&mut out, &self.target_source);
        put_routes(&mut out, &self.caller_route);
        if self.callee_route == CalleeRoute::InToken {
            put_routes(&mut out, &self.callee_routes);
        }
        out
    }

    fn decode(side: Side, plain: &[u8]) -> Option<SideState> {
        let mut r = Reader(plain);
        let callee_route = match r.byte()? {
            0 => CalleeRoute::Unknown,
            1 => CalleeRoute::Empty,
            2 => CalleeRoute::InParameter,
            3 => CalleeRoute::InToken,
            _ => return None,
        };
        let expires = u32::from_be_bytes(r.bytes(4)?.try_into().ok()?);
        let mask_key = match r.byte()? {
            0 => None,
            1 => Some(r.byte()?),
            _ => return None,
        };
        let mut target = r.string()?;
        if r.byte()? == 1 {
            target.insert_str(0, "sip:");
        }
        let state = SideState {
            side,
            expires,
            mask_key,
            callee_route,
            target,
            target_hop: r.string()?,
            target_source: r.string()?,
            caller_route: r.routes()?,
            callee_routes: if callee_route == CalleeRoute::InToken {
                r.routes()?
            } else {
                Vec::new()
            },
        };
        r.0.is_empty().then_some(state)
    }
}

/// The token text for `state`, bound by `binding`, sealed with the ring's
/// sealing key (base64url: valid in a URI's user part and parameters).
pub fn seal_token(ring: &KeyRing, state: &SideState, binding: &Binding) -> Option<String> {
    seal_kind(ring, state, binding, 0, LABEL_TOKEN)
}

/// A transfer token: the state of the side a Refer-To names, bound to the
/// dialog its Replaces names (both tags; never a source: the transferee
/// presents it, not the side it was given to). It opens only through
/// `TokenText::open_for_transfer`.
pub fn seal_transfer(ring: &KeyRing, state: &SideState, binding: &Binding) -> Option<String> {
    let binding = Binding {
        source: None,
        ..*binding
    };
    seal_kind(ring, state, &binding, CLEAR_TRANSFER, LABEL_TRANSFER)
}

fn seal_kind(
    ring: &KeyRing,
    state: &SideState,
    binding: &Binding,
    mut clear: u8,
    label: &[u8],
) -> Option<String> {
    if state.side == Side::Callee {
        clear |= CLEAR_TO_CALLEE;
    }
    if binding.callee_tag.is_some() {
        clear |= CLEAR_CALLEE_TAG;
    }
    if binding.source.is_some() {
        clear |= CLEAR_SOURCE;
    }
    let sealed = seal(
        ring.sealing(),
        &[clear],
        &state.encode(),
        &binding.aad(label),
    )?;
    Some(text::encode(&sealed))
}

/// The length of the text `seal_token` makes for `state`.
pub fn token_text_len(state: &SideState) -> usize {
    // base64 without padding: 4 characters per 3 bytes, rounded up.
    (4 * (crate::crypto::seal::OVERHEAD + 1 + state.encode().len())).div_ceil(3)
}

/// A token read from a request, not opened yet.
pub struct TokenText {
    bytes: Vec<u8>,
    clear: u8,
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// It does not open: a changed byte, a key not in the ring, or another
    /// Call-ID, tags, side or source than it was made for.
    Forged,
    Expired,
}

impl TokenText {
    /// Reads a token's text; None for anything that is not one.
    pub fn parse(text: &str) -> Option<TokenText> {
        if text.len() > MAX_TOKEN_TEXT {
            return None;
        }
        let bytes = text::decode(text)?;
        let clear = *Sealed::parse(&bytes, 1)?.clear.first()?;
        Some(TokenText { bytes, clear })
    }

    /// The side the token addresses.
    pub fn side(&self) -> Side {
        if self.clear & CLEAR_TO_CALLEE != 0 {
            Side::Callee
        } else {
            Side::Caller
        }
    }

    /// Bound to the callee's tag (every token but the INVITE's).
    pub fn binds_callee_tag(&self) -> bool {
        self.clear & CLEAR_CALLEE_TAG != 0
    }

    /// Bound to the presenting side's IP.
    pub fn binds_source(&self) -> bool {
        self.clear & CLEAR_SOURCE != 0
    }

    /// A transfer token (`seal_transfer`).
    pub fn is_transfer(&self) -> bool {
        self.clear & CLEAR_TRANSFER != 0
    }

    /// The state, if `ring` opens the token with exactly `binding` (whose
    /// callee tag and source must be given as the clear byte says) and it
    /// has not expired at `now` (unix seconds). A transfer token never
    /// opens here: it routes no in-dialog request.
    pub fn open(&self, ring: &KeyRing, binding: &Binding, now: u64) -> Result<SideState, Refusal> {
        if self.is_transfer() {
            return Err(Refusal::Forged);
        }
        self.open_labelled(ring, binding, now, LABEL_TOKEN)
    }

    /// As `open`, for a dialog-creating INVITE that replaces the token's
    /// dialog: a transfer token or a dialog token.
    pub fn open_for_transfer(
        &self,
        ring: &KeyRing,
        binding: &Binding,
        now: u64,
    ) -> Result<SideState, Refusal> {
        let label = if self.is_transfer() {
            LABEL_TRANSFER
        } else {
            LABEL_TOKEN
        };
        self.open_labelled(ring, binding, now, label)
    }

    fn open_labelled(
        &self,
        ring: &KeyRing,
        binding: &Binding,
        now: u64,
        label: &[u8],
    ) -> Result<SideState, Refusal> {
        let sealed = Sealed::parse(&self.bytes, 1).ok_or(Refusal::Forged)?;
        let plain = sealed
            .open(ring, &binding.aad(label))
            .ok_or(Refusal::Forged)?;
        let state = SideState::decode(self.side(), &plain).ok_or(Refusal::Forged)?;
        if u64::from(state.expires) < now {
            return Err(Refusal::Expired);
        }
        Ok(state)
    }
}

/// The route set toward the callee, sealed for a Record-Route parameter.
pub fn seal_route(ring: &KeyRing, route: &[String], binding: &Binding) -> Option<String> {
    let mut plain = Vec::new();
    put_routes(&mut plain, route);
    let sealed = seal(ring.sealing(), &[], &plain, &binding.aad(b"route"))?;
    Some(text::encode(&sealed))
}

/// The route set a Record-Route parameter seals, if it is this dialog's.
pub fn open_route(ring: &KeyRing, text: &str, binding: &Binding) -> Option<Vec<String>> {
    if text.len() > 4 * MAX_TOKEN_TEXT {
        return None;
    }
    let bytes = text::decode(text)?;
    let plain = Sealed::parse(&bytes, 0)?.open(ring, &binding.aad(b"route"))?;
    let mut r = Reader(&plain);
    let routes = r.routes()?;
    r.0.is_empty().then_some(routes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> KeyRing {
        KeyRing::new(&[[0x42; 32]]).unwrap()
    }

    fn state(side: Side) -> SideState {
        SideState {
            side,
            expires: 2_000_000_000,
            mask_key: Some(7),
            callee_route: CalleeRoute::InParameter,
            target: "sip:13545769997@203.0.113.50:5060;transport=tcp".into(),
            target_hop: String::new(),
            target_source: "203.0.113.50".into(),
            caller_route: vec![
                "<sip:192.168.1.100:5060;lr>".into(),
                "<sip:10.10.10.1;lr;ftag=x>".into(),
                "<sips:odd.example.com>".into(),
            ],
            callee_routes: Vec::new(),
        }
    }

    fn bound<'a>(tag: &'a [u8]) -> Binding<'a> {
        Binding {
            call_id: b"c12345abcd",
            caller_tag: b"ft",
            callee_tag: Some(tag),
            source: None,
        }
    }

    #[test]
    fn a_token_opens_in_its_dialog_with_its_state() {
        let t = seal_token(&ring(), &state(Side::Callee), &bound(b"tt")).unwrap();
        assert!(t
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')));
        let read = TokenText::parse(&t).unwrap();
        assert_eq!(read.side(), Side::Callee);
        assert!(read.binds_callee_tag() && !read.binds_source());
        assert_eq!(
            read.open(&ring(), &bound(b"tt"), 1).unwrap(),
            state(Side::Callee)
        );
    }

    #[test]
    fn another_call_tag_side_source_key_or_byte_is_refused() {
        let t = seal_token(&ring(), &state(Side::Callee), &bound(b"tt")).unwrap();
        let read = TokenText::parse(&t).unwrap();
        let refused = |b: &Binding| read.open(&ring(), b, 1) == Err(Refusal::Forged);
        assert!(refused(&bound(b"other")));
        assert!(refused(&Binding {
            call_id: b"c12345abce",
            ..bound(b"tt")
        }));
        assert!(refused(&Binding {
            caller_tag: b"tt",
            callee_tag: Some(b"ft"),
            ..bound(b"tt")
        }));
        assert!(refused(&Binding {
            source: Some(b"10.0.0.1"),
            ..bound(b"tt")
        }));
        assert!(refused(&Binding {
            callee_tag: None,
            ..bound(b"tt")
        }));
        let other = KeyRing::new(&[[1; 32]]).unwrap();
        assert_eq!(read.open(&other, &bound(b"tt"), 1), Err(Refusal::Forged));
        // Every changed character: refused or not a token at all.
        let alphabet = text::CHARACTERS.as_bytes();
        for i in 0..t.len() {
            let mut b = t.clone().into_bytes();
            let at = alphabet.iter().position(|&c| c == b[i]).unwrap();
            b[i] = alphabet[(at + 1) % 64];
            let changed = String::from_utf8(b).unwrap();
            let opened = TokenText::parse(&changed).map(|r| r.open(&ring(), &bound(b"tt"), 1));
            assert!(!matches!(opened, Some(Ok(_))), "char {i}");
        }
        // Flipping the side in the clear byte does not make a token for
        // the other side.
        let mut bytes = text::decode(&t).unwrap();
        bytes[2] ^= CLEAR_TO_CALLEE;
        let flipped = TokenText::parse(&text::encode(&bytes)).unwrap();
        assert_eq!(flipped.side(), Side::Caller);
        assert_eq!(
            flipped.open(&ring(), &bound(b"tt"), 1),
            Err(Refusal::Forged)
        );
    }

    #[test]
    fn an_expired_token_is_refused() {
        let mut s = state(Side::Caller);
        s.expires = 1000;
        let b = Binding {
            callee_tag: None,
            ..bound(b"")
        };
        let read = TokenText::parse(&seal_token(&ring(), &s, &b).unwrap()).unwrap();
        assert!(read.open(&ring(), &b, 1000).is_ok());
        assert_eq!(read.open(&ring(), &b, 1001), Err(Refusal::Expired));
    }

    #[test]
    fn junk_is_not_a_token() {
        for junk in ["", "alice", "!!!!", &"A".repeat(MAX_TOKEN_TEXT + 1), "AQID"] {
            assert!(TokenText::parse(junk).is_none(), "{junk}");
        }
    }

    #[test]
    fn the_route_parameter_opens_in_its_dialog_only() {
        let route = vec![
            "<sip:172.16.0.10:5060;lr>".to_string(),
            "<sip:b.example.com;lr;did=1>".into(),
        ];
        let p = seal_route(&ring(), &route, &bound(b"tt")).unwrap();
        assert_eq!(open_route(&ring(), &p, &bound(b"tt")).unwrap(), route);
        assert_eq!(open_route(&ring(), &p, &bound(b"t2")), None);
        assert_eq!(open_route(&ring(), "junk", &bound(b"tt")), None);
    }

    /// Issue 20: a masked Contact URI of at most 300 bytes with 2
    /// Record-Route entries on each side.
    #[test]
    fn a_token_with_two_route_entries_fits_a_300_byte_contact() {
        let s = SideState {
            side: Side::Callee,
            expires: 2_000_000_000,
            mask_key: Some(1),
            callee_route: CalleeRoute::InParameter,
            target: "sip:13545769997@203.0.113.250:50600;transport=tcp".into(),
            target_hop: "sip:203.0.113.250:50600;transport=tcp".into(),
            target_source: "203.0.113.250".into(),
            caller_route: vec![
                "<sip:192.168.101.100:5060;lr>".into(),
                "<sip:10.10.110.101:5060;lr>".into(),
            ],
            callee_routes: Vec::new(),
        };
        let b = Binding {
            source: Some(b"198.51.100.77"),
            ..bound(b"1234567890abcdef")
        };
        let t = seal_token(&ring(), &s, &b).unwrap();
        let uri = format!("sip:{t}@198.51.100.200:5060;transport=tcp");
        assert!(uri.len() <= 300, "{} bytes: {uri}", uri.len());
    }

    #[test]
    fn the_route_toward_the_callee_can_ride_in_the_token() {
        let mut s = state(Side::Callee);
        s.callee_route = CalleeRoute::InToken;
        s.callee_routes = vec![
            "<sip:172.16.0.10:5060;lr>".into(),
            "<sip:b.example;lr>".into(),
        ];
        let t = seal_token(&ring(), &s, &bound(b"tt")).unwrap();
        let read = TokenText::parse(&t).unwrap();
        assert_eq!(read.open(&ring(), &bound(b"tt"), 1).unwrap(), s);
        assert_eq!(t.len(), token_text_len(&s));
    }

    /// Issue 21: a transfer token opens only for the INVITE that replaces
    /// its dialog, never as an in-dialog token; a dialog token opens for
    /// both; the transfer bit cannot be flipped.
    #[test]
    fn a_transfer_token_opens_only_for_a_transfer() {
        let s = state(Side::Callee);
        let with_source = Binding {
            source: Some(b"10.0.0.1"),
            ..bound(b"tt")
        };
        let x = seal_transfer(&ring(), &s, &with_source).unwrap();
        let read = TokenText::parse(&x).unwrap();
        assert!(read.is_transfer() && !read.binds_source());
        assert_eq!(read.open(&ring(), &bound(b"tt"), 1), Err(Refusal::Forged));
        assert_eq!(
            read.open_for_transfer(&ring(), &bound(b"tt"), 1).unwrap(),
            s
        );
        assert_eq!(
            read.open_for_transfer(&ring(), &bound(b"other"), 1),
            Err(Refusal::Forged)
        );
        let t = seal_token(&ring(), &s, &bound(b"tt")).unwrap();
        let dialog = TokenText::parse(&t).unwrap();
        assert!(!dialog.is_transfer());
        assert_eq!(
            dialog.open_for_transfer(&ring(), &bound(b"tt"), 1).unwrap(),
            s
        );
        for (text, flip) in [(&x, CLEAR_TRANSFER), (&t, CLEAR_TRANSFER)] {
            let mut bytes = text::decode(text).unwrap();
            bytes[2] ^= flip;
            let flipped = TokenText::parse(&text::encode(&bytes)).unwrap();
            assert!(flipped.open(&ring(), &bound(b"tt"), 1).is_err());
            assert!(flipped
                .open_for_transfer(&ring(), &bound(b"tt"), 1)
                .is_err());
        }
    }
}
