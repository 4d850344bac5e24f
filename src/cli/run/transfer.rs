//! One transfer: its request, its response head, its body streamed to the output, and what
//! happens when it ends (`-w`, `--etag-save`, releasing its place for the next one).

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use weft::client::{
    BodyCtx, BodyEnd, BodyProtocol, Cause, Error, HttpAgent, Phase, RangeAnswer, Request, Response,
    ResumeFrom, Slot, Timeouts, Timing,
};
use weft::proto::{Headers, Version};
use weft::reactor::Ctx;

use super::super::dump::{self, DumpHead};
use super::super::exit::Outcome;
use super::super::format;
use super::super::plan::{OutputOptions, Plan, Resume};
use super::super::write_out::{self, Dest, Times, Vars};
use super::request_body::producer;
use super::{Runner, verbose};

/// Where output goes: stdout or a file created (or, resuming, appended to) on first write.
struct Sink {
    file: Option<PathBuf>,
    append: bool,
    out: Option<BufWriter<Box<dyn Write>>>,
    /// Whether the last byte written ended a line (or nothing was written).
    at_line_start: bool,
}

impl Sink {
    fn new(file: Option<PathBuf>) -> Self {
        Sink {
            file,
            append: false,
            out: None,
            at_line_start: true,
        }
    }

    /// The destination's name for messages.
    fn name(&self) -> String {
        match &self.file {
            Some(p) => p.display().to_string(),
            None => "stdout".to_string(),
        }
    }

    fn writer(&mut self) -> io::Result<&mut BufWriter<Box<dyn Write>>> {
        if self.out.is_none() {
            let w: Box<dyn Write> = match &self.file {
                Some(p) if self.append => Box::new(File::options().append(true).open(p)?),
                Some(p) => Box::new(File::create(p)?),
                None => Box::new(io::stdout().lock()),
            };
            self.out = Some(BufWriter::with_capacity(64 * 1024, w));
        }
        Ok(self.out.as_mut().expect("just set"))
    }

    /// Writes and flushes (so the output follows the network).
    fn write_now(&mut self, data: &[u8]) -> io::Result<()> {
        if let Some(&last) = data.last() {
            self.at_line_start = last == b'\n';
        }
        let w = self.writer()?;
        w.write_all(data)?;
        w.flush()
    }

    /// Ends the output: creates the file even for an empty body, and flushes.
    fn finish(&mut self) -> io::Result<()> {
        self.writer()?.flush()
    }

    fn error(&self, error: io::Error) -> Outcome {
        Outcome::Write {
            what: self.name(),
            error,
        }
    }
}

/// The final response head, kept for `--dump json`, `-f`, `-w` and `--etag-save`.
struct Head {
    version: Version,
    code: u16,
    phrase: String,
    headers: Headers,
    length: Option<u64>,
    url_effective: String,
    redirects: u64,
    timing: Timing,
    size: u64,
}

/// One transfer: the state shared by its response callback and body protocol.
pub(super) struct State {
    index: usize,
    opts: OutputOptions,
    method: String,
    url: String,
    sink: Sink,
    head: Option<Head>,
    trailers: Option<Headers>,
    /// The body, for `--dump json` only.
    body: Vec<u8>,
    received: u64,
    /// An error the command raised itself (`--max-filesize`), reported over the body's end.
    own_error: Option<Error>,
    outcome: Option<Outcome>,
    /// Whether the end of the transfer has been scheduled (it happens once).
    ended: bool,
    started: Instant,
    finished_at: Option<Instant>,
    bar: Option<ProgressBar>,
    /// This transfer's place among those in flight, released when it ends.
    slot: Option<Slot>,
    runner: Rc<RefCell<Runner>>,
}

pub(super) type Shared = Rc<RefCell<State>>;

impl State {
    /// Records the outcome (the first one wins) and schedules the end of the transfer.
    fn finish(&mut self, ctx: &mut Ctx, outcome: Outcome) {
        if self.outcome.is_none() {
            self.outcome = Some(outcome);
        }
        self.end(ctx);
    }

