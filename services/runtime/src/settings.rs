//! Loads the configuration: embedded defaults, then a TOML file, then `HOOKLINE_*`
//! environment variables (`HOOKLINE_KAFKA__BOOTSTRAP_SERVERS=...`: sections are separated by
//! a double underscore), parses it into typed values and validates it, once.

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use hookline_core::config::{Config, ConfigError};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("invalid configuration:\n{}", .0.iter().map(|e| format!("  - {e}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<ConfigError>),
}

/// What figment could not read or parse, by key, as validation names its problems.
fn unreadable(error: figment::Error) -> SettingsError {
    let problems = error.into_iter().map(|e| {
        // Keys from the environment come in capitals; the configuration's keys are lowercase.
        let field = if e.path.is_empty() { "--config".to_owned() } else { e.path.join(".").to_lowercase() };
        let problem = match &e.metadata {
            Some(meta) => match &meta.source {
                Some(figment::Source::File(path)) => format!("{} (in {})", e.kind, path.display()),
                _ => format!("{} (from {})", e.kind, meta.name),
            },
            None => e.kind.to_string(),
        };
        ConfigError { field, problem }
    });
    SettingsError::Invalid(problems.collect())
}

/// Reads defaults, then `file` if given, then the process environment.
pub fn load(file: Option<&Path>) -> Result<Config, SettingsError> {
    // Only `HOOKLINE_<SECTION>__<KEY>` names are configuration; others with the prefix
    // (`HOOKLINE_CONFIG`, `HOOKLINE_SINK_SECRET`, ...) belong to the command line.
    load_from(file, Env::prefixed("HOOKLINE_").filter(|k| k.as_str().contains("__")).split("__"))
}

/// Like [`load`], with the environment provider passed in (tests give a fixed one).
pub fn load_from(file: Option<&Path>, env: Env) -> Result<Config, SettingsError> {
    let mut figment = Figment::from(Serialized::defaults(Config::default()));
    if let Some(file) = file {
        if !file.exists() {
            return Err(SettingsError::Invalid(vec![ConfigError {
                field: "--config".into(),
                problem: format!("{} does not exist", file.display()),
            }]));
        }
        figment = figment.merge(Toml::file(file));
    }
    let config: Config = figment.merge(env).extract().map_err(unreadable)?;
    config.validate().map_err(SettingsError::Invalid)?;
    Ok(config)
}

#[cfg(test)]
// `figment::Jail` closures return figment's own (large) error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn file_then_env_override_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "hookline.toml",
                "[kafka]\nbootstrap_servers = \"file:9092\"\ntopic_prefix = \"fromfile\"\n",
            )?;
            jail.set_env("HOOKLINE_KAFKA__TOPIC_PREFIX", "fromenv");
            jail.set_env("HOOKLINE_SENDER__MAX_IN_FLIGHT", "77");
            jail.set_env("HOOKLINE_CONFIG", "not a config key");
            let c = load(Some(Path::new("hookline.toml"))).expect("valid");
            assert_eq!(c.kafka.bootstrap_servers, "file:9092");
            assert_eq!(c.kafka.topic_prefix, "fromenv");
            assert_eq!(c.sender.max_in_flight, 77);
            assert_eq!(c.router, Config::default().router);
            Ok(())
        });
    }

    #[test]
    fn invalid_values_are_listed_by_field() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("HOOKLINE_KAFKA__COMPRESSION", "brotli");
            let err = load(None).expect_err("invalid");
            let text = err.to_string();
            // A value with a syntax fails as it loads, with its key and the value given.
            assert!(text.contains("kafka.compression") && text.contains("brotli"), "{text}");
            jail.set_env("HOOKLINE_KAFKA__COMPRESSION", "lz4");
            jail.set_env("HOOKLINE_RETRY__SCHEDULE", "[\"5s\", \"soon\"]");
            let text = load(None).expect_err("invalid schedule").to_string();
            assert!(text.contains("retry.schedule") && text.contains("soon"), "{text}");
            jail.set_env("HOOKLINE_RETRY__SCHEDULE", "[\"5s\"]");
            jail.set_env("HOOKLINE_BREAKER__WINDOW_MS", "10");
            let text = load(None).expect_err("out of range").to_string();
            assert!(text.contains("breaker.window_ms: is 10; use 1000 to 3600000"), "{text}");
            jail.set_env("HOOKLINE_BREAKER__WINDOW_MS", "10000");
            jail.set_env("HOOKLINE_KAFKA__COMPRESSION", "lz4");
            jail.set_env("HOOKLINE_SENDER__MAX_IN_FLIGHT", "lots");
            let text = load(None).expect_err("not a number").to_string();
            assert!(text.to_lowercase().contains("sender.max_in_flight"), "{text}");
            Ok(())
        });
    }

    #[test]
    fn a_missing_file_is_named() {
        let err = load(Some(Path::new("/nonexistent/hookline.toml"))).expect_err("missing");
        assert!(err.to_string().contains("/nonexistent/hookline.toml does not exist"));
    }
}
