//! RAR archives: the bytes with a RAR 4 or RAR 5 signature in front (half
//! the runs each), listed and opened by `formats::rar`.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use malspam_milter::formats::{rar, Budget, Passwords};

fuzz_target!(|data: &[u8]| {
    let budget = Budget::new(Instant::now() + Duration::from_secs(5), 64 << 20, 1000);
    let _ = rar::open(data, &budget, Passwords::default());
    if !rar::sniff(data) {
        let sig: &[u8] = if data.first().is_some_and(|b| b & 1 == 0) {
            b"Rar!\x1A\x07\x00"
        } else {
            b"Rar!\x1A\x07\x01\x00"
        };
        let mut with = sig.to_vec();
        with.extend_from_slice(data);
        let _ = rar::open(&with, &budget, Passwords::default());
        let _ = rar::list(&with, 10_000);
    }
});
