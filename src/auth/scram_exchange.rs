//! The server side of a SCRAM-SHA-256 exchange (RFC 5802, RFC 7677), run from a stored
//! verifier, for a listener whose protocol carries the SASL messages itself (Kafka's
//! SaslAuthenticate). The Postgres wire runs pgwire's exchange instead.
//!
//! Two round trips: the client's first message names the user and a nonce, the server answers
//! with the salt, iterations and its own nonce; the client's final message carries its proof,
//! which the server checks against StoredKey and answers with its own signature (so the client
//! knows the server holds the verifier too). No channel binding: a client asking for it
//! (`p=`) is refused. An unknown user runs the same exchange against a stand-in verifier and
//! fails at the proof, so a client cannot tell which users exist.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use pgwire::api::auth::sasl::scram::ScramSecret;
use ring::{digest, hmac};

/// Random bytes in the server's half of the nonce.
const SERVER_NONCE_BYTES: usize = 18;
/// Longest client message accepted, in bytes (a SCRAM message is well under 1 KiB).
const MESSAGE_BYTES_MAX: usize = 4096;

/// Why an exchange failed: `Malformed` for messages that break the protocol, `Refused` for a
/// wrong proof (wrong password or unknown user). The text is for the server's log; a client is
/// told only that authentication failed.
#[derive(Debug, PartialEq, Eq)]
pub enum ScramError {
    Malformed(String),
    Refused,
}

fn malformed(what: &str) -> ScramError {
    ScramError::Malformed(what.to_string())
}

/// An exchange between the server's first message and the client's proof.
pub struct ScramExchange {
    user: String,
    /// base64 of the client's GS2 header, which its final message must repeat (`c=`).
    channel_binding: String,
    nonce: String,
    /// client-first-message-bare "," server-first-message "," — the AuthMessage up to the
    /// client's final message.
    auth_message_head: String,
    stored_key: Vec<u8>,
    server_key: Vec<u8>,
}

/// The user a client-first-message names (RFC 5802's `saslname`: `=2C` is `,`, `=3D` is `=`),
/// before any verifier is looked up.
pub fn client_first_user(message: &[u8]) -> Result<String, ScramError> {
    Ok(parse_client_first(message)?.user)
}

struct ClientFirst<'a> {
    gs2_header: &'a str,
    bare: &'a str,
    user: String,
    nonce: &'a str,
}

fn parse_client_first(message: &[u8]) -> Result<ClientFirst<'_>, ScramError> {
    if message.len() > MESSAGE_BYTES_MAX {
        return Err(malformed("client-first-message too long"));
    }
    let text = std::str::from_utf8(message).map_err(|_| malformed("not UTF-8"))?;
    let (gs2_header, bare) = split_gs2_header(text)?;
    let mut fields = bare.split(',');
    let user = fields
        .next()
        .and_then(|f| f.strip_prefix("n="))
        .ok_or_else(|| malformed("no n= attribute"))?;
    let nonce = fields
        .next()
        .and_then(|f| f.strip_prefix("r="))
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_graphic() && b != b','))
        .ok_or_else(|| malformed("no r= attribute"))?;
    // Extensions (Kafka's tokenauth=true for delegation tokens) are not supported.
    if fields.next().is_some() {
        return Err(malformed("SCRAM extensions are not supported"));
    }
    Ok(ClientFirst {
        gs2_header,
        bare,
        user: decode_saslname(user)?,
        nonce,
    })
}

/// Splits `gs2-header client-first-message-bare`; the header is `n,,` or `y,,` (the client
/// could bind the channel but thinks the server cannot), optionally with `a=<authzid>`.
fn split_gs2_header(text: &str) -> Result<(&str, &str), ScramError> {
    let flag_end = text.find(',').ok_or_else(|| malformed("no GS2 header"))?;
    match &text[..flag_end] {
        "n" | "y" => {}
        flag if flag.starts_with("p=") => {
            return Err(malformed("channel binding is not supported here"));
        }
        _ => return Err(malformed("bad GS2 channel binding flag")),
    }
    let authzid_end = text[flag_end + 1..]
        .find(',')
        .map(|i| flag_end + 1 + i)
        .ok_or_else(|| malformed("no GS2 header"))?;
    let authzid = &text[flag_end + 1..authzid_end];
    if !authzid.is_empty() && !authzid.starts_with("a=") {
        return Err(malformed("bad GS2 authzid"));
    }
    Ok((&text[..=authzid_end], &text[authzid_end + 1..]))
}

