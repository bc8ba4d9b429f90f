//! Authentication on the HTTP listener. With `--http-auth password` every request carries
//! HTTP Basic credentials (`Authorization: Basic base64(user:password)`), checked as Kafka's
//! SASL PLAIN checks them (the role's SCRAM-SHA-256 verifier; the role must exist and may log
//! in); the request then acts as that role, so ingest needs INSERT on its source or table. A
//! refusal is 401 with `WWW-Authenticate: Basic`, logged and listed in `weir_login_failures`.
//! With `--http-auth trust` (loopback only) requests act as the bootstrap superuser.
//!
//! Checking a password costs PBKDF2 (4096 rounds of HMAC-SHA-256), too much for every request
//! of a client that sends the same credentials each time, so a verified password is remembered
//! as its SHA-256 digest for as long as the role keeps the same verifier.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;

use super::ingest::Rejection;
use super::{HttpState, PeerAddr};
use crate::auth::scram::{LoginSecrets, check_plain_login};
use crate::auth::{BOOTSTRAP_SUPERUSER, CURRENT_USER, Roles};

/// Most remembered logins; past it the memory starts afresh.
const REMEMBERED_LOGINS_MAX: usize = 1024;

/// What the listener checks credentials with.
#[derive(Default)]
pub struct HttpLogins {
    secrets: LoginSecrets,
    /// user → (the verifier the password was checked against, SHA-256 of the password).
    remembered: Mutex<HashMap<String, (String, Vec<u8>)>>,
}

impl HttpLogins {
    /// Ok when `password` is `user`'s and the role may log in; the reason otherwise.
    fn check(&self, roles: &Roles, user: &str, password: &str) -> Result<(), String> {
        let digest = ring::digest::digest(&ring::digest::SHA256, password.as_bytes());
        let verifier = roles.get(user).filter(|r| r.login).and_then(|r| r.password);
        if let Some(verifier) = &verifier
            && let Some((known, hash)) = self.remembered.lock().expect("logins lock").get(user)
            && known == verifier
            && crate::auth::scram_exchange::equal_in_constant_time(hash, digest.as_ref())
        {
            return Ok(());
        }
        check_plain_login(&self.secrets, roles, user, password)?;
        if let Some(verifier) = verifier {
            let mut remembered = self.remembered.lock().expect("logins lock");
            if remembered.len() >= REMEMBERED_LOGINS_MAX {
                remembered.clear();
            }
            remembered.insert(user.to_string(), (verifier, digest.as_ref().to_vec()));
        }
        Ok(())
    }
}

/// The user and password of a Basic `Authorization` header.
fn basic_credentials(request: &Request) -> Result<(String, String), String> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or("no Authorization header")?
        .to_str()
        .map_err(|_| "the Authorization header is not text")?;
    let encoded = value
        .strip_prefix("Basic ")
        .ok_or("the Authorization header is not Basic")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| "the Basic credentials are not base64")?;
    let text = String::from_utf8(decoded).map_err(|_| "the Basic credentials are not UTF-8")?;
    let (user, password) = text
        .split_once(':')
        .ok_or("the Basic credentials are not user:password")?;
    Ok((user.to_string(), password.to_string()))
}

/// Middleware: runs the request as the role its credentials name, or answers 401.
pub(super) async fn authenticate(
    State(state): State<Arc<HttpState>>,
    ConnectInfo(PeerAddr(peer)): ConnectInfo<PeerAddr>,
    request: Request,
    next: Next,
) -> Response {
    let user = match state.auth {
        crate::server::AuthMethod::Trust => Arc::from(BOOTSTRAP_SUPERUSER),
        crate::server::AuthMethod::Password => {
            let checked = basic_credentials(&request).and_then(|(user, password)| {
                state
                    .logins
                    .check(&state.db.catalog.roles, &user, &password)
                    .map(|()| user.clone())
                    .map_err(|reason| format!("{reason} (user \"{user}\")"))
            });
            match checked {
                Ok(user) => Arc::from(user),
                Err(reason) => return refuse(&state, &request, peer, reason),
            }
        }
    };
    CURRENT_USER.scope(user, next.run(request)).await
}

fn refuse(state: &HttpState, request: &Request, peer: SocketAddr, reason: String) -> Response {
    let user = basic_credentials(request)
        .map(|(u, _)| u)
        .unwrap_or_default();
    // A request without credentials is how every client starts (it learns the scheme from
    // the 401); only a wrong login is a failure worth listing.
    if !user.is_empty() {
        tracing::warn!(%peer, "HTTP authentication failed: {reason}");
        state
            .db
            .listeners
            .login_failed("http", &user, peer.to_string(), reason);
    }
    let mut response = Rejection::new(
        StatusCode::UNAUTHORIZED,
        "authentication required: send the user and password of a role that may log in, \
         with HTTP Basic authentication"
            .to_string(),
    )
    .into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"weir\", charset=\"UTF-8\""),
    );
    response
}

/// Refuses an HTTP listener that would let anyone in from the network: trust on an address
/// that is not loopback, or password authentication with no role able to use it.
pub fn check_exposure(
    addr: SocketAddr,
    auth: crate::server::AuthMethod,
    db: &crate::db::Database,
) -> Result<(), String> {
    let roles = &db.catalog.roles;
    match auth {
        crate::server::AuthMethod::Trust if !addr.ip().is_loopback() => Err(format!(
            "refusing to listen on {addr} for HTTP clients without authentication: anyone who \
             can reach it could write every source and read /metrics. Start with --http-auth \
             password (requests then log in with HTTP Basic as a role with a password), bind \
             --http-addr to 127.0.0.1, or turn it off with --http-addr off"
        )),
        crate::server::AuthMethod::Password
            if !roles.all().iter().any(|r| r.login && r.password.is_some()) =>
        {
            Err(format!(
                "--http-auth password, but no role that may log in has a password, so no \
                 request could log in; set one with ALTER USER {BOOTSTRAP_SUPERUSER} PASSWORD \
                 '...' (or --init-password on a new data directory)"
            ))
        }
        _ => Ok(()),
    }
}
