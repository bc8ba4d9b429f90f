//! SASL on the Kafka listener (KIP-43, KIP-152): SaslHandshake picks a mechanism, then
//! SaslAuthenticate requests carry its messages. SCRAM-SHA-256 is always offered; PLAIN only
//! over TLS, since it sends the password itself. Both check the password against the role's
//! stored SCRAM verifier, the one the Postgres wire uses, so a role logs in with the same
//! password through either door.
//!
//! `--kafka-auth password` makes SASL mandatory: a connection may send only ApiVersions and the
//! SASL requests until it has authenticated, and anything else closes it (what a Kafka broker
//! does on a SASL listener). Under `--kafka-auth trust` (loopback only) SASL is optional, and a
//! client that does not authenticate acts as the bootstrap superuser. A failed authentication
//! answers SASL_AUTHENTICATION_FAILED, the same for a wrong password, an unknown role and a
//! role without LOGIN, logs one line, counts in `weir_listener_auth_failures_total{listener=
//! "kafka"}`, and closes the connection. Requests after a login run as
//! its role (`auth::CURRENT_USER`).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{
    ApiKey, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::Broker;
use crate::auth::scram_exchange::{ScramError, ScramExchange, client_first_user};
use crate::server::AuthMethod;

const SCRAM_SHA_256: &str = "SCRAM-SHA-256";
const PLAIN: &str = "PLAIN";

#[derive(Clone, Copy, Debug)]
enum Mechanism {
    ScramSha256,
    Plain,
}

impl Mechanism {
    fn name(self) -> &'static str {
        match self {
            Mechanism::ScramSha256 => SCRAM_SHA_256,
            Mechanism::Plain => PLAIN,
        }
    }
}

/// Where a connection's authentication stands.
enum Step {
    /// No SaslHandshake yet.
    Start,
    /// A mechanism was chosen; its first message is next.
    Chosen(Mechanism),
    /// SCRAM: the server's first message was sent; the client's proof is next.
    ScramSent(ScramExchange),
    /// Authenticated (or failed: the connection is closing).
    Done,
}

/// One connection's authentication.
pub struct Session {
    /// The role the connection logged in as.
    pub user: Option<Arc<str>>,
    /// Whether the connection runs over TLS.
    tls: bool,
    step: Step,
    /// Set when the connection must close once the current response is written.
    pub closing: bool,
    peer: SocketAddr,
}

impl Session {
    pub fn new(peer: SocketAddr, tls: bool) -> Session {
        Session {
            user: None,
            tls,
            step: Step::Start,
            closing: false,
            peer,
        }
    }

    /// The client's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Whether a request of `key` may be served now: before a login only ApiVersions and the
    /// SASL requests may be, when SASL is mandatory or a SASL exchange has begun.
    pub fn admits(&self, key: ApiKey, auth: AuthMethod) -> bool {
        let unauthenticated_ok = auth == AuthMethod::Trust && matches!(self.step, Step::Start);
        self.user.is_some()
            || unauthenticated_ok
            || matches!(
                key,
                ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate
            )
    }

    fn mechanisms(&self) -> Vec<StrBytes> {
        let mut names = vec![StrBytes::from_static_str(SCRAM_SHA_256)];
        if self.tls {
            names.push(StrBytes::from_static_str(PLAIN));
        }
        names
    }
}

/// SaslHandshake (v1): chooses the mechanism the SaslAuthenticate requests will carry.
pub fn handshake(session: &mut Session, request: SaslHandshakeRequest) -> SaslHandshakeResponse {
    let response = SaslHandshakeResponse::default().with_mechanisms(session.mechanisms());
    if !matches!(session.step, Step::Start) {
        session.closing = true;
        return response.with_error_code(ResponseError::IllegalSaslState.code());
    }
    let mechanism = match request.mechanism.as_str() {
        SCRAM_SHA_256 => Mechanism::ScramSha256,
        PLAIN if session.tls => Mechanism::Plain,
        _ => {
            session.closing = true;
            return response.with_error_code(ResponseError::UnsupportedSaslMechanism.code());
        }
    };
    session.step = Step::Chosen(mechanism);
    response
}

/// SaslAuthenticate: one message of the chosen mechanism.
pub fn authenticate(
    broker: &Broker,
    session: &mut Session,
    request: SaslAuthenticateRequest,
) -> SaslAuthenticateResponse {
    let step = std::mem::replace(&mut session.step, Step::Done);
    let outcome = match step {
        Step::Chosen(Mechanism::ScramSha256) => scram_first(broker, session, &request.auth_bytes),
        Step::ScramSent(exchange) => scram_final(broker, exchange, &request.auth_bytes),
        Step::Chosen(Mechanism::Plain) => plain(broker, &request.auth_bytes),
        Step::Start | Step::Done => {
            session.closing = true;
            return SaslAuthenticateResponse::default()
                .with_error_code(ResponseError::IllegalSaslState.code())
                .with_error_message(Some(StrBytes::from_static_str(
                    "SaslAuthenticate is not expected now: send SaslHandshake first, once",
                )));
        }
    };
    match outcome {
        Outcome::Continue(reply) => SaslAuthenticateResponse::default().with_auth_bytes(reply),
        Outcome::LoggedIn(user, reply) => {
            tracing::debug!(peer = %session.peer, user, "kafka client authenticated");
            session.user = Some(Arc::from(user));
            SaslAuthenticateResponse::default().with_auth_bytes(reply)
        }
        Outcome::Failed {
            mechanism,
            user,
            reason,
        } => {
            tracing::info!(
                peer = %session.peer,
                user,
                mechanism = mechanism.name(),
                "kafka SASL authentication failed: {reason}"
            );
            broker.db.listeners.login_failed(
                "kafka",
                &user,
                session.peer.to_string(),
                format!("SASL {}: {reason}", mechanism.name()),
            );
            session.closing = true;
            SaslAuthenticateResponse::default()
                .with_error_code(ResponseError::SaslAuthenticationFailed.code())
                .with_error_message(Some(StrBytes::from_string(format!(
                    "Authentication failed: invalid credentials with SASL mechanism {}",
                    mechanism.name()
                ))))
        }
    }
}

