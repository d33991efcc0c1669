//! Learning curves as SVG charts with labelled axes, ticks and a legend (plotters' SVG backend
//! writes text as `<text>` elements, so no font files are needed).

use std::path::Path;

use plotters::prelude::*;
use rssm::data::atomic::write_bytes_atomically;
use rssm::{Error, Result};

/// One named line of `(x, y)` points.
pub struct Series<'a> {
    pub name: &'a str,
    pub points: Vec<(f64, f64)>,
}

/// One chart: a caption, axis labels and its lines.
pub struct Chart<'a> {
    pub caption: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub series: Vec<Series<'a>>,
}

/// Line colours, in order: the first series is the one that matters (blue), the second a
/// baseline (orange).
const COLOURS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// Most points drawn per line: longer series are thinned evenly (keeping the last point), so
/// a long run's chart stays small.
const MAX_POINTS: usize = 1000;

fn thin(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let finite: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    if finite.len() <= MAX_POINTS {
        return finite;
    }
    let stride = finite.len().div_ceil(MAX_POINTS);
    let mut out: Vec<(f64, f64)> = finite.iter().copied().step_by(stride).collect();
    if out.last() != finite.last() {
        out.extend(finite.last());
    }
    out
}

/// The range of `values` with a margin, never empty (a flat line gets +-1).
fn padded_range(values: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() || !hi.is_finite() {
        return 0.0..1.0;
    }
    let pad = if hi > lo { 0.05 * (hi - lo) } else { 1.0 };
    (lo - pad)..(hi + pad)
}

/// Draws `charts` side by side in a grid of `columns` and writes the SVG atomically.
pub fn write_charts_svg(path: &Path, charts: &[Chart], columns: usize) -> Result<()> {
    let svg = render(charts, columns).map_err(|e| Error::File {
        path: path.to_path_buf(),
        msg: format!("cannot draw the chart: {e}"),
    })?;
    write_bytes_atomically(path, svg.as_bytes())?;
    Ok(())
}

fn render(charts: &[Chart], columns: usize) -> std::result::Result<String, String> {
    let columns = columns.clamp(1, charts.len().max(1));
    let rows = charts.len().div_ceil(columns).max(1);
    let (w, h) = (560 * columns as u32, 360 * rows as u32);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let areas = root.split_evenly((rows, columns));
        for (chart, area) in charts.iter().zip(areas.iter()) {
            draw(chart, area).map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

fn draw<DB: DrawingBackend>(
    chart: &Chart,
    area: &DrawingArea<DB, plotters::coord::Shift>,
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let lines: Vec<Vec<(f64, f64)>> = chart.series.iter().map(|s| thin(&s.points)).collect();
    let xs = padded_range(lines.iter().flatten().map(|p| p.0));
    let ys = padded_range(lines.iter().flatten().map(|p| p.1));
    let mut ctx = ChartBuilder::on(area)
        .caption(chart.caption, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d(xs, ys)?;
    ctx.configure_mesh()
        .x_desc(chart.x_label)
        .y_desc(chart.y_label)
        .x_labels(6)
        .y_labels(6)
        .x_label_formatter(&tick_label)
        .y_label_formatter(&tick_label)
        .axis_desc_style(("sans-serif", 16))
        .label_style(("sans-serif", 13))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()?;
    for (i, (series, points)) in chart.series.iter().zip(lines).enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let style = ShapeStyle::from(&colour).stroke_width(2);
        ctx.draw_series(LineSeries::new(points.iter().copied(), style))?
            .label(series.name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
        if points.len() < 60 {
            ctx.draw_series(
                points
                    .iter()
                    .map(|&p| Circle::new(p, 3, ShapeStyle::from(&colour).filled())),
            )?;
        }
    }
    ctx.configure_series_labels()
        .label_font(("sans-serif", 13))
        .position(legend_corner(&chart.series))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(190, 190, 190))
        .draw()?;
    Ok(())
}

/// A tick value without float noise or a needless ".0": 600, 0.25, 1e-5 as 0.00001.
fn tick_label(v: &f64) -> String {
    let s = format!("{v:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

/// Where the legend covers least: a first line that falls (a loss) leaves the upper right
/// free, one that rises (a return) the upper left.
fn legend_corner(series: &[Series]) -> SeriesLabelPosition {
    let first = series.first().map(|s| thin(&s.points)).unwrap_or_default();
    let half = first.len() / 2;
    let mean = |p: &[(f64, f64)]| p.iter().map(|q| q.1).sum::<f64>() / p.len().max(1) as f64;
    if half > 0 && mean(&first[half..]) < mean(&first[..half]) {
        SeriesLabelPosition::UpperRight
    } else {
        SeriesLabelPosition::UpperLeft
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_have_axes_ticks_and_a_legend() {
        let charts = [Chart {
            caption: "evaluation return",
            x_label: "environment steps",
            y_label: "return",
            series: vec![
                Series {
                    name: "actor",
                    points: vec![(1000.0, 5.0), (2000.0, 120.0), (3000.0, 480.0)],
                },
                Series {
                    name: "random policy",
                    points: vec![(1000.0, 12.5), (3000.0, 12.5)],
                },
            ],
        }];
        let svg = render(&charts, 1).unwrap();
        for text in [
            "evaluation return",
            "environment steps",
            "\nreturn\n",
            "actor",
            "random policy",
            "<polyline",
        ] {
            assert!(svg.contains(text), "{text:?} missing from the chart");
        }
        // Tick labels: numbers along both axes.
        for tick in ["\n1000\n", "\n2000\n", "\n0\n", "\n400\n"] {
            assert!(svg.contains(tick), "tick {tick:?} missing");
        }
        // Empty, flat and non-finite series still draw.
        let odd = [Chart {
            caption: "c",
            x_label: "x",
            y_label: "y",
            series: vec![
                Series {
                    name: "flat",
                    points: vec![(0.0, 1.0), (1.0, 1.0), (2.0, f64::NAN)],
                },
                Series {
                    name: "empty",
                    points: vec![],
                },
            ],
        }];
        assert!(render(&odd, 2).unwrap().contains("flat"));
        let long: Vec<(f64, f64)> = (0..10_000).map(|i| (i as f64, (i as f64).sin())).collect();
        assert_eq!(tick_label(&600.0), "600");
        assert_eq!(tick_label(&0.30000000000000004), "0.3");
        assert_eq!(tick_label(&-0.0), "0");
        assert_eq!(tick_label(&1e-5), "0.00001");
        let thinned = thin(&long);
        assert!(thinned.len() <= MAX_POINTS + 1);
        assert_eq!(thinned.last(), long.last());
    }
}
