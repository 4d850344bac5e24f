//! `websocket`: a WebSocket client (RFC 6455) on weft, Tornado's `websocket_connect` shape.
//! The opening handshake is an HTTP request with `Upgrade: websocket`; its `101 Switching
//! Protocols` hands the connection to a [`Protocol`] ([`Response::upgrade`]) that speaks
//! WebSocket frames, written here by hand.
//!
//! ```sh
//! cargo run --example websocket -- ws://127.0.0.1:8765/ hello world
//! cargo run --example websocket -- --max-frame 1024 wss://localhost:8765/chat
//! ```
//!
//! It sends each MESSAGE as a text frame, then two binary messages (200 bytes: a 16-bit
//! length; 70,000 bytes: a 64-bit length), each after the echo of the one before, checks
//! every echo, pings, and closes with status 1000. It prints one line per step:
//!
//! ```text
//! handshake: 101 Switching Protocols, accept ok
//! echo text: hello
//! echo binary: 200 bytes ok
//! pong: weft
//! close: 1000
//! disconnected
//! ```
//!
//! and `Error: ...` (exit status 1) when the server refuses the upgrade, answers with a
//! wrong `Sec-WebSocket-Accept`, breaks the framing rules, echoes something else, or sends
//! a frame larger than `--max-frame` (default 1 MiB; the client then closes with 1009 and
//! skips that frame, whose length it knows, to read the server's close).
//!
//! The framing: client frames are masked with a fresh key each, server frames must not
//! be; lengths use the shortest of the 7-, 16- and 64-bit forms; control frames are at most
//! 125 bytes and never fragmented; no extension is negotiated, so the RSV bits stay clear.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::hash::{BuildHasher, Hasher};
use std::io::Read;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use weft::client::{HttpClient, Response};
use weft::reactor::{ConnId, Ctx, Disconnect, Protocol, Reactor};

/// RFC 6455 section 1.3: appended to the key before hashing.
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

/// How the run ended, shared between the callbacks and `main`.
type Outcome = Rc<RefCell<Option<Result<(), String>>>>;

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut max_frame = 1 << 20;
    if args.first().map(String::as_str) == Some("--max-frame") {
        max_frame = match args.get(1).and_then(|n| n.parse().ok()) {
            Some(n) => n,
            None => return usage(),
        };
        args.drain(..2);
    }
    let Some(url) = args.first().cloned() else {
        return usage();
    };
    let Some(http_url) = http_url(&url) else {
        return usage();
    };
    let mut messages: VecDeque<(u8, Vec<u8>)> = args[1..]
        .iter()
        .map(|m| (TEXT, m.as_bytes().to_vec()))
        .collect();
    for len in [200, 70_000] {
        messages.push_back((BINARY, (0..len).map(|i| (i % 251) as u8).collect()));
    }

    let mut reactor = Reactor::new().expect("cannot create the reactor");
    let client = HttpClient::builder()
        .timeout(Duration::from_secs(10))
        .build(reactor.ctx());
    let outcome: Outcome = Rc::default();
    let key = STANDARD.encode(random_bytes::<16>());
    let expected = STANDARD.encode(sha1(format!("{key}{GUID}").as_bytes()));
    let out = outcome.clone();
    client
        .get(&http_url)
        .upgrade("websocket")
        .header("Sec-WebSocket-Key", &key)
        .header("Sec-WebSocket-Version", "13")
        .send(reactor.ctx(), move |ctx, result| {
            let checked = result
                .map_err(|e| e.to_string())
                .and_then(|r| check_handshake(&r, &expected).map(|()| r));
            match checked {
                Ok(response) => {
                    println!("handshake: 101 {}, accept ok", response.phrase);
                    let ws = WebSocket::new(messages, max_frame, out.clone());
                    if let Err(e) = response.upgrade(ctx, ws) {
                        *out.borrow_mut() = Some(Err(e.to_string()));
                        ctx.stop();
                    }
                }
                Err(e) => {
                    *out.borrow_mut() = Some(Err(e));
                    ctx.stop();
                }
            }
        });
    // A server that never answers or never closes cannot hang the program.
    let out = outcome.clone();
    reactor
        .ctx()
        .call_later(Duration::from_secs(20), move |ctx| {
            out.borrow_mut()
                .get_or_insert(Err("timed out after 20 s".to_string()));
            ctx.stop();
        });
    reactor.run().expect("reactor failed");
    match outcome.borrow_mut().take() {
        Some(Ok(())) => ExitCode::SUCCESS,
        Some(Err(e)) => {
            println!("Error: {e}");
            ExitCode::FAILURE
        }
        None => {
            println!("Error: the connection ended without a close handshake");
            ExitCode::FAILURE
        }
    }
}

