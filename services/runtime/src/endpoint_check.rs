//! The rules a writer holds an endpoint to (`core::endpoint_rules::check_write`), with the
//! host names of its URLs resolved first: the API and `hookline endpoint create` both call
//! this, so an endpoint is refused for the same reasons, in the same words, by either.

use hookline_core::endpoint_rules::{self, FieldProblem, WritePolicy};
use hookline_core::matching::Subscription;
use hookline_proto::v1;
use std::collections::hash_map::{Entry, HashMap};
use std::net::IpAddr;

/// Every problem at once (a record rule alone, as `check_write` says), or the endpoint's
/// subscription. A name that does not resolve now passes: the sender checks at send time.
pub async fn check(endpoint: &v1::Endpoint, policy: &WritePolicy<'_>) -> Result<Subscription, Vec<FieldProblem>> {
    let mut resolved: HashMap<String, Vec<IpAddr>> = HashMap::new();
    for (_, url) in endpoint_rules::target_urls(endpoint) {
        let Some((host, None)) = endpoint_rules::host_of(url) else { continue };
        if let Entry::Vacant(slot) = resolved.entry(host) {
            let addresses = tokio::net::lookup_host((slot.key().as_str(), 0)).await.map(|a| a.map(|s| s.ip()).collect());
            slot.insert(addresses.unwrap_or_default());
        }
    }
    endpoint_rules::check_write(endpoint, policy, &|host| resolved.get(host).cloned().unwrap_or_default())
}
