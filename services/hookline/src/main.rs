//! `hookline`: one binary, one subcommand per role. Each role is a library crate with a
//! `run(config, registry, shutdown)`; this file only parses arguments, loads and validates
//! the configuration, starts logging, and hands over.

mod cmd;

/// mimalloc instead of glibc malloc: the profile of the send path under load spent about a
/// sixth of its time in glibc's allocator (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "hookline", version, about = "Kafka events to signed webhooks")]
struct Cli {
    /// TOML configuration file (defaults, then this file, then HOOKLINE_* variables).
    #[arg(long, short, global = true, env = "HOOKLINE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Every role in one process against a local Kafka, loopback endpoints allowed.
    Dev(cmd::dev::DevArgs),
    /// Match events to subscriptions and fan out deliveries.
    Router,
    /// Sign and send deliveries.
    Sender,
    /// Run replay jobs (dead letters again, or an endpoint's backfill); one replica.
    Replay,
    /// The management API (endpoints, ingest, history, DLQ); `api token`, `api openapi`.
    Api(cmd::api::ApiArgs),
    /// Manage topics.
    #[command(subcommand)]
    Topics(cmd::topics::TopicsCommand),
    /// Manage endpoints (subscriptions) in the endpoints topic.
    #[command(subcommand)]
    Endpoint(cmd::endpoint::EndpointCommand),
    /// The event-type catalog: schemas per version, validation (docs/contracts.md).
    #[command(subcommand)]
    EventTypes(cmd::event_types::EventTypesCommand),
    /// Keys that seal secrets at rest: make one, or reseal every endpoint with the current key.
    #[command(subcommand)]
    Secrets(cmd::secrets::SecretsCommand),
    /// Produce events from the command line.
    Publish(cmd::publish::PublishArgs),
    /// Run a local webhook receiver that verifies signatures and counts deliveries.
    Sink(cmd::sink::SinkArgs),
    /// Print the effective configuration (defaults, file, HOOKLINE_* variables) as TOML,
    /// secrets redacted.
    Config {
        /// Print passwords, keys and secret headers as they are.
        #[arg(long)]
        show_secrets: bool,
    },
    /// Load generators (HTTP ingest, Kafka produce) and the limits: raw signed POSTs, raw Kafka.
    #[command(subcommand)]
    Bench(cmd::bench::BenchCommand),
}

impl Command {
    /// Whether the subcommand reads the configuration (Kafka, topics, keys, listeners).
    /// Those that do not (`sink`, `api token`, `api openapi`, `secrets new-key`,
    /// `bench ingest`, `bench http`) run even when it is missing or invalid.
    fn uses_config(&self) -> bool {
        use cmd::api::ApiCommand;
        use cmd::bench::BenchCommand;
        use cmd::secrets::SecretsCommand;
        !matches!(
            self,
            Command::Sink(_)
                | Command::Api(cmd::api::ApiArgs { command: Some(ApiCommand::Token { .. } | ApiCommand::Openapi) })
                | Command::Secrets(SecretsCommand::NewKey { .. })
                | Command::Bench(BenchCommand::Ingest(_) | BenchCommand::Http { .. })
        )
    }
}

/// Exit status for a configuration or usage error (sysexits EX_USAGE).
const EXIT_USAGE: u8 = 64;

fn main() -> ExitCode {
    // `--version` names the Kafka client too: which codecs and security it was built with.
    let version = format!("{} with {}", env!("CARGO_PKG_VERSION"), hookline_runtime::kafka::client_version());
    let matches = Cli::command().version(&*Box::leak(version.into_boxed_str())).get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    let config = match hookline_runtime::settings::load(cli.config.as_deref()) {
        Ok(c) => c,
        // A subcommand that uses no configuration (a local receiver, a token) runs whatever
        // the file or the environment say: only its logs would have followed them.
        Err(_) if !cli.command.uses_config() => hookline_core::config::Config::default(),
        Err(error) => {
            eprintln!("hookline: {error}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    hookline_runtime::telemetry::init(&config.log);
    let role = match &cli.command {
        Command::Dev(_) => Some("dev"),
        Command::Router => Some("router"),
        Command::Sender => Some("sender"),
        Command::Replay => Some("replay"),
        Command::Api(args) if args.command.is_none() => Some("api"),
        _ => None,
    };
    // Outside the async runtime: the exporter's blocking HTTP client must be created and
    // dropped there.
    let traces = match role.map(|r| hookline_runtime::traces::init(&config.traces, r)).transpose() {
        Ok(t) => t.flatten(),
        Err(error) => {
            eprintln!("hookline: traces: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(error) => {
            eprintln!("hookline: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Dev(args) => cmd::dev::run(config, args).await,
            Command::Router => cmd::roles::router(config).await,
            Command::Sender => cmd::roles::sender(config).await,
            Command::Replay => cmd::roles::replay(config).await,
            Command::Api(args) => cmd::api::run(config, args).await,
            Command::Topics(c) => cmd::topics::run(config, c).await,
            Command::Endpoint(c) => cmd::endpoint::run(config, c).await,
            Command::EventTypes(c) => cmd::event_types::run(config, c).await,
            Command::Secrets(c) => cmd::secrets::run(config, c).await,
            Command::Publish(args) => cmd::publish::run(config, args).await,
            Command::Sink(args) => cmd::sink::run(args).await,
            Command::Bench(c) => cmd::bench::run(config, c).await,
            Command::Config { show_secrets } => {
                let shown = if show_secrets { config } else { config.redacted() };
                toml::to_string(&shown).map(|t| print!("{t}")).map_err(Into::into)
            }
        }
    });
    drop(runtime);
    // Flushes the spans still held.
    drop(traces);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("hookline: {error:#}");
            ExitCode::FAILURE
        }
    }
}
