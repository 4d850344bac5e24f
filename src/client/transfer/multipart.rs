//! `multipart/form-data` request bodies (RFC 7578), streamed: files are read in pieces as the
//! socket takes them, never loaded whole.

use std::fmt;
use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::client::producer::{BodyProducer, BodySink, Produce};
use crate::client::request::Request;

const PIECE: usize = 16 * 1024;

enum Source {
    Bytes(Vec<u8>),
    File { path: PathBuf, len: u64 },
    Reader(Option<Box<dyn Read>>, Option<u64>),
}

struct Part {
    /// `Content-Disposition` and `Content-Type` lines, without the boundary.
    head: Vec<u8>,
    body: Source,
}

/// A `multipart/form-data` body under construction.
///
/// ```no_run
/// use weft::client::{Multipart, Request};
///
/// let form = Multipart::new()
///     .text("title", "holiday")
///     .file("photo", "beach.jpg").unwrap()
///     .bytes("notes", "notes.txt", "text/plain", b"sunny".to_vec());
/// let request = form.attach(Request::new("POST", "http://127.0.0.1:8080/upload"));
/// assert!(request.headers.get_str("content-type").unwrap().starts_with("multipart/form-data"));
/// ```
pub struct Multipart {
    boundary: String,
    parts: Vec<Part>,
}

impl Default for Multipart {
    fn default() -> Self {
        Multipart::new()
    }
}

impl fmt::Debug for Multipart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Multipart")
            .field("boundary", &self.boundary)
            .field("parts", &self.parts.len())
            .finish()
    }
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn new_boundary() -> String {
    // Unpredictable enough without a rand crate: time, a counter, and std's random hash keys.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    h.write_u128(nanos);
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    let a = h.finish();
    h.write_u64(a);
    format!("----weft{:016x}{:016x}", a, h.finish())
}

/// Escapes a name or file name for a quoted parameter as browsers do (WHATWG, RFC 7578 §2):
/// `"` becomes `%22`, CR `%0D`, LF `%0A`.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("%22"),
            '\r' => out.push_str("%0D"),
            '\n' => out.push_str("%0A"),
            c => out.push(c),
        }
    }
    out
}

/// The content type guessed from a file name's extension (a few common ones), else
/// `application/octet-stream`.
///
/// ```
/// assert_eq!(weft::client::guess_content_type("a/b.JSON"), "application/json");
/// assert_eq!(weft::client::guess_content_type("x.unknown"), "application/octet-stream");
/// ```
pub fn guess_content_type(path: impl AsRef<Path>) -> &'static str {
    let ext = path
        .as_ref()
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "txt" => "text/plain",
        "html" | "htm" => "text/html",
        "css" => "text/css",
        "csv" => "text/csv",
        "js" | "mjs" => "text/javascript",
        "json" => "application/json",
        "xml" => "application/xml",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "svg" => "image/svg+xml",
        "mp3" => "audio/mpeg",
        "mp4" => "video/mp4",
        _ => "application/octet-stream",
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

impl Multipart {
    /// An empty form with a fresh random boundary.
    pub fn new() -> Self {
        Multipart {
            boundary: new_boundary(),
            parts: Vec::new(),
        }
    }

    fn push(mut self, name: &str, file: Option<(&str, &str)>, body: Source) -> Self {
        let mut head = format!("Content-Disposition: form-data; name=\"{}\"", escape(name));
        if let Some((filename, content_type)) = file {
            head.push_str(&format!("; filename=\"{}\"", escape(filename)));
            let ct: String = content_type
                .chars()
                .filter(|c| !matches!(c, '\r' | '\n'))
                .collect();
            head.push_str(&format!("\r\nContent-Type: {ct}"));
        }
        head.push_str("\r\n");
        self.parts.push(Part {
            head: head.into_bytes(),
            body,
        });
        // The boundary must not occur in anything held in memory; pick another until so.
        while self.parts.iter().any(|p| {
            let b = self.boundary.as_bytes();
            contains(&p.head, b) || matches!(&p.body, Source::Bytes(d) if contains(d, b))
        }) {
            self.boundary = new_boundary();
        }
        self
    }

    /// A text field.
    pub fn text(self, name: &str, value: impl Into<String>) -> Self {
        let value: String = value.into();
        self.push(name, None, Source::Bytes(value.into_bytes()))
    }

    /// A file field read from `path` when the body is sent: the file name is the path's
    /// last component, the content type guessed from its extension
    /// ([`guess_content_type`]). Its length is taken now (from metadata); a file that then
    /// changes size fails the request.
    pub fn file(self, name: &str, path: impl AsRef<Path>) -> io::Result<Self> {
        let path = path.as_ref();
        let len = std::fs::metadata(path)?.len();
        let filename = path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let ct = guess_content_type(path);
        Ok(self.push(
            name,
            Some((&filename, ct)),
            Source::File {
                path: path.to_path_buf(),
                len,
            },
        ))
    }

    /// A file field from bytes in memory.
    pub fn bytes(
        self,
        name: &str,
        filename: &str,
        content_type: &str,
        data: impl Into<Vec<u8>>,
    ) -> Self {
        self.push(
            name,
            Some((filename, content_type)),
            Source::Bytes(data.into()),
        )
    }

