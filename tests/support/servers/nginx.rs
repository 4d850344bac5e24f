//! nginx (Debian's `/usr/sbin/nginx`, 1.22 on bookworm) on two free 127.0.0.1 ports: one
//! plain HTTP, one HTTPS with a [`TestCa`] server certificate. Both serve the same locations
//! (see [`Nginx::start`]). Runs in the foreground as one process (`daemon off;
//! master_process off;`), every path inside a per-instance [`TestDir`]; SIGTERM, then SIGKILL,
//! on drop. The same two servers also listen on Unix sockets in that directory
//! ([`Nginx::unix_socket_path`], [`Nginx::unix_tls_socket_path`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::OnceLock;
use std::time::Duration;

use super::ca::TestCa;
use super::util::{
    TestDir, accepts, free_port, poll_until, read_lossy, spawn_logged, start_retrying, stop_child,
    wait_ready,
};

/// The nginx binary.
pub const NGINX_BIN: &str = "/usr/sbin/nginx";
/// The echo module (Debian `libnginx-mod-http-echo`), loaded for `/echo-post` and `/slow`.
pub const ECHO_MODULE: &str = "/usr/lib/nginx/modules/ngx_http_echo_module.so";

/// Length of `/big.bin`: 4 MiB.
pub fn big_body_len() -> usize {
    4 << 20
}

/// The exact bytes of `/big.bin` (deterministic xorshift stream; not periodic).
pub fn big_body() -> &'static [u8] {
    static BIG: OnceLock<Vec<u8>> = OnceLock::new();
    BIG.get_or_init(|| {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut v = Vec::with_capacity(big_body_len());
        while v.len() < big_body_len() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.extend_from_slice(&x.to_le_bytes());
        }
        v.truncate(big_body_len());
        v
    })
}

/// One line of nginx's access log (format `weft`, see [`Nginx::access_log_entries`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// `$connection`: the server-side connection serial number. Requests with the same value
    /// were served on the same TCP connection: count distinct values to prove pool reuse.
    pub connection: u64,
    /// `$connection_requests`: 1 for the first request on a connection, 2 for the next, ...
    pub connection_requests: u64,
    /// `$status`.
    pub status: u16,
    /// `$scheme`: "http" or "https".
    pub scheme: String,
    /// `$body_bytes_sent`.
    pub body_bytes_sent: u64,
    /// `$request_length` (request line + headers + body, bytes).
    pub request_length: u64,
    /// `$request`: the request line, e.g. `GET /hello.txt HTTP/1.1`.
    pub request: String,
}

/// A running nginx; killed on drop.
#[derive(Debug)]
pub struct Nginx {
    child: Child,
    http_port: u16,
    https_port: u16,
    ca: TestCa,
    // Last: dropped after the child is stopped.
    dir: TestDir,
}

impl Nginx {
    /// Starts nginx with the standard locations on both ports, and waits (up to 5 s) until
    /// both ports accept connections. Panics with the error log if it does not come up.
    ///
    /// Locations (same on HTTP and HTTPS):
    /// - `/hello.txt` 200 `hello world\n` (text/plain, Content-Length); `/empty.txt` 200, 0
    ///   bytes; `/big.bin` 200, [`big_body`] (4 MiB, application/octet-stream). Static files
    ///   also answer HEAD, Range and If-Modified-Since like any nginx; POST to them is 405.
    /// - `/chunked/<file>`: the same files, but `Transfer-Encoding: chunked` (a no-op
    ///   `sub_filter` drops Content-Length; HTTP/1.1 requests only).
    /// - `/echo-post`: any method; reads the request body and sends it back, chunked
    ///   (echo module). `client_max_body_size` is 10m.
    /// - `/post-ok`: any method; discards the body, 200 `ok\n`.
    /// - `/no-content`: 204.
    /// - `/redirect`: 301, absolute `Location: http(s)://<host>:<port>/hello.txt`;
    ///   `/redirect-relative`: 301, `Location: /hello.txt`; `/found`: 302 to `/hello.txt`;
    ///   `/redirect-loop`: 302 to itself.
    /// - `/close`: 200 `closing\n` with `Connection: close` (keepalive_timeout 0), then closes.
    /// - `/ka3/<file>`: the static files with `keepalive_requests 3`: the 3rd request on a
    ///   connection gets `Connection: close` and the connection is closed.
    /// - `/slow?s=SECONDS`: waits (default 1 s; fractions like `0.1` work) then 200 `slow\n`
    ///   (chunked). Handy for timeout tests.
    /// - anything else: 404.
    ///
    /// Connection settings: keepalive_timeout 30s, keepalive_requests 1000.
    pub fn start() -> Nginx {
        Nginx::start_with("")
    }

