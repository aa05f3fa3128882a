//! Natural batching for reads: callers queue keys; a loader takes whatever is
//! queued (up to a cap) and answers all of it with one query. A lone request
//! runs at once, so at rest nothing waits; under a burst — a reconnect storm,
//! thousands of sockets each asking the same two questions — the store sees
//! one query per batch instead of one per socket, and the pool stops being
//! the queue.
//!
//! Each batch's query starts after every request in it was queued, so a
//! caller that queued after some event (joining a room, say) is answered by
//! a read that began after it: batching never serves an older read than a
//! direct query would.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc, oneshot};

use super::StoreError;

/// Requests queued before callers wait for room.
const QUEUE: usize = 4096;

type Answer<V> = oneshot::Sender<Result<V, StoreError>>;
type Fetched<K, V> = Pin<Box<dyn Future<Output = Result<HashMap<K, V>, StoreError>> + Send>>;
/// Answers a batch of distinct keys; a key absent from the map gets `V::default()`.
type Fetch<K, V> = Arc<dyn Fn(Vec<K>) -> Fetched<K, V> + Send + Sync>;

/// A handle for queueing reads; the loader task ends when every handle is
/// dropped. Cheap to clone.
pub struct Coalescer<K, V> {
    tx: mpsc::Sender<(K, Answer<V>)>,
}

impl<K, V> Clone for Coalescer<K, V> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
        }
    }
}

impl<K, V> std::fmt::Debug for Coalescer<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coalescer").finish_non_exhaustive()
    }
}

impl<K, V> Coalescer<K, V>
where
    K: Eq + Hash + Clone + Send + 'static,
    V: Clone + Default + Send + 'static,
{
    /// Spawns the loader: at most `parallel` batches in flight, each of at
    /// most `max_batch` requests. While every slot is busy, requests queue
    /// and the next batch takes them all.
    pub fn spawn<F, Fut>(max_batch: usize, parallel: usize, fetch: F) -> Self
    where
        F: Fn(Vec<K>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<HashMap<K, V>, StoreError>> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(QUEUE);
        let fetch: Fetch<K, V> = Arc::new(move |keys| Box::pin(fetch(keys)));
        tokio::spawn(load(rx, max_batch.max(1), parallel.max(1), fetch));
        Self { tx }
    }

    /// The value for `key`, read in whichever batch takes it.
    pub async fn get(&self, key: K) -> Result<V, StoreError> {
        let (answer, answered) = oneshot::channel();
        self.tx
            .send((key, answer))
            .await
            .map_err(|_| StoreError::ReaderStopped)?;
        answered.await.map_err(|_| StoreError::ReaderStopped)?
    }
}

/// Takes batches off the queue while a slot is free and runs each as its own task.
async fn load<K, V>(
    mut rx: mpsc::Receiver<(K, Answer<V>)>,
    max_batch: usize,
    parallel: usize,
    fetch: Fetch<K, V>,
) where
    K: Eq + Hash + Clone + Send + 'static,
    V: Clone + Default + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(parallel));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut batch = Vec::with_capacity(max_batch);
        if rx.recv_many(&mut batch, max_batch).await == 0 {
            return;
        }
        let fetch = fetch.clone();
        tokio::spawn(async move {
            answer(batch, &fetch).await;
            drop(slot);
        });
    }
}

