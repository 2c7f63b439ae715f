//! Online OASIS deconvolution (being written).
