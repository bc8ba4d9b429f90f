//! Start-up and authentication on the Postgres wire.
//!
//! `--pg-auth trust` lets any existing role that may log in connect without a password (the
//! default, allowed only on loopback addresses); `--pg-auth password` runs SCRAM-SHA-256 against
//! the role's stored verifier (SCRAM-SHA-256-PLUS, with channel binding, over TLS). As in
//! Postgres, a wrong password, an unknown role and a role with no password all fail the same
//! way at the end of the exchange (FATAL 28P01, one log line), so a client cannot tell which
//! roles exist. Then: a role without LOGIN is refused (28000), and so is a connection past the
//! listener's `--pg-max-connections` or the role's CONNECTION LIMIT (53300). With
//! `--tls-require`, a connection that did not negotiate TLS is refused (28000).
//!
//! A session that logged in runs every statement as its role ([`SessionRole`], set as
//! `auth::CURRENT_USER` around each statement).

use std::collections::HashMap;
use std::fmt::Debug;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::Sink;
use pgwire::api::auth::driver::AuthOutcome;
use pgwire::api::auth::mechanism::AuthMechanismFactory;
use pgwire::api::auth::sasl::scram::{ScramAuth, ScramSecret};
use pgwire::api::auth::{self, AuthDriver, AuthSource, LoginInfo, Password, StartupHandler};
use pgwire::api::{ClientInfo, METADATA_USER, PgWireConnectionState, PidSecretKeyGenerator};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::startup::Authentication;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};

use super::Handler;
use crate::catalog::Catalog;

/// How the Postgres listener authenticates clients (`--pg-auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// Any role that may log in, without a password.
    Trust,
    /// SCRAM-SHA-256 with the role's password.
    Password,
}

impl FromStr for AuthMethod {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "trust" => Ok(AuthMethod::Trust),
            "password" | "scram-sha-256" => Ok(AuthMethod::Password),
            other => Err(format!("expected trust or password, not {other}")),
        }
    }
}

/// Refuses a listener that would let anyone in from the network: trust authentication on an
/// address that is not loopback, or password authentication with no role able to use it.
pub fn check_exposure(
    addr: std::net::SocketAddr,
    method: AuthMethod,
    db: &crate::db::Database,
) -> Result<(), String> {
    let catalog = &db.catalog;
    match method {
        AuthMethod::Trust if !addr.ip().is_loopback() => Err(format!(
            "refusing to listen on {addr} without authentication: anyone who can reach it \
             could connect as any role. Start with --pg-auth password (and set the superuser's \
             password with --init-password or WEIR_INIT_PASSWORD on a new data directory, or \
             ALTER USER {} PASSWORD '...' over a loopback connection), or bind --pg-addr to \
             127.0.0.1",
            crate::auth::BOOTSTRAP_SUPERUSER
        )),
        AuthMethod::Password
            if !catalog
                .roles
                .all()
                .iter()
                .any(|r| r.login && r.password.is_some()) =>
        {
            Err(format!(
                "--pg-auth password, but no role that may log in has a password, so no one \
                 could connect. On a new data directory pass --init-password (or set \
                 WEIR_INIT_PASSWORD); otherwise start once with --pg-auth trust on 127.0.0.1 \
                 and run ALTER USER {} PASSWORD '...'",
                crate::auth::BOOTSTRAP_SUPERUSER
            ))
        }
        _ => Ok(()),
    }
}

/// The role a logged-in session acts as (in its session extensions).
pub struct SessionRole(pub Arc<str>);

/// The SCRAM mechanisms: one for plain connections, one that also offers channel binding
/// (SCRAM-SHA-256-PLUS) for TLS connections when a certificate is configured.
pub(super) struct Scram {
    driver: AuthDriver<auth::DefaultServerParameterProvider>,
    plain: ScramAuth,
    tls: Option<ScramAuth>,
}

impl Scram {
    pub(super) fn new(catalog: Arc<Catalog>, cert_pem: Option<&[u8]>) -> PgWireResult<Scram> {
        let source: Arc<dyn AuthSource> = Arc::new(RoleVerifiers {
            catalog,
            secrets: Default::default(),
        });
        let plain = ScramAuth::new(source);
        let tls = match cert_pem {
            Some(pem) => {
                let mut tls = plain.clone();
                tls.configure_certificate(pem)?;
                Some(tls)
            }
            None => None,
        };
        Ok(Scram {
            driver: AuthDriver::new(Default::default()),
            plain,
            tls,
        })
    }
}

/// Counts open sessions per role for CONNECTION LIMIT, and the listener's total.
#[derive(Default)]
pub(super) struct Sessions {
    open: Mutex<HashMap<Arc<str>, usize>>,
}

/// One counted session; dropping it (when the session's extensions go) uncounts it.
struct SessionSlot {
    sessions: Arc<Sessions>,
    role: Arc<str>,
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        let mut open = self.sessions.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.role) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.role);
            }
        }
    }
}

impl Sessions {
    /// Counts a session of `role` unless the role or the listener is full.
    fn admit(
        self: &Arc<Self>,
        role: &Arc<str>,
        role_limit: i32,
        listener_limit: usize,
    ) -> Result<SessionSlot, String> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let total: usize = open.values().sum();
        if total >= listener_limit {
            return Err("sorry, too many clients already".to_string());
        }
        let of_role = open.get(role).copied().unwrap_or(0);
        if role_limit >= 0 && of_role >= role_limit as usize {
            return Err(format!("too many connections for role \"{role}\""));
        }
        *open.entry(role.clone()).or_insert(0) += 1;
        Ok(SessionSlot {
            sessions: self.clone(),
            role: role.clone(),
        })
    }
}

