//! Structured logs to stderr, text or JSON, filtered by `log_level`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{Config, LogFormat};

/// Installs the global subscriber. `quiet` commands (inspect, provider) keep
/// stdout for their output and only log warnings unless asked for more.
pub fn init(config: &Config, quiet: bool) {
    let level = if quiet && config.log_level == "info" { "warn" } else { config.log_level.as_str() };
    // The config layer has validated the filter; fall back to info defensively.
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour only on a terminal: a log file or journald gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match config.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
