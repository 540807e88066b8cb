#!/usr/bin/env bash
# Lint and render the Helm chart (helm/hookline) and check the rendered manifests.
#
#   scripts/helm-lint.sh
#
# Installs helm v3.22.0 from the Go module proxy into .cache/bin once (a few minutes on a
# small machine; skipped when that binary is already there), then:
#   - helm lint, plain and --strict, with the default and the production-like values
#     (helm/hookline/ci/production-values.yaml);
#   - helm template with the default values, the production-like values and an
#     existingSecret variant;
#   - renders that must fail (the chart's own validations);
#   - a python3 check of every rendered document (probes, security context, args,
#     checksum annotation, hook annotations, selectors, the hookline.toml in the Secret
#     parsed with tomllib, the replay singleton, the Grafana dashboard ConfigMap, ...);
#   - the Grafana dashboard (helm/hookline/dashboards/hookline.json): valid JSON, data
#     source and variables, and every hookline_* metric it queries exported by the code
#     (services/**/*.rs), so it cannot drift from the code silently;
#   - target/debug/hookline, when built, accepts every rendered hookline.toml and refuses
#     an invalid [replay] section.
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

# --- helm ---------------------------------------------------------------------------
# `helm version` of a go-installed helm says "v3.22" (no ldflags); the module version in
# the binary's build info is exact.
have_helm() {
  [ -x "$helm" ] && go version -m "$helm" 2>/dev/null | grep -Eq "^[[:space:]]+mod[[:space:]]+helm.sh/helm/v3[[:space:]]+$HELM_VERSION[[:space:]]"
}
if ! have_helm; then
  echo "== installing helm $HELM_VERSION from the Go module proxy (once)" >&2
  t0=$(date +%s)
  GOBIN=$repo/.cache/bin GOMODCACHE=$repo/.cache/go/mod GOCACHE=$repo/.cache/go/build \
    GOFLAGS=-modcacherw go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  have_helm || { echo "helm-lint: $helm is not helm $HELM_VERSION after go install" >&2; exit 1; }
  echo "== helm built in $(( $(date +%s) - t0 ))s" >&2
fi

# --- PyYAML ---------------------------------------------------------------------------
python=python3
if ! python3 -c "import yaml, tomllib" 2>/dev/null; then
  venv=$repo/.cache/venv
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/python" -c "import yaml" 2>/dev/null || "$venv/bin/pip" install -q pyyaml
  python=$venv/bin/python
fi

fail() { echo "helm-lint: FAIL: $*" >&2; exit 1; }

# --- lint -----------------------------------------------------------------------------
echo "== helm lint" >&2
"$helm" lint "$chart" --kube-version "$KUBE_VERSION" >"$out/lint-default.txt" 2>&1 \
  || { cat "$out/lint-default.txt" >&2; fail "helm lint (default values)"; }
"$helm" lint "$chart" --strict --kube-version "$KUBE_VERSION" >"$out/lint-strict.txt" 2>&1 \
  || { cat "$out/lint-strict.txt" >&2; fail "helm lint --strict (default values)"; }
"$helm" lint "$chart" --strict --kube-version "$KUBE_VERSION" -f "$chart/ci/production-values.yaml" \
  >"$out/lint-production.txt" 2>&1 \
  || { cat "$out/lint-production.txt" >&2; fail "helm lint --strict (production values)"; }

# --- template -------------------------------------------------------------------------
echo "== helm template" >&2
render() { # name, then helm template args
  local name=$1; shift
  "$helm" template hookline "$chart" --namespace hookline --kube-version "$KUBE_VERSION" "$@" \
    >"$out/$name.yaml" 2>"$out/$name.err" \
    || { cat "$out/$name.err" >&2; fail "helm template ($name)"; }
}
render default
render production -f "$chart/ci/production-values.yaml"
render existing-secret -f "$chart/ci/production-values.yaml" --set existingSecret=hookline-config-managed \
  --set kafkaSasl.enabled=false --set grafana.dashboards.label=hookline_dashboards \
  --set-string grafana.dashboards.labelValue=yes --set grafana.dashboards.namespace=monitoring
