//! httpbin (Debian's `python3-httpbin` 0.7) under gunicorn (Debian's `python3-gunicorn` 20.1,
//! `gthread` worker: HTTP/1.1 keep-alive, chunked responses for `/stream/N`), run with
//! Debian's interpreter `/usr/bin/python3` on a free 127.0.0.1 port. Killed on drop.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use super::util::{
    TestDir, free_port, raw_request, read_lossy, spawn_logged, start_retrying, stop_child,
    wait_ready,
};

/// Debian's interpreter (the `python3` on PATH may be another one without httpbin).
pub const PYTHON: &str = "/usr/bin/python3";

/// A running httpbin; killed on drop.
#[derive(Debug)]
pub struct Httpbin {
    child: Child,
    port: u16,
    dir: TestDir,
}

impl Httpbin {
    /// Starts httpbin and waits (up to 20 s) until `GET /status/200` answers 200. Panics with
    /// gunicorn's log if it does not come up.
    ///
    /// gunicorn: 1 `gthread` worker with 8 threads, keep-alive 30 s, graceful timeout 1 s.
    pub fn start() -> Httpbin {
        assert!(
            Path::new(PYTHON).exists(),
            "{PYTHON} missing: run scripts/install-test-deps"
        );
        start_retrying("httpbin", Httpbin::try_start)
    }

    fn try_start() -> Result<Httpbin, String> {
        let dir = TestDir::new("httpbin");
        let port = free_port();
        let child = spawn_logged(
            Command::new(PYTHON)
                .args(["-m", "gunicorn"])
                .args(["--bind", &format!("127.0.0.1:{port}")])
                .args([
                    "--workers",
                    "1",
                    "--worker-class",
                    "gthread",
                    "--threads",
                    "8",
                ])
                .args([
                    "--keep-alive",
                    "30",
                    "--graceful-timeout",
                    "1",
                    "--timeout",
                    "60",
                ])
                .arg("--error-logfile")
                .arg(dir.join("gunicorn.log"))
                .arg("--access-logfile")
                .arg(dir.join("access.log"))
                .arg("--chdir")
                .arg(dir.path())
                .arg("httpbin:app")
                // The pyenv python on PATH must not leak its environment into Debian's.
                .env_remove("PYTHONPATH")
                .env_remove("PYTHONHOME")
                .env_remove("PYTHONSTARTUP")
                .env("PYTHONDONTWRITEBYTECODE", "1"),
            &dir,
        )
        .map_err(|e| format!("spawn {PYTHON} -m gunicorn: {e}"))?;
        let mut h = Httpbin { child, port, dir };
        h.wait_ready(Duration::from_secs(20))?;
        Ok(h)
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let addr = self.addr();
        let req = format!("GET /status/200 HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        let logs = ["gunicorn.log", "stderr.log"];
        wait_ready(
            &mut self.child,
            "gunicorn",
            timeout,
            &self.dir,
            &logs,
            || raw_request(addr, req.as_bytes()).is_ok_and(|r| r.status == 200),
        )
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>` (no trailing slash).
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `base_url() + path` (`path` starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url())
    }

    /// gunicorn's error log (startup, worker and error messages).
    pub fn log(&self) -> String {
        read_lossy(&self.dir.join("gunicorn.log"))
    }

    /// gunicorn's access log.
    pub fn access_log(&self) -> String {
        read_lossy(&self.dir.join("access.log"))
    }
}

impl Drop for Httpbin {
    fn drop(&mut self) {
        // SIGINT is gunicorn's quick shutdown (SIGTERM waits for keep-alive clients).
        stop_child(&mut self.child, "INT", Duration::from_secs(3));
    }
}
