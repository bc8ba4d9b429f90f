//! The connection loop in front of pgwire's decoder: every frontend message is read whole and
//! checked as bytes before pgwire decodes it.
//!
//! pgwire decodes a message's fields from its read buffer, not from the message's frame, so a
//! message shorter than its fields (a Bind of `B\0\0\0\6\0\0`) reads past its end into the next
//! message or panics, dropping the connection without a word; and it turns invalid UTF-8 into
//! U+FFFD, and a negative parameter length into NULL, before Weir sees them. We cannot change
//! pgwire, so this loop (pgwire's own, with a check before each message) owns the read side:
//! it reads until a whole message is buffered, checks it, and only then lets pgwire decode it.
//!
//! What the client gets, as in Postgres:
//! - a length outside the limits (`config::PG_*_MESSAGE_BYTES_MAX`), an unknown message type, or
//!   a message whose fields run past its length or stop short of it: FATAL 08P01, and the
//!   connection closes (the two sides no longer agree where messages begin);
//! - invalid UTF-8 in a string: ERROR 22021 `invalid byte sequence for encoding "UTF8"`;
//! - a Bind with a format code other than 0 or 1: ERROR 22023 `unsupported format code`; with a
//!   parameter length below -1, format codes that match neither one nor every parameter, or
//!   more parameters than its statement has: ERROR 08P01.
//!
//! After an ERROR the session goes on (after the next Sync, for the extended protocol).

use std::io;
use std::sync::Arc;

use bytes::{Buf, BytesMut};
use futures::StreamExt;
use pgwire::api::store::PortalStore;
use pgwire::api::{
    ClientInfo, ClientPortalStore, DEFAULT_NAME, ErrorHandler, PgWireConnectionState,
    PgWireServerHandlers,
};
use pgwire::error::{ErrorInfo, PgWireError};
use pgwire::messages::PgWireFrontendMessage;
use pgwire::tokio::server::{MaybeTls, negotiate_tls, process_error, process_message};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::Handlers;
use crate::config::{PG_LARGE_MESSAGE_BYTES_MAX, PG_SMALL_MESSAGE_BYTES_MAX};

/// Message types that may be long (statements, parameters, COPY data, passwords); the others
/// are held to [`PG_SMALL_MESSAGE_BYTES_MAX`], as in Postgres.
const LARGE_TYPES: &[u8] = b"QPBdfp";

