//! The password-hashing pool: at most `slots` argon2 hashes run at once
//! (about one per CPU), each in working memory its slot keeps and reuses,
//! so a flood of sign-ups or sign-ins costs at most slots × 19 MiB and never
//! grows the process past it. Callers wait for a slot in a bounded queue
//! with a deadline; past either, they get [`PasswordError::Busy`] (503 with
//! `Retry-After`) instead of piling up. Sign-up and sign-in share it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;

use super::password::{self, Memory, PasswordError};

/// Callers that may wait for a slot, per slot; more are refused at once.
const QUEUE_PER_SLOT: usize = 32;

#[derive(Debug, Clone)]
pub struct HashPool {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// One permit per slot; a permit is held until its hash has finished on
    /// the blocking pool, even when the request that asked for it is gone.
    slots: Arc<Semaphore>,
    /// Working memory of idle slots; never more entries than slots.
    memory: Mutex<Vec<Memory>>,
    waiting: AtomicUsize,
    max_waiting: usize,
    wait: Duration,
}

/// Counts one waiter for as long as it lives.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl HashPool {
    /// `slots` concurrent hashes (at least one); a caller waits at most `wait`.
    pub fn new(slots: usize, wait: Duration) -> Self {
        let slots = slots.max(1);
        Self {
            inner: Arc::new(Inner {
                slots: Arc::new(Semaphore::new(slots)),
                memory: Mutex::new(Vec::with_capacity(slots)),
                waiting: AtomicUsize::new(0),
                max_waiting: slots * QUEUE_PER_SLOT,
                wait,
            }),
        }
    }

    /// Hashes `password` (argon2id, fresh salt) into a PHC string.
    pub async fn hash(&self, password: String) -> Result<String, PasswordError> {
        self.run(move |memory| password::hash_with(memory, password.as_bytes()))
            .await?
    }

    /// Whether `password` matches `stored`; see [`password::verify_with`].
    pub async fn verify(
        &self,
        password: String,
        stored: Option<String>,
    ) -> Result<bool, PasswordError> {
        self.run(move |memory| {
            password::verify_with(memory, password.as_bytes(), stored.as_deref())
        })
        .await
    }

    /// Runs `work` on the blocking pool in a slot's memory, once a slot is free.
    async fn run<R, F>(&self, work: F) -> Result<R, PasswordError>
    where
        F: FnOnce(&mut Memory) -> R + Send + 'static,
        R: Send + 'static,
    {
        let inner = &self.inner;
        let permit = {
            if inner.waiting.fetch_add(1, Ordering::Relaxed) >= inner.max_waiting {
                inner.waiting.fetch_sub(1, Ordering::Relaxed);
                return Err(PasswordError::Busy);
            }
            let _waiting = Waiting(&inner.waiting);
            match tokio::time::timeout(inner.wait, inner.slots.clone().acquire_owned()).await {
                Ok(Ok(permit)) => permit,
                Ok(Err(_closed)) => return Err(PasswordError::Join),
                Err(_elapsed) => return Err(PasswordError::Busy),
            }
        };
        let pool = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let mut memory = pool.take_memory();
            let result = work(&mut memory);
            pool.put_memory(memory);
            result
        })
        .await
        .map_err(|_| PasswordError::Join)
    }

    /// Bytes of argon2 memory the idle slots hold (for tests).
    pub fn idle_memory_bytes(&self) -> usize {
        self.inner
            .memory
            .lock()
            .map_or(0, |m| m.iter().map(Memory::bytes).sum())
    }
}

impl Inner {
    fn take_memory(&self) -> Memory {
        self.memory
            .lock()
            .ok()
            .and_then(|mut m| m.pop())
            .unwrap_or_default()
    }

    fn put_memory(&self, memory: Memory) {
        if let Ok(mut m) = self.memory.lock() {
            m.push(memory);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_memory_stays_at_one_block_set_per_slot() {
        let pool = HashPool::new(2, Duration::from_secs(10));
        let hashes: Vec<_> =
            futures_util::future::join_all((0..6).map(|i| pool.hash(format!("password {i}"))))
                .await;
        for (i, h) in hashes.into_iter().enumerate() {
            let h = h.unwrap();
            assert!(
                pool.verify(format!("password {i}"), Some(h.clone()))
                    .await
                    .unwrap()
            );
            assert!(!pool.verify("nope".into(), Some(h)).await.unwrap());
        }
        assert!(!pool.verify("x".into(), None).await.unwrap());
        assert!(pool.idle_memory_bytes() <= 2 * 19456 * 1024);
        assert!(pool.idle_memory_bytes() >= 19456 * 1024);
    }

    #[tokio::test]
    async fn a_caller_past_the_deadline_is_told_busy() {
        let pool = HashPool::new(1, Duration::from_millis(1));
        // Hold the only slot for a while.
        let permit = pool.inner.slots.clone().acquire_owned().await.unwrap();
        assert!(matches!(
            pool.hash("password".into()).await,
            Err(PasswordError::Busy)
        ));
        drop(permit);
        assert!(pool.hash("password".into()).await.is_ok());
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once() {
        let pool = HashPool::new(1, Duration::from_secs(60));
        let _permit = pool.inner.slots.clone().acquire_owned().await.unwrap();
        pool.inner.waiting.store(QUEUE_PER_SLOT, Ordering::Relaxed);
        let refused = tokio::time::timeout(Duration::from_secs(1), pool.hash("p".into())).await;
        assert!(matches!(refused, Ok(Err(PasswordError::Busy))));
        assert_eq!(pool.inner.waiting.load(Ordering::Relaxed), QUEUE_PER_SLOT);
    }
}
