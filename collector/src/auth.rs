//! Device and API tokens: 256 random bits from the OS, shown once as 64 hex characters, stored only as
//! their SHA-256 (docs/design.md, "Collector": a slow password hash is for people's passwords; a token with 256 bits
//! of entropy cannot be brute-forced, and it is checked on every heartbeat).

use sha2::{Digest, Sha256};

/// Length of a token in hex characters.
pub const TOKEN_HEX_LEN: usize = 64;

#[derive(Debug, thiserror::Error)]
#[error("the operating system's random number generator failed: {0}")]
pub struct RandomError(String);

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

/// `n` random bytes as hex.
pub fn random_hex(n: usize) -> Result<String, RandomError> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).map_err(|e| RandomError(e.to_string()))?;
    Ok(hex(&buf))
}

/// A new device token (256 bits).
pub fn new_token() -> Result<String, RandomError> {
    random_hex(TOKEN_HEX_LEN / 2)
}

/// What the database stores and looks tokens up by: hex SHA-256 of the token text.
pub fn token_sha256(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// What an API token (a person's or a tool's, not a device's) may do. A later issue adds NOC
/// users with passwords; they get the same roles.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads incidents, devices, kill switches, reports, network events.
    Viewer,
    /// Also changes things: kill switches, diagnostics, imports.
    Operator,
}

impl Role {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "viewer" => Some(Self::Viewer),
            "operator" => Some(Self::Operator),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Operator => "operator",
        }
    }

    /// Whether this role includes `needed`.
    pub fn allows(self, needed: Role) -> bool {
        self >= needed
    }
}

/// Why an `Authorization` header is not a usable bearer token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BearerError {
    Missing,
    Malformed(&'static str),
}

/// The token of an `Authorization: Bearer <token>` header value.
pub fn parse_bearer(header: Option<&[u8]>) -> Result<&str, BearerError> {
    let value = header.ok_or(BearerError::Missing)?;
    let value = std::str::from_utf8(value).map_err(|_| BearerError::Malformed("not UTF-8"))?;
    let (scheme, token) = value
        .trim()
        .split_once(' ')
        .ok_or(BearerError::Malformed("expected `Bearer <token>`"))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(BearerError::Malformed("only the Bearer scheme is accepted"));
    }
    let token = token.trim();
    if token.len() != TOKEN_HEX_LEN || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(BearerError::Malformed(
            "a token is 64 hexadecimal characters",
        ));
    }
    Ok(token)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_hex_and_hash_stably() {
        let a = new_token().unwrap();
        let b = new_token().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert_eq!(
            token_sha256("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let header = format!("Bearer {a}");
        assert_eq!(parse_bearer(Some(header.as_bytes())), Ok(a.as_str()));
        assert_eq!(parse_bearer(None), Err(BearerError::Missing));
        assert!(parse_bearer(Some(b"Basic abc")).is_err());
        assert!(parse_bearer(Some(b"Bearer short")).is_err());
    }
}
