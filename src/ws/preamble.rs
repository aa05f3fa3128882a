//! The `initial_state` frame, written around the WebSocket codec.
//!
//! tungstenite formats every outgoing frame into one write buffer and keeps
//! that buffer's capacity for the socket's life. A socket's largest frame is
//! almost always its `initial_state` (20 comments: about 7 KiB), so sending
//! it through the codec left every idle socket holding a buffer that size —
//! half of what an idle socket cost. [`PreambleIo`] sits between the codec
//! and the connection instead: the session hands it the `initial_state`
//! frame, already formatted ([`server_frame`]), and it writes that out
//! before any byte of the codec's, then frees it. The codec's buffer only
//! ever grows to the live frames' size.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::WebSocketStream;
use vridge_protocol::Encoding;

/// A connection whose first bytes out are a preset frame.
#[derive(Debug)]
pub struct PreambleIo<T> {
    inner: T,
    /// Still to write before anything else (empty once written).
    pending: Bytes,
}

impl<T> PreambleIo<T> {
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            pending: Bytes::new(),
        }
    }

    /// Sets what goes out first; called before anything was written.
    pub fn preset(&mut self, frame: Bytes) {
        debug_assert!(self.pending.is_empty());
        self.pending = frame;
    }
}

impl<T: AsyncWrite + Unpin> PreambleIo<T> {
    /// Writes what is pending; ready once all of it is out.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.pending.is_empty() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.pending.advance(n);
        }
        // Drop the frame's memory, not just its view.
        self.pending = Bytes::new();
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for PreambleIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for PreambleIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A socket that can be given its first frame ready-made.
pub trait Preamble {
    /// `frame` (from [`server_frame`]) goes out before anything else.
    fn preset(&mut self, frame: Bytes);
}

impl<T: AsyncRead + AsyncWrite + Unpin> Preamble for WebSocketStream<PreambleIo<T>> {
    fn preset(&mut self, frame: Bytes) {
        self.get_mut().preset(frame);
    }
}

/// `payload` as one unfragmented, unmasked server frame (RFC 6455 §5.2):
/// text for JSON, binary for MessagePack.
pub fn server_frame(encoding: Encoding, payload: &[u8]) -> Bytes {
    const FIN: u8 = 0x80;
    let opcode = if encoding.is_binary() { 0x2 } else { 0x1 };
    let len = payload.len();
    let mut frame = BytesMut::with_capacity(len + 10);
    frame.put_u8(FIN | opcode);
    if len < 126 {
        frame.put_u8(len as u8);
    } else if let Ok(len) = u16::try_from(len) {
        frame.put_u8(126);
        frame.put_u16(len);
    } else {
        frame.put_u8(127);
        frame.put_u64(len as u64);
    }
    frame.put_slice(payload);
    frame.freeze()
}

#[cfg(test)]
mod tests {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::Role;

    use super::*;

    /// A server socket over `PreambleIo` with `preamble` preset, and the
    /// client's end of it.
    async fn pair(
        encoding: Encoding,
        preamble: &[u8],
    ) -> (
        WebSocketStream<PreambleIo<tokio::io::DuplexStream>>,
        WebSocketStream<tokio::io::DuplexStream>,
    ) {
        let (server, client) = tokio::io::duplex(1 << 20);
        let mut server =
            WebSocketStream::from_raw_socket(PreambleIo::new(server), Role::Server, None).await;
        server.preset(server_frame(encoding, preamble));
        let client = WebSocketStream::from_raw_socket(client, Role::Client, None).await;
        (server, client)
    }

    #[tokio::test]
    async fn the_preset_frame_reads_as_one_message_before_anything_the_codec_writes() {
        // The three length encodings: 7-bit, 16-bit and 64-bit.
        for len in [0, 125, 126, 65_535, 65_536, 200_000] {
            let text = "é".repeat(len / 2) + &"x".repeat(len % 2);
            let (mut server, mut client) = pair(Encoding::Json, text.as_bytes()).await;
            server.send(Message::text("after")).await.unwrap();
            match client.next().await.unwrap().unwrap() {
                Message::Text(t) => assert_eq!(t.as_str(), text, "length {len}"),
                other => panic!("length {len}: {other:?}"),
            }
            assert_eq!(
                client.next().await.unwrap().unwrap(),
                Message::text("after")
            );
        }
    }

    #[tokio::test]
    async fn a_binary_encoding_presets_a_binary_frame_and_a_flush_alone_sends_it() {
        let (mut server, mut client) = pair(Encoding::MsgPack, &[1, 2, 3]).await;
        server.flush().await.unwrap();
        assert_eq!(
            client.next().await.unwrap().unwrap(),
            Message::binary(vec![1, 2, 3])
        );
        // Written and let go.
        assert!(server.get_ref().pending.is_empty());
    }
}
