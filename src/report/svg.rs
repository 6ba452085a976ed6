//! The report's plots, each drawn as one SVG string with plotters' `SVGBackend::with_string`:
//! the per-block line plots here, the heatmaps in `heatmap`.
//!
//! Text is emitted as SVG `<text>` elements (plotters' SVG backend needs no font files; without
//! the `ttf` feature it only estimates text extents, which is all the layout below relies on),
//! and plotters escapes it. Errors come back as strings for the page to show in place of a plot.

use plotters::chart::MeshStyle;
use plotters::coord::ranged1d::{Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::fmt::sig;

pub(super) type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

pub(super) const FONT: &str = "sans-serif";
/// Size of one small per-block plot.
pub const LINE_PLOT: (u32, u32) = (420, 240);

pub(super) fn err<E: std::fmt::Display>(e: E) -> String {
    format!("plot failed: {e}")
}

/// One series of a line plot: (block index, value) pairs; non-finite values break the line.
pub struct Line {
    pub color: RGBColor,
    pub points: Vec<(i32, f64)>,
}

/// Distinct, colour-blind-safe series colours (Okabe–Ito blue, vermillion, green, purple).
pub const SERIES: [RGBColor; 4] =
    [RGBColor(0, 114, 178), RGBColor(213, 94, 0), RGBColor(0, 158, 115), RGBColor(204, 121, 167)];

pub fn hex(c: RGBColor) -> String {
    format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2)
}

/// Every plot's axes: their fonts and faint grid lines.
pub(super) fn house_style<'m, 'a, 'b, X: Ranged, Y: Ranged, DB: DrawingBackend>(
    m: &'m mut MeshStyle<'a, 'b, X, Y, DB>,
) -> &'m mut MeshStyle<'a, 'b, X, Y, DB> {
    m.label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .light_line_style(RGBColor(0, 0, 0).mix(0.04))
        .bold_line_style(RGBColor(0, 0, 0).mix(0.12))
}

/// A tick label: short, trailing zeros trimmed ("0.5", "12", "1e-5").
pub(super) fn tick(v: f64) -> String {
    let s = sig(v);
    let (mantissa, exp) = match s.find('e') {
        Some(i) => (&s[..i], &s[i..]),
        None => (s.as_str(), ""),
    };
    let mantissa = if mantissa.contains('.') { mantissa.trim_end_matches('0').trim_end_matches('.') } else { mantissa };
    format!("{mantissa}{exp}")
}

/// Per-block line plot, x = block index. With `log_y`, values ≤ 0 are drawn as open circles on
/// the bottom edge (one decade below the smallest positive value).
pub fn line_plot(lines: &[Line], y_desc: &str, log_y: bool) -> Result<String, String> {
    let xmax = lines.iter().flat_map(|l| l.points.iter().map(|p| p.0)).max().unwrap_or(0).max(0);
    let finite: Vec<f64> = lines.iter().flat_map(|l| l.points.iter().map(|p| p.1)).filter(|v| v.is_finite()).collect();
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, LINE_PLOT).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        if log_y {
            let positive: Vec<f64> = finite.iter().copied().filter(|&v| v > 0.0).collect();
            let (mut lo, hi) = if positive.is_empty() {
                (1e-3, 1.0)
            } else {
                let min = positive.iter().copied().fold(f64::INFINITY, f64::min);
                let max = positive.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                // Whole decades, so the axis always has at least two labelled ticks.
                let lo = 10f64.powf(min.log10().floor());
                let mut hi = 10f64.powf(max.log10().ceil());
                if hi <= lo {
                    hi = lo * 10.0;
                }
                (lo, hi)
            };
            if finite.iter().any(|&v| v <= 0.0) && !positive.is_empty() {
                lo /= 10.0;
            }
            // Nudged outward so rounding in plotters' log10 cannot drop the end ticks.
            let y: LogCoord<f64> = ((lo * 0.999_999)..(hi * 1.000_001)).log_scale().into();
            draw_lines(&root, xmax, y, lines, y_desc, Some(lo))?;
        } else {
            let (mut lo, mut hi) =
                finite.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
            if finite.is_empty() {
                (lo, hi) = (0.0, 1.0);
            }
            let pad =
                if hi - lo > 1e-12 * hi.abs().max(lo.abs()) { 0.06 * (hi - lo) } else { 0.05 * hi.abs().max(1e-3) };
            let y = RangedCoordf64::from((lo - pad)..(hi + pad));
            draw_lines(&root, xmax, y, lines, y_desc, None)?;
        }
        root.present().map_err(err)?;
    }
    Ok(out)
}

fn draw_lines<Y>(
    root: &Area,
    xmax: i32,
    y: Y,
    lines: &[Line],
    y_desc: &str,
    log_floor: Option<f64>,
) -> Result<(), String>
where
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let mut chart = ChartBuilder::on(root)
        .margin(10)
        .margin_right(16)
        .x_label_area_size(34)
        .y_label_area_size(62)
        // Half a block of margin on each side, so the end points clear the axes.
        .build_cartesian_2d(RangedCoordf64::from(-0.5..(xmax as f64 + 0.5)), y)
        .map_err(err)?;
    house_style(&mut chart.configure_mesh())
        .x_desc("block")
        .y_desc(y_desc)
        .x_labels((xmax as usize + 2).min(12))
        .x_label_formatter(&|x| {
            let whole = (x - x.round()).abs() < 1e-9 && *x > -0.5;
            if whole {
                format!("{}", x.round() as i64)
            } else {
                String::new()
            }
        })
        .y_labels(6)
        .y_label_formatter(&|v| tick(*v))
        .draw()
        .map_err(err)?;
    for line in lines {
        let style = line.color.stroke_width(2);
        // Runs of drawable points; a NaN (or ±inf) ends a run.
        let mut runs: Vec<Vec<(f64, f64, bool)>> = vec![vec![]];
        for &(x, v) in &line.points {
            if !v.is_finite() {
                runs.push(vec![]);
                continue;
            }
            match log_floor {
                Some(floor) if v <= 0.0 => runs.last_mut().unwrap().push((x as f64, floor, true)),
                _ => runs.last_mut().unwrap().push((x as f64, v, false)),
            }
        }
        for run in runs.iter().filter(|r| !r.is_empty()) {
            chart.draw_series(LineSeries::new(run.iter().map(|&(x, v, _)| (x, v)), style)).map_err(err)?;
            chart
                .draw_series(run.iter().map(|&(x, v, clamped)| {
                    if clamped {
                        Circle::new((x, v), 3, line.color.stroke_width(1))
                    } else {
                        Circle::new((x, v), 2, line.color.filled())
                    }
                }))
                .map_err(err)?;
        }
    }
    Ok(())
}