    /// Schedules [`transfer_done`] once, outside of any callback that holds this state.
    fn end(&mut self, ctx: &mut Ctx) {
        if self.ended {
            return;
        }
        self.ended = true;
        self.finished_at = Some(Instant::now());
        let runner = self.runner.clone();
        let index = self.index;
        ctx.call_later(Duration::ZERO, move |ctx| {
            transfer_done(&runner, ctx, index)
        });
    }

    /// Writes the `--dump json` object; a write failure becomes the outcome.
    fn write_dump(&mut self, end: Option<&BodyEnd>, error: Option<&Error>) -> Result<(), Outcome> {
        let head = self.head.as_ref().map(|h| DumpHead {
            version: h.version,
            status: h.code,
            headers: &h.headers,
            length: h.length,
        });
        let mut json = dump::build(
            head.as_ref(),
            self.trailers.as_ref(),
            &self.body,
            end,
            error,
        );
        json.push('\n');
        self.sink
            .write_now(json.as_bytes())
            .map_err(|e| self.sink.error(e))
    }

    /// Reports a failure that ended the transfer before or instead of its body.
    fn fail(&mut self, ctx: &mut Ctx, error: Error) {
        if self.opts.dump_json
            && let Err(o) = self.write_dump(None, Some(&error))
        {
            return self.finish(ctx, o);
        }
        self.finish(ctx, Outcome::Request(error));
    }

    /// The outcome once the body ended without a failure: `-f` may still fail it.
    fn success(&self) -> Outcome {
        match &self.head {
            Some(h) if self.opts.fail_on_http_error && h.code >= 400 => Outcome::HttpError {
                code: h.code,
                phrase: h.phrase.clone(),
            },
            _ => Outcome::Ok,
        }
    }

    /// The `-w` variables of the finished transfer.
    fn vars(&self, outcome: &Outcome) -> Vars {
        let end = self.finished_at.unwrap_or_else(Instant::now);
        let total = end.duration_since(self.started).as_secs_f64();
        let mut vars = Vars {
            method: self.method.clone(),
            url: self.url.clone(),
            filename_effective: self
                .sink
                .file
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            size_download: self.received,
            speed_download: if total > 0.0 {
                self.received as f64 / total
            } else {
                0.0
            },
            exitcode: outcome.exit_code(),
            errormsg: outcome.message().unwrap_or_default(),
            times: Times {
                total,
                ..Times::default()
            },
            ..Vars::default()
        };
        if let Some(h) = &self.head {
            let t = &h.timing;
            // Phases count from the final request's start; earlier hops come before it.
            let at = |d: std::time::Duration| (t.redirect + d).as_secs_f64();
            let opt = |d: Option<std::time::Duration>| d.map_or(0.0, at);
            vars.code = h.code;
            vars.http_version = match h.version {
                Version::Http10 => "1.0".into(),
                Version::Http11 => "1.1".into(),
            };
            vars.url_effective = h.url_effective.clone();
            vars.num_redirects = h.redirects;
            vars.num_connects = u64::from(!t.reused);
            vars.content_type = h.headers.get_str("content-type").unwrap_or("").to_string();
            vars.size_header = h.size;
            vars.times = Times {
                queue: at(t.queued),
                namelookup: opt(t.dns),
                connect: opt(t.connect),
                appconnect: opt(t.tls),
                pretransfer: at(t.request_sent),
                starttransfer: at(t.first_byte),
                redirect: t.redirect.as_secs_f64(),
                total,
            };
        }
        vars
    }
}

