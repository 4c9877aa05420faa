use clap::Parser;
use moim_server::config::{Command, Config};
use moim_server::{ops, shutdown_signal, telemetry, Application};
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    // Bad flags or variables: clap prints one message naming the setting.
    let config = Config::parse();
    match &config.command {
        Some(Command::CheckConfig) => return ops::check_config(&config).await,
        Some(Command::Backup { to }) => return ops::backup(&config, to).await,
        None => {}
    }
    if let Err(err) = telemetry::init(&config) {
        eprintln!("moim: {err}");
        return ExitCode::FAILURE;
    }
    let app = match Application::build(config).await {
        Ok(app) => app,
        Err(err) => {
            eprintln!("moim: {err}");
            return ExitCode::FAILURE;
        }
    };
    moim_server::memory::spawn_trimmer(moim_server::memory::TRIM_EVERY);
    // Listening for SIGTERM before saying it is up: see shutdown_signal.
    let shutdown = shutdown_signal();
    tracing::info!(address = %app.local_addr(), "moim is listening on http://{}", app.local_addr());
    tracing::info!(address = %app.metrics_addr(), "metrics at http://{}/metrics", app.metrics_addr());
    match app.run_until(shutdown).await {
        Ok(()) => {
            tracing::info!("moim stopped");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("moim: server error: {err}");
            ExitCode::FAILURE
        }
    }
}
