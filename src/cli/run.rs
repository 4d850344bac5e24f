//! Executes the [`Plan`]s of a run (one per URL) on one reactor, through one agent chain,
//! and reports an [`Outcome`] per transfer.
//!
//! The chain is built once from the shared options: `Agent` (pool, TLS, proxies), then
//! `ContentDecoderAgent` (`--compressed`), `CookieAgent` (`-b`/`-c`), `RedirectAgent` (`-L`)
//! and `AuthAgent` outermost, so `-u` credentials go to the URL's own origin only and a
//! redirect to another host never carries them. Transfers run one after another, or up to
//! `--parallel-max` at a time with `-Z`; the reactor stops when the last one ends.
//!
//! A body is streamed: every `data_received` piece is written to its destination (stdout
//! or the output file, opened on first use) and flushed; only `--dump json` keeps it in
//! memory. Whatever ends a transfer (the body's end, a failure, a write error) records its
//! outcome once; the `-w` text, `--etag-save` file and the next transfer follow.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use weft::client::{
    Agent, AgentConfig, AuthAgent, AuthMode, BodyCtx, BodyEnd, BodyProducer, BodyProtocol,
    BytesProducer, Cause, ContentDecoderAgent, ContentRange, CookieAgent, CookieJar, Credentials,
    DecodeConfig, Error, HttpAgent, Multipart, Phase, Proxies, ReadProducer, RedirectAgent,
    RedirectConfig, Request, RequestHandle, Response, Timeout, TimeoutKind, Timeouts, Timing,
};
use weft::proto::{Headers, Version};
use weft::reactor::{Ctx, Reactor};
use weft::tls::TlsConnector;

use super::dump::{self, DumpHead};
use super::exit::Outcome;
use super::format;
use super::plan::{
    AuthChoice, BodySource, ChainPlan, ConnectTimeout, FormValue, OutputOptions, Plan, Resume,
    TlsChoice,
};
use super::write_out::{self, Dest, Times, Vars};

/// Extra time given to the library past `--max-time` before the command gives up on its own.
const WATCHDOG_GRACE: Duration = Duration::from_secs(2);

/// Where output goes: stdout or a file created (or, resuming, appended to) on first write.
struct Sink {
    file: Option<PathBuf>,
    append: bool,
    out: Option<BufWriter<Box<dyn Write>>>,
}

