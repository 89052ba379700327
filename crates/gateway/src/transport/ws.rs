//! WebSocket connections on the bare TCP stream (RFC 6455 framing).
//!
//! A WebSocket handler answers the handshake like any actix-web handler ([`handshake`]) and
//! attaches what to run on the connection ([`upgrade`]). The HTTP server of every Herald
//! process ([`herald_service::server`]) passes every upgrade request through actix-http's
//! upgrade hook: it asks the application for the response, writes the `101`, and then runs
//! the attached connection on the TCP stream itself. The HTTP/1 dispatcher is gone by then, with its two
//! 8 KiB buffers, and so are actix-ws' per-session channel and message stream: an open
//! connection is one task that reads frames into a buffer it holds only while a frame is
//! incomplete, and writes queued messages straight from the shared, encoded-once bytes with
//! one vectored write (`writev`) per frame. See docs/benchmarks.md ("Idle connections").
//!
//! Frames from the client are decoded with actix-http's WebSocket codec (masking, lengths,
//! opcodes, the size limit); continuations are joined here up to the same limit. When the
//! handshake negotiated permessage-deflate ([`super::deflate`]), RSV1 on a message's first
//! frame marks it compressed: the bit is taken off before the codec sees the frame and the
//! joined message is inflated under the same limit; server frames are compressed as the
//! negotiation says, a shared message once for every connection.

use std::future::Future;
use std::io::{self, IoSlice};
use std::sync::Arc;

use actix_http::ws::{Codec, Frame, Item, ProtocolError};
use actix_web::http::header::SEC_WEBSOCKET_EXTENSIONS;
use actix_web::{HttpRequest, HttpResponse};
use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use herald_common::protocol::{Disconnect, DisconnectCode};
use herald_service::server::OnUpgrade;
use tokio::net::TcpStream;
use tokio_util::codec::Decoder as _;

use super::deflate::{self, Config, Deflate, Outgoing};
use super::{Attempt, TryWriteFrame};

/// The `101 Switching Protocols` answer to a valid WebSocket handshake (GET, `Upgrade:
/// websocket`, version 13, a key); a malformed one is a 400. With `compression` (`None`:
/// switched off), a permessage-deflate offer the server supports is accepted: the answer
/// carries the extension and the connection's [`Socket`] the negotiated parameters.
pub fn handshake(
    req: &HttpRequest,
    compression: Option<Config>,
) -> actix_web::Result<HttpResponse> {
    let mut builder = actix_http::ws::handshake(req.head())
        .map_err(|err| actix_web::error::ErrorBadRequest(err.to_string()))?;
    let accepted = compression.and_then(|config| deflate::negotiate(req, config));
    if let Some(accepted) = &accepted {
        builder.insert_header((SEC_WEBSOCKET_EXTENSIONS, accepted.header.as_str()));
    }
    let mut response = HttpResponse::from(builder.finish().map_into_boxed_body());
    if let Some(accepted) = accepted {
        response.extensions_mut().insert(accepted.deflate);
    }
    Ok(response)
}

/// Attaches `run` to a handshake response: the server runs it on the connection's socket
/// after writing the response. Dropped unrun when the response cannot be written.
pub fn upgrade<F, Fut>(response: &mut HttpResponse, run: F)
where
    F: FnOnce(Socket) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let deflate = response.extensions_mut().remove::<Deflate>();
    OnUpgrade::new(move |stream, buffered| run(Socket::new(stream, buffered, deflate)))
        .attach(response);
}

/// Bytes asked of the kernel per read; a frame bigger than that grows the buffer.
const READ_CHUNK: usize = 4096;

/// Most slices handed to one `writev` (the kernel's `IOV_MAX` is 1024).
const MAX_SLICES: usize = 512;

const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// The first header byte's RSV1 bit: a compressed message (RFC 7692 6).
const RSV1: u8 = 0x40;