/// A transfer ended: writes its `-w` text and ETag, records its outcome and releases its
/// slot (which starts the next transfer, or ends the run after the last).
fn transfer_done(runner: &Rc<RefCell<Runner>>, ctx: &mut Ctx, index: usize) {
    let Some(state) = runner.borrow_mut().states[index].take() else {
        return;
    };
    let mut s = state.borrow_mut();
    if let Some(bar) = s.bar.take() {
        bar.finish();
    }
    let mut outcome = s
        .outcome
        .take()
        .unwrap_or_else(|| Outcome::Other("the transfer ended without a result".into()));
    if let Some(path) = &s.opts.etag_save {
        // curl writes an empty file when the response has no ETag.
        let etag = s
            .head
            .as_ref()
            .and_then(|h| h.headers.get_str("etag"))
            .map(|e| format!("{}\n", e.trim()))
            .unwrap_or_default();
        if let Err(error) = std::fs::write(path, etag)
            && matches!(outcome, Outcome::Ok)
        {
            outcome = Outcome::Write {
                what: path.display().to_string(),
                error,
            };
        }
    }
    if let Some(format) = s.opts.write_out.clone() {
        // Output the body went to is flushed before the -w text follows it (a sink never
        // opened stays unopened: a resume that found the file complete must not truncate it).
        if let Some(out) = s.sink.out.as_mut() {
            let _ = out.flush();
        }
        for (dest, text) in write_out::render(&format, &s.vars(&outcome)) {
            let _ = match dest {
                Dest::Stdout => io::stdout().lock().write_all(text.as_bytes()),
                Dest::Stderr => io::stderr().lock().write_all(text.as_bytes()),
            };
        }
        let _ = io::stdout().flush();
    }
    let slot = s.slot.take();
    drop(s);
    runner.borrow_mut().outcomes[index] = Some(outcome);
    if let Some(slot) = slot {
        slot.release(ctx);
    }
}

/// Where a `-C` transfer continues `file` from; `None` to fetch it whole. The output file
/// itself is the partial file, as in curl; the only validator is an `If-Range` the user gave
/// with `-H` (curl keeps none of its own).
fn resume_from(
    resume: Option<Resume>,
    file: Option<&PathBuf>,
    headers: &Headers,
) -> Option<ResumeFrom> {
    let offset = match (resume, file) {
        (Some(Resume::At(n)), _) => n,
        (Some(Resume::FromFile), Some(path)) => std::fs::metadata(path).map_or(0, |m| m.len()),
        _ => 0,
    };
    (offset > 0).then(|| ResumeFrom {
        offset,
        validator: headers.get_str("if-range").map(str::to_string),
    })
}

/// Starts one transfer.
pub(super) fn begin(
    runner: &Rc<RefCell<Runner>>,
    ctx: &mut Ctx,
    index: usize,
    plan: Plan,
    agent: &dyn HttpAgent,
    bars: Option<MultiProgress>,
    slot: Slot,
) {
    let state: Shared = Rc::new(RefCell::new(State {
        index,
        opts: plan.output.clone(),
        method: plan.method.clone(),
        url: plan.url.clone(),
        sink: Sink::new(plan.output.file.clone()),
        head: None,
        trailers: None,
        body: Vec::new(),
        received: 0,
        own_error: None,
        outcome: None,
        ended: false,
        started: Instant::now(),
        finished_at: None,
        bar: None,
        slot: Some(slot),
        runner: runner.clone(),
    }));
    runner.borrow_mut().states[index] = Some(state.clone());

    let (body, form_type) = match producer(&plan.body) {
        Ok(b) => b,
        Err(o) => return state.borrow_mut().finish(ctx, o),
    };
    let mut headers: Headers = plan
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_bytes()))
        .collect();
    let resume = resume_from(plan.output.resume, plan.output.file.as_ref(), &headers);
    if let Some(ct) = &form_type
        && headers.get("content-type").is_none()
    {
        headers.append("Content-Type", ct.as_bytes());
    }
    if let Some(resume) = &resume {
        resume.apply(&mut headers);
    }
    if plan.output.verbose {
        let length = body.as_ref().and_then(|b| b.length());
        verbose(&format::verbose_request(&plan, length));
    }
    let request = Request {
        method: plan.method.clone().into(),
        url: plan.url.as_str().into(),
        headers,
        body,
        // Given here too (not only in the agent's config) so that it spans every redirect;
        // the library enforces it (and --connect-timeout) and reports a timeout on its own.
        // With --retry, as in curl, it limits each attempt instead (the retry policy's).
        timeouts: Timeouts {
            total: plan.max_time.filter(|_| plan.chain.retry.is_none()),
            ..Timeouts::default()
        },
        // The agent's config carries --unix-socket.
        unix_socket: None,
    };
    let st = state.clone();
    agent.request(
        ctx,
        request,
        Box::new(move |ctx, result| on_response(&st, ctx, result, resume, bars)),
    );
}

