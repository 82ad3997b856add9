//! Fan-out of live events to SSE clients (the dashboard, `audit tail --follow`).
//! One broadcast channel; messages are serialised once, when sent.

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::broadcast;

/// One SSE message: its `event:` name and its JSON `data:`.
#[derive(Debug, Clone)]
pub struct Message {
    pub event: &'static str,
    pub data: Arc<str>,
}

pub struct Events {
    tx: broadcast::Sender<Message>,
}

impl Events {
    pub fn new() -> Events {
        // Slow clients that fall this far behind skip ahead (they are told so).
        let (tx, _) = broadcast::channel(4096);
        Events { tx }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Message> {
        self.tx.subscribe()
    }

    /// Sends `value` as event `event`; no subscribers is fine.
    pub fn send<T: Serialize>(&self, event: &'static str, value: &T) {
        if self.tx.receiver_count() == 0 {
            return;
        }
        if let Ok(json) = serde_json::to_string(value) {
            let _ = self.tx.send(Message {
                event,
                data: json.into(),
            });
        }
    }
}
