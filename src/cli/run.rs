//! Executes a [`Plan`] with one [`Agent`] on a reactor and reports the [`Outcome`].
//!
//! The body is streamed: every `data_received` piece is written to the destination (stdout
//! or the `-o` file, opened on first use) and flushed; only `--dump json` keeps it in memory.
//! Whatever ends the exchange (the body's end, a failure, a write error) stops the reactor.

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use weft::client::{
    Agent, AgentConfig, BodyCtx, BodyEnd, BodyProducer, BodyProtocol, BytesProducer, Cause, Error,
    Phase, ReadProducer, Response, TimeoutKind,
};
use weft::proto::{Headers, Version};
use weft::reactor::{Ctx, Reactor};
use weft::tls::TlsConnector;

use super::dump::{self, DumpHead};
use super::exit::Outcome;
use super::format;
use super::plan::{BodySource, ConnectTimeout, OutputOptions, Plan, TlsChoice};

/// Extra time given to the library past `--max-time` before the command gives up on its own.
const WATCHDOG_GRACE: Duration = Duration::from_secs(2);

/// Where output goes: stdout or a file created on first write.
struct Sink {
    file: Option<PathBuf>,
    out: Option<BufWriter<Box<dyn Write>>>,
}

impl Sink {
    fn new(file: Option<PathBuf>) -> Self {
        Sink { file, out: None }
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

/// The response head, kept for `--dump json` and `-f`.
struct Head {
    version: Version,
    code: u16,
    phrase: String,
    headers: Headers,
    length: Option<u64>,
}

/// The state shared by the response callback, the body protocol and the watchdog.
struct State {
    opts: OutputOptions,
    sink: Sink,
    head: Option<Head>,
    trailers: Option<Headers>,
    /// The body, for `--dump json` only.
    body: Vec<u8>,
    received: u64,
    /// An error the command raised itself (`--max-filesize`), reported over the body's end.
    own_error: Option<Error>,
    outcome: Option<Outcome>,
}

type Shared = Rc<RefCell<State>>;

impl State {
    /// Records the outcome (the first one wins) and stops the reactor.
    fn finish(&mut self, ctx: &mut Ctx, outcome: Outcome) {
        if self.outcome.is_none() {
            self.outcome = Some(outcome);
        }
        ctx.stop();
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

/// The request body producer the plan asks for.
fn producer(body: &BodySource) -> Result<Option<Box<dyn BodyProducer>>, Outcome> {
    Ok(match body {
        BodySource::None => None,
        BodySource::Bytes(b) => Some(Box::new(BytesProducer::new(b.clone()))),
        BodySource::File(path) => Some(Box::new(ReadProducer::file(path).map_err(|e| {
            Outcome::ReadInput(format!("cannot read data from {:?}: {e}", path.display()))
        })?)),
        BodySource::Stdin => Some(Box::new(ReadProducer::new(io::stdin(), None))),
    })
}

/// Runs the plan to its end.
pub fn run(plan: Plan) -> Outcome {
    match run_inner(plan) {
        Ok(outcome) | Err(outcome) => outcome,
    }
}

fn run_inner(plan: Plan) -> Result<Outcome, Outcome> {
    let tls = tls_connector(&plan.tls)?;
    let body = producer(&plan.body)?;
    let mut config = AgentConfig {
        tls,
        user_agent: plan.user_agent.clone(),
        timeout: plan.max_time,
        ..AgentConfig::default()
    };
    match plan.connect_timeout {
        ConnectTimeout::Default => {}
        ConnectTimeout::Unlimited => config.connect_timeout = None,
        ConnectTimeout::Limit(d) => config.connect_timeout = Some(d),
    }
    let mut reactor =
        Reactor::new().map_err(|e| Outcome::Other(format!("cannot start the reactor: {e}")))?;

    if plan.output.verbose {
        let length = body.as_ref().and_then(|b| b.length());
        verbose(&format::verbose_request(&plan, length));
    }

    let state: Shared = Rc::new(RefCell::new(State {
        opts: plan.output.clone(),
        sink: Sink::new(plan.output.file.clone()),
        head: None,
        trailers: None,
        body: Vec::new(),
        received: 0,
        own_error: None,
        outcome: None,
    }));

    let ctx = reactor.ctx();
    let agent = Agent::new(ctx, config);
    let headers: Headers = plan
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_bytes()))
        .collect();
    let st = state.clone();
    agent.request(
        ctx,
        &plan.method,
        &plan.url,
        headers,
        body,
        move |ctx, result| on_response(&st, ctx, result),
    );

    if let Some(max) = plan.max_time {
        // The library enforces --max-time; this only guards against it not doing so.
        let st = state.clone();
        ctx.call_later(max + WATCHDOG_GRACE, move |ctx| {
            let mut s = st.borrow_mut();
            let phase = if s.head.is_some() {
                Phase::ResponseFailed
            } else {
                Phase::ResponseNeverReceived
            };
            let error = Error::new(phase, Cause::Timeout(TimeoutKind::Total));
            if s.opts.dump_json
                && s.outcome.is_none()
                && let Err(o) = s.write_dump(None, Some(&error))
            {
                s.finish(ctx, o);
            }
            s.finish(ctx, Outcome::Request(error));
        });
    }

    if let Err(e) = reactor.run() {
        return Err(Outcome::Other(format!("event loop failed: {e}")));
    }
    let outcome = state.borrow_mut().outcome.take();
    Ok(outcome.unwrap_or_else(|| {
        Outcome::Other("the request ended without a result (library stopped early)".into())
    }))
}

/// The response head arrived, or the request failed before it did.
fn on_response(state: &Shared, ctx: &mut Ctx, result: Result<Response, Error>) {
    let mut s = state.borrow_mut();
    let response = match result {
        Ok(r) => r,
        Err(error) => {
            if s.opts.verbose {
                verbose(&format!("* Request failed: {error}\n"));
            }
            if s.opts.dump_json
                && let Err(o) = s.write_dump(None, Some(&error))
            {
                return s.finish(ctx, o);
            }
            return s.finish(ctx, Outcome::Request(error));
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
    s.head = Some(Head {
        version: response.version,
        code: response.code,
        phrase: response.phrase.clone(),
        headers: response.headers.clone(),
        length: response.length,
    });
    if !s.opts.dump_json && s.opts.fail_on_http_error && response.code >= 400 {
        // Nothing is written; dropping the response closes its connection.
        let outcome = s.success();
        return s.finish(ctx, outcome);
    }
    if let (Some(max), Some(len)) = (s.opts.max_filesize, response.length)
        && len > max
        && !s.opts.head_only
    {
        let error = Error::new(Phase::ResponseFailed, Cause::BodyTooLarge(max));
        if s.opts.dump_json
            && let Err(o) = s.write_dump(None, Some(&error))
        {
            return s.finish(ctx, o);
        }
        return s.finish(ctx, Outcome::Request(error));
    }
    if !s.opts.dump_json && s.opts.include_head {
        let head = format::head_bytes(
            response.version,
            response.code,
            &response.phrase,
            &response.headers,
        );
        if let Err(e) = s.sink.write_now(&head) {
            let outcome = s.sink.error(e);
            return s.finish(ctx, outcome);
        }
    }
    drop(s);
    response.deliver_body(
        ctx,
        CliBody {
            state: state.clone(),
        },
    );
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
            // Recorded now; the reactor stops when connection_lost follows the stop.
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
            ctx.stop();
            return;
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
