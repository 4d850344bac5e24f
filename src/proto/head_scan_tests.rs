//! Tests of the one-pass reader of plain response heads (`head_scan.rs`): whatever it
//! takes, httparse reads the same way.

use super::head_scan::{
    CHUNK, TOKEN, first_stop, is_name_common, is_value_stop, parse_head_prefix, parse_plain,
};
use super::response::parse_head_httparse;
use super::{Config, Headers};

/// Checks the plain reading of `bytes` against httparse's: when it reads a head, httparse
/// reads the same one. Returns whether the plain reading took it.
fn check(bytes: &[u8], config: &Config) -> bool {
    let taken = parse_plain(bytes, config, &mut Headers::new());
    if taken.is_none() {
        return false;
    }
    let mut spare = Headers::new();
    spare.append("Stale", b"field");
    let plain = parse_head_prefix(bytes, config, &mut spare);
    let full = parse_head_httparse(bytes, config, &mut Headers::new());
    let shown = String::from_utf8_lossy(bytes);
    assert_eq!(plain, full, "{shown:?}");
    let (plain, full) = (plain.unwrap().unwrap(), full.unwrap().unwrap());
    assert_eq!(plain.1.headers.byte_len(), full.1.headers.byte_len());
    assert_eq!(taken.map(|t| t.0), Some(plain.0));
    assert!(spare.is_empty());
    true
}

/// The chunk tests find the first byte of their class at every place in the chunk, and
/// the common name bytes are all tchars.
#[test]
fn chunk_tests_find_the_first_byte_of_their_class() {
    let is_name = |b: u8| b.is_ascii_alphanumeric() || b == b'-';
    for fill in [b'a', b'Z', b'0', b'-', b' ', b'~', 0x80, 0xff] {
        for at in 0..CHUNK {
            for b in 0..=255u8 {
                let mut chunk = [fill; CHUNK];
                chunk[at] = b;
                let first = |is: &dyn Fn(u8) -> bool| chunk.iter().position(|&b| !is(b));
                assert_eq!(
                    first_stop(&chunk, |b| !is_name_common(b)),
                    first(&is_name),
                    "{fill} {at} {b}"
                );
                assert_eq!(
                    first_stop(&chunk, is_value_stop),
                    first(&|b| b >= 0x20 && b != 0x7f),
                    "{fill} {at} {b}"
                );
            }
        }
    }
    for b in 0..=255u8 {
        assert!(!is_name(b) || TOKEN[b as usize], "{b}");
    }
}

const HEADS: &[&[u8]] = &[
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Mon, 07 Dec 2026 22:53:04 GMT\r\n\
      Content-Type: application/octet-stream\r\nContent-Length: 0\r\n\
      Last-Modified: Mon, 07 Dec 2026 22:50:25 GMT\r\nConnection: keep-alive\r\n\
      ETag: \"6b173831-0\"\r\nAccept-Ranges: bytes\r\n\r\nbody",
    b"HTTP/1.0 404 Not\tFound \r\nKeep-Alive: timeout=5, max=9\r\nX:\r\nY: \t \r\n\
      Transfer-Encoding: chunked\r\nZ: a\tb  c \t\r\n\r\n",
    b"HTTP/1.1 101 \r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n",
    b"HTTP/1.1 204 No Content\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nA:  v\r\nB: \r\nC:\tv\r\nD: v \r\nE: \tv\t\r\nF:v\r\nG: \r\n\r\n",
    b"HTTP/1.1 200 OK\r\nA: 01234567890123456789\r\nB:0123456\r\nc-L: 5\r\n\r\nhello",
    b"HTTP/1.1 200 OK\r\nX_Y.z~9!#$%&'*+^`|: v\xff\x80al\tue \r\nA-B-C-D-E-F-G-H-I: 01234\r\n\r\n",
];

#[test]
fn plain_heads_read_as_httparse_reads_them() {
    let config = Config::default();
    for head in HEADS {
        assert!(check(head, &config), "{:?}", String::from_utf8_lossy(head));
    }
    let many = [
        &b"HTTP/1.1 200 OK\r\n"[..],
        &b"X-Many: v\r\n".repeat(config.max_headers),
        b"\r\n",
    ]
    .concat();
    assert!(check(&many, &config));
    let too_many = [&many[..17], b"One: more\r\n", &many[17..]].concat();
    assert!(!check(&too_many, &config));
}

/// Every head above with each byte changed, removed or doubled, and cut at every length:
/// whatever the plain reading takes, httparse reads the same way.
#[test]
fn mutated_heads_read_as_httparse_reads_them_or_fall_back() {
    let config = Config::default();
    let mut taken = 0;
    let mut tried = 0;
    let mut all_bytes_at = |bytes: &[u8], at: usize| {
        for b in 0..=255u8 {
            let mut m = bytes.to_vec();
            m[at] = b;
            taken += usize::from(check(&m, &config));
            tried += 1;
        }
    };
    for head in HEADS {
        for at in 0..head.len() {
            all_bytes_at(head, at);
            let mut removed = head.to_vec();
            removed.remove(at);
            check(&removed, &config);
            let mut doubled = head.to_vec();
            doubled.insert(at, head[at]);
            check(&doubled, &config);
            check(&head[..at], &config);
        }
    }
    // Most single-byte changes to a name, value or reason keep the head plain.
    assert!(taken * 4 > tried, "{taken} of {tried}");
}
