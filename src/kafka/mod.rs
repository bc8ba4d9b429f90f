//! The Kafka wire protocol over Weir's topics: any Kafka producer or consumer can point at
//! Weir. Topics are one namespace — a topic made with `CREATE TOPIC` is a Kafka topic, and a
//! topic a Kafka client creates shows in `SHOW TOPICS`. The exception is Weir's own internal
//! topics (`_weir.*`, such as a keyed table's changelog `_weir.table.<t>`): Kafka clients do not
//! see, read, write or create them ([`Broker::topic`]).
//!
//! Each connection is served in order (read a request, answer it, read the next), as Kafka
//! clients require responses in request order. Message encoding is the `kafka-protocol` crate's;
//! what each request does lives in `metadata.rs` (ApiVersions, Metadata, CreateTopics,
//! DeleteTopics), `produce.rs` (Produce, InitProducerId; `decompress.rs` bounds what a batch
//! inflates to), `fetch.rs` (Fetch, ListOffsets) and `groups.rs` (consumer groups and committed
//! offsets). `sasl.rs` authenticates clients (SASL SCRAM-SHA-256 and PLAIN); with
//! `--kafka-tls` every connection speaks TLS first.

mod decompress;
mod fetch;
mod groups;
pub use groups::{CommittedOffset, committed_offsets};
mod metadata;
mod produce;
mod sasl;
pub use sasl::check_exposure;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};
use pgwire::tokio::TlsAcceptor;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::db::Database;
use crate::server::AuthMethod;

/// Largest request accepted, in bytes (Kafka's `socket.request.max.bytes` default).
pub const REQUEST_BYTES_MAX: usize = 100 * 1024 * 1024;
/// Longest a new connection may take to finish its TLS handshake, in seconds.
const TLS_HANDSHAKE_TIMEOUT_S: u64 = 10;
/// The one broker's id.
pub const NODE_ID: i32 = 1;
/// Names of the topics Weir keeps for itself; not for Kafka clients.
pub const INTERNAL_TOPIC_PREFIX: &str = "_weir.";

/// Whether `name` is one of Weir's internal topics.
fn internal(name: &str) -> bool {
    name.starts_with(INTERNAL_TOPIC_PREFIX)
}

/// What every request handler can reach.
pub struct Broker {
    pub db: Arc<Database>,
    /// The address clients are told to connect to (Metadata).
    pub advertised: SocketAddr,
    /// Whether producing to (or asking metadata for) an unknown topic creates it.
    pub auto_create_topics: bool,
    /// Idempotent producers: ids handed out and the sequences seen per partition.
    pub producers: produce::Producers,
    /// Consumer groups.
    pub groups: groups::Groups,
    /// A connection waiting this long for its next request is closed.
    pub idle_timeout: std::time::Duration,
    /// Most connections open at once.
    pub max_connections: usize,
    /// Whether clients must log in with SASL (`--kafka-auth`).
    pub auth: AuthMethod,
    /// How long a connection has to log in under `--kafka-auth password`.
    pub authentication_timeout: std::time::Duration,
    /// TLS for every connection (`--kafka-tls`).
    pub tls: Option<TlsAcceptor>,
    /// The verifiers SASL logins are checked against.
    secrets: crate::auth::scram::LoginSecrets,
}

impl Broker {
    pub fn new(db: Arc<Database>, advertised: SocketAddr, auto_create_topics: bool) -> Broker {
        Broker {
            db,
            advertised,
            auto_create_topics,
            producers: Default::default(),
            groups: Default::default(),
            idle_timeout: std::time::Duration::from_millis(
                crate::config::KAFKA_CONNECTIONS_MAX_IDLE_MS_DEFAULT,
            ),
            max_connections: crate::config::KAFKA_MAX_CONNECTIONS_DEFAULT,
            auth: AuthMethod::Trust,
            authentication_timeout: std::time::Duration::from_millis(
                crate::config::AUTHENTICATION_TIMEOUT_MS_DEFAULT,
            ),
            tls: None,
            secrets: Default::default(),
        }
    }

    /// A topic as Kafka clients see it: Weir's internal topics are not there (Metadata leaves
    /// them out, and every request naming one answers UNKNOWN_TOPIC_OR_PARTITION).
    fn topic(&self, name: &str) -> Option<Arc<crate::topics::Topic>> {
        if internal(name) {
            return None;
        }
        self.db.topics.topic(name)
    }

