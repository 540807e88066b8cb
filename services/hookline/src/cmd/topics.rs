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
            for (name, status) in topics::ensure(&config).await? {
                match status {
                    TopicStatus::Created => println!("created  {name}"),
                    TopicStatus::Exists { partitions } => println!("exists   {name} ({partitions} partitions)"),
                }
            }
            Ok(())
        }
    }
}
