//! The allocation report's size–quality plot: KL (log scale) against file size, one series per
//! kind of plan, each point optionally named (a single-type plan by its type), with a legend.

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::svg::{err, house_style, tick, FONT};

/// Size of the plot.
pub const SIZE_PLOT: (u32, u32) = (760, 420);

/// One kind of plan: its points (file size in MiB, KL, an optional name drawn beside the point).
pub struct Series {
    pub label: String,
    pub color: RGBColor,
    pub points: Vec<(f64, f64, Option<String>)>,
    /// Points joined by a line in size order (a frontier), or not.
    pub joined: bool,
    /// Marker radius in pixels.
    pub radius: i32,
}

/// KL against size; points whose KL is not positive and finite cannot sit on the log scale and
/// are left out.
pub fn size_plot(series: &[Series]) -> Result<String, String> {
    let ok = |p: &&(f64, f64, Option<String>)| p.0.is_finite() && p.1.is_finite() && p.1 > 0.0;
    let all: Vec<&(f64, f64, Option<String>)> = series.iter().flat_map(|s| s.points.iter().filter(ok)).collect();
    if all.is_empty() {
        return Err("no plan with a measured KL to plot".into());
    }
    let fold = |f: fn(&(f64, f64, Option<String>)) -> f64| {
        all.iter().map(|p| f(p)).fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)))
    };
    let (xmin, xmax) = fold(|p| p.0);
    let (kmin, kmax) = fold(|p| p.1);
    let xpad = ((xmax - xmin) * 0.08).max(xmax.abs() * 0.01).max(1e-3);
    // Whole decades, so the axis always has at least two labelled ticks.
    let lo = 10f64.powf(kmin.log10().floor());
    let hi = 10f64.powf(kmax.log10().ceil()).max(lo * 10.0);
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, SIZE_PLOT).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let y: LogCoord<f64> = ((lo * 0.999_999)..(hi * 1.000_001)).log_scale().into();
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .margin_right(20)
            .x_label_area_size(40)
            .y_label_area_size(66)
            .build_cartesian_2d(RangedCoordf64::from((xmin - xpad)..(xmax + xpad)), y)
            .map_err(err)?;
        house_style(&mut chart.configure_mesh())
            .x_desc("file size (MiB)")
            .y_desc("mean KL on hold-out windows (nats)")
            .x_labels(8)
            .x_label_formatter(&|x| tick(*x))
            .y_labels(6)
            .y_label_formatter(&|v| tick(*v))
            .draw()
            .map_err(err)?;
        for s in series {
            let mut pts: Vec<&(f64, f64, Option<String>)> = s.points.iter().filter(ok).collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            let color = s.color;
            let drawn = if s.joined && pts.len() > 1 {
                chart
                    .draw_series(LineSeries::new(pts.iter().map(|p| (p.0, p.1)), color.stroke_width(2)))
                    .map_err(err)?;
                chart.draw_series(pts.iter().map(|p| Circle::new((p.0, p.1), s.radius, color.filled()))).map_err(err)?
            } else {
                chart.draw_series(pts.iter().map(|p| Circle::new((p.0, p.1), s.radius, color.filled()))).map_err(err)?
            };
            drawn.label(s.label.clone()).legend(move |(x, y)| Circle::new((x + 8, y), 5, color.filled()));
            let style = TextStyle::from((FONT, 13).into_font()).color(&color).pos(Pos::new(HPos::Left, VPos::Bottom));
            chart
                .draw_series(
                    pts.iter()
                        .filter_map(|p| p.2.as_ref().map(|name| Text::new(name.clone(), (p.0, p.1), style.clone()))),
                )
                .map_err(err)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font((FONT, 14))
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK.mix(0.3))
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_every_series_and_name_and_refuses_an_empty_plot() {
        let s = vec![
            Series {
                label: "one type".into(),
                color: RGBColor(0, 114, 178),
                points: vec![(80.0, 0.05, Some("Q4_K".into())), (95.0, 0.01, Some("Q5_K".into())), (90.0, 0.0, None)],
                joined: true,
                radius: 3,
            },
            Series {
                label: "this plan".into(),
                color: RGBColor(213, 94, 0),
                points: vec![(88.0, 0.012, None)],
                joined: false,
                radius: 6,
            },
        ];
        let svg = size_plot(&s).unwrap();
        for t in ["Q4_K", "Q5_K", "one type", "this plan", "file size (MiB)"] {
            assert!(svg.contains(t), "{t} missing");
        }
        // Three drawable points as markers (the zero KL is left out) and the legend's two.
        assert_eq!(svg.matches("<circle").count(), 5);
        assert!(size_plot(&[Series {
            label: "x".into(),
            color: RGBColor(0, 0, 0),
            points: vec![(1.0, 0.0, None)],
            joined: false,
            radius: 3
        }])
        .is_err());
    }
}
