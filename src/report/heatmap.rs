//! The report's heatmaps (quantization error per linear and type; signal correlations) and
//! their colour scales, drawn directly on a plotters SVG drawing area.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::svg::{err, tick, Area, FONT};
use crate::model::tensor_id::gguf_block_name;

/// Linear interpolation between evenly spaced colour stops, `t` in [0, 1].
fn ramp(stops: &[(u8, u8, u8)], t: f64) -> RGBColor {
    let t = if t.is_finite() { t.clamp(0.0, 1.0) } else { 0.0 };
    let pos = t * (stops.len() - 1) as f64;
    let i = (pos.floor() as usize).min(stops.len() - 2);
    let f = pos - i as f64;
    let mix = |a: u8, b: u8| (a as f64 + (b as f64 - a as f64) * f).round() as u8;
    let (a, b) = (stops[i], stops[i + 1]);
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Viridis (sequential, perceptually uniform), `t` in [0, 1].
fn viridis(t: f64) -> RGBColor {
    const STOPS: [(u8, u8, u8); 9] = [
        (68, 1, 84),
        (72, 40, 120),
        (62, 73, 137),
        (49, 104, 142),
        (38, 130, 142),
        (31, 158, 137),
        (53, 183, 121),
        (110, 206, 88),
        (253, 231, 37),
    ];
    ramp(&STOPS, t)
}

/// ColorBrewer RdBu reversed: −1 blue, 0 near-white, +1 red.
fn diverging(rho: f64) -> RGBColor {
    const STOPS: [(u8, u8, u8); 5] = [(33, 102, 172), (146, 197, 222), (247, 247, 247), (244, 165, 130), (178, 24, 43)];
    ramp(&STOPS, (rho + 1.0) / 2.0)
}

const MISSING: RGBColor = RGBColor(208, 208, 208);

fn text(area: &Area, s: &str, (x, y): (i32, i32), size: u32, pos: Pos) -> Result<(), String> {
    let style = TextStyle::from((FONT, size).into_font()).pos(pos);
    area.draw(&Text::new(s.to_string(), (x, y), style)).map_err(err)
}

fn text_styled(area: &Area, s: &str, at: (i32, i32), style: TextStyle) -> Result<(), String> {
    area.draw(&Text::new(s.to_string(), at, style)).map_err(err)
}

fn rect(area: &Area, (x0, y0): (i32, i32), (x1, y1): (i32, i32), c: RGBColor) -> Result<(), String> {
    area.draw(&Rectangle::new([(x0, y0), (x1, y1)], c.filled())).map_err(err)
}

/// A vertical colour bar from `top` (t = 1) to `top + h` (t = 0), with tick labels at the given
/// (t, label) pairs on its right.
fn colour_bar(
    area: &Area,
    (x, top): (i32, i32),
    h: i32,
    colour: &dyn Fn(f64) -> RGBColor,
    ticks: &[(f64, String)],
) -> Result<(), String> {
    const W: i32 = 16;
    for dy in 0..h {
        let t = 1.0 - (dy as f64 + 0.5) / h as f64;
        rect(area, (x, top + dy), (x + W, top + dy + 1), colour(t))?;
    }
    area.draw(&Rectangle::new([(x, top), (x + W, top + h)], BLACK.mix(0.5).stroke_width(1))).map_err(err)?;
    for (t, label) in ticks {
        let y = top + ((1.0 - t) * h as f64).round() as i32;
        area.draw(&PathElement::new(vec![(x + W, y), (x + W + 4, y)], BLACK)).map_err(err)?;
        text(area, label, (x + W + 7, y), 14, Pos::new(HPos::Left, VPos::Center))?;
    }
    Ok(())
}

/// One row of the quantization-error heatmap: its block and, per column, the relative error
/// (`None`: the type does not apply to this tensor).
pub struct HeatRow {
    pub block: usize,
    pub cells: Vec<Option<f64>>,
}

/// Quantization-error heatmap: thin rows (linears, grouped by block with a 1 px gap and a label
/// per block), one column per quantization type, colour = log10(relative error).
pub fn quant_heatmap(rows: &[HeatRow], columns: &[String]) -> Result<String, String> {
    const LEFT: i32 = 62;
    const TOP: i32 = 30;
    const CW: i32 = 48;
    const RH: i32 = 4;
    let logs: Vec<f64> = rows
        .iter()
        .flat_map(|r| r.cells.iter().flatten())
        .filter(|v| v.is_finite() && **v > 0.0)
        .map(|v| v.log10())
        .collect();
    let (mut vmin, mut vmax) = logs.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    if logs.is_empty() {
        (vmin, vmax) = (-3.0, 0.0);
    }
    if vmax - vmin < 1e-9 {
        (vmin, vmax) = (vmin - 0.5, vmax + 0.5);
    }
    // Row tops: one pixel of gap at each block boundary.
    let mut tops = Vec::with_capacity(rows.len());
    let mut y = TOP;
    for (i, r) in rows.iter().enumerate() {
        if i > 0 && r.block != rows[i - 1].block {
            y += 1;
        }
        tops.push(y);
        y += RH;
    }
    let matrix_bottom = y;
    let ncols = columns.len() as i32;
    let bar_x = LEFT + ncols * CW + 28;
    let bar_h = (matrix_bottom - TOP).clamp(120, 260);
    let width = (bar_x + 110) as u32;
    let height = (matrix_bottom.max(TOP + bar_h + 70) + 12) as u32;

    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        for (j, name) in columns.iter().enumerate() {
            let x = LEFT + j as i32 * CW + CW / 2;
            text(&root, name, (x, TOP - 6), 15, Pos::new(HPos::Center, VPos::Bottom))?;
        }
        let t_of = |v: f64| (v.log10() - vmin) / (vmax - vmin);
        let mut last_label = -1000;
        for (i, r) in rows.iter().enumerate() {
            let y = tops[i];
            for (j, cell) in r.cells.iter().enumerate() {
                let x = LEFT + j as i32 * CW;
                let c = match cell {
                    Some(v) if v.is_finite() && *v > 0.0 => viridis(t_of(*v)),
                    Some(v) if *v == 0.0 => viridis(0.0),
                    _ => MISSING,
                };
                rect(&root, (x, y), (x + CW - 1, y + RH), c)?;
            }
            let first_of_block = i == 0 || r.block != rows[i - 1].block;
            if first_of_block {
                let n = rows[i..].iter().take_while(|o| o.block == r.block).count() as i32;
                let mid = y + n * RH / 2;
                root.draw(&PathElement::new(vec![(LEFT - 4, y), (LEFT - 1, y)], BLACK)).map_err(err)?;
                if mid - last_label >= 14 {
                    let label = gguf_block_name(r.block);
                    text(&root, &label, (LEFT - 7, mid), 14, Pos::new(HPos::Right, VPos::Center))?;
                    last_label = mid;
                }
            }
        }
        // Legend: colour bar with ticks at whole decades (or the ends, if under one decade).
        text(&root, "relative error", (bar_x - 4, TOP - 6), 14, Pos::new(HPos::Left, VPos::Bottom))?;
        let mut ticks: Vec<(f64, String)> = ((vmin.ceil() as i32)..=(vmax.floor() as i32))
            .map(|e| ((e as f64 - vmin) / (vmax - vmin), tick(10f64.powi(e))))
            .collect();
        if ticks.len() < 2 {
            ticks = vec![(0.0, tick(10f64.powf(vmin))), (1.0, tick(10f64.powf(vmax)))];
        }
        colour_bar(&root, (bar_x, TOP), bar_h, &viridis, &ticks)?;
        let sw = TOP + bar_h + 18;
        rect(&root, (bar_x, sw), (bar_x + 16, sw + 12), MISSING)?;
        text(&root, "type not", (bar_x + 23, sw + 6), 14, Pos::new(HPos::Left, VPos::Center))?;
        text(&root, "allowed", (bar_x + 23, sw + 21), 14, Pos::new(HPos::Left, VPos::Center))?;
        root.present().map_err(err)?;
    }
    Ok(out)
}

