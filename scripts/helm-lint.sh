#!/usr/bin/env bash
# Lint and render the Helm chart (helm/hookline) and check the rendered manifests.
#
#   scripts/helm-lint.sh
#
# Installs its tools into .cache/ once (skipped when there, at the pinned versions): helm
# v3.22.0, helm-unittest v1.1.2 and promtool (prometheus v0.316.0) from the Go module proxy,
# PyYAML and kubernetes-validate 1.37.0 from PyPI into .cache/venv-helm, Bitnami's
# readme-generator-for-helm 2.7.2 from npm into .cache/npm-helm (a cold run takes about
# 15 minutes on 2 cores, most of it building promtool), then:
#   - helm lint, plain and --strict, with the default and the production-like values
#     (helm/hookline/ci/production-values.yaml);
#   - helm template with the default values, the production-like values and an
#     existingSecret variant;
#   - renders that must fail (the chart's own validations);
#   - a python3 check of every rendered document (probes, security context, args,
#     checksum annotation, hook annotations, selectors, the hookline.toml in the Secret
#     parsed with tomllib, the replay singleton, the Grafana dashboard ConfigMap, ...);
#   - the Grafana dashboard (helm/hookline/dashboards/hookline.json): valid JSON, data
#     source and variables, every query scoped to $namespace and $job (that every
#     hookline_* metric it and the alert rules query is exported is a test of the metric
#     catalog, services/runtime/src/metric_catalog/tests.rs, run by `cargo test`);
#   - target/debug/hookline, when built, accepts every rendered hookline.toml and refuses
#     an invalid [replay] section, and values.schema.json is current (scripts/helm-schema.sh);
#   - helm-unittest suites (helm/hookline/unittests);
#   - every rendered manifest validated offline against the Kubernetes schemas
#     (kubernetes-validate, strict, 1.25 and 1.37);
#   - the alert rules checked and unit-tested with promtool (helm/hookline/ci/alerts-test.yaml);
#   - the README's Parameters section current (scripts/helm-readme.sh --check).
# Prints one summary line; exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

HELM_VERSION=v3.22.0
# helm built by `go install` has no version ldflags, so its default Kubernetes version is
# 1.20 (below the chart's kubeVersion): give one explicitly.
KUBE_VERSION=${HELM_LINT_KUBE_VERSION:-1.30.0}
chart=helm/hookline
out=$repo/.cache/helm-lint
helm=$repo/.cache/bin/helm
mkdir -p "$out" "$repo/.cache/bin"
fail() { echo "helm-lint: FAIL: $*" >&2; exit 1; }

# The Go tools are built from the Go module proxy into .cache/bin, with Go's module and
# build caches in .cache/go (HELM_LINT_GO_CACHE=<dir> moves them). Each built binary is also
# kept, by tool and version, in a cache of this machine's ($HELM_LINT_TOOL_CACHE, default
# ~/.cache/hookline-helm-tools): a fresh clone on the same machine, as CI makes, copies it
# from there in a second instead of compiling helm, helm-unittest and promtool again
# (about 25 minutes on 2 busy cores).
go_cache=${HELM_LINT_GO_CACHE:-$repo/.cache/go}
tool_cache=${HELM_LINT_TOOL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hookline-helm-tools}
gocache() { GOMODCACHE=$go_cache/mod GOCACHE=$go_cache/build GOFLAGS=-modcacherw "$@"; }
from_tool_cache() { # binary name@version: copy it from the machine's cache if there
  [ -x "$tool_cache/$2" ] && cp "$tool_cache/$2" "$1" && echo "== $2 from $tool_cache" >&2
}
to_tool_cache() { # binary name@version
  mkdir -p "$tool_cache" && cp "$1" "$tool_cache/$2.tmp.$$" && mv "$tool_cache/$2.tmp.$$" "$tool_cache/$2" || true
}

# --- helm ---------------------------------------------------------------------------
# `helm version` of a go-installed helm says "v3.22" (no ldflags); the module version in
# the binary's build info is exact.
have_helm() {
  [ -x "$helm" ] && go version -m "$helm" 2>/dev/null | grep -Eq "^[[:space:]]+mod[[:space:]]+helm.sh/helm/v3[[:space:]]+$HELM_VERSION[[:space:]]"
}
have_helm || from_tool_cache "$helm" "helm@$HELM_VERSION" || true
if ! have_helm; then
  echo "== installing helm $HELM_VERSION from the Go module proxy (once)" >&2
  t0=$(date +%s)
  GOBIN=$repo/.cache/bin gocache go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  have_helm || { echo "helm-lint: $helm is not helm $HELM_VERSION after go install" >&2; exit 1; }
  to_tool_cache "$helm" "helm@$HELM_VERSION"
  echo "== helm built in $(( $(date +%s) - t0 ))s" >&2
fi

# --- helm-unittest ----------------------------------------------------------------------
# Its go.mod has a replace directive, so `go install ...@version` refuses it: build it from
# the module's source in the module cache instead (go mod download, then go build there).
HELM_UNITTEST_VERSION=v1.1.2
unittest=$repo/.cache/bin/helm-unittest
have_unittest() { [ -x "$unittest" ] && [ "$(cat "$unittest.version" 2>/dev/null)" = "$HELM_UNITTEST_VERSION" ]; }
have_unittest || { from_tool_cache "$unittest" "helm-unittest@$HELM_UNITTEST_VERSION" && echo "$HELM_UNITTEST_VERSION" >"$unittest.version"; } || true
if ! have_unittest; then
  echo "== building helm-unittest $HELM_UNITTEST_VERSION from the Go module proxy (once)" >&2
  t0=$(date +%s)
  src=$(cd "$repo" && gocache go mod download -json "github.com/helm-unittest/helm-unittest@$HELM_UNITTEST_VERSION" \
    | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -d "$src" ] || fail "helm-unittest $HELM_UNITTEST_VERSION: no module source"
  (cd "$src" && gocache go build -trimpath -o "$unittest" ./cmd/helm-unittest)
  echo "$HELM_UNITTEST_VERSION" >"$unittest.version"
  to_tool_cache "$unittest" "helm-unittest@$HELM_UNITTEST_VERSION"
  echo "== helm-unittest built in $(( $(date +%s) - t0 ))s" >&2
fi

# --- promtool ----------------------------------------------------------------------------
PROMETHEUS_VERSION=v0.316.0
promtool=$repo/.cache/bin/promtool
have_promtool() { [ -x "$promtool" ] && go version -m "$promtool" 2>/dev/null | grep -Eq "^[[:space:]]+mod[[:space:]]+github.com/prometheus/prometheus[[:space:]]+$PROMETHEUS_VERSION[[:space:]]"; }
have_promtool || from_tool_cache "$promtool" "promtool@$PROMETHEUS_VERSION" || true
if ! have_promtool; then
  echo "== building promtool (prometheus $PROMETHEUS_VERSION) from the Go module proxy (once; about 10 minutes)" >&2
  t0=$(date +%s)
  GOBIN=$repo/.cache/bin gocache go install "github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_VERSION"
  have_promtool || fail "$promtool is not promtool of prometheus $PROMETHEUS_VERSION after go install"
  to_tool_cache "$promtool" "promtool@$PROMETHEUS_VERSION"
  echo "== promtool built in $(( $(date +%s) - t0 ))s" >&2
fi

