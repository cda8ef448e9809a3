//! Prometheus metrics, in a registry per server (so several servers in one process — tests —
//! do not mix their numbers). Labels are bounded: adapter names come from the operator's
//! files, statuses and kinds from fixed sets; never a key, a label or a model the client chose.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

pub struct Metrics {
    pub registry: Registry,
    pub requests: IntCounterVec,
    pub duration: HistogramVec,
    pub ttfb: HistogramVec,
    pub provider_errors: IntCounterVec,
    pub open_streams: IntGaugeVec,
    pub tokens: IntCounterVec,
    pub rate_limited: IntCounterVec,
    pub config_reloads: IntCounter,
    pub config_reload_failures: IntCounter,
    pub config_errors: IntGauge,
    pub adapters: IntGauge,
    pub stats_dropped: IntCounter,
    pub stats_written: IntCounter,
    pub access_log_dropped: IntGauge,
    pub inflight: IntGauge,
    /// Client connections accepted that have not sent their first request header yet.
    pub awaiting_first_request: IntGauge,
    pub body_too_large: IntCounter,
    pub dns_failures: IntCounter,
    pub upstream_retries: IntCounter,
    /// Provider attempts by adapter, route, key (`source/key`) and outcome.
    pub source_requests: IntCounterVec,
    /// Searches the gateway ran, by adapter and outcome (`ok` or the error code).
    pub web_searches: IntCounterVec,
    /// 1 healthy, 0 cooling or failing, -1 disabled, per provider key whose state changed.
    pub key_health: IntGaugeVec,
    /// Limiter calls Redis could not answer in time, by what was done (`open`, `closed`).
    pub limiter_backend_failures: IntCounterVec,
    /// 1 while the shared limiter's backend answers, 0 while it does not.
    pub limiter_backend_up: IntGauge,
    /// Key health sharing's Redis calls (publish or poll) that did not answer in time.
    pub key_health_sync_failures: IntCounter,
    /// 1 while key health sharing reaches Redis, 0 while each instance keeps its own.
    pub key_health_sync_up: IntGauge,
    _build_info: IntGaugeVec,
}

/// Latency buckets from 1 ms to 10 minutes (reasoning models can be slow).
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0, 600.0,
];

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric definition");
    r.register(Box::new(c.clone()))
        .expect("metric registered once");
    c
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric definition");
    r.register(Box::new(c.clone()))
        .expect("metric registered once");
    c
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric definition");
    r.register(Box::new(g.clone()))
        .expect("metric registered once");
    g
}

