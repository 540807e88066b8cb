//! The API form of an endpoint's authentication beyond signatures (`auth`,
//! `client_certificate`): what a request gives (secrets included) and what a view shows
//! (the kind and the non-secret settings, never a password, token, client secret or key).

use hookline_proto::v1;
use hookline_proto::v1::endpoint_auth::Kind;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// How the sender authenticates to the endpoint, besides signing: sets `Authorization`
/// on every delivery (an endpoint with `auth` may not also set an `Authorization` header).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum AuthInput {
    /// `Authorization: Basic base64(username:password)`.
    Basic {
        /// No `:` (RFC 7617).
        username: String,
        /// Sealed at rest; never shown again.
        password: String,
    },
    /// `Authorization: Bearer <token>`.
    Bearer {
        /// Visible ASCII without spaces. Sealed at rest; never shown again.
        token: String,
    },
    /// OAuth2 client credentials: the sender fetches a token from `token_url` (checked by
    /// the SSRF policy like `url`), caches it until shortly before it expires, and fetches
    /// a new one when the endpoint answers 401 (then sends the attempt once more).
    Oauth2 {
        /// Absolute https URL of the token endpoint.
        token_url: String,
        client_id: String,
        /// Sent with HTTP Basic to the token endpoint. Sealed at rest; never shown again.
        client_secret: String,
        /// Space-separated scopes (default: none sent).
        #[serde(default)]
        scope: String,
        /// `audience` parameter, for providers that ask for one (default: none sent).
        #[serde(default)]
        audience: String,
    },
}

impl AuthInput {
    pub fn proto(self) -> v1::EndpointAuth {
        let kind = match self {
            Self::Basic { username, password } => Kind::Basic(v1::BasicAuth { username, password }),
            Self::Bearer { token } => Kind::Bearer(v1::BearerAuth { token }),
            Self::Oauth2 { token_url, client_id, client_secret, scope, audience } => {
                Kind::Oauth2(v1::OAuth2ClientCredentials { token_url, client_id, client_secret, scope, audience })
            }
        };
        v1::EndpointAuth { kind: Some(kind) }
    }
}

/// An endpoint's `auth` as shown: the kind and its settings, without the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum AuthView {
    Basic {
        username: String,
    },
    Bearer {},
    Oauth2 {
        token_url: String,
        client_id: String,
        #[serde(skip_serializing_if = "String::is_empty")]
        scope: String,
        #[serde(skip_serializing_if = "String::is_empty")]
        audience: String,
    },
}

impl AuthView {
    pub fn of(auth: &v1::EndpointAuth) -> Option<Self> {
        Some(match auth.kind.as_ref()? {
            Kind::Basic(b) => Self::Basic { username: b.username.clone() },
            Kind::Bearer(_) => Self::Bearer {},
            Kind::Oauth2(o) => Self::Oauth2 {
                token_url: o.token_url.clone(),
                client_id: o.client_id.clone(),
                scope: o.scope.clone(),
                audience: o.audience.clone(),
            },
        })
    }
}

/// A TLS client certificate the sender presents to this endpoint (mTLS). Replacing it
/// takes effect on the next delivery.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientCertificateInput {
    /// PEM certificate chain, leaf first.
    pub certificate_pem: String,
    /// PEM private key of the leaf (PKCS#8, PKCS#1 or SEC1, unencrypted). Sealed at rest;
    /// never shown again.
    pub private_key_pem: String,
}

impl ClientCertificateInput {
    pub fn proto(self) -> v1::ClientCertificate {
        v1::ClientCertificate { certificate_pem: self.certificate_pem, private_key_pem: self.private_key_pem }
    }
}

/// The client certificate as shown: the chain (public) and the leaf's fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ClientCertificateView {
    pub certificate_pem: String,
    /// SHA-256 of the leaf certificate, hex with colons.
    pub sha256: String,
}

impl ClientCertificateView {
    pub fn of(c: &v1::ClientCertificate) -> Self {
        Self {
            certificate_pem: c.certificate_pem.clone(),
            sha256: hookline_core::client_cert::leaf_sha256(&c.certificate_pem).unwrap_or_default(),
        }
    }
}
