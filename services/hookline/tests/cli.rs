//! The command line as a user runs it (the built binary, a config file): `config` redacts
//! secrets, subcommands that do not use the configuration run with a broken one,
//! `endpoint create` applies the API's rules and refuses to replace an endpoint by accident,
//! and `publish` prints the ids it made. The tests that write endpoints and events need the
//! broker (`HOOKLINE_TEST_KAFKA`); the others do not.

mod common;

use hookline_core::config::Config;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// An installation of its own (prefix `t<uuid>`), small, with one retry tier.
fn config() -> Config {
    let mut c = Config::default();
    c.kafka.bootstrap_servers = common::bootstrap();
    c.kafka.topic_prefix = format!("t{}", uuid::Uuid::new_v4().simple());
    c.kafka.partitions.events = 1;
    c.kafka.partitions.deliveries = 1;
    c.kafka.partitions.attempts = 1;
    c.kafka.partitions.dlq = 1;
    c.kafka.partitions.retry = 1;
    c.retry.schedule = hookline_core::retry::RetrySchedule::parse(&["1s"]).expect("schedule");
    c.admin.listen = None;
    c
}

/// `hookline <args>` with `config` (TOML text) as its file and `env` set, with a deadline.
fn hookline(config: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let dir = std::env::temp_dir().join(format!("hookline-cli-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path: PathBuf = dir.join("hookline.toml");
    std::fs::write(&path, config).expect("write config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_hookline"))
        .arg("--config")
        .arg(&path)
        .args(args)
        .env("HOOKLINE_LOG__LEVEL", "warn")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("hookline starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("wait").is_none() {
        assert!(Instant::now() < deadline, "hookline {args:?} still running after 60s");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    let _ = std::fs::remove_dir_all(&dir);
    out
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn toml(c: &Config) -> String {
    toml::to_string(c).expect("config as toml")
}

#[test]
fn config_redacts_every_secret_unless_asked() {
    let mut c = Config::default();
    c.kafka.client.insert("security.protocol".into(), "SASL_SSL".into());
    c.kafka.client.insert("sasl.username".into(), "hookline".into());
    c.kafka.client.insert("sasl.password".into(), "kafka-password-1".into());
    c.traces.otlp_headers.insert("x-api-key".into(), "vendor-key-2".into());
    c.api.portal_session_key = "portal-session-key-3-portal-session-key".into();
    c.secrets.current_key = "k1".into();
    c.secrets.keys.insert("k1".into(), "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".into());
    let secrets = ["kafka-password-1", "vendor-key-2", "portal-session-key-3", "MDEyMzQ1Njc4OWFiY2RlZjAx"];

    let out = hookline(&toml(&c), &["config"], &[]);
    let printed = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for secret in secrets {
        assert!(!printed.contains(secret), "{secret} printed:\n{printed}");
    }
    assert_eq!(printed.matches("\"<redacted>\"").count(), 4, "{printed}");
    assert!(printed.contains("sasl.username\" = \"hookline\""), "{printed}");
    // What is printed loads again, and is the configuration but for the secrets.
    let back: Config = toml::from_str(&printed).expect("printed config parses");
    c.log.level = "warn".into(); // HOOKLINE_LOG__LEVEL, set by `hookline()`
    assert_eq!(back, c.redacted());

    let out = hookline(&toml(&c), &["config", "--show-secrets"], &[]);
    let printed = text(&out.stdout);
    for secret in secrets {
        assert!(printed.contains(secret), "{secret} not printed with --show-secrets:\n{printed}");
    }
}

#[test]
fn commands_that_use_no_configuration_run_with_a_broken_one() {
    let broken = "[kafka]\nbootstrap_servers = \"\"\ntopic_prefix = \"bad prefix!\"\n";
    let out = hookline(broken, &["api", "token", "--name", "ci"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("token: hl_"), "{}", text(&out.stdout));
    let out = hookline(broken, &["secrets", "new-key", "--id", "k1"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Those that use it still refuse it, naming the fields.
    let out = hookline(broken, &["config"], &[]);
    assert_eq!(out.status.code(), Some(64));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("kafka.bootstrap_servers") && stderr.contains("kafka.topic_prefix"), "{stderr}");
}

#[test]
fn endpoint_create_applies_the_api_rules_before_asking_kafka() {
    // No broker at this address: each refusal comes before any Kafka call.
    let mut c = config();
    c.kafka.bootstrap_servers = "127.0.0.1:1".into();
    for (url, header, problem) in [
        ("http://93.184.215.14/hooks", "X-Ok=1", "must be https"),
        ("https://127.0.0.1:9000/", "X-Ok=1", "points at a refused address (127.0.0.1 is a loopback address)"),
        ("https://169.254.169.254/", "X-Ok=1", "points at a refused address"),
        ("https://93.184.215.14/", "Webhook-Signature=v1,x", "headers.Webhook-Signature: is set by Hookline"),
    ] {
        let out = hookline(
            &toml(&c),
            &["endpoint", "create", "--url", url, "--event-types", "*", "--header", header],
            &[],
        );
        let stderr = text(&out.stderr);
        assert!(!out.status.success() && stderr.contains(problem), "{url} {header}: {stderr}");
        assert!(out.stdout.is_empty(), "nothing written for {url}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_create_refuses_a_taken_id_unless_replace_and_keeps_the_secret() {
    let c = config();
    let file = toml(&c);
    let out = hookline(&file, &["topics", "create"], &[]);
    assert!(out.status.success(), "topics create: {}", text(&out.stderr));
    let create = |extra: &[&str]| {
        let mut args = vec!["endpoint", "create", "--dev", "--id", "ep_cli", "--event-types", "order.*"];
        args.extend_from_slice(extra);
        hookline(&file, &args, &[])
    };
    let first = create(&["--url", "http://127.0.0.1:9000/a"]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let first: serde_json::Value = serde_json::from_slice(&first.stdout).expect("endpoint as json");
    let secret = first["secret"].as_str().expect("secret").to_owned();

    let again = create(&["--url", "http://127.0.0.1:9000/b"]);
    assert!(!again.status.success());
    assert!(text(&again.stderr).contains("endpoint \"ep_cli\" exists; pass --replace"), "{}", text(&again.stderr));

    let replaced = create(&["--url", "http://127.0.0.1:9000/b", "--replace"]);
    assert!(replaced.status.success(), "{}", text(&replaced.stderr));
    let replaced: serde_json::Value = serde_json::from_slice(&replaced.stdout).expect("endpoint as json");
    assert_eq!(replaced["url"], "http://127.0.0.1:9000/b");
    assert_eq!(replaced["secret"], secret.as_str(), "the receiver keeps verifying");

    let listed = hookline(&file, &["endpoint", "list"], &[]);
    let listed = text(&listed.stdout);
    assert_eq!(listed.lines().count(), 1, "{listed}");
    assert!(listed.contains("http://127.0.0.1:9000/b"), "{listed}");

    // publish: one id a line on stdout, each a new event's; the summary on stderr.
    let out = hookline(&file, &["publish", "--type", "order.created", "--count", "3"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let ids: Vec<String> = text(&out.stdout).lines().map(str::to_owned).collect();
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert!(ids.iter().all(|id| id.starts_with("evt_")), "{ids:?}");
    assert_eq!(ids.iter().collect::<std::collections::BTreeSet<_>>().len(), 3);
    let stderr = text(&out.stderr);
    assert!(stderr.contains(&format!("published 3 events to {}.events", c.kafka.topic_prefix)), "{stderr}");
    assert!(!stderr.contains('\x1b'), "no progress line off a terminal: {stderr:?}");
}
