//! SVG charts of benchmark results (`bench --plot`): labelled horizontal bars, one panel per
//! breakdown, drawn with plotters' SVG backend (text stays SVG text, so no font library).

use anyhow::{anyhow, Result};
use std::ops::Range;

use plotters::coord::ranged1d::{AsRangedCoord, DefaultFormatting, KeyPointHint, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// One bar: its label, length and optional range drawn as a whisker (e.g. min-max).
pub struct Bar {
    pub label: String,
    pub value: f64,
    pub range: Option<(f64, f64)>,
    /// Text written after the bar (the value with its unit).
    pub note: String,
}

/// A titled group of bars sharing an x axis.
pub struct Panel {
    pub title: String,
    pub x_label: String,
    pub bars: Vec<Bar>,
    /// Logarithmic x axis, for values spanning orders of magnitude (the bars then start at
    /// half the smallest value instead of zero).
    pub log_scale: bool,
}

const WIDTH: u32 = 1100;
const TITLE_HEIGHT: u32 = 44;
const ROW_HEIGHT: u32 = 26;
/// Caption, x axis and margins of a panel.
const PANEL_CHROME: u32 = 110;
const LABEL_FONT: u32 = 16;
/// Generous width of one label character at `LABEL_FONT` (SVG text is measured by the
/// viewer, not here).
const CHAR_WIDTH: u32 = 8;
const BAR_COLOR: RGBColor = RGBColor(66, 110, 180);

/// The y axis of a bar chart: row `i` is centred on `i`, and the key points (where labels
/// go) are exactly the rows.
struct Rows(usize);

impl Ranged for Rows {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let share = (value + 0.5) / self.0.max(1) as f64;
        limit.0 + (share * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, _hint: Hint) -> Vec<f64> {
        (0..self.0).map(|i| i as f64).collect()
    }

    fn range(&self) -> Range<f64> {
        -0.5..self.0.max(1) as f64 - 0.5
    }
}

fn panel_height(p: &Panel) -> u32 {
    PANEL_CHROME + ROW_HEIGHT * p.bars.len().max(1) as u32
}

/// Render `panels` stacked under `title` as an SVG document.
pub fn svg(title: &str, panels: &[Panel]) -> Result<String> {
    let height = TITLE_HEIGHT + panels.iter().map(panel_height).sum::<u32>();
    let label_chars = panels
        .iter()
        .flat_map(|p| p.bars.iter().map(|b| b.label.chars().count()))
        .max()
        .unwrap_or(0) as u32;
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, (WIDTH, height)).into_drawing_area();
        draw(&root, title, panels, label_chars)
            .map_err(|e| anyhow!("cannot draw the chart: {e}"))?;
        root.present()
            .map_err(|e| anyhow!("cannot draw the chart: {e}"))?;
    }
    Ok(text)
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    panels: &[Panel],
    label_chars: u32,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    let (head, mut rest) = root.split_vertically(TITLE_HEIGHT);
    head.draw(&Text::new(
        title.to_string(),
        (WIDTH as i32 / 2, TITLE_HEIGHT as i32 / 2 + 4),
        TextStyle::from(("sans-serif", 22).into_font().style(FontStyle::Bold))
            .pos(Pos::new(HPos::Center, VPos::Center)),
    ))?;
    for p in panels {
        let (area, below) = rest.split_vertically(panel_height(p));
        draw_panel(&area, p, label_chars)?;
        rest = below;
    }
    Ok(())
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    p: &Panel,
    label_chars: u32,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let ends = p
        .bars
        .iter()
        .flat_map(|b| [b.value, b.range.map_or(b.value, |r| r.1)])
        .filter(|v| v.is_finite() && *v > 0.0);
    let longest = ends.clone().fold(0.0, f64::max);
    let shortest = p
        .bars
        .iter()
        .flat_map(|b| [b.value, b.range.map_or(b.value, |r| r.0)])
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold(f64::INFINITY, f64::min);
    if p.log_scale && longest > 0.0 {
        let base = shortest / 2.0;
        // About a quarter of the width stays free for the notes.
        let room = (longest / base).cbrt().max(1.3);
        draw_bars(
            area,
            p,
            label_chars,
            (base..longest * room).log_scale(),
            base,
        )
    } else {
        let x_max = if longest > 0.0 { longest * 1.3 } else { 1.0 };
        draw_bars(area, p, label_chars, 0.0..x_max, 0.0)
    }
}

