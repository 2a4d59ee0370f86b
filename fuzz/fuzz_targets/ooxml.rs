//! `formats::ooxml::open` called directly on arbitrary bytes, with a small
//! budget so that limits and budget refusals are exercised too.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use malspam_milter::formats::{ooxml, Budget, Passwords};

fuzz_target!(|data: &[u8]| {
    let budget = Budget::new(Instant::now() + Duration::from_secs(5), 8 << 20, 100);
    let opened = ooxml::open(data, &budget, Passwords::default());
    // Whatever comes out was charged to the budget first.
    let produced: usize = opened.embedded.iter().map(|e| e.data.len()).sum();
    assert!(produced as u64 <= 8 << 20);
});
