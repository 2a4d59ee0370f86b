//! Encrypted Office documents: the bytes as a compound file, told and
//! opened by `formats::office_crypto` with the default password and one
//! candidate. The agile spin count is capped low so that runs stay fast
//! (the cap is a limit like any other: over it, nothing is tried).
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use malspam_milter::formats::office_crypto::{self, Limits};
use malspam_milter::formats::{Budget, Passwords};

fuzz_target!(|data: &[u8]| {
    let budget = Budget::new(Instant::now() + Duration::from_secs(5), 64 << 20, 1000);
    let candidates = ["password".to_string()];
    let _ = office_crypto::sniff(data);
    let _ = office_crypto::open_with(
        data,
        &budget,
        Passwords {
            candidates: &candidates,
            max_attempts: 1,
        },
        Limits { max_spin_count: 64 },
    );
});