/// Serves one client connection until it ends.
pub(super) async fn serve(socket: TcpStream, handlers: Arc<Handlers>) -> io::Result<()> {
    let startup = tokio::time::sleep(handlers.handler.options.authentication_timeout);
    tokio::pin!(startup);
    let negotiated = tokio::select! {
        _ = &mut startup => return Ok(()),
        socket = negotiate_tls(socket, handlers.handler.options.tls.as_ref().map(|t| t.acceptor.clone())) => socket?,
    };
    let Some(socket) = negotiated else {
        return Ok(());
    };
    // pgwire's framed socket reads from the connection before decoding when its buffer was
    // empty when it was built, as it is after a TLS handshake: with the start-up packet already
    // read by `fill` below, it would wait for bytes the client never sends. So the start-up
    // packet is read first and the socket rebuilt around it (a buffer that holds data is
    // decoded first).
    let mut parts = socket.into_parts();
    if parts.read_buf.is_empty() {
        let filled = tokio::select! {
            _ = &mut startup => return Ok(()),
            filled = fill(&mut parts.io, &mut parts.read_buf, true) => filled?,
        };
        if matches!(filled, Filled::Closed) {
            return Ok(());
        }
    }
    let mut socket = tokio_util::codec::Framed::from_parts(parts);
    // The handler itself rather than `PgWireServerHandlers`' opaque types, so that the
    // statements pgwire stores are known to be `Prepared` (Bind's parameter count).
    let handler = handlers.handler.clone();
    let cancel_handler = handlers.cancel.clone();
    let error_handler = handlers.error_handler();
    loop {
        let state = socket.state();
        let starting = matches!(state, PgWireConnectionState::AwaitingStartup);
        // The read buffer is taken out of pgwire's framing while a message is read into it.
        let mut buffer = std::mem::take(socket.read_buffer_mut());
        let filled = if matches!(
            state,
            PgWireConnectionState::AwaitingStartup
                | PgWireConnectionState::AuthenticationInProgress
        ) {
            tokio::select! {
                _ = &mut startup => return Ok(()),
                filled = fill(socket.get_mut(), &mut buffer, starting) => filled?,
            }
        } else {
            fill(socket.get_mut(), &mut buffer, starting).await?
        };
        *socket.read_buffer_mut() = buffer;
        let len = match filled {
            Filled::Closed => break,
            Filled::BadLength(error) => {
                // `true`: no ReadyForQuery after a FATAL error.
                process_error(&mut socket, error, true).await?;
                break;
            }
            Filled::Message(len) => len,
        };
        let frame = &socket.read_buffer()[..len];
        let kind = frame[0];
        // After an error in the extended protocol, messages up to the Sync are skipped
        // undecoded (a Terminate still ends the session).
        if !starting
            && matches!(state, PgWireConnectionState::AwaitingSync)
            && !b"SX".contains(&kind)
        {
            socket.read_buffer_mut().advance(len);
            continue;
        }
        let checked = if starting { Ok(None) } else { check(frame) };
        let refusal = match checked {
            Ok(Some(bind)) => bind_overflow(socket.portal_store(), &bind)
                .map(|info| Refusal::Error(Box::new(info))),
            Ok(None) => None,
            Err(refusal) => Some(refusal),
        };
        if let Some(refusal) = refusal {
            socket.read_buffer_mut().advance(len);
            let (fatal, info) = match refusal {
                Refusal::Fatal(info) => (true, info),
                Refusal::Error(info) => (false, info),
            };
            // After an error in the extended protocol the client gets ReadyForQuery at its
            // Sync; after a FATAL one, never.
            let wait_for_sync = fatal || kind != b'Q';
            let error = PgWireError::UserError(info);
            process_error(&mut socket, error, wait_for_sync).await?;
            if fatal {
                break;
            }
            continue;
        }
        // From here on, pgwire's own loop (`process_socket`).
        let Some(Ok(message)) = socket.next().await else {
            break;
        };
        if matches!(message, PgWireFrontendMessage::Terminate(_)) {
            break;
        }
        let is_extended_query = match socket.state() {
            PgWireConnectionState::CopyInProgress(is_extended_query) => is_extended_query,
            _ => message.is_extended_query(),
        };
        let is_cancel_request = matches!(message, PgWireFrontendMessage::CancelRequest(_));
        // Statements run as the session's role once it has logged in.
        let role = socket
            .session_extensions()
            .get::<super::auth::SessionRole>()
            .map(|role| role.0.clone());
        let processing = process_message(
            message,
            &mut socket,
            handler.clone(),
            handler.clone(),
            handler.clone(),
            handler.clone(),
            cancel_handler.clone(),
        );
        let processed = match role {
            Some(role) => crate::auth::CURRENT_USER.scope(role, processing).await,
            None => processing.await,
        };
        if let Err(mut e) = processed {
            error_handler.on_error(&socket, &mut e);
            let is_fatal = e.is_fatal();
            process_error(&mut socket, e, is_extended_query).await?;
            if is_fatal {
                break;
            }
        }
        if is_cancel_request {
            break;
        }
    }
    Ok(())
}

/// What reading the next message found.
enum Filled {
    /// A whole message of this many bytes (type byte included) is at the buffer's start.
    Message(usize),
    /// The client closed the connection.
    Closed,
    /// The message claims a length outside the limits; nothing after it can be trusted.
    BadLength(PgWireError),
}

/// Reads until `buffer` starts with a whole message: a start-up packet (a length, no type
/// byte) when `starting`, else a typed message.
async fn fill(io: &mut MaybeTls, buffer: &mut BytesMut, starting: bool) -> io::Result<Filled> {
    let header = if starting { 4 } else { 5 };
    loop {
        if buffer.len() >= header {
            let declared = i32::from_be_bytes([
                buffer[header - 4],
                buffer[header - 3],
                buffer[header - 2],
                buffer[header - 1],
            ]);
            let (least, most, what) = if starting {
                (
                    8,
                    PG_SMALL_MESSAGE_BYTES_MAX,
                    "invalid length of startup packet",
                )
            } else if LARGE_TYPES.contains(&buffer[0]) {
                (4, PG_LARGE_MESSAGE_BYTES_MAX, "invalid message length")
            } else {
                (4, PG_SMALL_MESSAGE_BYTES_MAX, "invalid message length")
            };
            if declared < least || declared as usize > most {
                return Ok(Filled::BadLength(fatal(what.to_string())));
            }
            let len = header - 4 + declared as usize;
            if buffer.len() >= len {
                return Ok(Filled::Message(len));
            }
            buffer.reserve(len - buffer.len());
        } else {
            buffer.reserve(header);
        }
        if io.read_buf(buffer).await? == 0 {
            return Ok(Filled::Closed);
        }
    }
}

