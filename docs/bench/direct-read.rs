//! Is a read straight into the result cheaper than a read into a small buffer and a copy?
//!
//! A standalone measurement (std only, not part of any cargo target) behind the section
//! "Collected bodies: reading straight into the result" of `docs/performance.md`. It fetches
//! `/100m` from the bench nginx (`scripts/bench-compare --serve`) N times on one keep-alive
//! connection and handles each body one of three ways:
//!
//! - `drop`: read into a 256 KiB buffer and forget the bytes (what the Agent's benchmark does);
//! - `copy`: read into that buffer, then copy into one reused `Vec` (what `fetch_into` does);
//! - `direct`: read straight into the reused `Vec` (the kernel writes the result).
//!
//! ```sh
//! rustc -O -o /tmp/direct-read docs/bench/direct-read.rs
//! taskset -c 1 perf stat -e user_time,system_time /tmp/direct-read 127.0.0.1:PORT copy 30 262144
//! ```

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 5 {
        eprintln!("usage: direct-read HOST:PORT drop|copy|direct BODIES WINDOW");
        std::process::exit(2);
    }
    let mode = args[2].as_str();
    let bodies: usize = args[3].parse().expect("BODIES");
    let window: usize = args[4].parse().expect("WINDOW");
    let mut sock = TcpStream::connect(&args[1]).expect("connect");
    let mut buf = vec![0u8; window.max(16 * 1024)];
    let mut body: Vec<u8> = Vec::new();
    let start = Instant::now();
    let mut total = 0u64;
    for _ in 0..bodies {
        sock.write_all(b"GET /100m HTTP/1.1\r\nHost: bench\r\n\r\n")
            .expect("send");
        let (head_end, len, have) = read_head(&mut sock, &mut buf);
        let first = &buf[head_end..have];
        match mode {
            "drop" => {
                let mut left = len - first.len();
                while left > 0 {
                    left -= read_some(&mut sock, &mut buf[..left.min(window)]);
                }
            }
            "copy" => {
                body.clear();
                body.reserve_exact(len);
                body.extend_from_slice(first);
                while body.len() < len {
                    let n = read_some(&mut sock, &mut buf[..(len - body.len()).min(window)]);
                    body.extend_from_slice(&buf[..n]);
                }
            }
            "direct" => {
                // Zeroed on the first body only (the memory is reused, as with `fetch_into`).
                body.resize(len, 0);
                body[..first.len()].copy_from_slice(first);
                let mut filled = first.len();
                while filled < len {
                    let end = filled + (len - filled).min(window);
                    filled += read_some(&mut sock, &mut body[filled..end]);
                }
            }
            _ => panic!("mode: drop, copy or direct"),
        }
        total += len as u64;
    }
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "{mode}: {bodies} bodies, {:.0} MiB/s",
        total as f64 / secs / 1048576.0
    );
}

/// Reads until the end of the head; gives its end, the Content-Length and the bytes held.
fn read_head(sock: &mut TcpStream, buf: &mut [u8]) -> (usize, usize, usize) {
    let mut have = 0;
    loop {
        have += read_some(sock, &mut buf[have..16 * 1024]);
        if let Some(p) = buf[..have].windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..p]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .expect("a Content-Length")
                .trim()
                .parse()
                .expect("a number");
            return (p + 4, len, have);
        }
    }
}

fn read_some(sock: &mut TcpStream, buf: &mut [u8]) -> usize {
    let n = sock.read(buf).expect("recv");
    assert!(n > 0, "the server closed mid-body");
    n
}