enum Outcome {
    Continue(Bytes),
    LoggedIn(String, Bytes),
    Failed {
        mechanism: Mechanism,
        user: String,
        reason: String,
    },
}

fn failed(mechanism: Mechanism, user: &str, reason: impl Into<String>) -> Outcome {
    Outcome::Failed {
        mechanism,
        user: user.to_string(),
        reason: reason.into(),
    }
}

fn scram_first(broker: &Broker, session: &mut Session, message: &[u8]) -> Outcome {
    let scram = Mechanism::ScramSha256;
    let user = match client_first_user(message) {
        Ok(user) => user,
        Err(e) => return failed(scram, "", scram_reason(e)),
    };
    let secret = match broker.secrets.secret(&broker.db.catalog.roles, &user) {
        Ok((secret, _)) => secret,
        Err(e) => return failed(scram, &user, e.to_string()),
    };
    match ScramExchange::start(message, &secret) {
        Ok((exchange, server_first)) => {
            session.step = Step::ScramSent(exchange);
            Outcome::Continue(server_first.into())
        }
        Err(e) => failed(scram, &user, scram_reason(e)),
    }
}

fn scram_final(broker: &Broker, exchange: ScramExchange, message: &[u8]) -> Outcome {
    let user = exchange.user().to_string();
    match exchange.finish(message) {
        Ok(server_final) => match crate::auth::scram::may_log_in(&broker.db.catalog.roles, &user) {
            Ok(()) => Outcome::LoggedIn(user, server_final.into()),
            Err(reason) => failed(Mechanism::ScramSha256, &user, reason),
        },
        Err(e) => failed(Mechanism::ScramSha256, &user, scram_reason(e)),
    }
}

fn scram_reason(e: ScramError) -> String {
    match e {
        ScramError::Malformed(what) => format!("malformed SCRAM message: {what}"),
        ScramError::Refused => "wrong password, or no such role with a password".to_string(),
    }
}

/// SASL PLAIN: `authzid NUL user NUL password`, the authzid empty or the user itself.
fn plain(broker: &Broker, message: &[u8]) -> Outcome {
    let mechanism = Mechanism::Plain;
    let Ok(text) = std::str::from_utf8(message) else {
        return failed(mechanism, "", "the PLAIN message is not UTF-8");
    };
    let fields: Vec<&str> = text.split('\0').collect();
    let [authzid, user, password] = fields[..] else {
        return failed(
            mechanism,
            "",
            "the PLAIN message is not authzid NUL user NUL password",
        );
    };
    if !authzid.is_empty() && authzid != user {
        return failed(
            mechanism,
            user,
            "acting as another role (authzid) is not supported",
        );
    }
    match crate::auth::scram::check_plain_login(
        &broker.secrets,
        &broker.db.catalog.roles,
        user,
        password,
    ) {
        Ok(()) => Outcome::LoggedIn(user.to_string(), Bytes::new()),
        Err(reason) => failed(mechanism, user, reason),
    }
}

/// Refuses a Kafka listener that would let anyone in from the network: trust on an address
/// that is not loopback, or password authentication with no role able to use it.
pub fn check_exposure(
    addr: SocketAddr,
    auth: AuthMethod,
    db: &crate::db::Database,
) -> Result<(), String> {
    match auth {
        AuthMethod::Trust if !addr.ip().is_loopback() => Err(format!(
            "refusing to listen on {addr} for Kafka clients without authentication: anyone \
             who can reach it could read and write every topic. Start with --kafka-auth \
             password (clients then log in with SASL SCRAM-SHA-256, or PLAIN over \
             --kafka-tls), or bind --kafka-addr to 127.0.0.1"
        )),
        AuthMethod::Password
            if !db
                .catalog
                .roles
                .all()
                .iter()
                .any(|r| r.login && r.password.is_some()) =>
        {
            Err(format!(
                "--kafka-auth password, but no role that may log in has a password, so no \
                 Kafka client could connect. On a new data directory pass --init-password (or \
                 set WEIR_INIT_PASSWORD); otherwise run ALTER USER {} PASSWORD '...' over a \
                 loopback connection",
                crate::auth::BOOTSTRAP_SUPERUSER
            ))
        }
        _ => Ok(()),
    }
}