/// RSV1, RSV2 and RSV3.
const RSV_BITS: u8 = 0x70;

/// An upgraded connection: the TCP stream and whatever the client sent after the handshake.
///
/// The stream is shared by the connection's reader, its writer and its one
/// [`DirectWriter`], which may write a frame while the writer is idle (see
/// [`crate::transport`]).
#[derive(Debug)]
pub struct Socket {
    stream: Arc<TcpStream>,
    buffered: BytesMut,
    direct_taken: bool,
    deflate: Option<Deflate>,
}

impl Socket {
    pub(crate) fn new(stream: TcpStream, buffered: BytesMut, deflate: Option<Deflate>) -> Self {
        // Frames are small and latency matters more than packet count.
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(error = %err, "TCP_NODELAY not set");
        }
        Self {
            stream: Arc::new(stream),
            buffered,
            direct_taken: false,
            deflate,
        }
    }

    /// What the handshake negotiated for permessage-deflate (`None`: no compression).
    pub fn deflate(&self) -> Option<Deflate> {
        self.deflate
    }

    /// The connection's one [`DirectWriter`]: `Some` the first time only, so a connection
    /// has at most one writer besides its [`FrameWriter`].
    pub fn direct_writer(&mut self) -> Option<DirectWriter> {
        if self.direct_taken {
            return None;
        }
        self.direct_taken = true;
        Some(DirectWriter {
            stream: Arc::clone(&self.stream),
            deflate: self.deflate,
        })
    }

    /// The reading and the writing half; messages over `max_message` bytes are refused.
    pub fn split(&mut self, max_message: usize) -> (FrameReader<'_>, FrameWriter<'_>) {
        let buf = std::mem::take(&mut self.buffered);
        (
            FrameReader {
                half: &self.stream,
                buf,
                codec: Codec::new().max_size(max_message),
                partial: None,
                max_message,
                deflate: self.deflate,
                compressed: false,
            },
            FrameWriter {
                half: &self.stream,
                torn: false,
                deflate: self.deflate,
            },
        )
    }
}

/// One message from the client.
#[derive(Debug)]
pub enum Message {
    /// A text message (continuations joined), valid UTF-8.
    Text(ByteString),
    /// A binary message (continuations joined).
    Binary(Bytes),
    /// A ping, with its payload for the pong.
    Ping(Bytes),
    /// A pong.
    Pong,
    /// The client closes, with its close code when it gave one (already checked to be a
    /// code a peer may send, RFC 6455 7.4).
    Close(Option<u16>),
}

/// Why reading stopped.
#[derive(Debug, thiserror::Error)]
pub enum WsError {
    /// A frame or a joined message over the size limit.
    #[error("message too big")]
    TooBig,
    /// Not valid WebSocket: bad framing, unmasked frames, a close code no peer may send.
    #[error("websocket protocol error: {0}")]
    Protocol(String),
    /// A text message that is not valid UTF-8.
    #[error("text is not valid UTF-8")]
    Utf8,
    /// The socket failed.
    #[error("socket error: {0}")]
    Io(#[from] io::Error),
}

impl From<ProtocolError> for WsError {
    fn from(err: ProtocolError) -> Self {
        match err {
            ProtocolError::Overflow => WsError::TooBig,
            ProtocolError::Io(io) => WsError::Io(io),
            other => WsError::Protocol(other.to_string()),
        }
    }
}

impl WsError {
    /// The close code: 1009 for a message over the limit, 3501 for anything else.
    pub fn close_code(&self) -> DisconnectCode {
        match self {
            WsError::TooBig => DisconnectCode::MessageTooBig,
            WsError::Protocol(_) | WsError::Utf8 | WsError::Io(_) => DisconnectCode::BadRequest,
        }
    }

