//! The report's charts, drawn with `plotters`' SVG backend into strings that the page inlines.
//!
//! Text is left to the browser (SVG `<text>`, no font files), colours are Okabe and Ito's
//! colour-blind-safe palette, and every chart has a title and labelled axes with units.

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::error::{PipelineError, Result};

/// Okabe and Ito's palette (without black), distinguishable with any colour-vision deficiency.
pub const PALETTE: [RGBColor; 7] = [
    RGBColor(0, 114, 178),
    RGBColor(230, 159, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(213, 94, 0),
    RGBColor(240, 228, 66),
];

const FONT: &str = "sans-serif";
const WIDTH: u32 = 720;
/// The reference lines (random order, perfect calibration).
const GREY: RGBColor = RGBColor(120, 120, 120);

/// Draws into an SVG string of `width` × `height` pixels.
fn svg(
    height: u32,
    draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> std::result::Result<(), String>,
) -> Result<String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        draw(&root).map_err(|e| PipelineError::Internal(format!("a report chart: {e}")))?;
        root.present().map_err(chart_error)?;
    }
    Ok(out)
}

fn chart_error(e: impl std::fmt::Debug) -> PipelineError {
    PipelineError::Internal(format!("a report chart: {e:?}"))
}

fn err(e: impl std::fmt::Debug) -> String {
    format!("{e:?}")
}

/// The charts on two numeric axes.
type XyChart<'a, 'b> =
    ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Draws `points` as a line of `colour` and `width`, named `name` in the legend.
fn named_line(
    chart: &mut XyChart<'_, '_>,
    points: Vec<(f64, f64)>,
    colour: RGBColor,
    width: u32,
    name: &str,
) -> std::result::Result<(), String> {
    chart
        .draw_series(LineSeries::new(points, colour.stroke_width(width)))
        .map_err(err)?
        .label(name)
        .legend(move |(x, y)| {
            PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(width))
        });
    Ok(())
}

/// Draws the legend of the named series at `position`, on a light box.
fn legend<'a, 'b>(
    chart: &mut XyChart<'a, 'b>,
    position: SeriesLabelPosition,
) -> std::result::Result<(), String>
where
    'b: 'a,
{
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(err)
}

/// The label of a category axis' tick: the name of the segment it centres.
fn category(names: &[String], v: &SegmentValue<usize>) -> String {
    match v {
        SegmentValue::CenterOf(i) => names.get(*i).cloned().unwrap_or_default(),
        _ => String::new(),
    }
}

/// Horizontal bars: one per label, its value on the x axis.
pub fn bars(title: &str, labels: &[String], values: &[f64], x_label: &str) -> Result<String> {
    let n = labels.len().max(1);
    let max = values.iter().copied().fold(0.0_f64, f64::max).max(1.0) * 1.1;
    svg(80 + 34 * n as u32, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 18))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(230)
            .build_cartesian_2d(0.0..max, (0..n).into_segmented())
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(n)
            .y_label_formatter(&|y| category(labels, y))
            .x_desc(x_label)
            .x_label_formatter(&|x| count(*x))
            .draw()
            .map_err(err)?;
        chart
            .draw_series(values.iter().enumerate().map(|(i, v)| {
                Rectangle::new(
                    [
                        (0.0, SegmentValue::Exact(i)),
                        (*v, SegmentValue::Exact(i + 1)),
                    ],
                    PALETTE[0].filled(),
                )
            }))
            .map_err(err)?;
        Ok(())
    })
}

/// A heat map of `values[row][column]` (z-scores), blue below 0 and orange above, clamped at
/// ±`limit`; rows are labelled on the left, columns below.
pub fn heatmap(
    title: &str,
    rows: &[String],
    columns: &[String],
    values: &[Vec<f64>],
    limit: f64,
) -> Result<String> {
    let (nr, nc) = (rows.len().max(1), columns.len().max(1));
    svg(90 + 24 * nr as u32, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 18))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(200)
            .build_cartesian_2d((0..nc).into_segmented(), (0..nr).into_segmented())
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(nc)
            .y_labels(nr)
            .x_label_formatter(&|x| category(columns, x))
            .y_label_formatter(&|y| match y {
                SegmentValue::CenterOf(i) => rows.get(nr - 1 - *i).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .x_desc("segment (orange: above all customers, blue: below; in standard deviations)")
            .draw()
            .map_err(err)?;
        chart
            .draw_series(values.iter().enumerate().flat_map(|(r, row)| {
                row.iter().enumerate().map(move |(c, z)| {
                    let y = nr - 1 - r;
                    Rectangle::new(
                        [
                            (SegmentValue::Exact(c), SegmentValue::Exact(y)),
                            (SegmentValue::Exact(c + 1), SegmentValue::Exact(y + 1)),
                        ],
                        diverging(*z / limit).filled(),
                    )
                })
            }))
            .map_err(err)?;
        Ok(())
    })
}

