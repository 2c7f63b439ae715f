//! The two-column CSV the display calibrations read (photometer readings, photodiode traces):
//! one `a,b` pair of numbers per line, an optional header line naming the first column, `#`
//! comments and blank lines ignored.

/// The pairs, each with its 1-based line number; a problem as `line N: ...`.
pub(crate) fn parse_pairs(text: &str, header: [&str; 2]) -> Result<Vec<(usize, f64, f64)>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split(',').map(str::trim).collect();
        if out.is_empty()
            && cols
                .first()
                .is_some_and(|c| c.eq_ignore_ascii_case(header[0]))
        {
            continue;
        }
        let at = |problem: String| format!("line {}: {problem}", n + 1);
        if cols.len() != 2 {
            return Err(at(format!(
                "expected `{},{}`, got {} columns",
                header[0],
                header[1],
                cols.len()
            )));
        }
        let num = |s: &str| {
            s.parse::<f64>()
                .map_err(|_| at(format!("`{s}` is not a number")))
        };
        out.push((n + 1, num(cols[0])?, num(cols[1])?));
    }
    Ok(out)
}
