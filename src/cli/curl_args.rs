//! curl's everyday transfer options (`--json`, `-G`, `--data-urlencode`, `-D`, `-r`, `-T`,
//! `-e`, `--fail-with-body`, `--next`), flattened into [`super::args::Args`], and the
//! splitting of a command line into `--next` groups.

use std::ffi::OsString;
use std::path::PathBuf;

/// The options of this group; clap flattens them into the main option list and `--help`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct CurlFlags {
    /// POST DATA as JSON (repeatable, the pieces concatenated); '@FILE' reads FILE ('-' for
    /// stdin) as it is. Sends Content-Type: application/json and Accept: application/json
    /// unless given.
    #[arg(long = "json", value_name = "DATA")]
    pub json: Vec<String>,

    /// Like -d, URL-encoding the content: 'content', '=content', 'name=content', '@FILE' or
    /// 'name@FILE' (the name is sent as it is, the content or file encoded).
    #[arg(long = "data-urlencode", value_name = "DATA")]
    pub data_urlencode: Vec<String>,

    /// Send the data of -d, --data-*, --json as the URL's query in a GET (HEAD with -I)
    /// instead of a POST body.
    #[arg(short = 'G', long = "get")]
    pub get: bool,

    /// Like -f (exit 22 on a status of 400 or more), but the body is still written.
    #[arg(long = "fail-with-body")]
    pub fail_with_body: bool,

    /// Write the response head to FILE ('-' for stdout); with -L, every hop's head.
    #[arg(short = 'D', long = "dump-header", value_name = "FILE")]
    pub dump_header: Option<PathBuf>,

    /// Ask for these bytes only: 'START-END', 'START-', '-SUFFIX', or several separated by
    /// ','; a lone number N means 'N-'. Sent as Range: bytes=RANGE.
    #[arg(
        short = 'r',
        long = "range",
        value_name = "RANGE",
        allow_hyphen_values = true
    )]
    pub range: Option<String>,

    /// Upload FILE with a PUT (streamed from the file; '-' reads stdin, sent chunked). A URL
    /// ending in '/' gets the file's name appended.
    #[arg(short = 'T', long = "upload-file", value_name = "FILE")]
    pub upload_file: Option<PathBuf>,

    /// Send this Referer; 'URL;auto' (or ';auto') also sets each redirect's Referer to the
    /// URL it came from with -L.
    #[arg(short = 'e', long = "referer", value_name = "URL")]
    pub referer: Option<String>,

    /// Start a new group of options: options before --next apply to the URLs before it
    /// (only -v, -s, -S, -Z, --parallel-max and --no-progress-meter span every group).
    #[arg(short = ':', long = "next")]
    pub next: bool,
}

/// Whether `word` separates two `--next` groups.
fn is_next(word: &OsString) -> bool {
    word == "--next" || word == "-:"
}

/// Splits a command line (program name first) into one command line per `--next` group,
/// each starting with the program name. Every word spelled `--next` or `-:` separates two
/// groups (none of weft's option values can be spelled so).
pub fn split_groups(argv: Vec<OsString>) -> Vec<Vec<OsString>> {
    let mut it = argv.into_iter();
    let program = it.next().unwrap_or_else(|| OsString::from("weft"));
    let mut groups = vec![vec![program.clone()]];
    for word in it {
        if is_next(&word) {
            groups.push(vec![program.clone()]);
        } else if let Some(last) = groups.last_mut() {
            last.push(word);
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn help_lists_the_transfer_options() {
        use clap::CommandFactory;
        let help = super::super::args::Args::command()
            .render_long_help()
            .to_string();
        for opt in [
            "--json",
            "--data-urlencode",
            "--get",
            "--fail-with-body",
            "--dump-header",
            "--range",
            "--upload-file",
            "--referer",
            "--next",
        ] {
            assert!(help.contains(opt), "{opt} missing from --help");
        }
    }

    #[test]
    fn next_splits_groups() {
        let g = split_groups(words(&[
            "weft", "-d", "a", "u1", "--next", "u2", "-:", "u3",
        ]));
        assert_eq!(
            g,
            vec![
                words(&["weft", "-d", "a", "u1"]),
                words(&["weft", "u2"]),
                words(&["weft", "u3"])
            ]
        );
        assert_eq!(
            split_groups(words(&["weft", "u"])),
            vec![words(&["weft", "u"])]
        );
        // A trailing --next makes an empty group (reported as "no URL given").
        assert_eq!(split_groups(words(&["weft", "u", "--next"])).len(), 2);
    }
}
