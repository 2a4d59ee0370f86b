//! `formats::script::sniff` on arbitrary bytes: never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use malspam_milter::formats::script;

fuzz_target!(|data: &[u8]| {
    let _ = script::sniff(data);
});