/// Blue (-1) through white (0) to orange (+1).
fn diverging(t: f64) -> RGBColor {
    let t = if t.is_finite() {
        t.clamp(-1.0, 1.0)
    } else {
        0.0
    };
    let (end, s) = if t < 0.0 {
        (PALETTE[0], -t)
    } else {
        (PALETTE[1], t)
    };
    let mix = |a: u8| (255.0 + (f64::from(a) - 255.0) * s).round() as u8;
    RGBColor(mix(end.0), mix(end.1), mix(end.2))
}

/// Lines over labelled x positions (e.g. nights): one series per name.
pub fn lines(
    title: &str,
    x_labels: &[String],
    series: &[(String, Vec<Option<f64>>)],
    y_label: &str,
) -> Result<String> {
    let n = x_labels.len().max(2);
    let max = series
        .iter()
        .flat_map(|(_, v)| v.iter().flatten())
        .copied()
        .fold(0.0_f64, f64::max)
        .max(1e-9)
        * 1.15;
    svg(340, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 18))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(-0.5..(n as f64 - 0.5), 0.0..max)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_labels(n.min(8))
            .x_label_formatter(&|x| {
                let i = x.round();
                if (x - i).abs() < 1e-6 && i >= 0.0 {
                    x_labels.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .x_desc("night")
            .y_desc(y_label)
            .draw()
            .map_err(err)?;
        for (k, (name, values)) in series.iter().enumerate() {
            let colour = PALETTE[k % PALETTE.len()];
            let points: Vec<(f64, f64)> = values
                .iter()
                .enumerate()
                .filter_map(|(i, v)| v.map(|v| (i as f64, v)))
                .collect();
            named_line(&mut chart, points.clone(), colour, 2, name)?;
            chart
                .draw_series(points.iter().map(|p| Circle::new(*p, 3, colour.filled())))
                .map_err(err)?;
        }
        legend(&mut chart, SeriesLabelPosition::MiddleRight)
    })
}

/// Stacked bars: one bar per x label, one stack per series.
pub fn stacked(
    title: &str,
    x_labels: &[String],
    series: &[(String, Vec<f64>)],
    y_label: &str,
) -> Result<String> {
    let n = x_labels.len().max(1);
    let totals: Vec<f64> = (0..n)
        .map(|i| {
            series
                .iter()
                .map(|(_, v)| v.get(i).copied().unwrap_or(0.0))
                .sum()
        })
        .collect();
    let max = totals.iter().copied().fold(0.0_f64, f64::max).max(1.0) * 1.1;
    svg(360, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 18))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..n as f64, 0.0..max)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n.min(7))
            .x_label_formatter(&|x| {
                let i = x.floor();
                x_labels.get(i as usize).cloned().unwrap_or_default()
            })
            .y_label_formatter(&|y| count(*y))
            .x_desc("event day")
            .y_desc(y_label)
            .draw()
            .map_err(err)?;
        let mut base = vec![0.0; n];
        for (k, (name, values)) in series.iter().enumerate() {
            let colour = PALETTE[k % PALETTE.len()];
            let bars: Vec<Rectangle<(f64, f64)>> = (0..n)
                .map(|i| {
                    let v = values.get(i).copied().unwrap_or(0.0);
                    let r = Rectangle::new(
                        [(i as f64 + 0.1, base[i]), (i as f64 + 0.9, base[i] + v)],
                        colour.filled(),
                    );
                    base[i] += v;
                    r
                })
                .collect();
            chart
                .draw_series(bars)
                .map_err(err)?
                .label(name.as_str())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled())
                });
        }
        legend(&mut chart, SeriesLabelPosition::UpperLeft)
    })
}