/// Number of redirect hops in a response's history (authentication challenges excluded).
fn redirect_count(response: &Response) -> u64 {
    response
        .history
        .iter()
        .filter(|p| (300..400).contains(&p.code))
        .count() as u64
}

/// The response head arrived, or the request failed before it did.
fn on_response(
    state: &Shared,
    ctx: &mut Ctx,
    result: Result<Response, Error>,
    resume: Option<ResumeFrom>,
    bars: Option<MultiProgress>,
) {
    let mut s = state.borrow_mut();
    let response = match result {
        Ok(r) => r,
        Err(error) => {
            if s.opts.verbose {
                verbose(&format!("* Request failed: {error}\n"));
            }
            return s.fail(ctx, error);
        }
    };
    if s.opts.verbose {
        verbose(&format::verbose_response(
            response.version,
            response.code,
            &response.phrase,
            &response.headers,
        ));
    }
    let head_bytes = format::head_bytes(
        response.version,
        response.code,
        &response.phrase,
        &response.headers,
    );
    // Every hop's head, as curl prints them with -L (-i, -I, -D): the redirects and
    // challenges first, then the final head.
    let mut all_heads = Vec::new();
    for hop in &response.history {
        all_heads.extend(format::head_bytes(
            response.version,
            hop.code,
            format::reason_phrase(hop.code),
            &hop.headers,
        ));
    }
    all_heads.extend_from_slice(&head_bytes);
    s.head = Some(Head {
        version: response.version,
        code: response.code,
        phrase: response.phrase.to_string(),
        headers: response.headers.clone(),
        length: response.length,
        url_effective: response.url.to_string(),
        redirects: redirect_count(&response),
        timing: response.timing,
        // curl's size_header counts every hop's head.
        size: all_heads.len() as u64,
    });
    if let Some(path) = s.opts.dump_header.clone()
        && let Err(error) = dump_header(&path, s.index == 0, &all_heads)
    {
        let what = path.display().to_string();
        return s.finish(ctx, Outcome::Write { what, error });
    }
    if let Some(resume) = &resume {
        // The library's rules; the file is never removed (it is the user's output file).
        let outcome = match resume.answer(&response) {
            RangeAnswer::Append { .. } => {
                s.sink.append = true;
                None
            }
            RangeAnswer::Restart => None,
            RangeAnswer::Complete => {
                if s.opts.verbose {
                    verbose("* The file is already complete\n");
                }
                Some(Outcome::Ok)
            }
            RangeAnswer::Mismatch { reason, .. } => Some(Outcome::Resume(reason)),
            RangeAnswer::Status(code) => Some(Outcome::Resume(format!(
                "cannot resume from byte {}: the server answered {code} {}",
                resume.offset, response.phrase
            ))),
        };
        if let Some(outcome) = outcome {
            return s.finish(ctx, outcome);
        }
    }
    if !s.opts.dump_json
        && s.opts.fail_on_http_error
        && !s.opts.keep_body_on_error
        && response.code >= 400
    {
        // Nothing is written; dropping the response closes its connection.
        let outcome = s.success();
        return s.finish(ctx, outcome);
    }
    if let (Some(max), Some(len)) = (s.opts.max_filesize, response.length)
        && len > max
        && !s.opts.head_only
    {
        return s.fail(
            ctx,
            Error::new(Phase::ResponseFailed, Cause::BodyTooLarge(max)),
        );
    }
    if !s.opts.dump_json
        && s.opts.include_head
        && let Err(e) = s.sink.write_now(&all_heads)
    {
        let outcome = s.sink.error(e);
        return s.finish(ctx, outcome);
    }
    if let Some(bars) = bars
        && !s.opts.head_only
        && (s.sink.file.is_some() || !io::stdout().is_terminal())
    {
        s.bar = Some(bars.add(progress_bar(response.length, &s.url)));
    }
    drop(s);
    response.deliver_body(
        ctx,
        CliBody {
            state: state.clone(),
        },
    );
}

