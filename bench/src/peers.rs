//! The other clients: hyper (hyper-util's pooled legacy client, and the raw
//! `client::conn::http1` connection), reqwest (both on a current-thread tokio runtime) and
//! ureq (blocking: one thread per connection, one shared agent).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Uri;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::Params;
use crate::meter::{Meter, live_heap, report_idle, rss_kib};

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}

fn fail(client: &str, e: impl std::fmt::Display) -> ! {
    eprintln!("{client}: {e}");
    std::process::exit(1);
}

type HyperClient = Client<HttpConnector, Empty<Bytes>>;

fn hyper_client() -> HyperClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new()).build(connector)
}

/// Reads a hyper body to its end, counting data bytes.
async fn count_body(mut body: hyper::body::Incoming) -> u64 {
    let mut n = 0u64;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                if let Some(d) = f.data_ref() {
                    n += d.len() as u64;
                }
            }
            Err(e) => fail("hyper body", e),
        }
    }
    n
}

/// `hyper`: hyper-util's legacy pooled `Client`, `conns` tasks each issuing requests in turn.
pub fn hyper_pooled(p: &Params, meter: Meter) -> Result<(), String> {
    let uri: Uri = p.url.parse().map_err(|e| format!("{e}"))?;
    let conns = p.conns;
    runtime()?.block_on(async move {
        let client = hyper_client();
        for _ in 0..conns {
            let (client, uri, meter) = (client.clone(), uri.clone(), meter.clone());
            tokio::spawn(async move {
                loop {
                    let response = client
                        .get(uri.clone())
                        .await
                        .unwrap_or_else(|e| fail("hyper", e));
                    meter.done(count_body(response.into_body()).await);
                }
            });
        }
        std::future::pending::<()>().await;
    });
    Ok(())
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

/// One raw hyper connection: handshake, its driver spawned.
async fn hyper_connect(p: &Params) -> Sender {
    let stream = tokio::net::TcpStream::connect(p.addr)
        .await
        .unwrap_or_else(|e| fail("hyper-conn connect", e));
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap_or_else(|e| fail("hyper-conn handshake", e));
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            fail("hyper-conn connection", e);
        }
    });
    sender
}

fn hyper_request(p: &Params) -> hyper::Request<Empty<Bytes>> {
    hyper::Request::get(p.path.as_str())
        .header(hyper::header::HOST, p.addr.to_string())
        .body(Empty::new())
        .unwrap_or_else(|e| fail("hyper-conn request", e))
}

/// `hyper-conn`: hyper's `client::conn::http1` API, one task per connection, no pool.
pub fn hyper_conn(p: &Params, meter: Meter) -> Result<(), String> {
    let p = Arc::new(p.clone());
    runtime()?.block_on(async move {
        for _ in 0..p.conns {
            let (p, meter) = (p.clone(), meter.clone());
            tokio::spawn(async move {
                let mut sender = hyper_connect(&p).await;
                loop {
                    if let Err(e) = sender.ready().await {
                        fail("hyper-conn", e);
                    }
                    let response = sender
                        .send_request(hyper_request(&p))
                        .await
                        .unwrap_or_else(|e| fail("hyper-conn", e));
                    meter.done(count_body(response.into_body()).await);
                }
            });
        }
        std::future::pending::<()>().await;
    });
    Ok(())
}

fn reqwest_client(ca: Option<&str>) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder();
    if let Some(ca) = ca {
        let pem = std::fs::read(ca).map_err(|e| format!("{ca}: {e}"))?;
        let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| e.to_string())?;
        builder = builder.add_root_certificate(cert);
    }
    builder
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(usize::MAX)
        .build()
        .map_err(|e| e.to_string())
}

/// `reqwest`: one `reqwest::Client`, `conns` tasks, bodies read chunk by chunk.
pub fn reqwest(p: &Params, meter: Meter) -> Result<(), String> {
    let client = reqwest_client(p.ca.as_deref())?;
    let (url, conns) = (p.url.clone(), p.conns);
    runtime()?.block_on(async move {
        for _ in 0..conns {
            let (client, url, meter) = (client.clone(), url.clone(), meter.clone());
            tokio::spawn(async move {
                loop {
                    let mut response = client
                        .get(&url)
                        .send()
                        .await
                        .unwrap_or_else(|e| fail("reqwest", e));
                    let mut n = 0u64;
                    while let Some(chunk) = response
                        .chunk()
                        .await
                        .unwrap_or_else(|e| fail("reqwest", e))
                    {
                        n += chunk.len() as u64;
                    }
                    meter.done(n);
                }
            });
        }
        std::future::pending::<()>().await;
    });
    Ok(())
}

