//! The HTTP server of every Herald process (each standalone service and the embedded
//! `herald`): actix-web's application over actix-http, with connection upgrades (WebSockets)
//! taken out of the HTTP/1 dispatcher.
//!
//! actix-http hands a request with `Connection: upgrade` to the upgrade service together
//! with the connection. The upgrade service asks the same application for the response, so
//! routing, middleware (metrics, request spans), the handlers' checks and the JSON refusals
//! are those of every other request. A `101` that carries an [`OnUpgrade`] (a response
//! extension, attached by the gateway's WebSocket handlers) is written and the hook runs on
//! the bare socket; anything else is written as it is and the connection closes. A service
//! without upgrade handlers therefore answers an upgrade request like any other request,
//! then closes the connection.
//!
//! The upgraded connection runs in a task of its own on the same worker thread, and the
//! dispatcher's task (about 11 KiB with its buffers and the application's future state)
//! ends. The server's graceful stop does not see those tasks, so a component that upgrades
//! connections closes them itself before the server stops
//! ([`Component::before_stop`](crate::Component::before_stop)).

use std::fmt;
use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::net::TcpListener;
use std::rc::Rc;
use std::time::Duration;

use actix_codec::Framed;
use actix_http::body::{BodySize, BoxBody, MessageBody, to_bytes_limited};
use actix_http::h1::{self, Message};
use actix_http::{ConnectionType, HttpService, KeepAlive, Request, Response, StatusCode};
use actix_server::Server;
use actix_service::{
    IntoServiceFactory, Service, ServiceFactory, ServiceFactoryExt as _, map_config,
};
use actix_web::dev::AppConfig;
use actix_web::web::BytesMut;
use futures_util::SinkExt as _;
use futures_util::future::LocalBoxFuture;
use tokio::net::TcpStream;

/// Largest body of a refused upgrade (an error document) that is written back.
const MAX_REFUSAL_BODY: usize = 64 * 1024;

/// What runs on an upgraded connection once the `101` went out.
type Hook = Box<dyn FnOnce(TcpStream, BytesMut) -> LocalBoxFuture<'static, ()>>;

/// What to run on the bare connection after a `101 Switching Protocols` (a response
/// extension): the TCP stream and whatever the client sent after its request. Dropped unrun
/// when the response cannot be written.
pub struct OnUpgrade(Hook);

impl OnUpgrade {
    /// `run` gets the connection's stream and the bytes already read past the request.
    pub fn new<F, Fut>(run: F) -> Self
    where
        F: FnOnce(TcpStream, BytesMut) -> Fut + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        Self(Box::new(move |stream, buffered| {
            Box::pin(run(stream, buffered))
        }))
    }

    /// Attaches the hook to `response`.
    pub fn attach(self, response: &mut actix_web::HttpResponse) {
        response.extensions_mut().insert(self);
    }
}

impl fmt::Debug for OnUpgrade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OnUpgrade")
    }
}

/// How the server runs.
#[derive(Debug, Clone, Copy)]
pub struct ServerOptions {
    /// Worker threads; `None`: one per core.
    pub workers: Option<usize>,
    /// Longest graceful stop, in seconds.
    pub shutdown_timeout_secs: u64,
}

/// Serves the application `factory` builds (one per worker) on `listener`, with connection
/// upgrades as described in the module docs. Signals are left to the caller.
pub fn serve<F, I, S, B>(
    listener: TcpListener,
    options: ServerOptions,
    factory: F,
) -> io::Result<Server>
where
    F: Fn() -> I + Send + Clone + 'static,
    I: IntoServiceFactory<S, Request>,
    S: ServiceFactory<Request, Config = AppConfig> + 'static,
    S::Error: Into<actix_web::Error> + 'static,
    S::InitError: fmt::Debug,
    S::Response: Into<Response<B>> + 'static,
    <S::Service as Service<Request>>::Future: 'static,
    S::Service: 'static,
    B: MessageBody + 'static,
{
    let addr = listener.local_addr()?;
    let mut builder = Server::build()
        .disable_signals()
        .shutdown_timeout(options.shutdown_timeout_secs);
    if let Some(workers) = options.workers {
        builder = builder.workers(workers.max(1));
    }
    // Idle keep-alive HTTP connections end as soon as a graceful stop begins, as with
    // actix-web's own server.
    let stopping = builder.graceful_shutdown_signal();
    let server = builder
        .listen("herald-http", listener, move || {
            let stopping = stopping.clone();
            let app = factory()
                .into_factory()
                .map_err(|err| err.into().error_response());
            let upgrade = Upgrade {
                app: factory().into_factory(),
                _body: PhantomData,
            };
            HttpService::build()
                .graceful_shutdown_signal(move || {
                    let stopping = stopping.clone();
                    async move { stopping.notified().await }
                })
                .keep_alive(KeepAlive::Timeout(Duration::from_secs(5)))
                .client_request_timeout(Duration::from_secs(5))
                .client_disconnect_timeout(Duration::from_secs(1))
                .h1_allow_half_closed(false)
                .tcp_nodelay(true)
                .local_addr(addr)
                .upgrade(upgrade)
                .finish(map_config(app, |()| AppConfig::default()))
                .tcp()
        })?
        .run();
    Ok(server)
}

