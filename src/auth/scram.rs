//! SCRAM-SHA-256 verifiers: what Weir stores instead of a password, in Postgres's own text form
//! (`SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, base64 fields), so a verifier
//! copied from `pg_authid.rolpassword` works here and the reverse.
//!
//! A verifier lets the server check a client's SCRAM proof without being able to recover the
//! password (RFC 5802/7677); pgwire runs the exchange itself from the stored keys on the
//! Postgres wire, [`super::scram_exchange`] on the Kafka listener.

use std::hash::{BuildHasher, RandomState};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use pgwire::api::auth::sasl::scram::{ScramSecret, gen_salted_password};

use super::Roles;
use crate::error::{Result, WeirError};

/// PBKDF2 rounds for a new verifier: Postgres's default (`scram_iterations`).
pub const SCRAM_ITERATIONS: usize = 4096;
/// Random salt per verifier, in bytes (Postgres's length).
const SALT_BYTES: usize = 16;
const PREFIX: &str = "SCRAM-SHA-256$";

/// A new verifier for `password`, with a fresh random salt.
pub fn verifier(password: &str) -> Result<String> {
    let mut salt = [0u8; SALT_BYTES];
    getrandom02::getrandom(&mut salt)
        .map_err(|e| WeirError::internal(format!("no randomness for a password salt: {e}")))?;
    Ok(verifier_with_salt(password, &salt, SCRAM_ITERATIONS))
}

pub(crate) fn verifier_with_salt(password: &str, salt: &[u8], iterations: usize) -> String {
    let salted = gen_salted_password(password, salt, iterations);
    match ScramSecret::verifier_from_salted_password(salt.to_vec(), salted, iterations) {
        ScramSecret::Verifier {
            salt,
            iterations,
            stored_key,
            server_key,
        } => format!(
            "{PREFIX}{iterations}:{}${}:{}",
            STANDARD.encode(salt),
            STANDARD.encode(stored_key),
            STANDARD.encode(server_key)
        ),
        ScramSecret::SaltedPassword { .. } => unreachable!("verifier_from_salted_password"),
    }
}

/// Whether `text` is already a verifier (Postgres stores a `PASSWORD 'SCRAM-SHA-256$...'` as
/// given rather than hashing it again).
pub fn is_verifier(text: &str) -> bool {
    parse(text).is_some()
}

/// The stored keys of a verifier, for pgwire's SCRAM exchange; None when it is not one.
pub fn parse(text: &str) -> Option<ScramSecret> {
    let rest = text.strip_prefix(PREFIX)?;
    let (iterations_salt, keys) = rest.split_once('$')?;
    let (iterations, salt) = iterations_salt.split_once(':')?;
    let (stored_key, server_key) = keys.split_once(':')?;
    let iterations: usize = iterations.parse().ok().filter(|&i| i > 0)?;
    let decode = |field: &str| STANDARD.decode(field).ok();
    let (stored_key, server_key) = (decode(stored_key)?, decode(server_key)?);
    // SHA-256 output: anything else cannot come from this mechanism.
    if stored_key.len() != 32 || server_key.len() != 32 {
        return None;
    }
    Some(ScramSecret::Verifier {
        salt: decode(salt)?,
        iterations,
        stored_key,
        server_key,
    })
}

/// The verifiers logins are checked against: a role's own, or a stand-in for a role that
/// does not exist or has no password, so that its exchange goes on as usual and fails at the
/// proof (no key matches a proof computed from a random key) and a client cannot tell which
/// roles exist.
pub struct LoginSecrets {
    /// Salts a stand-in verifier, so that the same name always gets the same salt (as a real
    /// role would).
    mock_salt: RandomState,
}

impl Default for LoginSecrets {
    fn default() -> Self {
        LoginSecrets {
            mock_salt: RandomState::new(),
        }
    }
}

impl LoginSecrets {
    /// The verifier `user` is checked against, and whether it is the role's own.
    pub fn secret(&self, roles: &Roles, user: &str) -> Result<(ScramSecret, bool)> {
        let stored = roles
            .get(user)
            .and_then(|role| role.password)
            .and_then(|verifier| parse(&verifier));
        if let Some(secret) = stored {
            return Ok((secret, true));
        }
        let half = |n: u8| self.mock_salt.hash_one((n, user)).to_le_bytes();
        let salt = [half(0), half(1)].concat();
        let mut keys = [0u8; 64];
        getrandom02::getrandom(&mut keys)
            .map_err(|e| WeirError::internal(format!("no randomness for a stand-in key: {e}")))?;
        let secret = ScramSecret::Verifier {
            salt,
            iterations: SCRAM_ITERATIONS,
            stored_key: keys[..32].to_vec(),
            server_key: keys[32..].to_vec(),
        };
        Ok((secret, false))
    }
}

