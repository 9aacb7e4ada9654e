//! The figures of `govfs bench thesis` (the thesis's figures 13 to 20),
//! drawn from the rows of [`crate::thesis_data`] as PNG and SVG.
//!
//! Each figure is first reduced to a [`Plot`]: what will be drawn (a few
//! thousand points at most, whatever the row count), its title and its
//! axes. Drawing is then one generic function per kind of plot, run once
//! per backend, so that the PNG and the SVG of a figure cannot disagree.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::combinators::{LogCoord, WithKeyPoints};
use plotters::coord::ranged1d::{
    AsRangedCoord, DefaultFormatting, KeyPointHint, Ranged, ValueFormatter,
};
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::bench_cmd::percentile;
use crate::thesis_data::{
    mean, sorted, CreateRow, Io, ListRow, LockExperiment, LockKind, LockRow, Order, Sweep,
};

/// One figure written by [`render_all`].
pub struct Figure {
    /// The file stem: the figure is `<name>.png` and `<name>.svg`.
    pub name: String,
    /// One sentence: what is plotted, from how many rows.
    pub caption: String,
}

const SIZE: (u32, u32) = (1000, 600);

/// The only font family there is: plotters is built without `ttf`, so it
/// knows no system font, only the one registered under this name.
const FONT: &str = "sans-serif";
const FONT_BYTES: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

const TITLE_SIZE: u32 = 22;
const DESC_SIZE: u32 = 17;
const LABEL_SIZE: u32 = 14;

/// plotters' default minor grid is dark enough to compete with the data.
const LIGHT_GRID: RGBColor = RGBColor(240, 240, 240);

/// matplotlib's default colours (tab10): the usual look of such figures,
/// blue and orange first for the two variants compared.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];
const TAB_BLUE: RGBColor = PALETTE[0];
const TAB_ORANGE: RGBColor = PALETTE[1];

/// The ends of the ramp of fig. 16: few ministries light, many dark.
const RAMP_LIGHT: RGBColor = RGBColor(158, 202, 225);
const RAMP_DARK: RGBColor = RGBColor(8, 48, 107);

/// A CDF is drawn as steps; past this many, steps are thinner than a
/// pixel and only make the SVG heavy (a list run has 60000 rows a line).
const MAX_CDF_STEPS: usize = 2000;

/// Where the batch and stride violins of a ministry count stand, either
/// side of its tick, and how wide the widest may be: 0.35 of the half
/// slot each has, which leaves a gap between the two.
const VIOLIN_OFFSET: f64 = 0.2;
const VIOLIN_HALF_WIDTH: f64 = 0.35 * 0.5;
const VIOLIN_POINTS: usize = 100;
/// The thesis dropped the points this many standard deviations from
/// their group's mean before drawing its violins.
const VIOLIN_OUTLIER_SD: f64 = 4.0;

/// By-row and whole-file dots stand this far either side of their tick,
/// spread over this much width so that equal durations stay visible.
const DOT_OFFSET: f64 = 0.15;
const DOT_JITTER: f64 = 0.12;

/// The least start time on fig. 16's log axis: a request sent at the
/// common start has a start time of 0, which a log axis cannot show.
const MIN_START_MS: f64 = 0.01;

/// Renders every figure whose data is present into `out` as `<name>.png`
/// and `<name>.svg`; returns the figure names written, in order, each
/// with a one-line caption.
pub fn render_all(
    out: &Path,
    list: &[ListRow],
    create: &[CreateRow],
    locks: &[LockRow],
) -> Result<Vec<Figure>, String> {
    let mut plots = vec![
        ("fig13_list_cdf".to_string(), list_cdf(list)),
        ("fig14_list_violin".to_string(), list_violins(list)),
        ("fig15_create_cdf".to_string(), create_cdf(create)),
        ("fig16_create_scatter".to_string(), create_scatter(create)),
    ];
    // The locking figures once per kind of IO measured.
    let ios: std::collections::BTreeSet<Io> = locks.iter().map(|r| r.io).collect();
    for io in ios {
        let suffix = io.figure_suffix();
        for (name, experiment, sweep, fig) in [
            (
                "fig17_one_row_size",
                LockExperiment::OneRow,
                Sweep::RowSize,
                17,
            ),
            (
                "fig18_one_row_writers",
                LockExperiment::OneRow,
                Sweep::Writers,
                18,
            ),
            (
                "fig19_all_rows_size",
                LockExperiment::AllRows,
                Sweep::RowSize,
                19,
            ),
            (
                "fig20_all_rows_writers",
                LockExperiment::AllRows,
                Sweep::Writers,
                20,
            ),
        ] {
            plots.push((
                format!("{name}{suffix}"),
                lock_dots(locks, io, experiment, sweep, fig),
            ));
        }
    }
    let mut figures = Vec::new();
    for (name, plot) in plots {
        let Some((plot, caption)) = plot else {
            continue;
        };
        if figures.is_empty() {
            register_font()?;
            std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
        }
        plot.render(out, &name)?;
        figures.push(Figure { name, caption });
    }
    Ok(figures)
}

