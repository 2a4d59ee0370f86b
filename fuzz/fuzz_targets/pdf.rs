//! `formats::pdf::open` on arbitrary bytes (with a PDF header put in front
//! half the time), under a small budget: never a panic, never a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use malspam_milter::formats::{pdf, Budget, Passwords};
use std::time::{Duration, Instant};

fuzz_target!(|data: &[u8]| {
    let budget = Budget::new(Instant::now() + Duration::from_secs(5), 1 << 20, 100);
    let _ = pdf::sniff(data);
    let _ = pdf::open(data, &budget, Passwords::default());
    if data.first().is_some_and(|b| b & 1 == 1) {
        let mut framed = b"%PDF-1.7\n".to_vec();
        framed.extend_from_slice(data);
        let _ = pdf::open(&framed, &budget, Passwords::default());
    }
});
