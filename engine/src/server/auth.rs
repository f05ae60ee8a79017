//! Bearer-token authentication against the `[[tokens]]` of platform.toml.
//!
//! Tokens are configured as SHA-256 hashes. A request's token is hashed and compared with every
//! configured hash in constant time (no early exit on the first byte that differs, nor on the
//! first token that matches), so response timing says nothing about how close a guess was.

use axum::http::{header, HeaderMap, StatusCode};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use clearhouse_formats::tokens::{AccessToken, Role};

/// Longest `Authorization` header value looked at; longer ones are refused unread.
const AUTHORIZATION_MAX_BYTES: usize = 4096;

/// Why a request is not allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// 401: no token, a malformed header, or a token that is not configured.
    Unauthenticated(&'static str),
    /// 403: a valid token whose role does not allow the operation.
    Forbidden { token: String, needed: Role },
}

impl Denied {
    pub fn status(&self) -> StatusCode {
        match self {
            Denied::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Denied::Forbidden { .. } => StatusCode::FORBIDDEN,
        }
    }

    pub fn message(&self) -> String {
        match self {
            Denied::Unauthenticated(why) => why.to_string(),
            Denied::Forbidden { token, needed } => format!(
                "token {token:?} may not do this: it needs role {:?}",
                needed.as_str()
            ),
        }
    }
}

/// The configured tokens.
#[derive(Debug, Clone)]
pub struct Tokens {
    tokens: Vec<AccessToken>,
}

impl Tokens {
    pub fn new(tokens: Vec<AccessToken>) -> Tokens {
        Tokens { tokens }
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The token of a request, if it is configured and its role allows `needed`.
    pub fn authorize(&self, headers: &HeaderMap, needed: Role) -> Result<&AccessToken, Denied> {
        let value = headers
            .get(header::AUTHORIZATION)
            .ok_or(Denied::Unauthenticated(
                "missing Authorization: Bearer <token>",
            ))?;
        if value.len() > AUTHORIZATION_MAX_BYTES {
            return Err(Denied::Unauthenticated("Authorization header too long"));
        }
        let secret = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(Denied::Unauthenticated(
                "Authorization must be \"Bearer <token>\"",
            ))?;
        let token = self
            .find(secret.as_bytes())
            .ok_or(Denied::Unauthenticated("unknown token"))?;
        if token.role.allows(needed) {
            Ok(token)
        } else {
            Err(Denied::Forbidden {
                token: token.name.clone(),
                needed,
            })
        }
    }

    /// Compares the hash of `secret` with every configured hash, in constant time.
    fn find(&self, secret: &[u8]) -> Option<&AccessToken> {
        let hash: [u8; 32] = Sha256::digest(secret).into();
        let mut found = None;
        for token in &self.tokens {
            let equal: bool = token.sha256.ct_eq(&hash).into();
            // Hashes are unique (checked when read), so at most one matches; every one is
            // compared whatever the outcome.
            if equal {
                found = Some(token);
            }
        }
        found
    }
}

/// The hex SHA-256 of a token: what platform.toml stores.
pub fn token_sha256_hex(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use clearhouse_formats::tokens::parse_sha256;

    fn tokens() -> Tokens {
        let token = |name: &str, secret: &str, role| AccessToken {
            name: name.to_string(),
            sha256: parse_sha256(&token_sha256_hex(secret)).unwrap(),
            role,
        };
        Tokens::new(vec![
            token("gw", "s3cret-submit", Role::Submit),
            token("ops", "s3cret-operator", Role::Operator),
        ])
    }

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn roles_and_tokens() {
        let t = tokens();
        let ok = t.authorize(&headers("Bearer s3cret-submit"), Role::Submit);
        assert_eq!(ok.unwrap().name, "gw");
        let denied = t
            .authorize(&headers("Bearer s3cret-submit"), Role::Operator)
            .unwrap_err();
        assert_eq!(denied.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            t.authorize(&headers("Bearer s3cret-operator"), Role::Operator)
                .unwrap()
                .name,
            "ops"
        );
        for bad in [
            "Bearer nope",
            "Basic s3cret-submit",
            "Bearer ",
            "s3cret-submit",
        ] {
            let denied = t.authorize(&headers(bad), Role::Submit).unwrap_err();
            assert_eq!(denied.status(), StatusCode::UNAUTHORIZED, "{bad}");
        }
        let denied = t.authorize(&HeaderMap::new(), Role::Submit).unwrap_err();
        assert_eq!(denied.status(), StatusCode::UNAUTHORIZED);
        assert!(Tokens::new(Vec::new())
            .authorize(&headers("Bearer s3cret-submit"), Role::Submit)
            .is_err());
    }

    #[test]
    fn hex_is_the_sha256() {
        assert_eq!(
            token_sha256_hex("test"),
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        );
    }
}
