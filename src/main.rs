use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // rustls needs one process-wide crypto provider before any TLS config is built.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = canopy::cli::Cli::parse();
    let (log_settings, server_name) = cli.peek_config();
    canopy::cli::logging::init(cli.log_format, log_settings, cli.default_log_filter());
    let runtime = match canopy::cli::logging::runtime(server_name) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(canopy::cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(outcome) = e.downcast_ref::<canopy::cli::exit::Outcome>() {
                eprintln!("{}", canopy::cli::table::printable(&outcome.to_string()));
                return ExitCode::from(outcome.status());
            }
            // Server errors may quote what devices named themselves.
            let message = format!("error: {e:#}");
            eprintln!("{}", canopy::cli::table::printable(&message));
            ExitCode::FAILURE
        }
    }
}
