//! The whole office_macro path on arbitrary bytes: OLE2 (cfb), VBA dir and
//! module decompression, BIFF records, PowerPoint objects, and OOXML.
//! Inputs that do not start with the OLE2 magic get it, so that most runs
//! reach the OLE parser. Panics are caught inside `analyze_document` and
//! reported as an error; the target turns that back into a crash.
#![no_main]

use libfuzzer_sys::fuzz_target;
use malspam_milter::config::Limits;
use malspam_milter::detectors::office_macro::{analyze_document, OfficeMacroConfig};

const OLE_MAGIC: &[u8] = &[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];

fuzz_target!(|data: &[u8]| {
    let mut input = data.to_vec();
    if !input.starts_with(OLE_MAGIC) && !input.starts_with(b"PK") {
        let mut with_magic = OLE_MAGIC.to_vec();
        with_magic.extend_from_slice(data.get(8..).unwrap_or(&[]));
        input = with_magic;
    }
    let limits = Limits {
        max_entry_bytes: 16 << 20,
        max_inflated_bytes: 32 << 20,
        ..Limits::default()
    };
    let settings = OfficeMacroConfig {
        max_stream_bytes: 16 << 20,
        ..OfficeMacroConfig::default()
    };
    let report = analyze_document(&input, &settings, &limits);
    if report.errors.iter().any(|e| e.contains("panic")) {
        panic!("office_macro panicked: {:?}", report.errors);
    }
});
