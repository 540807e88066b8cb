//! `hookline api`: the management API as its own role, and helpers for its tokens and spec.

use super::roles;
use clap::Subcommand;
use hookline_api::auth::Auth;
use hookline_core::config::{Config, Scope, TokenDigest};
use hookline_runtime::health::Health;
use hookline_runtime::shutdown;

#[derive(clap::Args)]
pub struct ApiArgs {
    #[command(subcommand)]
    pub command: Option<ApiCommand>,
}

#[derive(Subcommand)]
pub enum ApiCommand {
    /// Make a new random token and print it with the `api.tokens` entry that accepts it.
    Token {
        #[arg(long, default_value = "ops")]
        name: String,
        /// Scopes: admin, read, publish (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "admin", value_parser = parse_scope)]
        scopes: Vec<Scope>,
    },
    /// Print the OpenAPI document.
    Openapi,
}

pub async fn run(config: Config, args: ApiArgs) -> anyhow::Result<()> {
    match args.command {
        Some(ApiCommand::Token { name, scopes }) => {
            let token = new_token();
            println!("token: {token}");
            let scopes: Vec<&str> = scopes.iter().map(|s| s.name()).collect();
            println!("config: [[api.tokens]]\nname = {name:?}\nsha256 = \"{}\"\nscopes = {scopes:?}", TokenDigest::of(&token));
            Ok(())
        }
        Some(ApiCommand::Openapi) => {
            println!("{}", hookline_api::openapi().to_pretty_json()?);
            Ok(())
        }
        None => serve(config).await,
    }
}

/// A scope as the command line names it (`admin`, `read`, `publish`).
fn parse_scope(name: &str) -> Result<Scope, String> {
    [Scope::Admin, Scope::Read, Scope::Publish]
        .into_iter()
        .find(|s| s.name() == name)
        .ok_or_else(|| format!("{name:?} is not one of admin, read, publish"))
}

pub fn new_token() -> String {
    use base64::Engine as _;
    format!("hl_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 24]>()))
}

async fn serve(config: Config) -> anyhow::Result<()> {
    anyhow::ensure!(
        !config.api.tokens.is_empty(),
        "api.tokens is empty: the API would accept no one (make one with `hookline api token`)"
    );
    let shutdown = shutdown::on_signal();
    roles::preflight(&config, &hookline_runtime::preflight::Access::api(&config), &shutdown).await?;
    let (registry, follower) = roles::start_registry(&config, "api", &shutdown)?;
    let health = Health::new();
    roles::start_admin(&config, &health, &registry, &shutdown).await?;
    let auth = Auth::new(&config.api.tokens, hookline_api::portal::SessionKey::from_config(&config.api));
    let state = hookline_api::state(config, registry.clone(), auth, &shutdown)?;
    tokio::select! {
        _ = registry.wait_ready() => {}
        _ = shutdown.cancelled() => return follower.finished().await,
    }
    hookline_api::serve(state, shutdown.clone()).await?;
    // The API has no consuming loop of its own: it is live and assigned while it serves.
    loop {
        health.tick("api", true);
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
        }
    }
    follower.finished().await
}
