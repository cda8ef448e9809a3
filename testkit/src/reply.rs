//! `Reply`: what the fake provider sends back for one request, built with a small builder
//! that can also script the ways real providers misbehave (slow first byte, odd read
//! boundaries, resets, stalls, garbage).

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};

/// How the response body is delimited on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// `content-length: N`.
    ContentLength,
    /// `transfer-encoding: chunked`.
    Chunked,
    /// No length at all: the body ends when the connection closes.
    CloseDelimited,
}

/// Scripted failure; at most one per reply (the last builder call wins).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    None,
    ResetBeforeHeaders,
    ResetMidHeaders,
    ResetAfterBody(usize),
    StallAfterBody(usize),
}

/// A scripted response. Build one with [`Reply::json`], [`Reply::text`], [`Reply::sse`],
/// [`Reply::sse_bytes`] or [`Reply::garbage`], then adjust it with the builder methods.
///
/// Cloning is cheap (bodies are [`Bytes`]), so a handler may keep a prototype and clone it.
#[derive(Clone, Debug)]
pub struct Reply {
    pub(crate) status: u16,
    /// Headers to send as given; framing headers are added unless set here.
    pub(crate) headers: Vec<(String, String)>,
    /// Body pieces; with chunked framing (and no `split_writes`) each piece is one chunk
    /// written on its own.
    pub(crate) body: Vec<Bytes>,
    pub(crate) framing: Framing,
    pub(crate) split: Vec<usize>,
    pub(crate) delay_between_writes: Option<Duration>,
    pub(crate) delay_before_headers: Option<Duration>,
    pub(crate) fault: Fault,
    pub(crate) close_after: bool,
    pub(crate) garbage: Option<Bytes>,
    /// Whole response serialized once by [`Reply::prepare`]; any builder call clears it.
    pub(crate) prepared: Option<Bytes>,
}

