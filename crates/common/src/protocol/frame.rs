//! Frames: one WebSocket text frame carries one or more messages joined by `\n`, in both
//! directions.
//!
//! Inbound, [`split_frame`] yields the messages of a frame (blank lines, such as a trailing
//! newline, are skipped) and [`decode_commands`] decodes them. Outbound, the gateway keeps
//! each message encoded once (a publication push is shared by every subscriber) and joins
//! whatever is queued for a connection into one frame with a [`FrameBuilder`], which is the
//! main lever on per-delivery cost.

#![warn(missing_docs)]

use super::command::Command;
use super::message::ServerMessage;

/// The messages of an inbound frame, in order, without blank lines.
pub fn split_frame(frame: &str) -> impl Iterator<Item = &str> {
    frame
        .split('\n')
        .filter(|line| !line.bytes().all(|b| b.is_ascii_whitespace()))
}

/// The commands of a client frame, in order. A message that is not valid JSON for a
/// command is an error (the gateway disconnects with 3501 bad request).
pub fn decode_commands(frame: &str) -> impl Iterator<Item = Result<Command, serde_json::Error>> {
    split_frame(frame).map(Command::decode)
}

/// The messages of a server frame, in order (for Herald's own clients and tests).
pub fn decode_server_messages(
    frame: &str,
) -> impl Iterator<Item = Result<ServerMessage, serde_json::Error>> {
    split_frame(frame).map(ServerMessage::decode)
}

/// Joins already encoded messages into one frame.
pub fn join_messages<I>(messages: I) -> String
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    let mut frame = FrameBuilder::new();
    for message in messages {
        frame.push(message.as_ref());
    }
    frame.into_string()
}

/// An outbound frame under construction: encoded messages joined by `\n`.
///
/// [`FrameBuilder::take`] hands the buffer over without copying (the builder starts again
/// with no allocation, so idle connections hold no buffer); [`FrameBuilder::take_reusing`]
/// copies the frame out and keeps the capacity, for a writer that sends frames back to
/// back.
#[derive(Debug, Clone, Default)]
pub struct FrameBuilder {
    buf: String,
    messages: usize,
}

impl FrameBuilder {
    /// An empty frame.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty frame with room for `bytes` bytes.
    pub fn with_capacity(bytes: usize) -> Self {
        Self {
            buf: String::with_capacity(bytes),
            messages: 0,
        }
    }

    /// Appends one encoded message (a JSON object without newlines).
    pub fn push(&mut self, message: &str) {
        if self.messages > 0 {
            self.buf.push('\n');
        }
        self.buf.push_str(message);
        self.messages += 1;
    }

    /// The frame's length in bytes if `message` were appended: lets a writer stop
    /// before a frame grows past its size limit.
    pub fn len_with(&self, message: &str) -> usize {
        let separator = usize::from(self.messages > 0);
        self.buf.len() + separator + message.len()
    }

    /// Length of the frame so far, in bytes.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether no message was appended.
    pub fn is_empty(&self) -> bool {
        self.messages == 0
    }

    /// How many messages the frame holds.
    pub fn message_count(&self) -> usize {
        self.messages
    }

    /// The frame so far.
    pub fn as_str(&self) -> &str {
        &self.buf
    }

    /// Empties the frame, keeping its capacity.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.messages = 0;
    }

    /// Takes the frame out without copying, leaving the builder empty and unallocated.
    pub fn take(&mut self) -> String {
        self.messages = 0;
        std::mem::take(&mut self.buf)
    }

    /// Takes the frame out as a copy sized to fit, leaving the builder empty with its
    /// capacity kept for the next frame.
    pub fn take_reusing(&mut self) -> String {
        let frame = self.buf.as_str().to_owned();
        self.clear();
        frame
    }

    /// The finished frame.
    pub fn into_string(self) -> String {
        self.buf
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn split_skips_blank_lines_and_keeps_order() {
        let frame = "{\"id\":1}\n\n{\"id\":2}\r\n  \n{}\n";
        let lines: Vec<_> = split_frame(frame).collect();
        assert_eq!(lines, ["{\"id\":1}", "{\"id\":2}\r", "{}"]);
        assert_eq!(split_frame("").count(), 0);
        assert_eq!(split_frame("\n").count(), 0);
    }

    #[test]
    fn builder_joins_with_single_newlines() {
        let mut frame = FrameBuilder::with_capacity(64);
        assert!(frame.is_empty());
        assert_eq!(frame.len_with("{}"), 2);
        frame.push("{}");
        assert_eq!(frame.len_with("{\"a\":1}"), 2 + 1 + 7);
        frame.push("{\"a\":1}");
        assert_eq!(frame.as_str(), "{}\n{\"a\":1}");
        assert_eq!(frame.len(), 10);
        assert_eq!(frame.message_count(), 2);
        let capacity = frame.buf.capacity();
        assert_eq!(frame.take_reusing(), "{}\n{\"a\":1}");
        assert!(frame.is_empty());
        assert_eq!(frame.buf.capacity(), capacity);
        frame.push("{}");
        frame.push("{}");
        assert_eq!(frame.take(), "{}\n{}");
        assert!(frame.is_empty());
        assert_eq!(frame.buf.capacity(), 0);
        frame.push("{}");
        assert_eq!(frame.into_string(), "{}");
        assert_eq!(join_messages(["a", "b", "c"]), "a\nb\nc");
        assert_eq!(join_messages(Vec::<String>::new()), "");
    }
}
