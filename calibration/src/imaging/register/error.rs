//! Errors of registration: bad parameters, bad shapes, unusable images.

/// Why a registrar could not be built or a frame could not be registered.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RegistrationError {
    /// A [`RegistrationParams`](super::RegistrationParams) field is out of range.
    #[error("invalid registration parameter `{field}`: {reason}")]
    InvalidParam {
        /// The field's name as written in a config file.
        field: &'static str,
        /// What is wrong with its value.
        reason: String,
    },
    /// The frame is smaller than registration can work with.
    #[error("frame size {height}x{width} px is too small: both sides must be at least {min} px")]
    FrameTooSmall {
        /// Frame height, px.
        height: usize,
        /// Frame width, px.
        width: usize,
        /// Smallest side allowed, px.
        min: usize,
    },
    /// The frame is larger than registration supports (warp indices are exact in f32 only up
    /// to 2^24 pixels).
    #[error(
        "frame size {height}x{width} px is too large: (height + 1) * (width + 1) must be under {max} px"
    )]
    FrameTooLarge {
        /// Frame height, px.
        height: usize,
        /// Frame width, px.
        width: usize,
        /// Bound on `(height + 1) * (width + 1)`.
        max: usize,
    },
    /// A buffer does not hold `height * width` pixels.
    #[error("{what} has {got} pixels, expected {expected} ({height}x{width})")]
    LengthMismatch {
        /// Which buffer: "reference", "frame", "output", "frame 3" ...
        what: &'static str,
        /// `height * width`.
        expected: usize,
        /// The buffer's length.
        got: usize,
        /// Frame height, px.
        height: usize,
        /// Frame width, px.
        width: usize,
    },
    /// The reference image holds a NaN or an infinity.
    #[error("reference image has a non-finite value at pixel {index} (row-major)")]
    NonFiniteReference {
        /// Row-major index of the first bad pixel.
        index: usize,
    },
    /// The reference image is constant: there is nothing to correlate against.
    #[error("reference image is flat (constant after clipping): nothing to register against")]
    FlatReference,
    /// The frame holds a NaN or an infinity.
    #[error("frame has a non-finite value at pixel {index} (row-major)")]
    NonFiniteFrame {
        /// Row-major index of the first bad pixel.
        index: usize,
    },
    /// `compute_reference` was given no frames.
    #[error("compute_reference needs at least one frame")]
    NoFrames,
    /// A failure that valid input cannot cause (an FFT length mismatch); a bug if seen.
    #[error("internal registration error: {0}")]
    Internal(String),
}
