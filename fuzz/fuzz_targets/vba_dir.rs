//! MS-OVBA decompression and dir-stream parsing on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use malspam_milter::detectors::office_macro::{keywords, vba};

fuzz_target!(|data: &[u8]| {
    if let Ok(out) = vba::decompress(data, 1 << 20) {
        assert!(out.len() <= 1 << 20);
        let _ = vba::parse_dir(&out, 1000);
        let _ = keywords::classify(&vba::latin1(&out));
    }
    let _ = vba::parse_dir(data, 1000);
});