fn register_font() -> Result<(), String> {
    // plotters keeps its fonts in a process-wide table: once is enough,
    // and render_all may run many times (the tests do).
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES)
                .map_err(|_| "the bundled DejaVu Sans font cannot be read".to_string())
        })
        .clone()
}

/// What one figure draws, already reduced from the rows.
enum Plot {
    Cdf(Cdf),
    Violins(Violins),
    Scatter(Scatter),
    Dots(Dots),
}

/// One CDF line per group, on a linear time axis from 0 to `x_max`.
struct Cdf {
    title: String,
    x_desc: &'static str,
    x_max: f64,
    /// Legend label and the group's values, sorted.
    lines: Vec<(String, Vec<f64>)>,
}

/// Violins on categorical x positions (slot `i` at x = i).
struct Violins {
    title: String,
    categories: Vec<String>,
    violins: Vec<Violin>,
    y_max: f64,
}

struct Violin {
    order: Order,
    x: f64,
    /// (y, half-width) from the group's lowest value to its highest.
    outline: Vec<(f64, f64)>,
    /// First quartile, median and third quartile of the values drawn.
    quartiles: [f64; 3],
}

/// Points on a logarithmic x axis, one colour and legend entry a group.
struct Scatter {
    title: String,
    x_range: (f64, f64),
    y_max: f64,
    groups: Vec<ScatterGroup>,
}

struct ScatterGroup {
    label: String,
    color: RGBColor,
    points: Vec<(f64, f64)>,
}

/// One dot per writer on categorical x positions (slot `i` at x = i).
struct Dots {
    title: String,
    x_desc: &'static str,
    y_desc: &'static str,
    categories: Vec<String>,
    y_range: (f64, f64),
    log_y: bool,
    /// (x with its offset and jitter, y, lock kind).
    points: Vec<(f64, f64, LockKind)>,
}

impl Plot {
    fn render(&self, out: &Path, name: &str) -> Result<(), String> {
        let png = out.join(format!("{name}.png"));
        self.draw(BitMapBackend::new(&png, SIZE).into_drawing_area())
            .map_err(|e| format!("{}: {e}", png.display()))?;
        let svg = out.join(format!("{name}.svg"));
        self.draw(SVGBackend::new(&svg, SIZE).into_drawing_area())
            .map_err(|e| format!("{}: {e}", svg.display()))
    }

    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> DrawResult<(), DB> {
        root.fill(&WHITE)?;
        match self {
            Plot::Cdf(plot) => draw_cdf(&root, plot)?,
            Plot::Violins(plot) => draw_violins(&root, plot)?,
            Plot::Scatter(plot) => draw_scatter(&root, plot)?,
            Plot::Dots(plot) if plot.log_y => {
                let (lo, hi) = plot.y_range;
                draw_dots(&root, plot, log_axis(lo, hi))?
            }
            Plot::Dots(plot) => {
                let (lo, hi) = plot.y_range;
                draw_dots(&root, plot, lo..hi)?
            }
        }
        // The bitmap backend writes its file only here; dropping it would
        // write it too, but would swallow the error.
        root.present()
    }
}

fn draw_cdf<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, plot: &Cdf) -> DrawResult<(), DB> {
    let mut chart =
        chart_builder(root, &plot.title).build_cartesian_2d(0.0..plot.x_max, 0.0..1.0)?;
    chart
        .configure_mesh()
        .x_desc(plot.x_desc)
        .y_desc("Proportion of requests completed")
        .x_label_formatter(&|v| tick(*v))
        .y_label_formatter(&|v| format!("{v:.1}"))
        .label_style((FONT, LABEL_SIZE))
        .axis_desc_style((FONT, DESC_SIZE))
        .light_line_style(LIGHT_GRID)
        .draw()?;
    for (i, (label, values)) in plot.lines.iter().enumerate() {
        let style = PALETTE[i % PALETTE.len()].stroke_width(2);
        chart
            .draw_series(LineSeries::new(cdf_points(values, plot.x_max), style))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
    }
    draw_legend(&mut chart, SeriesLabelPosition::LowerRight)
}

