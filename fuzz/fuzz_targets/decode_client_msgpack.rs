//! Client MessagePack binary frames: any bytes get a message or a typed
//! error, and an accepted message re-encodes stably (compared as bytes: a
//! MessagePack frame may carry a NaN timestamp, which is not equal to itself).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vridge_protocol::Encoding;
use vridge_protocol::codec::{decode_client, encode};

fuzz_target!(|frame: &[u8]| {
    if let Ok(msg) = decode_client(Encoding::MsgPack, frame) {
        let once = encode(Encoding::MsgPack, &msg).expect("an accepted message encodes");
        let again = decode_client(Encoding::MsgPack, &once).expect("its encoding decodes");
        let twice = encode(Encoding::MsgPack, &again).expect("and encodes again");
        assert_eq!(once, twice);
    }
});
