#!/usr/bin/env bash
# Generate helm/hookline/values.schema.json, or check that it is current.
#
#   scripts/helm-schema.sh           write the schema
#   scripts/helm-schema.sh --check   exit 1 if the committed schema differs from a fresh one
#
# The schema closes every object whose keys the chart knows (additionalProperties: false),
# so a typo in values fails `helm lint`, `helm template` and `helm install` naming the key:
#   - the chart's own keys and types come from helm/hookline/values.yaml, with the rules
#     below (enums, patterns, the Kubernetes objects passed through as they are);
#   - `config` is hookline.toml: its sections and keys come from the binary itself
#     (`hookline config` prints every key with its default), so the schema accepts exactly
#     what the binary accepts. admin.listen and api.listen are left out (the chart sets them
#     from containerPorts). Values may be null (the binary's default applies).
# Needs python3 with PyYAML and target/debug/hookline (HOOKLINE_BIN); scripts/helm-lint.sh
# runs the check when the binary is built.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${HELM_SCHEMA_PYTHON:-python3}
[ -n "${HELM_SCHEMA_PYTHON:-}" ] || [ ! -x .cache/venv-helm/bin/python ] || python=.cache/venv-helm/bin/python
binary=${HOOKLINE_BIN:-target/debug/hookline}
[ -x "$binary" ] || { echo "helm-schema: $binary is not built" >&2; exit 2; }
config_toml=$(env -u HOOKLINE_CONFIG "$binary" config)
exec "$python" - "${1:-}" "$config_toml" <<'PY'
import json, re, sys, tomllib, yaml

mode, config_toml = sys.argv[1], sys.argv[2]
path = "helm/hookline/values.schema.json"
values = yaml.safe_load(open("helm/hookline/values.yaml"))
defaults = tomllib.loads(config_toml)

ROLES = ["router", "sender", "api", "replay"]
STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
ANY_OBJECT = {"type": "object"}
OBJECT_LIST = {"type": "array", "items": {"type": "object"}}
PROBE = {"type": "object", "additionalProperties": False, "properties": {
    k: {"type": "integer", "minimum": 0} for k in
    ("initialDelaySeconds", "periodSeconds", "timeoutSeconds", "failureThreshold", "successThreshold", "terminationGracePeriodSeconds")}}
PORT = {"type": "integer", "minimum": 1, "maximum": 65535}

def expand(pattern):
    return [pattern.replace("*", r) for r in ROLES] if "*" in pattern else [pattern]

# Rules by dotted path ("*" is each role). A rule replaces what would be inferred.
rules = {}
for p in ("commonLabels", "serviceAccount.annotations", "*.nodeSelector", "*.podAnnotations", "*.podLabels",
          "api.service.annotations", "api.ingress.annotations", "metrics.service.annotations",
          "metrics.serviceMonitor.labels", "metrics.prometheusRule.labels", "grafana.dashboards.labels",
          "grafana.dashboards.annotations", "topicsJob.annotations", "topicsJob.podAnnotations", "topicsJob.nodeSelector"):
    for q in expand(p):
        rules[q] = STRING_MAP
for p in ("podSecurityContext", "securityContext", "*.affinity", "*.resources", "*.updateStrategy",
          "router.autoscaling.behavior", "sender.autoscaling.behavior", "router.keda.advanced", "sender.keda.advanced",
          "topicsJob.affinity", "topicsJob.resources", "tests.resources"):
    for q in expand(p):
        rules[q] = ANY_OBJECT
for p in ("imagePullSecrets", "*.tolerations", "*.topologySpreadConstraints", "extraEnv", "extraEnvFrom",
          "extraVolumes", "extraVolumeMounts", "*.initContainers", "*.sidecars", "metrics.prometheusRule.additionalRules",
          "metrics.serviceMonitor.relabelings", "metrics.serviceMonitor.metricRelabelings", "api.ingress.tls",
          "topicsJob.tolerations", "networkPolicy.kafka.to", "networkPolicy.dns.to", "networkPolicy.otlp.to",
          "networkPolicy.metrics.from", "networkPolicy.api.from", "networkPolicy.extraEgress"):
    for q in expand(p):
        rules[q] = OBJECT_LIST
for p in ("livenessProbe", "readinessProbe", "startupProbe", "*.probes.livenessProbe", "*.probes.readinessProbe", "*.probes.startupProbe"):
    for q in expand(p):
        rules[q] = PROBE
for role in ("router", "sender"):
    rules[f"{role}.keda.extraMetadata"] = {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}}
    for k in ("lagThreshold", "activationLagThreshold"):
        rules[f"{role}.keda.{k}"] = {"type": ["string", "integer"], "pattern": "^[0-9]+$", "minimum": 0}
for role in ROLES:
    rules[f"{role}.replicaCount"] = {"type": "integer", "minimum": 0}
    rules[f"{role}.terminationGracePeriodSeconds"] = {"type": "integer", "minimum": 1}
