//! weft's two APIs: the Agent with a counting body protocol, and `HttpClient::fetch`.

use std::cell::Cell;
use std::rc::Rc;

use weft::client::{
    Agent, AgentConfig, BodyCtx, BodyEnd, BodyProtocol, ClientBuilder, HttpAgent, HttpClient,
    Request,
};
use weft::reactor::{Ctx, Reactor};
use weft::tls::TlsConnector;

use crate::Params;
use crate::meter::{LocalMeter, Meter, live_heap, report_idle, rss_kib};

/// A pool sized for `conns` requests in flight, without the per-request total timeout (the
/// 100 MiB body on a busy machine must not trip it).
fn config(conns: usize) -> AgentConfig {
    AgentConfig {
        max_idle_per_host: conns,
        max_active_per_host: conns,
        max_active_total: conns,
        timeout: None,
        ..AgentConfig::default()
    }
}

struct Shared {
    agent: Agent,
    url: Rc<str>,
    meter: Tally,
}

/// Where a finished request is counted: the shared meter itself (one thread), or this
/// thread's batch of it (`--threads`).
enum Tally {
    Shared(Meter),
    Local(LocalMeter),
}

impl Tally {
    fn done(&self, bytes: u64) {
        match self {
            Tally::Shared(m) => m.done(bytes),
            Tally::Local(m) => m.done(bytes),
        }
    }
}

/// Counts body bytes; at the end, reports the request and issues the next one.
struct Count {
    bytes: u64,
    shared: Rc<Shared>,
}

impl BodyProtocol for Count {
    fn data_received(&mut self, _body: &mut BodyCtx<'_>, data: &[u8]) {
        self.bytes += data.len() as u64;
    }

    fn connection_lost(&mut self, ctx: &mut Ctx, reason: BodyEnd) {
        if !reason.is_done() {
            eprintln!("weft-agent: body ended with {reason:?}");
            std::process::exit(1);
        }
        self.shared.meter.done(self.bytes);
        issue(ctx, self.shared.clone());
    }
}

fn issue(ctx: &mut Ctx, shared: Rc<Shared>) {
    let s = shared.clone();
    shared.agent.request(
        ctx,
        Request::new("GET", &shared.url),
        Box::new(move |ctx, result| match result {
            Ok(response) => response.deliver_body(
                ctx,
                Count {
                    bytes: 0,
                    shared: s,
                },
            ),
            Err(e) => {
                eprintln!("weft-agent: {e}");
                std::process::exit(1);
            }
        }),
    );
}

/// `weft-agent`: `conns` requests in flight; each finished body issues the next request.
pub fn agent(p: &Params, meter: Meter) -> Result<(), String> {
    let mut reactor = Reactor::new().map_err(|e| e.to_string())?;
    let agent = Agent::new(reactor.ctx(), config(p.conns));
    let shared = Rc::new(Shared {
        agent,
        url: p.url.as_str().into(),
        meter: Tally::Shared(meter),
    });
    for _ in 0..p.conns {
        issue(reactor.ctx(), shared.clone());
    }
    reactor.run().map_err(|e| e.to_string())
}

/// `weft-agent --threads N`: N threads, each with its own reactor and Agent (one reactor per
/// core), the `conns` requests in flight split over them as evenly as they go.
pub fn agent_threads(p: &Params, meter: Meter, threads: usize) -> Result<(), String> {
    let workers: Vec<_> = (0..threads)
        .map(|i| {
            let conns = p.conns / threads + usize::from(i < p.conns % threads);
            let (url, meter) = (p.url.clone(), meter.clone());
            std::thread::Builder::new()
                .name(format!("weft-agent-{i}"))
                .spawn(move || -> Result<(), String> {
                    let mut reactor = Reactor::new().map_err(|e| e.to_string())?;
                    let shared = Rc::new(Shared {
                        agent: Agent::new(reactor.ctx(), config(conns)),
                        url: url.as_str().into(),
                        meter: Tally::Local(LocalMeter::new(meter)),
                    });
                    for _ in 0..conns {
                        issue(reactor.ctx(), shared.clone());
                    }
                    reactor.run().map_err(|e| e.to_string())
                })
                .map_err(|e| e.to_string())
        })
        .collect::<Result<_, _>>()?;
    // The meter ends the process when the window closes; a thread that returns failed.
    for w in workers {
        w.join()
            .map_err(|_| "a weft-agent thread panicked".to_string())??;
    }
    Err("every weft-agent thread stopped before the window closed".into())
}

/// Fetches `url` again and again; with `reuse`, each body's memory is handed to the next
/// fetch (`fetch_into`), else each fetch collects into a new buffer.
fn fetch(
    ctx: &mut Ctx,
    client: Rc<HttpClient>,
    url: Rc<str>,
    meter: Meter,
    reuse: Option<Vec<u8>>,
) {
    let (c, u) = (client.clone(), url.clone());
    let keep = reuse.is_some();
    client.get(&url).fetch_into(
        ctx,
        reuse.unwrap_or_default(),
        move |ctx, result| match result {
            Ok(r) => {
                meter.done(r.body.len() as u64);
                fetch(ctx, c, u, meter, keep.then_some(r.body));
            }
            Err(e) => {
                eprintln!("weft-client: {e}");
                std::process::exit(1);
            }
        },
    );
}

