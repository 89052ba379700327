//! permessage-deflate (RFC 7692): negotiation, compress-once outbound messages, and inflating
//! inbound ones under the message size limit.
//!
//! The server always answers with `server_no_context_takeover` and
//! `client_no_context_takeover`: every message is compressed and inflated on its own, so
//!
//! - a message pushed to many connections (a publication) is compressed **once**, and every
//!   connection that negotiated the extension writes the same bytes ([`Outgoing`] keeps the
//!   compressed form next to the text, filled by the first connection that needs it);
//! - no connection keeps a zlib window: the compressor and the inflater are per thread
//!   ([`thread_local!`]), reset for each message, so an idle connection holds only its
//!   negotiated [`Deflate`] (a few bytes).
//!
//! Compressed frames carry RSV1 on their first frame; the `0x00 0x00 0xff 0xff` tail of the
//! sync flush is removed when compressing and appended again before inflating (7.2.1, 7.2.2).
//! Messages under the minimum size, and those deflate would not make smaller, go
//! uncompressed (RSV1 clear), which the extension allows for any message.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use actix_web::HttpRequest;
use actix_web::http::header::SEC_WEBSOCKET_EXTENSIONS;
use bytes::Bytes;
use bytestring::ByteString;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::ws::WsError;
use crate::metrics;

/// The extension's token.
const EXTENSION: &str = "permessage-deflate";

/// The tail a sync flush ends with (RFC 7692 7.2.1).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The largest LZ77 window (2^15 bytes), used unless the client asks for a smaller one.
const MAX_WINDOW_BITS: u8 = 15;

/// The smallest window the compressor can use (zlib refuses 8 bits for raw deflate).
const MIN_COMPRESSOR_BITS: u8 = 9;

/// What the server offers: compression level and the size under which messages go plain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// zlib level, 0 (stored) to 9.
    pub level: u32,
    /// Messages shorter than this many bytes are not compressed.
    pub min_size: usize,
}

/// What one connection negotiated (a few bytes: the connection holds no zlib state).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deflate {
    level: u32,
    min_size: usize,
    /// `server_max_window_bits` agreed with the client (15 when it set no limit).
    window_bits: u8,
}

impl Deflate {
    /// The negotiated parameters for `config` with the server's window limited to
    /// `window_bits` (8 to 15).
    pub fn new(config: Config, window_bits: u8) -> Self {
        Self {
            level: config.level.min(9),
            min_size: config.min_size,
            window_bits: window_bits.clamp(8, MAX_WINDOW_BITS),
        }
    }

    /// `server_max_window_bits` in force.
    pub fn window_bits(&self) -> u8 {
        self.window_bits
    }

    /// Messages shorter than this go uncompressed.
    pub fn min_size(&self) -> usize {
        self.min_size
    }
}

/// The answer to an offer: the parameters and the `Sec-WebSocket-Extensions` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// What the connection uses.
    pub deflate: Deflate,
    /// The response header's value.
    pub header: String,
}

/// Picks the first `permessage-deflate` offer of the request that the server supports
/// (RFC 7692 5 and 7.1); `None` when there is none, and the handshake answers without the
/// extension.
pub fn negotiate(req: &HttpRequest, config: Config) -> Option<Accepted> {
    req.headers()
        .get_all(SEC_WEBSOCKET_EXTENSIONS)
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .find_map(|offer| accept(offer, config))
}

