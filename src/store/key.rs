//! Store keys. Every key starts with `topos_rs:` and carries a Redis Cluster
//! hash tag derived from the dialog, so all records of one dialog live in
//! one hash slot (and one node) of a cluster.

use crate::hex::hex_digits;

pub const PREFIX: &str = "topos_rs:";

/// FNV-1a, 64 bit: a stable hash (same on every node and version, so keys
/// built from it never change). The key's hash tag uses it on the Call-ID
/// (uniqueness comes from the full dialog id in the key), dialog records on
/// the callee tag.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// `topos_rs:{<16 hex digits>}:<kind>:<id>`, the tag derived from the
/// Call-ID so that every record of a call shares it; `id` (which contains
/// the Call-ID) makes the key unique. The tag never contains a brace,
/// whatever bytes the Call-ID holds.
pub fn dialog_key(kind: &str, call_id: &[u8], id: &[u8]) -> Vec<u8> {
    dialog_key_with(kind, call_id, id, &[])
}

/// As `dialog_key`, with `id` followed by `suffix` (saves building the id
/// in a buffer of its own).
pub fn dialog_key_with(kind: &str, call_id: &[u8], id: &[u8], suffix: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(PREFIX.len() + 20 + kind.len() + 1 + id.len() + suffix.len());
    k.extend_from_slice(PREFIX.as_bytes());
    k.push(b'{');
    k.extend(hex_digits(&fnv1a64(call_id).to_be_bytes()));
    k.extend_from_slice(b"}:");
    k.extend_from_slice(kind.as_bytes());
    k.push(b':');
    k.extend_from_slice(id);
    k.extend_from_slice(suffix);
    k
}

/// 32 hex digits naming a dialog by its Call-ID and caller tag: a SHA-256
/// digest, so keys have one size whatever a peer sends (LMDB bounds key
/// length) and a peer cannot choose a Call-ID that lands on another call's
/// key.
pub fn call_digest_hex(call_id: &[u8], caller_tag: &[u8]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update((call_id.len() as u64).to_be_bytes());
    h.update(call_id);
    h.update(caller_tag);
    hex_digits(&h.finalize()[..16]).collect()
}

/// The Redis Cluster hash tag of a key (the bytes between the first `{`
/// and the next `}`), as Redis computes it.
pub fn hash_tag(key: &[u8]) -> Option<&[u8]> {
    let open = key.iter().position(|&b| b == b'{')?;
    let close = key[open + 1..].iter().position(|&b| b == b'}')?;
    (close > 0).then(|| &key[open + 1..open + 1 + close])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_of_one_dialog_share_a_hash_slot() {
        let callid = b"a}b{c@host";
        let a = dialog_key("bill", callid, b"a}b{c@host tag1");
        let b = dialog_key("dlg", callid, callid);
        assert!(a.starts_with(b"topos_rs:{"));
        assert_eq!(hash_tag(&a), hash_tag(&b));
        assert_eq!(hash_tag(&a).unwrap().len(), 16);
        assert_ne!(
            hash_tag(&a),
            hash_tag(&dialog_key("bill", b"other", b"other"))
        );
        assert!(a.ends_with(b":bill:a}b{c@host tag1"));
    }

    #[test]
    fn tag_is_stable_across_versions() {
        // Other nodes, and later module versions, must compute the same key.
        assert_eq!(
            String::from_utf8(dialog_key("bill", b"c12345abcd", b"c12345abcd")).unwrap(),
            "topos_rs:{b950a61b72b4e6b9}:bill:c12345abcd"
        );
    }

    /// Redis Cluster puts a key in slot CRC16(hash tag) mod 16384. Every
    /// key the module writes has a tag, and the records that belong
    /// together share it; every command and script touches one key, so
    /// each runs on one slot (tests/store_suite.rs runs them on a real
    /// cluster, which refuses anything else with CROSSSLOT).
    #[test]
    fn keys_land_on_the_slot_of_their_hash_tag() {
        use crate::billing::call::billing_key;
        use crate::dialog::record::{record_key, tag_hash};
        use redis::cluster_routing::Slot;
        // The crate computes slots as Redis does (the reference vector of
        // the Redis Cluster specification: CRC16("123456789") = 0x31C3).
        assert_eq!(Slot::for_key("123456789"), Slot::new(12739).unwrap());
        assert_eq!(
            Slot::for_key("{123456789}:bill:x"),
            Slot::new(12739).unwrap()
        );

        let call_id = b"a84b4c76e66710@pc33.example.com";
        let dialog_hex = "00112233445566778899aabbccddeeff";
        let keys = [
            billing_key(call_id, b"1928301774"),
            dialog_key("cid", call_id, b"digest"),
            record_key(dialog_hex, tag_hash("callee-1")),
            record_key(dialog_hex, tag_hash("callee-2")),
            dialog_key("diag", b"probe", b"probe"),
            dialog_key("rates", b"rates", b"table"),
        ];
        for k in &keys {
            let tag = hash_tag(k).expect("every key has a hash tag");
            assert_eq!(tag.len(), 16, "{}", String::from_utf8_lossy(k));
            assert_eq!(Slot::for_key(k), Slot::for_key(tag));
        }
        // A call's bill and its Call-ID index share a slot; every record of
        // one dialog (one per callee tag when the call forks) shares one.
        assert_eq!(Slot::for_key(&keys[0]), Slot::for_key(&keys[1]));
        assert_eq!(Slot::for_key(&keys[2]), Slot::for_key(&keys[3]));
        // Different calls spread over the slots.
        let slots: std::collections::HashSet<_> = (0..64)
            .map(|i| Slot::for_key(billing_key(format!("call-{i}").as_bytes(), b"t")))
            .collect();
        assert!(slots.len() > 32, "{} slots for 64 calls", slots.len());
    }
}
