//! Online motion correction (being written).
