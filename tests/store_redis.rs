//! The Redis backend against a real `redis-server` this test starts on a
//! free loopback port (no persistence). Skips loudly when redis-server is
//! not installed (`apt-get install redis-server`; CI installs it).

use std::sync::Arc;
use std::time::{Duration, Instant};

use malspam_milter::store::{contract, RedisStore, Store, StoreBackend, StoreConfig};
use malspam_milter::{Config, Engine, Envelope, Verdict};

#[path = "common/redis.rs"]
mod redis_harness;

fn start_redis() -> Option<redis_harness::RedisServer> {
    redis_harness::start("tests/store_redis.rs")
}

fn config(port: u16, prefix: &str) -> StoreConfig {
    StoreConfig {
        backend: StoreBackend::Redis,
        url: format!("redis://127.0.0.1:{port}/0"),
        key_prefix: prefix.into(),
        timeout_ms: 1000,
        reconnect_after_ms: 60_000,
        ..StoreConfig::default()
    }
}

const ORIGINAL: &str = "From: Taro Yamada <taro@legal-holdings.co.jp>\r\n\
To: Hanako Sato <hanako@partner.example.com>\r\nSubject: Invoice for March\r\n\
Date: Mon, 4 Mar 2019 10:12:00 +0900\r\nMessage-ID: <m1@legal-holdings.co.jp>\r\n\r\nPlease find the invoice.\r\n";

const HIJACK: &str = "From: Taro Yamada <kx8@stranger-host.example>\r\n\
To: Hanako Sato <hanako@partner.example.com>\r\nSubject: RE: Invoice for March\r\n\
Date: Mon, 10 Jun 2019 09:00:00 +0900\r\nMessage-ID: <h1@stranger-host.example>\r\n\
In-Reply-To: <m1@legal-holdings.co.jp>\r\nReferences: <m1@legal-holdings.co.jp>\r\n\r\n\
Updated invoice: https://files.stranger-host.example/inv.doc\r\n\r\n\
On Mon, Mar 4, 2019 at 10:12 AM Taro Yamada <taro@legal-holdings.co.jp> wrote:\r\n> Please find the invoice.\r\n";

#[test]
fn redis_backend_meets_the_contract_and_keeps_thread_memory() {
    let Some(server) = start_redis() else { return };
    let store = RedisStore::new(&config(server.port, "test-contract:")).unwrap();
    store.ping().unwrap();
    contract::check_all(&store);

    // Expiry is Redis's own: a value with a short TTL goes away.
    store
        .put("short", b"x", Some(Duration::from_millis(50)))
        .unwrap();
    let start = Instant::now();
    while store.get("short").unwrap().is_some() {
        assert!(start.elapsed() < Duration::from_secs(10), "never expired");
        std::thread::sleep(Duration::from_millis(20));
    }

    // Two mail servers sharing the Redis: one remembers, the other sees it.
    let shared = config(server.port, "fleet:");
    let cfg = Config {
        store: shared.clone(),
        ..Config::default()
    };
    let mx1 = Engine::with_store(cfg.clone(), Arc::new(RedisStore::new(&shared).unwrap())).unwrap();
    let mx2 = Engine::with_store(cfg, Arc::new(RedisStore::new(&shared).unwrap())).unwrap();
    assert_eq!(
        mx1.scan_and_commit(Envelope::default(), ORIGINAL.as_bytes())
            .verdict,
        Verdict::Accept
    );
    let report = mx2.scan_and_commit(Envelope::default(), HIJACK.as_bytes());
    let rules: Vec<String> = report.findings.iter().map(|f| f.full_rule()).collect();
    assert!(
        rules.contains(&"thread_hijack.unknown_participant".to_string()),
        "{rules:?}"
    );
    assert_eq!(report.verdict, Verdict::Quarantine, "{rules:?}");
    // Keys are prefixed, and the thread record has a TTL of a year.
    let keys = RedisStore::new(&config(server.port, ""))
        .unwrap()
        .keys_with_prefix("fleet:thread:")
        .unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let client = redis::Client::open(format!("redis://127.0.0.1:{}/0", server.port)).unwrap();
    let mut conn = client.get_connection().unwrap();
    let ttl: i64 = redis::cmd("PTTL").arg(&keys[0]).query(&mut conn).unwrap();
    let year_ms = 365 * 86_400_000i64;
    assert!(ttl > year_ms - 60_000 && ttl <= year_ms, "ttl {ttl}");
}

