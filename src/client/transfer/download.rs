//! Downloading a response body to a file (curl's `-o` and `-C -`, Twisted's `downloadPage`).
//!
//! The body is streamed to a temporary file next to the target, `.<name>.weft-part`, which is
//! synced and renamed over the target only when the body is complete, so a failed or
//! truncated download never leaves a corrupt target file. See [`download`].

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::proto::Headers;
use crate::reactor::Ctx;

use crate::client::body::{BodyCtx, BodyEnd, BodyProtocol};
use crate::client::error::{Cause, Error, Phase};
use crate::client::request::{HttpAgent, Request, RequestHandle};
use crate::client::response::Response;

use super::resume::{RangeAnswer, ResumeFrom};

/// Progress of a download, given to [`DownloadOptions::progress`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Bytes of the file so far, including the offset a resumed download started from.
    pub received: u64,
    /// The size of the whole file, when the server told it (`Content-Length`, or the total
    /// of `Content-Range`).
    pub total: Option<u64>,
    /// Bytes per second received by this transfer, averaged since its response head arrived.
    pub rate: f64,
}

type ProgressFn = Box<dyn FnMut(&mut Ctx, Progress)>;
type DoneFn = Box<dyn FnOnce(&mut Ctx, Result<Downloaded, Error>)>;

/// How to download: resume, limits, progress reports.
pub struct DownloadOptions {
    /// Continue a partial file left by an earlier failed download (curl's `-C -`), with
    /// `Range` and `If-Range` (default false: start from zero).
    pub resume: bool,
    /// Called as bytes arrive, at most once per
    /// [`min_progress_interval`](DownloadOptions::min_progress_interval), and once more when
    /// the body ends.
    pub progress: Option<ProgressFn>,
    /// Largest file accepted (bytes, including a resumed offset); beyond it the download
    /// fails with [`Cause::BodyTooLarge`] and leaves no file (default none).
    pub max_size: Option<u64>,
    /// Least time between two progress calls (default 100 ms).
    pub min_progress_interval: Duration,
    /// Fail with [`Cause::HttpStatus`] on a status of 400 or more, writing nothing, as
    /// curl's `-f` (default true). When false the body of such a response is saved like any
    /// other, as curl does without `-f`.
    pub fail_on_http_error: bool,
}

impl Default for DownloadOptions {
    fn default() -> Self {
        DownloadOptions {
            resume: false,
            progress: None,
            max_size: None,
            min_progress_interval: Duration::from_millis(100),
            fail_on_http_error: true,
        }
    }
}

impl std::fmt::Debug for DownloadOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DownloadOptions")
            .field("resume", &self.resume)
            .field("progress", &self.progress.is_some())
            .field("max_size", &self.max_size)
            .field("min_progress_interval", &self.min_progress_interval)
            .field("fail_on_http_error", &self.fail_on_http_error)
            .finish()
    }
}

/// A finished download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    /// The file written (the caller's path).
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// Where this transfer started: the size of the partial file it continued, else 0.
    pub resumed_from: u64,
    /// The final response's status (206 for a resumed download, 416 when the partial file
    /// was already complete).
    pub status: u16,
    /// False when the body was delimited by the connection closing
    /// ([`BodyEnd::PotentialDataLoss`]): a truncation could not be detected.
    pub complete: bool,
}

/// Where a download to `target` keeps its partial file: `.<name>.weft-part` in the same
/// directory. `None` when `target` has no file name.
///
/// ```
/// use std::path::Path;
/// let part = weft::client::partial_path(Path::new("/tmp/big.bin")).unwrap();
/// assert_eq!(part, Path::new("/tmp/.big.bin.weft-part"));
/// ```
pub fn partial_path(target: &Path) -> Option<PathBuf> {
    let name = target.file_name()?;
    let mut part = std::ffi::OsString::from(".");
    part.push(name);
    part.push(".weft-part");
    Some(target.with_file_name(part))
}