fn draw_violins<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    plot: &Violins,
) -> DrawResult<(), DB> {
    let mut chart = chart_builder(root, &plot.title)
        .build_cartesian_2d(Slots(plot.categories.len()), 0.0..plot.y_max)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_desc("Number of ministries")
        .y_desc("List directory duration (ms)")
        .x_label_formatter(&|v| category(&plot.categories, *v))
        .y_label_formatter(&|v| tick(*v))
        .label_style((FONT, LABEL_SIZE))
        .axis_desc_style((FONT, DESC_SIZE))
        .light_line_style(LIGHT_GRID)
        .draw()?;
    for order in [Order::Batch, Order::Stride] {
        let color = order_color(order);
        let violins: Vec<&Violin> = plot.violins.iter().filter(|v| v.order == order).collect();
        if violins.is_empty() {
            continue;
        }
        // The right side up, then the left side down: one closed outline.
        let outline = |v: &Violin| -> Vec<(f64, f64)> {
            let right = v.outline.iter().map(|&(y, w)| (v.x + w, y));
            let left = v.outline.iter().rev().map(|&(y, w)| (v.x - w, y));
            right.chain(left).collect()
        };
        chart
            .draw_series(
                violins
                    .iter()
                    .map(|v| Polygon::new(outline(v), color.mix(0.6).filled())),
            )?
            .label(order.name())
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 20, y + 6)], color.filled()));
        chart.draw_series(violins.iter().map(|v| {
            let mut points = outline(v);
            if let Some(&start) = points.first() {
                points.push(start);
            }
            PathElement::new(points, color.stroke_width(1))
        }))?;
        // The inner box of the usual violin plot: quartiles and median.
        chart.draw_series(violins.iter().map(|v| {
            let [q1, _, q3] = v.quartiles;
            PathElement::new(vec![(v.x, q1), (v.x, q3)], BLACK.stroke_width(3))
        }))?;
        chart.draw_series(
            violins
                .iter()
                .map(|v| Circle::new((v.x, v.quartiles[1]), 3, WHITE.filled())),
        )?;
    }
    draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)
}

fn draw_scatter<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    plot: &Scatter,
) -> DrawResult<(), DB> {
    let (lo, hi) = plot.x_range;
    let mut chart =
        chart_builder(root, &plot.title).build_cartesian_2d(log_axis(lo, hi), 0.0..plot.y_max)?;
    chart
        .configure_mesh()
        .x_desc("Request start time (ms, log scale)")
        .y_desc("Create duration (ms)")
        .x_label_formatter(&|v| tick(*v))
        .y_label_formatter(&|v| tick(*v))
        .label_style((FONT, LABEL_SIZE))
        .axis_desc_style((FONT, DESC_SIZE))
        .light_line_style(LIGHT_GRID)
        .draw()?;
    for group in &plot.groups {
        let color = group.color;
        chart
            .draw_series(
                group
                    .points
                    .iter()
                    .map(|&p| Circle::new(p, 2, color.filled())),
            )?
            .label(&group.label)
            .legend(move |(x, y)| Circle::new((x + 10, y), 4, color.filled()));
    }
    draw_legend(&mut chart, SeriesLabelPosition::UpperRight)
}

/// Generic over the y axis, which is linear for one-row figures and
/// logarithmic for all-rows ones.
fn draw_dots<DB, Y>(root: &DrawingArea<DB, Shift>, plot: &Dots, y_axis: Y) -> DrawResult<(), DB>
where
    DB: DrawingBackend,
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let mut chart = chart_builder(root, &plot.title)
        .build_cartesian_2d(Slots(plot.categories.len()), y_axis)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_desc(plot.x_desc)
        .y_desc(plot.y_desc)
        .x_label_formatter(&|v| category(&plot.categories, *v))
        .y_label_formatter(&|v| tick(*v))
        .label_style((FONT, LABEL_SIZE))
        .axis_desc_style((FONT, DESC_SIZE))
        .light_line_style(LIGHT_GRID)
        .draw()?;
    for kind in [LockKind::ByRow, LockKind::WholeFile] {
        let color = kind_color(kind);
        let points: Vec<(f64, f64)> = plot
            .points
            .iter()
            .filter(|p| p.2 == kind)
            .map(|&(x, y, _)| (x, y))
            .collect();
        if points.is_empty() {
            continue;
        }
        chart
            .draw_series(
                points
                    .into_iter()
                    .map(|p| Circle::new(p, 3, color.mix(0.75).filled())),
            )?
            .label(kind.name())
            .legend(move |(x, y)| Circle::new((x + 10, y), 4, color.filled()));
    }
    draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)
}

