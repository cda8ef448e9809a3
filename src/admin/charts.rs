//! The usage page's charts, drawn on the server as inline SVG (no chart library, no script):
//! stacked bars and a line over hourly buckets. Colours come from the stylesheet's classes
//! (`s0`…`s3`), so the charts follow light and dark mode; every bar and point carries a
//! `<title>` with its time and value for a hover tooltip.

use std::fmt::Write;

const W: f64 = 440.0;
const H: f64 = 170.0;
const LEFT: f64 = 40.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 22.0;
const BOTTOM: f64 = 20.0;

/// One named series of values, one per bucket, drawn in the stylesheet's class `class`.
pub struct Series<'a> {
    pub name: &'a str,
    pub class: &'static str,
    pub values: Vec<f64>,
}

/// The starts (ms since the epoch) of the `bucket_ms`-wide buckets from `since_ms` to `now_ms`.
pub fn buckets(since_ms: i64, now_ms: i64, bucket_ms: i64) -> Vec<i64> {
    let bucket_ms = bucket_ms.max(1);
    let first = since_ms.div_euclid(bucket_ms) * bucket_ms;
    (0..)
        .map(|i| first + i * bucket_ms)
        .take_while(|b| *b <= now_ms)
        .collect()
}

/// `2025-09-14 10:00` (UTC) for a bucket start.
pub fn label(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    let s = humantime::format_rfc3339_seconds(t).to_string();
    s.get(..16).unwrap_or(&s).replace('T', " ")
}

/// `2025-09-14 10:03:27` (UTC) for a moment.
pub fn label_seconds(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    let s = humantime::format_rfc3339_seconds(t).to_string();
    s.get(..19).unwrap_or(&s).replace('T', " ")
}

/// 1234 → `1.2k`, 3_400_000 → `3.4M`.
pub fn compact(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.1}G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A round number at or above `max` (1, 2 or 5 times a power of ten).
fn nice_ceiling(max: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|v| *v >= max)
        .unwrap_or(10.0 * p)
}

