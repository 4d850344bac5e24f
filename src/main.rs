//! The `weft` command: a curl-like HTTP client on top of the `weft` library.
//!
//! The code lives in the [`cli`] module tree; `main` only hands over the process's exit code.
#![forbid(unsafe_code)]

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