    /// A file field read from `reader` to its end. With `length: None` the whole body's
    /// length is unknown and it is sent chunked. A body with a reader cannot be replayed.
    pub fn reader(
        self,
        name: &str,
        filename: &str,
        content_type: &str,
        reader: impl Read + 'static,
        length: Option<u64>,
    ) -> Self {
        self.push(
            name,
            Some((filename, content_type)),
            Source::Reader(Some(Box::new(reader)), length),
        )
    }

    /// The boundary (no `--` prefix).
    pub fn boundary(&self) -> &str {
        &self.boundary
    }

    /// The `Content-Type` to send: `multipart/form-data; boundary=...`. Call it after adding
    /// in-memory parts: adding one that contains the boundary changes the boundary.
    pub fn content_type(&self) -> String {
        format!("multipart/form-data; boundary={}", self.boundary)
    }

    /// The body, as a producer.
    pub fn into_producer(self) -> MultipartProducer {
        let delim = format!("--{}\r\n", self.boundary).into_bytes();
        let mut segments = Vec::new();
        for part in self.parts {
            let mut head = delim.clone();
            head.extend_from_slice(&part.head);
            head.extend_from_slice(b"\r\n");
            segments.push(Source::Bytes(head));
            segments.push(part.body);
            segments.push(Source::Bytes(b"\r\n".to_vec()));
        }
        segments.push(Source::Bytes(
            format!("--{}--\r\n", self.boundary).into_bytes(),
        ));
        let length = segments.iter().try_fold(0u64, |total, s| {
            Some(
                total
                    + match s {
                        Source::Bytes(d) => d.len() as u64,
                        Source::File { len, .. } => *len,
                        Source::Reader(_, len) => (*len)?,
                    },
            )
        });
        MultipartProducer {
            segments,
            length,
            cur: 0,
            pos: 0,
            file: None,
            buf: Vec::new(),
        }
    }

    /// Sets `request`'s `Content-Type` and body to this form.
    pub fn attach(self, request: Request) -> Request {
        let ct = self.content_type();
        let mut request = request.body(self.into_producer());
        request.headers.set("Content-Type", ct.as_bytes());
        request
    }
}

/// Streams a [`Multipart`] body. Its length is exact when every part's size is known (the
/// request then has `Content-Length`), else `None` (chunked). It can be rewound for a retry
/// unless a part comes from a reader (files are reopened).
pub struct MultipartProducer {
    segments: Vec<Source>,
    length: Option<u64>,
    cur: usize,
    pos: u64,
    file: Option<File>,
    buf: Vec<u8>,
}

impl MultipartProducer {
    /// Writes one piece of the current segment; `Ok(true)` when the body is complete.
    fn piece(&mut self, sink: &mut BodySink<'_>) -> Result<bool, String> {
        let Some(segment) = self.segments.get_mut(self.cur) else {
            return Ok(true);
        };
        let done = match segment {
            Source::Bytes(data) => {
                let start = self.pos as usize;
                let end = (start + 4 * PIECE).min(data.len());
                sink.write(&data[start..end]);
                self.pos = end as u64;
                end == data.len()
            }
            Source::File { path, len } => {
                if self.file.is_none() {
                    let f = File::open(&*path)
                        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
                    self.file = Some(f);
                }
                let want = (*len - self.pos).min(PIECE as u64) as usize;
                if want == 0 {
                    true
                } else {
                    self.buf.resize(PIECE, 0);
                    let file = self.file.as_mut().expect("opened above");
                    let n = read(file, &mut self.buf[..want])
                        .map_err(|e| format!("reading {}: {e}", path.display()))?;
                    if n == 0 {
                        return Err(format!("{} shrank while being sent", path.display()));
                    }
                    sink.write(&self.buf[..n]);
                    self.pos += n as u64;
                    false
                }
            }
            Source::Reader(reader, len) => {
                let Some(r) = reader.as_mut() else {
                    return Err("the reader part was already consumed".into());
                };
                self.buf.resize(PIECE, 0);
                let want = match len {
                    Some(l) => (*l - self.pos).min(PIECE as u64) as usize,
                    None => PIECE,
                };
                let n = if want == 0 {
                    0
                } else {
                    read(r, &mut self.buf[..want]).map_err(|e| e.to_string())?
                };
                if n == 0 {
                    if len.is_some_and(|l| l != self.pos) {
                        return Err("reader ended before its declared length".into());
                    }
                    *reader = None;
                    true
                } else {
                    sink.write(&self.buf[..n]);
                    self.pos += n as u64;
                    false
                }
            }
        };
        if done {
            self.cur += 1;
            self.pos = 0;
            self.file = None;
        }
        Ok(self.cur == self.segments.len())
    }
}

fn read(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match r.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

impl BodyProducer for MultipartProducer {
    fn length(&self) -> Option<u64> {
        self.length
    }

    fn resume_producing(&mut self, sink: &mut BodySink<'_>) -> Produce {
        while !sink.is_full() {
            match self.piece(sink) {
                Ok(true) => return Produce::Done,
                Ok(false) => {}
                Err(e) => return Produce::Failed(e),
            }
        }
        Produce::More
    }

    fn stop_producing(&mut self) {
        self.file = None;
        self.buf = Vec::new();
    }

    fn rewind(&mut self) -> bool {
        if self
            .segments
            .iter()
            .any(|s| matches!(s, Source::Reader(..)))
        {
            return false;
        }
        self.cur = 0;
        self.pos = 0;
        self.file = None;
        true
    }
}