    /// A topic the client's role may use with `privilege` (produce: INSERT; fetch, offsets:
    /// SELECT): UNKNOWN_TOPIC_OR_PARTITION when it is not there, TOPIC_AUTHORIZATION_FAILED
    /// when the role may not.
    fn topic_for(
        &self,
        name: &str,
        privilege: crate::auth::privileges::Privilege,
    ) -> Result<Arc<crate::topics::Topic>, ResponseError> {
        let topic = self
            .topic(name)
            .ok_or(ResponseError::UnknownTopicOrPartition)?;
        let object = crate::auth::privileges::Object::Topic(name.to_string());
        if self.db.may(&object, privilege) {
            Ok(topic)
        } else {
            Err(ResponseError::TopicAuthorizationFailed)
        }
    }
}

/// The APIs and versions Weir serves (what ApiVersions advertises). Versions that name topics
/// by id instead of name (Produce 13, Fetch 13+, DeleteTopics 6) are left out.
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 12),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 5),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::FindCoordinator, 0, 4),
    (ApiKey::JoinGroup, 0, 7),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 4),
    (ApiKey::OffsetCommit, 2, 8),
    (ApiKey::OffsetFetch, 1, 7),
    (ApiKey::ListGroups, 0, 4),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::SaslHandshake, 1, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
];

/// Serves Kafka clients on `listener` until the task is dropped: at most
/// `broker.max_connections` at once (the next waits in the backlog until one closes).
pub async fn serve(listener: TcpListener, broker: Arc<Broker>) {
    let mut acceptor = crate::server::accept::Acceptor::new(listener, "kafka");
    let slots = Arc::new(tokio::sync::Semaphore::new(broker.max_connections));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return; // the semaphore is never closed
        };
        let (socket, peer) = acceptor.accept().await;
        let broker = broker.clone();
        tokio::spawn(async move {
            let _slot = slot;
            broker.db.listeners.kafka.connection_opened();
            if let Err(e) = open(socket, peer, &broker).await {
                tracing::debug!(%peer, "kafka connection ended: {e}");
            }
            broker.db.listeners.kafka.connection_closed();
        });
    }
}

/// Serves one connection, over TLS when the listener has it.
async fn open(
    socket: tokio::net::TcpStream,
    peer: SocketAddr,
    broker: &Broker,
) -> std::io::Result<()> {
    socket.set_nodelay(true)?;
    let Some(acceptor) = &broker.tls else {
        return connection(socket, sasl::Session::new(peer, false), broker).await;
    };
    let handshake = std::time::Duration::from_secs(TLS_HANDSHAKE_TIMEOUT_S);
    match tokio::time::timeout(handshake, acceptor.accept(socket)).await {
        Ok(stream) => connection(stream?, sasl::Session::new(peer, true), broker).await,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no TLS handshake within {handshake:?}"),
        )),
    }
}

async fn connection<S: AsyncRead + AsyncWrite + Unpin>(
    mut socket: S,
    mut session: sasl::Session,
    broker: &Broker,
) -> std::io::Result<()> {
    let login_by = tokio::time::Instant::now() + broker.authentication_timeout;
    loop {
        let mut wait = broker.idle_timeout;
        let must_log_in = broker.auth == AuthMethod::Password && session.user.is_none();
        if must_log_in {
            wait = wait.min(login_by.saturating_duration_since(tokio::time::Instant::now()));
        }
        let next = tokio::time::timeout(wait, socket.read_i32()).await;
        let Ok(next) = next else {
            if must_log_in && tokio::time::Instant::now() >= login_by {
                tracing::info!(peer = %session.peer(), "closing a Kafka connection that did not log in within {:?}", broker.authentication_timeout);
            } else {
                tracing::debug!("closing a Kafka connection idle for {wait:?}");
            }
            return Ok(());
        };
        let len = match next {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        };
        if len < 8 || len as usize > REQUEST_BYTES_MAX {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("bad request length {len}"),
            ));
        }
        let mut frame = BytesMut::zeroed(len as usize);
        socket.read_exact(&mut frame).await?;
        let user = session
            .user
            .clone()
            .unwrap_or_else(|| Arc::from(crate::auth::BOOTSTRAP_SUPERUSER));
        let response = crate::auth::CURRENT_USER
            .scope(user, respond(broker, &mut session, frame.freeze()))
            .await;
        broker.db.listeners.kafka.request(response.is_err());
        match response {
            Ok(Some(reply)) => socket.write_all(&reply).await?,
            Ok(None) => {} // acks=0 produce: no response
            Err(e) => {
                return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e));
            }
        }
        if session.closing {
            socket.flush().await?;
            return Ok(());
        }
    }
}