render minimal --set router.enabled=false --set api.enabled=false --set topicsJob.enabled=false \
  --set serviceAccount.create=false --set metrics.service.enabled=false --set replay.enabled=false
render replay-paused --set replay.replicaCount=0
# A [replay] section the binary must refuse (default rate above the maximum).
render replay-invalid --set config.replay.default_rate_per_second=6000

# Renders that must be refused, with the message that explains why.
must_fail() { # expected message part, then helm template args
  local want=$1; shift
  if "$helm" template hookline "$chart" --kube-version "$KUBE_VERSION" "$@" >/dev/null 2>"$out/must-fail.err"; then
    fail "helm template $* rendered, but should fail with: $want"
  fi
  grep -qF -- "$want" "$out/must-fail.err" || { cat "$out/must-fail.err" >&2; fail "helm template $*: expected '$want'"; }
}
neg=0
must_fail "allow_loopback is for \`hookline dev\` only" --set config.sender.allow_loopback=true; neg=$((neg + 1))
must_fail "sender.replicaCount 13 exceeds config.kafka.partitions.deliveries (12)" --set sender.replicaCount=13; neg=$((neg + 1))
must_fail "router.autoscaling.maxReplicas 7 exceeds" --set router.autoscaling.enabled=true --set router.autoscaling.maxReplicas=7; neg=$((neg + 1))
must_fail "must exceed sender.request_timeout_ms/1000 + 5 (20)" --set sender.terminationGracePeriodSeconds=20; neg=$((neg + 1))
must_fail "sha256 must be 64 hex digits" --set 'apiTokens[0].name=x' --set 'apiTokens[0].sha256=abc' --set 'apiTokens[0].scopes[0]=admin'; neg=$((neg + 1))
must_fail "is not one of admin, read, publish" --set 'apiTokens[0].name=x' \
  --set "apiTokens[0].sha256=$(printf x | sha256sum | cut -d' ' -f1)" --set 'apiTokens[0].scopes[0]=root'; neg=$((neg + 1))
must_fail "kafkaSasl.enabled needs kafkaSasl.password" --set kafkaSasl.enabled=true --set kafkaSasl.username=u; neg=$((neg + 1))
must_fail "put API tokens in apiTokens" --set 'config.api.tokens[0].name=x'; neg=$((neg + 1))
must_fail "replay.replicaCount 2: the replay worker is a singleton" --set replay.replicaCount=2; neg=$((neg + 1))
must_fail "replay.updateStrategy must be {type: Recreate}" --set replay.updateStrategy.type=RollingUpdate; neg=$((neg + 1))
must_fail "replay.updateStrategy must be {type: Recreate}" --set replay.updateStrategy.rollingUpdate.maxSurge=1; neg=$((neg + 1))
must_fail "secretKeys.existingSecret needs secretKeys.currentKey" --set secretKeys.existingSecret=keys; neg=$((neg + 1))

# --- checks ---------------------------------------------------------------------------
echo "== checks" >&2
"$python" - "$out" "$neg" <<'PY'
import base64, glob, json, os, re, sys, tomllib, yaml

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

