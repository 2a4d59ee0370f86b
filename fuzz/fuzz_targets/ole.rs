//! OLE compound files (Office 97-2003, VBA projects): every stream of the
//! file read through cfb, then the whole scan with the bytes attached as
//! a .doc (office_macro's VBA extraction, when present).
#![no_main]

use std::io::{Cursor, Read};
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use malspam_milter::{Config, Engine, Envelope};

#[path = "common.rs"]
mod common;

static ENGINE: LazyLock<Engine> = LazyLock::new(|| Engine::new(Config::default()).unwrap());

fuzz_target!(|data: &[u8]| {
    if let Ok(mut file) = cfb::CompoundFile::open(Cursor::new(data)) {
        let streams: Vec<_> = file
            .walk()
            .filter(|e| e.is_stream())
            .map(|e| e.path().to_path_buf())
            .collect();
        for path in streams {
            if let Ok(mut stream) = file.open_stream(&path) {
                let mut buf = Vec::new();
                let _ = stream.by_ref().take(1 << 20).read_to_end(&mut buf);
            }
        }
    }
    let mail = common::mail_with("invoice.doc", "application/msword", data);
    let _ = ENGINE.scan(Envelope::default(), &mail);
});
