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
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

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

/// Serves HTTP on `listener` until the task is dropped (with the server).
pub async fn serve(
    listener: TcpListener,
    db: Arc<Database>,
    auth: AuthMethod,
) -> std::io::Result<()> {
    let state = Arc::new(HttpState {
        db: db.clone(),
        ingested: Mutex::default(),
        auth,
        logins: Default::default(),
    });
    axum::serve(
        CountingListener {
            inner: listener,
            db,
        },
        router(state).into_make_service_with_connect_info::<PeerAddr>(),
    )
    .await
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

/// The TCP listener, counting connections as they open and close.
struct CountingListener {
    inner: TcpListener,
    db: Arc<Database>,
}

impl axum::serve::Listener for CountingListener {
    type Io = CountedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (CountedStream, SocketAddr) {
        let (io, addr) = axum::serve::Listener::accept(&mut self.inner).await;
        self.db.listeners.http.connection_opened();
        let db = self.db.clone();
        (CountedStream { io, db }, addr)
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// A connection that counts itself closed when hyper drops it.
struct CountedStream {
    io: TcpStream,
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
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