    /// The RFC 6455 close code (7.4.1), for endpoints that speak plain WebSocket
    /// (`/ws/echo`): 1009 too big, 1007 invalid UTF-8, 1002 any other protocol error.
    pub fn rfc_close_code(&self) -> u16 {
        match self {
            WsError::TooBig => 1009,
            WsError::Utf8 => 1007,
            WsError::Protocol(_) => 1002,
            WsError::Io(_) => 1011,
        }
    }
}

/// Whether a peer may send `code` in a close frame (RFC 6455 7.4: the defined codes that
/// are not reserved for local use, and the registered/private 3000-4999 range).
fn valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1011 | 3000..=4999)
}

/// A message arriving in continuation frames.
#[derive(Debug)]
struct Partial {
    text: bool,
    /// Its first frame had RSV1: inflated once joined.
    compressed: bool,
    data: BytesMut,
}

/// The reading half: frames in, messages out.
#[derive(Debug)]
pub struct FrameReader<'a> {
    half: &'a TcpStream,
    /// Bytes read and not yet decoded; no allocation while nothing is pending.
    buf: BytesMut,
    codec: Codec,
    partial: Option<Partial>,
    max_message: usize,
    /// Negotiated permessage-deflate: RSV1 marks a compressed message.
    deflate: Option<Deflate>,
    /// The frame at the front of `buf` had RSV1, already taken off for the codec.
    compressed: bool,
}

impl FrameReader<'_> {
    /// The next message; `None` once the client closed the stream. Cancel-safe: what was
    /// read stays buffered for the next call.
    pub async fn recv(&mut self) -> Option<Result<Message, WsError>> {
        loop {
            match self.decode() {
                Ok(Some(message)) => return Some(Ok(message)),
                Ok(None) => {}
                Err(err) => return Some(Err(err)),
            }
            if self.buf.is_empty() && self.buf.capacity() != 0 {
                // Idle connections keep no read buffer.
                self.buf = BytesMut::new();
            }
            if let Err(err) = self.half.readable().await {
                return Some(Err(WsError::Io(err)));
            }
            self.buf.reserve(READ_CHUNK);
            match self.half.try_read_buf(&mut self.buf) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(err) => return Some(Err(WsError::Io(err))),
            }
        }
    }

    /// Checks the reserved bits of the frame at the front of the buffer: with
    /// permessage-deflate, takes RSV1 off (the codec refuses reserved bits) and remembers it;
    /// RSV1 is allowed on the first frame of a data message only (RFC 7692 6.1), the other
    /// bits never (a protocol error, where the codec would only report an I/O error).
    fn take_rsv1(&mut self) -> Result<(), WsError> {
        if self.compressed {
            return Ok(());
        }
        let Some(first) = self.buf.first_mut() else {
            return Ok(());
        };
        if *first & RSV_BITS == 0 {
            return Ok(());
        }
        if *first & RSV_BITS != RSV1 || self.deflate.is_none() {
            return Err(WsError::Protocol("reserved bits set".into()));
        }
        let opcode = *first & 0x0F;
        if opcode != OP_TEXT && opcode != OP_BINARY {
            return Err(WsError::Protocol(
                "RSV1 on a control or continuation frame".into(),
            ));
        }
        *first &= !RSV1;
        self.compressed = true;
        Ok(())
    }

    /// The message of a compressed payload, inflated up to the size limit.
    fn inflate(&self, payload: &[u8]) -> Result<Bytes, WsError> {
        ::metrics::counter!(crate::metrics::INFLATED).increment(1);
        deflate::inflate(payload, self.max_message)
    }

    fn decode(&mut self) -> Result<Option<Message>, WsError> {
        loop {
            self.take_rsv1()?;
            let Some(frame) = self.codec.decode(&mut self.buf)? else {
                return Ok(None);
            };
            let compressed = std::mem::take(&mut self.compressed);
            let message = match frame {
                Frame::Text(bytes) if compressed => Message::Text(utf8(self.inflate(&bytes)?)?),
                Frame::Binary(bytes) if compressed => Message::Binary(self.inflate(&bytes)?),
                Frame::Text(bytes) => Message::Text(utf8(bytes)?),
                Frame::Binary(bytes) => Message::Binary(bytes),
                Frame::Ping(bytes) => Message::Ping(bytes),
                Frame::Pong(_) => Message::Pong,
                Frame::Close(reason) => {
                    let code = reason.map(|reason| u16::from(reason.code));
                    if code.is_some_and(|code| !valid_close_code(code)) {
                        return Err(WsError::Protocol("invalid close code".into()));
                    }
                    Message::Close(code)
                }
                Frame::Continuation(item) => match self.join(item, compressed)? {
                    Some(message) => message,
                    None => continue,
                },
            };
            return Ok(Some(message));
        }
    }

    /// A message in continuation frames begins (the codec refuses a second one before the
    /// first ended).
    fn start(&mut self, text: bool, compressed: bool, chunk: Bytes) -> Bytes {
        self.partial = Some(Partial {
            text,
            compressed,
            data: BytesMut::new(),
        });
        chunk
    }

    /// Adds a continuation frame; the whole message once its last frame arrived.
    fn join(&mut self, item: Item, compressed: bool) -> Result<Option<Message>, WsError> {
        let (chunk, last) = match item {
            Item::FirstText(chunk) => (self.start(true, compressed, chunk), false),
            Item::FirstBinary(chunk) => (self.start(false, compressed, chunk), false),
            Item::Continue(chunk) => (chunk, false),
            Item::Last(chunk) => (chunk, true),
        };
        let partial = self
            .partial
            .as_mut()
            .ok_or_else(|| WsError::Protocol("continuation without a first frame".into()))?;
        if partial.data.len() + chunk.len() > self.max_message {
            return Err(WsError::TooBig);
        }
        partial.data.extend_from_slice(&chunk);
        if !last {
            return Ok(None);
        }
        let Some(partial) = self.partial.take() else {
            return Ok(None);
        };
        let data = if partial.compressed {
            self.inflate(&partial.data)?
        } else {
            partial.data.freeze()
        };
        if partial.text {
            Ok(Some(Message::Text(utf8(data)?)))
        } else {
            Ok(Some(Message::Binary(data)))
        }
    }
}

