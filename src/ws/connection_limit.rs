//! How many sockets each user holds on this node, so the next one past the
//! limit can be refused with 4029. A guard gives the slot back on drop, so
//! every way a session ends releases it.

use std::sync::Arc;

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use vridge_protocol::UserId;

#[derive(Debug, Clone, Default)]
pub struct ConnectionLimiter {
    counts: Arc<DashMap<UserId, usize>>,
}

/// One held socket slot; released on drop.
#[derive(Debug)]
pub struct ConnectionGuard {
    counts: Arc<DashMap<UserId, usize>>,
    user: UserId,
}

impl ConnectionLimiter {
    /// Takes a slot for `user` unless they already hold `max`.
    pub fn try_acquire(&self, user: UserId, max: usize) -> Option<ConnectionGuard> {
        let mut count = self.counts.entry(user).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(ConnectionGuard {
            counts: self.counts.clone(),
            user,
        })
    }

    /// Sockets `user` holds now.
    pub fn held(&self, user: UserId) -> usize {
        self.counts.get(&user).map_or(0, |c| *c)
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        if let Entry::Occupied(mut e) = self.counts.entry(self.user) {
            *e.get_mut() -= 1;
            if *e.get() == 0 {
                e.remove();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sixth_socket_is_refused_until_one_closes() {
        let limiter = ConnectionLimiter::default();
        let guards: Vec<_> = (0..5).map(|_| limiter.try_acquire(1, 5).unwrap()).collect();
        assert!(limiter.try_acquire(1, 5).is_none());
        assert!(limiter.try_acquire(2, 5).is_some(), "limits are per user");
        drop(guards);
        assert_eq!(limiter.held(1), 0);
        assert!(limiter.try_acquire(1, 5).is_some());
    }
}