/// Runs one query for the batch's distinct keys and answers every request.
async fn answer<K, V>(batch: Vec<(K, Answer<V>)>, fetch: &Fetch<K, V>)
where
    K: Eq + Hash + Clone,
    V: Clone + Default,
{
    let mut seen = HashSet::with_capacity(batch.len());
    let keys: Vec<K> = batch
        .iter()
        .filter(|(key, _)| seen.insert(key.clone()))
        .map(|(key, _)| key.clone())
        .collect();
    match fetch(keys).await {
        Ok(values) => {
            for (key, answer) in batch {
                // A caller that gave up (its socket closed) is not waiting.
                let _ = answer.send(Ok(values.get(&key).cloned().unwrap_or_default()));
            }
        }
        Err(e) => {
            let e = Arc::new(e);
            for (_, answer) in batch {
                let _ = answer.send(Err(StoreError::Batch(e.clone())));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tokio::sync::Notify;

    use super::*;

    /// Records every batch of keys it is asked for; the first batch waits
    /// for `release`, so the test can queue requests behind it.
    #[derive(Default)]
    struct Recorder {
        batches: Mutex<Vec<Vec<u32>>>,
        release: Notify,
    }

    fn doubling(recorder: Arc<Recorder>, max_batch: usize) -> Coalescer<u32, u64> {
        Coalescer::spawn(max_batch, 1, move |keys: Vec<u32>| {
            let recorder = recorder.clone();
            async move {
                let first = {
                    let mut batches = recorder.batches.lock().unwrap();
                    batches.push(keys.clone());
                    batches.len() == 1
                };
                if first {
                    recorder.release.notified().await;
                }
                Ok(keys
                    .into_iter()
                    .filter(|k| k % 10 != 0)
                    .map(|k| (k, u64::from(k) * 2))
                    .collect())
            }
        })
    }

    async fn queued_behind_the_first(
        recorder: &Recorder,
        reads: &Coalescer<u32, u64>,
        keys: Vec<u32>,
    ) -> Vec<u64> {
        let first = tokio::spawn({
            let reads = reads.clone();
            async move { reads.get(1).await }
        });
        while recorder.batches.lock().unwrap().is_empty() {
            tokio::task::yield_now().await;
        }
        let waiting: Vec<_> = keys
            .into_iter()
            .map(|k| {
                let reads = reads.clone();
                tokio::spawn(async move { reads.get(k).await })
            })
            .collect();
        // Let every request reach the queue before the first batch ends.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        recorder.release.notify_one();
        assert_eq!(first.await.unwrap().unwrap(), 2);
        let mut values = Vec::new();
        for w in waiting {
            values.push(w.await.unwrap().unwrap());
        }
        values
    }

    #[tokio::test]
    async fn requests_queued_behind_a_running_batch_share_one_query() {
        let recorder = Arc::new(Recorder::default());
        let reads = doubling(recorder.clone(), 100);
        let keys: Vec<u32> = (2..52).chain(2..12).collect();
        let values = queued_behind_the_first(&recorder, &reads, keys.clone()).await;
        let expected: Vec<u64> = keys
            .iter()
            .map(|k| if k % 10 == 0 { 0 } else { u64::from(*k) * 2 })
            .collect();
        assert_eq!(
            values, expected,
            "each caller gets its own key's value, absent keys the default"
        );
        let batches = recorder.batches.lock().unwrap();
        assert_eq!(
            batches.len(),
            2,
            "60 queued requests took one query: {batches:?}"
        );
        let mut second = batches[1].clone();
        second.sort_unstable();
        assert_eq!(
            second,
            (2..52).collect::<Vec<_>>(),
            "duplicate keys are asked once"
        );
    }

    #[tokio::test]
    async fn a_batch_never_exceeds_its_cap() {
        let recorder = Arc::new(Recorder::default());
        let reads = doubling(recorder.clone(), 16);
        queued_behind_the_first(&recorder, &reads, (100..150).collect()).await;
        let batches = recorder.batches.lock().unwrap();
        assert!(batches.iter().all(|b| b.len() <= 16), "{batches:?}");
        assert_eq!(batches.iter().map(Vec::len).sum::<usize>(), 51);
    }

    #[tokio::test]
    async fn a_failed_query_fails_every_request_of_its_batch_only() {
        let calls = Arc::new(Mutex::new(0));
        let reads = Coalescer::spawn(8, 1, {
            let calls = calls.clone();
            move |keys: Vec<u32>| {
                let calls = calls.clone();
                async move {
                    let n = {
                        let mut calls = calls.lock().unwrap();
                        *calls += 1;
                        *calls
                    };
                    if n == 1 {
                        Err(StoreError::NotFound)
                    } else {
                        Ok(keys.into_iter().map(|k| (k, u64::from(k))).collect())
                    }
                }
            }
        });
        assert!(matches!(reads.get(7).await, Err(StoreError::Batch(_))));
        assert_eq!(
            reads.get(7).await.unwrap(),
            7,
            "the next batch queries afresh"
        );
    }
}