rules.update({
    "image.pullPolicy": {"type": "string", "enum": ["Always", "IfNotPresent", "Never"]},
    "image.digest": {"type": "string", "pattern": "^(sha256:[0-9a-f]{64})?$"},
    "image.tag": {"type": ["string", "number"]},
    "apiTokens": {"type": "array", "items": {"type": "object", "additionalProperties": False,
                  "required": ["name", "sha256", "scopes"], "properties": {
                      "name": {"type": "string", "minLength": 1},
                      "sha256": {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"},
                      "scopes": {"type": "array", "minItems": 1, "items": {"type": "string", "enum": ["admin", "read", "publish"]}}}}},
    "kafkaSasl.securityProtocol": {"type": "string", "enum": ["SASL_SSL", "SASL_PLAINTEXT"]},
    "kafkaSasl.mechanism": {"type": "string", "enum": ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]},
    "kafkaSasl.username": {"type": ["string", "number"]},
    "kafkaSasl.password": {"type": ["string", "number"]},
    "containerPorts.admin": PORT,
    "containerPorts.http": PORT,
    "api.service.port": PORT,
    "metrics.service.port": PORT,
    "api.service.type": {"type": "string", "enum": ["ClusterIP", "NodePort", "LoadBalancer"]},
    "api.ingress.hosts": {"type": "array", "items": {"type": "object", "additionalProperties": False, "required": ["host", "paths"], "properties": {
        "host": {"type": "string"},
        "paths": {"type": "array", "items": {"type": "object", "additionalProperties": False, "required": ["path"], "properties": {
            "path": {"type": "string"}, "pathType": {"type": "string", "enum": ["Prefix", "Exact", "ImplementationSpecific"]}}}}}}},
    "api.preStopDelaySeconds": {"type": "integer", "minimum": 0},
    "networkPolicy.kafka.ports": {"type": "array", "items": PORT},
    "networkPolicy.otlp.ports": {"type": "array", "items": PORT},
    "networkPolicy.sender.publicCIDRs": {"type": "array", "items": {"type": "object", "additionalProperties": False, "required": ["cidr"], "properties": {
        "cidr": {"type": "string"}, "except": {"type": "array", "items": {"type": "string"}}}}},
    "metrics.prometheusRule.attemptFailureRatio": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
    "metrics.prometheusRule.senderSaturation": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
    "metrics.prometheusRule.noDeliveriesFor": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h|d|w|y)$"},
    "metrics.prometheusRule.lagThreshold": {"type": "integer", "minimum": 0},
    "metrics.prometheusRule.latencyObjectiveSeconds": {"type": "number", "exclusiveMinimum": 0},
    "metrics.serviceMonitor.interval": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
    "metrics.serviceMonitor.scrapeTimeout": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
    "grafana.dashboards.labelValue": {"type": ["string", "number", "boolean"]},
})

def infer(v, p):
    if p in rules:
        return rules[p]
    if isinstance(v, bool):
        return {"type": "boolean"}
    if isinstance(v, int):
        return {"type": "integer"}
    if isinstance(v, float):
        return {"type": "number"}
    if isinstance(v, str):
        return {"type": "string"}
    if isinstance(v, list):
        return {"type": "array", "items": infer(v[0], p + "[]") if v else {}}
    if isinstance(v, dict):
        if not v:
            sys.exit(f"helm-schema: {p} is an empty map in values.yaml: give it a rule in scripts/helm-schema.sh")
        return {"type": "object", "additionalProperties": False,
                "properties": {k: infer(x, f"{p}.{k}" if p else k) for k, x in v.items()}}
    if v is None:
        sys.exit(f"helm-schema: {p} is null in values.yaml: give it a rule in scripts/helm-schema.sh")
    sys.exit(f"helm-schema: {p}: cannot infer a type for {v!r}")

# `config`: every section and key the binary knows; null allowed (the binary's default).
def config_schema(v, p):
    if isinstance(v, dict):
        if not v or p in ("kafka.client",):
            # Free maps: librdkafka properties, OTLP headers, inline sealing keys.
            return {"type": ["object", "null"], "additionalProperties": {"type": ["string", "number", "boolean"]}}
        props = {k: config_schema(x, f"{p}.{k}" if p else k) for k, x in v.items() if f"{p}.{k}" not in ("admin.listen", "api.listen")}
        return {"type": ["object", "null"], "additionalProperties": False, "properties": props}
    if isinstance(v, bool):
        t = "boolean"
    elif isinstance(v, int):
        t = "integer"
    elif isinstance(v, float):
        t = "number"
    elif isinstance(v, str):
        t = "string"
    elif isinstance(v, list):
        return {"type": ["array", "null"]}
    else:
        sys.exit(f"helm-schema: config {p}: cannot infer a type for {v!r}")
    return {"type": [t, "null"]} if t != "number" else {"type": ["number", "null"]}

schema = infer({k: v for k, v in values.items() if k != "config"}, "")
schema["properties"]["config"] = config_schema(defaults, "")
schema["properties"]["config"]["type"] = "object"
# Whole numbers may be written for floats (jitter: 0); integers stay integers.
schema = {"$schema": "http://json-schema.org/draft-07/schema#", "title": "hookline chart values", **schema}
schema["required"] = ["config"]
text = json.dumps(schema, indent=2, sort_keys=False) + "\n"
if mode == "--check":
    try:
        current = open(path).read()
    except OSError:
        current = ""
    if current != text:
        print(f"helm-schema: {path} is not current (values.yaml or the binary's configuration changed): run scripts/helm-schema.sh", file=sys.stderr)
        sys.exit(1)
    print("helm-schema: values.schema.json is current")
else:
    open(path, "w").write(text)
    print(f"helm-schema: wrote {path}")
PY
