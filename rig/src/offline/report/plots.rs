//! The report's figures, drawn with plotters' SVG backend into strings that the HTML embeds
//! inline (so the report is one file with no external resources).
//!
//! Each function takes plain numbers and returns the `<svg>` text, or a [`PlotError`] that the
//! page shows in the figure's place: a figure that cannot be drawn never fails the report.
//! Non-finite values are left out; degenerate ranges (one point, all values equal) are widened.

use plotters::prelude::*;

/// Font of every label.
const FONT: &str = "sans-serif";

/// Why a figure was not drawn.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("no finite values to plot")]
    NoData,
    #[error("drawing failed: {0}")]
    Draw(String),
}

fn draw_err<E: std::fmt::Display>(e: E) -> PlotError {
    PlotError::Draw(e.to_string())
}

/// Titles of a figure.
#[derive(Debug, Clone, Copy)]
pub struct Axes<'a> {
    pub title: &'a str,
    pub x_desc: &'a str,
    pub y_desc: &'a str,
}

/// One series of an x-y figure.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub color: RGBAColor,
    pub points: Vec<(f64, f64)>,
    /// Join the points with a line.
    pub line: bool,
    /// Mark each point with a dot.
    pub markers: bool,
}

/// The colour of a decision mode.
pub fn mode_color(mode: &str) -> RGBAColor {
    match mode {
        "adaptive" => RGBColor(31, 119, 180),
        "random" => RGBColor(127, 127, 127),
        "warmup" => RGBColor(255, 127, 14),
        "test" => RGBColor(44, 160, 44),
        "fallback" => RGBColor(148, 103, 189),
        "late" => RGBColor(214, 39, 40),
        _ => RGBColor(23, 190, 207),
    }
    .to_rgba()
}

/// Distinct, legible on white (Tableau 10 without its grey and olive).
const CELL_COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

/// The colour of the `i`-th example cell.
pub fn cell_color(i: usize) -> RGBAColor {
    CELL_COLORS[i % CELL_COLORS.len()].to_rgba()
}

/// An axis tick: whole numbers without a fraction, others to four significant digits.
pub fn tick(v: &f64) -> String {
    let v = *v;
    if !v.is_finite() {
        return String::new();
    }
    if v == v.round() && v.abs() < 1e15 {
        return format!("{v:.0}");
    }
    let digits = (3 - v.abs().log10().floor() as i32).clamp(0, 6) as usize;
    let text = format!("{v:.digits$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// Finite values only.
fn finite(points: &[(f64, f64)]) -> impl Iterator<Item = (f64, f64)> + '_ {
    points
        .iter()
        .copied()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
}

/// `[min, max]` padded by 5 %, widened when empty of width.
fn padded(min: f64, max: f64) -> Result<(f64, f64), PlotError> {
    if !(min.is_finite() && max.is_finite()) || min > max {
        return Err(PlotError::NoData);
    }
    let span = max - min;
    if span <= f64::EPSILON * max.abs().max(1.0) {
        let pad = if min == 0.0 { 1.0 } else { min.abs() * 0.1 };
        return Ok((min - pad, max + pad));
    }
    Ok((min - span * 0.05, max + span * 0.05))
}

fn bounds(values: impl Iterator<Item = f64>) -> Result<(f64, f64), PlotError> {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    padded(lo, hi)
}

/// HTML5 places an inline `<svg>` in the SVG namespace itself; dropping the attribute leaves
/// the page without a single URL in it.
/// Every figure's legend: top right, on a light box.
fn legend<'a, DB, CT>(chart: &mut ChartContext<'a, DB, CT>) -> Result<(), PlotError>
where
    DB: DrawingBackend + 'a,
    CT: CoordTranslate,
{
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.85))
        .label_font((FONT, 12))
        .draw()
        .map_err(draw_err)
}

fn finish(svg: String) -> String {
    svg.replacen(" xmlns=\"http://www.w3.org/2000/svg\"", "", 1)
}

