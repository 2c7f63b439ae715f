//! What the log has made durable, for the two promises the daemon makes to the outside: an
//! ack, and a published activity, each mean the frame is in the log as far as the operating
//! system is concerned (written out of the process, so it survives kill -9).
//!
//! Ingest tags every two-photon frame with an [`Ack`]: the epoch of the sender's numbering (a
//! `hello` starts a new one) and the frame's index in it. The recorder, once the frame's record
//! (or its activity's) is written out of its buffer, raises the watermarks here; the publisher
//! acks and publishes nothing beyond them.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// A two-photon frame's place in its sender's numbering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ack {
    /// Which `hello` (0 before the first).
    pub epoch: u32,
    /// Frames handed on before this one since that `hello`.
    pub index: u64,
}

/// Bits of a packed watermark given to the index (the rest to the epoch).
const INDEX_BITS: u32 = 40;
const INDEX_MASK: u64 = (1 << INDEX_BITS) - 1;
/// Nothing logged yet.
const NONE: u64 = u64::MAX;

impl Ack {
    fn pack(self) -> u64 {
        (u64::from(self.epoch & 0xff_ffff) << INDEX_BITS) | (self.index & INDEX_MASK)
    }

    fn unpack(v: u64) -> Option<Ack> {
        (v != NONE).then_some(Ack {
            epoch: (v >> INDEX_BITS) as u32,
            index: v & INDEX_MASK,
        })
    }
}

/// What an ack says: the last logged frame's index, in the numbering the bridge named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acked {
    /// The `epoch` the bridge's `hello` carried (0 when it named none).
    pub hello_epoch: u64,
    pub index: u64,
}

/// The watermarks, shared by ingest, the recorder and the publisher.
#[derive(Debug)]
pub struct Durable {
    epoch: AtomicU32,
    /// The current `hello`'s own epoch (the bridge's number, echoed in acks).
    hello_epoch: AtomicU64,
    frames: AtomicU64,
    activity: AtomicU64,
}

impl Default for Durable {
    fn default() -> Self {
        Durable {
            epoch: AtomicU32::new(0),
            hello_epoch: AtomicU64::new(0),
            frames: AtomicU64::new(NONE),
            activity: AtomicU64::new(NONE),
        }
    }
}

impl Durable {
    /// The current epoch.
    pub fn epoch(&self) -> u32 {
        self.epoch.load(Ordering::Acquire)
    }

    /// A `hello` naming `hello_epoch`: a new numbering begins, and nothing of it is acked yet.
    pub fn new_epoch(&self, hello_epoch: u64) -> u32 {
        // In this order, so that [`Durable::acked`] never pairs an old index with the new
        // hello's epoch: the epoch moves first (old indices stop counting), then the bridge's
        // number changes, and only then can an index of the new numbering be logged.
        let e = self.epoch.fetch_add(1, Ordering::AcqRel).wrapping_add(1) & 0xff_ffff;
        self.frames.store(NONE, Ordering::Release);
        self.hello_epoch.store(hello_epoch, Ordering::Release);
        e
    }

    /// The recorder wrote frames up to `ack` out of the process.
    pub fn frames_logged(&self, ack: Ack) {
        // A frame of an earlier numbering is logged too, but the sender no longer counts it.
        if ack.epoch == self.epoch() {
            let v = ack.pack();
            let _ = self
                .frames
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |old| {
                    (old == NONE || old < v).then_some(v)
                });
        }
    }

    /// The recorder wrote the activity of frames up to `ack` out of the process.
    pub fn activity_logged(&self, ack: Ack) {
        let v = ack.pack();
        let _ = self
            .activity
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |old| {
                (old == NONE || old < v).then_some(v)
            });
    }

    /// The last frame of the current numbering that is logged (what an ack says).
    pub fn acked(&self) -> Option<Acked> {
        let epoch = self.epoch();
        let hello_epoch = self.hello_epoch.load(Ordering::Acquire);
        let index = Ack::unpack(self.frames.load(Ordering::Acquire))
            .filter(|a| a.epoch == epoch)?
            .index;
        // A hello in between: the index may be the old numbering's; the next call acks.
        (self.epoch() == epoch).then_some(Acked { hello_epoch, index })
    }

    /// Whether the activity of the frame tagged `ack` is logged (and so may be published).
    pub fn activity_is_logged(&self, ack: Ack) -> bool {
        Ack::unpack(self.activity.load(Ordering::Acquire)).is_some_and(|logged| ack <= logged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_follow_the_log_and_a_hello_starts_again() {
        let d = Durable::default();
        let acked = |hello_epoch, index| Some(Acked { hello_epoch, index });
        assert_eq!(d.acked(), None);
        d.frames_logged(Ack { epoch: 0, index: 4 });
        d.frames_logged(Ack { epoch: 0, index: 2 });
        assert_eq!(d.acked(), acked(0, 4), "never backwards");
        assert_eq!(d.new_epoch(0xfeed), 1);
        assert_eq!(
            d.acked(),
            None,
            "nothing of the new numbering is logged yet"
        );
        d.frames_logged(Ack { epoch: 0, index: 9 });
        assert_eq!(d.acked(), None, "a stale frame acks nothing");
        d.frames_logged(Ack { epoch: 1, index: 0 });
        assert_eq!(
            d.acked(),
            acked(0xfeed, 0),
            "the ack names the hello it answers"
        );
    }

    #[test]
    fn activity_is_published_only_once_logged() {
        let d = Durable::default();
        let a = |epoch, index| Ack { epoch, index };
        assert!(!d.activity_is_logged(a(0, 0)));
        d.activity_logged(a(0, 3));
        assert!(d.activity_is_logged(a(0, 3)) && !d.activity_is_logged(a(0, 4)));
        d.activity_logged(a(1, 0));
        assert!(
            d.activity_is_logged(a(0, 100)),
            "an earlier numbering's frames came before"
        );
        assert!(!d.activity_is_logged(a(1, 1)));
        assert_eq!(Ack::unpack(a(7, 123).pack()), Some(a(7, 123)));
    }
}