/// Why a message is refused.
enum Refusal {
    /// The session ends (FATAL).
    Fatal(Box<ErrorInfo>),
    /// This message fails; the session goes on.
    Error(Box<ErrorInfo>),
}

fn fatal(message: String) -> PgWireError {
    PgWireError::UserError(fatal_info(message))
}

fn fatal_info(message: String) -> Box<ErrorInfo> {
    Box::new(ErrorInfo::new(
        "FATAL".to_string(),
        "08P01".to_string(),
        message,
    ))
}

fn error(code: &str, message: String) -> ErrorInfo {
    ErrorInfo::new("ERROR".to_string(), code.to_string(), message)
}

/// A Bind's statement and how many parameters it supplies, to check against the statement.
struct BindTarget {
    statement: String,
    parameters: usize,
}

/// ERROR 08P01 when a Bind supplies more parameters than its statement has.
fn bind_overflow<P: PortalStore<Statement = super::Prepared>>(
    store: &P,
    bind: &BindTarget,
) -> Option<ErrorInfo> {
    let key = if bind.statement.is_empty() {
        DEFAULT_NAME
    } else {
        &bind.statement
    };
    let entry = store.get_statement(key)?;
    let stored = entry.value()?;
    let required = stored
        .statement
        .param_types
        .len()
        .max(stored.parameter_types.len());
    (bind.parameters > required).then(|| {
        error(
            "08P01",
            format!(
                "bind message supplies {} parameters, but prepared statement \"{}\" requires {required}",
                bind.parameters, bind.statement
            ),
        )
    })
}

/// Reads a message's fields, never past its end.
struct Fields<'a> {
    rest: &'a [u8],
    /// The first invalid value met (the message's structure is still read to its end, since a
    /// malformed structure is the graver fault).
    invalid: Option<ErrorInfo>,
}

/// The message's fields ran past its end.
struct Short;

impl<'a> Fields<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Short> {
        if self.rest.len() < n {
            return Err(Short);
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn i16(&mut self) -> Result<i16, Short> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self) -> Result<i32, Short> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A count that cannot be negative.
    fn count(&mut self) -> Result<usize, Short> {
        usize::try_from(self.i16()?).map_err(|_| Short)
    }

    fn invalid(&mut self, info: ErrorInfo) {
        self.invalid.get_or_insert(info);
    }

    /// A NUL-terminated string, which must be UTF-8.
    fn string(&mut self) -> Result<&'a str, Short> {
        let end = self.rest.iter().position(|&b| b == 0).ok_or(Short)?;
        let bytes = self.take(end + 1)?;
        match std::str::from_utf8(&bytes[..end]) {
            Ok(s) => Ok(s),
            Err(e) => {
                let bad = &bytes[e.valid_up_to()..end];
                let bad = &bad[..e.error_len().unwrap_or(bad.len()).min(bad.len())];
                let shown: Vec<String> = bad.iter().map(|b| format!("0x{b:02x}")).collect();
                self.invalid(error(
                    "22021",
                    format!(
                        "invalid byte sequence for encoding \"UTF8\": {}",
                        shown.join(" ")
                    ),
                ));
                Ok("")
            }
        }
    }

    /// A format code, 0 (text) or 1 (binary).
    fn format_code(&mut self) -> Result<(), Short> {
        let code = self.i16()?;
        if code != 0 && code != 1 {
            self.invalid(error("22023", format!("unsupported format code: {code}")));
        }
        Ok(())
    }

    /// Describe and Close name a statement ('S') or a portal ('P').
    fn target(&mut self, what: &str) -> Result<(), Short> {
        let target = self.take(1)?[0];
        if target != b'S' && target != b'P' {
            self.invalid(error(
                "08P01",
                format!("invalid {what} message subtype {target}"),
            ));
        }
        self.string().map(|_| ())
    }
}

