//! Request body producers (Twisted's `IBodyProducer`), with backpressure from the socket.

use std::io::Read;

use crate::proto::ClientConnection;
use crate::reactor::{ConnId, Ctx, HandlerId};

use super::msg::{Msg, RequestId};

/// What a producer says after a call to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Produce {
    /// More data will follow; call again when the sink has room.
    More,
    /// The body is complete.
    Done,
    /// No data is ready now; the producer calls [`ProducerHandle::resume`] when it is.
    Wait,
    /// Producing failed; the request fails with this message.
    Failed(String),
}

/// A request body source. The agent calls [`BodyProducer::start_producing`] once the request
/// head is written, then [`BodyProducer::resume_producing`] whenever the connection's write
/// buffer has room again. A producer writes into the sink until [`BodySink::is_full`].
///
/// ```
/// use weft::client::{BodyProducer, BodySink, Produce};
///
/// /// Counts from 0 to 9, one line per call.
/// struct Counter(u32);
/// impl BodyProducer for Counter {
///     fn length(&self) -> Option<u64> { None }
///     fn resume_producing(&mut self, sink: &mut BodySink<'_>) -> Produce {
///         if self.0 == 10 { return Produce::Done; }
///         sink.write(format!("{}\n", self.0).as_bytes());
///         self.0 += 1;
///         Produce::More
///     }
/// }
/// ```
pub trait BodyProducer: 'static {
    /// The body's length, if known (sent as Content-Length; otherwise the body is chunked).
    fn length(&self) -> Option<u64>;

    /// First call, once the head is written. Defaults to [`BodyProducer::resume_producing`].
    fn start_producing(&mut self, sink: &mut BodySink<'_>) -> Produce {
        self.resume_producing(sink)
    }

    /// Write what is ready into `sink`.
    fn resume_producing(&mut self, sink: &mut BodySink<'_>) -> Produce;

    /// The connection's write buffer is full; no call follows until it drains.
    fn pause_producing(&mut self) {}

    /// The request ended (failed, cancelled, or answered early); no call follows.
    fn stop_producing(&mut self) {}

    /// Starts over from the beginning so the request can be retried on a fresh connection.
    /// Returns false (the default) when the body cannot be replayed.
    fn rewind(&mut self) -> bool {
        false
    }
}

/// Where a producer writes: the request's connection, through the protocol core's framing.
pub struct BodySink<'a> {
    pub(crate) ctx: &'a mut Ctx,
    pub(crate) conn: ConnId,
    pub(crate) proto: &'a mut ClientConnection,
    pub(crate) scratch: &'a mut Vec<u8>,
    pub(crate) error: Option<String>,
    pub(crate) written: u64,
    pub(crate) handle: ProducerHandle,
}

impl BodySink<'_> {
    /// Sends a piece of body. Bytes past a declared length fail the request.
    pub fn write(&mut self, data: &[u8]) {
        if self.error.is_some() || data.is_empty() {
            return;
        }
        self.scratch.clear();
        match self.proto.send_body(data, self.scratch) {
            Ok(()) => {
                self.ctx.write(self.conn, self.scratch);
                self.written += data.len() as u64;
            }
            Err(e) => self.error = Some(e.to_string()),
        }
    }

    /// Whether the connection's write buffer is above its high-water mark: stop writing and
    /// return [`Produce::More`].
    pub fn is_full(&self) -> bool {
        self.ctx.write_full(self.conn)
    }

    /// A handle to resume this producer later (after returning [`Produce::Wait`]).
    pub fn handle(&self) -> ProducerHandle {
        self.handle
    }

    /// The reactor context, for timers and other work.
    pub fn ctx(&mut self) -> &mut Ctx {
        self.ctx
    }
}

/// Wakes a producer that returned [`Produce::Wait`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerHandle {
    pub(crate) agent: HandlerId,
    pub(crate) request: RequestId,
}

impl ProducerHandle {
    /// Asks the agent to call [`BodyProducer::resume_producing`] again.
    pub fn resume(&self, ctx: &mut Ctx) {
        ctx.post(self.agent, Box::new(Msg::ResumeProducer(self.request)));
    }
}