fn utf8(bytes: Bytes) -> Result<ByteString, WsError> {
    ByteString::try_from(bytes).map_err(|_| WsError::Utf8)
}

/// The writing half: server frames (never masked, never fragmented).
#[derive(Debug)]
pub struct FrameWriter<'a> {
    half: &'a TcpStream,
    /// A frame was cut off halfway (the write was abandoned): the stream is no longer valid
    /// WebSocket, so nothing more is written, not even a close frame.
    torn: bool,
    /// Negotiated permessage-deflate.
    deflate: Option<Deflate>,
}

impl FrameWriter<'_> {
    /// Writes `messages` as one text frame, joined by `\n` (compressed, as one message, when
    /// the connection negotiated it and the frame is long enough).
    pub async fn text(&mut self, messages: &[ByteString]) -> io::Result<()> {
        let len = joined_len(messages);
        if let Some(deflate) = self.deflate
            && len >= deflate.min_size()
        {
            let mut joined = Vec::with_capacity(len);
            for (i, message) in messages.iter().enumerate() {
                if i > 0 {
                    joined.push(b'\n');
                }
                joined.extend_from_slice(message.as_bytes());
            }
            if let Some(payload) = deflate::compress_for(&joined, &deflate) {
                return self.compressed(OP_TEXT, len, &payload).await;
            }
        }
        let mut header = [0u8; 10];
        let head = encode_header(&mut header, OP_TEXT, len);
        self.write_frame(&header[..head], messages).await
    }

    /// Writes `messages` (at least one), for the outbox's writer: one text frame joined by
    /// `\n` without compression; with it, each message that deflate makes smaller goes in
    /// a frame of its own (a shared message's compressed form is computed once, for every
    /// connection), the others joined between them. Returns the number of frames written.
    pub async fn batch(&mut self, messages: &[Outgoing]) -> io::Result<usize> {
        let Some(deflate) = self.deflate else {
            let mut header = [0u8; 10];
            let head = encode_header(&mut header, OP_TEXT, joined_len(messages));
            self.write_frame(&header[..head], messages).await?;
            return Ok(1);
        };
        let mut frames = 0;
        let mut plain = 0;
        for (i, message) in messages.iter().enumerate() {
            let Some(payload) = message.deflated(&deflate) else {
                continue;
            };
            if plain < i {
                self.plain(&messages[plain..i]).await?;
                frames += 1;
            }
            plain = i + 1;
            self.compressed(OP_TEXT, message.len(), &payload).await?;
            frames += 1;
        }
        if plain < messages.len() {
            self.plain(&messages[plain..]).await?;
            frames += 1;
        }
        Ok(frames)
    }

    /// One uncompressed text frame of `messages` joined by `\n`.
    async fn plain(&mut self, messages: &[Outgoing]) -> io::Result<()> {
        let mut header = [0u8; 10];
        let head = encode_header(&mut header, OP_TEXT, joined_len(messages));
        self.write_frame(&header[..head], messages).await
    }

    /// One compressed frame (RSV1) of `payload`, `before` bytes uncompressed.
    async fn compressed(&mut self, opcode: u8, before: usize, payload: &Bytes) -> io::Result<()> {
        let mut header = [0u8; 10];
        let head = encode_header(&mut header, opcode | RSV1, payload.len());
        self.write_frame(&header[..head], std::slice::from_ref(payload))
            .await?;
        deflate::count_frame(before, payload.len());
        Ok(())
    }

    /// Writes `payload` as one binary frame (compressed when negotiated and worth it).
    pub async fn binary(&mut self, payload: &[u8]) -> io::Result<()> {
        if let Some(deflate) = self.deflate
            && let Some(compressed) = deflate::compress_for(payload, &deflate)
        {
            return self.compressed(OP_BINARY, payload.len(), &compressed).await;
        }
        let mut header = [0u8; 10];
        let head = encode_header(&mut header, OP_BINARY, payload.len());
        let mut frame = Vec::with_capacity(head + payload.len());
        frame.extend_from_slice(&header[..head]);
        frame.extend_from_slice(payload);
        self.write_frame::<Bytes>(&frame, &[]).await
    }

    /// Sends a close frame with a plain RFC 6455 `code` and no reason, then ends the
    /// sending direction of the stream (`/ws/echo`, which speaks no Herald close codes).
    pub async fn close_code(&mut self, code: u16) -> io::Result<()> {
        if !self.torn {
            self.control(OP_CLOSE, &code.to_be_bytes()).await?;
        }
        socket2::SockRef::from(self.half).shutdown(std::net::Shutdown::Write)
    }

    /// Writes bytes that are already framed (the rest of a frame the fan-out began).
    pub async fn raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.write_frame::<Bytes>(bytes, &[]).await
    }

    /// Answers a ping.
    pub async fn pong(&mut self, payload: &[u8]) -> io::Result<()> {
        self.control(OP_PONG, payload).await
    }

    /// Pings the client (empty payload).
    pub async fn ping(&mut self) -> io::Result<()> {
        self.control(OP_PING, b"").await
    }

    /// Sends the close frame of `disconnect` (unless a frame was cut off), then ends the
    /// sending direction of the stream.
    pub async fn close(&mut self, disconnect: &Disconnect) -> io::Result<()> {
        if !self.torn {
            // The reason is already cut to fit a control frame (123 bytes after the code).
            let reason = disconnect.close_reason();
            let mut payload = Vec::with_capacity(2 + reason.len());
            payload.extend_from_slice(&disconnect.close_code().to_be_bytes());
            payload.extend_from_slice(reason.as_bytes());
            self.control(OP_CLOSE, &payload).await?;
        }
        socket2::SockRef::from(self.half).shutdown(std::net::Shutdown::Write)
    }

    async fn control(&mut self, opcode: u8, payload: &[u8]) -> io::Result<()> {
        // Control payloads are at most 125 bytes (RFC 6455, 5.5).
        let payload = &payload[..payload.len().min(125)];
        let mut header = [0u8; 10];
        let head = encode_header(&mut header, opcode, payload.len());
        let mut frame = Vec::with_capacity(head + payload.len());
        frame.extend_from_slice(&header[..head]);
        frame.extend_from_slice(payload);
        self.write_frame::<Bytes>(&frame, &[]).await
    }

    /// Writes `head` then `messages` joined by `\n`, whole. Abandoning the returned future
    /// partway marks the stream torn.
    async fn write_frame<M: AsRef<[u8]>>(&mut self, head: &[u8], messages: &[M]) -> io::Result<()> {
        if self.torn {
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "stream torn"));
        }
        let total = head.len() + joined_len(messages);
        let mut written = 0;
        // A frame of one message (the common case at a steady rate) needs no allocation.
        let mut few = [IoSlice::new(&[]); 2];
        let mut many = Vec::new();
        let slices: &mut [IoSlice<'_>] = if messages.len() > 1 {
            many.resize((2 * messages.len()).min(MAX_SLICES), IoSlice::new(&[]));
            &mut many
        } else {
            &mut few
        };
        self.torn = true;
        while written < total {
            let filled = fill_slices(slices, head, messages, written);
            match self.half.try_write_vectored(&slices[..filled]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => written += n,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    self.half.writable().await?;
                }
                Err(err) => return Err(err),
            }
        }
        self.torn = false;
        Ok(())
    }
}

