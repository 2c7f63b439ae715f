//! The two pairwise measures: readout feature similarity and RF distance.

/// Cosine of two feature-weight vectors (NaN if either is all zeros).
pub fn cosine_similarity(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (na * nb)
}

/// Euclidean distance between two (azimuth, elevation) positions, degrees; adequate for the few
/// tens of degrees of a two-photon field of view.
pub fn rf_distance_deg(a: [f64; 2], b: [f64; 2]) -> f64 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt()
}