fn usage() -> ExitCode {
    eprintln!("usage: websocket [--max-frame BYTES] ws://HOST:PORT/PATH [MESSAGE...]");
    ExitCode::from(2)
}

/// `ws://` and `wss://` are `http://` and `https://` for the handshake.
fn http_url(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = match scheme {
        "ws" | "http" => "http",
        "wss" | "https" => "https",
        _ => return None,
    };
    Some(format!("{scheme}://{rest}"))
}

/// RFC 6455 section 4.2.2: the server switched to `websocket` and proved it read our key.
fn check_handshake(response: &Response, expected: &str) -> Result<(), String> {
    if response.code != 101 {
        return Err(format!(
            "the server answered {} {}, not 101: no WebSocket here",
            response.code, response.phrase
        ));
    }
    let header = |name| response.headers.get_str(name).unwrap_or("");
    if !header("upgrade").eq_ignore_ascii_case("websocket") {
        return Err(format!("101 to {:?}, not websocket", header("upgrade")));
    }
    if header("sec-websocket-accept") != expected {
        return Err(format!(
            "bad Sec-WebSocket-Accept {:?} (expected {expected:?})",
            header("sec-websocket-accept")
        ));
    }
    Ok(())
}

/// The client side of one WebSocket connection: sends each message after the echo of the
/// one before, then a ping, then the close handshake.
struct WebSocket {
    to_send: VecDeque<(u8, Vec<u8>)>,
    /// The message whose echo is awaited.
    awaiting: Option<(u8, Vec<u8>)>,
    /// Bytes received and not yet a whole frame.
    buf: Vec<u8>,
    /// Bytes still to come of a frame refused for its size, dropped as they arrive.
    skip: u64,
    /// A fragmented message being put together: its opcode and bytes so far.
    partial: Option<(u8, Vec<u8>)>,
    max_frame: usize,
    pinged: bool,
    close_sent: bool,
    outcome: Outcome,
}

const PING_PAYLOAD: &[u8] = b"weft";

impl WebSocket {
    fn new(to_send: VecDeque<(u8, Vec<u8>)>, max_frame: usize, outcome: Outcome) -> Self {
        WebSocket {
            to_send,
            awaiting: None,
            buf: Vec::new(),
            skip: 0,
            partial: None,
            max_frame,
            pinged: false,
            close_sent: false,
            outcome,
        }
    }

    /// The next step: a message, the ping, or the close.
    fn next(&mut self, ctx: &mut Ctx, conn: ConnId) {
        if let Some((opcode, payload)) = self.to_send.pop_front() {
            ctx.write(conn, &frame(opcode, &payload));
            self.awaiting = Some((opcode, payload));
        } else if !self.pinged {
            self.pinged = true;
            ctx.write(conn, &frame(PING, PING_PAYLOAD));
        } else {
            self.close(ctx, conn, 1000, None);
        }
    }

    /// Starts the close handshake; `error` also fails the run. The server answers with its
    /// own close frame and then ends the TCP connection (RFC 6455 section 7.1.1).
    fn close(&mut self, ctx: &mut Ctx, conn: ConnId, code: u16, error: Option<String>) {
        if let Some(e) = error {
            self.outcome.borrow_mut().get_or_insert(Err(e));
        }
        if !self.close_sent {
            self.close_sent = true;
            ctx.write(conn, &frame(CLOSE, &code.to_be_bytes()));
        }
        // Do not wait forever for the server's side of it.
        ctx.call_later(Duration::from_secs(2), move |ctx| ctx.lose_connection(conn));
    }