/// Where the validator of a partial file is kept: its path plus `.meta`.
///
/// The file holds lines `url <url>`, then `etag <value>` or `last-modified <value>` (from the
/// response that started the file); a resume sends that value as `If-Range`, so a changed
/// resource is sent whole instead of being appended. A resume whose URL differs from the
/// recorded one starts from zero.
pub fn partial_meta_path(target: &Path) -> Option<PathBuf> {
    let mut p = partial_path(target)?.into_os_string();
    p.push(".meta");
    Some(PathBuf::from(p))
}

/// Downloads the response to `request` into the file `path`, through any agent; `done` is
/// called once with the result. Returns the handle that cancels it.
///
/// - The body goes to `.<name>.weft-part` (see [`partial_path`]) through a buffered writer;
///   when it ends [`BodyEnd::Done`] (or [`BodyEnd::PotentialDataLoss`] for a close-delimited
///   body, then [`Downloaded::complete`] is false), the file is synced and renamed over
///   `path`. The file name is always the caller's, never one from the server.
/// - On failure the partial file is kept only when a resume could continue it (the server
///   answered 206 or sent `Accept-Ranges: bytes`), else removed. The target is never touched.
/// - With [`DownloadOptions::resume`] and a partial file of N bytes, the request carries
///   `Range: bytes=N-` and `If-Range` with the saved validator (without one, only `Range`, as
///   curl does). The answer is judged by [`ResumeFrom::answer`]: a 206 from N to the end is
///   appended; a 200 restarts from zero; a 416 whose `Content-Range` total is N means the file
///   was already complete; a 206 covering anything else fails with [`Cause::File`] and leaves
///   the partial file untouched.
/// - Ranges count the bytes as sent, so the request asks for `Accept-Encoding: identity`
///   unless it names codings itself (then do not resume it through a decoding agent): a
///   client with content decoding on downloads and resumes like a plain agent.
/// - Disk errors fail with [`Cause::File`] and stop delivery (the connection is closed).
///
/// File writes happen on the reactor thread; they are buffered, as curl does.
///
/// ```no_run
/// use weft::client::{download, Agent, AgentConfig, DownloadOptions, Request};
/// use weft::reactor::Reactor;
///
/// let mut reactor = Reactor::new().unwrap();
/// let agent = Agent::new(reactor.ctx(), AgentConfig::default());
/// let options = DownloadOptions { resume: true, ..DownloadOptions::default() };
/// download(reactor.ctx(), &agent, Request::get("http://127.0.0.1:8080/big.bin"),
///     "big.bin", options, |ctx, result| {
///         match result {
///             Ok(d) => println!("{} bytes to {}", d.bytes, d.path.display()),
///             Err(e) => eprintln!("{e}"),
///         }
///         ctx.stop();
///     });
/// reactor.run().unwrap();
/// ```
pub fn download<A: HttpAgent>(
    ctx: &mut Ctx,
    agent: &A,
    mut request: Request,
    path: impl Into<PathBuf>,
    options: DownloadOptions,
    done: impl FnOnce(&mut Ctx, Result<Downloaded, Error>) + 'static,
) -> RequestHandle {
    let target: PathBuf = path.into();
    let done: DoneFn = Box::new(done);
    let (Some(part), Some(meta)) = (partial_path(&target), partial_meta_path(&target)) else {
        let err = file_error(Phase::RequestNotSent, "target path has no file name");
        // Report from the loop, as the agent would, not from inside this call.
        ctx.call_later(Duration::ZERO, move |ctx| done(ctx, Err(err)));
        return RequestHandle::new();
    };
    let resume = if options.resume {
        resume_offset(&part, &meta, &request.url)
    } else {
        None
    };
    if let Some(resume) = &resume {
        resume.apply(&mut request.headers);
    }
    // The file holds the bytes as sent, so that a range counts what is on disk: a decoding
    // wrapper below leaves a request that names its own codings alone.
    if !request.headers.contains("accept-encoding") {
        request.headers.append("Accept-Encoding", b"identity");
    }
    let job = Job {
        target,
        part,
        meta,
        url: request.url.clone(),
        resume,
        options,
        done,
    };
    agent.request(
        ctx,
        request,
        Box::new(move |ctx, result| match result {
            Ok(response) => job.on_head(ctx, response),
            Err(e) => (job.done)(ctx, Err(e)),
        }),
    )
}