fn histogram_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let h = HistogramVec::new(
        HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()),
        labels,
    )
    .expect("valid metric definition");
    r.register(Box::new(h.clone()))
        .expect("metric registered once");
    h
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let r = Registry::new();
        let build_info = IntGaugeVec::new(
            Opts::new("flexiproxy_build_info", "Build information (always 1)"),
            &["version"],
        )
        .expect("valid metric definition");
        r.register(Box::new(build_info.clone()))
            .expect("metric registered once");
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        Metrics {
            requests: counter_vec(
                &r,
                "flexiproxy_requests_total",
                "Requests by adapter, client protocol, route and final status",
                &["adapter", "protocol", "route", "status"],
            ),
            duration: histogram_vec(
                &r,
                "flexiproxy_request_duration_seconds",
                "Time from request to the end of the response",
                &["adapter", "route"],
            ),
            ttfb: histogram_vec(
                &r,
                "flexiproxy_time_to_first_byte_seconds",
                "Time from request to the provider's response header",
                &["adapter", "route"],
            ),
            provider_errors: counter_vec(
                &r,
                "flexiproxy_provider_errors_total",
                "Provider failures by kind (connect, timeout, tls, reset, status_4xx, status_5xx, malformed, stream_error)",
                &["adapter", "kind"],
            ),
            open_streams: {
                let g = IntGaugeVec::new(
                    Opts::new("flexiproxy_open_streams", "Streaming responses in progress"),
                    &["adapter"],
                )
                .expect("valid metric definition");
                r.register(Box::new(g.clone()))
                    .expect("metric registered once");
                g
            },
            tokens: counter_vec(
                &r,
                "flexiproxy_tokens_total",
                "Tokens by adapter and kind (input, output, cache_read) as the provider reported them",
                &["adapter", "kind"],
            ),
            rate_limited: counter_vec(
                &r,
                "flexiproxy_rate_limited_total",
                "Requests refused by a limit (rpm, concurrency, overall)",
                &["adapter", "limit"],
            ),
            config_reloads: counter(
                &r,
                "flexiproxy_config_reloads_total",
                "Adapter configuration changes applied",
            ),
            config_reload_failures: counter(
                &r,
                "flexiproxy_config_reload_failures_total",
                "Reloads that found invalid adapter files (their last good version stays live)",
            ),
            config_errors: gauge(
                &r,
                "flexiproxy_config_errors",
                "Adapter files currently invalid",
            ),
            adapters: gauge(&r, "flexiproxy_adapters", "Adapters currently live"),
            stats_dropped: counter(
                &r,
                "flexiproxy_stats_dropped_total",
                "Usage records dropped because the statistics queue was full",
            ),
            stats_written: counter(
                &r,
                "flexiproxy_stats_written_total",
                "Usage records written",
            ),
            access_log_dropped: gauge(
                &r,
                "flexiproxy_access_log_dropped_lines",
                "Access log lines dropped so far because the writer fell behind",
            ),
            inflight: gauge(
                &r,
                "flexiproxy_inflight_requests",
                "Requests being proxied now",
            ),
            awaiting_first_request: gauge(
                &r,
                "flexiproxy_connections_awaiting_first_request",
                "Client connections accepted that have not sent their first request header yet",
            ),
            body_too_large: counter(
                &r,
                "flexiproxy_request_too_large_total",
                "Requests refused for their body size",
            ),
            dns_failures: counter(
                &r,
                "flexiproxy_dns_failures_total",
                "Provider host names that did not resolve",
            ),
            limiter_backend_failures: counter_vec(
                &r,
                "flexiproxy_limiter_backend_failures_total",
                "Limiter checks the shared backend (Redis) did not answer in time, by outcome",
                &["outcome"],
            ),
            limiter_backend_up: gauge(
                &r,
                "flexiproxy_limiter_backend_up",
                "1 while the shared limiter backend answers",
            ),
            key_health_sync_failures: counter(
                &r,
                "flexiproxy_key_health_sync_failures_total",
                "Provider key health shared through Redis: calls Redis did not answer in time",
            ),
            key_health_sync_up: gauge(
                &r,
                "flexiproxy_key_health_sync_up",
                "1 while provider key health is shared through Redis, 0 while each instance keeps its own",
            ),
            source_requests: counter_vec(
                &r,
                "flexiproxy_source_requests_total",
                "Provider attempts by adapter, route, provider key (source/key index or label) and outcome (ok, unauthorized, rate_limited, failed)",
                &["adapter", "route", "key", "outcome"],
            ),
            key_health: {
                let g = IntGaugeVec::new(
                    Opts::new(
                        "flexiproxy_provider_key_health",
                        "Provider key health after its last change: 1 healthy, 0 cooling or failing, -1 disabled",
                    ),
                    &["adapter", "route", "key"],
                )
                .expect("valid metric definition");
                r.register(Box::new(g.clone()))
                    .expect("metric registered once");
                g
            },
            web_searches: counter_vec(
                &r,
                "flexiproxy_web_searches_total",
                "Searches the gateway ran for clients' hosted search tools, by adapter and outcome (ok, unavailable, too_many_requests, invalid_input, query_too_long, max_uses_exceeded)",
                &["adapter", "outcome"],
            ),
            upstream_retries: counter(
                &r,
                "flexiproxy_upstream_retries_total",
                "Requests retried on a fresh connection or the next source",
            ),
            registry: r,
            _build_info: build_info,
        }
    }

    /// The registry in Prometheus' text format.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        out
    }
}
