//! The admin listener (default 127.0.0.1:9787), separate from client traffic: Prometheus
//! `/metrics` and `/health` for anyone who can reach it; `/admin/*` only with the admin token
//! (`Authorization: Bearer <token>`, checked against its SHA-256 like client keys).

use crate::config::keys::{KeyHash, hash_key};
use crate::config::watch::LiveConfig;
use crate::telemetry::Telemetry;
use crate::telemetry::usage::{GroupBy, query};
use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub struct AdminApp {
    pub telemetry: Arc<Telemetry>,
    pub live: LiveConfig,
    pub token: Option<KeyHash>,
    pub stats_path: Option<PathBuf>,
}

fn respond(status: u16, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("content-length", body.len())
        .body(body)
        .unwrap_or_else(|_| Response::new(Vec::new()))
}

fn json_response(status: u16, value: serde_json::Value) -> Response<Vec<u8>> {
    respond(status, "application/json", value.to_string().into_bytes())
}

/// `since=24h&by=adapter` → its pairs.
fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

impl AdminApp {
    fn authorized(&self, session: &ServerSession) -> Result<(), Box<Response<Vec<u8>>>> {
        let Some(expected) = self.token else {
            return Err(Box::new(json_response(
                403,
                json!({"error": "the admin endpoints are disabled: set admin.token_sha256 in the server config"}),
            )));
        };
        let presented = session
            .req_header()
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| hash_key(t.trim()));
        if presented == Some(expected) {
            Ok(())
        } else {
            Err(Box::new(json_response(
                401,
                json!({"error": "missing or wrong admin token"}),
            )))
        }
    }

    fn stats(&self, query_string: &str) -> Response<Vec<u8>> {
        let Some(path) = &self.stats_path else {
            return json_response(
                404,
                json!({"error": "usage statistics are disabled (stats.enabled: false)"}),
            );
        };
        let since =
            match humantime::parse_duration(query_param(query_string, "since").unwrap_or("24h")) {
                Ok(d) => d,
                Err(e) => return json_response(400, json!({"error": format!("since: {e}")})),
            };
        let Some(by) = GroupBy::parse(query_param(query_string, "by").unwrap_or("adapter")) else {
            return json_response(400, json!({"error": "by: one of adapter, key, model, day"}));
        };
        match query(path, since, by) {
            Ok(rows) => json_response(
                200,
                json!({"since_seconds": since.as_secs(), "by": by, "totals": rows}),
            ),
            Err(e) => json_response(500, json!({"error": e})),
        }
    }

    fn adapters(&self) -> Response<Vec<u8>> {
        let snapshot = self.live.load();
        let adapters: Vec<serde_json::Value> = snapshot
            .adapters
            .iter()
            .map(|a| {
                json!({"name": a.name, "source_host": a.source.endpoint.host_header(),
                    "model": a.source.model, "keys": a.keys.len()})
            })
            .collect();
        json_response(
            200,
            json!({"generation": snapshot.generation, "adapters": adapters}),
        )
    }
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let uri = session.req_header().uri.clone();
        let path = uri.path();
        let query_string = uri.query().unwrap_or("");
        match path {
            "/metrics" => {
                let m = &self.telemetry.metrics;
                m.access_log_dropped
                    .set(self.telemetry.access_log.dropped() as i64);
                respond(200, "text/plain; version=0.0.4", m.render())
            }
            "/health" | "/healthz" => json_response(200, json!({"status": "ok"})),
            "/admin/stats" => match self.authorized(session) {
                Ok(()) => self.stats(query_string),
                Err(r) => *r,
            },
            "/admin/adapters" => match self.authorized(session) {
                Ok(()) => self.adapters(),
                Err(r) => *r,
            },
            _ => json_response(404, json!({"error": "not found"})),
        }
    }
}

/// The default window of `/admin/stats`.
pub const DEFAULT_SINCE: Duration = Duration::from_secs(24 * 3600);
