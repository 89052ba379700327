//! The send side of one connection: a bounded queue of encoded messages and the one writer
//! task that drains it.
//!
//! Anyone may [`Outbox::push`] (the fan-out task, the connection's own command handling)
//! and it never waits: messages are shared [`ByteString`]s (a publication is encoded once for
//! every subscriber), the queue is a `std` mutex held for a few pointer moves (or for one
//! non-blocking write, see [`Outbox::push_direct`]), and a push that would take the queue
//! past its byte limit empties it and asks the writer to close the connection with 3008
//! (slow). The writer ([`run_writer`]) takes everything queued and writes it as one frame,
//! joined by `\n`, with one vectored write straight from the shared bytes (no copy), so a
//! client that falls behind gets fewer, larger frames instead of a longer queue. Pings and
//! pongs go through the same outbox, ahead of queued messages.
//!
//! On a connection that negotiated permessage-deflate the writer (and a direct write) sends
//! a message's compressed form instead ([`Outgoing::deflated`]): for a publication, the one
//! the first compressing subscriber computed, so a publication is compressed once however
//! many connections get it; those messages go in frames of their own, short ones are still
//! joined ([`FrameWriter::batch`]).
//!
//! Closing goes through the same queue, so a reply and the close that follows it stay in
//! order: [`Outbox::close`] lets queued messages go first, [`Outbox::close_now`] drops them.
//! A close frame waits at most the close timeout for a client that does not read; then the
//! session is dropped anyway. Either way the connection's `done` token fires when the writer
//! ends, which stops the connection's reader.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use herald_common::protocol::{Disconnect, DisconnectCode};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::metrics::{self, NodeStats};
use crate::transport::ws::{DirectWriter, FrameWriter};
use crate::transport::{Attempt, Outgoing, TryWriteFrame};

/// Largest frame the writer builds by joining messages (a single bigger message is still
/// written whole).
pub const MAX_FRAME_BYTES: usize = 16 * 1024;

/// Why a push was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The queue would pass its limit: the connection is being closed with 3008.
    Slow,
    /// The connection is closing or closed.
    Closed,
}

/// The send queue of one connection; `W` writes a frame straight to the connection while its
/// writer is idle (see [`Outbox::push_direct`]): the connection's one [`DirectWriter`].
#[derive(Debug)]
pub struct Outbox<W = DirectWriter> {
    state: Mutex<State>,
    /// Wakes the writer when the queue stops being empty or a close is requested.
    wake: Notify,
    /// Wakes a writer blocked on a client that does not read: an urgent close is pending.
    urgent: Notify,
    limit: usize,
    stats: Arc<NodeStats>,
    /// The connection's direct writer, for [`Wakes`]'s direct writes while the writer is
    /// idle. Only [`Outbox::push_direct`] uses it, under the queue's lock.
    direct: OnceLock<W>,
}

/// What a push did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Queued; the writer must be woken (see [`Outbox::wake`]).
    Wake,
    /// Queued; the writer already knows there is work.
    Queued,
    /// Written to the socket at once, as a frame of its own.
    Written,
}

/// Queue capacity (messages) an idle connection keeps; more is released when it goes idle.
const IDLE_QUEUE_CAPACITY: usize = 16;

/// Deliveries after which the fan-out wakes the writers it has queued for, so that a long
/// burst does not hold back the first messages.
pub const WAKE_AFTER: usize = 16 * 1024;

/// Queue growth reported to the node's peak statistic in steps of this many bytes, so the
/// shared counter is not touched on every push.
const PEAK_STEP: usize = 4096;

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<Outgoing>,
    bytes: usize,
    /// The largest `bytes` reported to the node statistics.
    reported_peak: usize,
    close: Option<Disconnect>,
    /// The rest of a frame a direct write began: the writer sends it before anything else.
    raw: Option<Bytes>,
    /// A ping or pong to write before the queued messages (a newer one replaces it).
    control: Option<Control>,
    /// The writer ended: nothing is accepted any more.
    finished: bool,
    /// The writer was told (or is about to be told) that there is work: it is writing, or a
    /// wake-up is on its way. Only the push that sets it wakes the writer, so a burst of
    /// messages costs one wake-up, not one per message.
    scheduled: bool,
}

/// A control frame for the writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// Ping the client (simple endpoints; the protocol pings with `{}` messages).
    Ping,
    /// Answer the client's ping with its payload.
    Pong(Bytes),
}

/// What the writer does next.
enum Next {
    /// Finish the frame a direct write began.
    Raw(Bytes),
    /// Write this control frame.
    Control(Control),
    /// Write these messages as one frame.
    Write(Vec<Outgoing>),
    /// Everything before the close was written: close.
    Close(Disconnect),
    /// Nothing to do: wait.
    Idle,
}