impl Reply {
    fn new(status: u16, content_type: &str, body: Vec<Bytes>, framing: Framing) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".to_string(), content_type.to_string())],
            body,
            framing,
            split: Vec::new(),
            delay_between_writes: None,
            delay_before_headers: None,
            fault: Fault::None,
            close_after: false,
            garbage: None,
            prepared: None,
        }
    }

    /// A JSON response: `content-type: application/json` with a content-length.
    pub fn json(status: u16, body: serde_json::Value) -> Reply {
        let bytes = serde_json::to_vec(&body).expect("serde_json::Value always serializes");
        Reply::new(
            status,
            "application/json",
            vec![Bytes::from(bytes)],
            Framing::ContentLength,
        )
    }

    /// Any body with the given content type and a content-length.
    pub fn text(status: u16, content_type: &str, body: impl Into<Bytes>) -> Reply {
        Reply::new(
            status,
            content_type,
            vec![body.into()],
            Framing::ContentLength,
        )
    }

    /// A 200 `text/event-stream` response with chunked framing; each element is written as
    /// one chunk, exactly as given (include the `data: ...\n\n` yourself).
    pub fn sse(events: Vec<String>) -> Reply {
        let body = events.into_iter().map(Bytes::from).collect();
        Reply::new(200, "text/event-stream", body, Framing::Chunked)
            .header("cache-control", "no-cache")
    }

    /// A raw `text/event-stream` body sent as a single chunk.
    pub fn sse_bytes(status: u16, body: impl Into<Bytes>) -> Reply {
        Reply::new(
            status,
            "text/event-stream",
            vec![body.into()],
            Framing::Chunked,
        )
        .header("cache-control", "no-cache")
    }

    /// Not HTTP at all: these raw bytes are written, then the connection is closed.
    pub fn garbage(bytes: impl Into<Bytes>) -> Reply {
        let mut reply = Reply::new(200, "text/plain", Vec::new(), Framing::ContentLength);
        reply.garbage = Some(bytes.into());
        reply
    }

    /// Set a header, replacing an existing one of the same name (case-insensitive).
    /// Setting `content-length` or `transfer-encoding` yourself replaces the one the framing
    /// would add (the body is still written per the framing), which lets a test send a
    /// lying length.
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.prepared = None;
        match self
            .headers
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some(slot) => *slot = (name.to_string(), value.to_string()),
            None => self.headers.push((name.to_string(), value.to_string())),
        }
        self
    }

    /// Add a header even if one of that name exists (for repeated headers).
    pub fn append_header(mut self, name: &str, value: &str) -> Reply {
        self.prepared = None;
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Change how the body is delimited.
    pub fn framing(mut self, framing: Framing) -> Reply {
        self.prepared = None;
        self.framing = framing;
        self
    }

    /// Re-split the whole body into writes of these sizes (cycled; zeros ignored), flushing
    /// each, so the peer sees arbitrary read boundaries, including inside UTF-8 characters.
    /// With chunked framing each write is one chunk. Combine with
    /// [`Reply::delay_between_writes`] to make sure the peer cannot coalesce them.
    pub fn split_writes(mut self, sizes: Vec<usize>) -> Reply {
        self.prepared = None;
        self.split = sizes;
        self
    }

    /// Sleep this long between body writes (SSE events, or `split_writes` pieces).
    pub fn delay_between_writes(mut self, d: Duration) -> Reply {
        self.prepared = None;
        self.delay_between_writes = Some(d);
        self
    }

    /// Sleep this long before the status line: a slow provider's time to first byte.
    pub fn delay_before_headers(mut self, d: Duration) -> Reply {
        self.prepared = None;
        self.delay_before_headers = Some(d);
        self
    }

    /// Write the headers and `n` bytes of body payload (chunk framing not counted), then
    /// abort the connection with a TCP RST.
    pub fn reset_after_body_bytes(mut self, n: usize) -> Reply {
        self.prepared = None;
        self.fault = Fault::ResetAfterBody(n);
        self
    }

    /// Read the request, then RST without answering.
    pub fn reset_before_headers(mut self) -> Reply {
        self.prepared = None;
        self.fault = Fault::ResetBeforeHeaders;
        self
    }

    /// Write about half of the status line and headers, then RST.
    pub fn reset_mid_headers(mut self) -> Reply {
        self.prepared = None;
        self.fault = Fault::ResetMidHeaders;
        self
    }

    /// Write the headers and `n` bytes of body payload, then send nothing more and keep the
    /// connection open until the peer closes it (counted in `aborted_replies`).
    pub fn stall_after_body_bytes(mut self, n: usize) -> Reply {
        self.prepared = None;
        self.fault = Fault::StallAfterBody(n);
        self
    }

    /// Send `connection: close` and close the connection after this reply.
    pub fn close_after(mut self) -> Reply {
        self.prepared = None;
        self.close_after = true;
        self
    }

    /// Serialize the complete response once, so each send is one write of shared bytes.
    /// For benchmark hot loops; a no-op for replies with delays, splits, faults or garbage.
    /// Any later builder call undoes it.
    pub fn prepare(mut self) -> Reply {
        if self.is_simple() {
            let mut out = BytesMut::new();
            self.write_head(&mut out, self.closes_connection(), false);
            for w in self.body_writes(None) {
                out.extend_from_slice(&w);
            }
            self.prepared = Some(out.freeze());
        }
        self
    }

    /// The HTTP status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The body payload (all pieces concatenated, no framing).
    pub fn body_bytes(&self) -> Bytes {
        concat(&self.body)
    }

    /// No timing tricks or faults: the whole reply can go out in one write.
    pub(crate) fn is_simple(&self) -> bool {
        self.garbage.is_none()
            && self.fault == Fault::None
            && self.split.is_empty()
            && self.delay_between_writes.is_none()
            && self.delay_before_headers.is_none()
    }

    pub(crate) fn closes_connection(&self) -> bool {
        self.close_after || self.framing == Framing::CloseDelimited
    }

    /// Status line and headers. `close` adds `connection: close`; `keep_alive` adds
    /// `connection: keep-alive` for HTTP/1.0 clients.
    pub(crate) fn write_head(&self, out: &mut BytesMut, close: bool, keep_alive: bool) {
        out.reserve(
            128 + self
                .headers
                .iter()
                .map(|(n, v)| n.len() + v.len() + 4)
                .sum::<usize>(),
        );
        out.put_slice(b"HTTP/1.1 ");
        out.put_slice(self.status.to_string().as_bytes());
        out.put_u8(b' ');
        out.put_slice(reason(self.status).as_bytes());
        out.put_slice(b"\r\n");
        let mut user_framing = false;
        let mut user_connection = false;
        for (name, value) in &self.headers {
            user_framing |= name.eq_ignore_ascii_case("content-length")
                || name.eq_ignore_ascii_case("transfer-encoding");
            user_connection |= name.eq_ignore_ascii_case("connection");
            put_header(out, name, value);
        }
        if !user_framing {
            match self.framing {
                Framing::ContentLength => {
                    let len: usize = self.body.iter().map(Bytes::len).sum();
                    put_header(out, "content-length", &len.to_string());
                }
                Framing::Chunked => put_header(out, "transfer-encoding", "chunked"),
                Framing::CloseDelimited => {}
            }
        }
        if !user_connection {
            if close {
                put_header(out, "connection", "close");
            } else if keep_alive {
                put_header(out, "connection", "keep-alive");
            }
        }
        out.put_slice(b"\r\n");
    }

    /// The body as the writes that go on the wire, framing included. With a `budget`, stop
    /// after that many payload bytes (mid-chunk if need be) and leave out the terminator.
    pub(crate) fn body_writes(&self, budget: Option<usize>) -> Vec<Bytes> {
        let pieces = self.pieces();
        let mut remaining = budget.unwrap_or(usize::MAX);
        let mut writes = Vec::with_capacity(pieces.len() + 1);
        for piece in pieces {
            if remaining == 0 {
                break;
            }
            let take = piece.len().min(remaining);
            remaining -= take;
            match self.framing {
                Framing::Chunked => {
                    let mut w = BytesMut::with_capacity(take + 16);
                    w.put_slice(format!("{:x}\r\n", piece.len()).as_bytes());
                    w.put_slice(&piece[..take]);
                    if take == piece.len() {
                        w.put_slice(b"\r\n");
                    }
                    writes.push(w.freeze());
                }
                Framing::ContentLength | Framing::CloseDelimited => {
                    writes.push(piece.slice(..take));
                }
            }
        }
        if budget.is_none() && self.framing == Framing::Chunked {
            writes.push(Bytes::from_static(b"0\r\n\r\n"));
        }
        writes
    }

    /// Payload pieces, one per write; empty pieces dropped (an empty chunk would end the
    /// chunked body early).
    fn pieces(&self) -> Vec<Bytes> {
        let sizes: Vec<usize> = self.split.iter().copied().filter(|&s| s > 0).collect();
        if sizes.is_empty() {
            return self
                .body
                .iter()
                .filter(|b| !b.is_empty())
                .cloned()
                .collect();
        }
        let whole = concat(&self.body);
        let mut out = Vec::new();
        let mut at = 0;
        for size in sizes.iter().cycle() {
            if at >= whole.len() {
                break;
            }
            let end = (at + size).min(whole.len());
            out.push(whole.slice(at..end));
            at = end;
        }
        out
    }
}

