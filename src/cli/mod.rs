//! The `weft` command line tool.
//!
//! The flow is split so that everything but the network exchange is a pure, testable function:
//!
//! 1. [`args`]: command-line parsing with clap (derive), keeping the order of data options
//!    (curl's transfer options and the `--next` groups are in [`curl_args`]);
//! 2. [`plan`]: the parsed options become a [`plan::Plan`] (method, URL, headers, body source,
//!    output mode), with curl's defaults and usage checks;
//! 3. [`run`]: the plans (one per URL) are executed through one agent chain on a reactor,
//!    streaming each body to its destination, and each ends in an [`exit::Outcome`];
//! 4. [`exit`]: the outcome becomes an exit status and at most one line on stderr.
//!
//! [`format`] renders response heads (curl's `-i` layout) and `-v` lines; [`dump`] builds the
//! `--dump json` object; [`write_out`] expands `-w`.

pub mod args;
pub mod curl_args;
pub mod dump;
pub mod exit;
pub mod format;
pub mod plan;
pub mod run;
pub mod write_out;

use std::io::Write;
use std::process::ExitCode;

/// Runs the command with the process's arguments and returns its exit status.
pub fn main() -> ExitCode {
    let args = match args::parse(std::env::args_os()) {
        Ok(args) => args,
        // Prints help/version (exit 0) or the usage error (exit 2), as clap does.
        Err(e) => e.exit(),
    };
    let show_errors = !args.silent || args.show_error;
    // Every `--next` group is planned before any runs (a usage error stops them all, as in
    // curl); each group then runs with its own agent chain, one group after another.
    let planned = std::iter::once(&args)
        .chain(&args.next)
        .map(|group| plan::build_all(group, &mut plan::read_data_file))
        .collect::<Result<Vec<_>, _>>();
    let outcomes: Vec<exit::Outcome> = match planned {
        Ok(groups) => groups.into_iter().flat_map(run::run_all).collect(),
        Err(e) => vec![e.into_outcome()],
    };
    let mut stderr = std::io::stderr().lock();
    for outcome in &outcomes {
        if (show_errors || outcome.always_shown())
            && let Some(message) = outcome.message()
        {
            let _ = writeln!(stderr, "weft: {message}");
        }
    }
    let first_failure = outcomes
        .iter()
        .map(exit::Outcome::exit_code)
        .find(|&c| c != 0);
    ExitCode::from(first_failure.unwrap_or(0))
}
