//! Structured logging on stderr: JSON lines for machines, readable text for a person at a
//! terminal, and by default (`log.format = "auto"`) whichever fits where stderr goes.

use hookline_core::config::{LogConfig, LogFormat};
use std::io::IsTerminal as _;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStyle {
    Json,
    /// Compact text; `colour`: with ANSI colour codes.
    Text { colour: bool },
}

impl LogStyle {
    /// The style of `format` when stderr is or is not a terminal. Colour codes only ever go
    /// to a terminal: in a file or a log collector they are noise.
    pub fn of(format: LogFormat, terminal: bool) -> Self {
        match format {
            LogFormat::Text => Self::Text { colour: terminal },
            LogFormat::Json => Self::Json,
            LogFormat::Auto if terminal => Self::Text { colour: true },
            LogFormat::Auto => Self::Json,
        }
    }
}

/// Installs the global subscriber. `RUST_LOG`, when set, wins over `log.level`.
pub fn init(cfg: &LogConfig) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{},rdkafka=warn", cfg.level)));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let result = match LogStyle::of(cfg.format, std::io::stderr().is_terminal()) {
        LogStyle::Text { colour } => builder.compact().with_ansi(colour).try_init(),
        LogStyle::Json => builder.json().flatten_event(true).with_current_span(false).try_init(),
    };
    // A second init (tests) keeps the first subscriber.
    let _ = result;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_and_auto_follows_it() {
        assert_eq!(LogStyle::of(LogFormat::Auto, true), LogStyle::Text { colour: true });
        assert_eq!(LogStyle::of(LogFormat::Auto, false), LogStyle::Json);
        assert_eq!(LogStyle::of(LogFormat::Text, true), LogStyle::Text { colour: true });
        assert_eq!(LogStyle::of(LogFormat::Text, false), LogStyle::Text { colour: false });
        assert_eq!(LogStyle::of(LogFormat::Json, true), LogStyle::Json);
        assert_eq!(LogStyle::of(LogFormat::Json, false), LogStyle::Json);
    }
}