impl<W: TryWriteFrame> Outbox<W> {
    /// An empty queue holding at most `limit` bytes.
    pub fn new(limit: usize, stats: Arc<NodeStats>) -> Self {
        Self {
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            urgent: Notify::new(),
            limit,
            stats,
            direct: OnceLock::new(),
        }
    }

    /// Lets [`Wakes`] write frames straight to the connection through `direct` while the
    /// writer is idle (first call wins).
    pub fn attach_direct(&self, direct: W) {
        let _ = self.direct.set(direct);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent at every unlock, so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues one encoded message and wakes the writer if needed. Never waits.
    pub fn push(&self, message: Outgoing) -> Result<(), Refused> {
        if self.enqueue(message)? == Pushed::Wake {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Queues one encoded message without waking the writer; [`Pushed::Wake`] when the
    /// caller must call [`Outbox::wake`] later (see [`Wakes`]). Never waits.
    pub fn push_deferred(&self, message: Outgoing) -> Result<Pushed, Refused> {
        self.enqueue(message)
    }

    /// Like [`Outbox::push_deferred`], but while the writer is idle and nothing is queued the
    /// message is written to the socket at once, as one frame, by the caller: no wake-up, no
    /// task switch. The write is one non-blocking system call under the queue's lock, which
    /// keeps it from mixing with the writer's frames (an idle writer only starts again
    /// through a push, which waits for the lock). What the socket does not take at once is
    /// left to the writer: the rest of the frame, or the whole message when nothing went.
    pub fn push_direct(&self, message: Outgoing) -> Result<Pushed, Refused> {
        let mut state = self.lock();
        if state.finished || state.close.is_some() {
            return Err(Refused::Closed);
        }
        let idle = !state.scheduled
            && state.queue.is_empty()
            && state.raw.is_none()
            && state.control.is_none();
        if idle && let Some(direct) = self.direct.get() {
            match direct.try_write(&message) {
                Attempt::Whole => return Ok(Pushed::Written),
                Attempt::Partial(rest) => {
                    state.raw = Some(rest);
                    state.scheduled = true;
                    return Ok(Pushed::Wake);
                }
                Attempt::Nothing => {}
            }
        }
        drop(state);
        self.enqueue(message)
    }

    /// Wakes the writer after a push answered [`Pushed::Wake`].
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    fn enqueue(&self, message: Outgoing) -> Result<Pushed, Refused> {
        let len = message.len();
        let mut state = self.lock();
        if state.finished || state.close.is_some() {
            return Err(Refused::Closed);
        }
        if state.bytes + len > self.limit {
            self.overflow(&mut state);
            return Err(Refused::Slow);
        }
        state.queue.push_back(message);
        state.bytes += len;
        if state.bytes >= state.reported_peak + PEAK_STEP {
            state.reported_peak = state.bytes;
            self.stats.queue_peak(state.bytes);
        }
        let wake = !state.scheduled;
        state.scheduled = true;
        Ok(if wake { Pushed::Wake } else { Pushed::Queued })
    }

    /// Asks the writer for a control frame, ahead of queued messages.
    pub fn control(&self, control: Control) {
        let mut state = self.lock();
        if state.finished || state.close.is_some() {
            return;
        }
        state.control = Some(control);
        state.scheduled = true;
        drop(state);
        self.wake.notify_one();
    }

    /// Bytes queued right now.
    pub fn queued_bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Whether a close was requested or the writer ended.
    pub fn is_closing(&self) -> bool {
        let state = self.lock();
        state.finished || state.close.is_some()
    }

    /// Closes the connection after the messages already queued (the first close wins).
    pub fn close(&self, disconnect: Disconnect) {
        let mut state = self.lock();
        if state.finished || state.close.is_some() {
            return;
        }
        state.close = Some(disconnect);
        drop(state);
        self.wake.notify_one();
    }

    /// Closes the connection now, dropping whatever is queued (the first close wins).
    pub fn close_now(&self, disconnect: Disconnect) {
        let mut state = self.lock();
        if state.finished || state.close.is_some() {
            return;
        }
        self.drop_queue(&mut state);
        state.close = Some(disconnect);
        drop(state);
        self.wake.notify_one();
        self.urgent.notify_one();
    }

    fn overflow(&self, state: &mut State) {
        self.drop_queue(state);
        state.close = Some(DisconnectCode::Slow.to_disconnect());
        self.stats.slow_close();
        self.wake.notify_one();
        self.urgent.notify_one();
    }

    fn drop_queue(&self, state: &mut State) {
        state.queue.clear();
        state.bytes = 0;
    }

    /// Takes what the writer should do next, moving up to [`MAX_FRAME_BYTES`] of messages
    /// into `batch` (at least one message).
    fn next(&self, mut batch: Vec<Outgoing>) -> Next {
        let mut state = self.lock();
        if let Some(raw) = state.raw.take() {
            return Next::Raw(raw);
        }
        if let Some(control) = state.control.take() {
            return Next::Control(control);
        }
        let Some(first) = state.queue.pop_front() else {
            return match state.close.clone() {
                Some(close) => Next::Close(close),
                None => {
                    // Going idle: the next push wakes the writer. A queue that grew in a
                    // burst gives its memory back (idle connections are the common case).
                    state.scheduled = false;
                    if state.queue.capacity() > IDLE_QUEUE_CAPACITY {
                        state.queue = VecDeque::new();
                    }
                    Next::Idle
                }
            };
        };
        let mut taken = first.len();
        batch.push(first);
        while let Some(front) = state.queue.front() {
            if taken + 1 + front.len() > MAX_FRAME_BYTES {
                break;
            }
            taken += 1 + front.len();
            if let Some(message) = state.queue.pop_front() {
                batch.push(message);
            }
        }
        let bytes: usize = batch.iter().map(|message| message.len()).sum();
        state.bytes -= bytes;
        drop(state);
        Next::Write(batch)
    }

    /// The writer ended: refuse further pushes and release what is queued.
    fn finish(&self) {
        let mut state = self.lock();
        state.finished = true;
        self.drop_queue(&mut state);
    }
}

/// Outboxes that got messages through [`Outbox::push_deferred`] and still need their
/// wake-up: the fan-out delivers a whole batch of publications first and then wakes each
/// writer once, so a writer finds many messages to join into one frame instead of being
/// woken (across threads) for each. Dropping it wakes whatever is pending.
#[derive(Debug, Default)]
pub struct Wakes {
    pending: Vec<Arc<Outbox>>,
    deliveries: usize,
    /// Write to idle connections at once ([`Outbox::push_direct`]).
    direct: bool,
    /// Messages written directly since the last flush (for the metrics).
    written: u64,
}

impl Wakes {
    /// Whether pushes write to idle connections at once. The fan-out turns it on for an
    /// event that arrives alone for a small channel (there is nothing to join it with, and a
    /// wake-up and a task switch would cost more than the write), off when events come in
    /// batches, so that writers join a burst into few frames, and for large channels, whose
    /// writers then run in parallel.
    pub fn set_direct(&mut self, direct: bool) {
        self.direct = direct;
    }

    /// Queues `message` on `outbox` (or writes it, see [`Wakes::set_direct`]), remembering
    /// the outbox for a wake-up when needed. A refused push needs nothing: the connection is
    /// closing (and its writer was woken for that).
    pub fn push(&mut self, outbox: &Arc<Outbox>, message: Outgoing) {
        let pushed = if self.direct {
            outbox.push_direct(message)
        } else {
            outbox.push_deferred(message)
        };
        match pushed {
            Ok(Pushed::Wake) => self.pending.push(Arc::clone(outbox)),
            Ok(Pushed::Written) => self.written += 1,
            Ok(Pushed::Queued) | Err(_) => {}
        }
        self.deliveries += 1;
    }

    /// Whether enough was delivered since the last [`Wakes::flush`] to wake the writers now.
    pub fn due(&self) -> bool {
        self.deliveries >= WAKE_AFTER
    }

    /// Wakes every pending writer.
    pub fn flush(&mut self) {
        for outbox in self.pending.drain(..) {
            outbox.wake();
        }
        self.deliveries = 0;
        if self.written > 0 {
            ::metrics::counter!(metrics::MESSAGES_OUT).increment(self.written);
            ::metrics::counter!(metrics::FRAMES_OUT).increment(self.written);
            self.written = 0;
        }
    }
}

impl Drop for Wakes {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Writes what `outbox` queues to `writer` until a close was sent, the client went away or
/// the writer gave up on a client that does not read; then fires `done`.
pub async fn run_writer(
    outbox: Arc<Outbox>,
    mut writer: FrameWriter<'_>,
    close_timeout: Duration,
    done: CancellationToken,
) {
    // Handles looked up once per connection instead of once per frame.
    let messages_out = ::metrics::counter!(metrics::MESSAGES_OUT);
    let frames_out = ::metrics::counter!(metrics::FRAMES_OUT);
    let mut batch = Vec::new();
    loop {
        match outbox.next(std::mem::take(&mut batch)) {
            Next::Idle => {
                tokio::select! {
                    () = outbox.wake.notified() => {}
                    () = done.cancelled() => break,
                }
            }
            Next::Raw(raw) => {
                if !write_or_finish(writer.raw(&raw), &outbox, &done, close_timeout).await {
                    break;
                }
            }
            Next::Control(control) => {
                let frame = async {
                    match &control {
                        Control::Ping => writer.ping().await,
                        Control::Pong(payload) => writer.pong(payload).await,
                    }
                };
                if !write_or_finish(frame, &outbox, &done, close_timeout).await {
                    break;
                }
            }
            Next::Write(mut messages) => {
                let count = messages.len() as u64;
                let mut frames = 1;
                let frame = async {
                    frames = writer.batch(&messages).await?;
                    Ok(())
                };
                if !write_or_finish(frame, &outbox, &done, close_timeout).await {
                    break;
                }
                messages.clear();
                if messages.capacity() > IDLE_QUEUE_CAPACITY {
                    // A burst's batch is not kept by an idle connection.
                    messages = Vec::new();
                }
                batch = messages;
                messages_out.increment(count);
                frames_out.increment(frames as u64);
            }
            Next::Close(disconnect) => {
                metrics::disconnect(disconnect.close_code());
                let closing = writer.close(&disconnect);
                if tokio::time::timeout(close_timeout, closing).await.is_err() {
                    tracing::debug!("close frame not delivered in time; dropping the connection");
                }
                break;
            }
        }
    }
    outbox.finish();
    done.cancel();
}

/// Writes one frame; `false` when the connection is gone. An urgent close (3008, or the
/// reader ending) does not cut the frame in progress, which would leave no valid stream for
/// the close frame: the frame gets at most `close_timeout` more, and then the close follows
/// (without a close frame when even that did not finish, see [`FrameWriter::close`]).
async fn write_or_finish(
    frame: impl std::future::Future<Output = std::io::Result<()>>,
    outbox: &Outbox,
    done: &CancellationToken,
    close_timeout: Duration,
) -> bool {
    let mut frame = std::pin::pin!(frame);
    tokio::select! {
        biased;
        () = done.cancelled() => false,
        sent = &mut frame => sent.is_ok(),
        () = outbox.urgent.notified() => {
            let _ = tokio::time::timeout(close_timeout, &mut frame).await;
            true
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use tokio::net::TcpStream;

    fn outbox(limit: usize) -> Outbox {
        Outbox::new(limit, Arc::new(NodeStats::default()))
    }

    fn take(outbox: &Outbox) -> Vec<String> {
        match outbox.next(Vec::new()) {
            Next::Write(messages) => messages.iter().map(|m| m.text().to_string()).collect(),
            Next::Close(d) => vec![format!("close {}", d.code)],
            Next::Control(c) => vec![format!("{c:?}")],
            Next::Raw(r) => vec![format!("raw {r:?}")],
            Next::Idle => vec![],
        }
    }

    #[test]
    fn queued_messages_are_taken_together_and_the_close_comes_last() {
        let outbox = outbox(1024);
        outbox.push("a".into()).unwrap();
        outbox.push("b".into()).unwrap();
        outbox.close(DisconnectCode::BadRequest.to_disconnect());
        assert_eq!(outbox.push("c".into()), Err(Refused::Closed));
        assert_eq!(take(&outbox), ["a", "b"]);
        assert_eq!(take(&outbox), ["close 3501"]);
    }

    #[test]
    fn only_the_first_push_after_going_idle_asks_for_a_wake_up() {
        let outbox = outbox(1024);
        assert_eq!(outbox.push_deferred("a".into()), Ok(Pushed::Wake));
        assert_eq!(outbox.push_deferred("b".into()), Ok(Pushed::Queued));
        assert_eq!(take(&outbox), ["a", "b"]);
        // The writer is writing and comes back for more: no wake-up needed.
        assert_eq!(outbox.push_deferred("c".into()), Ok(Pushed::Queued));
        assert_eq!(take(&outbox), ["c"]);
        assert!(take(&outbox).is_empty());
        // It went idle: the next push wakes it.
        assert_eq!(outbox.push_deferred("d".into()), Ok(Pushed::Wake));
    }

    #[tokio::test]
    async fn deferred_wake_ups_are_delivered_by_flush_or_drop() {
        let outbox = Arc::new(outbox(1024));
        let mut wakes = Wakes::default();
        wakes.push(&outbox, "a".into());
        wakes.push(&outbox, "b".into());
        assert_eq!(wakes.pending.len(), 1);
        drop(wakes);
        let woken = tokio::time::timeout(Duration::from_secs(1), outbox.wake.notified()).await;
        assert!(woken.is_ok(), "the dropped Wakes woke the writer");
        assert_eq!(take(&outbox), ["a", "b"]);
    }

    #[test]
    fn a_pong_goes_out_before_queued_messages_and_the_newest_control_wins() {
        let outbox = outbox(1024);
        outbox.push("a".into()).unwrap();
        outbox.control(Control::Ping);
        outbox.control(Control::Pong(Bytes::from_static(b"p")));
        assert_eq!(
            take(&outbox),
            [format!("{:?}", Control::Pong(Bytes::from_static(b"p")))]
        );
        assert_eq!(take(&outbox), ["a"]);
        assert!(take(&outbox).is_empty());
        outbox.close(DisconnectCode::BadRequest.to_disconnect());
        outbox.control(Control::Ping);
        assert_eq!(
            take(&outbox),
            ["close 3501"],
            "no control frame after a close"
        );
    }

    async fn socket_pair() -> (DirectWriter, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (DirectWriter::for_test(server), client)
    }

    #[tokio::test]
    async fn an_idle_connection_gets_a_direct_frame_and_a_busy_one_a_queued_message() {
        use tokio::io::AsyncReadExt as _;
        let outbox = outbox(1024);
        let (server, mut client) = socket_pair().await;
        outbox.attach_direct(server);
        // Wait until the socket is known writable, as it is for a connection in use.
        outbox.direct.get().unwrap().writable().await.unwrap();
        assert_eq!(outbox.push_direct("hello".into()), Ok(Pushed::Written));
        let mut frame = [0u8; 7];
        client.read_exact(&mut frame).await.unwrap();
        assert_eq!(&frame, b"\x81\x05hello", "one final text frame, unmasked");
        // Something queued: the writer is due, so the next message waits its turn behind it.
        outbox.push("queued".into()).unwrap();
        assert_eq!(outbox.push_direct("later".into()), Ok(Pushed::Queued));
        assert_eq!(take(&outbox), ["queued", "later"]);
        // A closing connection takes nothing.
        outbox.close(DisconnectCode::BadRequest.to_disconnect());
        assert_eq!(outbox.push_direct("x".into()), Err(Refused::Closed));
    }

    #[tokio::test]
    async fn what_the_socket_does_not_take_is_left_to_the_writer_ahead_of_everything() {
        let stats = Arc::new(NodeStats::default());
        let outbox = Outbox::new(64 * 1024 * 1024, stats);
        let (server, _client) = socket_pair().await;
        outbox.attach_direct(server);
        outbox.direct.get().unwrap().writable().await.unwrap();
        // The client never reads: big messages fill the kernel's buffers, one is cut.
        let big: Outgoing = bytestring::ByteString::from("z".repeat(1024 * 1024)).into();
        let mut wrote = 0;
        loop {
            match outbox.push_direct(big.clone()) {
                Ok(Pushed::Written) => wrote += 1,
                Ok(Pushed::Wake) => break,
                other => panic!("unexpected {other:?} after {wrote} frames"),
            }
            assert!(wrote < 64, "the socket never filled");
        }
        outbox.control(Control::Ping);
        outbox.push("after".into()).unwrap();
        let first = take(&outbox);
        assert!(
            first[0].starts_with("raw "),
            "the cut frame's rest comes first: {first:?}"
        );
        assert_eq!(take(&outbox), [format!("{:?}", Control::Ping)]);
        assert_eq!(take(&outbox), ["after"]);
    }

    #[test]
    fn passing_the_limit_drops_the_queue_and_closes_as_slow() {
        let stats = Arc::new(NodeStats::default());
        let outbox = Outbox::new(10, Arc::clone(&stats));
        outbox.push("12345".into()).unwrap();
        assert_eq!(outbox.push("123456".into()), Err(Refused::Slow));
        assert_eq!(outbox.queued_bytes(), 0);
        assert_eq!(stats.snapshot().slow_closes, 1);
        assert_eq!(take(&outbox), ["close 3008"]);
    }

    #[test]
    fn a_batch_stops_before_the_frame_limit() {
        let outbox = outbox(4 * MAX_FRAME_BYTES);
        let big = "x".repeat(MAX_FRAME_BYTES / 2);
        for _ in 0..3 {
            outbox.push(big.as_str().into()).unwrap();
        }
        assert_eq!(take(&outbox).len(), 1);
        assert_eq!(take(&outbox).len(), 1);
    }
}
