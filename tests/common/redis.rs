//! A throwaway `redis-server` on a free loopback port, no persistence, for
//! the tests of the Redis store. Shared by tests/store_redis.rs and
//! tests/outbound_redis.rs through `#[path = "common/redis.rs"]`.
//!
//! Skips loudly when redis-server is not installed, except under CI (env
//! `CI` set), where .ci/run installs it and a missing server is a failure.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The server; killed and reaped on drop.
pub struct RedisServer {
    pub child: Child,
    pub port: u16,
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl RedisServer {
    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

/// Start a server, or None (having said why) when redis-server is absent.
pub fn start(test_file: &str) -> Option<RedisServer> {
    if Command::new("redis-server")
        .arg("--version")
        .output()
        .is_err()
    {
        if std::env::var_os("CI").is_some() {
            panic!("CI must run {test_file}, but redis-server is not installed (see .ci/run)");
        }
        eprintln!("\n*** SKIPPED {test_file}: redis-server is not installed (apt-get install redis-server) ***\n");
        return None;
    }
    // A port picked free may be taken before redis-server binds it (tests
    // run in parallel): then our server exits, and we try another port,
    // rather than talk to someone else's server.
    for _attempt in 0..5 {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let mut server = RedisServer { child, port };
        let start = Instant::now();
        loop {
            if server.child.try_wait().unwrap().is_some() {
                break; // exited: port taken
            }
            if answers_ping(port) {
                return Some(server);
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "redis-server did not come up on port {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    panic!("redis-server could not start on a free port in 5 attempts");
}

/// The server on `port` answers PING (it is up, and it is Redis).
fn answers_ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut reply = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && &reply == b"+PONG\r\n"
}
