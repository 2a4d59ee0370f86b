//! Zip walking: the bytes as a zip attachment, opened recursively into the
//! message view (entries, nesting, encryption, password candidates from the
//! body) within the default limits.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use malspam_milter::config::Limits;
use malspam_milter::view::MessageView;
use malspam_milter::Envelope;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let mail = common::mail_with("invoice.zip", "application/zip", data);
    let view = MessageView::build(
        Envelope::default(),
        &mail,
        &Limits::default(),
        Instant::now() + Duration::from_secs(20),
    );
    let _ = view.describe();
});
