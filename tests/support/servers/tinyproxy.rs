//! tinyproxy (Debian's package), a real HTTP proxy with CONNECT support, on 127.0.0.1.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use super::util::{TestDir, accepts, free_port, read_lossy, spawn_logged, stop_child, wait_ready};

const TINYPROXY_BIN: &str = "/usr/bin/tinyproxy";

/// A running tinyproxy, stopped on drop.
pub struct Tinyproxy {
    child: Child,
    port: u16,
    dir: TestDir,
}

impl Tinyproxy {
    /// A proxy open to 127.0.0.1, optionally demanding Basic credentials `(user, password)`.
    pub fn start(auth: Option<(&str, &str)>) -> Tinyproxy {
        assert!(
            Path::new(TINYPROXY_BIN).exists(),
            "{TINYPROXY_BIN} missing: run scripts/install-test-deps"
        );
        let dir = TestDir::new("tinyproxy");
        let port = free_port();
        let mut conf = format!(
            "Port {port}\nListen 127.0.0.1\nTimeout 30\nAllow 127.0.0.1\nMaxClients 50\n\
             LogFile \"{log}\"\nLogLevel Info\nPidFile \"{pid}\"\n",
            log = dir.join("tinyproxy.log").display(),
            pid = dir.join("tinyproxy.pid").display(),
        );
        if let Some((user, pass)) = auth {
            conf.push_str(&format!("BasicAuth {user} {pass}\n"));
        }
        let conf_path = dir.write("tinyproxy.conf", conf);
        let child = spawn_logged(
            Command::new(TINYPROXY_BIN)
                .arg("-d")
                .arg("-c")
                .arg(&conf_path),
            &dir,
        )
        .expect("spawn tinyproxy");
        let mut proxy = Tinyproxy { child, port, dir };
        let addr = proxy.addr();
        let logs = ["stderr.log", "tinyproxy.log"];
        let dir = &proxy.dir;
        wait_ready(
            &mut proxy.child,
            "tinyproxy",
            Duration::from_secs(5),
            dir,
            &logs,
            || accepts(addr),
        )
        .unwrap_or_else(|e| panic!("tinyproxy did not start: {e}"));
        proxy
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// The proxy's log.
    pub fn log(&self) -> String {
        read_lossy(&self.dir.join("tinyproxy.log"))
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        stop_child(&mut self.child, "TERM", Duration::from_secs(3));
    }
}