/// Whether `password` is the one `secret` was made from (SASL PLAIN): the same PBKDF2 work as
/// a SCRAM login, whatever the answer.
pub fn password_matches(secret: &ScramSecret, password: &str) -> bool {
    let ScramSecret::Verifier {
        salt,
        iterations,
        stored_key,
        ..
    } = secret
    else {
        return false;
    };
    let salted = gen_salted_password(password, salt, *iterations);
    match ScramSecret::verifier_from_salted_password(salt.clone(), salted, *iterations) {
        ScramSecret::Verifier {
            stored_key: computed,
            ..
        } => super::scram_exchange::equal_in_constant_time(&computed, stored_key),
        ScramSecret::SaltedPassword { .. } => false,
    }
}

/// Checks a role's plain password (SASL PLAIN, HTTP Basic): the password must be the one
/// its verifier was made from, and the role must exist and may log in. A role without a
/// password is checked against a stand-in, so the PBKDF2 work (and the time the answer takes)
/// is the same either way. The error is the reason, for the log (not for the client).
pub fn check_plain_login(
    secrets: &LoginSecrets,
    roles: &Roles,
    user: &str,
    password: &str,
) -> std::result::Result<(), String> {
    let matches = match secrets.secret(roles, user) {
        Ok((secret, own)) => password_matches(&secret, password) && own,
        Err(e) => return Err(e.to_string()),
    };
    if !matches {
        return Err("wrong password, or no such role with a password".to_string());
    }
    may_log_in(roles, user)
}

/// A role whose password was right may still not log in.
pub fn may_log_in(roles: &Roles, user: &str) -> std::result::Result<(), String> {
    match roles.get(user) {
        Some(role) if role.login => Ok(()),
        Some(_) => Err(format!("role \"{user}\" is not permitted to log in")),
        None => Err(format!("role \"{user}\" does not exist")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The verifier of password `secret` with salt `saltsaltsaltsalt`, computed independently
    /// from RFC 5802 with Python's hashlib and hmac (pbkdf2_hmac, HMAC "Client Key" then SHA-256,
    /// HMAC "Server Key").
    const EXPECTED: &str = "SCRAM-SHA-256$4096:c2FsdHNhbHRzYWx0c2FsdA==$\
        Ce3wZiZ+yIBCjltccfRiqM0+XDsLE3qPdkEeZKe3hus=:k3q4nlLsA09ST5FLo9zNmfyXR+Ci1J4KmBK5JRVSxeI=";

    #[test]
    fn verifiers_match_rfc_5802_and_parse_back() {
        let text = verifier_with_salt("secret", b"saltsaltsaltsalt", 4096);
        assert_eq!(text, EXPECTED);
        let Some(ScramSecret::Verifier {
            salt, iterations, ..
        }) = parse(&text)
        else {
            panic!("not parsed: {text}");
        };
        assert_eq!(
            (salt.as_slice(), iterations),
            (&b"saltsaltsaltsalt"[..], 4096)
        );
    }

    #[test]
    fn plain_passwords_are_checked_against_the_verifier() {
        let secret = parse(&verifier_with_salt("secret", b"saltsaltsaltsalt", 4096)).unwrap();
        assert!(password_matches(&secret, "secret"));
        assert!(!password_matches(&secret, "Secret"));
    }

    #[test]
    fn fresh_verifiers_differ_by_salt() {
        let (a, b) = (verifier("pw").unwrap(), verifier("pw").unwrap());
        assert_ne!(a, b);
        assert!(is_verifier(&a) && is_verifier(&b));
    }

    #[test]
    fn other_text_is_not_a_verifier() {
        for text in [
            "secret",
            "md5abcdef",
            "SCRAM-SHA-256$",
            "SCRAM-SHA-256$0:c2FsdA==$AAAA:AAAA",
            "SCRAM-SHA-256$4096:c2FsdA==$AAAA:AAAA",
        ] {
            assert!(!is_verifier(text), "{text}");
        }
    }
}
