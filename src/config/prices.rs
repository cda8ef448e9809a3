//! What a request cost: prices per million tokens per provider model — the server config's
//! `prices:` first, then the table shipped in `prices.yaml` (each entry naming the page it
//! was read from and when) — matched by glob on the provider's model, first match wins. A
//! model without a price, or tokens of a kind its price does not list (cache reads on a
//! model without a `cache_read` price), have no cost: *unknown*, never 0 and never a
//! borrowed price. One currency per server (`currency:`, default USD); nothing is converted.

use globset::{Glob, GlobMatcher};
use serde::{Deserialize, Serialize};
use std::time::{SystemTime, UNIX_EPOCH};

/// One price as written (server config or the shipped table).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PriceFile {
    /// A glob on the provider's model (`qwen-*`).
    pub model: String,
    /// Per million uncached input tokens.
    pub input: f64,
    /// Per million output tokens (reasoning included).
    pub output: f64,
    /// Per million cache-read input tokens; none: such tokens make the cost unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read: Option<f64>,
    /// Per million cache-write input tokens; none: such tokens make the cost unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write: Option<f64>,
    /// Defaults to the server's `currency`; another one is refused (nothing is converted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// Peak hours, `HH:MM-HH:MM` in UTC on Monday to Friday; outside them the price is
    /// multiplied by `off_peak_factor` (DeepSeek's half price at night).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peak_utc: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub off_peak_factor: Option<f64>,
    /// Where the price was read (a URL) and when (a date): for people, not for the proxy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taken: Option<String>,
}

#[derive(Debug, Clone)]
struct Price {
    pattern: GlobMatcher,
    input: f64,
    output: f64,
    cache_read: Option<f64>,
    cache_write: Option<f64>,
    /// Minutes of the UTC day, `[start, end)`.
    peak: Vec<(u32, u32)>,
    off_peak_factor: f64,
}

/// The tokens of one request, split so that nothing is charged twice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    /// Uncached input.
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write: u64,
}

/// Every price a server knows, in its one currency.
#[derive(Debug, Clone)]
pub struct PriceTable {
    pub currency: String,
    prices: Vec<Price>,
}

const SHIPPED: &str = include_str!("prices.yaml");

impl Default for PriceTable {
    fn default() -> Self {
        PriceTable::new("USD", &[]).unwrap_or(PriceTable {
            currency: "USD".into(),
            prices: Vec::new(),
        })
    }
}

impl PriceTable {
    /// The server's `prices` (checked first) and the shipped table, in `currency`; an
    /// error names the entry at fault.
    pub fn new(currency: &str, configured: &[PriceFile]) -> Result<PriceTable, String> {
        let shipped: Vec<PriceFile> =
            serde_yaml_ng::from_str(SHIPPED).map_err(|e| format!("shipped prices: {e}"))?;
        let currency = currency.trim().to_ascii_uppercase();
        if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_alphabetic()) {
            return Err(format!("currency: `{currency}` is not a three-letter code"));
        }
        let mut prices = Vec::new();
        for (i, p) in configured.iter().enumerate() {
            prices.push(price(p, &currency).map_err(|m| format!("prices[{i}]: {m}"))?);
        }
        // The shipped table is in USD: a server counting in another currency uses its own.
        if currency == "USD" {
            for p in &shipped {
                prices.push(price(p, &currency).map_err(|m| format!("shipped {}: {m}", p.model))?);
            }
        }
        Ok(PriceTable { currency, prices })
    }

    /// What `tokens` of `model` cost at `at`, or `None` when unknown.
    pub fn cost(&self, model: &str, tokens: Tokens, at: SystemTime) -> Option<f64> {
        let p = self.prices.iter().find(|p| p.pattern.is_match(model))?;
        let part = |count: u64, price: Option<f64>| match count {
            0 => Some(0.0),
            n => price.map(|per_million| n as f64 * per_million / 1e6),
        };
        let sum = part(tokens.input, Some(p.input))?
            + part(tokens.output, Some(p.output))?
            + part(tokens.cache_read, p.cache_read)?
            + part(tokens.cache_write, p.cache_write)?;
        let factor = if p.peak.is_empty() || in_peak(&p.peak, at) {
            1.0
        } else {
            p.off_peak_factor
        };
        Some(sum * factor)
    }
}