/// The connection's one direct writer (see [`Socket::direct_writer`]): writes a frame while
/// the connection's [`FrameWriter`] is idle, for whoever guarantees that.
#[derive(Debug)]
pub struct DirectWriter {
    stream: Arc<TcpStream>,
    deflate: Option<Deflate>,
}

impl DirectWriter {
    /// Waits until the socket is writable (tests start from a known writable socket).
    #[cfg(test)]
    pub(crate) async fn writable(&self) -> io::Result<()> {
        self.stream.writable().await
    }

    /// A direct writer on a connected stream (tests build outboxes on socket pairs).
    #[cfg(test)]
    pub(crate) fn for_test(stream: TcpStream) -> Self {
        Self {
            stream: Arc::new(stream),
            deflate: None,
        }
    }
}

impl TryWriteFrame for DirectWriter {
    /// One `writev` of the frame's header and the shared message bytes (no copy unless the
    /// socket takes only part of it); with permessage-deflate, of the shared compressed form
    /// when deflate makes the message smaller.
    fn try_write(&self, message: &Outgoing) -> Attempt {
        let stream = &*self.stream;
        let compressed = self.deflate.and_then(|deflate| message.deflated(&deflate));
        let mut header = [0u8; 10];
        let (head, payload) = match &compressed {
            Some(payload) => (
                encode_header(&mut header, OP_TEXT | RSV1, payload.len()),
                &payload[..],
            ),
            None => (
                encode_header(&mut header, OP_TEXT, message.len()),
                message.as_ref(),
            ),
        };
        let pieces = [&header[..head], payload];
        let attempt = match stream.try_write_vectored(&pieces.map(IoSlice::new)) {
            Ok(written) if written == head + payload.len() => Attempt::Whole,
            Ok(written) if written > 0 => {
                let mut rest = BytesMut::with_capacity(head + message.len() - written);
                let mut skip = written;
                for piece in pieces {
                    let from = skip.min(piece.len());
                    rest.extend_from_slice(&piece[from..]);
                    skip -= from;
                }
                Attempt::Partial(rest.freeze())
            }
            Ok(_) | Err(_) => Attempt::Nothing,
        };
        if let Some(compressed) = &compressed
            && !matches!(attempt, Attempt::Nothing)
        {
            deflate::count_frame(message.len(), compressed.len());
        }
        attempt
    }
}

