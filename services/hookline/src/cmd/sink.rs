//! `hookline sink`: a local receiver that verifies signatures and counts deliveries.

use hookline_runtime::shutdown;
use hookline_sink::{Sink, SinkConfig, TlsFiles};
use std::net::SocketAddr;
use std::time::Duration;

#[derive(clap::Args)]
pub struct SinkArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9000")]
    pub listen: SocketAddr,
    /// Endpoint secret(s) to verify with, `whsec_...`, or ed25519 public keys `whpk_...`
    /// (repeatable). Without one, requests are counted unverified.
    #[arg(long = "secret", env = "HOOKLINE_SINK_SECRET")]
    pub secrets: Vec<String>,
    /// Print one line per request.
    #[arg(long)]
    pub print: bool,
    /// Top-level JSON field of the body with the event's creation time (Unix ms), for
    /// end-to-end latency (e.g. `occurred_at`).
    #[arg(long)]
    pub latency_field: Option<String>,
    /// Print a summary this often, in seconds (0: never).
    #[arg(long, default_value_t = 5)]
    pub summary_every: u64,
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
}

pub async fn run(args: SinkArgs) -> anyhow::Result<()> {
    let tls = args.tls_cert.zip(args.tls_key).map(|(cert_chain, key)| TlsFiles { cert_chain, key });
    let scheme = if tls.is_some() { "https" } else { "http" };
    let config = SinkConfig { secrets: args.secrets, keep_bodies: false, print: args.print, latency_field: args.latency_field, tls };
    let sink = Sink::bind(args.listen, config).await?;
    let ledger = sink.ledger();
    eprintln!("sink listening on {scheme}://{} (summary: GET /stats)", sink.local_addr());
    if args.summary_every > 0 {
        let every = Duration::from_secs(args.summary_every);
        tokio::spawn(async move {
            let mut last = ledger.summary();
            loop {
                tokio::time::sleep(every).await;
                let now = ledger.summary();
                if now != last {
                    eprintln!("{}", serde_json::to_string(&now).unwrap_or_default());
                    last = now;
                }
            }
        });
    }
    sink.serve(shutdown::signal()).await?;
    Ok(())
}
