//! The bus to the publisher: a cheap handle any thread publishes through without blocking.
//! Bounded by construction: a full bus drops the message and counts it (the session log still
//! has it). The publisher's thread and socket are `online::sinks::event_bus`.

use crate::backbone::ring::Wakeup;
use crate::backbone::telemetry::Counters;
use crate::vocab::protocol::Message;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use std::sync::Arc;

/// A cheap handle for publishing from any thread.
#[derive(Clone)]
pub struct Bus {
    tx: Sender<Message>,
    wake: Arc<Wakeup>,
    counters: Arc<Counters>,
}

impl Bus {
    /// Publish without blocking; a full bus drops the message and counts it.
    pub fn publish(&self, m: Message) {
        match self.tx.try_send(m) {
            Ok(()) => self.wake.wake(),
            Err(TrySendError::Full(m) | TrySendError::Disconnected(m)) => {
                Counters::inc(&self.counters.bus_drops);
                tracing::debug!(stream = %m.header.stream, seq = m.header.seq, "bus full: message dropped from the bus");
            }
        }
    }

    /// The publisher's wake-up, for rings that feed it.
    pub fn wakeup(&self) -> Arc<Wakeup> {
        Arc::clone(&self.wake)
    }
}

/// The publisher's end of the bus.
pub struct BusInbox {
    pub rx: Receiver<Message>,
    pub wake: Arc<Wakeup>,
}

pub fn bus(capacity: usize, counters: Arc<Counters>) -> (Bus, BusInbox) {
    let (tx, rx) = crossbeam_channel::bounded(capacity);
    let wake = Wakeup::new();
    (
        Bus {
            tx,
            wake: Arc::clone(&wake),
            counters,
        },
        BusInbox { rx, wake },
    )
}