/// Accepts one offer (`permessage-deflate; param; param=value`) or declines it: another
/// extension, an unknown or repeated parameter, or a value the RFC does not allow.
fn accept(offer: &str, config: Config) -> Option<Accepted> {
    let mut parts = offer.split(';').map(str::trim);
    if !parts.next()?.eq_ignore_ascii_case(EXTENSION) {
        return None;
    }
    let mut seen = Vec::new();
    let mut server_bits = None;
    for param in parts {
        let (name, value) = match param.split_once('=') {
            Some((name, value)) => (name.trim(), Some(unquote(value.trim())?)),
            None => (param, None),
        };
        let name = name.to_ascii_lowercase();
        if seen.contains(&name) {
            return None;
        }
        match (name.as_str(), value) {
            ("server_no_context_takeover" | "client_no_context_takeover", None) => {}
            // The client can take a limit on its window; the server inflates with the
            // largest window whatever the client uses, so it sets none.
            ("client_max_window_bits", None) => {}
            ("client_max_window_bits", Some(value)) => {
                window_bits(value)?;
            }
            ("server_max_window_bits", Some(value)) => server_bits = Some(window_bits(value)?),
            _ => return None,
        }
        seen.push(name);
    }
    let deflate = Deflate::new(config, server_bits.unwrap_or(MAX_WINDOW_BITS));
    let mut header = format!("{EXTENSION}; server_no_context_takeover; client_no_context_takeover");
    if let Some(bits) = server_bits {
        header.push_str(&format!("; server_max_window_bits={bits}"));
    }
    Some(Accepted { deflate, header })
}

/// A parameter value, without the quotes of a quoted string.
fn unquote(value: &str) -> Option<&str> {
    match value.strip_prefix('"') {
        Some(rest) => rest.strip_suffix('"'),
        None => Some(value),
    }
}

/// A window size value: 8 to 15, digits only (RFC 7692 7.1.2).
fn window_bits(value: &str) -> Option<u8> {
    if value.is_empty() || value.len() > 2 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok().filter(|bits| (8..=15).contains(bits))
}

/// A text message to write, possibly to many connections: the encoded text, and for a
/// shared one ([`Outgoing::shared`]) its compressed form, computed at most once, by the first
/// connection that negotiated permessage-deflate and writes it.
#[derive(Debug, Clone)]
pub struct Outgoing(Repr);

#[derive(Debug, Clone)]
enum Repr {
    /// A message for one connection: compressed when written, if at all.
    Plain(ByteString),
    /// A message for many.
    Shared(Arc<SharedText>),
}

#[derive(Debug)]
struct SharedText {
    text: ByteString,
    /// The payload of the compressed frame (window 2^15); `None` inside when deflate does not
    /// make it smaller.
    deflated: OnceLock<Option<Bytes>>,
}

impl Outgoing {
    /// A message that goes to many connections (one compression for all of them).
    pub fn shared(text: ByteString) -> Self {
        Self(Repr::Shared(Arc::new(SharedText {
            text,
            deflated: OnceLock::new(),
        })))
    }

    /// The text.
    pub fn text(&self) -> &ByteString {
        match &self.0 {
            Repr::Plain(text) => text,
            Repr::Shared(shared) => &shared.text,
        }
    }

    /// Its length in bytes, uncompressed.
    pub fn len(&self) -> usize {
        self.text().len()
    }

    /// Whether the text is empty.
    pub fn is_empty(&self) -> bool {
        self.text().is_empty()
    }

    /// The compressed payload to write on a connection that negotiated `deflate`; `None`:
    /// write the text uncompressed (too short, or deflate does not make it smaller).
    pub fn deflated(&self, deflate: &Deflate) -> Option<Bytes> {
        let len = self.len();
        if len < deflate.min_size || len == 0 {
            return None;
        }
        // With no context takeover every message is compressed alone, so no match reaches
        // further back than its own length: the shared form (largest window) fits any
        // window at least as long as the message.
        let fits = deflate.window_bits >= MAX_WINDOW_BITS || len <= 1 << deflate.window_bits;
        match &self.0 {
            Repr::Shared(shared) if fits => shared
                .deflated
                .get_or_init(|| compress(shared.text.as_bytes(), deflate.level, MAX_WINDOW_BITS))
                .clone(),
            Repr::Shared(_) | Repr::Plain(_) => compress_for(self.text().as_bytes(), deflate),
        }
    }
}

impl From<ByteString> for Outgoing {
    fn from(text: ByteString) -> Self {
        Self(Repr::Plain(text))
    }
}

impl From<&str> for Outgoing {
    fn from(text: &str) -> Self {
        Self(Repr::Plain(ByteString::from(text)))
    }
}

impl AsRef<[u8]> for Outgoing {
    fn as_ref(&self) -> &[u8] {
        self.text().as_bytes()
    }
}

