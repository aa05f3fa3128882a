//! Passwords: argon2id hashes in PHC strings, computed in memory the caller
//! owns. argon2 allocates its 19 MiB working memory per hash by default;
//! glibc keeps such freed blocks in per-thread arenas, so a burst of sign-ups
//! left gigabytes resident. Here every hash runs in a [`Memory`] that a
//! hashing slot keeps for the life of the process (see
//! [`super::hash_pool`]): peak hash memory is slots × m_cost, reached once.

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};

/// Shortest password accepted, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password accepted, in characters (bounds the hashing work).
pub const MAX_PASSWORD_CHARS: usize = 256;
/// Largest m_cost (KiB) of a stored hash we verify; a larger one (not written
/// by this server) would grow a slot's memory past what we budget for.
const MAX_VERIFY_M_COST: u32 = 64 * 1024;
/// Salt length for new hashes (argon2's recommendation).
const SALT_LEN: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("hashing failed")]
    Hash,
    #[error("the blocking pool is gone")]
    Join,
    /// Every hashing slot stayed busy past the wait, or too many waited.
    #[error("password hashing is saturated")]
    Busy,
}

/// argon2 working memory, reused from hash to hash. It only ever grows to
/// the largest m_cost it served (ours, unless a stored hash asks for more,
/// up to [`MAX_VERIFY_M_COST`]).
#[derive(Default)]
pub struct Memory {
    blocks: Vec<Block>,
}

impl std::fmt::Debug for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memory")
            .field("blocks", &self.blocks.len())
            .finish()
    }
}

impl Memory {
    fn blocks(&mut self, params: &Params) -> &mut [Block] {
        let needed = params.block_count();
        if self.blocks.len() < needed {
            self.blocks.resize(needed, Block::new());
        }
        &mut self.blocks[..needed]
    }

    /// Bytes held (for tests).
    pub fn bytes(&self) -> usize {
        self.blocks.len() * Block::SIZE
    }
}

fn hasher(algorithm: Algorithm, version: Version, params: Params) -> Argon2<'static> {
    Argon2::new(algorithm, version, params)
}

/// Hashes `password` with argon2id (default parameters) and a fresh random
/// salt, in `memory`. Blocking: run it off the async workers.
pub fn hash_with(memory: &mut Memory, password: &[u8]) -> Result<String, PasswordError> {
    let params = Params::default();
    let salt: [u8; SALT_LEN] = rand::random();
    let output_len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    let mut out = vec![0u8; output_len];
    let argon = hasher(Algorithm::Argon2id, Version::V0x13, params.clone());
    argon
        .hash_password_into_with_memory(password, &salt, &mut out, memory.blocks(&params))
        .map_err(|_| PasswordError::Hash)?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|_| PasswordError::Hash)?,
        salt: Some(Salt::new(&salt).map_err(|_| PasswordError::Hash)?),
        hash: Some(Output::new(&out).map_err(|_| PasswordError::Hash)?),
    };
    Ok(phc.to_string())
}

/// Whether `password` matches `stored` (a PHC string), computed in `memory`.
/// With no stored hash (unknown user, or a user without a password) a
/// throwaway hash is computed instead, so that the answer takes as long
/// either way. Blocking.
pub fn verify_with(memory: &mut Memory, password: &[u8], stored: Option<&str>) -> bool {
    let Some(stored) = stored else {
        let _ = hash_with(memory, password);
        return false;
    };
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm.as_str()) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    if params.m_cost() > MAX_VERIFY_M_COST {
        tracing::warn!(
            m_cost = params.m_cost(),
            "stored password hash asks for more memory than allowed"
        );
        return false;
    }
    let mut out = vec![0u8; expected.len()];
    let argon = hasher(algorithm, version, params.clone());
    if argon
        .hash_password_into_with_memory(password, salt.as_ref(), &mut out, memory.blocks(&params))
        .is_err()
    {
        return false;
    }
    // `Output`'s equality is constant-time.
    Output::new(&out).is_ok_and(|computed| &computed == expected)
}

#[cfg(test)]
mod tests {
    use argon2::PasswordVerifier;

    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only_and_memory_is_reused() {
        let mut memory = Memory::default();
        let h = hash_with(&mut memory, b"correct horse").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        let held = memory.bytes();
        assert_eq!(held, 19456 * 1024);
        assert!(verify_with(&mut memory, b"correct horse", Some(&h)));
        assert!(!verify_with(&mut memory, b"wrong horse", Some(&h)));
        assert!(!verify_with(&mut memory, b"anything", None));
        assert!(!verify_with(&mut memory, b"x", Some("not a phc")));
        assert_eq!(memory.bytes(), held, "no hash grew the memory");
        // The argon2 crate's own verifier agrees: the PHC string is standard.
        let parsed = PasswordHash::new(&h).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"correct horse", &parsed)
                .is_ok()
        );
    }

    #[test]
    fn hashes_written_by_the_argon2_crate_still_verify() {
        use argon2::PasswordHasher;
        let h = Argon2::default()
            .hash_password(b"old password")
            .unwrap()
            .to_string();
        let mut memory = Memory::default();
        assert!(verify_with(&mut memory, b"old password", Some(&h)));
        assert!(!verify_with(&mut memory, b"old passwort", Some(&h)));
    }
}
