//! WebSocket clients and the small subset of the client protocol the scenarios speak:
//! `connect` (with a token), `subscribe`, `publish`, and `{}` pongs to the server's `{}`
//! pings. Frames may carry several `\n`-separated messages in both directions.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, http::HeaderValue, http::Uri};

/// One client connection.
pub type Ws = WebSocketStream<TcpStream>;

/// The server's ping and the client's pong.
pub const PING: &str = "{}";

/// Longest wait for a handshake (TCP, WebSocket upgrade, connect and subscribe replies).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Where to connect, resolved once.
#[derive(Debug, Clone)]
pub struct Target {
    url: String,
    addr: SocketAddr,
    /// `Sec-WebSocket-Extensions` offered in the handshake, if any.
    extensions: Option<HeaderValue>,
}

impl Target {
    /// Resolves `url` (`ws://host:port/path`); refuses anything but a loopback address.
    pub async fn resolve(url: &str) -> anyhow::Result<Self> {
        let uri: Uri = url.parse().with_context(|| format!("bad URL {url}"))?;
        if uri.scheme_str() != Some("ws") {
            bail!("only ws:// URLs are supported: {url}");
        }
        let host = uri.host().context("URL without host")?;
        let port = uri.port_u16().unwrap_or(80);
        let addr = tokio::net::lookup_host((host, port))
            .await?
            .next()
            .with_context(|| format!("{host} does not resolve"))?;
        if !addr.ip().is_loopback() {
            bail!("{addr} is not a loopback address; herald-bench only targets this machine");
        }
        Ok(Self {
            url: url.to_owned(),
            addr,
            extensions: None,
        })
    }

    /// Offers `extensions` (a `Sec-WebSocket-Extensions` value) in every handshake. The
    /// clients do not decompress: the server must not send them compressed frames (for the
    /// idle scenario, a minimum compression size above every reply).
    pub fn offering(mut self, extensions: &str) -> anyhow::Result<Self> {
        self.extensions = Some(HeaderValue::from_str(extensions)?);
        Ok(self)
    }

    /// Opens one WebSocket connection (no protocol messages yet).
    pub async fn open(&self) -> anyhow::Result<Ws> {
        let socket = if self.addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        let stream = socket.connect(self.addr).await?;
        stream.set_nodelay(true)?;
        // Small buffers: idle runs hold tens of thousands of these in one process.
        let config = WebSocketConfig::default()
            .read_buffer_size(16 * 1024)
            .write_buffer_size(0);
        let mut request = self.url.as_str().into_client_request()?;
        if let Some(extensions) = &self.extensions {
            request
                .headers_mut()
                .insert("sec-websocket-extensions", extensions.clone());
        }
        let (ws, _) =
            tokio_tungstenite::client_async_with_config(request, stream, Some(config)).await?;
        Ok(ws)
    }

    /// Opens, connects with `token` and (with a channel) subscribes one client.
    pub async fn client(&self, token: &str, channel: Option<&str>) -> anyhow::Result<Ws> {
        let handshake = async {
            let mut ws = self.open().await?;
            handshake(&mut ws, token, channel).await?;
            anyhow::Ok(ws)
        };
        tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake)
            .await
            .context("handshake timed out")?
    }

    /// Opens `count` clients, at most `concurrency` handshakes at a time, in order.
    pub async fn clients(
        &self,
        count: usize,
        concurrency: usize,
        token: &str,
        channel: Option<&str>,
    ) -> anyhow::Result<Vec<Ws>> {
        let permits = Arc::new(Semaphore::new(concurrency.max(1)));
        let mut set = JoinSet::new();
        for index in 0..count {
            let permits = Arc::clone(&permits);
            let target = self.clone();
            let token = token.to_owned();
            let channel = channel.map(str::to_owned);
            set.spawn(async move {
                let _permit = permits.acquire_owned().await?;
                let ws = target.client(&token, channel.as_deref()).await;
                anyhow::Ok((index, ws.with_context(|| format!("client {index}"))?))
            });
        }
        let mut clients: Vec<Option<Ws>> = (0..count).map(|_| None).collect();
        let mut opened = 0usize;
        while let Some(joined) = set.join_next().await {
            let (index, ws) = joined??;
            clients[index] = Some(ws);
            opened += 1;
            if opened.is_multiple_of(5000) {
                eprintln!("  {opened}/{count} connected");
            }
        }
        Ok(clients.into_iter().flatten().collect())
    }
}