fn chart_builder<'a, 'b, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, Shift>,
    title: &str,
) -> ChartBuilder<'a, 'b, DB> {
    let mut builder = ChartBuilder::on(root);
    builder
        .caption(title, (FONT, TITLE_SIZE))
        .margin(16)
        .x_label_area_size(55)
        .y_label_area_size(75);
    builder
}

fn draw_legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> DrawResult<(), DB> {
    chart
        .configure_series_labels()
        .position(position)
        .label_font((FONT, LABEL_SIZE))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
}

/// An x axis of categories: slot `i` is centred on x = i, with a tick
/// there and nowhere else. (plotters' segmented axes take no offsets
/// within a slot, and its f64 axes choose their own ticks.)
struct Slots(usize);

impl Ranged for Slots {
    // The default formatting is never used (every chart passes its own
    // label formatter), but configure_mesh wants one to exist.
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let Range { start, end } = self.range();
        let share = (value - start) / (end - start);
        limit.0 + (f64::from(limit.1 - limit.0) * share).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            return Vec::new();
        }
        (0..self.0).map(|i| i as f64).collect()
    }

    fn range(&self) -> Range<f64> {
        -0.5..self.0 as f64 - 0.5
    }
}

fn category(labels: &[String], x: f64) -> String {
    let slot = x.round();
    if slot >= 0.0 && (slot as usize) < labels.len() {
        labels[slot as usize].clone()
    } else {
        String::new()
    }
}

fn order_color(order: Order) -> RGBColor {
    match order {
        Order::Batch => TAB_BLUE,
        Order::Stride => TAB_ORANGE,
    }
}

fn kind_color(kind: LockKind) -> RGBColor {
    match kind {
        LockKind::ByRow => TAB_BLUE,
        LockKind::WholeFile => TAB_ORANGE,
    }
}

