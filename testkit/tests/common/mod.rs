//! A deliberately dumb raw HTTP/1.1 client for testing the fake provider at the byte level:
//! it writes exactly the bytes it is given and reads responses by hand, so tests see every
//! read boundary, reset and early close.

#![allow(dead_code)] // each test binary uses a different subset

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

pub const DEADLINE: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A POST with a Content-Length body.
pub fn post(path: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

async fn fill<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut Vec<u8>) -> io::Result<usize> {
    let mut chunk = [0u8; 16 * 1024];
    let n = stream.read(&mut chunk).await?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}

fn eof() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "connection closed mid-response",
    )
}

/// Read one response; `buf` carries bytes read past it over to the next call.
pub async fn read_response<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
) -> io::Result<Response> {
    let (head_len, status, headers) = loop {
        let mut hdrs = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut hdrs);
        match resp.parse(buf) {
            Ok(httparse::Status::Complete(n)) => {
                let headers = resp
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_ascii_lowercase(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect::<Vec<_>>();
                break (n, resp.code.unwrap_or(0), headers);
            }
            Ok(httparse::Status::Partial) => {
                if fill(stream, buf).await? == 0 {
                    return Err(eof());
                }
            }
            Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
        }
    };
    buf.drain(..head_len);
    let find = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let body = if find("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        let mut body = Vec::new();
        loop {
            let (consumed, size) = loop {
                match httparse::parse_chunk_size(buf) {
                    Ok(httparse::Status::Complete(c)) => break c,
                    Ok(httparse::Status::Partial) => {
                        if fill(stream, buf).await? == 0 {
                            return Err(eof());
                        }
                    }
                    Err(_) => return Err(io::Error::new(io::ErrorKind::InvalidData, "chunk size")),
                }
            };
            let size = size as usize;
            while buf.len() < consumed + size + 2 {
                if fill(stream, buf).await? == 0 {
                    return Err(eof());
                }
            }
            body.extend_from_slice(&buf[consumed..consumed + size]);
            buf.drain(..consumed + size + 2);
            if size == 0 {
                break body;
            }
        }
    } else if let Some(len) = find("content-length") {
        let len: usize = len.parse().expect("content-length");
        while buf.len() < len {
            if fill(stream, buf).await? == 0 {
                return Err(eof());
            }
        }
        buf.drain(..len).collect()
    } else {
        while fill(stream, buf).await? > 0 {}
        std::mem::take(buf)
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// Read until EOF or error; returns what arrived and how the stream ended.
pub async fn read_until_end<S: AsyncRead + Unpin>(stream: &mut S) -> (Vec<u8>, io::Result<()>) {
    let mut all = Vec::new();
    loop {
        match fill(stream, &mut all).await {
            Ok(0) => return (all, Ok(())),
            Ok(_) => {}
            Err(e) => return (all, Err(e)),
        }
    }
}
