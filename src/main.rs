use std::process::ExitCode;

fn main() -> ExitCode {
    ticketgate::cli::main()
}