/// Decodes one request, runs it and encodes the response (None: the request wants none).
async fn respond(
    broker: &Broker,
    session: &mut sasl::Session,
    mut frame: Bytes,
) -> Result<Option<Bytes>, String> {
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let key = ApiKey::try_from(raw_key).map_err(|_| format!("unknown api key {raw_key}"))?;
    let supported = SUPPORTED.iter().find(|(k, _, _)| *k == key);
    if key == ApiKey::ApiVersions
        && supported.is_none_or(|(_, lo, hi)| version < *lo || version > *hi)
    {
        // A client asking for a newer ApiVersions gets a v0 answer with our range (KIP-511).
        return encode(
            key,
            0,
            correlation_id,
            &metadata::api_versions_unsupported(),
        )
        .map(Some);
    }
    let Some((_, lo, hi)) = supported else {
        return Err(format!("api {key:?} is not supported"));
    };
    if version < *lo || version > *hi {
        return Err(format!(
            "api {key:?} version {version} is not supported (supported {lo}..={hi})"
        ));
    }
    if !session.admits(key, broker.auth) {
        return Err(format!(
            "api {key:?} before SASL authentication (only ApiVersions, SaslHandshake and \
             SaslAuthenticate are served until a client has logged in)"
        ));
    }
    RequestHeader::decode(&mut frame, key.request_header_version(version))
        .map_err(|e| e.to_string())?;
    let request = RequestKind::decode(key, &mut frame, version).map_err(|e| e.to_string())?;
    let response: ResponseKind = match request {
        RequestKind::ApiVersions(_) => metadata::api_versions().into(),
        RequestKind::Metadata(r) => metadata::metadata(broker, r, version).into(),
        RequestKind::CreateTopics(r) => metadata::create_topics(broker, r).into(),
        RequestKind::DeleteTopics(r) => metadata::delete_topics(broker, r, version).into(),
        RequestKind::Produce(r) => {
            let acks = r.acks;
            let response = produce::produce(broker, r).await;
            if acks == 0 {
                return Ok(None);
            }
            response.into()
        }
        RequestKind::Fetch(r) => fetch::fetch(broker, r).await.into(),
        RequestKind::ListOffsets(r) => fetch::list_offsets(broker, r, version).into(),
        RequestKind::InitProducerId(r) => produce::init_producer_id(broker, r).into(),
        RequestKind::FindCoordinator(r) => groups::find_coordinator(broker, r, version).into(),
        RequestKind::JoinGroup(r) => broker.groups.join(r, version).await.into(),
        RequestKind::SyncGroup(r) => broker.groups.sync(r, version).await.into(),
        RequestKind::Heartbeat(r) => broker.groups.heartbeat(r).into(),
        RequestKind::LeaveGroup(r) => broker.groups.leave(r, version).into(),
        RequestKind::OffsetCommit(r) => groups::offset_commit(broker, r).into(),
        RequestKind::OffsetFetch(r) => groups::offset_fetch(broker, r).into(),
        RequestKind::ListGroups(_) => broker.groups.list(version).into(),
        RequestKind::DescribeGroups(r) => broker.groups.describe(r).into(),
        RequestKind::DescribeConfigs(r) => metadata::describe_configs(broker, r).into(),
        RequestKind::SaslHandshake(r) => sasl::handshake(session, r).into(),
        RequestKind::SaslAuthenticate(r) => sasl::authenticate(broker, session, r).into(),
        _ => return Err(format!("api {key:?} is not handled")),
    };
    encode(key, version, correlation_id, &response).map(Some)
}

fn encode(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &ResponseKind,
) -> Result<Bytes, String> {
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut buf, key.response_header_version(version))
        .map_err(|e| e.to_string())?;
    body.encode(&mut buf, version).map_err(|e| e.to_string())?;
    let len = (buf.len() - 4) as i32;
    buf[0..4].copy_from_slice(&len.to_be_bytes());
    Ok(buf.freeze())
}

/// A Kafka topic name from the protocol's bytes.
fn topic_name(name: &kafka_protocol::messages::TopicName) -> String {
    name.0.as_str().to_string()
}

/// The protocol's topic name from ours.
fn kafka_name(name: &str) -> kafka_protocol::messages::TopicName {
    kafka_protocol::messages::TopicName(kafka_protocol::protocol::StrBytes::from_string(
        name.to_string(),
    ))
}
