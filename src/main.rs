use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // rustls needs one process-wide crypto provider before any TLS config is built.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = canopy::cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CANOPY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(cli.default_log_filter())),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(canopy::cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Server errors may quote what devices named themselves.
            let message = format!("error: {e:#}");
            eprintln!("{}", canopy::cli::table::printable(&message));
            ExitCode::FAILURE
        }
    }
}
