//! An ordered list of header fields stored in one byte buffer, reusable without reallocating.

use std::fmt;
use std::ops::Range;

/// Header fields in order, with repeated names kept as separate entries.
///
/// Names are compared case-insensitively. Storage is one byte buffer plus an index, so a cleared
/// `Headers` is reused without allocating. Two lists are equal when they hold the same fields in
/// the same order (however their storage is laid out).
///
/// ```
/// use weft::proto::Headers;
/// let mut h = Headers::new();
/// h.append("Accept", b"text/html");
/// h.append("X-Trace", b"1");
/// assert_eq!(h.get("accept"), Some(&b"text/html"[..]));
/// assert_eq!(h.iter().count(), 2);
/// ```
#[derive(Clone, Default)]
pub struct Headers {
    /// Names and values; a parsed head's fields keep the separators between them (see
    /// [`Headers::fill_from_block`]), so only the index says where fields are.
    buf: Vec<u8>,
    index: Vec<(Range<u32>, Range<u32>)>,
}

impl Headers {
    /// An empty list.
    pub fn new() -> Self {
        Headers::default()
    }

    /// Reserves room for `fields` more fields holding `bytes` more bytes of names and values.
    pub(crate) fn reserve(&mut self, fields: usize, bytes: usize) {
        self.index.reserve(fields);
        self.buf.reserve(bytes);
    }

    /// Replaces the fields by those of a parsed head, copying `block` (the bytes that hold them
    /// all, separators included) in one piece instead of field by field. `fields` gives each
    /// field's name and value as ranges of `block`. Returns false, leaving the list empty, when
    /// a range lies outside `block` or the block is too large to index.
    pub(crate) fn fill_from_block(
        &mut self,
        block: &[u8],
        fields: impl ExactSizeIterator<Item = (Range<usize>, Range<usize>)>,
    ) -> bool {
        self.clear();
        if u32::try_from(block.len()).is_err() {
            return false;
        }
        self.index.reserve(fields.len());
        let fits = |r: &Range<usize>| r.start <= r.end && r.end <= block.len();
        for (name, value) in fields {
            if !(fits(&name) && fits(&value)) {
                self.index.clear();
                return false;
            }
            self.index.push((
                name.start as u32..name.end as u32,
                value.start as u32..value.end as u32,
            ));
        }
        self.buf.extend_from_slice(block);
        true
    }

    /// Adds a parsed head's field by its place in the block given to
    /// [`Headers::set_parsed_block`] next (after [`Headers::clear`]), so that a parser writes
    /// the index as it finds the fields.
    #[inline]
    pub(crate) fn push_parsed(&mut self, name: Range<u32>, value: Range<u32>) {
        self.index.push((name, value));
    }

    /// Stores the block holding the fields pushed by [`Headers::push_parsed`], copied in one
    /// piece. Their ranges must lie inside it (the parser found them there).
    pub(crate) fn set_parsed_block(&mut self, block: &[u8]) {
        debug_assert!(self.index.iter().all(|(n, v)| {
            n.start <= n.end && v.start <= v.end && v.end as usize <= block.len()
        }));
        self.buf.clear();
        self.buf.extend_from_slice(block);
    }

    /// Appends a field. The caller (or the encoder) validates names and values.
    pub fn append(&mut self, name: &str, value: &[u8]) {
        let n0 = self.buf.len() as u32;
        self.buf.extend_from_slice(name.as_bytes());
        let n1 = self.buf.len() as u32;
        self.buf.extend_from_slice(value);
        let v1 = self.buf.len() as u32;
        self.index.push((n0..n1, n1..v1));
    }

    /// Removes every field whose name matches, case-insensitively.
    pub fn remove(&mut self, name: &str) {
        if !self.contains(name) {
            return;
        }
        let old = std::mem::take(self);
        for (n, v) in old.iter() {
            if !n.eq_ignore_ascii_case(name) {
                self.append(n, v);
            }
        }
    }

    /// Replaces every field of that name by one with this value.
    pub fn set(&mut self, name: &str, value: &[u8]) {
        self.remove(name);
        self.append(name, value);
    }