/// `reqwest-collect`: as `reqwest`, each body collected whole with `Response::bytes`.
pub fn reqwest_collect(p: &Params, meter: Meter) -> Result<(), String> {
    let client = reqwest_client(p.ca.as_deref())?;
    let (url, conns) = (p.url.clone(), p.conns);
    runtime()?.block_on(async move {
        for _ in 0..conns {
            let (client, url, meter) = (client.clone(), url.clone(), meter.clone());
            tokio::spawn(async move {
                loop {
                    let response = client
                        .get(&url)
                        .send()
                        .await
                        .unwrap_or_else(|e| fail("reqwest-collect", e));
                    let body = response
                        .bytes()
                        .await
                        .unwrap_or_else(|e| fail("reqwest-collect", e));
                    meter.done(body.len() as u64);
                }
            });
        }
        std::future::pending::<()>().await;
    });
    Ok(())
}

/// `ureq`: blocking, so `conns` threads share one agent whose pool keeps `conns` connections.
pub fn ureq(p: &Params, meter: Meter) -> Result<(), String> {
    ureq_threads(p, meter, false)
}

/// `ureq-collect`: as `ureq`, each body collected whole with `Body::read_to_vec` (its 10 MB
/// default limit raised to weft-client's 256 MiB).
pub fn ureq_collect(p: &Params, meter: Meter) -> Result<(), String> {
    ureq_threads(p, meter, true)
}

fn ureq_threads(p: &Params, meter: Meter, collect: bool) -> Result<(), String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .max_idle_connections(p.conns)
        .max_idle_connections_per_host(p.conns)
        .build()
        .into();
    let mut threads = Vec::new();
    for _ in 0..p.conns {
        let (agent, url, meter) = (agent.clone(), p.url.clone(), meter.clone());
        let t = std::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn(move || {
                loop {
                    let response = agent.get(&url).call().unwrap_or_else(|e| fail("ureq", e));
                    let n = if collect {
                        let body = response
                            .into_body()
                            .with_config()
                            .limit(256 << 20)
                            .read_to_vec()
                            .unwrap_or_else(|e| fail("ureq body", e));
                        body.len() as u64
                    } else {
                        let mut reader = response.into_body().into_reader();
                        io::copy(&mut reader, &mut io::sink())
                            .unwrap_or_else(|e| fail("ureq body", e))
                    };
                    meter.done(n);
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

/// `idle hyper`: `conns` requests at once on the pooled client, then its pool holds them.
pub fn hyper_idle(p: &Params) -> Result<(), String> {
    let uri: Uri = p.url.parse().map_err(|e| format!("{e}"))?;
    let conns = p.conns;
    runtime()?.block_on(async move {
        let client = hyper_client();
        tokio::time::sleep(Duration::from_millis(1)).await;
        let (rss_before, heap_before) = (rss_kib(), live_heap());
        let mut tasks = Vec::new();
        for _ in 0..conns {
            let (client, uri) = (client.clone(), uri.clone());
            tasks.push(tokio::spawn(async move {
                let response = client.get(uri).await.unwrap_or_else(|e| fail("hyper", e));
                count_body(response.into_body()).await
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        report_idle("hyper", conns, rss_before, heap_before);
    });
    Ok(())
}

/// `idle hyper-conn`: `conns` raw connections, one request each, the senders kept.
pub fn hyper_conn_idle(p: &Params) -> Result<(), String> {
    let p = Arc::new(p.clone());
    runtime()?.block_on(async move {
        tokio::time::sleep(Duration::from_millis(1)).await;
        let (rss_before, heap_before) = (rss_kib(), live_heap());
        let mut tasks = Vec::new();
        for _ in 0..p.conns {
            let p = p.clone();
            tasks.push(tokio::spawn(async move {
                let mut sender = hyper_connect(&p).await;
                let response = sender
                    .send_request(hyper_request(&p))
                    .await
                    .unwrap_or_else(|e| fail("hyper-conn", e));
                count_body(response.into_body()).await;
                sender
            }));
        }
        let mut senders = Vec::new();
        for t in tasks {
            senders.push(t.await.unwrap_or_else(|e| fail("hyper-conn", e)));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        report_idle("hyper-conn", senders.len(), rss_before, heap_before);
    });
    Ok(())
}

/// `idle reqwest`: `conns` requests at once, then the client's pool holds the connections.
pub fn reqwest_idle(p: &Params) -> Result<(), String> {
    let client = reqwest_client(p.ca.as_deref())?;
    let (url, conns) = (p.url.clone(), p.conns);
    runtime()?.block_on(async move {
        tokio::time::sleep(Duration::from_millis(1)).await;
        let (rss_before, heap_before) = (rss_kib(), live_heap());
        let mut tasks = Vec::new();
        for _ in 0..conns {
            let (client, url) = (client.clone(), url.clone());
            tasks.push(tokio::spawn(async move {
                let r = client
                    .get(&url)
                    .send()
                    .await
                    .unwrap_or_else(|e| fail("reqwest", e));
                r.bytes().await.unwrap_or_else(|e| fail("reqwest", e)).len()
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        report_idle(
            if url.starts_with("https") {
                "reqwest-tls"
            } else {
                "reqwest"
            },
            conns,
            rss_before,
            heap_before,
        );
    });
    Ok(())
}