/// The frame: the SVG element, legend, y gridlines and labels, x labels.
fn frame(out: &mut String, axis: &[i64], series: &[Series], top: f64) {
    let _ = write!(
        out,
        r#"<svg class="chart" viewBox="0 0 {W} {H}" role="img" xmlns="http://www.w3.org/2000/svg">"#
    );
    let mut x = LEFT;
    out.push_str(r#"<g class="legend">"#);
    for s in series {
        let _ = write!(
            out,
            r#"<rect class="{}" x="{x}" y="6" width="10" height="10"/><text x="{}" y="15">{}</text>"#,
            s.class,
            x + 14.0,
            escape(s.name)
        );
        x += 24.0 + 7.0 * s.name.chars().count() as f64;
    }
    out.push_str("</g>");
    let bottom = H - BOTTOM;
    for (frac, value) in [(0.0, 0.0), (0.5, top / 2.0), (1.0, top)] {
        let y = bottom - frac * (bottom - TOP);
        let _ = write!(
            out,
            r#"<line class="axis" x1="{LEFT}" y1="{y:.1}" x2="{}" y2="{y:.1}"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            W - RIGHT,
            LEFT - 4.0,
            y + 3.5,
            compact(value)
        );
    }
    if let (Some(first), Some(last)) = (axis.first(), axis.last()) {
        let _ = write!(
            out,
            r#"<text x="{LEFT}" y="{}">{}</text><text x="{}" y="{}" text-anchor="end">{}</text>"#,
            H - 5.0,
            label(*first),
            W - RIGHT,
            H - 5.0,
            label(*last)
        );
    }
}

/// Stacked bars, one stack per bucket; the series stack bottom to top in their order.
pub fn bars(axis: &[i64], series: &[Series]) -> String {
    let n = axis.len().max(1);
    let totals: Vec<f64> = (0..n)
        .map(|i| {
            series
                .iter()
                .map(|s| s.values.get(i).copied().unwrap_or(0.0))
                .sum()
        })
        .collect();
    let top = nice_ceiling(totals.iter().copied().fold(0.0, f64::max));
    let mut out = String::new();
    frame(&mut out, axis, series, top);
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - BOTTOM - TOP;
    let slot = plot_w / n as f64;
    let gap = if slot > 4.0 { slot * 0.2 } else { 0.0 };
    for (i, start) in axis.iter().enumerate() {
        let mut y = H - BOTTOM;
        for s in series {
            let v = s.values.get(i).copied().unwrap_or(0.0);
            if v <= 0.0 {
                continue;
            }
            let h = v / top * plot_h;
            y -= h;
            let _ = write!(
                out,
                r#"<rect class="{}" x="{:.2}" y="{y:.2}" width="{:.2}" height="{h:.2}"><title>{} · {}: {}</title></rect>"#,
                s.class,
                LEFT + i as f64 * slot + gap / 2.0,
                (slot - gap).max(0.5),
                label(*start),
                escape(s.name),
                compact(v)
            );
        }
    }
    out.push_str("</svg>");
    out
}

/// One line through the buckets' values (a gap where a bucket has no value).
pub fn line(axis: &[i64], series: &Series) -> String {
    let n = axis.len().max(1);
    let top = nice_ceiling(series.values.iter().copied().fold(0.0, f64::max));
    let mut out = String::new();
    frame(&mut out, axis, std::slice::from_ref(series), top);
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - BOTTOM - TOP;
    let slot = plot_w / n as f64;
    let point = |i: usize, v: f64| {
        (
            LEFT + (i as f64 + 0.5) * slot,
            H - BOTTOM - v / top * plot_h,
        )
    };
    let mut d = String::new();
    let mut pen_down = false;
    for i in 0..axis.len() {
        match series.values.get(i).copied().filter(|v| *v > 0.0) {
            Some(v) => {
                let (x, y) = point(i, v);
                let _ = write!(d, "{}{x:.2} {y:.2} ", if pen_down { "L" } else { "M" });
                pen_down = true;
            }
            None => pen_down = false,
        }
    }
    if !d.is_empty() {
        let _ = write!(
            out,
            r#"<path class="line {}" d="{}"/>"#,
            series.class,
            d.trim_end()
        );
    }
    for (i, start) in axis.iter().enumerate() {
        if let Some(v) = series.values.get(i).copied().filter(|v| *v > 0.0) {
            let (x, y) = point(i, v);
            let _ = write!(
                out,
                r#"<circle class="{}" cx="{x:.2}" cy="{y:.2}" r="{}"><title>{} · {}: {}</title></circle>"#,
                series.class,
                if n <= 48 { 3.0 } else { 1.5 },
                label(*start),
                escape(series.name),
                compact(v)
            );
        }
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    #[test]
    fn buckets_cover_the_period() {
        let b = buckets(10 * HOUR + 5, 13 * HOUR + 1, HOUR);
        assert_eq!(b, vec![10 * HOUR, 11 * HOUR, 12 * HOUR, 13 * HOUR]);
    }

    #[test]
    fn labels_and_numbers() {
        assert_eq!(label(0), "1970-01-01 00:00");
        assert_eq!(compact(12.0), "12");
        assert_eq!(compact(1234.0), "1.2k");
        assert_eq!(compact(3_400_000.0), "3.4M");
        assert_eq!(nice_ceiling(7.0), 10.0);
        assert_eq!(nice_ceiling(130.0), 200.0);
        assert_eq!(nice_ceiling(0.0), 1.0);
    }

    #[test]
    fn bars_draw_one_rect_per_nonzero_value_and_escape_names() {
        let axis = buckets(0, 2 * HOUR, HOUR);
        let svg = bars(
            &axis,
            &[
                Series {
                    name: "ok <x>",
                    class: "s0",
                    values: vec![1.0, 0.0, 3.0],
                },
                Series {
                    name: "errors",
                    class: "s3",
                    values: vec![1.0, 0.0, 0.0],
                },
            ],
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<title>").count(), 3);
        assert!(svg.contains("ok &lt;x&gt;") && !svg.contains("<x>"));
        assert!(svg.contains(r#"class="s3""#), "errors in their colour");
    }

    #[test]
    fn line_breaks_at_empty_buckets() {
        let axis = buckets(0, 3 * HOUR, HOUR);
        let svg = line(
            &axis,
            &Series {
                name: "ms",
                class: "s0",
                values: vec![5.0, 0.0, 7.0, 9.0],
            },
        );
        let d = svg
            .split(r#"d=""#)
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert_eq!(d.matches('M').count(), 2);
        assert_eq!(d.matches('L').count(), 1);
        assert_eq!(svg.matches("<circle").count(), 3);
    }
}