#[test]
fn a_redis_that_goes_away_becomes_scan_error_and_mail_passes() {
    let Some(mut server) = start_redis() else {
        return;
    };
    let shared = config(server.port, "gone:");
    let cfg = Config {
        store: shared.clone(),
        ..Config::default()
    };
    let engine = Engine::with_store(cfg, Arc::new(RedisStore::new(&shared).unwrap())).unwrap();
    assert_eq!(
        engine
            .scan_and_commit(Envelope::default(), ORIGINAL.as_bytes())
            .verdict,
        Verdict::Accept
    );
    let _ = server.child.kill();
    let _ = server.child.wait();
    for _ in 0..3 {
        let report = engine.scan_and_commit(Envelope::default(), HIJACK.as_bytes());
        let errors: Vec<&str> = report
            .findings
            .iter()
            .filter(|f| f.full_rule() == "scan.error")
            .map(|f| f.evidence.as_str())
            .collect();
        assert!(!errors.is_empty(), "{:?}", report.findings);
        assert!(errors.iter().all(|e| e.contains("redis")), "{errors:?}");
        // The rules that need no store still judge the mail.
        assert!(report
            .findings
            .iter()
            .any(|f| f.full_rule() == "thread_hijack.quoted_header_mismatch"));
    }
}

/// Issue "one direction of flow": two mail servers sharing one Redis, each
/// with four scan threads, remember 240 messages of the same correspondent
/// at once. Remembering reads the correspondent's record, adds the message
/// and writes it back: without an atomic update two writers read the same
/// count and one increment is lost. Every message must count.
#[test]
fn concurrent_remembering_on_two_servers_loses_no_count() {
    let Some(server) = start_redis() else { return };
    let shared = config(server.port, "race:");
    let cfg = Config {
        store: shared.clone(),
        ..Config::default()
    };
    let servers: Vec<Arc<Engine>> = (0..2)
        .map(|_| {
            Arc::new(
                Engine::with_store(cfg.clone(), Arc::new(RedisStore::new(&shared).unwrap()))
                    .unwrap(),
            )
        })
        .collect();
    const PER_THREAD: usize = 30;
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let engine = servers[t % 2].clone();
            std::thread::spawn(move || {
                for i in 0..PER_THREAD {
                    let raw = format!(
                        "From: Taro Yamada <taro@legal-holdings.co.jp>\r\nTo: staff@example.jp\r\n\
Subject: note {t}-{i}\r\nMessage-ID: <n{t}-{i}@legal-holdings.co.jp>\r\n\r\nA short note.\r\n"
                    );
                    let r = engine.scan_and_commit(Envelope::default(), raw.as_bytes());
                    assert_eq!(r.verdict, Verdict::Accept, "{:?}", r.findings);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let store = RedisStore::new(&shared).unwrap();
    let taro =
        malspam_milter::store::correspondents::lookup_address(&store, "taro@legal-holdings.co.jp")
            .unwrap()
            .expect("remembered");
    assert_eq!(taro.messages, 8 * PER_THREAD as u64, "increments lost");
    assert_eq!(
        store.keys_with_prefix("thread:").unwrap().len(),
        8 * PER_THREAD
    );
}

/// How many GETs Redis has served.
fn gets_served(port: u16) -> u64 {
    let mut conn = redis::Client::open(format!("redis://127.0.0.1:{port}/0"))
        .unwrap()
        .get_connection()
        .unwrap();
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut conn)
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_get:calls="))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(10), "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The read cache in front of Redis: a lookup it holds costs Redis no
/// command; a change by another mail server evicts it (Redis tells); this
/// process's own writes are read at once; counters are never cached; a
/// lost listener empties it, and it comes back coherent.
#[test]
fn the_read_cache_answers_only_what_redis_says_is_unchanged() {
    use malspam_milter::store::Reads;
    let Some(server) = start_redis() else { return };
    let cfg = StoreConfig {
        reconnect_after_ms: 100,
        ..config(server.port, "cache:")
    };
    let store = RedisStore::new(&cfg).unwrap();
    let other = RedisStore::new(&StoreConfig {
        cache_entries: 0,
        ..cfg.clone()
    })
    .unwrap();
    let cache = store.cache().expect("on by default");
    wait_until("the cache's listener never subscribed", || cache.is_live());

    other.put("thread:a", b"1", None).unwrap();
    other.set_add("corr:name:n", b"x", None).unwrap();
    let mut reads = Reads::default();
    reads.value("thread:a".into());
    reads.set("corr:name:n".into());
    let read = |store: &RedisStore| store.read(&reads).unwrap();
    assert_eq!(read(&store).value("thread:a").unwrap(), Some(&b"1"[..]));
    // Filled once the invalidations of those writes have come and gone
    // (a read that saw one arrive keeps nothing).
    wait_until("the cache never kept the reads", || {
        read(&store);
        cache.len() == 2
    });
    let before = gets_served(server.port);
    let hit = read(&store);
    assert_eq!(hit.value("thread:a").unwrap(), Some(&b"1"[..]));
    assert_eq!(hit.members("corr:name:n").unwrap(), [b"x".to_vec()]);
    assert_eq!(gets_served(server.port), before, "a hit went to Redis");

    // Another mail server changes both: each is evicted when Redis says so.
    other.put("thread:a", b"2", None).unwrap();
    other.set_add("corr:name:n", b"y", None).unwrap();
    wait_until("another server's write was never seen", || {
        let now = read(&store);
        now.value("thread:a").unwrap() == Some(&b"2"[..])
            && now.members("corr:name:n").unwrap().len() == 2
    });

    // This process's own writes are read at once, not when Redis tells.
    for n in 0..50 {
        let v = format!("own{n}");
        store.put("thread:a", v.as_bytes(), None).unwrap();
        assert_eq!(read(&store).value("thread:a").unwrap(), Some(v.as_bytes()));
    }
    store.set_add("corr:name:n", b"z", None).unwrap();
    assert_eq!(read(&store).members("corr:name:n").unwrap().len(), 3);

    // Counters are never cached.
    let mut counter = Reads::default();
    counter.value("ob:c:alice".into());
    store.read(&counter).unwrap();
    other.incr("ob:c:alice", 5, None).unwrap();
    assert_eq!(
        store.read(&counter).unwrap().count("ob:c:alice").unwrap(),
        5
    );

    // The listener's connection is killed: the cache empties and stops
    // answering until it is subscribed again, and then it is coherent.
    read(&store);
    let mut admin = redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query(&mut admin)
        .unwrap();
    assert_eq!(killed, 1);
    other.put("thread:a", b"while away", None).unwrap();
    wait_until("the listener never came back", || {
        cache.is_live() && read(&store).value("thread:a").unwrap() == Some(&b"while away"[..])
    });
    other.put("thread:a", b"after", None).unwrap();
    wait_until(
        "a write after the listener came back was never seen",
        || read(&store).value("thread:a").unwrap() == Some(&b"after"[..]),
    );

    // A Redis that stops answering without closing the connection: the
    // listener's PING notices and the cache stops answering, until Redis
    // is back.
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(3000)
        .arg("ALL")
        .query(&mut admin)
        .unwrap();
    wait_until("a silent Redis left the cache in use", || !cache.is_live());
    wait_until("the cache never came back after the pause", || {
        cache.is_live()
    });
}