    /// Like [`start`](Nginx::start), with extra nginx directives (e.g. more `location`
    /// blocks) inserted into both `server` blocks. `{www}` in `extra` is replaced by the
    /// document root path.
    pub fn start_with(extra: &str) -> Nginx {
        assert!(
            Path::new(NGINX_BIN).exists(),
            "{NGINX_BIN} missing: run scripts/install-test-deps"
        );
        assert!(
            Path::new(ECHO_MODULE).exists(),
            "{ECHO_MODULE} missing: run scripts/install-test-deps"
        );
        start_retrying("nginx", || Nginx::try_start(extra))
    }

    fn try_start(extra: &str) -> Result<Nginx, String> {
        let dir = TestDir::new("nginx");
        let ca = TestCa::generate(dir.path());
        let www = dir.join("www");
        write_docroot(&dir);
        for t in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"] {
            std::fs::create_dir_all(dir.join("tmp").join(t)).unwrap();
        }
        let extra = extra.replace("{www}", &www.display().to_string());
        let http_port = free_port();
        let mut https_port = free_port();
        while https_port == http_port {
            https_port = free_port();
        }
        let conf = config(dir.path(), &www, &ca, http_port, https_port, &extra);
        let conf_path = dir.write("nginx.conf", conf);
        let child = spawn_logged(
            Command::new(NGINX_BIN)
                .arg("-p")
                .arg(dir.path())
                .arg("-c")
                .arg(&conf_path)
                .arg("-e")
                .arg(dir.join("error.log")),
            &dir,
        )
        .map_err(|e| format!("spawn {NGINX_BIN}: {e}"))?;
        let mut n = Nginx {
            child,
            http_port,
            https_port,
            ca,
            dir,
        };
        n.wait_ready(Duration::from_secs(5))?;
        Ok(n)
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let (h, s) = (self.http_addr(), self.https_addr());
        let logs = ["error.log", "stderr.log"];
        wait_ready(&mut self.child, "nginx", timeout, &self.dir, &logs, || {
            accepts(h) && accepts(s)
        })
    }

    /// `127.0.0.1:<http port>`.
    pub fn http_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.http_port))
    }

    /// `127.0.0.1:<https port>`.
    pub fn https_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.https_port))
    }

    /// The plain HTTP port.
    pub fn http_port(&self) -> u16 {
        self.http_port
    }

    /// The HTTPS port.
    pub fn https_port(&self) -> u16 {
        self.https_port
    }

    /// `http://127.0.0.1:<port><path>` (`path` starts with `/`).
    pub fn http_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http_port)
    }

    /// `https://localhost:<port><path>`: the certificate is valid for `localhost`.
    pub fn https_url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.https_port)
    }

    /// `https://127.0.0.1:<port><path>`: the certificate also has the IP SAN `127.0.0.1`.
    pub fn https_ip_url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.https_port)
    }

    /// The Unix socket the plain HTTP server also listens on (same locations).
    pub fn unix_socket_path(&self) -> PathBuf {
        self.dir.join("http.sock")
    }

    /// The Unix socket the HTTPS server also listens on (TLS; the certificate is for
    /// `localhost`).
    pub fn unix_tls_socket_path(&self) -> PathBuf {
        self.dir.join("https.sock")
    }

    /// The CA that signed the HTTPS certificate.
    pub fn ca(&self) -> &TestCa {
        &self.ca
    }

    /// The CA certificate PEM file (trust this to verify the HTTPS port).
    pub fn ca_pem_path(&self) -> &Path {
        self.ca.ca_cert_path()
    }

    /// The instance's directory (config, logs, `www/` document root).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The document root.
    pub fn docroot(&self) -> PathBuf {
        self.dir.join("www")
    }

    /// Contents of the error log.
    pub fn error_log(&self) -> String {
        read_lossy(&self.dir.join("error.log"))
    }

    /// Parsed access log, both ports, in the order nginx finished the requests.
    ///
    /// nginx writes a line when it finalizes a request, which can be a moment after the
    /// client has read the response: use [`wait_access_log`](Nginx::wait_access_log) when
    /// counting right after a request. When nginx closes a connection with a *lingering
    /// close* (a `Connection: close` request that was followed by pipelined bytes, or whose
    /// body it discarded), the line is written only once the client closes its socket (or
    /// after lingering_timeout, 5 s): drop the client connection before waiting for it.
    pub fn access_log_entries(&self) -> Vec<LogEntry> {
        read_lossy(&self.dir.join("access.log"))
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| parse_log_line(l).unwrap_or_else(|| panic!("bad access log line {l:?}")))
            .collect()
    }

    /// Waits (up to 5 s) until the access log has at least `n` entries, and returns them all.
    /// Panics on timeout.
    pub fn wait_access_log(&self, n: usize) -> Vec<LogEntry> {
        poll_until(Duration::from_secs(5), || {
            let e = self.access_log_entries();
            (e.len() >= n).then_some(e)
        })
        .unwrap_or_else(|| {
            panic!(
                "access log has {:?}, wanted {n} entries",
                self.access_log_entries()
            )
        })
    }

    /// Number of distinct server-side connections in the access log.
    pub fn distinct_connections(&self) -> usize {
        let mut c: Vec<u64> = self
            .access_log_entries()
            .iter()
            .map(|e| e.connection)
            .collect();
        c.sort_unstable();
        c.dedup();
        c.len()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        stop_child(&mut self.child, "TERM", Duration::from_secs(3));
    }
}

