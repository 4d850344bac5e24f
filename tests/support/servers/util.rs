//! Small helpers shared by the server harnesses: temp dirs, free ports, process control and a
//! minimal blocking HTTP/1.1 client (std `TcpStream`, `Connection: close`) for sanity checks.

use std::fs;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A unique directory under `std::env::temp_dir()`, removed on drop.
///
/// Kept (and its path printed) when the dropping thread is panicking or when the environment
/// variable `WEFT_KEEP_TEST_DIRS` is set, so logs of a failed test can be read afterwards.
#[derive(Debug)]
pub struct TestDir {
    path: PathBuf,
}

impl TestDir {
    /// Creates `$TMPDIR/weft-<prefix>-<pid>-<seq>-<nanos>`.
    pub fn new(prefix: &str) -> TestDir {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            "weft-{prefix}-{}-{}-{nanos}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(name);
        fs::create_dir_all(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        TestDir { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `self.path().join(rel)`.
    pub fn join(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.path.join(rel)
    }

    /// Writes a file (creating parent directories) and returns its path.
    pub fn write(&self, rel: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path.join(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        fs::write(&p, contents).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
        p
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if thread::panicking() || std::env::var_os("WEFT_KEEP_TEST_DIRS").is_some() {
            eprintln!("test dir kept: {}", self.path.display());
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// A port on 127.0.0.1 that was free a moment ago (bound to port 0, then released).
///
/// There is a small race with other processes; the server harnesses retry with a new port
/// when the server fails to bind.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

/// Sends `sig` (e.g. "TERM", "INT") to `child`, waits up to `grace` for it to exit, then
/// SIGKILLs it. Never panics (used from `Drop`).
pub(crate) fn stop_child(child: &mut Child, sig: &str, grace: Duration) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => return,
            Ok(None) => thread::sleep(Duration::from_millis(10)),
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Spawns `cmd` with no stdin and its output in `stdout.log` and `stderr.log` of `dir`.
pub(crate) fn spawn_logged(cmd: &mut Command, dir: &TestDir) -> io::Result<Child> {
    cmd.stdin(Stdio::null())
        .stdout(fs::File::create(dir.join("stdout.log"))?)
        .stderr(fs::File::create(dir.join("stderr.log"))?)
        .spawn()
}

/// Reads a log file for error messages; empty string when missing.
pub(crate) fn read_lossy(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// A parsed HTTP response from [`raw_get`] / [`raw_request`].
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// The status code.
    pub status: u16,
    /// Header fields in order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked when `Transfer-Encoding: chunked`.
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The first header value with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as UTF-8 (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `GET path` over a new plain TCP connection with `Connection: close`; returns
/// `(status, headers, body)`. Panics on I/O or parse errors (10 s timeouts).
pub fn raw_get(addr: SocketAddr, path: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: weft-test-harness\r\nConnection: close\r\n\r\n"
    );
    let r = raw_request(addr, req.as_bytes()).unwrap_or_else(|e| panic!("GET {addr}{path}: {e}"));
    (r.status, r.headers, r.body)
}

/// Writes `request` (complete bytes; it should say `Connection: close`) to a new connection,
/// reads until EOF and parses one response.
pub fn raw_request(addr: SocketAddr, request: &[u8]) -> io::Result<RawResponse> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.set_write_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(request)?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    parse_response(&buf)
}

/// Parses one complete HTTP/1.x response (head and body) from `buf`.
pub fn parse_response(buf: &[u8]) -> io::Result<RawResponse> {
    let bad = |m: String| io::Error::new(io::ErrorKind::InvalidData, m);
    let mut hs = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut hs);
    let head_len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Err(bad("incomplete response head".into())),
        Err(e) => return Err(bad(format!("bad response head: {e}"))),
    };
    let status = resp.code.unwrap_or(0);
    let headers: Vec<(String, String)> = resp
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_string(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let rest = &buf[head_len..];
    let get = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.clone())
    };
    let body =
        if get("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
            dechunk(rest).map_err(bad)?
        } else if let Some(cl) = get("content-length") {
            let n: usize = cl.trim().parse().map_err(|_| bad(format!("bad CL {cl}")))?;
            if rest.len() < n {
                return Err(bad(format!("body short: {} of {n}", rest.len())));
            }
            rest[..n].to_vec()
        } else {
            rest.to_vec()
        };
    Ok(RawResponse {
        status,
        headers,
        body,
    })
}

fn dechunk(mut b: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = b
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("chunk size line not terminated")?;
        let line = std::str::from_utf8(&b[..eol]).map_err(|e| e.to_string())?;
        let size_str = line.split(';').next().unwrap().trim();
        let size = usize::from_str_radix(size_str, 16).map_err(|e| format!("{line:?}: {e}"))?;
        b = &b[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if b.len() < size + 2 {
            return Err("chunk truncated".into());
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

/// Polls `f` every 20 ms until it returns `Some`, or gives up after `timeout`.
pub(crate) fn poll_until<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Calls `try_start` up to three times while it fails with "Address already in use" (another
/// process took a port between [`free_port`] and the server's bind); panics on any other
/// error, naming `what`.
pub(crate) fn start_retrying<T>(what: &str, mut try_start: impl FnMut() -> Result<T, String>) -> T {
    let mut last_err = String::new();
    for _attempt in 0..3 {
        match try_start() {
            Ok(server) => return server,
            Err(e) if e.contains("Address already in use") => last_err = e,
            Err(e) => panic!("{what} did not start: {e}"),
        }
    }
    panic!("{what} did not start after 3 attempts: {last_err}");
}

/// Waits (polling, up to `timeout`) until `ready` holds, failing early when `child`, the
/// server process named `what`, exits. The error quotes the `logs` kept in `dir`.
pub(crate) fn wait_ready(
    child: &mut Child,
    what: &str,
    timeout: Duration,
    dir: &TestDir,
    logs: &[&str],
    mut ready: impl FnMut() -> bool,
) -> Result<(), String> {
    let start = Instant::now();
    let up = poll_until(timeout, || {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(Err(format!("{what} exited early ({st})")));
        }
        ready().then_some(Ok(()))
    });
    let mut fail = match up {
        Some(Ok(())) => return Ok(()),
        Some(Err(e)) => e,
        None => format!("{what} not ready after {:?}", start.elapsed()),
    };
    for log in logs {
        let text = read_lossy(&dir.join(log));
        fail.push_str(&format!("\n--- {}/{log} ---\n{text}", dir.path().display()));
    }
    Err(fail)
}

/// Whether something accepts TCP connections on `addr` right now.
pub(crate) fn accepts(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// A `Command` for the `weft` binary with no proxy settings from the environment (the
/// command reads them), so that loopback tests never go through a proxy by accident.
pub fn weft_command(exe: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new(exe);
    for var in [
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
        "no_proxy",
        "NO_PROXY",
    ] {
        cmd.env_remove(var);
    }
    cmd
}