/// A body held in memory. Replayable, so requests with it can be retried.
///
/// ```
/// use weft::client::{BodyProducer, BytesProducer};
/// let p = BytesProducer::new(b"name=weft".to_vec());
/// assert_eq!(p.length(), Some(9));
/// ```
#[derive(Debug, Clone)]
pub struct BytesProducer {
    data: Vec<u8>,
    pos: usize,
}

impl BytesProducer {
    /// A producer for these bytes.
    pub fn new(data: impl Into<Vec<u8>>) -> Self {
        BytesProducer {
            data: data.into(),
            pos: 0,
        }
    }
}

impl BodyProducer for BytesProducer {
    fn length(&self) -> Option<u64> {
        Some(self.data.len() as u64)
    }

    fn resume_producing(&mut self, sink: &mut BodySink<'_>) -> Produce {
        // Hand over at most 64 KiB at a time so one large body cannot balloon the buffer.
        while self.pos < self.data.len() && !sink.is_full() {
            let end = (self.pos + 64 * 1024).min(self.data.len());
            sink.write(&self.data[self.pos..end]);
            self.pos = end;
        }
        if self.pos == self.data.len() {
            Produce::Done
        } else {
            Produce::More
        }
    }

    fn rewind(&mut self) -> bool {
        self.pos = 0;
        true
    }
}

/// A body read from a file or any `Read`, in 16 KiB pieces as the socket takes them.
///
/// ```no_run
/// use weft::client::ReadProducer;
/// let file = std::fs::File::open("upload.bin").unwrap();
/// let len = file.metadata().unwrap().len();
/// let producer = ReadProducer::new(file, Some(len));
/// # let _ = producer;
/// ```
pub struct ReadProducer<R> {
    reader: R,
    length: Option<u64>,
    buf: Vec<u8>,
    /// Goes back to the start for a replay (redirects, authentication retries, a retry on a
    /// fresh connection); `None` for readers that cannot.
    rewinder: Option<fn(&mut R) -> bool>,
}

impl<R: Read + 'static> ReadProducer<R> {
    /// A producer reading `reader` to its end; `length`, when given, is sent as Content-Length
    /// and must match what the reader yields.
    pub fn new(reader: R, length: Option<u64>) -> Self {
        ReadProducer {
            reader,
            length,
            buf: Vec::new(),
            rewinder: None,
        }
    }
}

impl<R: Read + std::io::Seek + 'static> ReadProducer<R> {
    /// Like [`ReadProducer::new`], for a reader that can seek: the body can then be replayed
    /// ([`BodyProducer::rewind`] seeks back to where the reader stood at the start, which
    /// must be offset 0).
    pub fn seekable(reader: R, length: Option<u64>) -> Self {
        ReadProducer {
            rewinder: Some(|r: &mut R| r.seek(std::io::SeekFrom::Start(0)).is_ok()),
            ..ReadProducer::new(reader, length)
        }
    }
}

impl ReadProducer<std::fs::File> {
    /// A producer for a file, with its length from the file's metadata; it can be replayed
    /// (a redirect with 307/308, an authentication retry).
    pub fn file(path: impl AsRef<std::path::Path>) -> std::io::Result<Self> {
        let file = std::fs::File::open(path)?;
        let len = file.metadata()?.len();
        Ok(ReadProducer::seekable(file, Some(len)))
    }
}

impl<R: Read + 'static> BodyProducer for ReadProducer<R> {
    fn length(&self) -> Option<u64> {
        self.length
    }

    fn resume_producing(&mut self, sink: &mut BodySink<'_>) -> Produce {
        self.buf.resize(16 * 1024, 0);
        while !sink.is_full() {
            match self.reader.read(&mut self.buf) {
                Ok(0) => return Produce::Done,
                Ok(n) => sink.write(&self.buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Produce::Failed(e.to_string()),
            }
        }
        Produce::More
    }

    fn stop_producing(&mut self) {
        self.buf = Vec::new();
    }

    fn rewind(&mut self) -> bool {
        self.rewinder.is_some_and(|rewind| rewind(&mut self.reader))
    }
}