/// Compresses `data` for one connection: `None` when it stays uncompressed (under the
/// minimum size, not smaller compressed, or longer than an 8-bit window the compressor
/// cannot honour).
pub fn compress_for(data: &[u8], deflate: &Deflate) -> Option<Bytes> {
    if data.len() < deflate.min_size || data.is_empty() {
        return None;
    }
    let bits = deflate.window_bits;
    if bits < MIN_COMPRESSOR_BITS && data.len() > 1 << bits {
        return None;
    }
    compress(data, deflate.level, bits.max(MIN_COMPRESSOR_BITS))
}

/// Compressions since the process started (each one a `deflate` of a whole message): the
/// tests read it to check that a publication is compressed once, whatever its audience.
static COMPRESSIONS: AtomicU64 = AtomicU64::new(0);

/// Messages compressed so far in this process.
pub fn compressions() -> u64 {
    COMPRESSIONS.load(Ordering::Relaxed)
}

thread_local! {
    /// This thread's compressors, one per window size in use (reset for every message).
    static COMPRESSORS: RefCell<Vec<(u32, u8, Compress)>> = const { RefCell::new(Vec::new()) };
    /// This thread's inflater (window 2^15, reset for every message).
    static INFLATER: RefCell<Option<Decompress>> = const { RefCell::new(None) };
}

/// Raw deflate of `data` at `level` with a window of 2^`bits` (9 to 15), sync-flushed, the
/// trailing `00 00 ff ff` removed; `None` when that is not shorter than `data`.
fn compress(data: &[u8], level: u32, bits: u8) -> Option<Bytes> {
    COMPRESSIONS.fetch_add(1, Ordering::Relaxed);
    ::metrics::counter!(metrics::DEFLATE_COMPRESSIONS).increment(1);
    let bits = bits.clamp(MIN_COMPRESSOR_BITS, MAX_WINDOW_BITS);
    COMPRESSORS.with(|cell| {
        let mut compressors = cell.borrow_mut();
        let index = match compressors
            .iter()
            .position(|(l, b, _)| *l == level && *b == bits)
        {
            Some(index) => index,
            None => {
                let compressor =
                    Compress::new_with_window_bits(Compression::new(level), false, bits);
                compressors.push((level, bits, compressor));
                compressors.len() - 1
            }
        };
        let compressor = &mut compressors.get_mut(index)?.2;
        compressor.reset();
        // Room for the whole message in one call (deflate never grows data by more than a
        // few bytes per 16 KiB block, plus the flush). All the input goes in first, then one
        // sync flush, repeated only while the flush still fills the buffer: asking for a sync
        // flush again while input is left is what zlib's contract does not allow.
        let mut out = Vec::with_capacity(data.len() + data.len() / 64 + 64);
        let start = compressor.total_in();
        loop {
            let consumed = usize::try_from(compressor.total_in() - start).ok()?;
            let rest = data.get(consumed..)?;
            let flush = if rest.is_empty() {
                FlushCompress::Sync
            } else {
                FlushCompress::None
            };
            if let Err(err) = compressor.compress_vec(rest, &mut out, flush) {
                tracing::warn!(error = %err, "deflate failed; message sent uncompressed");
                return None;
            }
            if flush == FlushCompress::Sync && out.len() < out.capacity() {
                break;
            }
            if out.len() > data.len() + 64 {
                // Not going to be smaller.
                return None;
            }
            if out.len() == out.capacity() {
                out.reserve(out.capacity().max(64));
            }
        }
        if out.ends_with(&TAIL) {
            out.truncate(out.len() - TAIL.len());
        }
        (out.len() < data.len()).then(|| Bytes::from(out))
    })
}

