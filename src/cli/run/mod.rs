//! Executes the [`Plan`]s of a run (one per URL) on one reactor, through one agent chain,
//! and reports an [`Outcome`] per transfer.
//!
//! The chain is built once from the shared options: `Agent` (pool, TLS, proxies), then
//! `ContentDecoderAgent` (`--compressed`), `CookieAgent` (`-b`/`-c`), `RedirectAgent` (`-L`)
//! and `AuthAgent` outermost, so `-u` credentials go to the URL's own origin only and a
//! redirect to another host never carries them. Transfers run one after another, or up to
//! `--parallel-max` at a time with `-Z`, through the library's `run_bounded`; the reactor
//! stops when the last one ends.
//!
//! A body is streamed: every `data_received` piece is written to its destination (stdout
//! or the output file, opened on first use) and flushed; only `--dump json` keeps it in
//! memory. Whatever ends a transfer (the body's end, a failure, a write error) records its
//! outcome once; the `-w` text, `--etag-save` file and the next transfer follow.

mod chain;
mod request_body;
mod transfer;

use std::cell::RefCell;
use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::rc::Rc;

use indicatif::{MultiProgress, ProgressDrawTarget};
use weft::client::{CookieJar, HttpAgent, run_bounded};
use weft::reactor::{Ctx, Reactor};

use super::exit::Outcome;
use super::plan::Plan;
use transfer::Shared;

/// Runs every transfer and their shared agent chain on one reactor.
struct Runner {
    agent: Option<Rc<dyn HttpAgent>>,
    outcomes: Vec<Option<Outcome>>,
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
    let (agent, jar) = match chain::build_agent(reactor.ctx(), first) {
        Ok(a) => a,
        Err(o) => return fail_all(o),
    };
    let show_bars = first.output.progress && io::stderr().is_terminal();
    let max_in_flight = first.chain.parallel;
    let runner = Rc::new(RefCell::new(Runner {
        agent: Some(agent),
        jar_out: first.chain.cookie_jar.clone(),
        jar,
        outcomes: (0..count).map(|_| None).collect(),
        states: (0..count).map(|_| None).collect(),
        bars: show_bars.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
    }));
    let r = runner.clone();
    let start = move |ctx: &mut Ctx, index, plan, slot| {
        let (agent, bars) = {
            let r = r.borrow();
            (r.agent.clone(), r.bars.clone())
        };
        if let Some(agent) = agent {
            transfer::begin(&r, ctx, index, plan, &*agent, bars, slot);
        }
    };
    let r = runner.clone();
    run_bounded(reactor.ctx(), plans, max_in_flight, start, move |ctx| {
        all_done(&r);
        ctx.stop();
    });
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

/// After the last transfer: saves the cookie jar (a failure replaces a success's outcome).
fn all_done(runner: &Rc<RefCell<Runner>>) {
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
}
