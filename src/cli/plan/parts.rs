//! The parsers of single arguments a plan is made from: `-H`, `-F`, the data options, the
//! URL (its scheme and `-O` name), and `@FILE` reading.

use std::io::{self, Read};
use std::path::PathBuf;

use super::super::args::{DataArg, DataKind};
use super::{BodySource, FormField, FormValue, PlanError};

/// Reads an `@FILE` data argument: the file, or standard input for `-`.
pub fn read_data_file(name: &str) -> io::Result<Vec<u8>> {
    if name == "-" {
        let mut buf = Vec::new();
        io::stdin().lock().read_to_end(&mut buf)?;
        Ok(buf)
    } else {
        std::fs::read(name)
    }
}

/// Prefixes `http://` to a URL without a scheme, as curl does.
pub fn normalize_url(url: &str) -> String {
    if url.contains("://") {
        url.to_string()
    } else {
        format!("http://{url}")
    }
}

/// One `-H` argument, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderArg {
    /// `Name: value`: send it (the value is trimmed).
    Set(String, String),
    /// `Name:`: do not send it, and drop weft's own default of that name.
    Remove(String),
}

/// Parses `-H` syntax: `Name: value`, `Name:` (remove) or `Name;` (empty value).
pub fn parse_header(arg: &str) -> Result<HeaderArg, String> {
    let (name, value, empty) = match arg.split_once(':') {
        Some((name, value)) => (name, value.trim(), false),
        None => match arg.strip_suffix(';') {
            Some(name) if !name.contains(';') => (name, "", true),
            _ => return Err(format!("invalid header {arg:?}: expected 'Name: value'")),
        },
    };
    if name.is_empty()
        || name
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Err(format!("invalid header name in {arg:?}"));
    }
    if value.is_empty() && !empty {
        return Ok(HeaderArg::Remove(name.to_string()));
    }
    Ok(HeaderArg::Set(name.to_string(), value.to_string()))
}

/// The last path segment of `url`, as `-O` names its file; `None` when there is none or it
/// could escape the directory (`.`, `..`).
pub fn remote_name(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    let last = parsed.path_segments()?.next_back()?;
    // The URL parser has already turned `\` into `/` and resolved dot segments.
    (!last.is_empty() && last != "." && last != "..").then(|| last.to_string())
}

/// Parses one `-F` argument: `name=value`, `name=@FILE[;type=T][;filename=N]` or
/// `name=<FILE`.
pub fn parse_form(
    arg: &str,
    read: &mut dyn FnMut(&str) -> io::Result<Vec<u8>>,
) -> Result<FormField, PlanError> {
    let (name, content) = arg
        .split_once('=')
        .filter(|(n, _)| !n.is_empty())
        .ok_or_else(|| PlanError::Usage(format!("invalid -F {arg:?}: expected 'name=value'")))?;
    let value = if let Some(spec) = content.strip_prefix('@') {
        let mut parts = spec.split(';');
        let path = parts.next().unwrap_or_default();
        if path.is_empty() {
            return Err(PlanError::Usage(format!(
                "invalid -F {arg:?}: no file name"
            )));
        }
        let (mut content_type, mut filename) = (None, None);
        for p in parts {
            match p.split_once('=') {
                Some(("type", t)) => content_type = Some(t.to_string()),
                Some(("filename", f)) => filename = Some(f.trim_matches('"').to_string()),
                _ => {
                    return Err(PlanError::Usage(format!(
                        "invalid -F {arg:?}: unknown parameter {p:?}"
                    )));
                }
            }
        }
        FormValue::File {
            path: PathBuf::from(path),
            content_type,
            filename,
        }
    } else if let Some(file) = content.strip_prefix('<') {
        let bytes = read(file)
            .map_err(|e| PlanError::Read(format!("cannot read form data from {file:?}: {e}")))?;
        FormValue::Text(String::from_utf8_lossy(&bytes).into_owned())
    } else {
        FormValue::Text(content.to_string())
    };
    Ok(FormField {
        name: name.to_string(),
        value,
    })
}

/// The request body from the data options: one streamed `--data-binary @FILE`, or all of them
/// read and joined ([`data_bytes`]).
pub(super) fn body_source(
    data: &[DataArg],
    read: &mut dyn FnMut(&str) -> io::Result<Vec<u8>>,
) -> Result<BodySource, PlanError> {
    if let [only] = data
        && only.kind == DataKind::Binary
        && let Some(file) = only.value.strip_prefix('@')
    {
        return Ok(if file == "-" {
            BodySource::Stdin
        } else {
            BodySource::File(PathBuf::from(file))
        });
    }
    if data.is_empty() {
        return Ok(BodySource::None);
    }
    Ok(BodySource::Bytes(data_bytes(data, read)?))
}

