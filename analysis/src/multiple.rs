//! Benjamini–Hochberg false-discovery-rate control: q-values (BH-adjusted p-values).

use crate::error::{Result, invalid};

/// BH q-values, in the input's order: q_(i) = min_{k ≥ i} min(1, m p_(k) / k) over the sorted
/// p-values. Matches `scipy.stats.false_discovery_control(p, method='bh')`.
pub fn bh_qvalues(p_values: &[f64]) -> Result<Vec<f64>> {
    if let Some(i) = p_values.iter().position(|p| !(0.0..=1.0).contains(p)) {
        return Err(invalid(
            "p_values",
            format!("entry {i} ({}) is not in [0, 1]", p_values[i]),
        ));
    }
    let m = p_values.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p_values[a].total_cmp(&p_values[b]));
    let mut q = vec![0.0; m];
    let mut running = 1.0f64;
    for (rank, &i) in order.iter().enumerate().rev() {
        running = running.min(p_values[i] * m as f64 / (rank + 1) as f64);
        q[i] = running;
    }
    Ok(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_worked_example() {
        // m = 4, sorted p = .01 .02 .03 .5 → m p/k = .04 .04 .04 .5 → q stays monotone.
        let q = bh_qvalues(&[0.5, 0.01, 0.03, 0.02]).unwrap();
        let want = [0.5, 0.04, 0.04, 0.04];
        for (a, b) in q.iter().zip(want) {
            assert!((a - b).abs() < 1e-15, "{q:?}");
        }
        assert!(bh_qvalues(&[0.2, 1.5]).is_err());
    }
}
