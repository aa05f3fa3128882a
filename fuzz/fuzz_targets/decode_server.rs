//! Server frames as clients (the load generator, tests) read them, in both
//! encodings: the first byte picks the encoding, the rest is the frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vridge_protocol::Encoding;
use vridge_protocol::codec::decode_server;

fuzz_target!(|data: &[u8]| {
    if let Some((&pick, frame)) = data.split_first() {
        let enc = if pick & 1 == 0 {
            Encoding::Json
        } else {
            Encoding::MsgPack
        };
        let _ = decode_server(enc, frame);
    }
});
