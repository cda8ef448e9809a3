//! The access log: one JSON line per request, written off the request path (a background
//! writer; if it falls behind, lines are dropped and counted rather than slowing requests).
//! Built from an explicit list of fields — never a key, never prompt or completion text.

use crate::config::server::AccessLogTarget;
use serde::Serialize;
use std::io::Write;
use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};

/// Everything one access log line says.
#[derive(Debug, Default, Serialize)]
pub struct AccessRecord<'a> {
    pub time: String,
    pub request_id: &'a str,
    pub method: &'a str,
    pub route: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adapter: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_label: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_model: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_model: Option<&'a str>,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_status: Option<u16>,
    pub bytes_in: usize,
    pub bytes_out: usize,
    pub duration_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttfb_ms: Option<f64>,
    pub stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
}

pub struct AccessLog {
    writer: Option<NonBlocking>,
    guard: std::sync::Mutex<Option<WorkerGuard>>,
}

impl AccessLog {
    pub fn open(target: &AccessLogTarget) -> std::io::Result<AccessLog> {
        let sink: Box<dyn Write + Send> = match target {
            AccessLogTarget::Off => {
                return Ok(AccessLog {
                    writer: None,
                    guard: std::sync::Mutex::new(None),
                });
            }
            AccessLogTarget::Stdout => Box::new(std::io::stdout()),
            AccessLogTarget::Stderr => Box::new(std::io::stderr()),
            AccessLogTarget::File(path) => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                Box::new(
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path)?,
                )
            }
        };
        let (writer, guard) = NonBlockingBuilder::default()
            .lossy(true)
            .thread_name("flexiproxy-access-log")
            .finish(sink);
        Ok(AccessLog {
            writer: Some(writer),
            guard: std::sync::Mutex::new(Some(guard)),
        })
    }

    pub fn is_enabled(&self) -> bool {
        self.writer.is_some()
    }

    pub fn write(&self, record: &AccessRecord<'_>) {
        let Some(writer) = &self.writer else { return };
        let mut line = match serde_json::to_vec(record) {
            Ok(l) => l,
            Err(_) => return,
        };
        line.push(b'\n');
        let _ = writer.clone().write_all(&line);
    }

    /// Writes out what is buffered and stops the writer (at exit).
    pub fn close(&self) {
        let guard = self.guard.lock().unwrap_or_else(|p| p.into_inner()).take();
        drop(guard);
    }

    /// Lines dropped because the writer fell behind.
    pub fn dropped(&self) -> usize {
        self.writer
            .as_ref()
            .map_or(0, |w| w.error_counter().dropped_lines())
    }
}
