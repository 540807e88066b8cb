use clap::Subcommand;
use hookline_core::config::Config;
use hookline_runtime::topics::{self, TopicStatus, TopicsError};

#[derive(Subcommand)]
pub enum TopicsCommand {
    /// Create every topic that is missing and check the others (idempotent).
    Create,
    /// Check every topic (partitions, replication, settings) without changing anything;
    /// exits non-zero and names the fixes when one differs. Needs Describe and
    /// DescribeConfigs on the topics only.
    Check,
}

pub async fn run(config: Config, command: TopicsCommand) -> anyhow::Result<()> {
    let servers = &config.kafka.bootstrap_servers;
    // A refusal says what to grant; anything else may be an unreachable broker.
    let hint = |error: TopicsError, doing: &str| match error {
        TopicsError::Refused(r) => anyhow::Error::new(r),
        other => {
            anyhow::Error::new(other).context(format!("{doing} on {servers} (is Kafka running? scripts/kafka.sh start)"))
        }
    };
    match command {
        TopicsCommand::Create => {
            let report = topics::ensure(&config).await.map_err(|e| hint(e, "creating topics"))?;
            for (name, status) in report {
                let (line, problems) = match status {
                    TopicStatus::Created { problems } => (format!("created  {name}"), problems),
                    TopicStatus::Exists { partitions, problems } => {
                        (format!("exists   {name} ({})", topics::partitions(partitions)), problems)
                    }
                };
                let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
                if problems.is_empty() {
                    println!("{line}");
                } else {
                    println!("{line}: {}", problems.join("; "));
                }
            }
            Ok(())
        }
        TopicsCommand::Check => {
            let checks = topics::check(&config).await.map_err(|e| hint(e, "checking topics"))?;
            for check in &checks {
                println!("{check}");
            }
            let wrong = checks.iter().filter(|c| !c.is_ok()).count();
            if wrong == 0 {
                return Ok(());
            }
            println!("to fix:");
            for fix in topics::fixes(&checks, servers) {
                println!("  {fix}");
            }
            anyhow::bail!("{wrong} of {} topics differ from the configuration (fixes above)", checks.len())
        }
    }
}