/// Correlation matrix heatmap, ρ printed in each cell; names on the left and (rotated) below.
pub fn corr_heatmap(names: &[String], matrix: &[Vec<f64>]) -> Result<String, String> {
    const CELL: i32 = 62;
    const TOP: i32 = 12;
    let longest = names.iter().map(|n| n.chars().count()).max().unwrap_or(1) as i32;
    let label_w = longest * 7 + 16;
    let k = names.len() as i32;
    let left = label_w;
    let bar_x = left + k * CELL + 24;
    let bar_h = (k * CELL).clamp(120, 300);
    let width = (bar_x + 70) as u32;
    let height = (TOP + (k * CELL).max(bar_h) + label_w + 4) as u32;
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        for i in 0..k {
            let y = TOP + i * CELL;
            let name = &names[i as usize];
            text(&root, name, (left - 8, y + CELL / 2), 15, Pos::new(HPos::Right, VPos::Center))?;
            let rotated = TextStyle::from((FONT, 15).into_font().transform(FontTransform::Rotate270))
                .pos(Pos::new(HPos::Right, VPos::Center));
            let x = left + i * CELL + CELL / 2;
            text_styled(&root, name, (x, TOP + k * CELL + 8), rotated)?;
            for j in 0..k {
                let x = left + j * CELL;
                let rho = matrix.get(i as usize).and_then(|r| r.get(j as usize)).copied();
                let rho = rho.filter(|v| v.is_finite());
                let c = rho.map_or(MISSING, diverging);
                rect(&root, (x, y), (x + CELL - 2, y + CELL - 2), c)?;
                let label = rho.map_or("–".to_string(), |v| format!("{v:.2}"));
                let ink = if rho.is_some_and(|v| v.abs() > 0.6) { WHITE } else { BLACK };
                let style =
                    TextStyle::from((FONT, 17).into_font()).color(&ink).pos(Pos::new(HPos::Center, VPos::Center));
                text_styled(&root, &label, (x + CELL / 2 - 1, y + CELL / 2 - 1), style)?;
            }
        }
        let ticks: Vec<(f64, String)> =
            [-1.0, -0.5, 0.0, 0.5, 1.0].iter().map(|&v| ((v + 1.0) / 2.0, tick(v))).collect();
        colour_bar(&root, (bar_x, TOP), bar_h, &|t| diverging(2.0 * t - 1.0), &ticks)?;
        root.present().map_err(err)?;
    }
    Ok(out)
}

