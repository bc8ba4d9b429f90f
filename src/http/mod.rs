//! The HTTP listener (`--http-addr`, axum over hyper, HTTP/1.1): the face for tools that speak
//! HTTP rather than Postgres or Kafka.
//!
//! | route | what |
//! |---|---|
//! | `POST /v1/sources/{name}` | append JSON, NDJSON or CSV rows to a source or table ([`ingest`]) |
//! | `GET /metrics` | Prometheus text exposition ([`metrics`]) |
//!
//! Like the other faces it only calls into [`Database`]; it counts its connections and requests
//! in [`Database::listeners`] as the Postgres and Kafka listeners do. With `--http-auth
//! password` every request logs in with HTTP Basic credentials and acts as that role
//! ([`auth`]).

pub mod auth;
pub mod ingest;
pub mod metrics;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use pgwire::tokio::TlsAcceptor;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;

use crate::db::Database;
use crate::server::AuthMethod;

/// What the handlers share.
pub struct HttpState {
    pub db: Arc<Database>,
    /// Rows appended through ingest since start, per source or table.
    pub ingested: Mutex<BTreeMap<String, u64>>,
    /// Whether requests log in (`--http-auth`).
    pub auth: AuthMethod,
    logins: auth::HttpLogins,
}

/// Longest a client may take over its TLS handshake, in seconds.
const TLS_HANDSHAKE_TIMEOUT_S: u64 = 10;
/// Connections accepted (and through their handshake) that wait for hyper to take them.
const ACCEPTED_QUEUE_LEN: usize = 64;

/// Serves HTTP on `listener` until the task is dropped (with the server); over TLS when `tls`
/// is given (`--http-tls`).
pub async fn serve(
    listener: TcpListener,
    db: Arc<Database>,
    auth: AuthMethod,
    tls: Option<TlsAcceptor>,
) -> std::io::Result<()> {
    let state = Arc::new(HttpState {
        db: db.clone(),
        ingested: Mutex::default(),
        auth,
        logins: Default::default(),
    });
    let local = listener.local_addr()?;
    let (accepted, incoming) = tokio::sync::mpsc::channel(ACCEPTED_QUEUE_LEN);
    let acceptor = tokio::spawn(accept(listener, tls, accepted));
    let served = axum::serve(
        CountingListener {
            incoming,
            local,
            db,
        },
        router(state).into_make_service_with_connect_info::<PeerAddr>(),
    )
    .await;
    acceptor.abort();
    served
}

/// Accepts connections and hands them to hyper, each TLS handshake on a task of its own so a
/// slow client holds up no other.
async fn accept(
    mut listener: TcpListener,
    tls: Option<TlsAcceptor>,
    accepted: tokio::sync::mpsc::Sender<(Box<dyn Connection>, SocketAddr)>,
) {
    loop {
        // axum's accept waits out errors such as running out of descriptors.
        let (socket, peer) = axum::serve::Listener::accept(&mut listener).await;
        let Some(acceptor) = tls.clone() else {
            if accepted.send((Box::new(socket), peer)).await.is_err() {
                return;
            }
            continue;
        };
        let accepted = accepted.clone();
        tokio::spawn(async move {
            let handshake = std::time::Duration::from_secs(TLS_HANDSHAKE_TIMEOUT_S);
            match tokio::time::timeout(handshake, acceptor.accept(socket)).await {
                Ok(Ok(stream)) => {
                    let _ = accepted.send((Box::new(stream), peer)).await;
                }
                Ok(Err(e)) => tracing::debug!(%peer, "http TLS handshake failed: {e}"),
                Err(_) => tracing::debug!(%peer, "no http TLS handshake within {handshake:?}"),
            }
        });
    }
}

/// The routes, each request counted and authenticated.
fn router(state: Arc<HttpState>) -> Router {
    Router::new()
        .route("/v1/sources/{name}", post(ingest::ingest))
        .route("/metrics", get(metrics_handler))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            count_request,
        ))
        .with_state(state)
}

async fn metrics_handler(State(state): State<Arc<HttpState>>) -> Response {
    let gathered = tokio::task::spawn_blocking(move || {
        let ingested = state.ingested.lock().expect("ingest counter lock").clone();
        metrics::gather(&state.db, &ingested).render()
    })
    .await;
    match gathered {
        Ok(text) => ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("gathering metrics failed: {e}"),
        )
            .into_response(),
    }
}

async fn not_found(request: Request) -> Response {
    ingest::Rejection::new(
        StatusCode::NOT_FOUND,
        format!(
            "no route for {} {}: use POST /v1/sources/{{name}} or GET /metrics",
            request.method(),
            request.uri().path()
        ),
    )
    .into_response()
}

async fn count_request(
    State(state): State<Arc<HttpState>>,
    request: Request,
    next: Next,
) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    state
        .db
        .listeners
        .http
        .request(status.is_client_error() || status.is_server_error());
    response
}

/// The client's address, for the handlers (`ConnectInfo<PeerAddr>`).
#[derive(Clone, Copy, Debug)]
struct PeerAddr(SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, CountingListener>>
    for PeerAddr
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, CountingListener>) -> PeerAddr {
        PeerAddr(*stream.remote_addr())
    }
}

/// A client connection, plain or TLS.
trait Connection: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Connection for T {}

/// The connections `accept` hands over, counted as they open and close.
struct CountingListener {
    incoming: tokio::sync::mpsc::Receiver<(Box<dyn Connection>, SocketAddr)>,
    local: SocketAddr,
    db: Arc<Database>,
}

impl axum::serve::Listener for CountingListener {
    type Io = CountedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (CountedStream, SocketAddr) {
        let Some((io, addr)) = self.incoming.recv().await else {
            // The acceptor ended (it only does when this listener is gone): accept nothing more.
            return std::future::pending().await;
        };
        self.db.listeners.http.connection_opened();
        let db = self.db.clone();
        (CountedStream { io, db }, addr)
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}

/// A connection that counts itself closed when hyper drops it.
struct CountedStream {
    io: Box<dyn Connection>,
    db: Arc<Database>,
}

impl Drop for CountedStream {
    fn drop(&mut self) {
        self.db.listeners.http.connection_closed();
    }
}

impl AsyncRead for CountedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.get_mut().io).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut *self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut *self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.get_mut().io).poll_shutdown(cx)
    }
}
