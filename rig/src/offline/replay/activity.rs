//! The imaging half of a replay: the logged clock ticks refitted, and every logged frame with
//! pixels through the extraction stage again.

use super::ReplayError;
use super::log::{Logged, truth_masks};
use crate::backbone::frames::FrameBuf;
use crate::backbone::ring::Pool;
use crate::backbone::session_log::SessionDir;
use crate::config::Config;
use crate::stages::clocks::{ClockSync, Mapping};
use crate::stages::extract::{ExtractStage, Extractor, OfflineTaps, build_extractor};
use crate::vocab::clock::RigTime;
use crate::vocab::protocol::{ClockDomain, Stream};
use std::collections::BTreeMap;
use std::time::Duration;

/// What refitting the logged clock ticks gave.
pub(super) struct Refit {
    pub(super) reproduced: u64,
}

/// Feeds the logged ticks, in ingest order, through a fresh [`ClockSync`] (the live one's code
/// and settings), checks each mapping against the live `Clock` records, and places every frame
/// on the rig clock with the generation it was mapped with live.
pub(super) fn refit_clocks(cfg: &Config, logged: &mut Logged) -> Refit {
    let mut sync = ClockSync::new(cfg.clocks.clone());
    let mut mappings: BTreeMap<(ClockDomain, u32), Mapping> = BTreeMap::new();
    let mut again = Vec::new();
    for &(domain, t_ns) in &logged.ticks {
        for u in sync.on_tick(domain, t_ns).updates {
            mappings.insert((u.domain, u.generation), u.mapping);
            again.push(u);
        }
    }
    let reproduced = logged
        .clock_updates
        .iter()
        .zip(&again)
        .filter(|(live, replayed)| live == replayed)
        .count() as u64;
    if let Some(domain) = cfg.clocks.domain_of(Stream::TwoPhoton) {
        for (meta, _) in &mut logged.frames {
            if let Some(m) = mappings.get(&(domain, meta.clock_gen)) {
                meta.t = RigTime::from_nanos(m.to_rig_ns(meta.t_wire_ns));
            }
        }
    }
    Refit { reproduced }
}

/// Feed every logged frame with pixels through the extraction stage; activity by (plane, seq).
pub(super) fn recompute_activity(
    cfg: &Config,
    dir: &SessionDir,
    logged: &Logged,
) -> Result<BTreeMap<(u8, u64), Vec<f32>>, ReplayError> {
    let mut frames = logged
        .frames
        .iter()
        .filter_map(|(meta, pixels)| pixels.as_deref().map(|p| (meta, p)))
        .peekable();
    let mut out = BTreeMap::new();
    if frames.peek().is_none() {
        return Ok(out);
    }
    // Replay recalibrates from the same first frames; its outputs go nowhere.
    let mut extractor =
        build_extractor(&cfg.imaging, || truth_masks(dir), None).map_err(|reason| {
            ReplayError::Truth {
                path: dir.truth_dir().join("cells.json").display().to_string(),
                reason,
            }
        })?;
    if let Extractor::Pipeline(p) = &mut extractor {
        // The live stage skipped frames when its calibration hold was full, at times that
        // depend on the machine; the replay processes exactly the frames live did, so each
        // deconvolution bank sees the same frames and gaps.
        p.follow(
            logged
                .activity
                .iter()
                .map(|a| (a.plane, a.frame_seq))
                .collect(),
        );
    }
    let frame_px = (cfg.imaging.width * cfg.imaging.height) as usize;
    let frame_pool = Pool::new(64, || FrameBuf::with_capacity(frame_px));
    // Replay drives its selector from the log; the stage's copy for the selector is dropped.
    let (stage, taps) = ExtractStage::offline(extractor, 64);
    let OfflineTaps {
        input: to_stage,
        recorder: mut collected,
        selector: mut unused,
        bus: _bus,
    } = taps;
    let stage_h = std::thread::Builder::new()
        .name("replay-extract".into())
        .spawn(move || stage.run())?;
    let mut to_stage = Some(to_stage);
    while !collected.is_finished() {
        let mut busy = false;
        if let Some(tx) = &mut to_stage {
            if let Some((meta, pixels)) = frames.peek()
                && !tx.is_full()
                && let Some(mut slot) = frame_pool.try_take()
            {
                slot.fill_from_le(**meta, pixels);
                // Not full, and this thread is the only producer: the push succeeds.
                let _ = tx.try_push(slot.freeze());
                frames.next();
                busy = true;
            }
            if frames.peek().is_none() {
                // Closing the stage's input lets it finish after the last frame.
                to_stage = None;
            }
        }
        while let Some(a) = collected.try_pop() {
            out.insert((a.frame.plane, a.frame.seq), a.values().to_vec());
            busy = true;
        }
        while unused.try_pop().is_some() {}
        if !busy {
            std::thread::sleep(Duration::from_micros(50));
        }
    }
    let _ = stage_h.join();
    Ok(out)
}
