# Shared by load-tests/cluster.sh and load-tests/cluster-acl.sh (sourced): an API token, and
# the configuration every role of a cluster run shares.

# new_token NAME: a random API token in $token, its SHA-256 (for api.tokens) in $token_sha.
new_token() {
  token="hl_$1_$(od -An -tx1 -N12 /dev/urandom | tr -d ' \n')"
  token_sha=$(printf %s "$token" | sha256sum | cut -d' ' -f1)
}

# roles_toml TOKEN_NAME LOG_LEVEL: the sections after [kafka]: loopback endpoints allowed
# (the sink), plain-HTTP endpoint URLs, the token with every scope, the log level.
roles_toml() {
  cat <<TOML
[sender]
allowed_cidrs = ["127.0.0.0/8"]

[api]
require_https = false

[[api.tokens]]
name = "$1"
sha256 = "$token_sha"
scopes = ["admin"]

[log]
level = "$2"
TOML
}
