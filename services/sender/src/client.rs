//! The one pooled HTTP client of a sender: HTTP/1.1 and HTTP/2 (ALPN) over rustls, keep-alive,
//! connect timeout, no redirects (hyper never follows them), and a resolver that checks
//! every resolved address against the SSRF policy and hands hyper only the allowed ones,
//! so the connection goes to an address that was checked.

use bytes::Bytes;
use dashmap::DashMap;
use futures::future::BoxFuture;
use hookline_core::client_cert::ClientIdentity;
use hookline_core::address::{AddressPolicy, Blocked};
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

pub type HttpClient = Client<HttpsConnector<HttpConnector<PolicyResolver>>, Full<Bytes>>;

/// Every address of a host was refused by the policy.
#[derive(Debug, thiserror::Error)]
#[error("blocked by policy: {host} resolves only to refused addresses ({})", .refused.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct BlockedHost {
    pub host: String,
    pub refused: Vec<Blocked>,
}

type Lookup = Arc<dyn Fn(String) -> BoxFuture<'static, std::io::Result<Vec<IpAddr>>> + Send + Sync>;

/// A DNS resolver that filters answers through an [`AddressPolicy`].
#[derive(Clone)]
pub struct PolicyResolver {
    policy: Arc<AddressPolicy>,
    lookup: Lookup,
}

impl PolicyResolver {
    /// Resolves with the system resolver.
    pub fn system(policy: Arc<AddressPolicy>) -> Self {
        let lookup: Lookup = Arc::new(|host: String| {
            Box::pin(async move {
                Ok(tokio::net::lookup_host((host.as_str(), 0)).await?.map(|a| a.ip()).collect())
            })
        });
        Self { policy, lookup }
    }

    /// Resolves with `lookup` (tests answer with chosen addresses).
    pub fn with_lookup(policy: Arc<AddressPolicy>, lookup: Lookup) -> Self {
        Self { policy, lookup }
    }
}

impl tower_service::Service<Name> for PolicyResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let policy = Arc::clone(&self.policy);
        let lookup = Arc::clone(&self.lookup);
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let answers = lookup(host.clone()).await?;
            let mut allowed = Vec::new();
            let mut refused = Vec::new();
            for ip in answers {
                match policy.check(ip) {
                    Ok(()) => allowed.push(SocketAddr::new(ip, 0)),
                    Err(blocked) => refused.push(blocked),
                }
            }
            if allowed.is_empty() {
                return Err(Box::new(BlockedHost { host, refused }) as Self::Error);
            }
            Ok(allowed.into_iter())
        })
    }
}

#[derive(Clone)]
pub struct ClientSettings {
    pub connect_timeout: Duration,
    pub pool_max_idle_per_host: usize,
    /// Trusted besides the public (webpki) roots (`sender.ca_file`).
    pub extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
}

/// Reads the CA certificates of a PEM file (`sender.ca_file`).
pub fn read_ca_file(path: &str) -> anyhow::Result<Vec<rustls::pki_types::CertificateDer<'static>>> {
    use rustls::pki_types::pem::PemObject as _;
    let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
        .map_err(|e| anyhow::anyhow!("sender.ca_file {path}: {e}"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("sender.ca_file {path}: {e}"))?;
    anyhow::ensure!(!certs.is_empty(), "sender.ca_file {path}: no certificate in it");
    Ok(certs)
}

pub fn build(resolver: PolicyResolver, settings: &ClientSettings) -> Result<HttpClient, rustls::Error> {
    build_with_identity(resolver, settings, None)
}

/// A client like [`build`]'s that presents `identity` when a server asks for a client
/// certificate (mTLS).
pub fn build_with_identity(
    resolver: PolicyResolver,
    settings: &ClientSettings,
    identity: Option<&ClientIdentity>,
) -> Result<HttpClient, rustls::Error> {
    let mut http = HttpConnector::new_with_resolver(resolver);
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(settings.connect_timeout));
    http.set_keepalive(Some(Duration::from_secs(60)));
    let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    for cert in &settings.extra_roots {
        roots.add(cert.clone())?;
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let tls = match identity {
        Some(id) => tls.with_client_auth_cert(id.chain.clone(), id.key.clone_key())?,
        None => tls.with_no_client_auth(),
    };
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(settings.pool_max_idle_per_host)
        .pool_idle_timeout(Duration::from_secs(90))
        .build(https))
}

