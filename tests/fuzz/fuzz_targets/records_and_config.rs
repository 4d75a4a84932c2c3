//! Stored record decoding, the rates CSV and module parameter parsing on
//! arbitrary input: errors, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use topos_rs::billing::call::AnswerRecord;
use topos_rs::billing::rates::RateTable;
use topos_rs::billing::tariff::{parse_money, Tariff};
use topos_rs::billing::CdrSink;
use topos_rs::config::Storage;
use topos_rs::dialog::record::DialogRecord;
use topos_rs::store::record::Record;

fuzz_target!(|data: &[u8]| {
    let _ = Record::parse(data);
    let _ = AnswerRecord::decode(data);
    let _ = DialogRecord::decode(data);
    let text = String::from_utf8_lossy(data);
    if let Ok(t) = RateTable::parse("fuzz.csv", &text, &Tariff::default()) {
        let _ = t.lookup(&text);
    }
    let _ = Storage::parse(&text);
    let _ = CdrSink::parse(&text);
    let _ = parse_money("rate", &text);
    let _ = text.parse::<topos_rs::billing::tariff::Increment>();
});
