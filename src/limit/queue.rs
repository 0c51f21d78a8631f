//! The wait queue for requests that find everything full: bounded, and fair between clients.
//! A request waits here (at most `queue_timeout`, never past its deadline) for a concurrency
//! permit to come back or for the soonest rate limit to have room, then walks its plan again.
//!
//! Fairness: a returned permit wakes one waiter, taking clients in turn (round robin over the
//! clients with someone waiting, first come first served within a client), so one noisy
//! client cannot starve the others; and no client may hold more than a quarter of the queue.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

#[derive(Debug, Default)]
pub struct Queue {
    capacity: AtomicUsize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Clients with someone waiting, in turn order.
    order: VecDeque<String>,
    waiting: HashMap<String, VecDeque<oneshot::Sender<()>>>,
    /// Tickets alive, overall and per client.
    live: usize,
    per_client: HashMap<String, usize>,
}

/// A place in the queue; dropping it leaves the queue.
#[derive(Debug)]
pub struct Ticket {
    rx: oneshot::Receiver<()>,
    queue: Arc<Queue>,
    client: String,
}

impl Queue {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: AtomicUsize::new(capacity),
            inner: Mutex::default(),
        }
    }

    /// A new config's `queue_size` (waiters already in stay).
    pub fn set_capacity(&self, capacity: usize) {
        self.capacity.store(capacity, Relaxed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Join as `client`; `None` when the queue, or this client's share of it, is full.
    pub fn join(self: &Arc<Self>, client: &str) -> Option<Ticket> {
        let capacity = self.capacity.load(Relaxed);
        let share = (capacity / 4).max(1);
        let mut inner = self.lock();
        let mine = inner.per_client.get(client).copied().unwrap_or(0);
        if inner.live >= capacity || mine >= share {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        let queue = inner.waiting.entry(client.to_owned()).or_default();
        // Places of tickets that gave up are dropped here, so a queue nobody wakes stays small.
        queue.retain(|t| !t.is_closed());
        queue.push_back(tx);
        if !inner.order.iter().any(|c| c == client) {
            inner.order.push_back(client.to_owned());
        }
        inner.live += 1;
        *inner.per_client.entry(client.to_owned()).or_default() += 1;
        Some(Ticket {
            rx,
            queue: Arc::clone(self),
            client: client.to_owned(),
        })
    }

    /// Something came free: wake one waiter, the next client's turn.
    pub fn release(&self) {
        let mut inner = self.lock();
        for _ in 0..inner.order.len() {
            let Some(client) = inner.order.pop_front() else {
                return;
            };
            let Some(waiters) = inner.waiting.get_mut(&client) else {
                continue;
            };
            let mut woke = false;
            while let Some(tx) = waiters.pop_front() {
                if tx.send(()).is_ok() {
                    woke = true;
                    break;
                }
            }
            if waiters.is_empty() {
                inner.waiting.remove(&client);
            } else {
                inner.order.push_back(client);
            }
            if woke {
                return;
            }
        }
    }

    /// Tickets waiting now.
    pub fn waiting(&self) -> usize {
        self.lock().live
    }
}

impl Ticket {
    /// Wait until woken (something came free) or for `at_most`, whichever is first.
    pub async fn wait(mut self, at_most: Duration) {
        tokio::select! {
            _ = &mut self.rx => {}
            () = tokio::time::sleep(at_most) => {}
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut inner = self.queue.lock();
        inner.live = inner.live.saturating_sub(1);
        if let Some(n) = inner.per_client.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                inner.per_client.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_release_wakes_clients_in_turn_and_waits_are_bounded() {
        let q = Arc::new(Queue::new(16));
        // A noisy client queues four, a quiet one one; releases alternate between them.
        let noisy: Vec<Ticket> = (0..4).map(|_| q.join("noisy").unwrap()).collect();
        assert!(
            q.join("noisy").is_none(),
            "a quarter of 16 is the most one client may hold"
        );
        let quiet = q.join("quiet").unwrap();
        assert_eq!(q.waiting(), 5);
        let woken = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (i, t) in noisy.into_iter().enumerate() {
            let woken = Arc::clone(&woken);
            tasks.push(tokio::spawn(async move {
                t.wait(Duration::from_secs(60)).await;
                woken
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(format!("noisy{i}"));
            }));
        }
        let w = Arc::clone(&woken);
        tasks.push(tokio::spawn(async move {
            quiet.wait(Duration::from_secs(60)).await;
            w.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push("quiet".to_owned());
        }));
        tokio::task::yield_now().await;
        q.release();
        q.release();
        tokio::time::sleep(Duration::from_millis(1)).await;
        let first_two = woken.lock().unwrap_or_else(|e| e.into_inner()).clone();
        assert_eq!(first_two.len(), 2);
        assert!(first_two.contains(&"quiet".to_owned()), "{first_two:?}");
        // The rest time out after their 60 s, not sooner, not later.
        let t0 = tokio::time::Instant::now();
        for t in tasks {
            let _ = t.await;
        }
        assert_eq!(
            t0.elapsed(),
            Duration::from_secs(60) - Duration::from_millis(1)
        );
        assert_eq!(q.waiting(), 0);
    }

    #[test]
    fn a_full_queue_refuses_and_a_given_up_place_is_freed() {
        let q = Arc::new(Queue::new(2));
        let a = q.join("a").unwrap();
        assert!(q.join("a").is_none(), "share of 2 is 1");
        let b = q.join("b").unwrap();
        assert!(q.join("c").is_none(), "full");
        drop(a);
        assert!(q.join("c").is_some());
        drop(b);
    }
}