    /// The first value of the field, if present.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.get_all(name).next()
    }

    /// The first value of the field as UTF-8 text, if present and valid.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Every value of the field, in order.
    pub fn get_all<'a, 'n>(
        &'a self,
        name: &'n str,
    ) -> impl Iterator<Item = &'a [u8]> + use<'a, 'n> {
        let name = name.as_bytes();
        // Lengths first, from the index: most fields are passed over without being sliced.
        self.index
            .iter()
            .filter(move |(n, _)| {
                (n.end - n.start) as usize == name.len()
                    && self.buf[n.start as usize..n.end as usize].eq_ignore_ascii_case(name)
            })
            .map(|(_, v)| &self.buf[v.start as usize..v.end as usize])
    }

    /// Whether a field of that name is present.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Whether any value of the field, read as a comma-separated list, holds `token`
    /// (case-insensitively), as for `Connection: close`.
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.get_all(name).any(|v| {
            v.split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
        })
    }

    /// Fields in order, as (name, value).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> + '_ {
        self.index.iter().map(move |(n, v)| {
            let name = &self.buf[n.start as usize..n.end as usize];
            // Names are only ever appended from `&str`, so this cannot fail.
            let name = std::str::from_utf8(name).unwrap_or("");
            (name, &self.buf[v.start as usize..v.end as usize])
        })
    }

    /// Fields in order, names as bytes: for lookups, which need no UTF-8 check of every name
    /// on the way (they are on the path of every request and response).
    pub(crate) fn fields(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.index.iter().map(move |(n, v)| {
            (
                &self.buf[n.start as usize..n.end as usize],
                &self.buf[v.start as usize..v.end as usize],
            )
        })
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Removes every field, keeping the storage for reuse.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.index.clear();
    }

    /// Bytes of name and value storage allocated (in use or not).
    pub(crate) fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Bytes of names and values held.
    pub fn byte_len(&self) -> usize {
        self.index
            .iter()
            .map(|(n, v)| (n.end - n.start + v.end - v.start) as usize)
            .sum()
    }
}

impl PartialEq for Headers {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.fields().eq(other.fields())
    }
}

impl Eq for Headers {}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(
                self.iter()
                    .map(|(n, v)| (n, String::from_utf8_lossy(v).into_owned())),
            )
            .finish()
    }
}

impl<'a> FromIterator<(&'a str, &'a [u8])> for Headers {
    fn from_iter<T: IntoIterator<Item = (&'a str, &'a [u8])>>(iter: T) -> Self {
        let mut h = Headers::new();
        for (n, v) in iter {
            h.append(n, v);
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_with_separators_equals_the_same_fields_appended() {
        let block = b"Content-Length: 5\r\nX-A:b\r\nx-a: \xff";
        let mut parsed = Headers::new();
        let fields = [(0..14, 16..17), (19..22, 23..24), (26..29, 31..32)];
        assert!(parsed.fill_from_block(block, fields.into_iter()));
        let appended: Headers = [
            ("Content-Length", &b"5"[..]),
            ("X-A", b"b"),
            ("x-a", b"\xff"),
        ]
        .into_iter()
        .collect();
        assert_eq!(parsed, appended);
        assert_eq!(parsed.byte_len(), appended.byte_len());
        assert_eq!(parsed.byte_len(), 14 + 1 + 3 + 1 + 3 + 1);
        assert_eq!(parsed.get("content-length"), Some(&b"5"[..]));
        assert_eq!(parsed.get_all("X-a").collect::<Vec<_>>(), [b"b", b"\xff"]);
        assert_eq!(parsed.get("x-b"), None);
        let mut fewer = appended.clone();
        fewer.remove("x-a");
        assert_ne!(parsed, fewer);
    }

    #[test]
    fn ranges_outside_the_block_are_refused() {
        let mut h = Headers::new();
        h.append("Old", b"1");
        for bad in [
            (0..2, 3..9),
            (0..9, 2..3),
            (Range { start: 3, end: 1 }, 4..5),
            (
                Range {
                    start: usize::MAX,
                    end: 2,
                },
                3..4,
            ),
        ] {
            assert!(!h.fill_from_block(b"A: 12", std::iter::once(bad.clone())));
            assert!(h.is_empty(), "{bad:?}");
            assert_eq!(h.byte_len(), 0);
        }
        assert!(h.fill_from_block(b"", std::iter::empty()));
        assert!(h.is_empty());
        // One bad range among good ones, first, in the middle or last, refuses the whole list.
        let good = [(0..1, 3..4), (6..7, 9..10)];
        for at in 0..=good.len() {
            let mut fields = good.to_vec();
            fields.insert(at, (0..1, 3..11));
            h.append("Old", b"1");
            assert!(
                !h.fill_from_block(b"A: 1\r\nB: 2", fields.into_iter()),
                "{at}"
            );
            assert!(h.is_empty() && h.get("a").is_none(), "{at}");
        }
        assert!(h.fill_from_block(b"A: 1\r\nB: 2", good.into_iter()));
        assert_eq!(
            h.iter().collect::<Vec<_>>(),
            [("A", &b"1"[..]), ("B", b"2")]
        );
    }

    #[test]
    fn lookups_match_names_of_the_same_length_only() {
        let h: Headers = [("ab", &b"1"[..]), ("AB", b"2"), ("abc", b"3"), ("a", b"4")]
            .into_iter()
            .collect();
        assert_eq!(h.get_all("Ab").collect::<Vec<_>>(), [b"1", b"2"]);
        assert_eq!(h.get("ABC"), Some(&b"3"[..]));
        assert_eq!(h.get(""), None);
        assert!(h.has_token("a", "4"));
    }
}
