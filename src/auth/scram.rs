//! SCRAM-SHA-256 verifiers: what Weir stores instead of a password, in Postgres's own text form
//! (`SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, base64 fields), so a verifier
//! copied from `pg_authid.rolpassword` works here and the reverse.
//!
//! A verifier lets the server check a client's SCRAM proof without being able to recover the
//! password (RFC 5802/7677); pgwire runs the exchange itself from the stored keys.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use pgwire::api::auth::sasl::scram::{ScramSecret, gen_salted_password};

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