/// A line and/or dot figure of several series, with a legend when there is more than one.
pub fn xy(axes: Axes<'_>, series: &[Series], size: (u32, u32)) -> Result<String, PlotError> {
    let (x0, x1) = bounds(series.iter().flat_map(|s| finite(&s.points)).map(|p| p.0))?;
    let (y0, y1) = bounds(series.iter().flat_map(|s| finite(&s.points)).map(|p| p.1))?;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(axes.title, (FONT, 16))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .max_light_lines(0)
            .x_label_formatter(&tick)
            .y_label_formatter(&tick)
            .x_desc(axes.x_desc)
            .y_desc(axes.y_desc)
            .label_style((FONT, 12))
            .draw()
            .map_err(draw_err)?;
        let mut labelled = 0;
        for s in series {
            let points: Vec<(f64, f64)> = finite(&s.points).collect();
            if points.is_empty() {
                continue;
            }
            let color = s.color;
            if s.line {
                chart
                    .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                    .map_err(draw_err)?
                    .label(s.name.clone())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                    });
                labelled += 1;
            }
            if s.markers {
                let dots = chart
                    .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
                    .map_err(draw_err)?;
                if !s.line {
                    dots.label(s.name.clone())
                        .legend(move |(x, y)| Circle::new((x + 8, y), 3, color.filled()));
                    labelled += 1;
                }
            }
        }
        if labelled > 1 {
            legend(&mut chart)?;
        }
        root.present().map_err(draw_err)?;
    }
    Ok(finish(svg))
}

/// One row of a latency figure: a stage and its p50, p99 and max in microseconds.
#[derive(Debug, Clone)]
pub struct LatencyBar {
    pub stage: String,
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
}

/// One bar of each latency group: its name, value, colour and offset within the group.
type BarKind = (&'static str, fn(&LatencyBar) -> f64, RGBColor, f64);

/// Horizontal bars, one group per stage (p50, p99, max), on a logarithmic microsecond axis.
pub fn latency_bars(rows: &[LatencyBar], width: u32) -> Result<String, PlotError> {
    let values = || {
        rows.iter()
            .flat_map(|r| [r.p50_us, r.p99_us, r.max_us])
            .filter(|v| v.is_finite() && *v > 0.0)
    };
    let lo = values().fold(f64::INFINITY, f64::min);
    let hi = values().fold(f64::NEG_INFINITY, f64::max);
    if !(lo.is_finite() && hi.is_finite()) {
        return Err(PlotError::NoData);
    }
    // A decade of room on the right keeps the legend clear of the longest bar.
    let (lo, hi) = (lo / 2.0, hi * 20.0);
    let n = rows.len();
    let height = 90 + 46 * n as u32;
    let names: Vec<String> = rows.iter().map(|r| short(&r.stage, 34)).collect();
    let label = |y: &f64| {
        let i = y.round();
        if (y - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < n {
            names[n - 1 - i as usize].clone()
        } else {
            String::new()
        }
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("Latency by stage (log scale)", (FONT, 16))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(230)
            .build_cartesian_2d((lo..hi).log_scale(), -0.5..(n as f64 - 0.5))
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .max_light_lines(0)
            .disable_y_mesh()
            .y_labels(n + 1)
            .y_label_formatter(&label)
            .x_label_formatter(&tick)
            .x_desc("microseconds")
            .label_style((FONT, 12))
            .draw()
            .map_err(draw_err)?;
        let kinds: [BarKind; 3] = [
            ("p50", |r| r.p50_us, RGBColor(31, 119, 180), 0.3),
            ("p99", |r| r.p99_us, RGBColor(255, 127, 14), 0.0),
            ("max", |r| r.max_us, RGBColor(214, 39, 40), -0.3),
        ];
        for (name, value, color, offset) in kinds {
            let bars = rows.iter().enumerate().filter_map(|(i, r)| {
                let v = value(r);
                let y = (n - 1 - i) as f64 + offset;
                (v.is_finite() && v > 0.0)
                    .then(|| Rectangle::new([(lo, y - 0.13), (v, y + 0.13)], color.filled()))
            });
            chart
                .draw_series(bars)
                .map_err(draw_err)?
                .label(name)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 14, y + 5)], color.filled())
                });
        }
        legend(&mut chart)?;
        root.present().map_err(draw_err)?;
    }
    Ok(finish(svg))
}