/// One cell of a [`block_grid`]: its colour on the viridis scale (`t` in [0, 1]) and the text
/// drawn in it; `t` None is grey (removed).
pub struct GridCell {
    pub t: Option<f64>,
    pub text: String,
}

/// A [`block_grid`]'s key: named swatches (`t` on the viridis scale), or a colour bar with
/// (t, label) ticks.
pub enum GridLegend {
    Swatches(Vec<(String, f64)>),
    Bar { title: String, ticks: Vec<(f64, String)> },
}

/// A grid of labelled rows (blocks) by named columns (a block's linears), each cell coloured
/// and optionally named, with its key on the right.
pub fn block_grid(
    columns: &[&str],
    rows: &[(String, Vec<Option<GridCell>>)],
    legend: &GridLegend,
) -> Result<String, String> {
    const LEFT: i32 = 92;
    const TOP: i32 = 28;
    const CW: i32 = 78;
    const RH: i32 = 18;
    let bottom = TOP + rows.len() as i32 * RH;
    let key_x = LEFT + columns.len() as i32 * CW + 24;
    let key_h = match legend {
        GridLegend::Swatches(s) => s.len() as i32 * 20,
        GridLegend::Bar { .. } => (bottom - TOP).clamp(120, 260),
    };
    let width = (key_x + 130) as u32;
    let height = (bottom.max(TOP + key_h + 30) + 10) as u32;
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        for (j, name) in columns.iter().enumerate() {
            text(&root, name, (LEFT + j as i32 * CW + CW / 2, TOP - 6), 14, Pos::new(HPos::Center, VPos::Bottom))?;
        }
        for (i, (label, cells)) in rows.iter().enumerate() {
            let y = TOP + i as i32 * RH;
            text(&root, label, (LEFT - 7, y + RH / 2), 14, Pos::new(HPos::Right, VPos::Center))?;
            for (j, cell) in cells.iter().enumerate() {
                let Some(cell) = cell else { continue };
                let x = LEFT + j as i32 * CW;
                rect(&root, (x, y), (x + CW - 1, y + RH - 1), cell.t.map_or(MISSING, viridis))?;
                if !cell.text.is_empty() {
                    // Viridis is dark below the middle: white text there.
                    let ink = if cell.t.is_some_and(|t| t < 0.55) { WHITE } else { BLACK };
                    let style =
                        TextStyle::from((FONT, 13).into_font()).color(&ink).pos(Pos::new(HPos::Center, VPos::Center));
                    text_styled(&root, &cell.text, (x + CW / 2, y + RH / 2), style)?;
                }
            }
        }
        match legend {
            GridLegend::Swatches(s) => {
                for (k, (name, t)) in s.iter().enumerate() {
                    let y = TOP + k as i32 * 20;
                    rect(&root, (key_x, y), (key_x + 16, y + 14), viridis(*t))?;
                    text(&root, name, (key_x + 23, y + 7), 14, Pos::new(HPos::Left, VPos::Center))?;
                }
            }
            GridLegend::Bar { title, ticks } => {
                text(&root, title, (key_x - 4, TOP - 6), 14, Pos::new(HPos::Left, VPos::Bottom))?;
                colour_bar(&root, (key_x, TOP), key_h, &viridis, ticks)?;
            }
        }
        root.present().map_err(err)?;
    }
    Ok(out)
}

#[cfg(test)]
mod grid_tests {
    use super::*;

    #[test]
    fn block_grid_names_cells_columns_and_key() {
        let rows = vec![
            ("0".to_string(), vec![Some(GridCell { t: Some(0.0), text: "Q2_K".into() }), None]),
            (
                "1".to_string(),
                vec![
                    Some(GridCell { t: None, text: "removed".into() }),
                    Some(GridCell { t: Some(1.0), text: String::new() }),
                ],
            ),
        ];
        let svg = block_grid(
            &["attn_q", "ffn_down"],
            &rows,
            &GridLegend::Swatches(vec![("Q2_K".into(), 0.0), ("Q8_0".into(), 1.0)]),
        )
        .unwrap();
        for s in ["attn_q", "ffn_down", "Q2_K", "Q8_0", "removed", "\n0\n", "\n1\n"] {
            assert!(svg.contains(s), "{s} missing");
        }
        // The three cells and the two swatches.
        assert_eq!(svg.matches("<rect").count() - 1, 5, "{svg}");
        let bar = block_grid(
            &["a"],
            &rows[..1],
            &GridLegend::Bar { title: "KL".into(), ticks: vec![(0.0, "0.001".into()), (1.0, "0.1".into())] },
        )
        .unwrap();
        assert!(bar.contains("0.001") && bar.contains("KL"));
    }
}
