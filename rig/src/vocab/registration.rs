//! How a frame was motion-corrected, as carried with its activity to the log and the bus.

/// How one imaging frame was motion-corrected: its shifts and a quality figure, carried with
/// its activity to the recorder (`Registration` records) and the bus (`registration` stream).
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct FrameRegistration {
    /// Rigid shift, px, rows then columns (suite2p's sign: the frame's content moved by it).
    pub dy_px: f32,
    pub dx_px: f32,
    /// Phase-correlation peak relative to the reference's own: about 1 for a frame as good as
    /// the reference, falling with noise, blur, z-motion or a changed field of view.
    pub quality: f32,
    /// Rigid peak over the largest correlation away from it (suite2p's `getSNR`).
    pub peak_snr: f32,
    /// Blocks of the piecewise-rigid step (0: off, or a blank frame).
    pub blocks: u16,
    /// Blocks whose own map was too weak and used maps smoothed over their neighbours.
    pub blocks_smoothed: u16,
    /// Largest and mean distance of a block's shift from the rigid shift, px.
    pub block_max_px: f32,
    pub block_mean_px: f32,
    /// Fraction of pixels at full scale.
    pub saturated_fraction: f32,
    /// Bits: 1 blank frame, 2 rigid peak at the search limit, 4 rigid peak SNR below threshold.
    pub flags: u8,
}
