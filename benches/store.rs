//! What the store costs a message: the thread_hijack lookup (one read of
//! the referenced Message-IDs and the sender) plus remembering the message
//! (one read, one write transaction), on the embedded (SQLite) backend and,
//! for comparison, in memory.
//!
//! Run: `cargo bench --bench store` (prints microseconds per message).

use std::sync::Arc;
use std::time::{Duration, Instant};

use malspam_milter::store::threads::{self, thread_key};
use malspam_milter::store::{
    correspondents, EmbeddedStore, MemoryStore, Reads, RedisStore, Store, StoreBackend, StoreConfig,
};
use malspam_milter::view::MessageView;
use malspam_milter::Envelope;

const MESSAGES: usize = 3000;

fn views() -> Vec<MessageView> {
    let limits = malspam_milter::config::Limits::default();
    (0..MESSAGES)
        .map(|i| {
            let raw = format!(
                "From: Person {a} <p{a}@org{d}.example>\r\nTo: Other {b} <o{b}@org{e}.example>, c{i}@x.example\r\n\
Subject: Re: topic {t}\r\nDate: Mon, 4 Mar 2019 10:12:00 +0900\r\nMessage-ID: <m{i}@bench>\r\n\
In-Reply-To: <m{p}@bench>\r\nReferences: <m{q}@bench> <m{p}@bench>\r\n\r\nhello\r\n",
                a = i % 200,
                b = (i * 7) % 300,
                d = i % 40,
                e = (i * 3) % 40,
                t = i / 10,
                p = i.saturating_sub(1),
                q = i.saturating_sub(2),
            );
            MessageView::build(
                Envelope::default(),
                raw.as_bytes(),
                &limits,
                Instant::now() + Duration::from_secs(10),
            )
        })
        .collect()
}

/// The detector's read: referenced threads and the sender's record.
fn lookup_keys(v: &MessageView) -> Vec<String> {
    let mut keys: Vec<String> = v
        .in_reply_to
        .iter()
        .chain(&v.references)
        .map(|id| thread_key(id))
        .collect();
    if let Some(a) = v.from.as_ref().and_then(|m| m.address.as_deref()) {
        keys.push(correspondents::address_key(a));
    }
    keys
}

fn per_message(store: &dyn Store, views: &[MessageView]) -> f64 {
    let ttl = Duration::from_secs(365 * 86_400);
    let start = Instant::now();
    for v in views {
        std::hint::black_box(store.get_many(&lookup_keys(v)).unwrap());
        // Remembering the passed message.
        let memo = threads::Remembrance::of(v);
        threads::remember(store, &memo, ttl, 0, &threads::Trust::BELIEVED).unwrap();
    }
    start.elapsed().as_secs_f64() * 1e6 / views.len() as f64
}

fn main() {
    let views = views();
    let dir = tempfile::tempdir().unwrap();
    let embedded: Arc<dyn Store> = Arc::new(
        EmbeddedStore::open(&dir.path().join("bench.sqlite3"), Duration::from_secs(5)).unwrap(),
    );
    let memory: Arc<dyn Store> = Arc::new(MemoryStore::new());
    println!(
        "embedded (SQLite, WAL): {:.1} µs per message (lookup + remember), {MESSAGES} messages",
        per_message(embedded.as_ref(), &views)
    );
    // Again over the same messages: all known, so read-only.
    println!(
        "embedded, messages already remembered: {:.1} µs per message",
        per_message(embedded.as_ref(), &views)
    );
    // The lookup alone (one read transaction), nothing queued.
    let start = Instant::now();
    for v in &views {
        std::hint::black_box(embedded.get_many(&lookup_keys(v)).unwrap());
    }
    println!(
        "embedded, the lookup alone: {:.1} µs per message",
        start.elapsed().as_secs_f64() * 1e6 / views.len() as f64
    );
    if let Ok(url) = std::env::var("MALSPAM_BENCH_REDIS") {
        redis_lookups(&url, &views);
    }
    println!(
        "memory: {:.1} µs per message",
        per_message(memory.as_ref(), &views)
    );
}

/// With `MALSPAM_BENCH_REDIS=redis://...` (a scratch Redis: keys under
/// `bench-cache:` are written): the lookup of each message, twice over
/// the same messages, with the read cache and without it.
fn redis_lookups(url: &str, views: &[MessageView]) {
    let config = |cache_entries| StoreConfig {
        backend: StoreBackend::Redis,
        url: url.to_string(),
        key_prefix: "bench-cache:".into(),
        cache_entries,
        ..StoreConfig::default()
    };
    let ttl = Duration::from_secs(86_400);
    let plain = RedisStore::new(&config(0)).unwrap();
    for v in views {
        let memo = threads::Remembrance::of(v);
        threads::remember(&plain, &memo, ttl, 0, &threads::Trust::BELIEVED).unwrap();
    }
    let cached = RedisStore::new(&config(100_000)).unwrap();
    let start = Instant::now();
    while !cached.cache().unwrap().is_live() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "cache never live"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    for (name, store) in [("without the cache", &plain), ("with the cache", &cached)] {
        for pass in ["first", "second"] {
            let start = Instant::now();
            for v in views {
                let mut reads = Reads::default();
                lookup_keys(v).into_iter().for_each(|k| reads.value(k));
                std::hint::black_box(store.read(&reads).unwrap());
            }
            println!(
                "redis {name}, {pass} pass: {:.1} µs per lookup",
                start.elapsed().as_secs_f64() * 1e6 / views.len() as f64
            );
        }
    }
}
