//! Authentication: JWT access tokens and the signing secret.

pub mod jwt;
pub mod secret;

pub use jwt::{AuthError, Claims, JwtKeys, TokenKind};
