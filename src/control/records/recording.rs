//! The recording of a call record as `audio/wav`: the Range header read
//! into a [`Span`] (RFC 9110 14.2), and the file streamed in bounded chunks.

use std::io::{Seek, SeekFrom};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;

use super::{find, internal};
use crate::control::api_error::ApiError;
use crate::control::http::HttpState;

/// The most of a recording held in memory per response at a time.
const CHUNK: usize = 64 * 1024;

/// What a Range header asks of a file of a given size.
#[derive(Debug, PartialEq)]
pub enum Span {
    /// No (usable) Range: the whole file, 200.
    Full,
    /// First and last byte, inclusive: 206.
    Part(u64, u64),
    /// 416.
    Unsatisfiable,
}

/// Reads a Range header value (RFC 9110 14.2). Anything that is not one
/// `bytes` range is ignored (whole file): other units, bad syntax, and
/// several ranges (answered 200 with the whole file, not multipart).
pub fn plan(range: Option<&str>, size: u64) -> Span {
    let Some((unit, set)) = range.and_then(|r| r.split_once('=')) else {
        return Span::Full;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return Span::Full;
    }
    let specs: Vec<&str> = set
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let [spec] = specs.as_slice() else {
        return Span::Full;
    };
    let Some((first, last)) = spec.split_once('-') else {
        return Span::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    // Digits only; too many for u64 is as good as u64::MAX here.
    let num = |s: &str| {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u64>().unwrap_or(u64::MAX))
    };
    if first.is_empty() {
        // Suffix: the last n bytes.
        return match num(last) {
            None => Span::Full,
            Some(0) => Span::Unsatisfiable,
            Some(_) if size == 0 => Span::Unsatisfiable,
            Some(n) => Span::Part(size - n.min(size), size - 1),
        };
    }
    let Some(a) = num(first) else {
        return Span::Full;
    };
    let b = if last.is_empty() {
        None
    } else {
        match num(last) {
            Some(b) if b >= a => Some(b),
            _ => return Span::Full,
        }
    };
    if a >= size {
        return Span::Unsatisfiable;
    }
    Span::Part(a, b.map_or(size - 1, |b| b.min(size - 1)))
}

/// `GET /console/call-records/{id}/recording`: the call's WAV.
pub async fn recording(
    State(state): State<Arc<HttpState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let cdr = find(&state, id).await?;
    let Some(entry) = cdr
        .recorder
        .iter()
        .find(|r| r.track_id == "mixed")
        .or(cdr.recorder.first())
    else {
        return Err(ApiError::not_found(format!(
            "call {} has no recording",
            cdr.call_id
        )));
    };
    // Relative to data_dir unless absolute (join keeps an absolute path).
    let path = state.records.data_dir.join(&entry.path);
    // Without validators to compare If-Range against, a conditional range
    // gets the whole file (RFC 9110 13.1.5).
    let range = match headers.contains_key(header::IF_RANGE) {
        true => None,
        false => headers
            .get(header::RANGE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    };
    let opened = tokio::task::spawn_blocking(move || {
        let mut file = std::fs::File::open(&path)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(std::io::Error::from(std::io::ErrorKind::NotFound));
        }
        let size = meta.len();
        let span = plan(range.as_deref(), size);
        if let Span::Part(a, _) = span {
            file.seek(SeekFrom::Start(a))?;
        }
        Ok((file, size, span))
    })
    .await;
    let (file, size, span) = match opened {
        Ok(Ok(v)) => v,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ApiError::not_found(format!(
                "the recording of call {} is gone",
                cdr.call_id
            )))
        }
        Ok(Err(e)) => return Err(internal(format!("recording of {}: {e}", cdr.call_id))),
        Err(e) => return Err(internal(format!("recording open failed: {e}"))),
    };
    let (status, len, content_range) = match span {
        Span::Full => (StatusCode::OK, size, None),
        Span::Part(a, b) => (
            StatusCode::PARTIAL_CONTENT,
            b - a + 1,
            Some(format!("bytes {a}-{b}/{size}")),
        ),
        Span::Unsatisfiable => {
            let mut e = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                format!("the recording has {size} bytes"),
            )
            .with_header(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                e = e.with_header(header::CONTENT_RANGE, v);
            }
            return Err(e);
        }
    };
    let body = FileBody {
        file: tokio::fs::File::from_std(file),
        remaining: len,
        buf: vec![0; CHUNK].into_boxed_slice(),
    };
    let mut r = Response::new(Body::new(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("audio/wav"));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if let Some(v) = content_range.and_then(|v| HeaderValue::from_str(&v).ok()) {
        h.insert(header::CONTENT_RANGE, v);
    }
    Ok(r)
}

/// `remaining` bytes of an open file (already at the start of the range),
/// read CHUNK at a time as the client takes them.
struct FileBody {
    file: tokio::fs::File,
    remaining: u64,
    buf: Box<[u8]>,
}

impl http_body::Body for FileBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        use tokio::io::AsyncRead;
        let this = self.get_mut();
        if this.remaining == 0 {
            return Poll::Ready(None);
        }
        let want = usize::try_from(this.remaining)
            .unwrap_or(usize::MAX)
            .min(this.buf.len());
        let mut rb = tokio::io::ReadBuf::new(&mut this.buf[..want]);
        match Pin::new(&mut this.file).poll_read(cx, &mut rb) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
            Poll::Ready(Ok(())) => {
                let got = rb.filled();
                if got.is_empty() {
                    // The file shrank under us: end the response short.
                    return Poll::Ready(Some(Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "recording shrank while being sent",
                    ))));
                }
                this.remaining -= got.len() as u64;
                Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::copy_from_slice(
                    got,
                )))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let p = |r: &str, size| plan(Some(r), size);
        assert_eq!(plan(None, 100), Span::Full);
        assert_eq!(p("bytes=0-43", 100), Span::Part(0, 43));
        assert_eq!(p("bytes=0-43", 10), Span::Part(0, 9));
        assert_eq!(p("bytes=50-", 100), Span::Part(50, 99));
        assert_eq!(p("bytes=-10", 100), Span::Part(90, 99));
        assert_eq!(p("bytes=-1000", 100), Span::Part(0, 99));
        assert_eq!(p("BYTES = 5-5", 100), Span::Part(5, 5));
        assert_eq!(p("bytes=100-", 100), Span::Unsatisfiable);
        assert_eq!(
            p("bytes=999999999999999999999999-", 100),
            Span::Unsatisfiable
        );
        assert_eq!(p("bytes=-0", 100), Span::Unsatisfiable);
        assert_eq!(p("bytes=0-", 0), Span::Unsatisfiable);
        assert_eq!(p("bytes=-5", 0), Span::Unsatisfiable);
        // Ignored: several ranges, bad syntax, other units.
        assert_eq!(p("bytes=0-1,5-6", 100), Span::Full);
        assert_eq!(p("bytes=5-1", 100), Span::Full);
        assert_eq!(p("bytes=a-b", 100), Span::Full);
        assert_eq!(p("bytes=-", 100), Span::Full);
        assert_eq!(p("items=0-1", 100), Span::Full);
        assert_eq!(p("bytes 0-1", 100), Span::Full);
    }
}