/// Checks a whole typed message (type byte, length, body). A Bind that passes is returned with
/// its statement, whose parameter count the caller checks.
fn check(frame: &[u8]) -> Result<Option<BindTarget>, Refusal> {
    let kind = frame[0];
    let mut fields = Fields {
        rest: &frame[5..],
        invalid: None,
    };
    let parsed = match kind {
        b'Q' => fields.string().map(|_| None),
        b'P' => parse(&mut fields).map(|_| None),
        b'B' => bind(&mut fields).map(Some),
        b'D' => fields.target("DESCRIBE").map(|_| None),
        b'C' => fields.target("CLOSE").map(|_| None),
        b'E' => fields.string().and_then(|_| fields.i32()).map(|_| None),
        b'f' => fields.take(frame.len() - 5).map(|_| None),
        b'S' | b'H' | b'X' | b'c' => Ok(None),
        // COPY data and passwords are read by pgwire as they come.
        b'd' | b'p' => return Ok(None),
        other => {
            return Err(Refusal::Fatal(fatal_info(format!(
                "invalid frontend message type {other}"
            ))));
        }
    };
    let Ok(bind) = parsed else {
        return Err(Refusal::Fatal(fatal_info(
            "insufficient data left in message".to_string(),
        )));
    };
    if !fields.rest.is_empty() {
        return Err(Refusal::Fatal(fatal_info(
            "invalid message format".to_string(),
        )));
    }
    match fields.invalid {
        Some(info) => Err(Refusal::Error(Box::new(info))),
        None => Ok(bind),
    }
}

fn parse(fields: &mut Fields) -> Result<(), Short> {
    fields.string()?;
    fields.string()?;
    let types = fields.count()?;
    fields.take(types * 4)?;
    Ok(())
}

fn bind(fields: &mut Fields) -> Result<BindTarget, Short> {
    fields.string()?;
    let statement = fields.string()?.to_string();
    let formats = fields.count()?;
    for _ in 0..formats {
        fields.format_code()?;
    }
    let parameters = fields.count()?;
    if formats > 1 && formats != parameters {
        fields.invalid(error(
            "08P01",
            format!("bind message has {formats} parameter formats but {parameters} parameters"),
        ));
    }
    for i in 1..=parameters {
        match fields.i32()? {
            -1 => {}
            len if len < -1 => fields.invalid(error(
                "08P01",
                format!("bind message has an invalid length ({len}) for parameter {i}"),
            )),
            len => {
                fields.take(len as usize)?;
            }
        }
    }
    let results = fields.count()?;
    for _ in 0..results {
        fields.format_code()?;
    }
    Ok(BindTarget {
        statement,
        parameters,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![kind];
        out.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    fn code(outcome: Result<Option<BindTarget>, Refusal>) -> String {
        match outcome {
            Ok(_) => "ok".into(),
            Err(Refusal::Fatal(info)) => format!("FATAL {} {}", info.code, info.message),
            Err(Refusal::Error(info)) => format!("ERROR {} {}", info.code, info.message),
        }
    }

    #[test]
    fn malformed_messages_are_refused() {
        let bind = |formats: &[i16], lengths: &[i32]| {
            let mut body = b"\0\0".to_vec();
            body.extend((formats.len() as i16).to_be_bytes());
            formats.iter().for_each(|f| body.extend(f.to_be_bytes()));
            body.extend((lengths.len() as i16).to_be_bytes());
            for &len in lengths {
                body.extend(len.to_be_bytes());
                body.extend(std::iter::repeat_n(b'1', len.max(0) as usize));
            }
            body.extend(0i16.to_be_bytes());
            message(b'B', &body)
        };
        assert_eq!(code(check(&bind(&[0], &[1]))), "ok");
        assert_eq!(
            code(check(b"B\0\0\0\x06\0\0")),
            "FATAL 08P01 insufficient data left in message"
        );
        assert_eq!(
            code(check(&message(b'S', b"x"))),
            "FATAL 08P01 invalid message format"
        );
        assert_eq!(
            code(check(&bind(&[7], &[1]))),
            "ERROR 22023 unsupported format code: 7"
        );
        assert_eq!(
            code(check(&bind(&[0], &[-5]))),
            "ERROR 08P01 bind message has an invalid length (-5) for parameter 1"
        );
        assert_eq!(
            code(check(&bind(&[0, 1], &[1]))),
            "ERROR 08P01 bind message has 2 parameter formats but 1 parameters"
        );
        assert_eq!(
            code(check(&message(b'Q', b"SELECT '\xff\xfe'\0"))),
            "ERROR 22021 invalid byte sequence for encoding \"UTF8\": 0xff"
        );
        assert_eq!(
            code(check(&message(b'Q', b"SELECT 1"))),
            "FATAL 08P01 insufficient data left in message"
        );
        assert_eq!(
            code(check(&message(b'D', b"Xname\0"))),
            "ERROR 08P01 invalid DESCRIBE message subtype 88"
        );
        assert_eq!(
            code(check(&message(b'F', b""))),
            "FATAL 08P01 invalid frontend message type 70"
        );
    }
}
