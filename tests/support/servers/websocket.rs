//! A WebSocket echo server: Debian's `python3-websockets` (10.4) run with Debian's interpreter
//! `/usr/bin/python3` on a free 127.0.0.1 port, echoing every message (pings are answered and
//! the close handshake is done by the library). Killed on drop.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use super::httpbin::PYTHON;
use super::util::{
    TestDir, accepts, free_port, spawn_logged, start_retrying, stop_child, wait_ready,
};

/// The server: `websockets.serve` with messages up to 1 MiB.
const SCRIPT: &str = r#"
import asyncio, sys, websockets

async def echo(ws):
    async for message in ws:
        await ws.send(message)

async def main(port):
    async with websockets.serve(echo, "127.0.0.1", port, max_size=1 << 20):
        print("listening", flush=True)
        await asyncio.Future()

asyncio.run(main(int(sys.argv[1])))
"#;

/// A running WebSocket echo server; killed on drop.
#[derive(Debug)]
pub struct WsEcho {
    child: Child,
    port: u16,
    _dir: TestDir,
}

impl WsEcho {
    /// Starts the server and waits (up to 10 s) until it accepts connections. Panics with
    /// its output if it does not come up.
    pub fn start() -> WsEcho {
        assert!(
            Path::new(PYTHON).exists(),
            "{PYTHON} missing: run scripts/install-test-deps"
        );
        start_retrying("websockets", WsEcho::try_start)
    }

    fn try_start() -> Result<WsEcho, String> {
        let dir = TestDir::new("websockets");
        let port = free_port();
        let mut child = spawn_logged(
            Command::new(PYTHON)
                .args(["-c", SCRIPT, &port.to_string()])
                // The pyenv python on PATH must not leak its environment into Debian's.
                .env_remove("PYTHONPATH")
                .env_remove("PYTHONHOME")
                .env_remove("PYTHONSTARTUP")
                .env("PYTHONDONTWRITEBYTECODE", "1"),
            &dir,
        )
        .map_err(|e| format!("spawn {PYTHON}: {e}"))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let logs = ["stdout.log", "stderr.log"];
        let timeout = Duration::from_secs(10);
        wait_ready(&mut child, "websockets", timeout, &dir, &logs, || {
            accepts(addr)
        })?;
        Ok(WsEcho {
            child,
            port,
            _dir: dir,
        })
    }

    /// `ws://127.0.0.1:<port>` + `path` (`path` starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("ws://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for WsEcho {
    fn drop(&mut self) {
        stop_child(&mut self.child, "INT", Duration::from_secs(3));
    }
}
