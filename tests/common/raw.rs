//! A raw WebSocket peer over a plain `TcpStream`: it performs the upgrade by
//! hand and writes frames byte by byte, so tests can send what no
//! well-behaved client library would (unmasked frames, reserved bits or
//! opcodes, fragmented control frames, invalid UTF-8, bad close payloads)
//! and read the server's close frame.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::WAIT;

pub struct RawPeer {
    stream: TcpStream,
    /// Bytes read past the upgrade response or a parsed frame.
    buffered: Vec<u8>,
}

/// One frame as the server sent it.
#[derive(Debug)]
pub struct RawFrame {
    pub fin: bool,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl RawFrame {
    /// The close code of a close frame (`None` for an empty close).
    pub fn close_code(&self) -> Option<u16> {
        (self.opcode == 0x8 && self.payload.len() >= 2)
            .then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }
}

impl RawPeer {
    /// Upgrades `path` (with its query) on `addr`; panics unless the server
    /// answers 101.
    pub async fn connect(addr: std::net::SocketAddr, path: &str) -> Self {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut peer = Self {
            stream,
            buffered: Vec::new(),
        };
        let head = peer.read_until_headers_end().await;
        assert!(
            head.starts_with("HTTP/1.1 101"),
            "expected 101 Switching Protocols, got {head}"
        );
        peer
    }

    async fn read_until_headers_end(&mut self) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(end) = self.buffered.windows(4).position(|w| w == b"\r\n\r\n") {
                let head: Vec<u8> = self.buffered.drain(..end + 4).collect();
                return String::from_utf8_lossy(&head).into_owned();
            }
            self.fill(deadline).await.expect("upgrade response");
        }
    }

    /// Reads more bytes; `None` when the server closed the TCP connection.
    async fn fill(&mut self, deadline: tokio::time::Instant) -> Option<()> {
        let mut chunk = [0u8; 4096];
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, self.stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => None,
            Ok(Ok(n)) => {
                self.buffered.extend_from_slice(&chunk[..n]);
                Some(())
            }
            Err(_) => panic!("the server sent nothing within {WAIT:?}"),
        }
    }

    /// Writes raw bytes (a frame built by [`frame`]).
    pub async fn write(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write frame");
    }

    /// The next frame from the server, or `None` once it closed TCP.
    pub async fn next_frame(&mut self) -> Option<RawFrame> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some((frame, used)) = parse(&self.buffered) {
                self.buffered.drain(..used);
                return Some(frame);
            }
            self.fill(deadline).await?;
        }
    }

    /// Skips data frames until the server's close frame; its code.
    pub async fn close_code(&mut self) -> Option<u16> {
        while let Some(frame) = self.next_frame().await {
            if frame.opcode == 0x8 {
                return frame.close_code();
            }
        }
        None
    }

    /// True when the server closes the TCP connection within `within`.
    pub async fn tcp_closed_within(&mut self, within: Duration) -> bool {
        let mut chunk = [0u8; 4096];
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.stream.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    }
}

/// Builds one frame: `first` is the first header byte (FIN, RSV bits,
/// opcode) as given; masked with a fixed key when `masked`.
pub fn frame(first: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut out = vec![first];
    let mask_bit = if masked { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= u16::MAX as usize => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if masked {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        out.extend_from_slice(&key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

/// A masked close frame with `code` (and no reason).
pub fn close_frame(code: u16) -> Vec<u8> {
    frame(0x88, &code.to_be_bytes(), true)
}

fn parse(buf: &[u8]) -> Option<(RawFrame, usize)> {
    if buf.len() < 2 {
        return None;
    }
    let fin = buf[0] & 0x80 != 0;
    let opcode = buf[0] & 0x0f;
    let (len, mut at) = match buf[1] & 0x7f {
        126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
        127 if buf.len() >= 10 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            (u64::from_be_bytes(b) as usize, 10)
        }
        126 | 127 => return None,
        n => (n as usize, 2),
    };
    if buf[1] & 0x80 != 0 {
        at += 4; // the server never masks, but skip a key if it did
    }
    if buf.len() < at + len {
        return None;
    }
    let payload = buf[at..at + len].to_vec();
    Some((
        RawFrame {
            fin,
            opcode,
            payload,
        },
        at + len,
    ))
}