/// One panel of a small-multiples bar figure: a title and one value per category.
#[derive(Debug, Clone)]
pub struct Panel {
    pub title: String,
    pub color: RGBAColor,
    pub values: Vec<f64>,
}

/// Bar panels over the same numbered categories (`x_desc` says what the numbers are), laid out
/// `columns` wide.
pub fn bar_panels(
    panels: &[Panel],
    x_desc: &str,
    y_desc: &str,
    columns: usize,
    width: u32,
) -> Result<String, PlotError> {
    let columns = columns.clamp(1, panels.len().max(1));
    let rows = panels.len().div_ceil(columns);
    if rows == 0 {
        return Err(PlotError::NoData);
    }
    let panel_h = 240;
    let mut svg = String::new();
    {
        let root =
            SVGBackend::with_string(&mut svg, (width, panel_h * rows as u32)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        for (area, panel) in root.split_evenly((rows, columns)).iter().zip(panels) {
            let n = panel.values.len();
            let (lo, hi) = bounds(panel.values.iter().copied().chain([0.0]))?;
            let ticks = n.min(12);
            let label = |x: &f64| {
                let i = x.round();
                if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < n {
                    format!("{i}")
                } else {
                    String::new()
                }
            };
            let mut chart = ChartBuilder::on(area)
                .caption(&panel.title, (FONT, 14))
                .margin(8)
                .x_label_area_size(34)
                .y_label_area_size(52)
                .build_cartesian_2d(-0.5..(n as f64 - 0.5), lo..hi)
                .map_err(draw_err)?;
            chart
                .configure_mesh()
                .max_light_lines(0)
                .disable_x_mesh()
                .x_labels(ticks + 1)
                .x_label_formatter(&label)
                .y_label_formatter(&tick)
                .x_desc(x_desc)
                .y_desc(y_desc)
                .label_style((FONT, 11))
                .draw()
                .map_err(draw_err)?;
            let color = panel.color;
            chart
                .draw_series(panel.values.iter().enumerate().filter_map(|(i, &v)| {
                    let x = i as f64;
                    v.is_finite()
                        .then(|| Rectangle::new([(x - 0.38, 0.0), (x + 0.38, v)], color.filled()))
                }))
                .map_err(draw_err)?;
        }
        root.present().map_err(draw_err)?;
    }
    Ok(finish(svg))
}

/// Means with ± s.e.m. bars: for each of several series (cells), one point per numbered
/// category, side by side within a category.
#[derive(Debug, Clone)]
pub struct ErrorSeries {
    pub name: String,
    pub color: RGBAColor,
    /// Per category: mean and s.e.m. (`None`: a dot without a bar).
    pub values: Vec<(f64, Option<f64>)>,
}

pub fn error_bars(
    axes: Axes<'_>,
    series: &[ErrorSeries],
    size: (u32, u32),
) -> Result<String, PlotError> {
    let n = series.iter().map(|s| s.values.len()).max().unwrap_or(0);
    let extent = series.iter().flat_map(|s| {
        s.values.iter().flat_map(|&(m, sem)| {
            let e = sem.filter(|e| e.is_finite()).unwrap_or(0.0);
            [m - e, m + e]
        })
    });
    let (lo, hi) = bounds(extent)?;
    let k = series.len().max(1) as f64;
    let step = 0.6 / k;
    let label = |x: &f64| {
        let i = x.round();
        if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < n {
            format!("{i}")
        } else {
            String::new()
        }
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(axes.title, (FONT, 16))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d(-0.5..(n as f64 - 0.5), lo..hi)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .max_light_lines(0)
            .disable_x_mesh()
            .x_labels(n.min(12) + 1)
            .x_label_formatter(&label)
            .y_label_formatter(&tick)
            .x_desc(axes.x_desc)
            .y_desc(axes.y_desc)
            .label_style((FONT, 12))
            .draw()
            .map_err(draw_err)?;
        for (j, s) in series.iter().enumerate() {
            let color = s.color;
            let dx = (j as f64 - (k - 1.0) / 2.0) * step;
            let points: Vec<(f64, f64, Option<f64>)> = s
                .values
                .iter()
                .enumerate()
                .filter(|(_, (m, _))| m.is_finite())
                .map(|(i, &(m, sem))| (i as f64 + dx, m, sem.filter(|e| e.is_finite())))
                .collect();
            chart
                .draw_series(points.iter().filter_map(|&(x, m, sem)| {
                    sem.map(|e| ErrorBar::new_vertical(x, m - e, m, m + e, color.filled(), 6))
                }))
                .map_err(draw_err)?;
            chart
                .draw_series(
                    points
                        .iter()
                        .map(|&(x, m, _)| Circle::new((x, m), 3, color.filled())),
                )
                .map_err(draw_err)?
                .label(s.name.clone())
                .legend(move |(x, y)| Circle::new((x + 8, y), 3, color.filled()));
        }
        if series.len() > 1 {
            legend(&mut chart)?;
        }
        root.present().map_err(draw_err)?;
    }
    Ok(finish(svg))
}

/// A colour from dark blue (0) through teal to yellow (1), viridis-like, for heat maps.
fn ramp(t: f64) -> RGBColor {
    const STOPS: [(f64, [f64; 3]); 4] = [
        (0.0, [68.0, 1.0, 84.0]),
        (0.33, [49.0, 104.0, 142.0]),
        (0.66, [53.0, 183.0, 121.0]),
        (1.0, [253.0, 231.0, 37.0]),
    ];
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let k = STOPS.iter().position(|s| s.0 >= t).unwrap_or(3).max(1);
    let ((t0, a), (t1, b)) = (STOPS[k - 1], STOPS[k]);
    let f = (t - t0) / (t1 - t0);
    let c = |i: usize| (a[i] + f * (b[i] - a[i])).round() as u8;
    RGBColor(c(0), c(1), c(2))
}

/// A square matrix as a heat map: row `i` is drawn top to bottom, column `j` left to right,
/// colour from the smallest finite value (dark) to the largest (yellow), each value printed
/// in its cell when there are at most 12 rows; non-finite cells are left white.
pub fn heatmap(axes: Axes<'_>, matrix: &[Vec<f64>], size: (u32, u32)) -> Result<String, PlotError> {
    let n = matrix.len();
    let m = matrix.iter().map(Vec::len).max().unwrap_or(0);
    let (lo, hi) = bounds(matrix.iter().flatten().copied())?;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let label = |count: usize| {
            move |x: &f64| {
                let i = (x - 0.5).round();
                if (x - 0.5 - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < count {
                    format!("{i}")
                } else {
                    String::new()
                }
            }
        };
        let mut chart = ChartBuilder::on(&root)
            .caption(axes.title, (FONT, 16))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..m as f64, (n as f64)..0.0)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(m.min(12) * 2 + 1)
            .y_labels(n.min(12) * 2 + 1)
            .x_label_formatter(&label(m))
            .y_label_formatter(&label(n))
            .x_desc(axes.x_desc)
            .y_desc(axes.y_desc)
            .label_style((FONT, 12))
            .draw()
            .map_err(draw_err)?;
        let cells: Vec<(usize, usize, f64)> = matrix
            .iter()
            .enumerate()
            .flat_map(|(i, row)| row.iter().enumerate().map(move |(j, &v)| (i, j, v)))
            .filter(|c| c.2.is_finite())
            .collect();
        let span = hi - lo;
        chart
            .draw_series(cells.iter().map(|&(i, j, v)| {
                let (x, y) = (j as f64, i as f64);
                Rectangle::new([(x, y), (x + 1.0, y + 1.0)], ramp((v - lo) / span).filled())
            }))
            .map_err(draw_err)?;
        if n <= 12 {
            chart
                .draw_series(cells.iter().map(|&(i, j, v)| {
                    let colour = if (v - lo) / span > 0.6 { BLACK } else { WHITE };
                    Text::new(
                        tick(&v),
                        (j as f64 + 0.3, i as f64 + 0.45),
                        (FONT, 11).into_font().color(&colour),
                    )
                }))
                .map_err(draw_err)?;
        }
        root.present().map_err(draw_err)?;
    }
    Ok(finish(svg))
}

