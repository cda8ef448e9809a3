//! `flexiproxy adapter inspect NAME [--id N] [--follow]`: the exchanges a running server
//! keeps for an adapter with `inspect:` (docs/inspector.md), read from its management API on
//! the admin listener with the admin token (`FLEXIPROXY_ADMIN_TOKEN`).

use flexiproxy::config::server::ServerConfig;
use serde_json::Value;
use std::time::Duration;

/// What to print.
pub struct Inspect<'a> {
    pub name: &'a str,
    pub id: Option<u64>,
    pub follow: bool,
    pub json: bool,
}

pub fn run(config: &ServerConfig, what: Inspect<'_>) -> Result<(), String> {
    let admin = config
        .admin
        .as_ref()
        .ok_or("the admin listener is off (admin.enabled: false): nothing to ask")?;
    let token = std::env::var("FLEXIPROXY_ADMIN_TOKEN")
        .map_err(|_| "set FLEXIPROXY_ADMIN_TOKEN to the admin token")?;
    let scheme = if admin.tls.is_some() { "https" } else { "http" };
    let base = format!(
        "{scheme}://{}/admin/api/adapters/{}/exchanges",
        admin.address, what.name
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    runtime.block_on(async {
        let client = reqwest::Client::new();
        let get = |url: String| {
            let request = client.get(url).bearer_auth(&token).send();
            async move {
                let response = request
                    .await
                    .map_err(|e| format!("cannot reach the server: {e}"))?;
                let status = response.status();
                let body: Value = response.json().await.map_err(|e| e.to_string())?;
                if status.is_success() {
                    Ok(body)
                } else {
                    Err(body["error"].as_str().unwrap_or("failed").to_owned())
                }
            }
        };
        if let Some(id) = what.id {
            let exchange = get(format!("{base}/{id}")).await?;
            println!(
                "{}",
                serde_json::to_string_pretty(&exchange).unwrap_or_default()
            );
            return Ok(());
        }
        let mut seen = 0;
        loop {
            let listing = get(base.clone()).await?;
            let mut rows: Vec<&Value> = listing["exchanges"]
                .as_array()
                .map(|a| a.iter().collect())
                .unwrap_or_default();
            rows.reverse();
            let last = seen;
            for row in rows.iter().filter(|r| r["id"].as_u64().unwrap_or(0) > last) {
                if what.json {
                    println!("{row}");
                } else {
                    println!("{}", line(row));
                }
                seen = seen.max(row["id"].as_u64().unwrap_or(0));
            }
            if !what.follow {
                if rows.is_empty() && !what.json {
                    println!("no exchanges kept (is `inspect:` set in the adapter's file?)");
                }
                return Ok(());
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
}

/// `id  time  model  status  duration  tokens in/out  [N notes]  [stream]`.
fn line(row: &Value) -> String {
    let tokens = |v: &Value| v.as_u64().map_or("-".to_owned(), |n| n.to_string());
    let time = row["time_ms"].as_u64().map_or_else(
        || "-".to_owned(),
        |ms| {
            let t = std::time::UNIX_EPOCH + Duration::from_millis(ms);
            humantime::format_rfc3339_seconds(t).to_string()
        },
    );
    format!(
        "{:>6}  {time}  {:<28}  {:>3}  {:>6} ms  {}/{} tokens{}{}",
        row["id"],
        row["model"].as_str().unwrap_or("-"),
        row["status"],
        row["duration_ms"],
        tokens(&row["input_tokens"]),
        tokens(&row["output_tokens"]),
        match row["notes"].as_u64() {
            Some(n) if n > 0 => format!("  {n} notes"),
            _ => String::new(),
        },
        if row["stream"].as_bool() == Some(true) {
            "  stream"
        } else {
            ""
        },
    )
}