/// The session builder with no wrappers: the convenience layer itself over the Agent.
fn bare(config: AgentConfig) -> ClientBuilder {
    HttpClient::builder()
        .agent_config(config)
        .max_body(256 << 20)
        .redirects(false)
        .cookies(false)
        .decompress(false)
        .url_credentials(false)
}

/// `weft-blocking`: `weft::blocking::Client::get` (the body read into memory), one thread
/// per connection, each with its own client.
pub fn blocking(p: &Params, meter: Meter) -> Result<(), String> {
    let mut threads = Vec::new();
    for _ in 0..p.conns {
        let (url, meter) = (p.url.clone(), meter.clone());
        let t = std::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn(move || {
                let mut client = bare(config(1)).build_blocking().unwrap_or_else(|e| {
                    eprintln!("weft-blocking: {e}");
                    std::process::exit(1);
                });
                loop {
                    match client.get(&url) {
                        Ok(r) => meter.done(r.body.len() as u64),
                        Err(e) => {
                            eprintln!("weft-blocking: {e}");
                            std::process::exit(1);
                        }
                    }
                }
            })
            .map_err(|e| e.to_string())?;
        threads.push(t);
    }
    for t in threads {
        let _ = t.join();
    }
    Ok(())
}

/// `weft-client`: `HttpClient::fetch` (the body read into memory), `conns` in flight.
pub fn client(p: &Params, meter: Meter) -> Result<(), String> {
    run_client(p, meter, false)
}

/// `weft-client-reuse`: as `weft-client`, each body's memory handed back to the next fetch
/// (`RequestBuilder::fetch_into`).
pub fn client_reuse(p: &Params, meter: Meter) -> Result<(), String> {
    run_client(p, meter, true)
}

fn run_client(p: &Params, meter: Meter, reuse: bool) -> Result<(), String> {
    let mut reactor = Reactor::new().map_err(|e| e.to_string())?;
    // No wrappers: the convenience layer itself over the Agent, as measured before the
    // session builder switched redirects, cookies and decoding on by default.
    let client = bare(config(p.conns)).build(reactor.ctx());
    let client = Rc::new(client);
    let url: Rc<str> = p.url.as_str().into();
    for _ in 0..p.conns {
        let buffer = reuse.then(Vec::new);
        fetch(
            reactor.ctx(),
            client.clone(),
            url.clone(),
            meter.clone(),
            buffer,
        );
    }
    reactor.run().map_err(|e| e.to_string())
}

/// Discards a body, counting nothing.
struct Drain(Rc<Cell<usize>>);

impl BodyProtocol for Drain {
    fn data_received(&mut self, _body: &mut BodyCtx<'_>, _data: &[u8]) {}

    fn connection_lost(&mut self, ctx: &mut Ctx, reason: BodyEnd) {
        if !reason.is_done() {
            eprintln!("weft-agent idle: body ended with {reason:?}");
            std::process::exit(1);
        }
        self.0.set(self.0.get() - 1);
        if self.0.get() == 0 {
            ctx.stop();
        }
    }
}

/// `idle weft-agent`: `conns` requests at once, then the connections idle in the pool.
pub fn idle(p: &Params) -> Result<(), String> {
    let mut reactor = Reactor::new().map_err(|e| e.to_string())?;
    let mut config = config(p.conns);
    if let Some(ca) = &p.ca {
        config.tls = TlsConnector::with_root_pem_file(ca.as_ref()).map_err(|e| e.to_string())?;
    }
    let agent = Agent::new(reactor.ctx(), config);
    reactor
        .ctx()
        .call_later(std::time::Duration::from_millis(1), |ctx| ctx.stop());
    reactor.run().map_err(|e| e.to_string())?;
    let (rss_before, heap_before) = (rss_kib(), live_heap());
    let pending = Rc::new(Cell::new(p.conns));
    for _ in 0..p.conns {
        let pending = pending.clone();
        agent.request(
            reactor.ctx(),
            Request::new("GET", &p.url),
            Box::new(move |ctx, result| match result {
                Ok(r) => r.deliver_body(ctx, Drain(pending)),
                Err(e) => {
                    eprintln!("weft-agent idle: {e}");
                    std::process::exit(1);
                }
            }),
        );
    }
    reactor.run().map_err(|e| e.to_string())?;
    // Let the last connections go back to the pool, then look at the pool.
    let idle = Rc::new(Cell::new(0));
    let seen = idle.clone();
    agent.stats(reactor.ctx(), move |ctx, s| {
        seen.set(s.idle);
        ctx.stop();
    });
    reactor.run().map_err(|e| e.to_string())?;
    eprintln!(
        "weft-agent idle: {} connections idle in the pool",
        idle.get()
    );
    let name = if p.url.starts_with("https") {
        "weft-agent-tls"
    } else {
        "weft-agent"
    };
    report_idle(name, idle.get(), rss_before, heap_before);
    Ok(())
}
