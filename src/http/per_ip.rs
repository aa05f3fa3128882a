//! Open TCP connections per client address, so that one address cannot hold
//! every file the process may open. A [`Slot`] is taken when a connection is
//! accepted and travels inside the connection's IO ([`Counted`]): an HTTP
//! connection upgraded to a WebSocket keeps its slot until the socket is
//! dropped, so sockets count as well.

use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::metrics::Metrics;

#[derive(Debug, Clone)]
pub struct PerIp {
    counts: Arc<DashMap<IpAddr, usize>>,
    metrics: Arc<Metrics>,
}

/// One connection's place in its address's count; released on drop.
#[derive(Debug)]
pub struct Slot {
    counts: Arc<DashMap<IpAddr, usize>>,
    metrics: Arc<Metrics>,
    ip: IpAddr,
}

impl PerIp {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            counts: Arc::new(DashMap::new()),
            metrics,
        }
    }

    /// A slot for a connection from `ip`, unless it already holds `max`
    /// (0: no cap).
    pub fn try_acquire(&self, ip: IpAddr, max: usize) -> Option<Slot> {
        {
            let mut count = self.counts.entry(ip).or_insert(0);
            if max > 0 && *count >= max {
                return None;
            }
            *count += 1;
        }
        self.metrics.http.connections_open.fetch_add(1, Relaxed);
        Some(Slot {
            counts: self.counts.clone(),
            metrics: self.metrics.clone(),
            ip,
        })
    }

    /// Connections `ip` holds now.
    #[cfg(test)]
    pub fn held(&self, ip: IpAddr) -> usize {
        self.counts.get(&ip).map_or(0, |c| *c)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Entry::Occupied(mut e) = self.counts.entry(self.ip) {
            *e.get_mut() -= 1;
            if *e.get() == 0 {
                e.remove();
            }
        }
        self.metrics.http.connections_open.fetch_sub(1, Relaxed);
    }
}

/// A connection's IO holding its [`Slot`]: the slot lives exactly as long
/// as the file descriptor.
#[derive(Debug)]
pub struct Counted<T> {
    inner: T,
    _slot: Slot,
}

impl<T> Counted<T> {
    pub fn new(inner: T, slot: Slot) -> Self {
        Self { inner, _slot: slot }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_connection_past_the_cap_is_refused_until_one_closes() {
        let metrics = Arc::new(Metrics::default());
        let per_ip = PerIp::new(metrics.clone());
        let a: IpAddr = [10, 0, 0, 1].into();
        let slots: Vec<_> = (0..3).map(|_| per_ip.try_acquire(a, 3).unwrap()).collect();
        assert!(per_ip.try_acquire(a, 3).is_none());
        assert!(per_ip.try_acquire([10, 0, 0, 2].into(), 3).is_some());
        assert_eq!(metrics.http.connections_open.load(Relaxed), 3);
        drop(slots);
        assert_eq!(per_ip.held(a), 0);
        assert!(per_ip.try_acquire(a, 3).is_some());
        let unlimited: Vec<_> = (0..10).filter_map(|_| per_ip.try_acquire(a, 0)).collect();
        assert_eq!(unlimited.len(), 10);
    }
}
