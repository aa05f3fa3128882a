//! Which signing keys the server uses: an RS256 key pair when both PEM paths
//! are configured, otherwise HS256 with the configured or generated secret.
//! The server and the `token` subcommand build their keys here, so a token
//! minted by an operator verifies on the server.

use std::path::Path;
use std::time::Duration;

use super::jwt::{InvalidKey, JwtKeys};
use super::secret::{self, SecretError};
use crate::config::{AuthConfig, JwtSecret};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("JWT secret: {0}")]
    Secret(#[from] SecretError),
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(#[from] InvalidKey),
}

/// The keys `config` asks for, with the access-token lifetime `access_ttl`;
/// a generated HS256 secret is kept in `data_dir`.
pub fn load(
    config: &AuthConfig,
    data_dir: &Path,
    access_ttl: Duration,
) -> Result<JwtKeys, KeyError> {
    match (&config.jwt_private_key, &config.jwt_public_key) {
        (Some(private), Some(public)) => {
            let read = |path: &Path| {
                std::fs::read(path).map_err(|source| KeyError::Read {
                    path: path.display().to_string(),
                    source,
                })
            };
            Ok(JwtKeys::rs256(&read(private)?, &read(public)?, access_ttl)?)
        }
        _ => {
            let configured = config.jwt_secret.as_ref().map(JwtSecret::expose);
            let secret = secret::load_or_generate(configured, data_dir)?;
            Ok(JwtKeys::hs256(&secret, access_ttl))
        }
    }
}