/// Inflates the payload of one compressed message, refusing more than `limit` bytes of
/// output ([`WsError::TooBig`], close 1009) however small the input: no zip bombs.
pub fn inflate(payload: &[u8], limit: usize) -> Result<Bytes, WsError> {
    INFLATER.with(|cell| {
        let mut slot = cell.borrow_mut();
        let inflater = slot.get_or_insert_with(|| Decompress::new(false));
        inflater.reset(false);
        let first = payload.len().saturating_mul(4).clamp(256, 64 * 1024);
        let cap = limit.saturating_add(1);
        let mut out: Vec<u8> = Vec::with_capacity(first.min(cap));
        for input in [payload, &TAIL[..]] {
            let mut offset = 0;
            loop {
                if out.len() == out.capacity() {
                    if out.len() > limit {
                        return Err(WsError::TooBig);
                    }
                    let grow = out.capacity().max(1024).min(cap - out.len());
                    out.reserve_exact(grow);
                }
                let (in_before, out_before) = (inflater.total_in(), inflater.total_out());
                let rest = input.get(offset..).unwrap_or_default();
                let status = inflater
                    .decompress_vec(rest, &mut out, FlushDecompress::Sync)
                    .map_err(|_| WsError::Protocol("invalid compressed data".into()))?;
                let used = usize::try_from(inflater.total_in() - in_before)
                    .map_err(|_| WsError::TooBig)?;
                offset += used;
                if out.len() > limit {
                    return Err(WsError::TooBig);
                }
                if status == Status::StreamEnd {
                    // A final block: anything after it is not part of the message.
                    return Ok(out.into());
                }
                let stalled = used == 0 && inflater.total_out() == out_before;
                if (offset >= input.len() || stalled) && out.len() < out.capacity() {
                    break;
                }
            }
        }
        Ok(out.into())
    })
}

