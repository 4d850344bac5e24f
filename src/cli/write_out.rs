//! `-w/--write-out`: the variables of a finished transfer and the format that prints them.

use serde_json::{Map, Value, json};

/// What `-w` can print about one transfer (curl's variable names).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Vars {
    /// `http_code`, `response_code`: the final status (0 when none arrived).
    pub code: u16,
    /// `http_version`: `1.0` or `1.1` (empty when no response arrived).
    pub http_version: String,
    /// `method`.
    pub method: String,
    /// `url`: the URL as given.
    pub url: String,
    /// `url_effective`: the last URL requested (after redirects).
    pub url_effective: String,
    /// `num_redirects`.
    pub num_redirects: u64,
    /// `num_connects`: new connections made for the final request (0 when reused).
    pub num_connects: u64,
    /// `content_type`.
    pub content_type: String,
    /// `filename_effective`: the output file, empty for stdout.
    pub filename_effective: String,
    /// `size_download`: body bytes received (after decoding with `--compressed`).
    pub size_download: u64,
    /// `size_header`: bytes of the response heads as printed by `-i` (every hop's, as curl).
    pub size_header: u64,
    /// `speed_download`: bytes per second over the whole transfer.
    pub speed_download: f64,
    /// `time_queue` .. `time_total`, in seconds from the start of the transfer.
    pub times: Times,
    /// `exitcode`.
    pub exitcode: u8,
    /// `errormsg` (empty on success).
    pub errormsg: String,
}

/// The timing variables, in seconds from the start of the transfer.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Times {
    /// `time_queue`: waiting for a free connection.
    pub queue: f64,
    /// `time_namelookup`.
    pub namelookup: f64,
    /// `time_connect`.
    pub connect: f64,
    /// `time_appconnect`: TLS handshake done (0 for plain HTTP).
    pub appconnect: f64,
    /// `time_pretransfer`: the request is about to be sent.
    pub pretransfer: f64,
    /// `time_starttransfer`: the first response byte.
    pub starttransfer: f64,
    /// `time_redirect`: time spent on redirects before the final request.
    pub redirect: f64,
    /// `time_total`.
    pub total: f64,
}

impl Vars {
    /// The value of variable `name`, or `None` for a name it does not know.
    pub fn get(&self, name: &str) -> Option<Value> {
        let t = &self.times;
        Some(match name {
            "http_code" | "response_code" => json!(self.code),
            "http_version" => json!(self.http_version),
            "method" => json!(self.method),
            "url" => json!(self.url),
            "url_effective" => json!(self.url_effective),
            "num_redirects" => json!(self.num_redirects),
            "num_connects" => json!(self.num_connects),
            "content_type" => json!(self.content_type),
            "filename_effective" => json!(self.filename_effective),
            "size_download" => json!(self.size_download),
            "size_header" => json!(self.size_header),
            "speed_download" => json!(self.speed_download.round() as u64),
            "time_queue" => json!(t.queue),
            "time_namelookup" => json!(t.namelookup),
            "time_connect" => json!(t.connect),
            "time_appconnect" => json!(t.appconnect),
            "time_pretransfer" => json!(t.pretransfer),
            "time_starttransfer" => json!(t.starttransfer),
            "time_redirect" => json!(t.redirect),
            "time_total" => json!(t.total),
            "exitcode" => json!(self.exitcode),
            "errormsg" => json!(self.errormsg),
            _ => return None,
        })
    }

    /// Every variable as one JSON object (`%{json}`).
    pub fn json(&self) -> String {
        let mut map = Map::new();
        for name in NAMES {
            if let Some(v) = self.get(name) {
                map.insert(name.to_string(), v);
            }
        }
        Value::Object(map).to_string()
    }
}

