//! Every pure SIP text function on arbitrary bytes: header scanning, Via
//! parsing, Via stack restoration, dialog identifiers, name-addr lists,
//! transfer headers (Replaces, Refer-To, sipfrag) and the dialog edit
//! plans. None may panic; plans must stay in bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use topos_rs::dialog::plan::{self, MaskedContact};
use topos_rs::dialog::token::{parse_token, parse_transfer_token};
use topos_rs::sip::dialog_ids::DialogIds;
use topos_rs::sip::edit::{apply, coalesce};
use topos_rs::sip::headers::{scan_headers, Headers};
use topos_rs::sip::name_addr::{entry_uri, split_entries, uri_host_port};
use topos_rs::sip::replaces::{parse_refer_target, parse_replaces, percent_decode, refer_target};
use topos_rs::sip::restore::{restored_via_block, TopViaUpdate};
use topos_rs::sip::sipfrag::{is_sipfrag, status_line_len};
use topos_rs::sip::via::parse_via_value;

fuzz_target!(|data: &[u8]| {
    let _ = DialogIds::from_message(data);
    let text = String::from_utf8_lossy(data);
    for e in split_entries(&text) {
        let _ = uri_host_port(entry_uri(e));
    }
    let _ = parse_token(&text);
    let _ = parse_transfer_token(&text);
    if let Ok(r) = parse_replaces(&text) {
        assert_eq!(&text[r.call_id_at.clone()], r.call_id);
    }
    for t in [refer_target(&text), parse_refer_target(&text)].into_iter().flatten() {
        assert_eq!(&text[t.user_at.clone()], t.user);
    }
    let _ = percent_decode(&text);
    let _ = is_sipfrag(&text);
    if let Some(n) = status_line_len(data) {
        assert!(n <= data.len());
    }
    let masked = MaskedContact {
        token: "0".repeat(33),
        hostport: "127.0.0.1:5060".into(),
    };
    // Everything below reads a scanned message, as the module does.
    let Ok(fields) = scan_headers(data) else {
        return;
    };
    for f in &fields {
        assert!(f.line.end <= data.len());
        let _ = parse_via_value(data, f.value.clone());
    }
    let h = Headers::new(data, &fields);
    let update = TopViaUpdate {
        received: Some(b";received=127.0.0.1"),
        rport: Some(b";rport=5060"),
    };
    let _ = restored_via_block(h, update);
    let _ = DialogIds::from_headers(h);
    let _ = plan::caller_side(h);
    let _ = apply(data, &coalesce(plan::initial_request(h, Some(&masked), Some("masked"))));
    let edits = plan::reply_to_caller(
        h,
        &["<sip:a;lr>".into()],
        Some(&masked),
        Some("c"),
        &|u| u.contains("127.0.0.1"),
        true,
        None,
    );
    let _ = apply(data, &edits);
    let (edits, _) = plan::in_dialog_request(h, &["<sip:b;lr>".into()], Some(&masked), None);
    let _ = apply(data, &edits);
    let (edits, _) = plan::in_dialog_reply(h, Some(&masked), Some("c"));
    let _ = apply(data, &edits);
    let _ = apply(data, &coalesce(plan::route_set(h, &["<sip:c;lr>".into()])));
});
