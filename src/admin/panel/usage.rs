//! The usage page: over the chosen range, totals across all of a user's adapters with their
//! charts, tables per provider model and per key, one card per adapter (deleted adapters'
//! history kept under "deleted"), the latest requests with what went wrong, and the same
//! buckets as CSV (`/usage.csv`). Hourly bins for a day, daily bins for a week or a month.

use super::{Ctx, Vars, finish, query_value, vars, with_security_headers};
use crate::admin::PanelSession;
use crate::admin::charts;
use crate::admin::i18n::Lang;
use crate::admin::manage::{RecentRequest, UsageData, UsageRow};
use http::Response;
use minijinja::Value;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// The ranges the page offers, with their length and bin width.
const RANGES: &[(&str, u64, u64)] = &[
    ("24h", 86_400, HOUR),
    ("7d", 7 * 86_400, DAY),
    ("30d", 30 * 86_400, DAY),
];
const HOUR: u64 = 3_600;
const DAY: u64 = 86_400;
/// How many of the latest requests the page lists.
const RECENT: usize = 100;

/// The chosen range: its name, length and bin width.
fn range(cx: &Ctx<'_>) -> (&'static str, Duration, Duration) {
    let asked = query_value(&cx.req.query, "since");
    let (name, secs, bin) = RANGES
        .iter()
        .find(|(n, _, _)| asked.as_deref() == Some(*n))
        .unwrap_or(&RANGES[0]);
    (name, Duration::from_secs(*secs), Duration::from_secs(*bin))
}

/// Sums of some rows: one line of a totals table.
#[derive(Default, Serialize)]
struct Tally {
    label: String,
    /// A second column (the adapter of a key line).
    detail: String,
    total: bool,
    requests: u64,
    errors: u64,
    input_tokens: u64,
    output_tokens: u64,
    cache_read_tokens: u64,
    /// Averaged over requests, shown as `123 ms`.
    latency: String,
    /// `0.0123`, `0.0123 + ?` when some requests had no price; empty when none had one.
    cost: String,
    #[serde(skip)]
    duration_ms_sum: u64,
    #[serde(skip)]
    cost_sum: f64,
    #[serde(skip)]
    unpriced: u64,
}

impl Tally {
    fn named(label: &str, detail: &str) -> Tally {
        Tally {
            label: label.to_owned(),
            detail: detail.to_owned(),
            ..Tally::default()
        }
    }

    fn add(&mut self, r: &UsageRow) {
        self.requests += r.requests;
        self.errors += r.errors;
        self.input_tokens += r.input_tokens;
        self.output_tokens += r.output_tokens;
        self.cache_read_tokens += r.cache_read_tokens;
        self.duration_ms_sum += r.duration_ms_sum;
        self.latency = match self.requests {
            0 => "—".into(),
            n => format!("{:.0} ms", self.duration_ms_sum as f64 / n as f64),
        };
        self.cost_sum += r.cost;
        self.unpriced += r.unpriced;
        self.cost = cost_text(
            self.cost_sum,
            self.requests - self.unpriced.min(self.requests),
            self.unpriced,
        );
    }
}