/// Writes the response heads of `-D FILE` (`-`: stdout); the first transfer of a run creates
/// the file, later ones add to it.
fn dump_header(path: &std::path::Path, first: bool, heads: &[u8]) -> io::Result<()> {
    if path.as_os_str() == "-" {
        let mut out = io::stdout().lock();
        out.write_all(heads)?;
        return out.flush();
    }
    let mut file = File::options()
        .create(true)
        .write(true)
        .append(!first)
        .truncate(first)
        .open(path)?;
    file.write_all(heads)
}

/// A progress bar for a body of `length` bytes (a spinner when unknown).
fn progress_bar(length: Option<u64>, url: &str) -> ProgressBar {
    let name = url.rsplit('/').find(|s| !s.is_empty()).unwrap_or(url);
    match length {
        Some(len) => ProgressBar::new(len).with_style(
            ProgressStyle::with_template(
                "{msg:20!} {bar:30} {bytes:>10}/{total_bytes:10} {bytes_per_sec:>12} {eta:>4}",
            )
            .expect("valid template"),
        ),
        None => ProgressBar::no_length().with_style(
            ProgressStyle::with_template("{msg:20!} {spinner} {bytes:>10} {bytes_per_sec:>12}")
                .expect("valid template"),
        ),
    }
    .with_message(name.to_string())
}

/// Streams the body to the output (or into memory for `--dump json`).
struct CliBody {
    state: Shared,
}

impl BodyProtocol for CliBody {
    fn data_received(&mut self, body: &mut BodyCtx<'_>, data: &[u8]) {
        let mut s = self.state.borrow_mut();
        if s.outcome.is_some() {
            body.stop();
            return;
        }
        s.received += data.len() as u64;
        if let Some(bar) = &s.bar {
            bar.inc(data.len() as u64);
        }
        if let Some(max) = s.opts.max_filesize
            && s.received > max
        {
            s.own_error = Some(Error::new(Phase::ResponseFailed, Cause::BodyTooLarge(max)));
            body.stop();
            return;
        }
        if s.opts.dump_json {
            s.body.extend_from_slice(data);
        } else if !s.opts.head_only
            && let Err(e) = s.sink.write_now(data)
        {
            // Recorded now; the transfer ends when connection_lost follows the stop.
            let outcome = s.sink.error(e);
            s.outcome = Some(outcome);
            body.stop();
        }
    }

    fn trailers_received(&mut self, _body: &mut BodyCtx<'_>, trailers: &Headers) {
        let mut s = self.state.borrow_mut();
        if s.opts.verbose {
            for (name, value) in trailers.iter() {
                verbose(&format!("< {name}: {}\n", String::from_utf8_lossy(value)));
            }
        }
        s.trailers = Some(trailers.clone());
    }

    fn connection_lost(&mut self, ctx: &mut Ctx, reason: BodyEnd) {
        let mut s = self.state.borrow_mut();
        if s.outcome.is_some() {
            return s.end(ctx);
        }
        let own = s.own_error.take();
        if s.opts.verbose {
            let note = match (&own, &reason) {
                (Some(e), _) | (None, BodyEnd::Failed(e)) => format!("* Response failed: {e}\n"),
                (None, BodyEnd::Done) => "* Response complete\n".to_string(),
                (None, BodyEnd::PotentialDataLoss) => {
                    "* Response ended with the connection (possible data loss)\n".to_string()
                }
            };
            // A body that left the terminal's cursor mid-line would swallow the note.
            let mid_line = s.sink.file.is_none()
                && !s.sink.at_line_start
                && !s.opts.dump_json
                && io::stdout().is_terminal();
            verbose(&if mid_line { format!("\n{note}") } else { note });
        }
        if s.opts.dump_json {
            if let Err(o) = s.write_dump(Some(&reason), own.as_ref()) {
                return s.finish(ctx, o);
            }
        } else if let Err(e) = s.sink.finish() {
            let outcome = s.sink.error(e);
            return s.finish(ctx, outcome);
        }
        let outcome = match (own, reason) {
            (Some(e), _) | (None, BodyEnd::Failed(e)) => Outcome::Request(e),
            (None, BodyEnd::Done | BodyEnd::PotentialDataLoss) => s.success(),
        };
        s.finish(ctx, outcome);
    }
}
