//! `Event`: a flag clients set, clear and wait for.
#![forbid(unsafe_code)]

use std::time::Duration;

use tokio::sync::watch;

use super::SyncManager;
use crate::server::{Constructor, Registry};
use crate::Result;

/// Python's `threading.Event`, served. Waiting is a future in the server.
pub struct Event {
    flag: watch::Sender<bool>,
}

impl Default for Event {
    fn default() -> Self {
        Event {
            flag: watch::Sender::new(false),
        }
    }
}

#[crate::shared(typeid = "Event", typed)]
impl Event {
    /// Whether the flag is set.
    #[py("is_set")]
    pub fn is_set(&self) -> bool {
        *self.flag.borrow()
    }

    /// Set the flag, waking every waiter.
    #[py("set")]
    pub fn set(&self) {
        self.flag.send_replace(true);
    }

    /// Clear the flag.
    #[py("clear")]
    pub fn clear(&self) {
        self.flag.send_replace(false);
    }

    /// Wait until the flag is set, at most `timeout` (`None`: forever).
    /// Returns the flag: `false` means the wait timed out.
    #[py("wait", timeout = zero)]
    pub async fn wait(&self, #[py(default = None)] timeout: Option<Duration>) -> bool {
        let mut flag = self.flag.subscribe();
        let set = async move { flag.wait_for(|set| *set).await.is_ok() };
        match timeout {
            None => set.await,
            Some(timeout) => tokio::time::timeout(timeout, set).await.unwrap_or(false),
        }
    }
}

pub(crate) fn register(registry: &mut Registry) {
    registry.register::<Event>(
        "Event",
        None,
        Some(Constructor::new(|(): ()| Event::default())),
    );
}

impl SyncManager {
    /// A new shared `Event`, unset.
    pub fn event(&self) -> Result<EventProxy> {
        self.create("Event", &())
    }

    /// Async form of [`event`](Self::event).
    pub async fn event_async(&self) -> Result<EventAsyncProxy> {
        self.create_async("Event", &()).await
    }
}