/// The length of `messages` joined by `\n`.
fn joined_len<M: AsRef<[u8]>>(messages: &[M]) -> usize {
    messages
        .iter()
        .map(|message| message.as_ref().len())
        .sum::<usize>()
        + messages.len().saturating_sub(1)
}

/// Fills `slices` with `head` + `messages` joined by `\n`, skipping the first `skip` bytes,
/// as far as they go; returns how many it filled.
fn fill_slices<'b, M: AsRef<[u8]>>(
    slices: &mut [IoSlice<'b>],
    head: &'b [u8],
    messages: &'b [M],
    mut skip: usize,
) -> usize {
    let mut filled = 0;
    let mut add = |piece: &'b [u8], skip: &mut usize| -> bool {
        if *skip >= piece.len() {
            *skip -= piece.len();
            return true;
        }
        slices[filled] = IoSlice::new(&piece[*skip..]);
        filled += 1;
        *skip = 0;
        filled < slices.len()
    };
    let mut more = add(head, &mut skip);
    for (i, message) in messages.iter().enumerate() {
        if !more {
            break;
        }
        more = (i == 0 || add(b"\n", &mut skip)) && add(message.as_ref(), &mut skip);
    }
    filled
}

/// Writes a final, unmasked frame header for `opcode` and a payload of `len` bytes; returns
/// the header's length.
fn encode_header(buf: &mut [u8; 10], opcode: u8, len: usize) -> usize {
    buf[0] = 0x80 | opcode;
    if let Ok(short) = u8::try_from(len)
        && short < 126
    {
        buf[1] = short;
        2
    } else if let Ok(medium) = u16::try_from(len) {
        buf[1] = 126;
        buf[2..4].copy_from_slice(&medium.to_be_bytes());
        4
    } else {
        buf[1] = 127;
        buf[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn joined(slices: &[IoSlice<'_>]) -> Vec<u8> {
        slices.iter().flat_map(|s| s.iter().copied()).collect()
    }

    #[test]
    fn headers_use_the_shortest_length_encoding() {
        let mut buf = [0u8; 10];
        assert_eq!(encode_header(&mut buf, OP_TEXT, 5), 2);
        assert_eq!(buf[..2], [0x81, 5]);
        assert_eq!(encode_header(&mut buf, OP_TEXT, 126), 4);
        assert_eq!(buf[..4], [0x81, 126, 0, 126]);
        assert_eq!(encode_header(&mut buf, OP_TEXT, 70_000), 10);
        assert_eq!(buf[1], 127);
        assert_eq!(u64::from_be_bytes(buf[2..10].try_into().unwrap()), 70_000);
    }

    #[test]
    fn slices_join_messages_with_newlines_and_skip_what_was_written() {
        let messages: Vec<ByteString> = vec!["ab".into(), "c".into(), "def".into()];
        let mut slices = [IoSlice::new(&[]); 8];
        for skip in 0..9 {
            let filled = fill_slices(&mut slices, b"H", &messages, skip);
            assert_eq!(
                joined(&slices[..filled]),
                &b"Hab\nc\ndef"[skip..],
                "skip {skip}"
            );
        }
    }

    #[test]
    fn a_write_takes_at_most_the_slices_it_has_and_the_rest_follows() {
        let messages: Vec<ByteString> = vec!["ab".into(), "c".into()];
        let mut slices = [IoSlice::new(&[]); 2];
        let filled = fill_slices(&mut slices, b"H", &messages, 0);
        assert_eq!(joined(&slices[..filled]), b"Hab");
        let filled = fill_slices(&mut slices, b"H", &messages, 3);
        assert_eq!(joined(&slices[..filled]), b"\nc");
    }
}
