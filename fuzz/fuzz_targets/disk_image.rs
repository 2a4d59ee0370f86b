//! `formats::disk_image::open` on arbitrary bytes, under a small budget: never a
//! panic, never more produced than the budget allows.
#![no_main]

use libfuzzer_sys::fuzz_target;
use malspam_milter::formats::{disk_image, Budget, Passwords};
use std::time::{Duration, Instant};

const BYTES: u64 = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let _ = disk_image::sniff(data);
    let budget = Budget::new(Instant::now() + Duration::from_secs(5), BYTES, 100);
    let opened = disk_image::open(data, &budget, Passwords::default());
    let produced: u64 = opened.embedded.iter().map(|e| e.data.len() as u64).sum();
    assert!(produced <= BYTES);
});
