//! A shared lane: one upstream connection that many clients pipeline onto.
//!
//! A writer task takes every batch queued since its last write (one batch = one client's
//! contiguous run of commands), switches db/protocol in-stream when the next batch needs it
//! (`SELECT`/`HELLO`, whose replies are swallowed), and writes them all in one syscall. Before
//! writing it tells the reader, in the same order, whose replies to expect and how many. The
//! reader scans replies incrementally and hands each client its frames, several at a time, as
//! one `Bytes` split off the read buffer (no copy). A lane that fails answers every command it
//! had accepted with an error and dies; the pool opens another on demand.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::task::{Poll, Waker};
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::resp::{self, Limits, Scanner};
use super::upstream::RedisConn;

/// What a lane sends back to a client session.
#[derive(Debug)]
pub enum Reply {
    /// `n` complete reply frames, in order.
    Frames { n: usize, bytes: Bytes },
    /// `n` commands that will get no reply from the upstream.
    Failed { n: usize, error: Arc<str> },
}

/// A client session's inbox for replies from lanes. It replaces a tokio unbounded channel,
/// whose first block (32 slots) and cache-padded state cost about 2 KiB per client even when
/// the client is idle; this costs a few dozen bytes, and its queue is empty then.
#[derive(Default)]
pub struct ReplyQueue {
    inner: std::sync::Mutex<Inbox>,
}

#[derive(Default)]
struct Inbox {
    replies: VecDeque<Reply>,
    waker: Option<Waker>,
}

pub type ReplySender = Arc<ReplyQueue>;

impl std::fmt::Debug for ReplyQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplyQueue")
            .field("queued", &self.lock().replies.len())
            .finish()
    }
}

impl ReplyQueue {
    pub fn new() -> ReplySender {
        Arc::new(ReplyQueue::default())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inbox> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a reply and wakes the session (a session that is gone just drops it).
    pub fn send(&self, reply: Reply) {
        let mut inbox = self.lock();
        inbox.replies.push_back(reply);
        if let Some(w) = &inbox.waker {
            w.wake_by_ref();
        }
    }

    /// The next reply, in the order they were sent. Never `None`: the session holds a sender.
    pub async fn recv(&self) -> Option<Reply> {
        std::future::poll_fn(|cx| {
            let mut inbox = self.lock();
            if let Some(r) = inbox.replies.pop_front() {
                if inbox.replies.is_empty() && inbox.replies.capacity() > 16 {
                    inbox.replies = VecDeque::new();
                }
                return Poll::Ready(Some(r));
            }
            if !inbox
                .waker
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()))
            {
                inbox.waker = Some(cx.waker().clone());
            }
            Poll::Pending
        })
        .await
    }
}

/// One client's contiguous run of commands.
#[derive(Debug)]
pub struct Batch {
    pub bytes: Bytes,
    pub n: usize,
    pub db: u16,
    pub resp3: bool,
    pub reply: ReplySender,
}

enum Expect {
    Deliver {
        reply: ReplySender,
        remaining: usize,
    },
    /// A reply to a command the lane injected itself.
    Swallow(&'static str),
}

/// Stop collecting batches into one write beyond this many bytes.
const MAX_WRITE: usize = 256 * 1024;
const READ_CHUNK: usize = 16 * 1024;

pub struct Lane {
    pub id: u64,
    tx: mpsc::UnboundedSender<Batch>,
    inflight: AtomicUsize,
    /// (db << 1 | resp3) the writer last switched to; lets the pool prefer a lane that needs no
    /// switch.
    key: AtomicU32,
    cancel: CancellationToken,
    pub created: Instant,
    /// Reservations so far. Counting instead of reading the clock on every reservation, the
    /// reaper notes when the count last moved: a coarse last-used time (late by at most one
    /// reaper interval, never early).
    uses: AtomicU64,
    /// The reaper's (count, when it last saw the count change).
    seen: std::sync::Mutex<(u64, Instant)>,
}

pub fn key(db: u16, resp3: bool) -> u32 {
    (u32::from(db) << 1) | u32::from(resp3)
}

impl Lane {
    /// Starts the lane's writer and reader on an established connection.
    pub fn spawn(conn: RedisConn, id: u64, limits: Limits) -> Arc<Lane> {
        let (tx, rx) = mpsc::unbounded_channel();
        let (expect_tx, expect_rx) = mpsc::unbounded_channel();
        let lane = Arc::new(Lane {
            id,
            tx,
            inflight: AtomicUsize::new(0),
            key: AtomicU32::new(key(conn.db, conn.resp3)),
            cancel: CancellationToken::new(),
            created: conn.created,
            uses: AtomicU64::new(0),
            seen: std::sync::Mutex::new((0, Instant::now())),
        });
        let (db, resp3, addr) = (conn.db, conn.resp3, conn.addr.clone());
        let leftover = conn.buf;
        let (r, w) = conn.stream.into_split();
        let writer = Writer {
            lane: lane.clone(),
            w,
            rx,
            expect_tx,
            db,
            resp3,
        };
        let reader = Reader {
            lane: lane.clone(),
            r,
            buf: leftover,
            scanner: Scanner::new(limits),
            expect_rx,
            queue: VecDeque::new(),
            ready: 0,
            ready_n: 0,
        };
        tokio::spawn(writer.run());
        tokio::spawn(async move {
            let why = reader.run().await;
            tracing::warn!(lane = id, upstream = %addr, error = %why, "lane closed");
        });
        lane
    }