/// Size and validator of a partial file that may be resumed.
fn resume_offset(part: &Path, meta: &Path, url: &str) -> Option<ResumeFrom> {
    let md = fs::symlink_metadata(part).ok()?;
    if !md.file_type().is_file() || md.len() == 0 {
        return None;
    }
    // Bounded: the meta file is tiny, whatever sits at its path.
    let mut text = String::new();
    if let Ok(f) = File::open(meta) {
        let _ = io::Read::read_to_string(&mut io::Read::take(f, 4096), &mut text);
    }
    let mut validator = None;
    for line in text.lines() {
        match line.split_once(' ') {
            Some(("url", u)) if u != url => return None,
            Some(("etag" | "last-modified", v)) => validator = Some(v.to_string()),
            _ => {}
        }
    }
    Some(ResumeFrom {
        offset: md.len(),
        validator,
    })
}

fn file_error(phase: Phase, msg: impl Into<String>) -> Error {
    Error::new(phase, Cause::File(msg.into()))
}

fn io_error(what: &str, path: &Path, e: &io::Error) -> Error {
    file_error(
        Phase::ResponseFailed,
        format!("{what} {}: {e}", path.display()),
    )
}

/// A download waiting for its response head.
struct Job {
    target: PathBuf,
    part: PathBuf,
    meta: PathBuf,
    url: Rc<str>,
    /// Where the partial file continues, when resuming.
    resume: Option<ResumeFrom>,
    options: DownloadOptions,
    done: DoneFn,
}

/// The validator to save for a later `If-Range`: a strong ETag, else Last-Modified.
fn validator(headers: &Headers) -> Option<(&'static str, String)> {
    if let Some(etag) = headers.get_str("etag") {
        let etag = etag.trim();
        if etag.starts_with('"') && is_plain(etag) {
            return Some(("etag", etag.to_string()));
        }
    }
    let lm = headers.get_str("last-modified")?.trim();
    is_plain(lm).then(|| ("last-modified", lm.to_string()))
}

fn is_plain(v: &str) -> bool {
    !v.is_empty() && v.len() <= 256 && v.bytes().all(|b| (0x20..0x7f).contains(&b))
}

/// Creates `path` anew (a symlink in its place is replaced, never followed).
fn create_fresh(path: &Path) -> io::Result<File> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    OpenOptions::new().write(true).create_new(true).open(path)
}

fn remove_quietly(path: &Path) {
    let _ = fs::remove_file(path);
}

impl Job {
    fn fail(self, ctx: &mut Ctx, err: Error) {
        let err = err.or_url(&self.url);
        (self.done)(ctx, Err(err));
    }

    fn remove_partial(&self) {
        remove_quietly(&self.part);
        remove_quietly(&self.meta);
    }

