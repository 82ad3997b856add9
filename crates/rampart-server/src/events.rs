//! Fan-out of live events to SSE clients (the dashboard, `audit tail --follow`).
//! One broadcast channel; messages are serialised once, when sent.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Serialize;
use tokio::sync::broadcast;

/// One SSE message: its `event:` name and its JSON `data:`.
#[derive(Debug, Clone)]
pub struct Message {
    pub event: &'static str,
    pub data: Arc<str>,
    /// A quiet decision: sent only to clients that asked for them.
    pub quiet: bool,
}

/// Most SSE clients at once; one more is answered 503. Each costs a connection and a
/// receiver, not a queue: all share one ring of [`BACKLOG`] messages.
pub const MAX_SUBSCRIBERS: usize = 2000;

/// Messages kept for slow clients; one that falls further behind skips ahead and is sent
/// a `lagged` event saying how many it missed. Bounds the memory of slow consumers.
pub const BACKLOG: usize = 4096;

pub struct Events {
    tx: broadcast::Sender<Message>,
    subscribers: Arc<AtomicUsize>,
}

/// A live subscription; dropping it frees its place under [`MAX_SUBSCRIBERS`].
#[derive(Debug)]
pub struct Subscription {
    pub rx: broadcast::Receiver<Message>,
    pub slot: Slot,
}

/// One place under [`MAX_SUBSCRIBERS`], given back on drop.
#[derive(Debug)]
pub struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Events {
    pub fn new() -> Events {
        let (tx, _) = broadcast::channel(BACKLOG);
        Events {
            tx,
            subscribers: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// A new subscription, or `None` when [`MAX_SUBSCRIBERS`] are already listening.
    pub fn subscribe(&self) -> Option<Subscription> {
        let taken = self
            .subscribers
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < MAX_SUBSCRIBERS).then_some(n + 1)
            });
        taken.ok()?;
        Some(Subscription {
            rx: self.tx.subscribe(),
            slot: Slot(Arc::clone(&self.subscribers)),
        })
    }

    /// SSE clients listening now.
    pub fn subscribers(&self) -> usize {
        self.subscribers.load(Ordering::Relaxed)
    }

    /// Sends `value` as event `event`; no subscribers is fine.
    pub fn send<T: Serialize>(&self, event: &'static str, value: &T) {
        self.send_marked(event, value, false);
    }

    /// [`send`](Self::send), marked quiet or not ([`Message::quiet`]).
    pub fn send_marked<T: Serialize>(&self, event: &'static str, value: &T, quiet: bool) {
        if self.tx.receiver_count() == 0 {
            return;
        }
        if let Ok(json) = serde_json::to_string(value) {
            let _ = self.tx.send(Message {
                event,
                data: json.into(),
                quiet,
            });
        }
    }
}
