//! The whole scan, raw bytes as a message: view, every detector, policy.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use malspam_milter::{Config, Engine, Envelope};

static ENGINE: LazyLock<Engine> = LazyLock::new(|| Engine::new(Config::default()).unwrap());

fuzz_target!(|data: &[u8]| {
    let _ = ENGINE.scan(Envelope::default(), data);
});