/// `text` cut to `max` characters with an ellipsis.
fn short(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn axes() -> Axes<'static> {
        Axes {
            title: "t <&>",
            x_desc: "x",
            y_desc: "y",
        }
    }

    #[test]
    fn xy_draws_svg_without_urls_and_escapes_text() {
        let series = [
            Series {
                name: "a".into(),
                color: mode_color("adaptive"),
                points: vec![(0.0, 1.0), (1.0, 2.0), (2.0, f64::NAN)],
                line: true,
                markers: true,
            },
            Series {
                name: "b".into(),
                color: mode_color("random"),
                points: vec![(0.5, 1.5)],
                line: false,
                markers: true,
            },
        ];
        let svg = xy(axes(), &series, (400, 300)).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..40]);
        assert!(!svg.contains("http"), "no URL, not even the namespace");
        assert!(svg.contains("t &lt;&amp;&gt;"), "titles are escaped");
        assert!(svg.contains("<circle"));
    }

    #[test]
    fn degenerate_and_empty_inputs_do_not_panic() {
        let one = [Series {
            name: "one".into(),
            color: cell_color(0),
            points: vec![(3.0, 3.0)],
            line: true,
            markers: true,
        }];
        assert!(xy(axes(), &one, (300, 200)).is_ok());
        let none = [Series {
            points: vec![(f64::NAN, 1.0)],
            ..one[0].clone()
        }];
        assert!(matches!(
            xy(axes(), &none, (300, 200)),
            Err(PlotError::NoData)
        ));
        assert!(matches!(latency_bars(&[], 600), Err(PlotError::NoData)));
        assert!(matches!(
            bar_panels(&[], "x", "y", 3, 600),
            Err(PlotError::NoData)
        ));
        let zero = LatencyBar {
            stage: "s".into(),
            p50_us: 0.0,
            p99_us: 0.0,
            max_us: f64::INFINITY,
        };
        assert!(matches!(latency_bars(&[zero], 600), Err(PlotError::NoData)));
    }

    #[test]
    fn bars_and_error_bars_draw() {
        let panels: Vec<Panel> = (0..6)
            .map(|i| Panel {
                title: format!("cell {i}"),
                color: cell_color(i),
                values: vec![1.0, -0.5, f64::NAN, i as f64],
            })
            .collect();
        let svg = bar_panels(&panels, "stimulus #", "mean", 3, 900).unwrap();
        assert!(svg.contains("<rect"));
        let rows = [LatencyBar {
            stage: "a very long stage name that goes on and on (arrival to activity)".into(),
            p50_us: 50.0,
            p99_us: 900.0,
            max_us: 20_000.0,
        }];
        assert!(latency_bars(&rows, 700).unwrap().contains("<rect"));
        let series = [ErrorSeries {
            name: "cell 1".into(),
            color: cell_color(1),
            values: vec![(1.5, Some(0.2)), (1.0, None), (2.0, None), (f64::NAN, None)],
        }];
        // The bar stays inside the same value range, so only the bar differs.
        let with_bar = error_bars(axes(), &series, (500, 300)).unwrap();
        let mut no_sem = series[0].clone();
        no_sem.values[0].1 = None;
        let without = error_bars(axes(), &[no_sem], (500, 300)).unwrap();
        let elements = |svg: &str| svg.matches('<').count();
        assert!(
            elements(&with_bar) > elements(&without),
            "the s.e.m. is drawn"
        );
        assert_eq!(
            without.matches("<circle").count(),
            3,
            "a dot per finite mean"
        );
    }

    #[test]
    fn ticks_are_short() {
        assert_eq!(tick(&10.0), "10");
        assert_eq!(tick(&-2500.0), "-2500");
        assert_eq!(tick(&0.25), "0.25");
        assert_eq!(tick(&0.123456), "0.1235");
        assert_eq!(tick(&1234.5678), "1235");
        assert_eq!(tick(&f64::NAN), "");
    }
}