def load(name):
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
              replay=None, dashboards=None):
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
        check(vols.get("config", {}).get("secret", {}).get("secretName") == config_secret, f"{n}: config volume is not Secret {config_secret}")
        mounts = {m["name"]: m for m in c.get("volumeMounts", [])}
        check(mounts.get("config", {}).get("mountPath") == "/etc/hookline", f"{n}: config mount")
        check(all(m["name"] in vols for m in c.get("volumeMounts", [])), f"{n}: mount without volume")
        check(not any(m["mountPath"].startswith("/etc/hookline/") for m in c.get("volumeMounts", [])),
              f"{n}: a mount nested in the read-only config volume /etc/hookline")
        if role in hpa:
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
                    "HooklineEventsDeadLettered", "HooklineConsumeErrors"}
            check(set(alerts) >= want, f"{name}: alerts missing {want - set(alerts)}")
            for a, r in alerts.items():
                check(r.get("expr", "").strip() and r.get("labels", {}).get("severity") and r.get("annotations", {}).get("summary"), f"{name}: alert {a} incomplete")
                check(r["expr"].count("(") == r["expr"].count(")") and r["expr"].count("{") == r["expr"].count("}"), f"{name}: alert {a} unbalanced expr")
            sender_job = [s["metadata"]["name"] for s in svcs.values() if s["metadata"]["name"].endswith("-sender-metrics")]
            check(sender_job and f'job="{sender_job[0]}"' in alerts["HooklineDeadLettersRising"]["expr"], f"{name}: rules select the sender metrics job")
            check("outcome!~" in alerts["HooklineAttemptsFailing"]["expr"] and "> 0.2" in alerts["HooklineAttemptsFailing"]["expr"], f"{name}: failure ratio rule")
            for a in ("HooklineTargetDown", "HooklineRoleNotReady"):
                check("|replay)" in alerts[a]["expr"], f"{name}: {a} does not cover the replay role")
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
check_set("default", load("default"), roles=all_roles, tokens=0, sasl=False)
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
check_set("minimal", minimal, roles=["sender"], tokens=0, sasl=False, job=False)

# replay.replicaCount=0 pauses replays: the Deployment stays, with 0 replicas, still Recreate.
paused = [d for d in by_kind(load("replay-paused"), "Deployment") if d["metadata"]["name"].endswith("-replay")]
check(len(paused) == 1 and paused[0]["spec"].get("replicas") == 0 and paused[0]["spec"].get("strategy") == {"type": "Recreate"},
      "replay-paused: expected the replay Deployment with 0 replicas and Recreate")

# --- The Grafana dashboard ---------------------------------------------------------------
# Metrics the code exports: every metrics::counter!/gauge!/histogram!("hookline_...") in
# services/. Histograms are exported as Prometheus histograms (the recorder sets buckets,
# services/runtime/src/admin.rs): <name>_bucket, _sum and _count.
exported = {}
macro = re.compile(r'\b(?:metrics::)?(counter|gauge|histogram)!\s*\(\s*"(hookline_[a-z0-9_]+)"')
for path in glob.glob("services/**/*.rs", recursive=True):
    for kind, metric in macro.findall(open(path, encoding="utf-8").read()):
        exported[metric] = kind
check(len(exported) >= 10, f"dashboard: only {len(exported)} metrics found in services/ (grep broken?)")
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
    used = set()
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
            used.update(names)
    known = exported
    for m in sorted(used):
        base = re.sub(r"_(bucket|sum|count)$", "", m)
        if m in known:
            check(known[m] != "histogram", f"dashboard: histogram {m} queried without _bucket/_sum/_count")
        else:
            check(base != m and known.get(base) == "histogram",
                  f"dashboard: {m} is not exported by services/ (metrics::counter!/gauge!/histogram!, or a histogram's _bucket/_sum/_count)")

# The hookline binary itself must accept every rendered config (it exits 64 on a bad
# value), so the chart's values can never drift from what the code validates.
binary = os.environ.get("HOOKLINE_BIN", "target/debug/hookline")
if os.access(binary, os.X_OK):
    import subprocess, tempfile
    for set_name in ["default", "production", "minimal", "replay-paused"]:
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
else:
    print(f"helm-lint: {binary} not built; rendered configs not checked by the binary", file=sys.stderr)

if failures:
    for f in failures:
        print(f"helm-lint: FAIL: {f}", file=sys.stderr)
    sys.exit(1)
print(f"helm: lint ok, {manifests} manifests rendered, {checks + negatives} checks passed")
PY
