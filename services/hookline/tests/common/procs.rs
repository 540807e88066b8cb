//! Hookline roles as real processes (the built `hookline` binary), so tests can kill them
//! with SIGKILL at any instruction.

use hookline_core::config::Config;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

pub struct Role {
    name: &'static str,
    config_path: PathBuf,
    child: Option<Child>,
}

impl Role {
    /// Starts `hookline <name>` with `config` written to a temporary TOML file.
    pub fn start(name: &'static str, config: &Config) -> Self {
        let dir = std::env::temp_dir().join(format!("hookline-test-{}", config.kafka.topic_prefix));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let config_path = dir.join("hookline.toml");
        // Written aside and renamed: a role starting meanwhile never reads a half-written file.
        let aside = dir.join(format!("hookline.toml.{}", std::process::id()));
        std::fs::write(&aside, toml::to_string(config).expect("config as toml")).expect("write config");
        std::fs::rename(&aside, &config_path).expect("config in place");
        let mut role = Self { name, config_path, child: None };
        role.spawn();
        role
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.config_path.with_file_name(format!("{}.log", self.name)))
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_hookline"))
            .arg("--config")
            .arg(&self.config_path)
            .arg(self.name)
            .env("HOOKLINE_LOG__LEVEL", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("hookline starts");
        self.child = Some(child);
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// SIGKILL, then start again.
    pub fn kill9_and_restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait: the graceful path.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
        child.wait().ok()
    }

    /// What the roles of this name have logged so far (they share one file, one JSON line
    /// per event).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.config_path.with_file_name(format!("{}.log", self.name))).unwrap_or_default()
    }

    /// Peak resident memory so far (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        status.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()
    }
}

impl Drop for Role {
    fn drop(&mut self) {
        self.kill9();
    }
}