/// Sends `connect` (and `subscribe`) in one frame, then reads until their replies arrived.
pub async fn handshake(ws: &mut Ws, token: &str, channel: Option<&str>) -> anyhow::Result<()> {
    let mut frame =
        json!({"id": 1, "connect": {"token": token, "name": "herald-bench"}}).to_string();
    if let Some(channel) = channel {
        frame.push('\n');
        frame.push_str(&json!({"id": 2, "subscribe": {"channel": channel}}).to_string());
    }
    ws.send(Message::text(frame)).await?;
    let last = if channel.is_some() { 2 } else { 1 };
    loop {
        let text = match ws.next().await {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(close))) => bail!("closed during the handshake: {close:?}"),
            Some(Ok(_)) => continue,
            Some(Err(err)) => return Err(err.into()),
            None => bail!("connection ended during the handshake"),
        };
        for line in text.as_str().split('\n') {
            if line == PING {
                ws.send(Message::text(PING)).await?;
                continue;
            }
            let reply: Value = serde_json::from_str(line).context("reply is not JSON")?;
            if let Some(error) = reply.get("error") {
                bail!("handshake refused: {error}");
            }
            if reply.get("id").and_then(Value::as_u64) == Some(last) {
                return Ok(());
            }
        }
    }
}

/// Publication data of exactly `size` bytes (when `size` is large enough for the fields):
/// `{"b":<publisher>,"s":<sequence>,"t":<send time, ns since the bench started>,"p":"xx…"}`.
pub fn bench_data(publisher: usize, seq: u64, sent_ns: u64, size: usize) -> String {
    let mut data = format!(r#"{{"b":{publisher},"s":{seq},"t":{sent_ns},"p":""#);
    let pad = size.saturating_sub(data.len() + 2);
    data.extend(std::iter::repeat_n('x', pad));
    data.push_str("\"}");
    data
}

/// The numbers of a bench publication found in a push line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BenchMessage {
    /// Publisher index.
    pub publisher: usize,
    /// Sequence number of that publisher.
    pub seq: u64,
    /// Send time, ns since the bench started.
    pub sent_ns: u64,
}

/// Finds the bench data in a push line without parsing the whole JSON (the client must
/// keep up with a million lines per second on a shared machine).
pub fn parse_bench(line: &str) -> Option<BenchMessage> {
    let start = line.find(r#"{"b":"#)?;
    let rest = &line[start + 5..];
    let (publisher, rest) = number(rest)?;
    let rest = rest.strip_prefix(r#","s":"#)?;
    let (seq, rest) = number(rest)?;
    let rest = rest.strip_prefix(r#","t":"#)?;
    let (sent_ns, _) = number(rest)?;
    Some(BenchMessage {
        publisher: usize::try_from(publisher).ok()?,
        seq,
        sent_ns,
    })
}

fn number(text: &str) -> Option<(u64, &str)> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let value = text.get(..digits)?.parse().ok()?;
    Some((value, &text[digits..]))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn bench_data_has_the_requested_size_and_parses_back() {
        let data = bench_data(3, 1234, 987_654_321, 64);
        assert_eq!(data.len(), 64);
        let line =
            format!(r#"{{"push":{{"channel":"chat:b","pub":{{"data":{data},"offset":7}}}}}}"#);
        assert_eq!(
            parse_bench(&line),
            Some(BenchMessage {
                publisher: 3,
                seq: 1234,
                sent_ns: 987_654_321
            })
        );
        assert!(serde_json::from_str::<Value>(&line).is_ok());
    }

    #[test]
    fn lines_without_bench_data_are_ignored() {
        assert_eq!(parse_bench(r#"{"id":3,"publish":{}}"#), None);
        assert_eq!(parse_bench("{}"), None);
    }
}
