//! Pairs imaging frames with the behaviour stage's records, so the twin sees each frame with
//! the running speed and pupil at its time, and a replay sees the same pairs.

use crate::stages::behaviour::BehaviourRecord;
use crate::stages::decide::FrameBehaviour;
use crossbeam_channel::Receiver;
use std::collections::BTreeMap;

/// Frames held for their behaviour before the selector observes them without it (3 s at
/// 30 Hz: far beyond the behaviour stage's own bound of a few frames, unless it falls behind).
const MAX_WAITING_FRAMES: usize = 90;

/// How a frame's behaviour was settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Given {
    /// Its record (or none is expected).
    Record,
    /// Waited long enough, or its record was lost: observed without behaviour, noted in the log.
    Up,
}

/// Records a plane-0 frame used, kept this many frames for the other planes' frames of the same
/// volume (they come right after it, or later in a plane's calibration backlog).
const KEPT_RECORDS: u64 = 1024;

/// Matches imaging frames with the behaviour stage's records by sequence number. The records
/// are plane 0's frames'; a frame of another plane takes the record of the same sequence number
/// (the same volume: plane 0 is scanned first, so that record is the most recent behaviour at
/// or before the frame's time).
pub struct Pairing {
    expected: bool,
    /// Received records not yet used, by frame sequence number.
    records: BTreeMap<u64, FrameBehaviour>,
    /// Records plane-0 frames used, for the other planes' frames of those volumes.
    used: BTreeMap<u64, FrameBehaviour>,
    /// The behaviour stage has ended: no more records will come.
    closed: bool,
    /// Frames observed without behaviour although a behaviour stage runs.
    pub unpaired: u64,
}

impl Pairing {
    pub fn new(expected: bool) -> Pairing {
        Pairing {
            expected,
            records: BTreeMap::new(),
            used: BTreeMap::new(),
            closed: false,
            unpaired: 0,
        }
    }

    pub fn take_records(&mut self, rx: Option<&Receiver<BehaviourRecord>>) {
        let Some(rx) = rx else { return };
        loop {
            match rx.try_recv() {
                Ok(r) => {
                    self.records
                        .insert(r.frame_seq, FrameBehaviour::from_record(&r));
                }
                Err(crossbeam_channel::TryRecvError::Empty) => break,
                Err(crossbeam_channel::TryRecvError::Disconnected) => {
                    self.closed = true;
                    break;
                }
            }
        }
    }

    /// The behaviour to observe `a` with, or `None` to wait for it; `Given::Up` when a
    /// behaviour stage runs but this frame's record did not come in time.
    pub fn behaviour_for(
        &mut self,
        plane: u8,
        seq: u64,
        waiting: usize,
    ) -> Option<(FrameBehaviour, Given)> {
        if !self.expected {
            return Some((FrameBehaviour::MISSING, Given::Record));
        }
        if plane != 0 {
            if let Some(&b) = self.used.get(&seq).or_else(|| self.records.get(&seq)) {
                return Some((b, Given::Record));
            }
            // As for plane 0: a record for a later frame means this one's is lost (or too old
            // to be kept).
            let later = self.records.range(seq + 1..).next().is_some()
                || self.used.range(seq + 1..).next().is_some();
            if self.closed || waiting > MAX_WAITING_FRAMES || later {
                self.unpaired += 1;
                return Some((FrameBehaviour::MISSING, Given::Up));
            }
            return None;
        }
        while let Some((&s, _)) = self.used.first_key_value()
            && s + KEPT_RECORDS < seq
        {
            self.used.pop_first();
        }
        // Records for frames before this one will never be used.
        while let Some((&seq_first, _)) = self.records.first_key_value()
            && seq_first < seq
        {
            self.records.pop_first();
        }
        if let Some(b) = self.records.remove(&seq) {
            self.used.insert(seq, b);
            return Some((b, Given::Record));
        }
        // Records come in frame order, so one for a later frame means this one's was lost. After
        // the last frame, the frames still waiting wait only for the behaviour stage to end.
        if self.closed || waiting > MAX_WAITING_FRAMES || !self.records.is_empty() {
            self.unpaired += 1;
            return Some((FrameBehaviour::MISSING, Given::Up));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: u64, speed: f64) -> BehaviourRecord {
        BehaviourRecord {
            frame_seq: seq,
            t_ns: seq as i64,
            pupil_x_px: None,
            pupil_y_px: None,
            pupil_radius_px: None,
            treadmill_cm_s: Some(speed),
            pupil: twinloop_calibration::body::Fill::Missing,
            treadmill: twinloop_calibration::body::Fill::Measured,
        }
    }

    /// Another plane's frame takes the behaviour of its volume's plane-0 frame (the same
    /// sequence number), whether plane 0 used that record already or not, waits like plane 0
    /// for one not yet come, and goes on without one that was lost.
    #[test]
    fn other_planes_take_their_volumes_behaviour() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut p = Pairing::new(true);
        for seq in [0, 1, 3] {
            tx.send(record(seq, seq as f64 * 10.0)).unwrap();
        }
        p.take_records(Some(&rx));
        let speed = |r: Option<(FrameBehaviour, Given)>| r.map(|(b, g)| (b.running_cm_s, g));
        assert_eq!(speed(p.behaviour_for(0, 0, 1)), Some((0.0, Given::Record)));
        assert_eq!(speed(p.behaviour_for(1, 0, 1)), Some((0.0, Given::Record)));
        // Plane 1 before plane 0 in the same volume (plane 0's frame skipped, say).
        assert_eq!(speed(p.behaviour_for(1, 1, 1)), Some((10.0, Given::Record)));
        assert_eq!(speed(p.behaviour_for(0, 1, 1)), Some((10.0, Given::Record)));
        // Record 2 was lost: record 3 is in, so both planes go on without it.
        assert_eq!(
            speed(p.behaviour_for(0, 2, 1)).map(|(_, g)| g),
            Some(Given::Up)
        );
        assert_eq!(
            speed(p.behaviour_for(1, 2, 1)).map(|(_, g)| g),
            Some(Given::Up)
        );
        assert_eq!(speed(p.behaviour_for(0, 3, 1)), Some((30.0, Given::Record)));
        // Record 4 has not come yet: plane 1 waits for it, then takes it.
        assert_eq!(speed(p.behaviour_for(1, 4, 1)), None);
        tx.send(record(4, 40.0)).unwrap();
        p.take_records(Some(&rx));
        assert_eq!(speed(p.behaviour_for(1, 4, 1)), Some((40.0, Given::Record)));
        // A plane's calibration backlog, long after plane 0 used the records: still paired.
        assert_eq!(speed(p.behaviour_for(1, 3, 1)), Some((30.0, Given::Record)));
        assert_eq!(p.unpaired, 2);
    }
}
