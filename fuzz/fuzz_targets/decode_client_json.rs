//! Client JSON text frames: any bytes get a message or a typed error, and a
//! message the decoder accepts re-encodes to a frame that decodes to it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vridge_protocol::Encoding;
use vridge_protocol::codec::{decode_client, encode};

fuzz_target!(|frame: &[u8]| {
    if let Ok(msg) = decode_client(Encoding::Json, frame) {
        let again = encode(Encoding::Json, &msg).expect("an accepted message encodes");
        assert_eq!(decode_client(Encoding::Json, &again), Ok(msg));
    }
});
