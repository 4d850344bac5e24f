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
/// read and joined with `&`.
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
    let mut out = Vec::new();
    for (i, d) in data.iter().enumerate() {
        if i > 0 {
            out.push(b'&');
        }
        let file = match d.kind {
            DataKind::Raw => None,
            DataKind::Ascii | DataKind::Binary => d.value.strip_prefix('@'),
        };
        match file {
            None => out.extend_from_slice(d.value.as_bytes()),
            Some(name) => {
                let bytes = read(name)
                    .map_err(|e| PlanError::Read(format!("cannot read data from {name:?}: {e}")))?;
                if d.kind == DataKind::Ascii {
                    out.extend(bytes.into_iter().filter(|&b| b != b'\r' && b != b'\n'));
                } else {
                    out.extend_from_slice(&bytes);
                }
            }
        }
    }
    Ok(BodySource::Bytes(out))
}
