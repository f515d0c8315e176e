//! A many-to-many queue for script tasks to hand values to each other. `send` never blocks;
//! `recv` waits under the usual deadline and cancellation.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::sync::Mutex as AsyncMutex;

use super::bridge::Session;
use super::error::NetError;

pub struct Channel<T> {
    inner: Arc<Inner<T>>,
}

impl<T> Clone for Channel<T> {
    fn clone(&self) -> Self {
        Channel {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<T> {
    session: Arc<Session>,
    tx: UnboundedSender<T>,
    rx: AsyncMutex<UnboundedReceiver<T>>,
}

impl<T: Send> Channel<T> {
    pub fn new(session: &Arc<Session>) -> Self {
        let (tx, rx) = unbounded_channel();
        Channel {
            inner: Arc::new(Inner {
                session: session.clone(),
                tx,
                rx: AsyncMutex::new(rx),
            }),
        }
    }

    pub fn send(&self, value: T) {
        // The receiver lives as long as `self`, so the queue cannot be closed.
        let _ = self.inner.tx.send(value);
    }

    pub fn recv(&self, timeout: Option<Duration>) -> Result<T, NetError> {
        let inner = &self.inner;
        inner
            .session
            .block_on("channel.recv", None, timeout, async {
                let mut rx = inner.rx.lock().await;
                rx.recv()
                    .await
                    .ok_or_else(|| NetError::closed("channel.recv", None))
            })
    }
}
