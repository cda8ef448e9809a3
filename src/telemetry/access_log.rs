//! The access log: one JSON line per request, appended to a buffer that a background thread
//! writes out every 50 ms (if it falls behind, lines are dropped and counted rather than
//! slowing requests).
//! Built from an explicit list of fields — never a key, never prompt or completion text.

use crate::config::server::AccessLogTarget;
use crate::lock;
use serde::Serialize;
use std::fs::File;
use std::io::Write;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

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
    /// Hosted tools the client offered that the source cannot run (dropped from the request).
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub dropped_tools: &'a [String],
    /// The route that served the request (`default`: the adapter's source).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route_name: Option<&'a str>,
    /// The provider key of the last attempt (`source/key`: index or label, never the key).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_key: Option<&'a str>,
    /// Provider attempts (more than one after a fail-over).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// Images and documents replaced by notes for a text-only source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_omitted: Option<usize>,
    /// How many things the translation changed (docs/inspector.md), and the first few.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notes: Option<usize>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes_first: Vec<String>,
    /// Searches the gateway ran for the client's hosted search tool (docs/web-search.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub web_searches: Option<u32>,
    /// What the request cost in the server's `currency`, when the provider reported usage and
    /// its model has a price (`config::prices`); absent means unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<f64>,
}

/// How often the writer thread writes out what requests have appended. Requests never wake
/// it: at thousands of requests per second a wake-up per line cost more CPU than the lines.
const FLUSH_INTERVAL: Duration = Duration::from_millis(50);
/// Lines beyond this much unwritten text are dropped (and counted) rather than buffered.
const MAX_BUFFERED: usize = 8 << 20;

pub struct AccessLog {
    shared: Option<Arc<Shared>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

struct Shared {
    buffer: Mutex<Vec<u8>>,
    dropped: AtomicUsize,
    closing: AtomicBool,
}

impl AccessLog {
    pub fn open(target: &AccessLogTarget) -> std::io::Result<AccessLog> {
        let sink: Box<dyn Write + Send> = match target {
            AccessLogTarget::Off => {
                return Ok(AccessLog {
                    shared: None,
                    writer: Mutex::new(None),
                });
            }
            // Unbuffered handles of their own: std's stdout would flush at every newline.
            AccessLogTarget::Stdout => {
                Box::new(File::from(std::io::stdout().as_fd().try_clone_to_owned()?))
            }
            AccessLogTarget::Stderr => {
                Box::new(File::from(std::io::stderr().as_fd().try_clone_to_owned()?))
            }
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
        let shared = Arc::new(Shared {
            buffer: Mutex::new(Vec::with_capacity(64 << 10)),
            dropped: AtomicUsize::new(0),
            closing: AtomicBool::new(false),
        });
        let for_writer = shared.clone();
        let writer = std::thread::Builder::new()
            .name("flexiproxy-access-log".into())
            .spawn(move || write_out(&for_writer, sink))?;
        Ok(AccessLog {
            shared: Some(shared),
            writer: Mutex::new(Some(writer)),
        })
    }

    pub fn is_enabled(&self) -> bool {
        self.shared.is_some()
    }

    pub fn write(&self, record: &AccessRecord<'_>) {
        let Some(shared) = &self.shared else { return };
        let mut buffer = lock(&shared.buffer);
        if buffer.len() >= MAX_BUFFERED {
            drop(buffer);
            shared.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let before = buffer.len();
        if serde_json::to_writer(&mut *buffer, record).is_ok() {
            buffer.push(b'\n');
        } else {
            buffer.truncate(before);
        }
    }

    /// Writes out what is buffered and stops the writer (at exit).
    pub fn close(&self) {
        let Some(shared) = &self.shared else { return };
        shared.closing.store(true, Ordering::Release);
        if let Some(writer) = lock(&self.writer).take() {
            writer.thread().unpark();
            let _ = writer.join();
        }
    }

    /// Lines dropped because the writer fell behind.
    pub fn dropped(&self) -> usize {
        self.shared
            .as_ref()
            .map_or(0, |s| s.dropped.load(Ordering::Relaxed))
    }
}

/// The writer thread: every [`FLUSH_INTERVAL`], swap the buffer for an empty one and write it.
fn write_out(shared: &Shared, mut sink: Box<dyn Write + Send>) {
    let mut spare = Vec::with_capacity(64 << 10);
    loop {
        let closing = shared.closing.load(Ordering::Acquire);
        std::mem::swap(&mut *lock(&shared.buffer), &mut spare);
        if !spare.is_empty() {
            // A failing sink (full disk, closed pipe) loses these lines, never a request.
            if sink.write_all(&spare).and_then(|()| sink.flush()).is_err() {
                let lines = spare.iter().filter(|&&b| b == b'\n').count();
                shared.dropped.fetch_add(lines, Ordering::Relaxed);
            }
            spare.clear();
            // Give back memory a burst grew the buffer to.
            spare.shrink_to(1 << 20);
        }
        if closing {
            return;
        }
        std::thread::park_timeout(FLUSH_INTERVAL);
    }
}