    pub fn inflight(&self) -> usize {
        self.inflight.load(Ordering::Relaxed)
    }

    /// Reserves room for `n` replies (done under the pool's lock when the lane is chosen, so
    /// the idle reaper never closes a lane a client is about to use).
    pub fn reserve(&self, n: usize) {
        self.inflight.fetch_add(n, Ordering::Relaxed);
        self.uses.fetch_add(1, Ordering::Relaxed);
    }

    /// When the lane was last reserved, as far as the reaper (calling this at `now`) knows.
    pub fn idle_since(&self, now: Instant) -> Instant {
        let uses = self.uses.load(Ordering::Relaxed);
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.0 != uses {
            *seen = (uses, now);
        }
        seen.1
    }

    pub fn key(&self) -> u32 {
        self.key.load(Ordering::Relaxed)
    }

    pub fn is_dead(&self) -> bool {
        self.cancel.is_cancelled()
    }

    pub fn close(&self) {
        self.cancel.cancel();
    }

    /// Queues a batch whose `n` replies were reserved. On a dead lane the batch comes back.
    pub fn send(&self, batch: Batch) -> Result<(), Batch> {
        self.tx.send(batch).map_err(|e| {
            self.inflight.fetch_sub(e.0.n, Ordering::Relaxed);
            e.0
        })
    }

    fn answered(&self, n: usize) {
        self.inflight.fetch_sub(n, Ordering::Relaxed);
    }
}

struct Writer {
    lane: Arc<Lane>,
    w: OwnedWriteHalf,
    rx: mpsc::UnboundedReceiver<Batch>,
    expect_tx: mpsc::UnboundedSender<Expect>,
    db: u16,
    resp3: bool,
}

impl Writer {
    async fn run(mut self) {
        let mut out = BytesMut::with_capacity(READ_CHUNK);
        let error: Arc<str> = loop {
            let first = tokio::select! {
                b = self.rx.recv() => b,
                _ = self.lane.cancel.cancelled() => None,
            };
            let Some(first) = first else {
                break "lane closed".into();
            };
            // Let the other sessions woken by the same poll queue their batches first: one
            // write then carries many clients' commands (at -P 1 this took the upstream writes
            // from one per command to a few per poll cycle).
            tokio::task::yield_now().await;
            let mut next = Some(first);
            while let Some(batch) = next.take() {
                if let Err(batch) = self.queue(batch, &mut out) {
                    fail(&self.lane, batch.reply, batch.n, "lane closed".into());
                }
                if out.len() < MAX_WRITE {
                    next = self.rx.try_recv().ok();
                }
            }
            if let Err(e) = self.w.write_all(&out).await {
                break format!("write to upstream failed: {e}").into();
            }
            out.clear();
            if out.capacity() > 4 * MAX_WRITE {
                out = BytesMut::with_capacity(READ_CHUNK);
            }
        };
        self.lane.cancel.cancel();
        // Everything accepted but not written is answered here; what was written is answered
        // by the reader.
        self.rx.close();
        while let Ok(b) = self.rx.try_recv() {
            fail(&self.lane, b.reply, b.n, error.clone());
        }
    }