fn concat(pieces: &[Bytes]) -> Bytes {
    match pieces {
        [] => Bytes::new(),
        [one] => one.clone(),
        many => {
            let mut all = BytesMut::with_capacity(many.iter().map(Bytes::len).sum());
            for p in many {
                all.put_slice(p);
            }
            all.freeze()
        }
    }
}

fn put_header(out: &mut BytesMut, name: &str, value: &str) {
    out.put_slice(name.as_bytes());
    out.put_slice(b": ");
    out.put_slice(value.as_bytes());
    out.put_slice(b"\r\n");
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Payload Too Large",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        529 => "Overloaded",
        _ => "Status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(reply: &Reply) -> String {
        let mut out = BytesMut::new();
        reply.write_head(&mut out, reply.closes_connection(), false);
        for w in reply.body_writes(None) {
            out.extend_from_slice(&w);
        }
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn json_has_content_length() {
        let r = Reply::json(201, serde_json::json!({"a": 1}));
        assert_eq!(
            wire(&r),
            "HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: 7\r\n\r\n{\"a\":1}"
        );
    }

    #[test]
    fn sse_is_one_chunk_per_event() {
        let r = Reply::sse(vec![
            "data: a\n\n".into(),
            String::new(),
            "data: bc\n\n".into(),
        ]);
        let w = wire(&r);
        assert!(w.contains("transfer-encoding: chunked\r\n"));
        assert!(w.ends_with("\r\n\r\n9\r\ndata: a\n\n\r\na\r\ndata: bc\n\n\r\n0\r\n\r\n"));
    }

    #[test]
    fn split_cycles_sizes_across_the_whole_body() {
        let r = Reply::text(200, "text/plain", "abcdefghij").split_writes(vec![1, 3]);
        let pieces: Vec<Bytes> = r.body_writes(None);
        assert_eq!(pieces, vec!["a", "bcd", "e", "fgh", "i", "j"]);
    }

    #[test]
    fn budget_cuts_mid_chunk_without_terminator() {
        let r = Reply::sse(vec!["abcd".into(), "efgh".into()]);
        let w = r.body_writes(Some(6));
        assert_eq!(w, vec!["4\r\nabcd\r\n", "4\r\nef"]);
        assert!(r.body_writes(Some(0)).is_empty());
    }

    #[test]
    fn user_headers_replace_framing_and_defaults() {
        let r = Reply::text(200, "text/plain", "abc")
            .header("Content-Type", "text/html")
            .header("content-length", "99")
            .close_after();
        assert_eq!(
            wire(&r),
            "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\ncontent-length: 99\r\nconnection: close\r\n\r\nabc"
        );
    }

    #[test]
    fn prepare_matches_the_normal_path() {
        let r = Reply::sse(vec!["data: x\n\n".into()]);
        let p = r.clone().prepare();
        assert_eq!(p.prepared.as_deref(), Some(wire(&r).as_bytes()));
        assert!(p.header("x", "y").prepared.is_none());
        assert!(
            r.delay_before_headers(Duration::from_millis(1))
                .prepare()
                .prepared
                .is_none()
        );
    }
}