/// The variable names, in the order `%{json}` lists them.
pub const NAMES: [&str; 24] = [
    "http_code",
    "response_code",
    "http_version",
    "method",
    "url",
    "url_effective",
    "num_redirects",
    "num_connects",
    "content_type",
    "filename_effective",
    "size_download",
    "size_header",
    "speed_download",
    "time_queue",
    "time_namelookup",
    "time_connect",
    "time_appconnect",
    "time_pretransfer",
    "time_starttransfer",
    "time_redirect",
    "time_total",
    "exitcode",
    "errormsg",
    "json",
];

/// Where a piece of `-w` output goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dest {
    /// Standard output (the default).
    Stdout,
    /// Standard error (after `%{stderr}`).
    Stderr,
}

/// Expands `format` for `vars`: the text to write, split where `%{stderr}`/`%{stdout}`
/// switch the destination. Times print with six decimals, as curl does; unknown variables
/// print nothing.
pub fn render(format: &str, vars: &Vars) -> Vec<(Dest, String)> {
    let mut out = vec![(Dest::Stdout, String::new())];
    let push = |out: &mut Vec<(Dest, String)>, s: &str| {
        out.last_mut().expect("never empty").1.push_str(s);
    };
    let mut rest = format;
    while let Some(i) = rest.find(['%', '\\']) {
        push(&mut out, &rest[..i]);
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix("%{")
            && let Some(end) = after.find('}')
        {
            let name = &after[..end];
            match name {
                "stdout" => out.push((Dest::Stdout, String::new())),
                "stderr" => out.push((Dest::Stderr, String::new())),
                "json" => push(&mut out, &vars.json()),
                _ => match vars.get(name) {
                    Some(Value::String(s)) => push(&mut out, &s),
                    Some(Value::Number(n)) if name.starts_with("time_") => {
                        push(&mut out, &format!("{:.6}", n.as_f64().unwrap_or(0.0)));
                    }
                    Some(v) => push(&mut out, &v.to_string()),
                    None => {}
                },
            }
            rest = &after[end + 1..];
            continue;
        }
        let (text, skip) = match tail.as_bytes().get(..2) {
            Some(b"%%") => ("%", 2),
            Some(b"\\n") => ("\n", 2),
            Some(b"\\r") => ("\r", 2),
            Some(b"\\t") => ("\t", 2),
            Some(b"\\\\") => ("\\", 2),
            _ => (&tail[..1], 1),
        };
        push(&mut out, text);
        rest = &tail[skip..];
    }
    push(&mut out, rest);
    out.retain(|(_, s)| !s.is_empty());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        Vars {
            code: 200,
            http_version: "1.1".into(),
            method: "GET".into(),
            url: "http://h/a".into(),
            url_effective: "http://h/b".into(),
            num_redirects: 1,
            content_type: "text/plain".into(),
            size_download: 5,
            times: Times {
                total: 0.25,
                ..Times::default()
            },
            ..Vars::default()
        }
    }

    #[test]
    fn variables_escapes_and_destinations() {
        let out = render(
            "%{http_code} %{url_effective} %{time_total}\\n%{stderr}err %{nope}%%\\t%{stdout}x",
            &vars(),
        );
        assert_eq!(
            out,
            vec![
                (Dest::Stdout, "200 http://h/b 0.250000\n".to_string()),
                (Dest::Stderr, "err %\t".to_string()),
                (Dest::Stdout, "x".to_string()),
            ]
        );
    }

    #[test]
    fn json_holds_every_variable() {
        let out = render("%{json}", &vars());
        let v: Value = serde_json::from_str(&out[0].1).unwrap();
        assert_eq!(v["http_code"], 200);
        assert_eq!(v["num_redirects"], 1);
        assert_eq!(v["url_effective"], "http://h/b");
        assert_eq!(v["time_total"], 0.25);
        let obj = v.as_object().unwrap();
        assert_eq!(obj.len(), NAMES.len() - 1, "every name but json itself");
    }

    #[test]
    fn unterminated_and_lone_percent_are_literal() {
        let out = render("100% %{http_code", &vars());
        assert_eq!(out, vec![(Dest::Stdout, "100% %{http_code".to_string())]);
    }
}