# --- Python: PyYAML and kubernetes-validate ---------------------------------------------
KUBERNETES_VALIDATE_VERSION=1.37.0
venv=$repo/.cache/venv-helm
python=$venv/bin/python
if ! "$python" -c "import yaml, kubernetes_validate, importlib.metadata as m; assert m.version('kubernetes-validate') == '$KUBERNETES_VALIDATE_VERSION'" 2>/dev/null; then
  echo "== installing PyYAML and kubernetes-validate $KUBERNETES_VALIDATE_VERSION from PyPI into .cache/venv-helm (once)" >&2
  [ -x "$python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check pyyaml "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
fi

# --- lint -----------------------------------------------------------------------------
# The chart's defaults need two values from the user (kafka.bootstrap_servers and an API
# token): ci/required-values.yaml sets just those.
required=(-f "$chart/ci/required-values.yaml")
echo "== helm lint" >&2
"$helm" lint "$chart" --kube-version "$KUBE_VERSION" "${required[@]}" >"$out/lint-default.txt" 2>&1 \
  || { cat "$out/lint-default.txt" >&2; fail "helm lint (default values)"; }
"$helm" lint "$chart" --strict --kube-version "$KUBE_VERSION" "${required[@]}" >"$out/lint-strict.txt" 2>&1 \
  || { cat "$out/lint-strict.txt" >&2; fail "helm lint --strict (default values)"; }
"$helm" lint "$chart" --strict --kube-version "$KUBE_VERSION" -f "$chart/ci/strimzi-values.yaml" \
  >"$out/lint-strimzi.txt" 2>&1 \
  || { cat "$out/lint-strimzi.txt" >&2; fail "helm lint --strict (strimzi values)"; }
"$helm" lint "$chart" --strict --kube-version "$KUBE_VERSION" -f "$chart/ci/production-values.yaml" \
  >"$out/lint-production.txt" 2>&1 \
  || { cat "$out/lint-production.txt" >&2; fail "helm lint --strict (production values)"; }

# --- template -------------------------------------------------------------------------
echo "== helm template" >&2
release=hookline
render() { # name, then helm template args
  local name=$1; shift
  "$helm" template "$release" "$chart" --namespace hookline --kube-version "$KUBE_VERSION" "$@" \
    >"$out/$name.yaml" 2>"$out/$name.err" \
    || { cat "$out/$name.err" >&2; fail "helm template ($name)"; }
}
render default "${required[@]}"
render production -f "$chart/ci/production-values.yaml"
render existing-secret -f "$chart/ci/production-values.yaml" --set existingSecret=hookline-config-managed \
  --set kafkaSasl.enabled=false --set grafana.dashboards.label=hookline_dashboards \
  --set-string grafana.dashboards.labelValue=yes --set grafana.dashboards.namespace=monitoring
render minimal "${required[@]}" --set router.enabled=false --set api.enabled=false --set topicsJob.enabled=false \
  --set serviceAccount.create=false --set metrics.service.enabled=false --set replay.enabled=false
render replay-paused "${required[@]}" --set replay.replicaCount=0
# A [replay] section the binary must refuse (default rate above the maximum).
render replay-invalid "${required[@]}" --set config.replay.default_rate_per_second=6000
# Strimzi mode: KafkaTopics, a KafkaUser and its Secret's password, KEDA, NetworkPolicies.
render strimzi -f "$chart/ci/strimzi-values.yaml"
# The longest release name helm allows (53): every name must stay within 63 characters.
release=$(printf 'a%.0s' $(seq 53))
render long-name -f "$chart/ci/production-values.yaml" --set networkPolicy.enabled=true
release=hookline

# Renders that must be refused, with the message that explains why.
must_fail() { # expected message part, then helm template args
  local want=$1; shift
  if "$helm" template hookline "$chart" --kube-version "$KUBE_VERSION" "${required[@]}" "$@" >/dev/null 2>"$out/must-fail.err"; then
    fail "helm template $* rendered, but should fail with: $want"
  fi
  grep -qF -- "$want" "$out/must-fail.err" || { cat "$out/must-fail.err" >&2; fail "helm template $*: expected '$want'"; }
}
neg=0
must_fail "allow_loopback is for \`hookline dev\` only" --set config.sender.allow_loopback=true; neg=$((neg + 1))
must_fail "sender.replicaCount 13 exceeds config.kafka.partitions.deliveries (12)" --set sender.replicaCount=13; neg=$((neg + 1))
must_fail "router.autoscaling.maxReplicas 7 exceeds" --set router.autoscaling.enabled=true --set router.autoscaling.maxReplicas=7; neg=$((neg + 1))
must_fail "must exceed sender.request_timeout_ms/1000 + 5 (20)" --set sender.terminationGracePeriodSeconds=20; neg=$((neg + 1))
must_fail "'/apiTokens/0/sha256': 'abc' does not match pattern" --set 'apiTokens[0].name=x' --set 'apiTokens[0].sha256=abc' --set 'apiTokens[0].scopes[0]=admin'; neg=$((neg + 1))
must_fail "'/apiTokens/0/scopes/0': value must be one of 'admin', 'read', 'publish'" --set 'apiTokens[0].name=x' \
  --set "apiTokens[0].sha256=$(printf x | sha256sum | cut -d' ' -f1)" --set 'apiTokens[0].scopes[0]=root'; neg=$((neg + 1))
must_fail "kafkaSasl.enabled needs kafkaSasl.password" --set kafkaSasl.enabled=true --set kafkaSasl.username=u; neg=$((neg + 1))
must_fail "put API tokens in apiTokens" --set 'config.api.tokens[0].name=x'; neg=$((neg + 1))
must_fail "replay.replicaCount 2: the replay worker is a singleton" --set replay.replicaCount=2; neg=$((neg + 1))
must_fail "replay.updateStrategy must be {type: Recreate}" --set replay.updateStrategy.type=RollingUpdate; neg=$((neg + 1))
must_fail "replay.updateStrategy must be {type: Recreate}" --set replay.updateStrategy.rollingUpdate.maxSurge=1; neg=$((neg + 1))
must_fail "secretKeys.existingSecret needs secretKeys.currentKey" --set secretKeys.existingSecret=keys; neg=$((neg + 1))
# values.schema.json (scripts/helm-schema.sh): a typo or a wrong type fails naming the key.
must_fail "additional properties 'replicacount' not allowed" --set sender.replicacount=3; neg=$((neg + 1))
must_fail "additional properties 'request_timeout' not allowed" --set config.sender.request_timeout=1000; neg=$((neg + 1))
must_fail "additional properties 'listen' not allowed" --set config.admin.listen=0.0.0.0:1; neg=$((neg + 1))
must_fail "additional properties 'peroidSeconds' not allowed" --set sender.probes.livenessProbe.peroidSeconds=5; neg=$((neg + 1))
must_fail "'/sender/keda/lagThreshold': 'lots' does not match pattern" --set sender.keda.lagThreshold=lots; neg=$((neg + 1))
must_fail "'/image/pullPolicy': value must be one of" --set image.pullPolicy=Sometimes; neg=$((neg + 1))
must_fail "config.kafka.bootstrap_servers is required" --set config.kafka.bootstrap_servers=; neg=$((neg + 1))
must_fail "api.enabled needs at least one apiTokens entry" --set apiTokens=null; neg=$((neg + 1))
must_fail "sender.keda.enabled and sender.autoscaling.enabled are mutually exclusive" --set sender.keda.enabled=true --set sender.autoscaling.enabled=true; neg=$((neg + 1))
must_fail "sender.keda.enabled needs config.kafka.bootstrap_servers" --set existingSecret=managed --set config.kafka.bootstrap_servers= --set sender.keda.enabled=true; neg=$((neg + 1))
must_fail "router.keda.maxReplicas 7 exceeds config.kafka.partitions.events (6)" --set router.keda.enabled=true --set router.keda.maxReplicas=7; neg=$((neg + 1))
must_fail "api.preStopDelaySeconds (45) must be below" --set api.preStopDelaySeconds=45; neg=$((neg + 1))
must_fail "set topicsJob.enabled=false" --set strimzi.enabled=true --set kafkaSasl.enabled=true; neg=$((neg + 1))
must_fail "strimzi.user.enabled makes a SCRAM KafkaUser: set kafkaSasl.enabled=true" --set strimzi.enabled=true --set topicsJob.enabled=false; neg=$((neg + 1))
must_fail "set kafkaSasl.password or kafkaSasl.existingSecret, not both" --set kafkaSasl.enabled=true --set kafkaSasl.username=u --set kafkaSasl.password=p --set kafkaSasl.existingSecret=s; neg=$((neg + 1))

# --- checks ---------------------------------------------------------------------------
echo "== checks" >&2
"$python" - "$out" "$neg" <<'PY'
import base64, json, os, re, sys, tomllib, yaml

out, negatives = sys.argv[1], int(sys.argv[2])
dashboard_file = "helm/hookline/dashboards/hookline.json"
checks = 0
manifests = 0
failures = []

def check(cond, what):
    global checks
    checks += 1
    if not cond:
        failures.append(what)
    return cond

loaded = {}
def load(name):
    # Each rendered set is parsed and counted once, whoever asks for it.
    if name not in loaded:
        loaded[name] = load_set(name)
    return loaded[name]

def load_set(name):
    global manifests
    text = open(f"{out}/{name}.yaml").read()
    docs = []
    for i, d in enumerate(yaml.safe_load_all(text)):
        if d is None:
            # helm emits a bare "---" only for templates that render nothing; a real
            # document that parsed to nothing is an error.
            continue
        check(isinstance(d, dict) and d.get("apiVersion") and d.get("kind")
              and (d.get("metadata") or {}).get("name"), f"{name}: document {i} is not a k8s object: {str(d)[:80]}")
        docs.append(d)
    check(len(docs) > 0, f"{name}: rendered nothing")
    for d in docs:
        # Names are DNS labels for most kinds (Services always): 63 characters at most.
        n = d["metadata"]["name"]
        check(len(n) <= 63 and re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", n), f"{name}: {d['kind']} name {n!r} ({len(n)} characters) is not a DNS label")
    keys = [(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]) for d in docs]
    check(len(keys) == len(set(keys)), f"{name}: duplicate kind/name: {sorted(k for k in keys if keys.count(k) > 1)}")
    manifests += len(docs)
    return docs

def by_kind(docs, kind):
    return [d for d in docs if d["kind"] == kind]

def hook(d):
    return (d["metadata"].get("annotations") or {}).get("helm.sh/hook")

def subset(a, b):
    return all(b.get(k) == v for k, v in (a or {}).items())

def hookline_toml(secret):
    return base64.b64decode(secret["data"]["hookline.toml"]).decode()

def check_set(name, docs, *, roles, tokens, sasl, existing=None, monitoring=False, hpa=(), ingress=False, job=True,
              replay=None, dashboards=None, keda=(), runbooks="https://github.com/hookline/hookline/blob/main/docs/operations.md"):
    deps = {d["metadata"]["labels"]["app.kubernetes.io/component"]: d for d in by_kind(docs, "Deployment")}
    check(sorted(deps) == sorted(roles), f"{name}: deployments {sorted(deps)} != {sorted(roles)}")
    secrets = {d["metadata"]["name"]: d for d in by_kind(docs, "Secret")}
    main_secrets = [s for s in secrets.values() if not hook(s)]
    sas = {d["metadata"]["name"] for d in by_kind(docs, "ServiceAccount") if not hook(d)}

    # The configuration file.
    cfg = None
    if existing:
        check(not main_secrets, f"{name}: existingSecret set but the chart renders a config Secret")
    else:
        check(len(main_secrets) == 1, f"{name}: expected one config Secret, got {len(main_secrets)}")
        text = hookline_toml(main_secrets[0])
        try:
            cfg = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            check(False, f"{name}: hookline.toml does not parse: {e}\n{text}")
    if cfg is not None:
        for section in ("kafka", "router", "sender", "retry", "breaker", "admin", "api", "replay", "traces", "log"):
            check(isinstance(cfg.get(section), dict), f"{name}: hookline.toml has no [{section}]")
        k = cfg.get("kafka", {})
        check(isinstance(k.get("bootstrap_servers"), str) and k["bootstrap_servers"], f"{name}: kafka.bootstrap_servers")
        check(k.get("replication_factor") == 3 and k.get("min_insync_replicas") == 2, f"{name}: production replication settings")
        check(type(k.get("dlq_retention_ms")) is int and k["dlq_retention_ms"] == 2592000000, f"{name}: dlq_retention_ms rendered as an integer")
        parts = k.get("partitions", {})
        check(all(type(parts.get(p)) is int for p in ("events", "deliveries", "attempts", "dlq", "retry")), f"{name}: kafka.partitions")
        check(isinstance(cfg["retry"].get("schedule"), list) and cfg["retry"]["schedule"][0] == "5s", f"{name}: retry.schedule")
        check(cfg["retry"].get("jitter") == 0.1, f"{name}: retry.jitter float")
        check(cfg["admin"].get("listen") == "0.0.0.0:9090", f"{name}: admin.listen")
        check(cfg["api"].get("listen") == "0.0.0.0:8080", f"{name}: api.listen")
        check(cfg["log"].get("format") == "json", f"{name}: log.format json")
        # [replay] is rendered even with replay.enabled=false: the api reads it too.
        rp = cfg.get("replay", {})
        check(rp == {"default_rate_per_second": 200, "max_rate_per_second": 5000, "progress_interval_ms": 1000, "keep_finished_ms": 2592000000, **(replay or {})},
              f"{name}: [replay] {rp}")
        check(all(type(v) is int for v in rp.values()), f"{name}: [replay] values rendered as integers")
        tr = cfg.get("traces", {})
        check(tr.get("service_name") == "hookline" and tr.get("propagate_to_endpoints") is False, f"{name}: [traces] {tr}")
        check(tr.get("otlp_endpoint") in ("", "http://otel-collector.observability:4318/v1/traces"), f"{name}: traces.otlp_endpoint {tr.get('otlp_endpoint')!r}")
        check("allow_loopback" not in cfg["sender"], f"{name}: sender.allow_loopback must not be set")
        toks = cfg["api"].get("tokens", [])
        check(len(toks) == tokens, f"{name}: {len(toks)} api tokens, expected {tokens}")
        for t in toks:
            check(set(t) == {"name", "sha256", "scopes"} and re.fullmatch(r"[0-9a-f]{64}", t["sha256"])
                  and set(t["scopes"]) <= {"admin", "read", "publish"}, f"{name}: bad token entry {t}")
        client = k.get("client", {})
        if sasl:
            check(client.get("security.protocol") == "SASL_SSL" and client.get("sasl.mechanism")
                  and client.get("sasl.username") and client.get("sasl.password"), f"{name}: SASL settings in kafka.client")
        else:
            check("sasl.password" not in client, f"{name}: unexpected sasl.password")
    config_secret = existing or (main_secrets[0]["metadata"]["name"] if main_secrets else None)

    # Deployments.
    for role, d in deps.items():
        n = f"{name}: deployment {d['metadata']['name']}"
        spec = d["spec"]
        pod = spec["template"]
        ps = pod["spec"]
        check(subset(spec["selector"]["matchLabels"], pod["metadata"]["labels"]), f"{n}: selector does not match pod labels")
        check(spec["selector"]["matchLabels"].get("app.kubernetes.io/component") == role, f"{n}: component in selector")
        ann = pod["metadata"].get("annotations") or {}
        check(re.fullmatch(r"[0-9a-f]{64}", str(ann.get("checksum/config", ""))), f"{n}: checksum/config annotation")
        check(ps.get("securityContext", {}).get("runAsNonRoot") is True, f"{n}: pod runAsNonRoot")
        check(ps.get("securityContext", {}).get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{n}: pod seccomp")
        check(ps.get("automountServiceAccountToken") is False, f"{n}: automountServiceAccountToken false")
        sa = ps.get("serviceAccountName")
        check(sa in sas or sa == "default", f"{n}: serviceAccount {sa} not rendered")
        grace = ps.get("terminationGracePeriodSeconds")
        check(isinstance(grace, int) and grace > 15 + 5, f"{n}: terminationGracePeriodSeconds {grace}")
        check(len(ps["containers"]) == 1, f"{n}: one container")
        c = ps["containers"][0]
        check(c.get("args") == ["--config", "/etc/hookline/hookline.toml", role], f"{n}: args {c.get('args')}")
        ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
        check(ports.get("admin") == 9090, f"{n}: admin port")
        if role == "api":
            check(ports.get("http") == 8080, f"{n}: http port")
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"), ("startupProbe", "/healthz")):
            g = (c.get(probe) or {}).get("httpGet") or {}
            check(g.get("path") == path and g.get("port") == "admin", f"{n}: {probe} should GET {path} on admin")
        sp = c.get("startupProbe") or {}
        check(sp.get("failureThreshold", 0) * sp.get("periodSeconds", 0) >= 120, f"{n}: startup probe too short")
        sc = c.get("securityContext") or {}
        check(sc.get("runAsNonRoot") is True, f"{n}: container runAsNonRoot")
        check(sc.get("readOnlyRootFilesystem") is True, f"{n}: readOnlyRootFilesystem")
        check(sc.get("allowPrivilegeEscalation") is False, f"{n}: allowPrivilegeEscalation")
        check(sc.get("capabilities", {}).get("drop") == ["ALL"], f"{n}: drop ALL")
        check(sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{n}: container seccomp")
        vols = {v["name"]: v for v in ps.get("volumes", [])}
        # With a SASL password from a Secret, the config Secret is a template and an init
        # container writes /etc/hookline (an in-memory volume).
        cfg_vol = vols.get("config-template") or vols.get("config", {})
        check(cfg_vol.get("secret", {}).get("secretName") == config_secret, f"{n}: config volume is not Secret {config_secret}")
        mounts = {m["name"]: m for m in c.get("volumeMounts", [])}
        check(mounts.get("config", {}).get("mountPath") == "/etc/hookline", f"{n}: config mount")
        check(all(m["name"] in vols for m in c.get("volumeMounts", [])), f"{n}: mount without volume")
        check(not any(m["mountPath"].startswith("/etc/hookline/") for m in c.get("volumeMounts", [])),
              f"{n}: a mount nested in the read-only config volume /etc/hookline")
        if role in hpa or role in keda:
            check("replicas" not in spec, f"{n}: replicas set although an HPA manages it")
        else:
            check(isinstance(spec.get("replicas"), int) and spec["replicas"] >= 1, f"{n}: replicas")
        if role == "replay":
            # A singleton: two workers would run every replay job twice.
            check(spec.get("replicas") == 1, f"{n}: replay replicas {spec.get('replicas')}, expected 1")
            check(spec.get("strategy") == {"type": "Recreate"}, f"{n}: replay strategy {spec.get('strategy')}, expected Recreate")
            check(c.get("args", [])[-1:] == ["replay"], f"{n}: replay args {c.get('args')}")
            res = c.get("resources") or {}
            check(res.get("requests", {}).get("cpu") and res.get("requests", {}).get("memory")
                  and res.get("limits", {}).get("memory"), f"{n}: replay resources {res}")

    pods = {role: d["spec"]["template"] for role, d in deps.items()}
    def selects_pod(selector):
        return [r for r, p in pods.items() if subset(selector, p["metadata"]["labels"])]

    # Services.
    svcs = {d["metadata"]["name"]: d for d in by_kind(docs, "Service")}
    for s in svcs.values():
        n = f"{name}: service {s['metadata']['name']}"
        roles_sel = selects_pod(s["spec"]["selector"])
        check(len(roles_sel) == 1, f"{n}: selects {roles_sel}")
        for p in s["spec"]["ports"]:
            if roles_sel:
                cports = {cp["name"] for cp in pods[roles_sel[0]]["spec"]["containers"][0]["ports"]}
                check(p["targetPort"] in cports, f"{n}: targetPort {p['targetPort']} not a container port")
    if "api" in roles:
        check(any(s["spec"]["ports"][0]["port"] == 8080 and s["spec"]["type"] == "ClusterIP" for s in svcs.values()), f"{name}: api Service on 8080")

    # PodDisruptionBudgets: one per role with more than one replica; none for the replay
    # singleton (minAvailable 1 on one pod would block every node drain).
    pdbs = by_kind(docs, "PodDisruptionBudget")
    for p in pdbs:
        sel = selects_pod(p["spec"]["selector"]["matchLabels"])
        check(len(sel) == 1, f"{name}: PDB {p['metadata']['name']} selects no single role")
        check(sel != ["replay"], f"{name}: PDB {p['metadata']['name']} for the replay singleton")
        check(p["spec"].get("minAvailable") == 1, f"{name}: PDB minAvailable")
    multi = [r for r in roles if r != "replay"]
    check(len(pdbs) == len(multi), f"{name}: {len(pdbs)} PDBs for {len(multi)} multi-replica roles")

    # The replay role: nothing of it rendered when disabled.
    if "replay" not in roles:
        left = [f"{d['kind']}/{d['metadata']['name']}" for d in docs
                if (d["metadata"].get("labels") or {}).get("app.kubernetes.io/component") == "replay"]
        check(not left, f"{name}: replay disabled but rendered {left}")

    # HPAs.
    hpas = by_kind(docs, "HorizontalPodAutoscaler")
    check(sorted(h["metadata"]["labels"]["app.kubernetes.io/component"] for h in hpas) == sorted(hpa), f"{name}: HPAs")
    check(not any(h["spec"]["scaleTargetRef"]["name"].endswith("-replay") for h in hpas), f"{name}: an HPA targets the replay singleton")
    for h in hpas:
        role = h["metadata"]["labels"]["app.kubernetes.io/component"]
        check(h["spec"]["scaleTargetRef"]["name"] == deps[role]["metadata"]["name"], f"{name}: HPA target")
        if cfg is not None:
            ceiling = cfg["kafka"]["partitions"]["events" if role == "router" else "deliveries"]
            check(h["spec"]["maxReplicas"] <= ceiling, f"{name}: HPA {role} maxReplicas above partitions")

    # KEDA ScaledObjects: on the group's lag, capped by the partitions; the sender's on the
    # deliveries topic only (never the retry tiers, whose backlog waits by design).
    sos = by_kind(docs, "ScaledObject")
    check(sorted(o["metadata"]["labels"]["app.kubernetes.io/component"] for o in sos) == sorted(keda), f"{name}: ScaledObjects")
    check(not set(keda) & set(hpa), f"{name}: KEDA and an HPA on one role")
    for o in sos:
        role = o["metadata"]["labels"]["app.kubernetes.io/component"]
        check(o["spec"]["scaleTargetRef"]["name"] == deps[role]["metadata"]["name"], f"{name}: ScaledObject target")
        trig = o["spec"]["triggers"]
        check(len(trig) == 1 and trig[0]["type"] == "kafka", f"{name}: {role} ScaledObject triggers {trig}")
        if cfg is not None and trig:
            md, prefix = trig[0]["metadata"], cfg["kafka"]["topic_prefix"]
            topic = "events" if role == "router" else "deliveries"
            check(md.get("topic") == f"{prefix}.{topic}" and "retry" not in md.get("topic", ""), f"{name}: {role} ScaledObject topic {md.get('topic')}")
            check(md.get("consumerGroup") == f"{prefix}.{role}", f"{name}: {role} consumerGroup {md.get('consumerGroup')}")
            check(md.get("bootstrapServers") == cfg["kafka"]["bootstrap_servers"], f"{name}: {role} bootstrapServers")
            check(md.get("allowIdleConsumers") == "false", f"{name}: {role} allowIdleConsumers")
            check(o["spec"]["maxReplicaCount"] <= cfg["kafka"]["partitions"][topic], f"{name}: {role} maxReplicaCount above partitions")

    # Monitoring.
    sms = by_kind(docs, "ServiceMonitor")
    rules = by_kind(docs, "PrometheusRule")
    if monitoring:
        check(len(sms) == len(roles), f"{name}: {len(sms)} ServiceMonitors for {len(roles)} roles")
        for sm in sms:
            sel = sm["spec"]["selector"]["matchLabels"]
            targets = [s for s in svcs.values() if subset(sel, s["metadata"]["labels"])]
            check(len(targets) == 1 and any(p["name"] == "metrics" for p in targets[0]["spec"]["ports"]),
                  f"{name}: ServiceMonitor {sm['metadata']['name']} selects {[t['metadata']['name'] for t in targets]}")
            check(sm["spec"]["endpoints"][0].get("path") == "/metrics", f"{name}: ServiceMonitor path")
        check(len(rules) == 1, f"{name}: one PrometheusRule")
        if rules:
            alerts = {r["alert"]: r for g in rules[0]["spec"]["groups"] for r in g["rules"] if "alert" in r}
            want = {"HooklineDeadLettersRising", "HooklineBreakersOpen", "HooklineAttemptsFailing",
                    "HooklineSenderSaturated", "HooklineTargetDown", "HooklineRoleNotReady",
                    "HooklineEventsDeadLettered", "HooklineConsumeErrors", "HooklineNoDeliveries"}
            check(set(alerts) >= want, f"{name}: alerts missing {want - set(alerts)}")
            for a, r in alerts.items():
                check(r.get("expr", "").strip() and r.get("labels", {}).get("severity") and r.get("annotations", {}).get("summary"), f"{name}: alert {a} incomplete")
                check(r["expr"].count("(") == r["expr"].count(")") and r["expr"].count("{") == r["expr"].count("}"), f"{name}: alert {a} unbalanced expr")
            sender_job = [s["metadata"]["name"] for s in svcs.values() if s["metadata"]["name"].endswith("-sender-metrics")]
            check(sender_job and f'job="{sender_job[0]}"' in alerts["HooklineDeadLettersRising"]["expr"], f"{name}: rules select the sender metrics job")
            check("outcome!~" in alerts["HooklineAttemptsFailing"]["expr"] and "> 0.2" in alerts["HooklineAttemptsFailing"]["expr"], f"{name}: failure ratio rule")
            for a in ("HooklineTargetDown", "HooklineRoleNotReady"):
                check("|replay)" in alerts[a]["expr"], f"{name}: {a} does not cover the replay role")
            runbook = open("docs/operations.md", encoding="utf-8").read()
            for a, r in alerts.items():
                check(r.get("annotations", {}).get("runbook_url") == f"{runbooks}#{a.lower()}", f"{name}: alert {a} runbook_url {r.get('annotations', {}).get('runbook_url')}")
                check(f"\n### {a}\n" in runbook, f"{name}: alert {a} has no '### {a}' section in docs/operations.md (its runbook_url anchor)")
            # Every pod gone leaves no `up` series to be 0: absent() per role with pods.
            for role in roles:
                job_name = [s["metadata"]["name"] for s in svcs.values() if s["metadata"]["name"].endswith(f"-{role}-metrics")]
                check(job_name and f'absent(up{{namespace="hookline", job="{job_name[0]}"}})' in alerts["HooklineTargetDown"]["expr"],
                      f"{name}: HooklineTargetDown has no absent() for {role}")
    else:
        check(not sms and not rules, f"{name}: monitoring objects rendered although disabled")

    # Ingress.
    ings = by_kind(docs, "Ingress")
    check(len(ings) == (1 if ingress else 0), f"{name}: ingress count")
    for i in ings:
        for rule in i["spec"]["rules"]:
            for p in rule["http"]["paths"]:
                b = p["backend"]["service"]
                check(b["name"] in svcs and any(sp["name"] == b["port"]["name"] for sp in svcs[b["name"]]["spec"]["ports"]), f"{name}: ingress backend")

    # The Grafana dashboard ConfigMap (grafana.dashboards.*).
    cms = [d for d in by_kind(docs, "ConfigMap") if "hookline.json" in (d.get("data") or {})]
    if dashboards:
        label, value, ns = dashboards
        check(len(cms) == 1, f"{name}: {len(cms)} dashboard ConfigMaps, expected 1")
        for cm in cms:
            n = f"{name}: ConfigMap {cm['metadata']['name']}"
            check(cm["metadata"]["labels"].get(label) == value, f"{n}: label {label}={value!r} missing: {cm['metadata']['labels']}")
            check(cm["metadata"].get("namespace") == ns, f"{n}: namespace {cm['metadata'].get('namespace')} != {ns}")
            check(cm["data"]["hookline.json"].strip() == open(dashboard_file).read().strip(), f"{n}: hookline.json differs from {dashboard_file}")
    else:
        check(not cms, f"{name}: dashboard ConfigMap rendered although grafana.dashboards.enabled is false")

    # The topics Job and its hook companions.
    jobs = by_kind(docs, "Job")
    check(len(jobs) == (1 if job else 0), f"{name}: topics Job count")
    for j in jobs:
        n = f"{name}: job {j['metadata']['name']}"
        ann = j["metadata"].get("annotations") or {}
        check(ann.get("helm.sh/hook") == "pre-install,pre-upgrade", f"{n}: hook annotation")
        check(set(ann.get("helm.sh/hook-delete-policy", "").split(",")) == {"before-hook-creation", "hook-succeeded"}, f"{n}: hook-delete-policy")
        check(isinstance(j["spec"].get("backoffLimit"), int), f"{n}: backoffLimit")
        ps = j["spec"]["template"]["spec"]
        c = ps["containers"][0]
        check(c.get("args") == ["--config", "/etc/hookline/hookline.toml", "topics", "create"], f"{n}: args {c.get('args')}")
        check(ps.get("restartPolicy") == "Never", f"{n}: restartPolicy")
        check(ps.get("securityContext", {}).get("runAsNonRoot") is True and c.get("securityContext", {}).get("readOnlyRootFilesystem") is True, f"{n}: security context")
        weight = int(ann.get("helm.sh/hook-weight", "0"))
        secret_name = {v["name"]: v for v in ps["volumes"]}["config"]["secret"]["secretName"]
        if existing:
            check(secret_name == existing, f"{n}: uses existingSecret")
        else:
            hs = secrets.get(secret_name)
            check(hs is not None and hook(hs) == ann.get("helm.sh/hook")
                  and int(hs["metadata"]["annotations"].get("helm.sh/hook-weight", "0")) < weight, f"{n}: config Secret {secret_name} is not an earlier hook")
            if hs is not None and main_secrets:
                check(hookline_toml(hs) == hookline_toml(main_secrets[0]), f"{n}: hook config differs from the roles' config")
        sa = ps.get("serviceAccountName")
        sa_doc = [d for d in by_kind(docs, "ServiceAccount") if d["metadata"]["name"] == sa]
        check(sa == "default" or (sa_doc and hook(sa_doc[0]) and int(sa_doc[0]["metadata"]["annotations"]["helm.sh/hook-weight"]) < weight)
              or (sa and not sa_doc and not sas), f"{n}: serviceAccount {sa} does not exist before the hook")

all_roles = ["router", "sender", "api", "replay"]
prod_replay = {"default_rate_per_second": 100, "max_rate_per_second": 2000, "progress_interval_ms": 1000}
check_set("default", load("default"), roles=all_roles, tokens=1, sasl=False)
check_set("production", load("production"), roles=all_roles, tokens=2, sasl=True,
          monitoring=True, hpa=("router", "sender"), ingress=True, replay=prod_replay,
          dashboards=("grafana_dashboard", "1", "hookline"))
check_set("existing-secret", load("existing-secret"), roles=all_roles, tokens=0, sasl=False,
          existing="hookline-config-managed", monitoring=True, hpa=("router", "sender"), ingress=True,
          dashboards=("hookline_dashboards", "yes", "monitoring"))
# The sealing key file: every pod of the production set (roles and the topics Job) mounts
# it and names the current key; the default set has none (secrets stay in clear).
def pods(docs):
    return [(d["metadata"]["name"], d["spec"]["template"]["spec"]) for d in docs if d["kind"] in ("Deployment", "Job")]
for set_name, want in (("production", ("hookline-secret-keys", "k2026a")), ("default", None)):
    for n, ps in pods(load(set_name)):
        vols = {v["name"]: v for v in ps.get("volumes", [])}
        for c in ps["containers"]:
            env = {e["name"]: e.get("value") for e in c.get("env", [])}
            mounts = {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}
            got = None
            if "secret-keys" in vols:
                got = (vols["secret-keys"]["secret"]["secretName"], env.get("HOOKLINE_SECRETS__CURRENT_KEY"))
                check(env.get("HOOKLINE_SECRETS__KEYS_FILE", "").startswith(mounts.get("secret-keys", "?") + "/"),
                      f"{set_name}/{n}: HOOKLINE_SECRETS__KEYS_FILE is not under the secret-keys mount")
            check(got == want, f"{set_name}/{n}: sealing key {got}, expected {want}")
minimal = load("minimal")
check_set("minimal", minimal, roles=["sender"], tokens=1, sasl=False, job=False)
check_set("strimzi", load("strimzi"), roles=all_roles, tokens=1, sasl=True, job=False, monitoring=True,
          keda=("router", "sender"), runbooks="https://runbooks.example.com/hookline/operations.md")
strimzi = load("strimzi")
scfg = tomllib.loads(hookline_toml([d for d in by_kind(strimzi, "Secret") if not hook(d)][0]))

# NetworkPolicies: one per role selecting exactly that role; ingress only to the admin port
# (and the api's http port); egress to DNS, Kafka and the collector, and for the sender to
# public addresses and allowed_cidrs.
sdeps = {d["metadata"]["labels"]["app.kubernetes.io/component"]: d for d in by_kind(strimzi, "Deployment")}
nps = {n["metadata"]["labels"]["app.kubernetes.io/component"]: n for n in by_kind(strimzi, "NetworkPolicy")}
check(sorted(nps) == sorted(sdeps), f"strimzi: NetworkPolicies for {sorted(nps)}")
check(not by_kind(load("default"), "NetworkPolicy"), "default: NetworkPolicy rendered although disabled")
for role, np in nps.items():
    n = f"strimzi: NetworkPolicy {np['metadata']['name']}"
    spec = np["spec"]
    check(subset(spec["podSelector"]["matchLabels"], sdeps[role]["spec"]["template"]["metadata"]["labels"])
          and spec["podSelector"]["matchLabels"].get("app.kubernetes.io/component") == role, f"{n}: podSelector")
    check(spec.get("policyTypes") == ["Ingress", "Egress"], f"{n}: policyTypes")
    ports = sorted(p["port"] for r in spec["ingress"] for p in r["ports"])
    check(ports == (["admin", "http"] if role == "api" else ["admin"]), f"{n}: ingress ports {ports}")
    admin = [r for r in spec["ingress"] if r["ports"][0]["port"] == "admin"][0]
    check({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}} in admin.get("from", []), f"{n}: admin port not from the monitoring namespace")
    egress = spec["egress"]
    eports = [sorted(str(p["port"]) for p in r.get("ports", [])) for r in egress]
    check(["53", "53"] in eports and ["9092", "9093"] in eports and ["4318"] in eports, f"{n}: egress ports {eports}")
    open_rules = [r for r in egress if not r.get("ports")]
    if role == "sender":
        cidrs = [t["ipBlock"]["cidr"] for r in open_rules for t in r["to"]]
        check(cidrs == ["0.0.0.0/0", "::/0"] + scfg["sender"]["allowed_cidrs"], f"{n}: sender egress {cidrs}")
        v4 = [t["ipBlock"] for r in open_rules for t in r["to"] if t["ipBlock"]["cidr"] == "0.0.0.0/0"][0]
        check({"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"} <= set(v4.get("except", [])), f"{n}: private ranges not excepted")
    else:
        check(not open_rules, f"{n}: egress to any address on any port")

# Strimzi: a KafkaTopic per topic `hookline topics create` makes (services/runtime/src/topics.rs),
# none a hook, all kept on uninstall; the KafkaUser with the ACLs of docs/operations.md#kafka-acls.
def tier_name(d):
    n, unit = re.fullmatch(r"(\d+)(ms|s|m|h|d)", d).groups()
    ms = int(n) * {"ms": 1, "s": 1000, "m": 60000, "h": 3600000, "d": 86400000}[unit]
    for u, size in (("d", 86400000), ("h", 3600000), ("m", 60000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size}{u}"
    return f"{ms}ms"
k = scfg["kafka"]
pre = k["topic_prefix"]
want_topics = {f"{pre}.events": k["partitions"]["events"], f"{pre}.endpoints": 1, f"{pre}.deliveries": k["partitions"]["deliveries"],
               f"{pre}.attempts": k["partitions"]["attempts"], f"{pre}.dlq": k["partitions"]["dlq"], f"{pre}.replays": 1,
               f"{pre}.parked": k["partitions"]["deliveries"],
               f"{pre}.event-types": 1}
for d in scfg["retry"]["schedule"]:
    want_topics[f"{pre}.retry.{tier_name(d)}"] = k["partitions"]["retry"]
kts = by_kind(strimzi, "KafkaTopic")
check({t["spec"]["topicName"]: t["spec"]["partitions"] for t in kts} == want_topics, f"strimzi: KafkaTopics {[t['spec']['topicName'] for t in kts]} != {sorted(want_topics)}")
for t in kts:
    n = f"strimzi: KafkaTopic {t['metadata']['name']}"
    ann = t["metadata"].get("annotations") or {}
    check(ann.get("helm.sh/resource-policy") == "keep" and "helm.sh/hook" not in ann, f"{n}: annotations {ann}")
    check(t["metadata"]["labels"].get("strimzi.io/cluster") == "my-cluster" and t["spec"]["replicas"] == k["replication_factor"], f"{n}: cluster label or replicas")
    c = t["spec"]["config"]
    compact = t["spec"]["topicName"] in (f"{pre}.endpoints", f"{pre}.replays", f"{pre}.event-types")
    check(c.get("cleanup.policy") == ("compact" if compact else "delete") and c.get("min.insync.replicas") == k["min_insync_replicas"], f"{n}: config {c}")
    if not compact:
        retention = {"events": "events_retention_ms", "attempts": "attempts_retention_ms", "dlq": "dlq_retention_ms"}.get(t["spec"]["topicName"][len(pre) + 1:], "deliveries_retention_ms")
        check(c.get("retention.ms") == k[retention], f"{n}: retention.ms {c.get('retention.ms')}")
check(not by_kind(strimzi, "Job"), "strimzi: the topics Job rendered next to KafkaTopics")
users = by_kind(strimzi, "KafkaUser")
check(len(users) == 1, f"strimzi: {len(users)} KafkaUsers")
if users:
    u = users[0]
    acls = {(a["resource"]["type"], a["resource"].get("name"), a["resource"].get("patternType")): sorted(a["operations"]) for a in u["spec"]["authorization"]["acls"]}
    check(acls == {("topic", f"{pre}.", "prefix"): ["Describe", "DescribeConfigs", "Read", "Write"],
                   ("group", f"{pre}.", "prefix"): ["Describe", "Read"], ("cluster", None, None): ["IdempotentWrite"]}, f"strimzi: KafkaUser ACLs {acls}")
    check(u["spec"]["authentication"]["type"] == "scram-sha-512", "strimzi: KafkaUser authentication")
    check(k["client"].get("sasl.username") == u["metadata"]["name"], "strimzi: sasl.username is not the KafkaUser")
    for d in list(sdeps.values()) + by_kind(strimzi, "Pod"):
        ps = d["spec"]["template"]["spec"] if d["kind"] == "Deployment" else d["spec"]
        vols = {v["name"]: v for v in ps.get("volumes", [])}
        if "config" in vols or d["kind"] == "Deployment":
            check(vols.get("kafka-sasl", {}).get("secret", {}).get("secretName") == u["metadata"]["name"]
                  and [i["name"] for i in ps.get("initContainers", [])][:1] == ["kafka-password"], f"strimzi: {d['metadata']['name']} does not get the KafkaUser's password")

# helm test pods: hooks, the topics check and the api's health.
tpods = {p["metadata"]["name"]: p for p in by_kind(load("default"), "Pod")}
check(sorted(tpods) == ["hookline-test-api", "hookline-test-kafka"], f"default: test pods {sorted(tpods)}")
for p in tpods.values():
    check((p["metadata"].get("annotations") or {}).get("helm.sh/hook") == "test" and p["spec"]["restartPolicy"] == "Never", f"default: {p['metadata']['name']} is not a test hook")
    check(p["spec"]["securityContext"].get("runAsNonRoot") is True and p["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True, f"default: {p['metadata']['name']} security context")
check(tpods.get("hookline-test-kafka", {}).get("spec", {}).get("containers", [{}])[0].get("args") == ["--config", "/etc/hookline/hookline.toml", "topics", "check"], "default: the Kafka test runs `topics check`")
api_test = " ".join(tpods.get("hookline-test-api", {}).get("spec", {}).get("containers", [{}])[0].get("command", []))
check("get hookline-api 8080 /healthz" in api_test and "get hookline-api-metrics 9090 /readyz" in api_test, f"default: api test {api_test}")

# The api's preStop delay; per-role probe overrides.
api_dep = [d for d in by_kind(load("default"), "Deployment") if d["metadata"]["name"] == "hookline-api"][0]
api_c = api_dep["spec"]["template"]["spec"]["containers"][0]
check(api_c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command") == ["sleep", "10"], f"default: api preStop {api_c.get('lifecycle')}")

# A 53-character release name (helm's limit): every name within 63 (load checks), all distinct.
long_docs = load("long-name")
check(len({d["metadata"]["name"] for d in by_kind(long_docs, "Service")}) == len(by_kind(long_docs, "Service")), "long-name: Service names collide")

# replay.replicaCount=0 pauses replays: the Deployment stays, with 0 replicas, still Recreate.
paused = [d for d in by_kind(load("replay-paused"), "Deployment") if d["metadata"]["name"].endswith("-replay")]
check(len(paused) == 1 and paused[0]["spec"].get("replicas") == 0 and paused[0]["spec"].get("strategy") == {"type": "Recreate"},
      "replay-paused: expected the replay Deployment with 0 replicas and Recreate")

# --- The Grafana dashboard ---------------------------------------------------------------
# Its layout and scoping. The metric names it queries are checked against the one list of
# what the code exports, the metric catalog, by the catalog's own tests
# (services/runtime/src/metric_catalog/tests.rs), with the alert rules and the docs.
try:
    dash = json.load(open(dashboard_file))
except (OSError, json.JSONDecodeError) as e:
    dash = None
    check(False, f"dashboard: {dashboard_file} does not parse: {e}")
if dash is not None:
    check(isinstance(dash.get("schemaVersion"), int) and dash["schemaVersion"] >= 36, f"dashboard: schemaVersion {dash.get('schemaVersion')}")
    check(dash.get("uid") == "hookline-overview" and dash.get("title") and dash.get("id") is None, "dashboard: uid/title/id")
    tvars = {v["name"]: v for v in dash.get("templating", {}).get("list", [])}
    check(tvars.get("datasource", {}).get("type") == "datasource" and tvars["datasource"].get("query") == "prometheus",
          "dashboard: a datasource variable of type prometheus")
    for v in ("namespace", "job"):
        check(tvars.get(v, {}).get("type") == "query" and tvars[v].get("datasource", {}).get("uid") == "${datasource}", f"dashboard: ${v} variable")
    # Every datasource reference is the variable (no data source uid of one Grafana).
    def walk(o, path="$"):
        if isinstance(o, dict):
            if "datasource" in o and isinstance(o["datasource"], dict):
                yield path, o["datasource"]
            for k, v in o.items():
                yield from walk(v, f"{path}.{k}")
        elif isinstance(o, list):
            for i, v in enumerate(o):
                yield from walk(v, f"{path}[{i}]")
    for path, ds in walk(dash):
        check(ds.get("uid") == "${datasource}" or ds.get("type") == "grafana", f"dashboard: hard-coded datasource at {path}: {ds}")
    panels = []
    for p in dash.get("panels", []):
        panels.append(p)
        panels.extend(p.get("panels", []))
    ids = [p.get("id") for p in panels]
    check(len(ids) == len(set(ids)) and all(isinstance(i, int) for i in ids), "dashboard: panel ids not unique")
    rows = [p["title"] for p in panels if p["type"] == "row"]
    for want in ("Overview", "Latency", "Retries", "breakers", "Replay"):
        check(any(want.lower() in r.lower() for r in rows), f"dashboard: no row for {want} in {rows}")
    for p in panels:
        if p["type"] == "row":
            continue
        g = p.get("gridPos", {})
        check(g.get("w", 0) > 0 and g.get("x", 0) + g.get("w", 0) <= 24 and g.get("h", 0) > 0, f"dashboard: panel {p.get('title')} gridPos {g}")
        check(p.get("targets"), f"dashboard: panel {p.get('title')} has no query")
        for t in p.get("targets", []):
            expr = t.get("expr", "")
            refs = re.findall(r"\b(hookline_[a-z0-9_]+)(\{[^}]*\})?", expr)
            names = [m for m, _ in refs]
            check(names, f"dashboard: panel {p['title']} queries no hookline metric: {expr}")
            # Each hookline metric is scoped to the chosen namespace and jobs.
            for m, sel in refs:
                check('namespace="$namespace"' in sel and 'job=~"$job"' in sel, f"dashboard: panel {p['title']}: {m}{sel} not scoped to $namespace/$job")
            check(expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}"), f"dashboard: panel {p['title']}: unbalanced {expr}")

# The hookline binary itself must accept every rendered config (it exits 64 on a bad
# value), so the chart's values can never drift from what the code validates.
binary = os.environ.get("HOOKLINE_BIN", "target/debug/hookline")
if os.access(binary, os.X_OK):
    import subprocess, tempfile
    for set_name in ["default", "production", "minimal", "replay-paused", "strimzi", "long-name"]:
        for secret in by_kind(load(set_name), "Secret"):
            if "hookline.toml" not in (secret.get("data") or {}):
                continue
            with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
                f.write(hookline_toml(secret))
            r = subprocess.run([binary, "--config", f.name, "config"], capture_output=True, text=True)
            check(r.returncode == 0, f"{set_name}/{secret['metadata']['name']}: hookline rejects the rendered config: {r.stderr.strip()}")
            os.unlink(f.name)
    # The [replay] section reaches the binary: an invalid one is refused (status 64).
    bad = [s for s in by_kind(load("replay-invalid"), "Secret") if not hook(s)]
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
        f.write(hookline_toml(bad[0]))
    r = subprocess.run([binary, "--config", f.name, "config"], capture_output=True, text=True)
    os.unlink(f.name)
    check(r.returncode == 64 and "replay.default_rate_per_second" in r.stderr,
          f"replay-invalid: hookline should refuse replay.default_rate_per_second=6000 (status 64), got {r.returncode}: {r.stderr.strip()}")
    # The kafka-password init container (Strimzi mode) run here with sh on the rendered
    # files: the config it writes carries the password from the Secret's key, verbatim, and
    # the binary accepts it; a password it cannot write as a TOML literal string is refused.
    dep = [d for d in by_kind(strimzi, "Deployment") if d["metadata"]["name"].endswith("-sender")][0]
    init = dep["spec"]["template"]["spec"]["initContainers"][0]
    with tempfile.TemporaryDirectory() as tmp:
        for sub in ("template", "config", "sasl"):
            os.mkdir(f"{tmp}/{sub}")
        open(f"{tmp}/template/hookline.toml", "w").write(hookline_toml([d for d in by_kind(strimzi, "Secret") if not hook(d)][0]))
        script = (init["command"][2].replace("/etc/hookline-template/", f"{tmp}/template/")
                  .replace("/etc/hookline-kafka-sasl/", f"{tmp}/sasl/").replace("/etc/hookline/", f"{tmp}/config/"))
        for pw, ok in (('Zx9$p w"\\d&`;', True), ("it's", False)):
            open(f"{tmp}/sasl/password", "w").write(pw + "\n")
            r = subprocess.run(init["command"][:2] + [script], capture_output=True, text=True)
            check((r.returncode == 0) == ok, f"strimzi: kafka-password init container with {pw!r}: {r.returncode} {r.stderr.strip()}")
            if ok and r.returncode == 0:
                written = tomllib.loads(open(f"{tmp}/config/hookline.toml").read())
                check(written["kafka"]["client"]["sasl.password"] == pw, f"strimzi: init container wrote {written['kafka']['client'].get('sasl.password')!r}")
                r = subprocess.run([binary, "--config", f"{tmp}/config/hookline.toml", "config"], capture_output=True, text=True)
                check(r.returncode == 0, f"strimzi: hookline rejects the config the init container wrote: {r.stderr.strip()}")
else:
    print(f"helm-lint: {binary} not built; rendered configs not checked by the binary", file=sys.stderr)

if failures:
    for f in failures:
        print(f"helm-lint: FAIL: {f}", file=sys.stderr)
    sys.exit(1)
open(f"{out}/checks.txt", "w").write(f"{manifests} manifests rendered, {checks + negatives} checks passed\n")
PY
summary=$(cat "$out/checks.txt")

# --- values.schema.json ---------------------------------------------------------------------
binary=${HOOKLINE_BIN:-target/debug/hookline}
if [ -x "$binary" ]; then
  echo "== values.schema.json current" >&2
  HELM_SCHEMA_PYTHON=$python HOOKLINE_BIN=$binary bash scripts/helm-schema.sh --check >&2 || fail "values.schema.json"
else
  echo "helm-lint: $binary not built; values.schema.json not checked against the binary's configuration" >&2
fi

# --- helm-unittest ------------------------------------------------------------------------
echo "== helm-unittest" >&2
"$unittest" --color=false --strict -f 'unittests/*_test.yaml' "$chart" >"$out/unittest.txt" 2>&1 \
  || { cat "$out/unittest.txt" >&2; fail "helm-unittest"; }
unittests=$(sed -n 's/^Tests:[[:space:]]*\([0-9]*\) passed.*/\1/p' "$out/unittest.txt")
[ -n "$unittests" ] && [ "$unittests" -gt 0 ] || { cat "$out/unittest.txt" >&2; fail "helm-unittest ran no test"; }

# --- Kubernetes schemas ----------------------------------------------------------------------
# Every rendered manifest (all value sets) against the bundled OpenAPI schemas of the oldest
# Kubernetes the chart supports and the newest kubernetes-validate knows, strictly (an
# unknown or misplaced field fails). CRD kinds have no schema there: counted apart.
echo "== kubernetes-validate" >&2
"$python" - "$out" >"$out/kubeval.txt" 2>&1 <<'PY' || { cat "$out/kubeval.txt" >&2; fail "kubernetes-validate"; }
import glob, sys, yaml
import kubernetes_validate
from kubernetes_validate.utils import SchemaNotFoundError, ValidationError
out = sys.argv[1]
versions = ["1.25.0", "1.37.0"]
validated, crds, crd_docs, failures = 0, set(), 0, []
for path in sorted(glob.glob(f"{out}/*.yaml")):
    if path.endswith(("/alerts-rules.yaml", "/alerts-test.yaml")):
        continue
    for doc in (d for d in yaml.safe_load_all(open(path)) if d):
        ok = True
        for v in versions:
            try:
                kubernetes_validate.validate(doc, v, strict=True)
            except SchemaNotFoundError:
                crds.add(f"{doc['apiVersion']}/{doc['kind']}")
                crd_docs += 1
                ok = False
                break
            except ValidationError as e:
                failures.append(f"{path.rsplit('/', 1)[1]}: {doc['kind']}/{doc['metadata']['name']} (Kubernetes {v}): {e.message} at {'.'.join(str(p) for p in e.path)}")
                ok = False
        validated += ok
for f in failures:
    print(f"FAIL {f}")
print(f"{validated} {crd_docs} {','.join(sorted(k.rsplit('/', 1)[1] for k in crds))}")
sys.exit(1 if failures else 0)
PY
read -r kube_validated kube_crd_docs kube_crds < <(tail -1 "$out/kubeval.txt")

# --- alert rules -----------------------------------------------------------------------------
echo "== promtool" >&2
"$python" - "$out" <<'PY' || fail "extracting the PrometheusRule"
import sys, yaml
out = sys.argv[1]
rules = [d for d in yaml.safe_load_all(open(f"{out}/production.yaml")) if d and d["kind"] == "PrometheusRule"]
assert len(rules) == 1, rules
yaml.safe_dump({"groups": rules[0]["spec"]["groups"]}, open(f"{out}/alerts-rules.yaml", "w"), sort_keys=False)
PY
cp "$chart/ci/alerts-test.yaml" "$out/alerts-test.yaml"
"$promtool" check rules "$out/alerts-rules.yaml" >"$out/promtool.txt" 2>&1 || { cat "$out/promtool.txt" >&2; fail "promtool check rules"; }
(cd "$out" && "$promtool" test rules alerts-test.yaml) >>"$out/promtool.txt" 2>&1 || { cat "$out/promtool.txt" >&2; fail "promtool test rules"; }
alert_tests=$("$python" -c "import sys, yaml; print(sum(len(t['alert_rule_test']) for t in yaml.safe_load(open(sys.argv[1]))['tests']))" "$chart/ci/alerts-test.yaml")

# --- README parameters -----------------------------------------------------------------------
echo "== README parameters" >&2
bash scripts/helm-readme.sh --check >&2 || fail "helm/hookline/README.md parameters"

echo "helm: lint ok, $summary, $unittests helm-unittest tests, $kube_validated manifests valid against the Kubernetes 1.25 and 1.37 schemas (and $kube_crd_docs custom resources without a schema: $kube_crds), $alert_tests promtool alert tests"
