//! The transport layer: RFC 6455 framing on the bare TCP stream ([`ws`]). The HTTP server
//! that takes upgrades off the HTTP/1 dispatcher is every process's
//! ([`herald_service::server`]); a handshake answer carries the connection's task to it.
//!
//! When a handshake negotiates permessage-deflate ([`deflate`]), the halves compress and
//! inflate messages; an [`Outgoing`] carries a message's bytes and, computed once for every
//! compressing connection, its compressed form.
//!
//! Nothing here knows about channels, clients or the protocol's messages: the gateway's
//! handlers answer the handshake and hand over what to run on the connection, and get back
//! the connection's halves. Each half has one owner, and the types say so:
//!
//! - [`ws::FrameReader`]: the connection's task reads client frames with it;
//! - [`ws::FrameWriter`]: the connection's writer task writes queued frames with it;
//! - [`ws::DirectWriter`] (handed out once per connection): the outbox writes a frame
//!   straight to an idle connection with it, through [`TryWriteFrame`], under the outbox's
//!   lock, which is what keeps its frames from mixing with the writer task's.
//!
//! Nothing else can write to the socket: the stream itself is not handed out.

pub mod deflate;
pub mod ws;

use bytes::Bytes;

pub use deflate::Outgoing;

/// What a [`TryWriteFrame::try_write`] achieved.
#[derive(Debug)]
pub enum Attempt {
    /// The whole frame went out.
    Whole,
    /// The socket took part of it: these bytes must follow before anything else.
    Partial(Bytes),
    /// Nothing went (a full socket, or an error the next write meets again).
    Nothing,
}

/// Writes one text frame now, without waiting: one non-blocking system call, whatever the
/// socket takes. The caller must make sure no other frame is being written on the same
/// connection meanwhile (the outbox calls it only while its writer task is idle, under its
/// lock).
pub trait TryWriteFrame {
    /// Writes `message` as one text frame (compressed if the connection negotiated it and
    /// deflate makes it smaller), as far as the socket takes it at once.
    fn try_write(&self, message: &Outgoing) -> Attempt;
}
