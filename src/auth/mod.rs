//! Authentication: JWT access and refresh tokens, their keys, and passwords.

pub mod hash_pool;
pub mod jwt;
pub mod keys;
pub mod password;
pub mod secret;

pub use jwt::{AccessGrant, AuthError, Claims, JwtKeys, TokenKind};