/// actix-http's upgrade service over an application.
struct Upgrade<S, B> {
    app: S,
    _body: PhantomData<fn() -> B>,
}

impl<S, B> ServiceFactory<(Request, Framed<TcpStream, h1::Codec>)> for Upgrade<S, B>
where
    S: ServiceFactory<Request, Config = AppConfig> + 'static,
    S::Error: Into<actix_web::Error> + 'static,
    S::InitError: fmt::Debug,
    S::Response: Into<Response<B>> + 'static,
    <S::Service as Service<Request>>::Future: 'static,
    S::Service: 'static,
    B: MessageBody + 'static,
{
    type Response = ();
    type Error = actix_web::Error;
    type Config = ();
    type Service = UpgradeService<S::Service, B>;
    type InitError = S::InitError;
    type Future = LocalBoxFuture<'static, Result<Self::Service, Self::InitError>>;

    fn new_service(&self, (): ()) -> Self::Future {
        let app = self.app.new_service(AppConfig::default());
        Box::pin(async move {
            Ok(UpgradeService {
                app: Rc::new(app.await?),
                _body: PhantomData,
            })
        })
    }
}

struct UpgradeService<A, B> {
    app: Rc<A>,
    _body: PhantomData<fn() -> B>,
}

impl<A, B> Service<(Request, Framed<TcpStream, h1::Codec>)> for UpgradeService<A, B>
where
    A: Service<Request> + 'static,
    A::Error: Into<actix_web::Error> + 'static,
    A::Response: Into<Response<B>> + 'static,
    A::Future: 'static,
    B: MessageBody + 'static,
{
    type Response = ();
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<(), actix_web::Error>>;

    actix_service::always_ready!();

    fn call(&self, (req, framed): (Request, Framed<TcpStream, h1::Codec>)) -> Self::Future {
        let answered = self.app.call(req);
        Box::pin(async move {
            let response: Response<BoxBody> = match answered.await {
                Ok(response) => response.into().map_into_boxed_body(),
                Err(err) => Response::from(err.into().error_response()),
            };
            Ok(answer(response, framed).await?)
        })
    }
}

/// Writes the application's answer to an upgrade request, then runs the hook it carries or
/// closes the connection.
async fn answer(
    response: Response<BoxBody>,
    mut framed: Framed<TcpStream, h1::Codec>,
) -> io::Result<()> {
    let (mut head, body) = response.into_parts();
    let hook = head.extensions_mut().remove::<OnUpgrade>();
    match hook {
        Some(OnUpgrade(run)) if head.status() == StatusCode::SWITCHING_PROTOCOLS => {
            framed.send(Message::Item((head, BodySize::None))).await?;
            let parts = framed.into_parts();
            // The dispatcher's write buffer is flushed and dropped here; any bytes the
            // client sent after its handshake go to the connection.
            actix_web::rt::spawn(run(parts.io, parts.read_buf));
            Ok(())
        }
        _ => {
            let body = match to_bytes_limited(body, MAX_REFUSAL_BODY).await {
                Ok(Ok(body)) => body,
                _ => actix_web::web::Bytes::new(),
            };
            head.head_mut().set_connection_type(ConnectionType::Close);
            let size = BodySize::Sized(body.len() as u64);
            framed.send(Message::Item((head, size))).await?;
            if !body.is_empty() {
                framed.send(Message::Chunk(Some(body))).await?;
            }
            framed.close().await
        }
    }
}