/// The clients of endpoints with a client certificate: hyper's pooled client has one TLS
/// config, so each such endpoint gets its own client (and pool), sharing the SSRF
/// resolver. Kept per endpoint and certificate fingerprint: a rotated certificate builds a
/// new client on the next delivery, and the old one (with its connections) is dropped.
pub struct EndpointClients {
    resolver: PolicyResolver,
    settings: ClientSettings,
    clients: DashMap<String, ([u8; 32], HttpClient)>,
}

impl EndpointClients {
    pub fn new(resolver: PolicyResolver, settings: ClientSettings) -> Self {
        Self { resolver, settings, clients: DashMap::new() }
    }

    /// The client that presents `identity` for `endpoint_id`.
    pub fn client(&self, endpoint_id: &str, identity: &ClientIdentity) -> Result<HttpClient, rustls::Error> {
        if let Some(held) = self.clients.get(endpoint_id).filter(|c| c.0 == identity.fingerprint) {
            return Ok(held.1.clone());
        }
        let client = build_with_identity(self.resolver.clone(), &self.settings, Some(identity))?;
        self.clients.insert(endpoint_id.to_owned(), (identity.fingerprint, client.clone()));
        tracing::info!(endpoint_id, "client certificate loaded");
        Ok(client)
    }

    /// Drops the client of `endpoint_id`, whose certificate was removed.
    pub fn forget(&self, endpoint_id: &str) {
        if self.clients.contains_key(endpoint_id) {
            self.clients.remove(endpoint_id);
        }
    }

    pub fn len(&self) -> usize {
        self.clients.len()
    }

    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }
}

/// Finds a [`BlockedHost`] anywhere in an error's source chain.
pub fn blocked_cause<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a BlockedHost> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(blocked) = e.downcast_ref::<BlockedHost>() {
            return Some(blocked);
        }
        current = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower_service::Service as _;

    fn answering(ips: &'static [&'static str]) -> Lookup {
        Arc::new(move |_host: String| {
            Box::pin(async move { Ok(ips.iter().map(|ip| ip.parse().expect("ip")).collect()) })
        })
    }

    fn name(host: &str) -> Name {
        host.parse().expect("name")
    }

    #[tokio::test]
    async fn only_allowed_addresses_reach_the_connector() {
        // A rebinding-style answer: one public address, one private.
        let mut resolver = PolicyResolver::with_lookup(Arc::default(), answering(&["93.184.216.34", "10.0.0.5"]));
        let addrs: Vec<SocketAddr> = resolver.call(name("example.test")).await.expect("resolves").collect();
        assert_eq!(addrs, ["93.184.216.34:0".parse::<SocketAddr>().expect("addr")]);
    }

    #[test]
    fn a_rotated_certificate_builds_a_new_client() {
        let settings = ClientSettings { connect_timeout: Duration::from_secs(1), pool_max_idle_per_host: 1, extra_roots: Vec::new() };
        let clients = EndpointClients::new(PolicyResolver::system(Arc::default()), settings);
        let a = hookline_core::client_cert::parse(include_str!("../../core/src/testdata/client-a.pem"), include_str!("../../core/src/testdata/client-a.key"))
            .expect("a");
        let b = hookline_core::client_cert::parse(include_str!("../../core/src/testdata/client-b.pem"), include_str!("../../core/src/testdata/client-b.key"))
            .expect("b");
        clients.client("ep1", &a).expect("built");
        clients.client("ep1", &a).expect("cached");
        assert_eq!(clients.clients.get("ep1").map(|c| c.0), Some(a.fingerprint));
        clients.client("ep1", &b).expect("rotated");
        assert_eq!(clients.clients.get("ep1").map(|c| c.0), Some(b.fingerprint), "the old client is replaced");
        assert_eq!(clients.len(), 1);
        clients.forget("ep1");
        assert!(clients.is_empty());
    }

    #[tokio::test]
    async fn a_host_with_only_refused_addresses_is_blocked_with_the_reasons() {
        let mut resolver = PolicyResolver::with_lookup(Arc::default(), answering(&["169.254.169.254", "::1"]));
        let error = resolver.call(name("metadata.test")).await.expect_err("blocked");
        let blocked = blocked_cause(error.as_ref()).expect("a BlockedHost");
        assert_eq!(blocked.refused.len(), 2);
        let text = error.to_string();
        assert!(text.contains("link-local (cloud metadata)") && text.contains("loopback"), "{text}");
    }
}