impl Sink {
    fn new(file: Option<PathBuf>) -> Self {
        Sink {
            file,
            append: false,
            out: None,
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

/// One transfer: the state shared by its response callback, body protocol and watchdog.
struct State {
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
    handle: Option<RequestHandle>,
    bar: Option<ProgressBar>,
    runner: Rc<RefCell<Runner>>,
}

type Shared = Rc<RefCell<State>>;

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

/// Runs every transfer and their shared agent chain on one reactor.
struct Runner {
    agent: Option<Rc<dyn HttpAgent>>,
    pending: VecDeque<(usize, Plan)>,
    outcomes: Vec<Option<Outcome>>,
    in_flight: usize,
    max_in_flight: usize,
    jar: Option<CookieJar>,
    jar_out: Option<PathBuf>,
    bars: Option<MultiProgress>,
    /// The transfers in flight (taken out when they end).
    states: Vec<Option<Shared>>,
}

/// Writes `-v` text to stderr (errors ignored: verbose output is best effort).
fn verbose(text: &str) {
    let _ = io::stderr().lock().write_all(text.as_bytes());
}

/// The TLS connector the plan asks for.
fn tls_connector(choice: &TlsChoice) -> Result<TlsConnector, Outcome> {
    match choice {
        TlsChoice::WebpkiRoots => Ok(TlsConnector::webpki_roots()),
        TlsChoice::Insecure => Ok(TlsConnector::danger_accept_invalid_certs()),
        TlsChoice::CaFile(path) => TlsConnector::with_root_pem_file(path)
            .map_err(|e| Outcome::CaCert(format!("cannot use CA file {}: {e}", path.display()))),
    }
}

/// The request body producer the plan asks for, and the Content-Type it needs (a form's,
/// with its boundary).
type Body = (Option<Box<dyn BodyProducer>>, Option<String>);

fn producer(body: &BodySource) -> Result<Body, Outcome> {
    let read_error = |path: &std::path::Path, e: io::Error| {
        Outcome::ReadInput(format!("cannot read data from {:?}: {e}", path.display()))
    };
    Ok(match body {
        BodySource::None => (None, None),
        BodySource::Bytes(b) => (Some(Box::new(BytesProducer::new(b.clone()))), None),
        BodySource::File(path) => (
            Some(Box::new(
                ReadProducer::file(path).map_err(|e| read_error(path, e))?,
            )),
            None,
        ),
        BodySource::Stdin => (Some(Box::new(ReadProducer::new(io::stdin(), None))), None),
        BodySource::Form(fields) => {
            let mut form = Multipart::new();
            for field in fields {
                form = match &field.value {
                    FormValue::Text(t) => form.text(&field.name, t.clone()),
                    FormValue::File {
                        path,
                        content_type: None,
                        filename: None,
                    } => form
                        .file(&field.name, path)
                        .map_err(|e| read_error(path, e))?,
                    FormValue::File {
                        path,
                        content_type,
                        filename,
                    } => {
                        let file = File::open(path).map_err(|e| read_error(path, e))?;
                        let len = file.metadata().map_err(|e| read_error(path, e))?.len();
                        let name = filename.clone().unwrap_or_else(|| {
                            path.file_name()
                                .map(|n| n.to_string_lossy().into_owned())
                                .unwrap_or_default()
                        });
                        let ct = content_type
                            .clone()
                            .unwrap_or_else(|| weft::client::guess_content_type(path).into());
                        form.reader(&field.name, &name, &ct, file, Some(len))
                    }
                };
            }
            let content_type = form.content_type();
            (Some(Box::new(form.into_producer())), Some(content_type))
        }
    })
}

/// The agent chain for the run's shared options (see the module docs for its order).
fn build_agent(
    ctx: &mut Ctx,
    plan: &Plan,
) -> Result<(Rc<dyn HttpAgent>, Option<CookieJar>), Outcome> {
    let chain: &ChainPlan = &plan.chain;
    let mut proxies = match &chain.proxy {
        Some(p) => Proxies::all(p)
            .map_err(|cause| Outcome::Request(Error::new(Phase::RequestNotSent, cause)))?,
        None => Proxies::from_env(),
    };
    if let Some(list) = &chain.noproxy {
        proxies = proxies.no_proxy(list);
    }
    let defaults = AgentConfig::default();
    let mut config = AgentConfig {
        tls: tls_connector(&plan.tls)?,
        user_agent: plan.user_agent.clone(),
        // As curl: no limit on the whole transfer nor on silences unless -m is given.
        timeout: plan.max_time,
        read_timeout: None,
        proxies,
        // -Z to one host opens as many connections as transfers allowed in flight, as curl.
        max_active_per_host: defaults.max_active_per_host.max(chain.parallel),
        max_active_total: defaults.max_active_total.max(chain.parallel),
        ..defaults
    };
    match plan.connect_timeout {
        ConnectTimeout::Default => {}
        ConnectTimeout::Unlimited => config.connect_timeout = None,
        ConnectTimeout::Limit(d) => config.connect_timeout = Some(d),
    }
    let mut agent: Rc<dyn HttpAgent> = Rc::new(Agent::new(ctx, config));
    if chain.compressed {
        agent = Rc::new(ContentDecoderAgent::new(agent, DecodeConfig::default()));
    }
    let mut jar = None;
    if !chain.cookie_files.is_empty() || chain.cookie_jar.is_some() {
        let loaded = match chain.cookie_files.last() {
            None => CookieJar::new(),
            Some(path) => match CookieJar::load(path) {
                Ok(j) => j,
                // A cookie file that does not exist yet is an empty jar, as in curl.
                Err(e) if e.kind() == io::ErrorKind::NotFound => CookieJar::new(),
                Err(e) => {
                    return Err(Outcome::ReadInput(format!(
                        "cannot read cookies from {}: {e}",
                        path.display()
                    )));
                }
            },
        };
        agent = Rc::new(CookieAgent::new(agent, loaded.clone()));
        jar = Some(loaded);
    }
    if let Some(max_redirects) = chain.follow {
        agent = Rc::new(RedirectAgent::new(
            agent,
            RedirectConfig {
                max_redirects,
                ..RedirectConfig::default()
            },
        ));
    }
    // Always present: it also takes credentials from the URL's userinfo.
    let (credentials, mode) = match &chain.auth {
        None => (None, AuthMode::Basic),
        Some(a) => (
            Some(Credentials::new(&a.user, &a.password)),
            match a.choice {
                AuthChoice::Basic => AuthMode::Basic,
                AuthChoice::Digest => AuthMode::Digest,
                AuthChoice::Any => AuthMode::Auto,
            },
        ),
    };
    agent = Rc::new(AuthAgent::new(agent, credentials, mode));
    Ok((agent, jar))
}

/// Runs every plan (one per URL, sharing their chain options) and returns one outcome per
/// plan, in order.
pub fn run_all(plans: Vec<Plan>) -> Vec<Outcome> {
    let count = plans.len();
    let fail_all = |o: Outcome| {
        let message = o.message().unwrap_or_default();
        let code = o.exit_code();
        let mut all = vec![o];
        // Later plans share the failure; only the first one prints it.
        all.extend((1..count).map(|_| Outcome::Other(format!("not run ({code}: {message})"))));
        all
    };
    let Some(first) = plans.first() else {
        return Vec::new();
    };
    let mut reactor = match Reactor::new() {
        Ok(r) => r,
        Err(e) => return fail_all(Outcome::Other(format!("cannot start the reactor: {e}"))),
    };
    let (agent, jar) = match build_agent(reactor.ctx(), first) {
        Ok(a) => a,
        Err(o) => return fail_all(o),
    };
    let show_bars = first.output.progress && io::stderr().is_terminal();
    let runner = Rc::new(RefCell::new(Runner {
        agent: Some(agent),
        max_in_flight: first.chain.parallel.max(1),
        jar_out: first.chain.cookie_jar.clone(),
        jar,
        pending: plans.into_iter().enumerate().collect(),
        outcomes: (0..count).map(|_| None).collect(),
        states: (0..count).map(|_| None).collect(),
        in_flight: 0,
        bars: show_bars.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
    }));
    start_more(&runner, reactor.ctx());
    if let Err(e) = reactor.run() {
        return fail_all(Outcome::Other(format!("event loop failed: {e}")));
    }
    let mut r = runner.borrow_mut();
    r.agent = None;
    r.outcomes
        .iter_mut()
        .map(|o| {
            o.take().unwrap_or_else(|| {
                Outcome::Other("the transfer ended without a result (library stopped early)".into())
            })
        })
        .collect()
}

/// Starts pending transfers while fewer than the limit are in flight.
fn start_more(runner: &Rc<RefCell<Runner>>, ctx: &mut Ctx) {
    loop {
        let next = {
            let mut r = runner.borrow_mut();
            if r.in_flight >= r.max_in_flight {
                None
            } else {
                let next = r.pending.pop_front();
                r.in_flight += usize::from(next.is_some());
                next.map(|n| (n, r.agent.clone(), r.bars.clone()))
            }
        };
        let Some(((index, plan), Some(agent), bars)) = next else {
            return;
        };
        begin(runner, ctx, index, plan, &*agent, bars);
    }
}

/// A transfer ended: writes its `-w` text and ETag, records its outcome and starts the
/// next; after the last one, saves the cookie jar and stops the reactor.
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
    drop(s);
    let all_done = {
        let mut r = runner.borrow_mut();
        r.outcomes[index] = Some(outcome);
        r.in_flight -= 1;
        r.in_flight == 0 && r.pending.is_empty()
    };
    if !all_done {
        return start_more(runner, ctx);
    }
    let mut r = runner.borrow_mut();
    if let (Some(jar), Some(path)) = (&r.jar, r.jar_out.clone())
        && let Err(error) = jar.save_netscape(&path)
    {
        let failed = Outcome::Write {
            what: path.display().to_string(),
            error,
        };
        if let Some(last) = r
            .outcomes
            .iter_mut()
            .flatten()
            .find(|o| matches!(o, Outcome::Ok))
        {
            *last = failed;
        }
    }
    ctx.stop();
}

/// The Range to ask for when resuming into `file`, per `-C`.
fn resume_offset(resume: Option<Resume>, file: Option<&PathBuf>) -> u64 {
    match (resume, file) {
        (Some(Resume::At(n)), _) => n,
        (Some(Resume::FromFile), Some(path)) => std::fs::metadata(path).map_or(0, |m| m.len()),
        _ => 0,
    }
}

/// Starts one transfer.
fn begin(
    runner: &Rc<RefCell<Runner>>,
    ctx: &mut Ctx,
    index: usize,
    plan: Plan,
    agent: &dyn HttpAgent,
    bars: Option<MultiProgress>,
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
        handle: None,
        bar: None,
        runner: runner.clone(),
    }));
    runner.borrow_mut().states[index] = Some(state.clone());

    let (body, form_type) = match producer(&plan.body) {
        Ok(b) => b,
        Err(o) => return state.borrow_mut().finish(ctx, o),
    };
    let offset = resume_offset(plan.output.resume, plan.output.file.as_ref());
    let mut headers: Headers = plan
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_bytes()))
        .collect();
    if let Some(ct) = &form_type
        && headers.get("content-type").is_none()
    {
        headers.append("Content-Type", ct.as_bytes());
    }
    if offset > 0 {
        headers.append("Range", format!("bytes={offset}-").as_bytes());
    }
    if plan.output.verbose {
        let length = body.as_ref().and_then(|b| b.length());
        verbose(&format::verbose_request(&plan, length));
    }
    let request = Request {
        method: plan.method.clone().into(),
        url: plan.url.clone(),
        headers,
        body,
        // Given here too (not only in the agent's config) so that it spans every redirect.
        timeouts: Timeouts {
            total: plan.max_time,
            ..Timeouts::default()
        },
    };
    let st = state.clone();
    let handle = agent.request(
        ctx,
        request,
        Box::new(move |ctx, result| on_response(&st, ctx, result, offset, bars)),
    );
    state.borrow_mut().handle = Some(handle);

    if let Some(max) = plan.max_time {
        // The library enforces --max-time; this only guards against it not doing so.
        let st = state.clone();
        ctx.call_later(max + WATCHDOG_GRACE, move |ctx| {
            let mut s = st.borrow_mut();
            if s.ended {
                return;
            }
            if let Some(h) = &s.handle {
                h.cancel(ctx);
            }
            let phase = if s.head.is_some() {
                Phase::ResponseFailed
            } else {
                Phase::ResponseNeverReceived
            };
            let timeout = Timeout {
                kind: TimeoutKind::Total,
                limit: max,
                elapsed: s.started.elapsed(),
                received: s.received,
            };
            let error = Error::new(phase, Cause::Timeout(timeout)).with_url(&s.url);
            s.fail(ctx, error);
        });
    }
}

