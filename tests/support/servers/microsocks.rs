//! microsocks (Debian's package), a real SOCKS5 proxy with optional username/password
//! authentication, on 127.0.0.1.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use super::util::{TestDir, accepts, free_port, read_lossy, spawn_logged, stop_child, wait_ready};

const MICROSOCKS_BIN: &str = "/usr/bin/microsocks";

/// A running microsocks, stopped on drop.
pub struct Microsocks {
    child: Child,
    port: u16,
    dir: TestDir,
}

impl Microsocks {
    /// A proxy on 127.0.0.1, optionally demanding credentials `(user, password)` (RFC 1929).
    pub fn start(auth: Option<(&str, &str)>) -> Microsocks {
        assert!(
            Path::new(MICROSOCKS_BIN).exists(),
            "{MICROSOCKS_BIN} missing: run scripts/install-test-deps"
        );
        let dir = TestDir::new("microsocks");
        let port = free_port();
        let mut cmd = Command::new(MICROSOCKS_BIN);
        cmd.args(["-i", "127.0.0.1", "-p", &port.to_string()]);
        if let Some((user, pass)) = auth {
            cmd.args(["-u", user, "-P", pass]);
        }
        let child = spawn_logged(&mut cmd, &dir).expect("spawn microsocks");
        let mut proxy = Microsocks { child, port, dir };
        let addr = proxy.addr();
        let dir = &proxy.dir;
        wait_ready(
            &mut proxy.child,
            "microsocks",
            Duration::from_secs(5),
            dir,
            &["stderr.log"],
            || accepts(addr),
        )
        .unwrap_or_else(|e| panic!("microsocks did not start: {e}"));
        proxy
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `<scheme>://127.0.0.1:<port>` (`socks5` or `socks5h`).
    pub fn url(&self, scheme: &str) -> String {
        format!("{scheme}://{}", self.addr())
    }

    /// What microsocks wrote (standard output, then standard error).
    pub fn log(&self) -> String {
        read_lossy(&self.dir.join("stdout.log")) + &read_lossy(&self.dir.join("stderr.log"))
    }
}

impl Drop for Microsocks {
    fn drop(&mut self) {
        stop_child(&mut self.child, "TERM", Duration::from_secs(3));
    }
}
