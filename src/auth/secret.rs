//! Where the HS256 secret comes from: configuration, or a file generated once
//! in the data directory so that tokens survive restarts of a bare `cargo run`.

use std::fs;
use std::io::Write;
use std::path::Path;

use rand::RngCore;

/// Shortest secret accepted, in bytes; HS256 keys shorter than the hash are weak.
pub const MIN_SECRET_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("JWT secret must be at least {MIN_SECRET_BYTES} bytes")]
    TooShort,
    #[error("reading or writing the JWT secret file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// Returns the configured secret, or the one stored in `<data_dir>/jwt_secret`,
/// generating and storing it (mode 0600) on first use.
pub fn load_or_generate(configured: Option<&str>, data_dir: &Path) -> Result<Vec<u8>, SecretError> {
    if let Some(s) = configured {
        return check(s.as_bytes().to_vec());
    }
    let path = data_dir.join("jwt_secret");
    let io = |source| SecretError::Io {
        path: path.display().to_string(),
        source,
    };
    if path.exists() {
        return check(
            fs::read_to_string(&path)
                .map_err(io)?
                .trim()
                .as_bytes()
                .to_vec(),
        );
    }
    fs::create_dir_all(data_dir).map_err(io)?;
    let mut raw = [0u8; 48];
    rand::rng().fill_bytes(&mut raw);
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(&path)
        .and_then(|mut f| f.write_all(hex.as_bytes()))
        .map_err(io)?;
    Ok(hex.into_bytes())
}

fn check(secret: Vec<u8>) -> Result<Vec<u8>, SecretError> {
    if secret.len() < MIN_SECRET_BYTES {
        return Err(SecretError::TooShort);
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secret_is_stable_across_loads() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_generate(None, dir.path()).unwrap();
        let b = load_or_generate(None, dir.path()).unwrap();
        assert_eq!(a, b);
        assert!(a.len() >= MIN_SECRET_BYTES);
    }

    #[test]
    fn short_configured_secret_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            load_or_generate(Some("short"), dir.path()),
            Err(SecretError::TooShort)
        ));
    }
}