    /// Handles one whole message or control frame.
    fn on_message(&mut self, ctx: &mut Ctx, conn: ConnId, opcode: u8, payload: Vec<u8>) {
        match opcode {
            PING => ctx.write(conn, &frame(PONG, &payload)),
            PONG if self.pinged && payload == PING_PAYLOAD => {
                println!("pong: {}", String::from_utf8_lossy(&payload));
                self.next(ctx, conn);
            }
            PONG => {} // Unsolicited pongs are allowed and ignored.
            CLOSE => {
                let code = payload
                    .get(..2)
                    .map_or(1005, |c| u16::from_be_bytes([c[0], c[1]]));
                println!("close: {code}");
                if self.close_sent {
                    self.outcome.borrow_mut().get_or_insert(Ok(()));
                } else {
                    let e = format!("the server closed the WebSocket with {code}");
                    self.close(ctx, conn, code, Some(e));
                }
            }
            _ => match self.awaiting.take() {
                Some((sent_op, sent)) if sent_op == opcode && sent == payload => {
                    if opcode == TEXT {
                        println!("echo text: {}", String::from_utf8_lossy(&payload));
                    } else {
                        println!("echo binary: {} bytes ok", payload.len());
                    }
                    self.next(ctx, conn);
                }
                _ => {
                    let e = format!("unexpected message ({} bytes)", payload.len());
                    self.close(ctx, conn, 1002, Some(e));
                }
            },
        }
    }

    /// Takes the frames out of `buf`, putting fragmented messages together. On a refusal the
    /// frames before it are used and the refused one is left at the start of `buf`.
    fn on_frames(&mut self, ctx: &mut Ctx, conn: ConnId) -> Result<(), Refusal> {
        let mut used = 0;
        let result = loop {
            let frame = match parse_frame(&self.buf[used..], self.max_frame) {
                Ok(Some(frame)) => frame,
                Ok(None) => break Ok(()),
                Err(refusal) => break Err(refusal),
            };
            used += frame.len;
            let (opcode, payload) = match (frame.opcode, self.partial.take()) {
                (0x0, None) => break Err(Refusal::new(1002, "continuation without a message")),
                (0x0, Some((op, mut so_far))) => {
                    so_far.extend_from_slice(&frame.payload);
                    (op, so_far)
                }
                (op, Some(_)) if op < CLOSE => {
                    break Err(Refusal::new(1002, "new message inside a fragmented one"));
                }
                (op, partial) => {
                    self.partial = partial;
                    (op, frame.payload)
                }
            };
            if payload.len() > self.max_frame {
                break Err(Refusal::new(
                    1009,
                    format!("message over {} bytes", self.max_frame),
                ));
            }
            if !frame.fin {
                self.partial = Some((opcode, payload));
                continue;
            }
            if opcode == TEXT && std::str::from_utf8(&payload).is_err() {
                break Err(Refusal::new(1007, "text message not UTF-8"));
            }
            self.on_message(ctx, conn, opcode, payload);
        };
        self.buf.drain(..used);
        result
    }
}

impl Protocol for WebSocket {
    fn connection_made(&mut self, ctx: &mut Ctx, conn: ConnId) {
        self.next(ctx, conn);
    }

    fn data_received(&mut self, ctx: &mut Ctx, conn: ConnId, data: &[u8]) {
        let skipped = data
            .len()
            .min(usize::try_from(self.skip).unwrap_or(usize::MAX));
        self.skip -= skipped as u64;
        self.buf.extend_from_slice(&data[skipped..]);
        while let Err(refusal) = self.on_frames(ctx, conn) {
            self.close(ctx, conn, refusal.code, Some(refusal.reason));
            let Some(frame_len) = refusal.skip else {
                // The framing is lost: nothing after this can be read as frames.
                self.buf.clear();
                return;
            };
            // A frame refused for its size has a known length: it is skipped, so the
            // frames after it (the server's close) are still read.
            let dropped = self
                .buf
                .len()
                .min(usize::try_from(frame_len).unwrap_or(usize::MAX));
            self.buf.drain(..dropped);
            self.skip = frame_len - dropped as u64;
        }
    }

    fn connection_lost(&mut self, ctx: &mut Ctx, _conn: ConnId, reason: Disconnect) {
        match reason {
            Disconnect::PeerClosed | Disconnect::ClosedLocally => println!("disconnected"),
            other => println!("disconnected: {other:?}"),
        }
        ctx.stop();
    }
}