/// Cumulative gains: the share of buyers found (y) in the top x deciles, per model, beside
/// the diagonal of a random order.
pub fn gains(title: &str, series: &[(String, Vec<f64>)]) -> Result<String> {
    svg(360, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 18))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..10.0, 0.0..1.0)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("customers contacted, top deciles by probability (of 10)")
            .y_desc("share of the buyers reached")
            .y_label_formatter(&|y| percent(*y))
            .draw()
            .map_err(err)?;
        named_line(
            &mut chart,
            vec![(0.0, 0.0), (10.0, 1.0)],
            GREY,
            1,
            "random order",
        )?;
        for (k, (name, capture)) in series.iter().enumerate() {
            let colour = PALETTE[k % PALETTE.len()];
            let points: Vec<(f64, f64)> = std::iter::once((0.0, 0.0))
                .chain(
                    capture
                        .iter()
                        .enumerate()
                        .map(|(i, v)| (i as f64 + 1.0, *v)),
                )
                .collect();
            named_line(&mut chart, points, colour, 2, name)?;
        }
        legend(&mut chart, SeriesLabelPosition::LowerRight)
    })
}

/// A calibration plot: per series, points of (mean predicted probability, observed rate),
/// beside the diagonal of perfect calibration.
pub fn calibration(title: &str, series: &[(String, Vec<(f64, f64)>)]) -> Result<String> {
    let max = series
        .iter()
        .flat_map(|(_, p)| p.iter().flat_map(|(x, y)| [*x, *y]))
        .filter(|v| v.is_finite())
        .fold(0.05_f64, f64::max)
        .min(1.0);
    svg(360, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 18))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..max, 0.0..max)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("predicted probability of a purchase (decile mean)")
            .y_desc("observed purchase rate")
            .x_label_formatter(&|x| percent(*x))
            .y_label_formatter(&|y| percent(*y))
            .draw()
            .map_err(err)?;
        named_line(
            &mut chart,
            vec![(0.0, 0.0), (max, max)],
            GREY,
            1,
            "perfectly calibrated",
        )?;
        for (k, (name, points)) in series.iter().enumerate() {
            let colour = PALETTE[k % PALETTE.len()];
            named_line(&mut chart, points.clone(), colour, 2, name)?;
            chart
                .draw_series(points.iter().map(|p| Circle::new(*p, 4, colour.filled())))
                .map_err(err)?;
        }
        legend(&mut chart, SeriesLabelPosition::UpperLeft)
    })
}

/// A forest plot: each row's estimate with its interval, against a line at 0.
pub fn forest(title: &str, rows: &[(String, f64, f64, f64)], x_label: &str) -> Result<String> {
    let n = rows.len().max(1);
    let reach = rows
        .iter()
        .flat_map(|(_, e, l, h)| [e.abs(), l.abs(), h.abs()])
        .filter(|v| v.is_finite())
        .fold(0.01_f64, f64::max)
        * 1.2;
    let names: Vec<String> = rows.iter().rev().map(|r| r.0.clone()).collect();
    svg(80 + 34 * n as u32, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 18))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(260)
            .build_cartesian_2d(-reach..reach, (0..n).into_segmented())
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(n)
            .y_label_formatter(&|y| category(&names, y))
            .x_label_formatter(&|x| percent(*x))
            .x_desc(x_label)
            .draw()
            .map_err(err)?;
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(0.0, SegmentValue::Exact(0)), (0.0, SegmentValue::Exact(n))],
                BLACK.stroke_width(1),
            )))
            .map_err(err)?;
        for (i, (_, estimate, low, high)) in rows.iter().enumerate() {
            let y = SegmentValue::CenterOf(n - 1 - i);
            let colour = if *low > 0.0 || *high < 0.0 {
                PALETTE[5]
            } else {
                PALETTE[0]
            };
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(*low, y.clone()), (*high, y.clone())],
                    colour.stroke_width(3),
                )))
                .map_err(err)?;
            chart
                .draw_series(std::iter::once(Circle::new(
                    (*estimate, y),
                    5,
                    colour.filled(),
                )))
                .map_err(err)?;
        }
        Ok(())
    })
}

/// A count for people: 950, 19.9k, 2.3M.
pub fn count(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.1}B", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// A share for people: 19.5%.
pub fn percent(v: f64) -> String {
    format!("{:.1}%", v * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_written_for_people() {
        assert_eq!(count(950.0), "950");
        assert_eq!(count(19_944.0), "20k");
        assert_eq!(count(2_345.0), "2.3k");
        assert_eq!(count(2_300_000.0), "2.3M");
        assert_eq!(percent(0.195), "19.5%");
        assert_eq!(percent(0.0196), "2.0%");
    }

    #[test]
    fn the_diverging_scale_is_white_at_zero_and_the_palette_at_the_ends() {
        assert_eq!(diverging(0.0), RGBColor(255, 255, 255));
        assert_eq!(diverging(-1.0), PALETTE[0]);
        assert_eq!(diverging(5.0), PALETTE[1]);
        assert_eq!(diverging(f64::NAN), RGBColor(255, 255, 255));
    }
}