/// All data options read and joined as curl joins them: with `&`, except that a `--json`
/// piece follows the data before it directly.
pub(super) fn data_bytes(
    data: &[DataArg],
    read: &mut dyn FnMut(&str) -> io::Result<Vec<u8>>,
) -> Result<Vec<u8>, PlanError> {
    let mut out = Vec::new();
    for (i, d) in data.iter().enumerate() {
        if i > 0 && d.kind != DataKind::Json {
            out.push(b'&');
        }
        let mut read_file = |name: &str| {
            read(name).map_err(|e| PlanError::Read(format!("cannot read data from {name:?}: {e}")))
        };
        match d.kind {
            DataKind::Raw => out.extend_from_slice(d.value.as_bytes()),
            DataKind::UrlEncode => out.extend(url_encoded_data(&d.value, &mut read_file)?),
            DataKind::Ascii | DataKind::Binary | DataKind::Json => {
                match d.value.strip_prefix('@') {
                    None => out.extend_from_slice(d.value.as_bytes()),
                    Some(name) => {
                        let bytes = read_file(name)?;
                        if d.kind == DataKind::Ascii {
                            out.extend(bytes.into_iter().filter(|&b| b != b'\r' && b != b'\n'));
                        } else {
                            out.extend_from_slice(&bytes);
                        }
                    }
                }
            }
        }
    }
    Ok(out)
}

/// One `--data-urlencode` argument in curl's forms: `content`, `=content`, `name=content`,
/// `@FILE`, `name@FILE` (whichever of `=` and `@` comes first decides). The name is sent as
/// it is; the content is percent-encoded (every byte but `A-Z a-z 0-9 - . _ ~`).
fn url_encoded_data(
    arg: &str,
    read_file: &mut dyn FnMut(&str) -> Result<Vec<u8>, PlanError>,
) -> Result<Vec<u8>, PlanError> {
    let (name, content) = match arg.find(['=', '@']) {
        Some(i) if arg.as_bytes()[i] == b'@' => (&arg[..i], read_file(&arg[i + 1..])?),
        Some(i) => (&arg[..i], arg.as_bytes()[i + 1..].to_vec()),
        None => ("", arg.as_bytes().to_vec()),
    };
    let mut out = Vec::with_capacity(name.len() + 1 + content.len() * 3);
    if !name.is_empty() {
        out.extend_from_slice(name.as_bytes());
        out.push(b'=');
    }
    out.extend(percent_encode(&content).bytes());
    Ok(out)
}

/// Percent-encodes every byte but the unreserved ones (RFC 3986), as curl's `--data-urlencode`
/// does (a space is `%20`).
fn percent_encode(bytes: &[u8]) -> String {
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    percent_encoding::percent_encode(bytes, KEEP).to_string()
}

/// Checks a `-r` range and returns the value of the `Range` header: `bytes=` and a list of
/// `START-END`, `START-` or `-SUFFIX` (START <= END); a lone number `N` means `N-`, as in
/// curl. Anything else is refused (curl only warns and sends it).
pub fn range_header(range: &str) -> Result<String, PlanError> {
    let bad = |why: &str| PlanError::Usage(format!("invalid -r/--range {range:?}: {why}"));
    let digits = |s: &str| !s.is_empty() && s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit());
    if digits(range) {
        return Ok(format!("bytes={range}-"));
    }
    if range.is_empty() || range.len() > 1024 {
        return Err(bad("expected START-END, START- or -SUFFIX"));
    }
    for spec in range.split(',') {
        let (start, end) = spec
            .split_once('-')
            .ok_or_else(|| bad("each range needs a '-'"))?;
        match (digits(start), digits(end)) {
            (true, true) if start.parse::<u64>().ok() > end.parse::<u64>().ok() => {
                return Err(bad("a range's start is after its end"));
            }
            (true, _) if end.is_empty() || digits(end) => {}
            (false, true) if start.is_empty() => {}
            _ => return Err(bad("only digits, '-' and ',' are allowed")),
        }
    }
    Ok(format!("bytes={range}"))
}

/// `url` for `-T FILE`: a URL whose path ends in `/` (or has none) gets the file's name
/// appended, percent-encoded, as curl does.
pub fn upload_url(url: &str, file: &std::path::Path) -> String {
    let Some(name) = file.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return url.to_string();
    };
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.path().ends_with('/') => {
            if let Ok(mut segments) = parsed.path_segments_mut() {
                segments.pop_if_empty().push(&name);
            }
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

/// `url` with `query` added to its query (`?` or `&`), before any fragment: `-G`.
pub fn with_query(url: &str, query: &str) -> String {
    if query.is_empty() {
        return url.to_string();
    }
    let (base, fragment) = match url.find('#') {
        Some(i) => url.split_at(i),
        None => (url, ""),
    };
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}{query}{fragment}")
}
