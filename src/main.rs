use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match triage::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(), // --help, --version
        Err(e) => {
            // A usage error: its first line (clap adds usage and tips), exit 2.
            let text = e.render().to_string();
            let first = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("error: bad arguments");
            eprintln!("{first} (see --help)");
            return ExitCode::from(2);
        }
    };
    triage::memory::keep_large_buffers();
    if let Err(e) = triage::temp::remove_on_interrupt() {
        eprintln!("warning: no handler for interruptions ({e}): an interrupted run may leave temporary files");
    }
    match triage::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", triage::cli::one_line(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}
