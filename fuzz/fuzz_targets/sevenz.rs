//! 7z archives: the bytes opened by `formats::sevenz` within a budget.
//! No password candidates: AES key derivation (up to 2^24 SHA-256 rounds,
//! as 7-Zip allows) would make each run slow; the decoders, the header
//! parser and the budget checks are what is fuzzed.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use malspam_milter::formats::{sevenz, Budget, Passwords};

fuzz_target!(|data: &[u8]| {
    let budget = Budget::new(Instant::now() + Duration::from_secs(5), 64 << 20, 1000);
    let _ = sevenz::open(data, &budget, Passwords::default());
});