fn price(p: &PriceFile, currency: &str) -> Result<Price, String> {
    if let Some(c) = &p.currency
        && !c.eq_ignore_ascii_case(currency)
    {
        return Err(format!(
            "priced in {c} but the server counts in {currency} (set `currency:`; nothing is converted)"
        ));
    }
    let amounts = [
        Some(p.input),
        Some(p.output),
        p.cache_read,
        p.cache_write,
        p.off_peak_factor,
    ];
    if amounts.iter().flatten().any(|v| !v.is_finite() || *v < 0.0) {
        return Err("prices are numbers of at least 0".into());
    }
    let pattern = Glob::new(&p.model)
        .map_err(|e| format!("model `{}`: {e}", p.model))?
        .compile_matcher();
    let peak = p
        .peak_utc
        .iter()
        .map(|w| window(w).ok_or_else(|| format!("peak_utc `{w}`: write HH:MM-HH:MM")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Price {
        pattern,
        input: p.input,
        output: p.output,
        cache_read: p.cache_read,
        cache_write: p.cache_write,
        peak,
        off_peak_factor: p.off_peak_factor.unwrap_or(1.0),
    })
}

/// `01:00-04:00` → minutes (60, 240).
fn window(text: &str) -> Option<(u32, u32)> {
    let minutes = |t: &str| {
        let (h, m) = t.trim().split_once(':')?;
        let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
        (h <= 24 && m < 60 && h * 60 + m <= 1440).then_some(h * 60 + m)
    };
    let (a, b) = text.split_once('-')?;
    let (a, b) = (minutes(a)?, minutes(b)?);
    (a < b).then_some((a, b))
}

/// Whether `at` falls in one of the windows on a weekday (UTC).
fn in_peak(windows: &[(u32, u32)], at: SystemTime) -> bool {
    let secs = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = secs / 86_400;
    // 1970-01-01 was a Thursday: day 0 → Thursday (3 with Monday = 0).
    let weekday = (days + 3) % 7;
    if weekday >= 5 {
        return false;
    }
    let minute = ((secs % 86_400) / 60) as u32;
    windows.iter().any(|(a, b)| (*a..*b).contains(&minute))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// 2026-12-07 is a Monday.
    fn monday_utc(hour: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_796_601_600 + hour * 3600)
    }

    #[test]
    fn the_shipped_table_parses_and_prices_deepseek_at_peak_and_off_peak() {
        let t = PriceTable::new("usd", &[]).unwrap();
        assert_eq!(t.currency, "USD");
        let tokens = Tokens {
            input: 1_000_000,
            output: 1_000_000,
            cache_read: 1_000_000,
            cache_write: 0,
        };
        let peak = t.cost("deepseek-v4-flash", tokens, monday_utc(2)).unwrap();
        assert!((peak - (0.30 + 1.20 + 0.006)).abs() < 1e-9, "{peak}");
        let night = t.cost("deepseek-v4-flash", tokens, monday_utc(20)).unwrap();
        assert!((night - peak / 2.0).abs() < 1e-9, "{night}");
        // Saturday 02:00 is off-peak.
        let saturday = t
            .cost("deepseek-v4-flash", tokens, monday_utc(5 * 24 + 2))
            .unwrap();
        assert!((saturday - peak / 2.0).abs() < 1e-9);
        assert_eq!(t.cost("qwen-plus", tokens, monday_utc(2)), None);
    }

    #[test]
    fn configured_prices_come_first_and_missing_cache_prices_mean_unknown() {
        let mine = PriceFile {
            model: "deepseek-*".into(),
            input: 1.0,
            output: 2.0,
            ..PriceFile::default()
        };
        let t = PriceTable::new("USD", &[mine]).unwrap();
        let plain = Tokens {
            input: 500_000,
            output: 250_000,
            ..Tokens::default()
        };
        assert_eq!(t.cost("deepseek-v4-flash", plain, monday_utc(2)), Some(1.0));
        let cached = Tokens {
            cache_read: 1,
            ..plain
        };
        assert_eq!(t.cost("deepseek-v4-flash", cached, monday_utc(2)), None);
    }

    #[test]
    fn bad_prices_are_refused_with_their_entry() {
        let cny = PriceFile {
            model: "glm-*".into(),
            currency: Some("CNY".into()),
            ..PriceFile::default()
        };
        let e = PriceTable::new("USD", &[cny]).unwrap_err();
        assert!(e.starts_with("prices[0]:") && e.contains("CNY"), "{e}");
        let negative = PriceFile {
            model: "x".into(),
            input: -1.0,
            ..PriceFile::default()
        };
        assert!(PriceTable::new("USD", &[negative]).is_err());
        let window = PriceFile {
            model: "x".into(),
            peak_utc: vec!["25:00-26:00".into()],
            ..PriceFile::default()
        };
        assert!(PriceTable::new("USD", &[window]).is_err());
        assert!(PriceTable::new("dollars", &[]).is_err());
        // A server counting in CNY has no shipped (USD) prices.
        let cny_server = PriceTable::new("CNY", &[]).unwrap();
        assert_eq!(
            cny_server.cost("deepseek-v4-flash", Tokens::default(), monday_utc(2)),
            None
        );
    }
}
