//! Structured logs with `tracing`.

use crate::config::{Config, LogFormat};
use crate::error::StartupError;
use tracing_subscriber::EnvFilter;

pub fn init(config: &Config) -> Result<(), StartupError> {
    let filter = EnvFilter::try_new(&config.log).map_err(|e| StartupError::LogFilter {
        filter: config.log.clone(),
        reason: e.to_string(),
    })?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    // A second initialisation (tests in one process) is harmless.
    let _ = match config.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    Ok(())
}
