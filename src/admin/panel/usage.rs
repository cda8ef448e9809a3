//! The usage page: per adapter, charts of requests, tokens and latency by hour, and totals
//! per key, over the chosen range.

use super::{Ctx, Vars, query_value, vars};
use crate::admin::PanelSession;
use crate::admin::charts;
use crate::admin::i18n::Lang;
use crate::admin::manage::UsageRow;
use http::Response;
use minijinja::Value;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

const RANGES: &[&str] = &["24h", "7d", "30d"];
const HOUR_MS: i64 = 3_600_000;

#[derive(Default, Serialize)]
struct KeyTotals {
    label: String,
    total: bool,
    requests: u64,
    errors: u64,
    input_tokens: u64,
    output_tokens: u64,
    cache_read_tokens: u64,
    /// Weighted by requests, shown as `123 ms`.
    latency: String,
    #[serde(skip)]
    duration_sum: f64,
}

impl KeyTotals {
    fn add(&mut self, r: &UsageRow) {
        self.requests += r.requests;
        self.errors += r.errors;
        self.input_tokens += r.input_tokens;
        self.output_tokens += r.output_tokens;
        self.cache_read_tokens += r.cache_read_tokens;
        self.duration_sum += r.avg_duration_ms * r.requests as f64;
        self.latency = match self.requests {
            0 => "—".into(),
            n => format!("{:.0} ms", self.duration_sum / n as f64),
        };
    }
}

/// One adapter's charts (safe SVG) and per-key totals.
fn usage_adapter(lang: Lang, name: &str, rows: &[&UsageRow], axis: &[i64]) -> Vars {
    let n = axis.len();
    let index = |ms: i64| axis.iter().position(|b| *b == ms);
    let mut ok = vec![0.0; n];
    let mut errors = vec![0.0; n];
    let mut input = vec![0.0; n];
    let mut output = vec![0.0; n];
    let mut cached = vec![0.0; n];
    let mut duration = vec![0.0; n];
    let mut requests = vec![0.0; n];
    let mut keys: BTreeMap<&str, KeyTotals> = BTreeMap::new();
    let mut total = KeyTotals {
        label: lang.t("total").into(),
        total: true,
        ..KeyTotals::default()
    };
    for r in rows {
        if let Some(i) = index(r.bucket_start_ms) {
            ok[i] += r.requests.saturating_sub(r.errors) as f64;
            errors[i] += r.errors as f64;
            input[i] += r.input_tokens as f64;
            output[i] += r.output_tokens as f64;
            cached[i] += r.cache_read_tokens as f64;
            duration[i] += r.avg_duration_ms * r.requests as f64;
            requests[i] += r.requests as f64;
        }
        let label = if r.key_label.is_empty() {
            lang.t("no_label")
        } else {
            &r.key_label
        };
        keys.entry(label)
            .or_insert_with(|| KeyTotals {
                label: label.to_owned(),
                ..KeyTotals::default()
            })
            .add(r);
        total.add(r);
    }
    let latency: Vec<f64> = duration
        .iter()
        .zip(&requests)
        .map(|(d, n)| if *n > 0.0 { d / n } else { 0.0 })
        .collect();
    let series = |key: &str, class, values| charts::Series {
        name: lang.t(key),
        class,
        values,
    };
    let requests_chart = charts::bars(
        axis,
        &[
            series("series_requests", "s0", ok),
            series("series_errors", "s3", errors),
        ],
    );
    let tokens_chart = charts::bars(
        axis,
        &[
            series("series_input", "s0", input),
            series("series_output", "s1", output),
            series("series_cached", "s2", cached),
        ],
    );
    let latency_chart = charts::line(axis, &series("series_latency", "s0", latency));
    let mut table: Vec<KeyTotals> = keys.into_values().collect();
    table.push(total);
    vars([
        ("name", Value::from(name)),
        ("chart_requests", Value::from_safe_string(requests_chart)),
        ("chart_tokens", Value::from_safe_string(tokens_chart)),
        ("chart_latency", Value::from_safe_string(latency_chart)),
        ("keys", Value::from_serialize(&table)),
    ])
}

pub(super) async fn usage_page(cx: &Ctx<'_>, session: &PanelSession) -> Response<Vec<u8>> {
    let since = query_value(&cx.req.query, "since")
        .filter(|s| RANGES.contains(&s.as_str()))
        .unwrap_or_else(|| RANGES[0].to_owned());
    let period = humantime::parse_duration(&since).unwrap_or(Duration::from_secs(86_400));
    let mut page = vars([
        ("since", Value::from(since.as_str())),
        ("ranges", Value::from_serialize(RANGES)),
        ("enabled", Value::from(true)),
    ]);
    match cx.manager().usage(&session.actor, period).await {
        None => {
            page.insert("enabled", Value::from(false));
        }
        Some(Err(e)) => {
            page.insert(
                "usage_error",
                Value::from(cx.lang.fill("usage_error", &[("error", &e)])),
            );
        }
        Some(Ok(rows)) => {
            let now = now_ms();
            let axis = charts::buckets(now - period.as_millis() as i64, now, HOUR_MS);
            let mut by_adapter: BTreeMap<&str, Vec<&UsageRow>> = BTreeMap::new();
            for r in &rows {
                by_adapter.entry(r.adapter.as_str()).or_default().push(r);
            }
            let adapters: Vec<Value> = by_adapter
                .iter()
                .map(|(name, rows)| Value::from(usage_adapter(cx.lang, name, rows, &axis)))
                .collect();
            page.insert("adapters", Value::from(adapters));
        }
    }
    cx.render(200, "usage.html", "usage", page)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