fn fatal(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "FATAL".to_string(),
        code.to_string(),
        message,
    )))
}

fn password_failed(user: &str) -> PgWireError {
    fatal(
        "28P01",
        format!("password authentication failed for user \"{user}\""),
    )
}

#[async_trait]
impl StartupHandler for Handler {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                auth::protocol_negotiation(client, startup).await?;
                auth::save_startup_parameters_to_metadata(client, startup);
                let Some(user) = client.metadata().get(METADATA_USER).cloned() else {
                    return Err(fatal(
                        "28000",
                        "no PostgreSQL user name specified in startup packet".into(),
                    ));
                };
                if self.options.tls_required && !client.is_secure() {
                    return Err(fatal(
                        "28000",
                        format!(
                            "connection for user \"{user}\" refused: this server accepts only \
                             TLS connections (--tls-require); connect with sslmode=require"
                        ),
                    ));
                }
                match self.options.auth {
                    AuthMethod::Trust => self.log_in(client, &user, None).await,
                    AuthMethod::Password => {
                        let factory = match (&self.scram.tls, client.is_secure()) {
                            (Some(tls), true) => tls,
                            _ => &self.scram.plain,
                        };
                        let outcome = self
                            .scram
                            .driver
                            .begin_authentication(client, factory.create())
                            .await?;
                        debug_assert!(matches!(outcome, AuthOutcome::InProgress));
                        Ok(())
                    }
                }
            }
            PgWireFrontendMessage::PasswordMessageFamily(message) => {
                let user = client
                    .metadata()
                    .get(METADATA_USER)
                    .cloned()
                    .unwrap_or_default();
                match self
                    .scram
                    .driver
                    .advance_authentication(client, message)
                    .await
                {
                    Ok(AuthOutcome::InProgress) => Ok(()),
                    Ok(AuthOutcome::Authenticated { final_message, .. }) => {
                        self.log_in(client, &user, final_message).await
                    }
                    Err(e) => {
                        let from = client.socket_addr();
                        let reason = match &e {
                            PgWireError::InvalidPassword(_) => {
                                "password authentication failed".to_string()
                            }
                            other => other.to_string(),
                        };
                        self.db
                            .listeners
                            .login_failed("pg", &user, from.to_string(), reason);
                        // Every failure looks the same to the client (see the module doc).
                        Err(match e {
                            PgWireError::InvalidPassword(_) => {
                                tracing::warn!(
                                    "password authentication failed for user \"{user}\" from {from}"
                                );
                                password_failed(&user)
                            }
                            other => {
                                tracing::warn!(
                                    "authentication failed for user \"{user}\" from {from}: {other}"
                                );
                                match other {
                                    PgWireError::InvalidScramMessage(_)
                                    | PgWireError::InvalidSASLState => {
                                        fatal("08P01", format!("malformed SCRAM message: {other}"))
                                    }
                                    other => other,
                                }
                            }
                        })
                    }
                }
            }
            _ if matches!(
                client.state(),
                PgWireConnectionState::AuthenticationInProgress
            ) =>
            {
                Err(fatal(
                    "08P01",
                    "expected a password response during authentication".into(),
                ))
            }
            _ => Ok(()),
        }
    }
}

impl Handler {
    /// Finishes the start-up of an authenticated (or trusted) `user`: the role must exist and
    /// may log in, and its and the listener's connection limits must allow one more session.
    async fn log_in<C>(
        &self,
        client: &mut C,
        user: &str,
        final_message: Option<Authentication>,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let Some(role) = self.db.catalog.roles.get(user) else {
            // Trust only: password authentication of an unknown role failed already.
            return Err(fatal("28000", format!("role \"{user}\" does not exist")));
        };
        if !role.login {
            return Err(fatal(
                "28000",
                format!("role \"{user}\" is not permitted to log in"),
            ));
        }
        let name: Arc<str> = Arc::from(user);
        let slot = self
            .sessions
            .admit(&name, role.connection_limit, self.options.max_connections)
            .map_err(|message| fatal("53300", message))?;
        client.session_extensions().insert(slot);
        client.session_extensions().insert(SessionRole(name));
        if let Some(message) = final_message {
            use futures::SinkExt;
            client
                .send(PgWireBackendMessage::Authentication(message))
                .await?;
        }
        let (pid, secret_key) = self.pids.generate(client);
        client.set_pid_and_secret_key(pid, secret_key.clone());
        let application_name = client
            .metadata()
            .get("application_name")
            .cloned()
            .unwrap_or_default();
        let entry = self.db.sessions.register(
            pid,
            user,
            client.socket_addr().to_string(),
            application_name,
        );
        client.session_extensions().insert(entry);
        // The guard unregisters the handle when the session (and its extensions) ends.
        let (handle, guard) = self.connections.register(pid, secret_key);
        client.session_extensions().insert(handle);
        client.session_extensions().insert(guard);
        auth::finish_authentication(client, &self.parameters).await
    }
}

/// Hands pgwire's SCRAM exchange the stored verifier of the role logging in.
struct RoleVerifiers {
    catalog: Arc<Catalog>,
    secrets: crate::auth::scram::LoginSecrets,
}

impl Debug for RoleVerifiers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RoleVerifiers")
    }
}

#[async_trait]
impl AuthSource for RoleVerifiers {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        Err(PgWireError::InvalidPassword(
            login.user().unwrap_or_default().to_string(),
        ))
    }

    async fn get_scram_secret(&self, login: &LoginInfo) -> PgWireResult<(ScramSecret, Option<()>)> {
        let user = login.user().unwrap_or_default();
        let (secret, _) = self
            .secrets
            .secret(&self.catalog.roles, user)
            .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
        Ok((secret, None))
    }
}
