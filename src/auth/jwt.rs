//! Access and refresh tokens: JWTs signed with HS256 (a shared secret, the
//! default) or RS256 (a key pair), the algorithm pinned so that a token
//! signed any other way (or with `none`) is refused, issuer and audience
//! checked, and a `typ` claim so that a refresh token is never accepted where
//! an access token is expected, nor the reverse.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde::{Deserialize, Serialize};
use vridge_protocol::UserId;

const ISSUER: &str = "vridge-realtime";
const AUDIENCE: &str = "vridge";
/// Clock skew tolerated between the token's issuer and this server.
const LEEWAY_SECS: u64 = 5;

/// What a token may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    Access,
    Refresh,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: u64,
    pub iat: u64,
    pub iss: String,
    pub aud: String,
    pub typ: TokenKind,
    /// Unique per token; refresh-token rotation keys on it.
    pub jti: String,
}

/// Why a token was refused. Socket close codes and HTTP statuses map from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing token")]
    Missing,
    #[error("invalid token")]
    Invalid,
    #[error("token expired")]
    Expired,
    #[error("wrong token type")]
    WrongKind,
}

/// What a verified access token grants: its user, until when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessGrant {
    pub user: UserId,
    /// The token's `exp` (Unix seconds).
    pub expires_at: u64,
    /// The last second at which verification still accepts it (`exp` plus
    /// the clock-skew leeway): a socket opened with it closes then.
    pub valid_until: u64,
}

/// Signing and verification keys plus the pinned validation rules.
#[derive(Clone)]
pub struct JwtKeys {
    algorithm: Algorithm,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    access_ttl: Duration,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys").finish_non_exhaustive()
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Validation rules accepting `algorithm` and nothing else.
fn pinned_validation(algorithm: Algorithm) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.leeway = LEEWAY_SECS;
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[AUDIENCE]);
    validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
    validation
}