    fn on_head(self, ctx: &mut Ctx, response: Response) {
        let code = response.code;
        let answer = self
            .resume
            .as_ref()
            .map(|r| (r.offset, r.answer(&response)));
        let mut start = 0;
        let mut total = response.length;
        match answer {
            Some((n, RangeAnswer::Complete)) => return self.finish_complete(ctx, code, n),
            Some((_, RangeAnswer::Mismatch { reason, too_long })) => {
                if too_long {
                    // Longer than the resource: it can never be resumed.
                    self.remove_partial();
                }
                return self.fail(ctx, file_error(Phase::ResponseFailed, reason));
            }
            Some((_, RangeAnswer::Status(416))) => {
                return self.fail(
                    ctx,
                    Error::new(Phase::ResponseFailed, Cause::HttpStatus(code)),
                );
            }
            Some((n, RangeAnswer::Append { total: whole })) => {
                start = n;
                total = whole;
            }
            Some((_, RangeAnswer::Restart | RangeAnswer::Status(_))) | None => {}
        }
        if self.options.fail_on_http_error && code >= 400 {
            return self.fail(
                ctx,
                Error::new(Phase::ResponseFailed, Cause::HttpStatus(code)),
            );
        }

        if let (Some(max), Some(t)) = (self.options.max_size, total)
            && t > max
        {
            self.remove_partial();
            return self.fail(
                ctx,
                Error::new(Phase::ResponseFailed, Cause::BodyTooLarge(max)),
            );
        }

        let file = if start > 0 {
            match OpenOptions::new().append(true).open(&self.part) {
                Ok(f) => match f.metadata() {
                    Ok(md) if md.is_file() && md.len() == start => Ok(f),
                    Ok(_) => Err(io::Error::other("partial file changed during the request")),
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            }
        } else {
            create_fresh(&self.part)
        };
        let file = match file {
            Ok(f) => f,
            Err(e) => {
                let err = io_error("cannot open", &self.part, &e);
                return self.fail(ctx, err);
            }
        };
        if start == 0 {
            let saved = match validator(&response.headers) {
                Some((kind, v)) => create_fresh(&self.meta)
                    .and_then(|mut f| write!(f, "url {}\n{kind} {v}\n", self.url)),
                None => {
                    remove_quietly(&self.meta);
                    Ok(())
                }
            };
            if let Err(e) = saved {
                remove_quietly(&self.part);
                let err = io_error("cannot write", &self.meta, &e);
                return self.fail(ctx, err);
            }
        }
        let resumable = code == 206
            || response.headers.get_all("accept-ranges").any(|v| {
                String::from_utf8_lossy(v)
                    .to_ascii_lowercase()
                    .contains("bytes")
            });

        let now = ctx.now();
        let sink = FileSink {
            job: Some(self),
            file: Some(BufWriter::with_capacity(64 * 1024, file)),
            start,
            received: start,
            total,
            status: code,
            resumable,
            began: now,
            last_progress: None,
            failure: None,
        };
        response.deliver_body(ctx, sink);
    }

    /// A 416 said the partial file already holds the whole resource.
    fn finish_complete(mut self, ctx: &mut Ctx, code: u16, n: u64) {
        let result = File::open(&self.part)
            .and_then(|f| f.sync_all())
            .and_then(|()| fs::rename(&self.part, &self.target));
        match result {
            Ok(()) => {
                remove_quietly(&self.meta);
                sync_dir(&self.target);
                let d = Downloaded {
                    path: self.target.clone(),
                    bytes: n,
                    resumed_from: n,
                    status: code,
                    complete: true,
                };
                self.report_final(ctx, n, Some(n), 0.0);
                (self.done)(ctx, Ok(d));
            }
            Err(e) => {
                let err = io_error("cannot finish", &self.target, &e);
                self.fail(ctx, err);
            }
        }
    }

    fn report_final(&mut self, ctx: &mut Ctx, received: u64, total: Option<u64>, rate: f64) {
        if let Some(p) = self.options.progress.as_mut() {
            p(
                ctx,
                Progress {
                    received,
                    total,
                    rate,
                },
            );
        }
    }
}

/// Makes a rename durable (best effort: not every platform can sync a directory).
fn sync_dir(target: &Path) {
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Why the sink stopped delivery itself.
enum Failure {
    TooLarge(u64),
    Disk(Error),
}

/// The body protocol that writes to the partial file.
struct FileSink {
    job: Option<Job>,
    file: Option<BufWriter<File>>,
    start: u64,
    received: u64,
    total: Option<u64>,
    status: u16,
    resumable: bool,
    began: Instant,
    last_progress: Option<Instant>,
    failure: Option<Failure>,
}

impl FileSink {
    fn rate(&self, now: Instant) -> f64 {
        let secs = now.saturating_duration_since(self.began).as_secs_f64();
        if secs > 0.0 {
            (self.received - self.start) as f64 / secs
        } else {
            0.0
        }
    }

    /// Flushes, syncs and renames the partial file over the target.
    fn finalize(&mut self, job: &Job) -> io::Result<()> {
        if let Some(w) = self.file.take() {
            let f = w.into_inner().map_err(|e| e.into_error())?;
            f.sync_all()?;
        }
        fs::rename(&job.part, &job.target)?;
        remove_quietly(&job.meta);
        sync_dir(&job.target);
        Ok(())
    }

    /// Keeps what arrived for a later resume, when a resume is possible.
    fn keep_or_remove(&mut self, job: &Job) {
        let flushed = match self.file.take() {
            Some(w) => w
                .into_inner()
                .map_err(|e| e.into_error())
                .and_then(|f| f.sync_all()),
            None => Ok(()),
        };
        if !(self.resumable && flushed.is_ok()) {
            job.remove_partial();
        }
    }
}

impl BodyProtocol for FileSink {
    fn data_received(&mut self, body: &mut BodyCtx<'_>, data: &[u8]) {
        if self.failure.is_some() {
            return;
        }
        let len = data.len() as u64;
        if let Some(max) = self.job.as_ref().and_then(|j| j.options.max_size)
            && self.received + len > max
        {
            self.failure = Some(Failure::TooLarge(max));
            body.stop();
            return;
        }
        if let (Some(w), Some(job)) = (self.file.as_mut(), self.job.as_ref())
            && let Err(e) = w.write_all(data)
        {
            self.failure = Some(Failure::Disk(io_error("cannot write", &job.part, &e)));
            body.stop();
            return;
        }
        self.received += len;
        let now = body.ctx().now();
        let interval = self
            .job
            .as_ref()
            .map_or(Duration::ZERO, |j| j.options.min_progress_interval);
        if self
            .last_progress
            .is_none_or(|t| now.saturating_duration_since(t) >= interval)
        {
            self.last_progress = Some(now);
            let progress = Progress {
                received: self.received,
                total: self.total,
                rate: self.rate(now),
            };
            if let Some(p) = self.job.as_mut().and_then(|j| j.options.progress.as_mut()) {
                p(body.ctx(), progress);
            }
        }
    }

    fn connection_lost(&mut self, ctx: &mut Ctx, reason: BodyEnd) {
        let Some(mut job) = self.job.take() else {
            return;
        };
        let result = match (self.failure.take(), reason) {
            (Some(Failure::TooLarge(max)), _) => {
                self.file = None;
                job.remove_partial();
                Err(Error::new(Phase::ResponseFailed, Cause::BodyTooLarge(max)))
            }
            (Some(Failure::Disk(e)), _) => {
                self.file = None;
                job.remove_partial();
                Err(e)
            }
            (None, BodyEnd::Done | BodyEnd::PotentialDataLoss)
                if self.total.is_some_and(|t| t != self.received) =>
            {
                // A range whose announced end the body did not reach (or overran).
                let total = self.total.unwrap_or(0);
                self.resumable &= self.received < total;
                self.keep_or_remove(&job);
                let msg = format!("the file has {} bytes, expected {total}", self.received);
                Err(file_error(Phase::ResponseFailed, msg))
            }
            (None, end @ (BodyEnd::Done | BodyEnd::PotentialDataLoss)) => {
                match self.finalize(&job) {
                    Ok(()) => Ok(Downloaded {
                        path: job.target.clone(),
                        bytes: self.received,
                        resumed_from: self.start,
                        status: self.status,
                        complete: end.is_done(),
                    }),
                    Err(e) => {
                        job.remove_partial();
                        Err(io_error("cannot finish", &job.target, &e))
                    }
                }
            }
            (None, BodyEnd::Failed(e)) => {
                self.keep_or_remove(&job);
                Err(e)
            }
        };
        let rate = self.rate(ctx.now());
        job.report_final(ctx, self.received, self.total, rate);
        (job.done)(ctx, result);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_paths_stay_beside_the_target() {
        assert_eq!(
            partial_path(Path::new("a/b.txt")).unwrap(),
            Path::new("a/.b.txt.weft-part")
        );
        assert_eq!(
            partial_meta_path(Path::new("b")).unwrap(),
            Path::new(".b.weft-part.meta")
        );
        assert_eq!(partial_path(Path::new("/")), None);
        assert_eq!(partial_path(Path::new("a/..")), None);
    }
}