/// Why a frame was refused: the close code, the reason, and for a frame too large (whose
/// framing is sound) its whole length from its first byte, so that it can be skipped.
struct Refusal {
    code: u16,
    reason: String,
    skip: Option<u64>,
}

impl Refusal {
    fn new(code: u16, reason: impl Into<String>) -> Self {
        Refusal {
            code,
            reason: reason.into(),
            skip: None,
        }
    }
}

/// One frame from the server.
struct Frame {
    fin: bool,
    opcode: u8,
    payload: Vec<u8>,
    /// Bytes it took, header included.
    len: usize,
}

/// Parses the frame at the start of `buf`; `None` until all of it is there. A payload over
/// `max` is refused from its header, before any of it is buffered.
fn parse_frame(buf: &[u8], max: usize) -> Result<Option<Frame>, Refusal> {
    let [b0, b1, ..] = *buf else {
        return Ok(None);
    };
    let (fin, opcode) = (b0 & 0x80 != 0, b0 & 0x0F);
    if b0 & 0x70 != 0 {
        return Err(Refusal::new(
            1002,
            "reserved bits set (no extension was negotiated)",
        ));
    }
    if !matches!(opcode, 0x0..=0x2 | 0x8..=0xA) {
        return Err(Refusal::new(1002, format!("unknown opcode {opcode:#x}")));
    }
    if b1 & 0x80 != 0 {
        return Err(Refusal::new(1002, "the server masked a frame"));
    }
    let (header, len) = match b1 & 0x7F {
        126 => {
            let Some(n) = buf.get(2..4) else {
                return Ok(None);
            };
            let n = u64::from(u16::from_be_bytes([n[0], n[1]]));
            if n < 126 {
                return Err(Refusal::new(1002, "length not in its shortest form"));
            }
            (4, n)
        }
        127 => {
            let Some(n) = buf.get(2..10) else {
                return Ok(None);
            };
            let n = u64::from_be_bytes(n.try_into().expect("8 bytes"));
            if n < 1 << 16 || n >> 63 != 0 {
                return Err(Refusal::new(1002, "bad 64-bit length"));
            }
            (10, n)
        }
        n => (2, u64::from(n)),
    };
    if opcode >= CLOSE && (len > 125 || !fin) {
        return Err(Refusal::new(1002, "control frame too long or fragmented"));
    }
    if len > max as u64 {
        return Err(Refusal {
            code: 1009,
            reason: format!("frame of {len} bytes exceeds the {max}-byte limit"),
            skip: Some(header as u64 + len),
        });
    }
    let end = header + len as usize;
    let Some(payload) = buf.get(header..end) else {
        return Ok(None);
    };
    Ok(Some(Frame {
        fin,
        opcode,
        payload: payload.to_vec(),
        len: end,
    }))
}

/// A whole client frame: FIN set, masked with a fresh key, the length in its shortest form.
fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push(0x80 | opcode);
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if let Ok(n) = u16::try_from(len) {
        out.push(0x80 | 126);
        out.extend_from_slice(&n.to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    let mask = random_bytes::<4>();
    out.extend_from_slice(&mask);
    out.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
    out
}

/// Unpredictable bytes for keys and masks, from the kernel (or, failing that, from the
/// randomly seeded hasher of the standard library).
fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    let from_kernel = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut out));
    if from_kernel.is_err() {
        for (i, chunk) in out.chunks_mut(8).enumerate() {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_usize(i);
            chunk.copy_from_slice(&h.finish().to_le_bytes()[..chunk.len()]);
        }
    }
    out
}

/// SHA-1 (FIPS 180-4), for `Sec-WebSocket-Accept` only (the handshake's use of it is not a
/// security property).
fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for block in msg.chunks_exact(64) {
        let mut w = [0u32; 80];
        for (word, bytes) in w.iter_mut().zip(block.chunks_exact(4)) {
            *word = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, word) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*word);
            (e, d, c, b, a) = (d, c, b.rotate_left(30), a, t);
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 20];
    for (chunk, word) in out.chunks_exact_mut(4).zip(h) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6455 section 1.3's worked example.
    #[test]
    fn accept_matches_the_rfc_example() {
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let accept = STANDARD.encode(sha1(format!("{key}{GUID}").as_bytes()));
        assert_eq!(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }
}