/// An RS256 key that could not be read as PEM.
#[derive(Debug, thiserror::Error)]
#[error("invalid RSA {0} key (expected PEM)")]
pub struct InvalidKey(pub &'static str);

impl JwtKeys {
    /// Keys for HS256 with a shared secret.
    pub fn hs256(secret: &[u8], access_ttl: Duration) -> Self {
        Self {
            algorithm: Algorithm::HS256,
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation: pinned_validation(Algorithm::HS256),
            access_ttl,
        }
    }

    /// Keys for RS256 from a PEM private key (PKCS#1 or PKCS#8) and its PEM
    /// public key. Only RS256 is then accepted.
    pub fn rs256(
        private_pem: &[u8],
        public_pem: &[u8],
        access_ttl: Duration,
    ) -> Result<Self, InvalidKey> {
        Ok(Self {
            algorithm: Algorithm::RS256,
            encoding: EncodingKey::from_rsa_pem(private_pem).map_err(|_| InvalidKey("private"))?,
            decoding: DecodingKey::from_rsa_pem(public_pem).map_err(|_| InvalidKey("public"))?,
            validation: pinned_validation(Algorithm::RS256),
            access_ttl,
        })
    }

    /// The signing algorithm in use (`HS256` or `RS256`).
    pub fn algorithm(&self) -> &'static str {
        match self.algorithm {
            Algorithm::RS256 => "RS256",
            _ => "HS256",
        }
    }

    /// Mints a refresh token for `user`, valid for `ttl`, and returns it with
    /// its `jti` (which the store keeps, hashed, to rotate and revoke it).
    pub fn mint_refresh(&self, user: UserId, ttl: Duration) -> Result<(String, String), AuthError> {
        let iat = unix_now();
        let claims = Claims {
            sub: user.to_string(),
            exp: iat + ttl.as_secs(),
            iat,
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            typ: TokenKind::Refresh,
            jti: uuid::Uuid::new_v4().to_string(),
        };
        let token = self.sign(&claims)?;
        Ok((token, claims.jti))
    }

    /// The configured access-token lifetime.
    pub fn access_ttl(&self) -> Duration {
        self.access_ttl
    }

    fn sign(&self, claims: &Claims) -> Result<String, AuthError> {
        encode(&Header::new(self.algorithm), claims, &self.encoding).map_err(|_| AuthError::Invalid)
    }

    /// Mints a token of `kind` for `user`, valid for `ttl` from now.
    pub fn mint(&self, user: UserId, kind: TokenKind, ttl: Duration) -> Result<String, AuthError> {
        let iat = unix_now();
        self.mint_at(user, kind, iat, iat + ttl.as_secs())
    }

    /// Mints an access token with the configured lifetime.
    pub fn mint_access(&self, user: UserId) -> Result<String, AuthError> {
        self.mint(user, TokenKind::Access, self.access_ttl)
    }

    /// Mints a token with explicit times; tests use it for expired tokens.
    pub fn mint_at(
        &self,
        user: UserId,
        kind: TokenKind,
        iat: u64,
        exp: u64,
    ) -> Result<String, AuthError> {
        let claims = Claims {
            sub: user.to_string(),
            exp,
            iat,
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            typ: kind,
            jti: uuid::Uuid::new_v4().to_string(),
        };
        self.sign(&claims)
    }

    /// Verifies signature, algorithm, issuer, audience, expiry and kind.
    pub fn verify(&self, token: &str, kind: TokenKind) -> Result<Claims, AuthError> {
        let claims = decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::Invalid,
            })?
            .claims;
        if claims.typ != kind {
            return Err(AuthError::WrongKind);
        }
        Ok(claims)
    }

    /// Verifies an access token and returns its user.
    pub fn verify_access(&self, token: &str) -> Result<UserId, AuthError> {
        self.verify_access_grant(token).map(|g| g.user)
    }

    /// Verifies an access token and returns its user and expiry, for a
    /// socket that must not outlive its token.
    pub fn verify_access_grant(&self, token: &str) -> Result<AccessGrant, AuthError> {
        let claims = self.verify(token, TokenKind::Access)?;
        let user = claims.sub.parse().map_err(|_| AuthError::Invalid)?;
        Ok(AccessGrant {
            user,
            expires_at: claims.exp,
            valid_until: claims.exp + LEEWAY_SECS,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> JwtKeys {
        JwtKeys::hs256(&[7u8; 32], Duration::from_secs(900))
    }

    #[test]
    fn access_token_round_trips() {
        let k = keys();
        let t = k.mint_access(42).unwrap();
        assert_eq!(k.verify_access(&t), Ok(42));
    }

    #[test]
    fn expired_wrong_kind_and_foreign_tokens_are_refused() {
        let k = keys();
        let now = unix_now();
        let expired = k
            .mint_at(1, TokenKind::Access, now - 3600, now - 60)
            .unwrap();
        assert_eq!(k.verify_access(&expired), Err(AuthError::Expired));
        let refresh = k
            .mint(1, TokenKind::Refresh, Duration::from_secs(60))
            .unwrap();
        assert_eq!(k.verify_access(&refresh), Err(AuthError::WrongKind));
        let other = JwtKeys::hs256(&[8u8; 32], Duration::from_secs(60))
            .mint_access(1)
            .unwrap();
        assert_eq!(k.verify_access(&other), Err(AuthError::Invalid));
        assert_eq!(k.verify_access("garbage"), Err(AuthError::Invalid));
    }

    #[test]
    fn refresh_tokens_carry_their_jti_and_are_not_access_tokens() {
        let k = keys();
        let (token, jti) = k.mint_refresh(5, Duration::from_secs(60)).unwrap();
        let claims = k.verify(&token, TokenKind::Refresh).unwrap();
        assert_eq!((claims.sub.as_str(), claims.jti), ("5", jti));
        assert_eq!(k.verify_access(&token), Err(AuthError::WrongKind));
        assert_eq!(k.algorithm(), "HS256");
        assert!(JwtKeys::rs256(b"not pem", b"not pem", Duration::from_secs(1)).is_err());
    }

    #[test]
    fn unsigned_token_is_refused() {
        // {"alg":"none"} header with valid-looking claims and an empty signature.
        let k = keys();
        let good = k.mint_access(1).unwrap();
        let payload = good.split('.').nth(1).unwrap();
        let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
        assert_eq!(k.verify_access(&none), Err(AuthError::Invalid));
    }
}
