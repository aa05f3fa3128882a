//! Access tokens (`?token=`, `Authorization: Bearer`): no input but one
//! signed with the server's key verifies, and none panics. The fuzzer cannot
//! forge an HMAC, so any accepted token is a failure.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use vridge_realtime::auth::{JwtKeys, TokenKind};

fn keys() -> &'static JwtKeys {
    static KEYS: OnceLock<JwtKeys> = OnceLock::new();
    KEYS.get_or_init(|| JwtKeys::hs256(&[7u8; 32], Duration::from_secs(900)))
}

fuzz_target!(|raw: &str| {
    assert!(keys().verify_access(raw).is_err(), "accepted {raw:?}");
    assert!(
        keys().verify(raw, TokenKind::Refresh).is_err(),
        "accepted {raw:?}"
    );
});