/// A table of tallies keyed by `key`, sorted, with a total line at the end.
fn table<'r, K: Ord>(
    lang: Lang,
    rows: &[&'r UsageRow],
    key: impl Fn(&'r UsageRow) -> K,
    name: impl Fn(&K) -> Tally,
) -> Vec<Tally> {
    let mut lines: BTreeMap<K, Tally> = BTreeMap::new();
    let mut total = Tally {
        total: true,
        ..Tally::named(lang.t("total"), "")
    };
    for r in rows {
        let k = key(r);
        lines.entry(k).or_insert_with_key(|k| name(k)).add(r);
        total.add(r);
    }
    let mut table: Vec<Tally> = lines.into_values().collect();
    table.push(total);
    table
}

/// A sum of costs: empty when no request had a price (the page says "unknown"), marked when
/// some had none.
fn cost_text(sum: f64, priced: u64, unpriced: u64) -> String {
    match (priced, unpriced) {
        (0, _) => String::new(),
        (_, 0) => format!("{sum:.4}"),
        _ => format!("{sum:.4} + ?"),
    }
}

fn label_of(lang: Lang, key_label: &str) -> &str {
    if key_label.is_empty() {
        lang.t("no_label")
    } else {
        key_label
    }
}

/// The charts of some rows over `axis`: requests (errors apart), tokens, latency.
fn charts_of(lang: Lang, rows: &[&UsageRow], axis: &[i64]) -> [(&'static str, Value); 3] {
    let n = axis.len();
    let mut ok = vec![0.0; n];
    let mut errors = vec![0.0; n];
    let mut input = vec![0.0; n];
    let mut output = vec![0.0; n];
    let mut cached = vec![0.0; n];
    let mut duration = vec![0.0; n];
    let mut requests = vec![0.0; n];
    for r in rows {
        let Some(i) = axis.iter().position(|b| *b == r.bucket_start_ms) else {
            continue;
        };
        ok[i] += r.requests.saturating_sub(r.errors) as f64;
        errors[i] += r.errors as f64;
        input[i] += r.input_tokens as f64;
        output[i] += r.output_tokens as f64;
        cached[i] += r.cache_read_tokens as f64;
        duration[i] += r.duration_ms_sum as f64;
        requests[i] += r.requests as f64;
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
    [
        ("chart_requests", Value::from_safe_string(requests_chart)),
        ("chart_tokens", Value::from_safe_string(tokens_chart)),
        ("chart_latency", Value::from_safe_string(latency_chart)),
    ]
}

/// One adapter's card: its charts and per-key totals.
fn adapter_card(lang: Lang, name: &str, rows: &[&UsageRow], axis: &[i64]) -> Value {
    let keys = table(
        lang,
        rows,
        |r| r.key_label.as_str(),
        |k| Tally::named(label_of(lang, k), ""),
    );
    let mut card = vars([
        ("name", Value::from(name)),
        ("keys", Value::from_serialize(&keys)),
    ]);
    card.extend(charts_of(lang, rows, axis));
    Value::from(card)
}

/// One line of the recent-requests table.
#[derive(Serialize)]
struct RecentLine {
    time: String,
    adapter: String,
    key: String,
    model: String,
    status: u16,
    failed: bool,
    tokens: String,
    latency: String,
    error: String,
    cost: String,
}

fn recent_line(lang: Lang, r: &RecentRequest) -> RecentLine {
    let model = if r.client_model == r.source_model || r.client_model.is_empty() {
        r.source_model.clone()
    } else {
        format!("{} → {}", r.client_model, r.source_model)
    };
    let error = match r.error.as_str() {
        "" => String::new(),
        code => {
            let key = format!("usage_err_{code}");
            match lang.t(&key) {
                "?" => code.to_owned(),
                s => s.to_owned(),
            }
        }
    };
    RecentLine {
        time: charts::label_seconds(r.time_ms),
        adapter: r.adapter.clone(),
        key: label_of(lang, &r.key_label).to_owned(),
        model,
        status: r.status,
        failed: r.status >= 400 || !r.error.is_empty(),
        tokens: format!(
            "{} / {}",
            r.input_tokens + r.cache_read_tokens,
            r.output_tokens
        ),
        latency: format!("{} ms", r.duration_ms),
        error,
        cost: r.cost.map(|c| format!("{c:.6}")).unwrap_or_default(),
    }
}

/// The page's data from what the store returned.
fn page_of(lang: Lang, data: &UsageData, axis: &[i64]) -> Vars {
    let all: Vec<&UsageRow> = data.rows.iter().collect();
    let mut by_adapter: BTreeMap<&str, Vec<&UsageRow>> = BTreeMap::new();
    for r in &data.rows {
        by_adapter.entry(r.adapter.as_str()).or_default().push(r);
    }
    let (current, deleted): (Vec<_>, Vec<_>) = by_adapter
        .iter()
        .partition(|(name, _)| data.current.iter().any(|c| c == *name));
    let cards = |list: Vec<(&&str, &Vec<&UsageRow>)>| -> Vec<Value> {
        list.into_iter()
            .map(|(name, rows)| adapter_card(lang, name, rows, axis))
            .collect()
    };
    let models = table(lang, &all, |r| r.model.as_str(), |m| Tally::named(m, ""));
    let keys = table(
        lang,
        &all,
        |r| (r.adapter.as_str(), r.key_label.as_str()),
        |(a, k)| Tally::named(label_of(lang, k), a),
    );
    let recent: Vec<RecentLine> = data.recent.iter().map(|r| recent_line(lang, r)).collect();
    vars([
        ("has_rows", Value::from(!all.is_empty())),
        ("totals", Value::from_serialize(keys.last())),
        ("models", Value::from_serialize(&models)),
        ("key_lines", Value::from_serialize(&keys)),
        ("adapters", Value::from(cards(current))),
        ("deleted", Value::from(cards(deleted))),
        ("recent", Value::from_serialize(&recent)),
        ("all", Value::from(vars(charts_of(lang, &all, axis)))),
    ])
}

pub(super) async fn usage_page(cx: &Ctx<'_>, session: &PanelSession) -> Response<Vec<u8>> {
    let (since, period, bin) = range(cx);
    let ranges: Vec<&str> = RANGES.iter().map(|(n, _, _)| *n).collect();
    let mut page = vars([
        ("since", Value::from(since)),
        ("ranges", Value::from_serialize(&ranges)),
        ("enabled", Value::from(true)),
        ("per_day", Value::from(bin.as_secs() == DAY)),
        (
            "currency",
            Value::from(cx.manager().server.prices.currency.clone()),
        ),
    ]);
    match cx
        .manager()
        .usage(&session.actor, period, bin, RECENT)
        .await
    {
        None => {
            page.insert("enabled", Value::from(false));
        }
        Some(Err(e)) => {
            tracing::warn!(error = %e, "the usage page cannot read the statistics");
            page.insert("usage_error", Value::from(cx.t("usage_error")));
        }
        Some(Ok(data)) => {
            let now = now_ms();
            let axis =
                charts::buckets(now - period.as_millis() as i64, now, bin.as_millis() as i64);
            page.extend(page_of(cx.lang, &data, &axis));
        }
    }
    cx.render(200, "usage.html", "usage", page)
}

/// `GET /usage.csv?since=7d`: the page's buckets, one line per bin, adapter, key and model.
pub(super) async fn usage_csv(cx: &Ctx<'_>, session: &PanelSession) -> Response<Vec<u8>> {
    let (since, period, bin) = range(cx);
    let data = match cx.manager().usage(&session.actor, period, bin, 0).await {
        Some(Ok(data)) => data,
        None => return cx.message(404, cx.t("stats_off"), ""),
        Some(Err(e)) => {
            tracing::warn!(error = %e, "the usage export cannot read the statistics");
            return cx.message(503, cx.t("usage_error"), "");
        }
    };
    match csv_of(&data, &cx.manager().server.prices.currency) {
        Ok(body) => {
            let b = with_security_headers(Response::builder().status(200))
                .header("content-type", "text/csv; charset=utf-8")
                .header(
                    "content-disposition",
                    format!("attachment; filename=\"flexiproxy-usage-{since}.csv\""),
                );
            finish(b, body)
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot write the usage export");
            cx.message(500, cx.t("usage_error"), "")
        }
    }
}

/// The CSV text of `data`'s buckets.
fn csv_of(data: &UsageData, currency: &str) -> Result<Vec<u8>, csv::Error> {
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record([
        "bucket_start_utc",
        "adapter",
        "deleted",
        "key",
        "model",
        "requests",
        "errors",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "avg_latency_ms",
        "cost",
        "currency",
        "unpriced_requests",
    ])?;
    for r in &data.rows {
        let deleted = !data.current.contains(&r.adapter);
        let latency = match r.requests {
            0 => 0,
            n => r.duration_ms_sum / n,
        };
        out.write_record([
            charts::label(r.bucket_start_ms),
            cell(&r.adapter),
            deleted.to_string(),
            cell(&r.key_label),
            cell(&r.model),
            r.requests.to_string(),
            r.errors.to_string(),
            r.input_tokens.to_string(),
            r.output_tokens.to_string(),
            r.cache_read_tokens.to_string(),
            latency.to_string(),
            // Empty when no request of the line had a price.
            if r.unpriced < r.requests {
                format!("{:.6}", r.cost)
            } else {
                String::new()
            },
            currency.to_owned(),
            r.unpriced.to_string(),
        ])?;
    }
    out.into_inner().map_err(|e| e.into_error().into())
}

/// A text cell a spreadsheet will not run as a formula (a label may start with `=`).
fn cell(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(adapter: &str, key: &str, model: &str, requests: u64, errors: u64) -> UsageRow {
        UsageRow {
            bucket_start_ms: 0,
            adapter: adapter.into(),
            owner: "alice".into(),
            key_label: key.into(),
            model: model.into(),
            requests,
            errors,
            input_tokens: 10 * requests,
            output_tokens: requests,
            cache_read_tokens: 0,
            duration_ms_sum: 100 * requests,
            // SUM(cost) leaves unpriced requests out.
            cost: if model == "m2" {
                0.0
            } else {
                0.5 * requests as f64
            },
            unpriced: if model == "m2" { requests } else { 0 },
        }
    }

    #[test]
    fn tables_total_per_model_and_key_and_split_deleted_adapters() {
        let data = UsageData {
            rows: vec![
                row("a", "laptop", "m1", 2, 1),
                row("a", "ci", "m2", 3, 0),
                row("gone", "", "m1", 4, 0),
            ],
            recent: vec![],
            current: vec!["a".into()],
        };
        let page = page_of(Lang::En, &data, &[0]);
        let models = page["models"].to_string();
        assert!(models.contains("m1") && models.contains("m2"), "{models}");
        let totals = &page["totals"];
        assert_eq!(totals.get_attr("requests").unwrap(), Value::from(9));
        assert_eq!(totals.get_attr("errors").unwrap(), Value::from(1));
        assert_eq!(totals.get_attr("latency").unwrap(), Value::from("100 ms"));
        // m2's three requests have no price: the total says so; m2's own line is unknown.
        assert_eq!(totals.get_attr("cost").unwrap(), Value::from("3.0000 + ?"));
        let m2 = page["models"].get_item_by_index(1).unwrap();
        assert_eq!(m2.get_attr("cost").unwrap(), Value::from(""));
        assert_eq!(page["adapters"].len(), Some(1));
        assert_eq!(page["deleted"].len(), Some(1));
        // Per key: a/ci, a/laptop, gone/(no label), total.
        assert_eq!(page["key_lines"].len(), Some(4));
    }

    #[test]
    fn csv_quotes_and_defuses_cells() {
        let data = UsageData {
            rows: vec![row("a", "=cmd,\"x\"", "m", 1, 0)],
            recent: vec![],
            current: vec![],
        };
        let text = String::from_utf8(csv_of(&data, "USD").unwrap()).unwrap();
        let line = text.lines().nth(1).unwrap();
        assert_eq!(
            line,
            "1970-01-01 00:00,a,true,\"'=cmd,\"\"x\"\"\",m,1,0,10,1,0,100,0.500000,USD,0"
        );
    }

    #[test]
    fn recent_errors_are_explained_in_the_users_language() {
        let r = RecentRequest {
            time_ms: 0,
            adapter: "a".into(),
            owner: String::new(),
            key_label: String::new(),
            client_model: "claude-x".into(),
            source_model: "m".into(),
            status: 502,
            input_tokens: 5,
            output_tokens: 0,
            cache_read_tokens: 2,
            duration_ms: 12,
            stream: false,
            error: "connect".into(),
            cost: None,
        };
        let en = recent_line(Lang::En, &r);
        let zh = recent_line(Lang::Zh, &r);
        assert!(en.failed && en.model == "claude-x → m" && en.tokens == "7 / 0");
        assert_ne!(en.error, "connect");
        assert_ne!(en.error, zh.error);
    }
}
