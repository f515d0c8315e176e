//! A many-to-many queue for script tasks to hand values to each other, bounded in bytes: each
//! value is queued with the size its sender counted for it. `send` waits for room, and `recv`
//! for a value, under the usual deadline and cancellation.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::sync::{Mutex as AsyncMutex, Semaphore};

use super::bridge::Session;
use super::call::Call;
use super::error::{ErrorKind, NetError};

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
    tx: UnboundedSender<(T, u32)>,
    rx: AsyncMutex<UnboundedReceiver<(T, u32)>>,
    /// Bytes not queued: a send takes its value's size, a recv gives it back.
    room: Semaphore,
    capacity: u32,
}

impl<T: Send> Channel<T> {
    /// A channel that queues at most `capacity` bytes (at most `u32::MAX`).
    pub fn new(session: &Arc<Session>, capacity: usize) -> Self {
        let capacity = u32::try_from(capacity).unwrap_or(u32::MAX);
        let (tx, rx) = unbounded_channel();
        Channel {
            inner: Arc::new(Inner {
                session: session.clone(),
                tx,
                rx: AsyncMutex::new(rx),
                room: Semaphore::new(capacity as usize),
                capacity,
            }),
        }
    }

    /// Queue `value`, counted as `size` bytes. While the queue has no room for it, wait (under
    /// `timeout`, else the session's) for a `recv` to make some; a value larger than the whole
    /// queue is a `limit` error at once.
    pub fn send(
        &self,
        call: &Call,
        value: T,
        size: usize,
        timeout: Option<Duration>,
    ) -> Result<(), NetError> {
        let inner = &self.inner;
        let size = match u32::try_from(size) {
            Ok(n) if n <= inner.capacity => n,
            _ => {
                return Err(NetError::new(
                    ErrorKind::Limit,
                    "channel.send",
                    None,
                    format!(
                        "channel.send: the value is about {size} bytes, more than a channel \
                         queues ({} bytes)",
                        inner.capacity
                    ),
                ))
            }
        };
        inner
            .session
            .block_on(call, "channel.send", None, timeout, async {
                inner
                    .room
                    .acquire_many(size)
                    .await
                    .map(|permit| permit.forget())
                    .map_err(|_| NetError::closed("channel.send", None))
            })
            .map_err(|e| e.waiting_for("room in the channel's queue"))?;
        // The receiver lives as long as `self`, so the queue cannot be closed.
        let _ = inner.tx.send((value, size));
        Ok(())
    }

    pub fn recv(&self, call: &Call, timeout: Option<Duration>) -> Result<T, NetError> {
        let inner = &self.inner;
        let (value, size) = inner
            .session
            .block_on(call, "channel.recv", None, timeout, async {
                let mut rx = inner.rx.lock().await;
                rx.recv()
                    .await
                    .ok_or_else(|| NetError::closed("channel.recv", None))
            })?;
        inner.room.add_permits(size as usize);
        Ok(value)
    }
}
