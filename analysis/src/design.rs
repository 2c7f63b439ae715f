//! A named design matrix: rows are observations, columns are named coefficients.

use crate::error::{Result, invalid};

/// Dense row-major design matrix with column names (the coefficient names of a fit).
#[derive(Debug, Clone)]
pub struct Design {
    names: Vec<String>,
    n_rows: usize,
    x: Vec<f64>,
}

impl Design {
    /// Builds a design from row-major values; checks the shape and that every value is finite.
    pub fn new(names: Vec<String>, x: Vec<f64>) -> Result<Self> {
        let p = names.len();
        if p == 0 {
            return Err(invalid("design", "no columns"));
        }
        if !x.len().is_multiple_of(p) {
            return Err(invalid(
                "design",
                format!("{} values is not a multiple of {p} columns", x.len()),
            ));
        }
        if let Some(i) = x.iter().position(|v| !v.is_finite()) {
            return Err(invalid(
                "design",
                format!("row {}, column `{}` is not finite", i / p, names[i % p]),
            ));
        }
        Ok(Self {
            n_rows: x.len() / p,
            names,
            x,
        })
    }

    /// Builds a design from columns of equal length.
    pub fn from_columns(columns: Vec<(String, Vec<f64>)>) -> Result<Self> {
        let n = columns.first().map_or(0, |c| c.1.len());
        if let Some((name, c)) = columns.iter().find(|c| c.1.len() != n) {
            return Err(invalid(
                "design",
                format!("column `{name}` has {} rows, not {n}", c.len()),
            ));
        }
        let p = columns.len();
        let mut x = vec![0.0; n * p];
        for (j, (_, c)) in columns.iter().enumerate() {
            for (i, v) in c.iter().enumerate() {
                x[i * p + j] = *v;
            }
        }
        Self::new(columns.into_iter().map(|c| c.0).collect(), x)
    }

    pub fn n_rows(&self) -> usize {
        self.n_rows
    }

    pub fn n_cols(&self) -> usize {
        self.names.len()
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Row `i` as a slice of `n_cols` values.
    pub fn row(&self, i: usize) -> &[f64] {
        let p = self.n_cols();
        &self.x[i * p..(i + 1) * p]
    }

    /// `X β` for every row.
    pub fn times(&self, beta: &[f64]) -> Vec<f64> {
        (0..self.n_rows).map(|i| dot(self.row(i), beta)).collect()
    }
}

pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