fn decode_saslname(name: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        match rest.get(at + 1..at + 3) {
            Some("2C") => out.push(','),
            Some("3D") => out.push('='),
            _ => return Err(malformed("bad escape in the user name")),
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    if out.is_empty() {
        return Err(malformed("empty user name"));
    }
    Ok(out)
}

impl ScramExchange {
    /// Reads the client's first message and answers with the server's first, against
    /// `secret` (the verifier of the user the message names, or a stand-in).
    pub fn start(
        client_first: &[u8],
        secret: &ScramSecret,
    ) -> Result<(ScramExchange, Vec<u8>), ScramError> {
        let first = parse_client_first(client_first)?;
        let ScramSecret::Verifier {
            salt,
            iterations,
            stored_key,
            server_key,
        } = secret
        else {
            return Err(malformed("no verifier"));
        };
        let mut random = [0u8; SERVER_NONCE_BYTES];
        getrandom02::getrandom(&mut random)
            .map_err(|e| ScramError::Malformed(format!("no randomness for a nonce: {e}")))?;
        let nonce = format!("{}{}", first.nonce, STANDARD.encode(random));
        let server_first = format!("r={nonce},s={},i={iterations}", STANDARD.encode(salt));
        let exchange = ScramExchange {
            user: first.user,
            channel_binding: STANDARD.encode(first.gs2_header),
            nonce,
            auth_message_head: format!("{},{server_first},", first.bare),
            stored_key: stored_key.clone(),
            server_key: server_key.clone(),
        };
        Ok((exchange, server_first.into_bytes()))
    }

    /// The user the exchange authenticates.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// Checks the client's proof; on success, the server's final message (`v=<signature>`).
    pub fn finish(self, client_final: &[u8]) -> Result<Vec<u8>, ScramError> {
        if client_final.len() > MESSAGE_BYTES_MAX {
            return Err(malformed("client-final-message too long"));
        }
        let text = std::str::from_utf8(client_final).map_err(|_| malformed("not UTF-8"))?;
        let (without_proof, proof) = text
            .rsplit_once(",p=")
            .ok_or_else(|| malformed("no p= attribute"))?;
        let mut fields = without_proof.split(',');
        if fields.next().and_then(|f| f.strip_prefix("c=")) != Some(&self.channel_binding) {
            return Err(malformed(
                "channel binding data differs from the GS2 header",
            ));
        }
        if fields.next().and_then(|f| f.strip_prefix("r=")) != Some(&self.nonce) {
            return Err(malformed("nonce differs from the server's"));
        }
        let proof = STANDARD
            .decode(proof)
            .map_err(|_| malformed("proof is not base64"))?;
        let auth_message = format!("{}{without_proof}", self.auth_message_head);
        let client_signature = hmac_sha256(&self.stored_key, auth_message.as_bytes());
        if proof.len() != client_signature.len() {
            return Err(ScramError::Refused);
        }
        let client_key: Vec<u8> = proof
            .iter()
            .zip(&client_signature)
            .map(|(p, s)| p ^ s)
            .collect();
        let computed = digest::digest(&digest::SHA256, &client_key);
        if !equal_in_constant_time(computed.as_ref(), &self.stored_key) {
            return Err(ScramError::Refused);
        }
        let signature = hmac_sha256(&self.server_key, auth_message.as_bytes());
        Ok(format!("v={}", STANDARD.encode(signature)).into_bytes())
    }
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data)
        .as_ref()
        .to_vec()
}

/// Whether `a == b`, in time that depends only on their lengths.
pub(crate) fn equal_in_constant_time(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client's side, written from RFC 5802 §3 independently of the server code above.
    fn client_final(password: &str, client_first_bare: &str, server_first: &str) -> String {
        let fields: Vec<&str> = server_first.split(',').collect();
        let nonce = fields[0].strip_prefix("r=").unwrap();
        let salt = STANDARD
            .decode(fields[1].strip_prefix("s=").unwrap())
            .unwrap();
        let iterations: usize = fields[2].strip_prefix("i=").unwrap().parse().unwrap();
        let salted =
            pgwire::api::auth::sasl::scram::gen_salted_password(password, &salt, iterations);
        let client_key = hmac_sha256(&salted, b"Client Key");
        let stored_key = digest::digest(&digest::SHA256, &client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let signature = hmac_sha256(stored_key.as_ref(), auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(k, s)| k ^ s)
            .collect();
        format!("{without_proof},p={}", STANDARD.encode(proof))
    }

    fn secret(password: &str) -> ScramSecret {
        crate::auth::scram::parse(&crate::auth::scram::verifier_with_salt(
            password,
            b"0123456789abcdef",
            4096,
        ))
        .unwrap()
    }

    fn run(password: &str, stored: &str) -> Result<Vec<u8>, ScramError> {
        let bare = "n=alice,r=clientnonce";
        let (exchange, server_first) =
            ScramExchange::start(format!("n,,{bare}").as_bytes(), &secret(stored))?;
        assert_eq!(exchange.user(), "alice");
        let server_first = String::from_utf8(server_first).unwrap();
        assert!(server_first.starts_with("r=clientnonce"), "{server_first}");
        exchange.finish(client_final(password, bare, &server_first).as_bytes())
    }

    #[test]
    fn the_right_password_passes_and_the_server_signs() {
        let reply = String::from_utf8(run("secret", "secret").unwrap()).unwrap();
        assert!(reply.starts_with("v=") && reply.len() > 40, "{reply}");
    }

    #[test]
    fn a_wrong_password_is_refused() {
        assert_eq!(run("guess", "secret"), Err(ScramError::Refused));
    }

    #[test]
    fn malformed_messages_and_channel_binding_are_refused() {
        for first in [
            "p=tls-server-end-point,,n=alice,r=x",
            "x,,n=alice,r=x",
            "n,,r=x",
            "n,,n=alice",
            "n,,n=alice,r=x,tokenauth=true",
            "n,,n=al=ice,r=x",
            "n,b,n=alice,r=x",
        ] {
            assert!(
                matches!(
                    ScramExchange::start(first.as_bytes(), &secret("s")),
                    Err(ScramError::Malformed(_))
                ),
                "{first}"
            );
        }
        let (exchange, _) = ScramExchange::start(b"n,,n=alice,r=x", &secret("s")).unwrap();
        assert!(matches!(
            exchange.finish(b"c=biws,r=other,p=AAAA"),
            Err(ScramError::Malformed(_))
        ));
    }

    #[test]
    fn user_names_are_unescaped() {
        assert_eq!(client_first_user(b"n,,n=a=2Cb=3Dc,r=x").unwrap(), "a,b=c");
        assert_eq!(client_first_user(b"y,a=bob,n=bob,r=x").unwrap(), "bob");
    }
}