    /// Appends a batch (and any db/protocol switch it needs) to the write buffer, after telling
    /// the reader what to expect.
    fn queue(&mut self, batch: Batch, out: &mut BytesMut) -> Result<(), Batch> {
        if batch.resp3 != self.resp3 {
            let proto: &[u8] = if batch.resp3 { b"3" } else { b"2" };
            if self.expect_tx.send(Expect::Swallow("HELLO")).is_err() {
                return Err(batch);
            }
            resp::encode_command(out, &[b"HELLO", proto]);
            self.resp3 = batch.resp3;
        }
        if batch.db != self.db {
            if self.expect_tx.send(Expect::Swallow("SELECT")).is_err() {
                return Err(batch);
            }
            let mut digits = itoa_buf(batch.db);
            resp::encode_command(out, &[b"SELECT", digits.as_bytes()]);
            digits.clear();
            self.db = batch.db;
        }
        self.lane
            .key
            .store(key(self.db, self.resp3), Ordering::Relaxed);
        let Batch {
            bytes, n, reply, ..
        } = batch;
        match self.expect_tx.send(Expect::Deliver {
            reply,
            remaining: n,
        }) {
            Ok(()) => {
                out.extend_from_slice(&bytes);
                Ok(())
            }
            Err(mpsc::error::SendError(Expect::Deliver { reply, .. })) => Err(Batch {
                bytes,
                n,
                db: self.db,
                resp3: self.resp3,
                reply,
            }),
            Err(_) => unreachable!("we sent a Deliver"),
        }
    }
}

fn itoa_buf(n: u16) -> String {
    n.to_string()
}

fn fail(lane: &Lane, reply: ReplySender, n: usize, error: Arc<str>) {
    lane.answered(n);
    reply.send(Reply::Failed { n, error });
}

struct Reader {
    lane: Arc<Lane>,
    r: OwnedReadHalf,
    buf: BytesMut,
    scanner: Scanner,
    expect_rx: mpsc::UnboundedReceiver<Expect>,
    queue: VecDeque<Expect>,
    /// Bytes and count of complete frames at the front of `buf`, all for the head `Deliver`,
    /// not yet handed over.
    ready: usize,
    ready_n: usize,
}

impl Reader {
    async fn run(mut self) -> Arc<str> {
        let error: Arc<str> = loop {
            if let Err(e) = self.scan() {
                break e.into();
            }
            if self.buf.capacity() - self.buf.len() < READ_CHUNK / 4 {
                self.buf.reserve(READ_CHUNK);
            }
            let read = tokio::select! {
                r = self.r.read_buf(&mut self.buf) => r,
                _ = self.lane.cancel.cancelled() => break "lane closed".into(),
            };
            match read {
                Ok(0) => break "upstream closed the connection".into(),
                Ok(_) => {}
                Err(e) => break format!("read from upstream failed: {e}").into(),
            }
        };
        self.lane.cancel.cancel();
        self.flush();
        self.expect_rx.close();
        while let Ok(e) = self.expect_rx.try_recv() {
            self.queue.push_back(e);
        }
        for e in self.queue.drain(..) {
            if let Expect::Deliver { reply, remaining } = e {
                fail(
                    &self.lane,
                    reply,
                    remaining,
                    format!("upstream connection lost: {error}").into(),
                );
            }
        }
        error
    }

    /// Routes every complete frame in the buffer.
    fn scan(&mut self) -> Result<(), String> {
        loop {
            let info = match self.scanner.scan(&self.buf[self.ready..]) {
                Ok(Some(info)) => info,
                Ok(None) => break,
                Err(e) => return Err(format!("upstream sent malformed RESP: {e}")),
            };
            if info.is_push() {
                // Shared lanes never enable anything that pushes; drop it rather than hand a
                // client a frame it did not ask for.
                self.flush();
                tracing::debug!(lane = self.lane.id, "dropped an unexpected push frame");
                self.buf.advance(info.len);
                continue;
            }
            if self.queue.is_empty() {
                match self.expect_rx.try_recv() {
                    Ok(e) => self.queue.push_back(e),
                    Err(_) => return Err("upstream sent a reply nobody asked for".into()),
                }
            }
            match self.queue.front_mut() {
                Some(Expect::Swallow(what)) => {
                    if info.is_error() {
                        let msg = String::from_utf8_lossy(&self.buf[..info.len])
                            .trim()
                            .to_string();
                        return Err(format!("upstream refused the lane's {what}: {msg}"));
                    }
                    self.buf.advance(info.len);
                    self.queue.pop_front();
                }
                Some(Expect::Deliver { remaining, .. }) => {
                    self.ready += info.len;
                    self.ready_n += 1;
                    *remaining -= 1;
                    if *remaining == 0 {
                        self.flush();
                        self.queue.pop_front();
                    }
                }
                None => unreachable!("queue was filled above"),
            }
        }
        // Hand over what is complete now rather than waiting for the rest of a client's batch.
        self.flush();
        Ok(())
    }

    fn flush(&mut self) {
        if self.ready_n == 0 {
            return;
        }
        let bytes = self.buf.split_to(self.ready).freeze();
        let n = std::mem::take(&mut self.ready_n);
        self.ready = 0;
        self.lane.answered(n);
        if let Some(Expect::Deliver { reply, .. }) = self.queue.front() {
            reply.send(Reply::Frames { n, bytes });
        }
    }
}