/// Number of redirect hops in a response's history (authentication challenges excluded).
fn redirect_count(response: &Response) -> u64 {
    response
        .history
        .iter()
        .filter(|p| (300..400).contains(&p.code))
        .count() as u64
}

/// Decides what a response means for a `-C` resume from `offset` (> 0): `Ok(true)` to
/// append its body, `Ok(false)` to write the file anew (the server sent it whole), or the
/// outcome that ends the transfer without writing.
fn check_resume(response: &Response, offset: u64) -> Result<bool, Outcome> {
    let range = response
        .headers
        .get_str("content-range")
        .and_then(ContentRange::parse);
    match response.code {
        200 => Ok(false),
        206 => match range.and_then(|r| r.range) {
            Some((start, _)) if start == offset => Ok(true),
            Some((start, end)) => Err(Outcome::Resume(format!(
                "cannot resume: the server sent bytes {start}-{end}, the file has {offset}"
            ))),
            None => Err(Outcome::Resume(
                "cannot resume: 206 response without a valid Content-Range".into(),
            )),
        },
        416 if range.and_then(|r| r.total) == Some(offset) => Err(Outcome::Ok),
        code => Err(Outcome::Resume(format!(
            "cannot resume from byte {offset}: the server answered {code} {}",
            response.phrase
        ))),
    }
}

/// The response head arrived, or the request failed before it did.
fn on_response(
    state: &Shared,
    ctx: &mut Ctx,
    result: Result<Response, Error>,
    offset: u64,
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
    s.head = Some(Head {
        version: response.version,
        code: response.code,
        phrase: response.phrase.to_string(),
        headers: response.headers.clone(),
        length: response.length,
        url_effective: response.url.to_string(),
        redirects: redirect_count(&response),
        timing: response.timing,
        size: head_bytes.len() as u64,
    });
    if offset > 0 {
        match check_resume(&response, offset) {
            Ok(append) => s.sink.append = append,
            Err(outcome) => {
                if s.opts.verbose && matches!(outcome, Outcome::Ok) {
                    verbose("* The file is already complete\n");
                }
                return s.finish(ctx, outcome);
            }
        }
    }
    if !s.opts.dump_json && s.opts.fail_on_http_error && response.code >= 400 {
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
        && let Err(e) = s.sink.write_now(&head_bytes)
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
            verbose(&note);
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
