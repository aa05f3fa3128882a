//! WebSocket close codes the server uses, in one place so that clients, tests
//! and documentation agree. 1xxx are RFC 6455 codes; 4xxx are ours.

/// The server is shutting down (or restarting); reconnect.
pub const GOING_AWAY: u16 = 1001;
/// The peer broke the WebSocket framing (RFC 6455 §7.4.1): unmasked or
/// fragmented control frames, reserved bits or opcodes, a bad continuation,
/// an oversized control frame or a malformed close payload.
pub const PROTOCOL_ERROR: u16 = 1002;
/// A text message that is not valid UTF-8.
pub const INVALID_PAYLOAD: u16 = 1007;
/// A frame or message exceeded the server's size limit.
pub const MESSAGE_TOO_BIG: u16 = 1009;
/// The server failed in a way that is not the client's fault.
pub const INTERNAL_ERROR: u16 = 1011;
/// Missing, malformed or wrongly signed token, or a token of the wrong type
/// (a refresh token where an access token is expected).
pub const UNAUTHENTICATED: u16 = 4001;
/// The access token was valid but has expired: refresh it and reconnect.
pub const TOKEN_EXPIRED: u16 = 4002;
/// The user is not the owner or a member of the project (or the project does
/// not exist: the two are not distinguished, so ids cannot be probed).
pub const PERMISSION_DENIED: u16 = 4003;
/// The client stopped reading: its outbound queue filled up and it was dropped
/// so that the rest of the room is not held back. Reconnect and resume.
pub const SLOW_CONSUMER: u16 = 4008;
/// The peer stopped answering keepalive pings.
pub const KEEPALIVE_TIMEOUT: u16 = 4009;
/// The user already holds the maximum number of concurrent sockets.
pub const TOO_MANY_CONNECTIONS: u16 = 4029;

/// The reason text sent with a close code, kept short (a close reason must fit
/// in 123 bytes) and in the product's wording where it had one.
pub fn reason(code: u16) -> &'static str {
    match code {
        GOING_AWAY => "Server going away",
        PROTOCOL_ERROR => "Protocol error",
        INVALID_PAYLOAD => "Invalid UTF-8",
        MESSAGE_TOO_BIG => "Message too big",
        INTERNAL_ERROR => "Internal error",
        UNAUTHENTICATED => "Authentication failed",
        TOKEN_EXPIRED => "Token expired",
        PERMISSION_DENIED => "Permission denied",
        SLOW_CONSUMER => "Slow consumer",
        KEEPALIVE_TIMEOUT => "Keepalive timeout",
        TOO_MANY_CONNECTIONS => "Rate limit exceeded",
        _ => "",
    }
}