fn parse_log_line(l: &str) -> Option<LogEntry> {
    let mut it = l.splitn(7, ' ');
    let connection = it.next()?.parse().ok()?;
    let connection_requests = it.next()?.parse().ok()?;
    let status = it.next()?.parse().ok()?;
    let scheme = it.next()?.to_string();
    let body_bytes_sent = it.next()?.parse().ok()?;
    let request_length = it.next()?.parse().ok()?;
    let request = it.next()?.strip_prefix('"')?.strip_suffix('"')?.to_string();
    Some(LogEntry {
        connection,
        connection_requests,
        status,
        scheme,
        body_bytes_sent,
        request_length,
        request,
    })
}

fn write_docroot(dir: &TestDir) {
    dir.write("www/hello.txt", "hello world\n");
    dir.write("www/empty.txt", "");
    dir.write("www/big.bin", big_body());
}

const LOCATIONS: &str = r#"
        location / {
        }
        location /chunked/ {
            alias {www}/;
            # Any active sub_filter drops Content-Length, so HTTP/1.1 responses are chunked.
            sub_filter_types *;
            sub_filter 'weft-this-never-matches' 'x';
            sub_filter_once off;
        }
        location = /echo-post {
            echo_read_request_body;
            echo_request_body;
        }
        location = /post-ok {
            default_type text/plain;
            return 200 "ok\n";
        }
        location = /no-content {
            return 204;
        }
        location = /redirect {
            return 301 /hello.txt;
        }
        location = /redirect-relative {
            absolute_redirect off;
            return 301 /hello.txt;
        }
        location = /found {
            return 302 /hello.txt;
        }
        location = /redirect-loop {
            return 302 /redirect-loop;
        }
        location = /close {
            keepalive_timeout 0;
            default_type text/plain;
            return 200 "closing\n";
        }
        location /ka3/ {
            alias {www}/;
            keepalive_requests 3;
        }
        location = /slow {
            default_type text/plain;
            set $delay $arg_s;
            if ($delay = "") {
                set $delay 1;
            }
            echo_sleep $delay;
            echo "slow";
        }
"#;

fn config(dir: &Path, www: &Path, ca: &TestCa, http: u16, https: u16, extra: &str) -> String {
    let d = dir.display();
    let www_s = www.display().to_string();
    let locations = LOCATIONS.replace("{www}", &www_s);
    format!(
        r#"# generated by tests/support/servers/nginx.rs
load_module {ECHO_MODULE};
daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
# Room for the load tests' 10,000 concurrent connections (the soak script raises the limit).
worker_rlimit_nofile 20000;

events {{
    worker_connections 12000;
}}

http {{
    types {{
        text/plain txt;
        text/html html;
        application/json json;
        application/octet-stream bin;
    }}
    default_type application/octet-stream;

    log_format weft '$connection $connection_requests $status $scheme $body_bytes_sent $request_length "$request"';
    access_log {d}/access.log weft;

    client_body_temp_path {d}/tmp/client_body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;

    sendfile on;
    tcp_nodelay on;
    keepalive_timeout 30s;
    keepalive_requests 1000;
    client_max_body_size 10m;
    client_body_buffer_size 1m;
    server_tokens off;

    server {{
        listen 127.0.0.1:{http};
        listen unix:{d}/http.sock;
        server_name localhost;
        root {www_s};
{locations}
{extra}
    }}

    server {{
        listen 127.0.0.1:{https} ssl;
        listen unix:{d}/https.sock ssl;
        server_name localhost;
        root {www_s};
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
{locations}
{extra}
    }}
}}
"#,
        cert = ca.server_cert_path().display(),
        key = ca.server_key_path().display(),
    )
}
