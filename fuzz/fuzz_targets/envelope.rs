//! Redis envelopes as a node reads them from its subscription: any bytes get
//! an envelope or an error, and an accepted envelope re-encodes stably.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vridge_realtime::broker::Envelope;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(envelope) = Envelope::decode(bytes) {
        let once = envelope.encode().expect("an accepted envelope encodes");
        let again = Envelope::decode(&once).expect("its encoding decodes");
        assert_eq!(once, again.encode().expect("and encodes again"));
    }
});
