//! A sans-IO Server-Sent Events decoder: fed arbitrary byte slices (a read can end mid-line or
//! mid-UTF-8 character), it yields complete events. Lenient in the ways providers are sloppy:
//! `\r\n` or `\r` line ends, `data:` with or without a space, and events that forget the blank
//! line between them.
//!
//! [`SseDriver`] is the one driver of every source protocol's stream decoder: it frames the
//! provider's reads and hands each event to the protocol's [`FrameDecoder`].

use crate::protocol::pivot::Event;

/// What the decoder found in the stream.
#[derive(Debug, PartialEq, Eq)]
pub enum SseEvent<'a> {
    /// The joined `data:` lines of one event.
    Data(&'a [u8]),
    /// A `:` comment line — providers send these as keep-alives.
    Comment,
}

#[derive(Debug, Default)]
pub struct SseDecoder {
    /// An incomplete line carried over from the previous read.
    partial: Vec<u8>,
    /// The data of the event being assembled.
    data: Vec<u8>,
    has_data: bool,
    /// The previous read ended with `\r`: a `\n` at the start of the next one belongs to it.
    after_cr: bool,
}

impl SseDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one read; calls `on_event` for each event completed by it.
    pub fn push(&mut self, mut input: &[u8], on_event: &mut impl FnMut(SseEvent<'_>)) {
        if self.after_cr {
            self.after_cr = false;
            if let Some(rest) = input.strip_prefix(b"\n") {
                input = rest;
            }
        }
        while let Some(end) = memchr::memchr2(b'\n', b'\r', input) {
            let line_end = end;
            let mut next = end + 1;
            if input[end] == b'\r' {
                match input.get(next) {
                    Some(b'\n') => next += 1,
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
            if self.partial.is_empty() {
                self.line(&input[..line_end], on_event);
            } else {
                let mut line = std::mem::take(&mut self.partial);
                line.extend_from_slice(&input[..line_end]);
                self.line(&line, on_event);
                line.clear();
                self.partial = line;
            }
            input = &input[next..];
        }
        self.partial.extend_from_slice(input);
    }

    /// End of input: a last line without its newline and an event without its blank line
    /// still count.
    pub fn finish(&mut self, on_event: &mut impl FnMut(SseEvent<'_>)) {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.line(&line, on_event);
        }
        self.dispatch(on_event);
    }

    fn dispatch(&mut self, on_event: &mut impl FnMut(SseEvent<'_>)) {
        if self.has_data {
            on_event(SseEvent::Data(&self.data));
            self.data.clear();
            self.has_data = false;
        }
    }

    fn line(&mut self, line: &[u8], on_event: &mut impl FnMut(SseEvent<'_>)) {
        if line.is_empty() {
            self.dispatch(on_event);
            return;
        }
        if line[0] == b':' {
            on_event(SseEvent::Comment);
            return;
        }
        let (field, value) = match memchr::memchr(b':', line) {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &[][..]),
        };
        if field != b"data" {
            return; // event:, id:, retry: carry nothing we translate
        }
        if self.has_data {
            // A new JSON document or [DONE] right after data without a blank line: the
            // provider forgot the separator, so the previous event is complete.
            if value.first() == Some(&b'{') || value == b"[DONE]" {
                self.dispatch(on_event);
            } else {
                self.data.push(b'\n');
            }
        }
        self.data.extend_from_slice(value);
        self.has_data = true;
    }
}

/// A source protocol's stream decoder, one SSE event at a time: what it makes of each event
/// of the provider's stream, in pivot [`Event`]s. [`SseDriver`] feeds it.
pub trait FrameDecoder {
    /// One event of the provider's stream.
    fn frame(&mut self, event: SseEvent<'_>, on_event: &mut impl FnMut(Event<'_>));
    /// The provider's body ended, after its last event.
    fn end(&mut self, on_event: &mut impl FnMut(Event<'_>));
    /// The stream said it is over: later reads are not looked at.
    fn is_done(&self) -> bool;
}

/// A source stream's decoder, sans-IO: provider reads in (arbitrary slices), pivot events out
/// — the same events whatever the split.
#[derive(Debug, Default)]
pub struct SseDriver<D> {
    sse: SseDecoder,
    decoder: D,
}

impl<D: FrameDecoder> SseDriver<D> {
    /// Drives `decoder`.
    pub fn of(decoder: D) -> Self {
        SseDriver {
            sse: SseDecoder::new(),
            decoder,
        }
    }

    /// Decodes one read; `on_event` gets every event it completes.
    pub fn push(&mut self, input: &[u8], on_event: &mut impl FnMut(Event<'_>)) {
        if self.decoder.is_done() {
            return;
        }
        let decoder = &mut self.decoder;
        self.sse
            .push(input, &mut |event| decoder.frame(event, on_event));
    }

    /// The provider's body ended (cleanly: a reset or timeout is the encoder's business).
    pub fn finish(&mut self, on_event: &mut impl FnMut(Event<'_>)) {
        if self.decoder.is_done() {
            return;
        }
        let decoder = &mut self.decoder;
        self.sse.finish(&mut |event| decoder.frame(event, on_event));
        self.decoder.end(on_event);
    }

    /// The stream said it is over.
    pub fn is_done(&self) -> bool {
        self.decoder.is_done()
    }

    /// The protocol's decoder, for what it counted.
    pub fn decoder(&self) -> &D {
        &self.decoder
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(chunks: &[&[u8]]) -> Vec<String> {
        let mut d = SseDecoder::new();
        let mut out = Vec::new();
        let mut f = |e: SseEvent<'_>| match e {
            SseEvent::Data(b) => out.push(String::from_utf8_lossy(b).into_owned()),
            SseEvent::Comment => out.push(":".into()),
        };
        for c in chunks {
            d.push(c, &mut f);
        }
        d.finish(&mut f);
        out
    }

    #[test]
    fn basic_events_and_comments() {
        assert_eq!(
            decode(&[b": keep-alive\n\ndata: {\"a\":1}\n\ndata:{\"b\":2}\n\ndata: [DONE]\n\n"]),
            vec![":", "{\"a\":1}", "{\"b\":2}", "[DONE]"]
        );
    }

    #[test]
    fn crlf_and_cr_line_ends_even_across_reads() {
        assert_eq!(
            decode(&[b"data: x\r", b"\n\r\ndata: y\r\r"]),
            vec!["x", "y"]
        );
    }

    #[test]
    fn multi_line_data_is_joined() {
        assert_eq!(decode(&[b"data: a\ndata: b\n\n"]), vec!["a\nb"]);
    }

    #[test]
    fn missing_blank_line_between_json_events() {
        assert_eq!(
            decode(&[b"data: {\"a\":1}\ndata: {\"b\":2}\ndata: [DONE]\n"]),
            vec!["{\"a\":1}", "{\"b\":2}", "[DONE]"]
        );
    }

    #[test]
    fn eof_without_newline_still_dispatches() {
        assert_eq!(decode(&[b"data: {\"a\":1}"]), vec!["{\"a\":1}"]);
    }

    #[test]
    fn ignores_other_fields() {
        assert_eq!(
            decode(&[b"event: x\nid: 3\nretry: 10\ndata: d\n\n"]),
            vec!["d"]
        );
    }
}
