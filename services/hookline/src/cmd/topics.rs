use anyhow::Context as _;
use clap::Subcommand;
use hookline_core::config::Config;
use hookline_runtime::topics::{self, TopicStatus};

#[derive(Subcommand)]
pub enum TopicsCommand {
    /// Create every topic that is missing and check the others (idempotent).
    Create,
}

pub async fn run(config: Config, command: TopicsCommand) -> anyhow::Result<()> {
    match command {
        TopicsCommand::Create => {
            let servers = &config.kafka.bootstrap_servers;
            let report = topics::ensure(&config)
                .await
                .with_context(|| format!("creating topics on {servers} (is Kafka running? scripts/kafka.sh start)"))?;
            for (name, status) in report {
                match status {
                    TopicStatus::Created => println!("created  {name}"),
                    TopicStatus::Exists { partitions } => println!("exists   {name} ({partitions} partitions)"),
                }
            }
            Ok(())
        }
    }
}
