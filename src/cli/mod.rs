//! The `weft` command line tool.
//!
//! The flow is split so that everything but the network exchange is a pure, testable function:
//!
//! 1. [`args`]: command-line parsing with clap (derive), keeping the order of data options;
//! 2. [`plan`]: the parsed options become a [`plan::Plan`] (method, URL, headers, body source,
//!    output mode), with curl's defaults and usage checks;
//! 3. [`run`]: the plan is executed with one [`weft::client::Agent`] on a reactor, streaming the
//!    body to its destination, and ends in an [`exit::Outcome`];
//! 4. [`exit`]: the outcome becomes an exit status and at most one line on stderr.
//!
//! [`format`] renders response heads (curl's `-i` layout) and `-v` lines; [`dump`] builds the
//! `--dump json` object.

pub mod args;
pub mod dump;
pub mod exit;
pub mod format;
pub mod plan;
pub mod run;

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
    let outcome = match plan::build(&args, &mut plan::read_data_file) {
        Ok(plan) => run::run(plan),
        Err(e) => e.into_outcome(),
    };
    if (show_errors || outcome.always_shown())
        && let Some(message) = outcome.message()
    {
        let _ = writeln!(std::io::stderr(), "weft: {message}");
    }
    ExitCode::from(outcome.exit_code())
}
