//! REST page cursors (`?cursor=`): any string gets an id or a 400, and an
//! accepted id encodes to a cursor that decodes to it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vridge_realtime::http::{decode_cursor, encode_cursor};

fuzz_target!(|raw: &str| {
    if let Ok(id) = decode_cursor(raw) {
        assert_eq!(decode_cursor(&encode_cursor(id)).ok(), Some(id));
    }
});