/// Draw the bars of `p` on an x axis described by `x`, starting at `base`.
fn draw_bars<DB, X>(
    area: &DrawingArea<DB, Shift>,
    p: &Panel,
    label_chars: u32,
    x: X,
    base: f64,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>>
where
    DB: DrawingBackend,
    X: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
{
    let n = p.bars.len();
    // Bar k from the top sits at y = n - 1 - k, so the list reads top-down.
    let y_of = |k: usize| (n - 1 - k) as f64;
    let labels: Vec<&str> = p.bars.iter().rev().map(|b| b.label.as_str()).collect();
    let mut chart = ChartBuilder::on(area)
        .caption(&p.title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(label_chars * CHAR_WIDTH + 16)
        .build_cartesian_2d(x, Rows(n))?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_label_formatter(&|y| {
            let i = y.round();
            if i >= 0.0 && (i as usize) < labels.len() {
                labels[i as usize].to_string()
            } else {
                String::new()
            }
        })
        .label_style(("sans-serif", LABEL_FONT))
        .axis_desc_style(("sans-serif", LABEL_FONT))
        .x_desc(p.x_label.as_str())
        .x_labels(10)
        .draw()?;
    let half = 0.34;
    chart.draw_series(p.bars.iter().enumerate().map(|(k, b)| {
        let y = y_of(k);
        Rectangle::new(
            [(base, y - half), (b.value.max(base), y + half)],
            BAR_COLOR.filled(),
        )
    }))?;
    let whisker = BLACK.stroke_width(2);
    for (k, b) in p.bars.iter().enumerate() {
        let y = y_of(k);
        if let Some((lo, hi)) = b.range {
            chart.draw_series([
                PathElement::new(vec![(lo, y), (hi, y)], whisker),
                PathElement::new(vec![(lo, y - half / 2.0), (lo, y + half / 2.0)], whisker),
                PathElement::new(vec![(hi, y - half / 2.0), (hi, y + half / 2.0)], whisker),
            ])?;
        }
        let end = b.range.map_or(b.value, |r| r.1.max(b.value)).max(base);
        chart.draw_series(std::iter::once(
            EmptyElement::at((end, y))
                + Text::new(
                    b.note.clone(),
                    (8, 0),
                    TextStyle::from(("sans-serif", LABEL_FONT - 2).into_font())
                        .pos(Pos::new(HPos::Left, VPos::Center)),
                ),
        ))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn svg_holds_title_labels_and_notes() {
        let panel = Panel {
            title: "latency".into(),
            x_label: "ms".into(),
            bars: vec![
                Bar {
                    label: "alpha_net".into(),
                    value: 2.0,
                    range: Some((1.5, 3.0)),
                    note: "2.000 ms".into(),
                },
                Bar {
                    label: "beta_net".into(),
                    value: 0.5,
                    range: None,
                    note: "0.500 ms".into(),
                },
            ],
            log_scale: false,
        };
        let log = Panel {
            title: "spread".into(),
            x_label: "ms (log scale)".into(),
            bars: vec![
                Bar {
                    label: "gamma_net".into(),
                    value: 1000.0,
                    range: Some((900.0, 1100.0)),
                    note: "1000 ms".into(),
                },
                Bar {
                    label: "delta_net".into(),
                    value: 0.1,
                    range: Some((0.09, 0.2)),
                    note: "0.1 ms".into(),
                },
            ],
            log_scale: true,
        };
        let text = svg("chart title", &[panel, log]).unwrap();
        for needle in [
            "<svg",
            "chart title",
            "alpha_net",
            "beta_net",
            "2.000 ms",
            "gamma_net",
            "delta_net",
            "<rect",
        ] {
            assert!(text.contains(needle), "{needle} missing from the SVG");
        }
    }
}
