//! The listening socket as indymilter sees it: it survives accept errors,
//! stops on shutdown, and closes connections that idle before their first
//! message.
//!
//! indymilter ends its accept loop, and with it the daemon, on the first
//! `accept()` error. Running out of file descriptors (EMFILE) is such an
//! error, and any client that can open connections can cause it. Here an
//! accept error is logged (at most every [`WARN_EVERY`]) and waited out
//! with a growing pause, never returned to indymilter.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;
use tracing::warn;

use super::{Daemon, MilterListener};

/// First and longest pause after an accept error.
const BACKOFF_MIN: Duration = Duration::from_millis(20);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Accept errors are logged at most this often (the count of the others
/// follows in the next line).
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Lets shutdown close the listening socket while sessions go on.
#[derive(Default)]
pub(super) struct StopAccepting {
    stopped: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl StopAccepting {
    pub(super) fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        if let Some(w) = self.waker.lock().unwrap_or_else(|p| p.into_inner()).take() {
            w.wake();
        }
    }
}

/// Once stopped, it drops the socket (new connections are refused at
/// once) and accepts nothing more. Accept errors pause it, never end it.
pub(super) struct GracefulListener {
    inner: Option<MilterListener>,
    stop: Arc<StopAccepting>,
    daemon: Arc<Daemon>,
    pause: Option<Pin<Box<Sleep>>>,
    backoff: Duration,
    last_warning: Option<Instant>,
    unreported: u64,
}

impl GracefulListener {
    pub(super) fn new(
        inner: MilterListener,
        stop: Arc<StopAccepting>,
        daemon: Arc<Daemon>,
    ) -> GracefulListener {
        GracefulListener {
            inner: Some(inner),
            stop,
            daemon,
            pause: None,
            backoff: BACKOFF_MIN,
            last_warning: None,
            unreported: 0,
        }
    }

    fn poll_inner(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Stream>> {
        match &mut self.inner {
            None => Poll::Pending,
            Some(MilterListener::Tcp(l)) => l
                .poll_accept(cx)
                .map_ok(|(s, _)| indymilter::EitherStream::Tcp(s)),
            Some(MilterListener::Unix(l, _)) => l
                .poll_accept(cx)
                .map_ok(|(s, _)| indymilter::EitherStream::Unix(s)),
        }
    }

    fn warn(&mut self, e: &io::Error) {
        let now = Instant::now();
        if self
            .last_warning
            .is_some_and(|t| now.duration_since(t) < WARN_EVERY)
        {
            self.unreported += 1;
            return;
        }
        let more = match std::mem::take(&mut self.unreported) {
            0 => String::new(),
            n => format!(" ({n} more accept errors since the last warning)"),
        };
        warn!(
            "accepting a milter connection: {e}; pausing {} ms, then trying again{more}",
            self.backoff.as_millis()
        );
        self.last_warning = Some(now);
    }
}

pub(super) type Stream = indymilter::EitherStream<tokio::net::TcpStream, tokio::net::UnixStream>;

impl indymilter::Listener for GracefulListener {
    type Io = IdleLimited<Stream>;

    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Self::Io>> {
        *self.stop.waker.lock().unwrap_or_else(|p| p.into_inner()) = Some(cx.waker().clone());
        if self.stop.stopped.load(Ordering::SeqCst) {
            self.inner = None;
            return Poll::Pending;
        }
        loop {
            if let Some(pause) = &mut self.pause {
                if pause.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.pause = None;
            }
            match self.poll_inner(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(stream)) => {
                    self.backoff = BACKOFF_MIN;
                    let idle = self.daemon.engine().config().milter.idle_timeout_secs;
                    return Poll::Ready(Ok(IdleLimited::new(stream, Duration::from_secs(idle))));
                }
                // The client gave up before we accepted: nothing to wait for.
                Poll::Ready(Err(e))
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionAborted
                            | io::ErrorKind::ConnectionReset
                            | io::ErrorKind::Interrupted
                    ) => {}
                // Out of descriptors or memory, or anything else: wait and
                // try again (connections that end meanwhile free descriptors).
                Poll::Ready(Err(e)) => {
                    self.warn(&e);
                    self.pause = Some(Box::pin(tokio::time::sleep(self.backoff)));
                    self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }
}

/// A connection that is closed (a read fails with `TimedOut`) when no
/// message starts (milter command MAIL, `M`) within `idle` of connecting,
/// or of a connection reuse (`K`). Once a message started, only
/// `milter.connection_timeout_secs` applies. Reads see the milter packets
/// go by: a 4-byte length, then the command byte and its data.
pub(super) struct IdleLimited<S> {
    inner: S,
    idle: Duration,
    /// Running while no message has started; None after.
    deadline: Option<Pin<Box<Sleep>>>,
    framing: Framing,
}

impl<S> IdleLimited<S> {
    fn new(inner: S, idle: Duration) -> IdleLimited<S> {
        IdleLimited {
            inner,
            idle,
            deadline: Some(Box::pin(tokio::time::sleep(idle))),
            framing: Framing::default(),
        }
    }
}

/// Where the reader is in the stream of milter packets.
#[derive(Default)]
struct Framing {
    /// Bytes of the length prefix read so far.
    head: [u8; 4],
    have: usize,
    /// Bytes of the current packet not yet seen (command byte included).
    remaining: usize,
    at_command: bool,
}

impl Framing {
    /// Feed bytes read; `command` gets each packet's command byte.
    fn feed(&mut self, mut data: &[u8], mut command: impl FnMut(u8)) {
        while !data.is_empty() {
            if self.remaining == 0 {
                self.head[self.have] = data[0];
                self.have += 1;
                data = &data[1..];
                if self.have == 4 {
                    self.have = 0;
                    self.remaining = u32::from_be_bytes(self.head) as usize;
                    self.at_command = self.remaining > 0;
                }
                continue;
            }
            if self.at_command {
                command(data[0]);
                self.at_command = false;
            }
            let take = self.remaining.min(data.len());
            self.remaining -= take;
            data = &data[take..];
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for IdleLimited<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Some(deadline) = &mut this.deadline {
            if deadline.as_mut().poll(cx).is_ready() {
                tracing::debug!(
                    "closing an MTA connection: no message started within milter.idle_timeout_secs = {}",
                    this.idle.as_secs()
                );
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "no message started within milter.idle_timeout_secs = {}",
                        this.idle.as_secs()
                    ),
                )));
            }
        }
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = result {
            let (mut started, mut reused) = (false, false);
            this.framing.feed(&buf.filled()[before..], |c| match c {
                b'M' => started = true,
                b'K' => reused = true,
                _ => {}
            });
            if reused {
                this.deadline = Some(Box::pin(tokio::time::sleep(this.idle)));
            }
            if started {
                this.deadline = None;
            }
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for IdleLimited<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(cmd: u8, data: &[u8]) -> Vec<u8> {
        let mut p = ((data.len() + 1) as u32).to_be_bytes().to_vec();
        p.push(cmd);
        p.extend_from_slice(data);
        p
    }

    #[test]
    fn framing_sees_every_command_however_the_bytes_are_cut() {
        let mut stream = packet(b'O', &[0; 12]);
        stream.extend(packet(b'C', b"client\0"));
        stream.extend(packet(b'D', b"Mi\0queue\0"));
        stream.extend([0, 0, 0, 0]); // an empty packet
        stream.extend(packet(b'M', b"<a@b>\0"));
        for cut in [1, 2, 3, 5, 7, stream.len()] {
            let mut framing = Framing::default();
            let mut seen = Vec::new();
            for piece in stream.chunks(cut) {
                framing.feed(piece, |c| seen.push(c));
            }
            // The macro packet carries an `M` in its data: not a command.
            assert_eq!(seen, b"OCDM", "cut {cut}");
        }
    }

    #[tokio::test]
    async fn an_idle_connection_times_out_and_a_started_one_does_not() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let limit = Duration::from_millis(100);
        let (mut client, server) = tokio::io::duplex(1024);
        let mut idle = IdleLimited::new(server, limit);
        client.write_all(&packet(b'C', b"x\0")).await.unwrap();
        let mut buf = [0u8; 64];
        assert!(idle.read(&mut buf).await.unwrap() > 0);
        let e = idle.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);

        let (mut client, server) = tokio::io::duplex(1024);
        let mut started = IdleLimited::new(server, limit);
        client.write_all(&packet(b'M', b"<a@b>\0")).await.unwrap();
        assert!(started.read(&mut buf).await.unwrap() > 0);
        let later = tokio::time::timeout(limit * 4, started.read(&mut buf)).await;
        assert!(later.is_err(), "no idle limit once a message started");
    }
}