/// Counts a compressed frame of `before` bytes written as `after` (for the metrics).
pub(crate) fn count_frame(before: usize, after: usize) {
    ::metrics::counter!(metrics::DEFLATE_FRAMES).increment(1);
    ::metrics::counter!(metrics::DEFLATE_BYTES_IN).increment(before as u64);
    ::metrics::counter!(metrics::DEFLATE_BYTES_OUT).increment(after as u64);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use actix_web::test::TestRequest;

    const CONFIG: Config = Config {
        level: 1,
        min_size: 16,
    };

    fn answer(offers: &[&str]) -> Option<String> {
        let mut req = TestRequest::default();
        for offer in offers {
            req = req.append_header((SEC_WEBSOCKET_EXTENSIONS, *offer));
        }
        negotiate(&req.to_http_request(), CONFIG).map(|accepted| accepted.header)
    }

    /// Inflates a message the way a client does: raw deflate plus the removed tail.
    fn client_inflate(compressed: &[u8]) -> Vec<u8> {
        let mut input = compressed.to_vec();
        input.extend_from_slice(&TAIL);
        let mut inflater = Decompress::new(false);
        let mut out = Vec::with_capacity(input.len() * 8 + 1024);
        loop {
            let before = inflater.total_in();
            let at = usize::try_from(before).unwrap();
            inflater
                .decompress_vec(&input[at..], &mut out, flate2::FlushDecompress::Sync)
                .expect("a client inflates what the gateway compressed");
            if usize::try_from(inflater.total_in()).unwrap() == input.len() {
                return out;
            }
            out.reserve(out.capacity());
        }
    }

    #[test]
    fn large_and_poorly_compressible_messages_inflate_back_at_every_level_and_window() {
        // Deterministic text that compresses, but far from perfectly: big outputs, many
        // blocks, every level's own strategy (level 1 is zlib-rs's quick deflate).
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for size in [200, 4_096, 65_536, 70_001, 262_144] {
            // Words from a short list, each followed by a random digit.
            let words = [
                "alpha ", "bravo ", "charlie ", "delta ", "echo ", "foxtrot ",
            ];
            let mut data = Vec::with_capacity(size + 16);
            while data.len() < size {
                let pick = next();
                data.extend_from_slice(words[(pick % 6) as usize].as_bytes());
                data.push(b'0' + ((pick >> 8) % 10) as u8);
            }
            data.truncate(size);
            for level in [1, 6, 9] {
                for bits in [9, 12, 15] {
                    let compressed = compress(&data, level, bits)
                        .unwrap_or_else(|| panic!("{size} bytes at level {level}, 2^{bits}"));
                    assert_eq!(
                        client_inflate(&compressed),
                        data,
                        "{size} bytes at level {level}, window 2^{bits}"
                    );
                }
            }
        }
    }

    #[test]
    fn offers_are_answered_without_context_takeover_either_way() {
        let both = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";
        assert_eq!(
            answer(&["permessage-deflate; client_max_window_bits"]).as_deref(),
            Some(both)
        );
        assert_eq!(answer(&["permessage-deflate"]).as_deref(), Some(both));
        assert_eq!(
            answer(&["permessage-deflate; server_max_window_bits=10"]).as_deref(),
            Some(format!("{both}; server_max_window_bits=10").as_str())
        );
        assert_eq!(
            answer(&[
                "permessage-deflate; server_max_window_bits=\"9\"; client_max_window_bits=12"
            ])
            .as_deref(),
            Some(format!("{both}; server_max_window_bits=9").as_str())
        );
        assert_eq!(answer(&[]), None);
        assert_eq!(answer(&["x-webkit-deflate-frame"]), None);
    }

    #[test]
    fn unsupported_offers_are_declined_and_the_next_one_is_taken() {
        for bad in [
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; client_max_window_bits=0x9",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; mystery",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        ] {
            assert_eq!(answer(&[bad]), None, "{bad}");
        }
        let answered =
            answer(&["permessage-deflate; mystery, permessage-deflate; server_max_window_bits=12"]);
        assert!(answered.unwrap().ends_with("server_max_window_bits=12"));
        let answered = answer(&["foo", "permessage-deflate; server_max_window_bits=8"]);
        assert!(answered.unwrap().ends_with("server_max_window_bits=8"));
    }

    #[test]
    fn a_compressed_message_inflates_back() {
        let deflate = Deflate::new(CONFIG, 15);
        let text = "{\"push\":{\"channel\":\"chat:lobby\"}} ".repeat(40);
        let message = Outgoing::shared(text.clone().into());
        let payload = message.deflated(&deflate).unwrap();
        assert!(payload.len() < text.len() / 4);
        assert!(!payload.ends_with(&TAIL));
        assert_eq!(inflate(&payload, 1 << 20).unwrap(), text.as_bytes());
        let again = message.deflated(&deflate).unwrap();
        assert_eq!(
            again.as_ptr(),
            payload.as_ptr(),
            "the shared form is reused"
        );
    }

    #[test]
    fn short_and_incompressible_messages_stay_plain() {
        let deflate = Deflate::new(CONFIG, 15);
        assert!(Outgoing::from("short").deflated(&deflate).is_none());
        let noise: String = (0..64u32)
            .map(|i| char::from(b'!' + ((i * 7919 + 13) % 90) as u8))
            .collect();
        assert!(Outgoing::from(noise.as_str()).deflated(&deflate).is_none());
    }

    #[test]
    fn a_small_window_gets_its_own_compression_or_none() {
        let text = "hello, small window ".repeat(500);
        let shared = Outgoing::shared(text.clone().into());
        let nine = Deflate::new(CONFIG, 9);
        let payload = shared.deflated(&nine).unwrap();
        assert_eq!(inflate(&payload, 1 << 20).unwrap(), text.as_bytes());
        // An 8-bit window: only messages of at most 256 bytes are compressed.
        let eight = Deflate::new(CONFIG, 8);
        assert!(shared.deflated(&eight).is_none());
        let short = Outgoing::shared(text[..200].to_owned().into());
        let payload = short.deflated(&eight).unwrap();
        assert_eq!(inflate(&payload, 1 << 20).unwrap(), &text.as_bytes()[..200]);
    }

    #[test]
    fn inflating_past_the_limit_is_refused() {
        let zeros = vec![b'0'; 1 << 20];
        let deflate = Deflate::new(CONFIG, 15);
        let bomb = compress_for(&zeros, &deflate).unwrap();
        assert!(bomb.len() < 16 * 1024, "{} bytes", bomb.len());
        assert!(matches!(inflate(&bomb, 64 * 1024), Err(WsError::TooBig)));
        assert_eq!(inflate(&bomb, 1 << 20).unwrap().len(), 1 << 20);
        assert!(matches!(
            inflate(b"\xff\xff\xff\xff", 1024),
            Err(WsError::Protocol(_))
        ));
    }
}