/// A tick label rounded to three significant digits (whole numbers in
/// full), without trailing zeros: the default `{:?}` of an f64 prints
/// 0.30000000000000004.
fn tick(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let decimals = (2 - v.abs().log10().floor() as i32).clamp(0, 6) as usize;
    let text = format!("{v:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn ministries_label(ministries: usize) -> String {
    if ministries == 1 {
        "1 ministry".to_string()
    } else {
        format!("{ministries} ministries")
    }
}

/// Finite values grouped by key, in key order; no group is empty.
fn group<K: Ord>(rows: impl Iterator<Item = (K, f64)>) -> BTreeMap<K, Vec<f64>> {
    let mut groups: BTreeMap<K, Vec<f64>> = BTreeMap::new();
    for (key, value) in rows.filter(|(_, v)| v.is_finite()) {
        groups.entry(key).or_default().push(value);
    }
    groups
}

/// "60000" when every group has as many values, "59000 to 60000" if not.
fn count_range(counts: impl Iterator<Item = usize>) -> String {
    let counts: Vec<usize> = counts.collect();
    match (counts.iter().min(), counts.iter().max()) {
        (Some(lo), Some(hi)) if lo != hi => format!("{lo} to {hi}"),
        (Some(n), _) => n.to_string(),
        _ => "0".to_string(),
    }
}

/// `max` itself unless there is nothing to show (no or only zero
/// values), where plotters needs some range all the same.
fn positive_or_one(max: f64) -> f64 {
    if max > 0.0 && max.is_finite() {
        max
    } else {
        1.0
    }
}

/// A log axis range holding `lo..=hi` (both > 0), with some room.
fn log_range(lo: f64, hi: f64) -> (f64, f64) {
    (lo / 1.5, hi * 1.5)
}

/// A log axis over `lo..hi` with ticks of our own: plotters' own put
/// labels at powers of ten only (none at all on a range within one
/// decade) and pile light lines up past the last one.
fn log_axis(lo: f64, hi: f64) -> WithKeyPoints<LogCoord<f64>> {
    const MAX_TICKS: usize = 12;
    let in_range = |mantissas: &[f64]| -> Vec<f64> {
        let first = lo.log10().floor() as i32;
        let last = hi.log10().ceil() as i32;
        (first..=last)
            .flat_map(|e| mantissas.iter().map(move |m| m * 10f64.powi(e)))
            .filter(|v| (lo..=hi).contains(v))
            .collect()
    };
    let every = in_range(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
    let steps = in_range(&[1.0, 2.0, 5.0]);
    let ticks = if steps.len() > MAX_TICKS {
        in_range(&[1.0])
    } else if steps.len() < 2 {
        every.clone()
    } else {
        steps
    };
    (lo..hi)
        .log_scale()
        .with_key_points(ticks)
        .with_light_points(every)
}

/// The steps of the empirical CDF of `sorted` values, cut at `x_max`.
fn cdf_points(sorted: &[f64], x_max: f64) -> Vec<(f64, f64)> {
    let n = sorted.len();
    let Some(&first) = sorted.first() else {
        return Vec::new();
    };
    let stride = n.div_ceil(MAX_CDF_STEPS).max(1);
    let mut points = vec![(first.min(x_max), 0.0)];
    let mut reached = 0.0;
    let last = n - 1;
    for i in (stride - 1..n)
        .step_by(stride)
        .chain((last % stride != stride - 1).then_some(last))
    {
        let x = sorted[i];
        // Paths are not clipped to the plotting area: stop at its edge
        // and let the line run flat to it.
        if x > x_max {
            points.push((x_max, reached));
            break;
        }
        let y = (i + 1) as f64 / n as f64;
        points.push((x, reached));
        points.push((x, y));
        reached = y;
    }
    points
}

fn list_cdf(list: &[ListRow]) -> Option<(Plot, String)> {
    let groups = group(
        list.iter()
            .filter(|r| r.order == Order::Batch)
            .map(|r| (r.ministries, ms(r.us))),
    );
    let all = sorted(groups.values().flatten().copied().collect());
    if all.is_empty() {
        return None;
    }
    // A handful of outliers would squash every line against the y axis.
    let x_max = positive_or_one(percentile(&all, 0.995));
    let caption = format!(
        "CDF of list-directory duration for {} batch-order requests ({} per ministry count), \
         cut at the 99.5th percentile ({} ms).",
        all.len(),
        count_range(groups.values().map(Vec::len)),
        tick(x_max)
    );
    let plot = Cdf {
        title: "List directory, batch order: CDF by ministries (cf. thesis fig. 13)".to_string(),
        x_desc: "List directory duration (ms)",
        x_max,
        lines: groups
            .into_iter()
            .map(|(m, values)| (ministries_label(m), sorted(values)))
            .collect(),
    };
    Some((Plot::Cdf(plot), caption))
}

fn create_cdf(create: &[CreateRow]) -> Option<(Plot, String)> {
    let groups = group(create.iter().map(|r| (r.ministries, ms(r.us))));
    if groups.is_empty() {
        return None;
    }
    let x_max = groups.values().flatten().copied().fold(f64::NAN, f64::max);
    let caption = format!(
        "CDF of create duration for {} creates ({} per ministry count).",
        groups.values().map(Vec::len).sum::<usize>(),
        count_range(groups.values().map(Vec::len)),
    );
    let plot = Cdf {
        title: "Create file: CDF by ministries (cf. thesis fig. 15)".to_string(),
        x_desc: "Create duration (ms)",
        x_max: positive_or_one(x_max),
        lines: groups
            .into_iter()
            .map(|(m, values)| (ministries_label(m), sorted(values)))
            .collect(),
    };
    Some((Plot::Cdf(plot), caption))
}

/// The outline of one violin, before scaling: (y, density) from the
/// group's lowest value to its highest, or `None` when the values have no
/// spread to estimate a density from.
fn density(values: &[f64]) -> Option<Vec<(f64, f64)>> {
    let n = values.len() as f64;
    let (lo, hi) = (*values.first()?, *values.last()?);
    let sd = std_dev(values);
    let iqr = percentile(values, 0.75) - percentile(values, 0.25);
    // Silverman's rule of thumb; the IQR guards against heavy tails, but
    // is 0 when most values are equal, where the deviation must do.
    let spread = if iqr > 0.0 { sd.min(iqr / 1.34) } else { sd };
    let h = 0.9 * spread * n.powf(-0.2);
    if !(h > 0.0 && hi > lo) {
        return None;
    }
    let norm = 1.0 / (n * h * (2.0 * std::f64::consts::PI).sqrt());
    let profile = (0..VIOLIN_POINTS)
        .map(|k| {
            let y = lo + (hi - lo) * k as f64 / (VIOLIN_POINTS - 1) as f64;
            // Beyond 8 bandwidths a kernel adds under e^-32: summing only
            // the values near y keeps 60000-row groups fast.
            let from = values.partition_point(|&v| v < y - 8.0 * h);
            let to = values.partition_point(|&v| v <= y + 8.0 * h);
            let sum: f64 = values[from..to]
                .iter()
                .map(|&v| (-0.5 * ((y - v) / h).powi(2)).exp())
                .sum();
            (y, sum * norm)
        })
        .collect();
    Some(profile)
}

fn std_dev(values: &[f64]) -> f64 {
    if values.len() < 2 {
        return 0.0;
    }
    let m = mean(values);
    let squares: f64 = values.iter().map(|v| (v - m).powi(2)).sum();
    (squares / (values.len() - 1) as f64).sqrt()
}

/// The values within [`VIOLIN_OUTLIER_SD`] standard deviations of their
/// mean, sorted.
fn without_outliers(values: Vec<f64>) -> Vec<f64> {
    let (m, sd) = (mean(&values), std_dev(&values));
    sorted(
        values
            .into_iter()
            .filter(|v| sd == 0.0 || (v - m).abs() <= VIOLIN_OUTLIER_SD * sd)
            .collect(),
    )
}

fn list_violins(list: &[ListRow]) -> Option<(Plot, String)> {
    let groups = group(list.iter().map(|r| ((r.ministries, r.order), ms(r.us))));
    if groups.is_empty() {
        return None;
    }
    let mut ministries: Vec<usize> = groups.keys().map(|&(m, _)| m).collect();
    ministries.dedup();
    let total = |order: Order| -> usize {
        groups
            .iter()
            .filter(|((_, o), _)| *o == order)
            .map(|(_, v)| v.len())
            .sum()
    };
    let (batch, stride) = (total(Order::Batch), total(Order::Stride));

    let mut dropped = 0;
    let mut shapes = Vec::new();
    for ((m, order), values) in groups {
        let count = values.len();
        let kept = without_outliers(values);
        dropped += count - kept.len();
        let slot = ministries.iter().position(|&x| x == m).unwrap_or_default();
        let x = slot as f64
            + match order {
                Order::Batch => -VIOLIN_OFFSET,
                Order::Stride => VIOLIN_OFFSET,
            };
        let quartiles = [0.25, 0.5, 0.75].map(|p| percentile(&kept, p));
        shapes.push((order, x, quartiles, density(&kept), kept));
    }
    // One scale for all: a violin's area is then its share of the
    // requests of its group, the same for every violin.
    let peak = shapes
        .iter()
        .filter_map(|(_, _, _, profile, _)| profile.as_ref())
        .flatten()
        .map(|&(_, d)| d)
        .fold(0.0, f64::max);
    let mut y_max = 0.0f64;
    let mut violins = Vec::new();
    for (order, x, quartiles, profile, kept) in shapes {
        let (Some(&lo), Some(&hi)) = (kept.first(), kept.last()) else {
            continue;
        };
        y_max = y_max.max(hi);
        let outline = match profile {
            Some(profile) if peak > 0.0 => profile
                .into_iter()
                .map(|(y, d)| (y, d / peak * VIOLIN_HALF_WIDTH))
                .collect(),
            // No spread: all the group at one duration, a flat line.
            _ => vec![(lo, VIOLIN_HALF_WIDTH), (hi, VIOLIN_HALF_WIDTH)],
        };
        violins.push(Violin {
            order,
            x,
            outline,
            quartiles,
        });
    }
    let caption = format!(
        "Distribution of list-directory duration for {} requests ({batch} batch, {stride} stride) \
         by ministry count; {dropped} beyond {VIOLIN_OUTLIER_SD} standard deviations of their \
         group's mean are left out, as in the thesis.",
        batch + stride,
    );
    let plot = Violins {
        title: "List directory: duration by ministries, batch and stride (cf. thesis fig. 14)"
            .to_string(),
        categories: ministries.iter().map(usize::to_string).collect(),
        violins,
        y_max: positive_or_one(y_max * 1.05),
    };
    Some((Plot::Violins(plot), caption))
}

fn create_scatter(create: &[CreateRow]) -> Option<(Plot, String)> {
    let mut groups: BTreeMap<usize, Vec<(f64, f64)>> = BTreeMap::new();
    for r in create {
        groups
            .entry(r.ministries)
            .or_default()
            .push((ms(r.start_us).max(MIN_START_MS), ms(r.us)));
    }
    if groups.is_empty() {
        return None;
    }
    let points = || groups.values().flatten();
    let x_lo = points().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let x_hi = points().map(|p| p.0).fold(MIN_START_MS, f64::max);
    let y_max = points().map(|p| p.1).fold(0.0, f64::max);
    let count = points().count();
    let caption = format!(
        "Duration of {count} creates ({} per ministry count) against their start time.",
        count_range(groups.values().map(Vec::len)),
    );
    let shades = groups.len();
    let plot = Scatter {
        title: "Create file: duration by start time (cf. thesis fig. 16)".to_string(),
        x_range: log_range(x_lo, x_hi),
        y_max: positive_or_one(y_max * 1.05),
        groups: groups
            .into_iter()
            .enumerate()
            .map(|(i, (m, points))| ScatterGroup {
                label: ministries_label(m),
                color: ramp((i + 1) as f64 / shades as f64),
                points,
            })
            .collect(),
    };
    Some((Plot::Scatter(plot), caption))
}

/// The colour `t` (0..=1) of the way from light to dark.
fn ramp(t: f64) -> RGBColor {
    let mix = |a: u8, b: u8| (f64::from(a) + (f64::from(b) - f64::from(a)) * t).round() as u8;
    RGBColor(
        mix(RAMP_LIGHT.0, RAMP_DARK.0),
        mix(RAMP_LIGHT.1, RAMP_DARK.1),
        mix(RAMP_LIGHT.2, RAMP_DARK.2),
    )
}

/// The sorted distinct values.
fn distinct(values: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut values = sorted(values.collect());
    values.dedup();
    values
}

fn lock_dots(
    locks: &[LockRow],
    io: Io,
    experiment: LockExperiment,
    sweep: Sweep,
    thesis_fig: u32,
) -> Option<(Plot, String)> {
    // The thesis's units: seconds along row sizes, ms along writer
    // counts, and a log scale for all rows, whose durations span decades.
    let (seconds, log_y) = (
        sweep == Sweep::RowSize,
        experiment == LockExperiment::AllRows,
    );
    let value = |r: &LockRow| if seconds { r.ms / 1000.0 } else { r.ms };
    let key = |r: &LockRow| match sweep {
        Sweep::RowSize => r.row_mb,
        Sweep::Writers => r.writers as f64,
    };
    let rows: Vec<&LockRow> = locks
        .iter()
        .filter(|r| r.io == io && r.experiment == experiment && r.sweep == sweep)
        .filter(|r| value(r).is_finite() && key(r).is_finite() && (!log_y || value(r) > 0.0))
        .collect();
    if rows.is_empty() {
        return None;
    }
    let keys = distinct(rows.iter().map(|r| key(r)));

    // Writers of a run often finish together: spread each (slot, kind)
    // group's dots over a little width, by the golden ratio so that the
    // spread is even and the same on every rendering.
    let mut seen: BTreeMap<(usize, LockKind), usize> = BTreeMap::new();
    let mut points = Vec::new();
    for r in &rows {
        let slot = keys.partition_point(|&k| k < key(r));
        let nth = seen.entry((slot, r.lock)).or_default();
        let jitter = ((*nth as f64 * 0.618_034).fract() - 0.5) * DOT_JITTER;
        *nth += 1;
        let side = match r.lock {
            LockKind::ByRow => -DOT_OFFSET,
            LockKind::WholeFile => DOT_OFFSET,
        };
        points.push((slot as f64 + side + jitter, value(r), r.lock));
    }
    let lo = points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let hi = points.iter().map(|p| p.1).fold(0.0, f64::max);
    let y_range = if log_y {
        log_range(lo, hi)
    } else {
        (0.0, positive_or_one(hi * 1.05))
    };

    let by_row = rows.iter().filter(|r| r.lock == LockKind::ByRow).count();
    let what = match experiment {
        LockExperiment::OneRow => "one row",
        LockExperiment::AllRows => "all ten rows",
    };
    let (against, fixed) = match sweep {
        Sweep::RowSize => (
            "row size",
            match distinct(rows.iter().map(|r| r.writers as f64)).as_slice() {
                [w] => format!(" ({w} writers)"),
                _ => String::new(),
            },
        ),
        Sweep::Writers => (
            "writer count",
            match distinct(rows.iter().map(|r| r.row_mb)).as_slice() {
                [mb] => format!(" ({mb} MB rows)"),
                _ => String::new(),
            },
        ),
    };
    let io_text = match io {
        Io::Real => "real data",
        Io::Simulated => "simulated IO",
        Io::None => "no IO",
    };
    let caption = format!(
        "Time to the last release of each of {} writers ({by_row} by-row, {} whole-file) writing \
         {what} each, against {against}{fixed}, {io_text}.",
        rows.len(),
        rows.len() - by_row,
    );
    let title = format!(
        "{}, {io_text}: by {against} (cf. thesis fig. {thesis_fig})",
        match experiment {
            LockExperiment::OneRow => "One row per writer",
            LockExperiment::AllRows => "All rows per writer",
        }
    );
    let plot = Dots {
        title,
        x_desc: match sweep {
            Sweep::RowSize => "Row size (MB)",
            Sweep::Writers => "Writers",
        },
        y_desc: match (seconds, log_y) {
            (true, false) => "Writer duration (s)",
            (true, true) => "Writer duration (s, log scale)",
            (false, false) => "Writer duration (ms)",
            (false, true) => "Writer duration (ms, log scale)",
        },
        categories: keys.iter().map(|k| k.to_string()).collect(),
        y_range,
        log_y,
        points,
    };
    Some((Plot::Dots(plot), caption))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn synthetic() -> (Vec<ListRow>, Vec<CreateRow>, Vec<LockRow>) {
        let mut list = Vec::new();
        let mut create = Vec::new();
        let mut locks = Vec::new();
        for ministries in 1..=2 {
            for order in [Order::Batch, Order::Stride] {
                for request in 0..60 {
                    list.push(ListRow {
                        ministries,
                        order,
                        run: 0,
                        client: request % 3,
                        request,
                        dir: 1 + request % ministries,
                        start_us: request as u64 * 500,
                        // Spread, with one far outlier for the violins
                        // to drop and the CDF to cut.
                        us: if request == 59 {
                            90_000
                        } else {
                            (300 * ministries + 37 * ((request * 7) % 23)) as u64
                        },
                    });
                }
            }
            for request in 0..20 {
                create.push(CreateRow {
                    ministries,
                    run: 0,
                    client: request % 2,
                    request,
                    dir: 1,
                    start_us: request as u64 * 2000,
                    us: (1500 * ministries + 211 * request) as u64,
                });
            }
        }
        // A group with no spread: its violin is a flat line, no panic.
        for request in 0..5 {
            list.push(ListRow {
                ministries: 3,
                order: Order::Stride,
                run: 0,
                client: 0,
                request,
                dir: 1,
                start_us: 0,
                us: 800,
            });
        }
        for experiment in [LockExperiment::OneRow, LockExperiment::AllRows] {
            for lock in [LockKind::ByRow, LockKind::WholeFile] {
                for (sweep, row_mb, writers) in [
                    (Sweep::RowSize, 0.1, 6),
                    (Sweep::RowSize, 10.0, 6),
                    (Sweep::Writers, 10.0, 2),
                    (Sweep::Writers, 10.0, 4),
                ] {
                    for writer in 0..writers {
                        locks.push(LockRow {
                            io: Io::Real,
                            experiment,
                            sweep,
                            lock,
                            row_mb,
                            writers,
                            run: 0,
                            writer,
                            ms: 20.0 * row_mb * (1 + writer) as f64,
                            lost: 0,
                        });
                    }
                }
                // Unplottable rows are skipped, not drawn nor a panic.
                locks.push(LockRow {
                    io: Io::Real,
                    experiment,
                    sweep: Sweep::Writers,
                    lock,
                    row_mb: 10.0,
                    writers: 2,
                    run: 1,
                    writer: 0,
                    ms: f64::NAN,
                    lost: 0,
                });
            }
        }
        (list, create, locks)
    }

    #[test]
    fn every_figure_is_written_as_png_and_svg() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (list, create, locks) = synthetic();
        let figures = render_all(dir.path(), &list, &create, &locks).expect("render");
        let names: Vec<&str> = figures.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "fig13_list_cdf",
                "fig14_list_violin",
                "fig15_create_cdf",
                "fig16_create_scatter",
                "fig17_one_row_size",
                "fig18_one_row_writers",
                "fig19_all_rows_size",
                "fig20_all_rows_writers",
            ]
        );
        for figure in &figures {
            assert!(figure.caption.ends_with('.'), "{}", figure.caption);
            let png = std::fs::read(dir.path().join(format!("{}.png", figure.name))).expect("png");
            assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{}", figure.name);
            assert!(png.len() > 10_000, "{}: {} bytes", figure.name, png.len());
            let svg = std::fs::read_to_string(dir.path().join(format!("{}.svg", figure.name)))
                .expect("svg");
            assert!(svg.contains("<svg"), "{}", figure.name);
            assert!(svg.contains("<text"), "{}", figure.name);
        }
    }

    #[test]
    fn no_rows_no_figures() {
        let dir = tempfile::tempdir().expect("tempdir");
        let figures = render_all(&dir.path().join("plots"), &[], &[], &[]).expect("render");
        assert!(figures.is_empty());
        assert!(!dir.path().join("plots").exists());
    }
}
