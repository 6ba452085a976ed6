use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = triage::cli::Cli::parse();
    triage::memory::keep_large_buffers();
    if let Err(e) = triage::export::temp::remove_on_interrupt() {
        eprintln!("warning: no handler for interruptions ({e}): an interrupted run may leave temporary files");
    }
    match triage::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, whatever the underlying libraries put in their messages.
            let msg = format!("{e:#}");
            let one_line: Vec<&str> = msg.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
            eprintln!("error: {}", one_line.join(" "));
            ExitCode::FAILURE
        }
    }
}
