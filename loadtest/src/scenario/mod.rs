//! The scenarios. Each is bounded in time and count, and returns a
//! [`Report`](crate::report::Report).

pub mod idle;
pub mod rest;
pub mod resume;
pub mod room;
pub mod storm;

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

use crate::target::Socket;

/// How a socket that was being read ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// The run stopped it.
    Stopped,
    /// The server closed it (with this code, if it sent one).
    Closed(Option<u16>),
    /// A read error.
    Failed(String),
}

impl Ended {
    /// The cause under which a drop is counted.
    pub fn cause(&self) -> String {
        match self {
            Ended::Stopped => "stopped".into(),
            Ended::Closed(Some(code)) => format!("dropped: close {code}"),
            Ended::Closed(None) => "dropped: closed without a code".into(),
            Ended::Failed(e) => format!("dropped: {e}"),
        }
    }
}

/// Reads `ws` until `stop` fires or the socket ends, passing each data frame
/// to `on_frame`.
pub async fn read_until(
    ws: &mut (
             impl futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
             + Unpin
         ),
    stop: &crate::run::Signal,
    mut on_frame: impl FnMut(&[u8]),
) -> Ended {
    loop {
        let next = tokio::select! {
            biased;
            () = stop.wait() => return Ended::Stopped,
            next = ws.next() => next,
        };
        match next {
            Some(Ok(Message::Text(t))) => on_frame(t.as_bytes()),
            Some(Ok(Message::Binary(b))) => on_frame(&b),
            Some(Ok(Message::Close(frame))) => return Ended::Closed(frame.map(|f| f.code.into())),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Ended::Failed(e.to_string()),
            None => return Ended::Closed(None),
        }
    }
}

/// Closes a socket politely, not waiting long for the server's answer.
pub async fn close(mut ws: Socket) {
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), ws.close(None)).await;
}
