{{/*
Chart name, truncated to 63 characters (a DNS label).
*/}}
{{- define "hookline.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: <release>-<chart> unless the release name already contains the chart name.
Resources append at most 15 characters to it ("-sender-metrics", "-replay-metrics",
"-topics-config"), so it is kept to 48 and every name stays within 63 (a DNS label; the API
server refuses a longer Service name). scripts/helm-lint.sh renders a 53-character release.
*/}}
{{- define "hookline.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 48 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 48 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 48 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart label value.
*/}}
{{- define "hookline.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels. Use with the root context.
*/}}
{{- define "hookline.labels" -}}
helm.sh/chart: {{ include "hookline.chart" . }}
{{ include "hookline.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: hookline
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Selector labels (stable across upgrades: never add to them).
*/}}
{{- define "hookline.selectorLabels" -}}
app.kubernetes.io/name: {{ include "hookline.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels of one role. Call with (dict "root" $ "role" "sender").
*/}}
{{- define "hookline.roleLabels" -}}
{{ include "hookline.labels" .root }}
app.kubernetes.io/component: {{ .role }}
{{- end }}

{{- define "hookline.roleSelectorLabels" -}}
{{ include "hookline.selectorLabels" .root }}
app.kubernetes.io/component: {{ .role }}
{{- end }}

{{/*
ServiceAccount name.
*/}}
{{- define "hookline.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "hookline.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Image reference: digest wins over tag; tag defaults to the appVersion.
*/}}
{{- define "hookline.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion | toString) }}
{{- end }}
{{- end }}

{{/*
Name of the Secret holding hookline.toml (the chart's or existingSecret).
*/}}
{{- define "hookline.configSecretName" -}}
{{- if .Values.existingSecret }}
{{- .Values.existingSecret }}
{{- else }}
{{- printf "%s-config" (include "hookline.fullname" .) }}
{{- end }}
{{- end }}

{{/* ---------------------------------------------------------------- TOML */}}

{{/*
A TOML key: bare when it can be, else a quoted (JSON-escaped) string.
*/}}
{{- define "hookline.toml.key" -}}
{{- if regexMatch "^[A-Za-z0-9_-]+$" . -}}
{{ . }}
{{- else -}}
{{ toJson . }}
{{- end -}}
{{- end -}}

{{/*
A TOML value: string, bool, integer, float, array or inline table. YAML numbers arrive as
float64 in Helm; whole ones are printed as integers (604800000, not 6.048e+08).
JSON string escapes are valid TOML basic-string escapes.
*/}}
{{- define "hookline.toml.value" -}}
{{- $v := . -}}
{{- if kindIs "string" $v -}}
{{ toJson $v }}
{{- else if kindIs "bool" $v -}}
{{ $v }}
{{- else if kindIs "float64" $v -}}
{{- if eq (float64 (int64 $v)) $v -}}{{ int64 $v }}{{- else -}}{{ $v }}{{- end -}}
{{- else if or (kindIs "int" $v) (kindIs "int64" $v) (kindIs "int32" $v) (kindIs "uint64" $v) -}}
{{ $v }}
{{- else if kindIs "slice" $v -}}
[{{ range $i, $e := $v }}{{ if $i }}, {{ end }}{{ include "hookline.toml.value" $e }}{{ end }}]
{{- else if kindIs "map" $v -}}
{ {{- $first := true -}}{{ range $k, $e := $v }}{{ if not (kindIs "invalid" $e) }}{{ if not $first }}, {{ end }}{{ $first = false }}{{ include "hookline.toml.key" $k }} = {{ include "hookline.toml.value" $e }}{{ end }}{{ end -}} }
{{- else -}}
{{ fail (printf "hookline: cannot render %v (%s) as TOML" $v (kindOf $v)) }}
{{- end -}}
{{- end -}}

{{/*
A TOML table and its sub-tables. Call with (dict "path" (list "kafka") "map" $m); an empty
path renders the root (no header). Scalars and arrays first, then one [a.b] per nested map.
Null values are skipped so the binary's default applies.
*/}}
{{- define "hookline.toml.table" -}}
{{- $path := .path -}}
{{- $m := .map -}}
{{- if $path }}
[{{ range $i, $p := $path }}{{ if $i }}.{{ end }}{{ include "hookline.toml.key" $p }}{{ end }}]
{{- end }}
{{- range $k, $v := $m }}
{{- if not (or (kindIs "map" $v) (kindIs "invalid" $v)) }}
{{ include "hookline.toml.key" $k }} = {{ include "hookline.toml.value" $v }}
{{- end }}
{{- end }}
{{- range $k, $v := $m }}
{{- if kindIs "map" $v }}
{{ include "hookline.toml.table" (dict "path" (append $path $k) "map" $v) }}
{{- end }}
{{- end }}
{{- end -}}

{{/*
The effective configuration map: .Values.config plus the listeners from containerPorts,
kafkaSasl merged into kafka.client, and no api.tokens (rendered apart from apiTokens).
Returned as JSON (templates return strings).
*/}}
{{- define "hookline.configMap" -}}
{{- $cfg := deepCopy (.Values.config | default dict) -}}
{{- $admin := get $cfg "admin" | default dict -}}
{{- $_ := set $admin "listen" (printf "0.0.0.0:%d" (int .Values.containerPorts.admin)) -}}
{{- $_ := set $cfg "admin" $admin -}}
{{- $api := get $cfg "api" | default dict -}}
{{- $_ := set $api "listen" (printf "0.0.0.0:%d" (int .Values.containerPorts.http)) -}}
{{- $_ := unset $api "tokens" -}}
{{- $_ := set $cfg "api" $api -}}
{{- $kafka := get $cfg "kafka" | default dict -}}
{{- $client := get $kafka "client" | default dict -}}
{{- if .Values.kafkaSasl.enabled -}}
{{- $username := include "hookline.saslUsername" . -}}
{{- if not $username -}}{{ fail "hookline: kafkaSasl.enabled needs kafkaSasl.username" }}{{- end -}}
{{- if and .Values.kafkaSasl.password (include "hookline.saslSecretName" .) -}}
{{- fail "hookline: set kafkaSasl.password or kafkaSasl.existingSecret, not both" -}}
{{- end -}}
{{- if not (or .Values.kafkaSasl.password (include "hookline.saslSecretName" .)) -}}
{{ fail "hookline: kafkaSasl.enabled needs kafkaSasl.password or kafkaSasl.existingSecret" }}
{{- end -}}
{{- $_ := set $client "security.protocol" .Values.kafkaSasl.securityProtocol -}}
{{- $_ := set $client "sasl.mechanism" .Values.kafkaSasl.mechanism -}}
{{- $_ := set $client "sasl.username" $username -}}
{{- if include "hookline.saslSecretName" . -}}
{{- /* Replaced by the kafka-password init container (hookline.saslInitContainer). */ -}}
{{- $_ := set $client "sasl.password" (include "hookline.saslPlaceholder" .) -}}
{{- else -}}
{{- $_ := set $client "sasl.password" (toString .Values.kafkaSasl.password) -}}
{{- end -}}
{{- end -}}
{{- $_ := set $kafka "client" $client -}}
{{- $_ := set $cfg "kafka" $kafka -}}
{{- $log := get $cfg "log" | default dict -}}
{{- $_ := set $log "format" ($log.format | default "json") -}}
{{- $_ := set $cfg "log" $log -}}
{{- toJson $cfg -}}
{{- end -}}

{{/*
The whole hookline.toml.
*/}}
{{- define "hookline.configToml" -}}
{{- $cfg := include "hookline.configMap" . | fromJson -}}
# hookline.toml rendered by the {{ include "hookline.chart" . }} Helm chart (release {{ .Release.Name }}).
# Do not edit in the cluster: change the chart values and upgrade.
{{- range $section := list "kafka" "router" "sender" "retry" "breaker" "admin" "api" "replay" "traces" "log" }}
{{- $m := get $cfg $section }}
{{- if $m }}
{{ include "hookline.toml.table" (dict "path" (list $section) "map" $m) }}
{{- end }}
{{- end }}
{{- range $section, $m := $cfg }}
{{- if not (has $section (list "kafka" "router" "sender" "retry" "breaker" "admin" "api" "replay" "traces" "log")) }}
{{ include "hookline.toml.table" (dict "path" (list $section) "map" $m) }}
{{- end }}
{{- end }}
{{- range .Values.apiTokens }}

[[api.tokens]]
name = {{ include "hookline.toml.value" (toString .name) }}
sha256 = {{ include "hookline.toml.value" (lower (toString .sha256)) }}
scopes = {{ include "hookline.toml.value" .scopes }}
{{- end }}
{{ end -}}

{{/*
Checks that fail the render with a clear message rather than a crash-looping pod.
*/}}
{{- define "hookline.validate" -}}
{{- $cfg := .Values.config | default dict -}}
{{- if not .Values.existingSecret -}}
{{- $_ := required "hookline: config.kafka.bootstrap_servers is required (e.g. kafka-bootstrap.kafka:9092)" ((get $cfg "kafka" | default dict).bootstrap_servers) -}}
{{- if and .Values.api.enabled (not .Values.apiTokens) -}}
{{- fail "hookline: api.enabled needs at least one apiTokens entry (`hookline api` refuses to start without a token): make one with `hookline api token --name ops --scopes admin`, or set api.enabled=false" -}}
{{- end -}}
{{- end -}}
{{- range $role := list "router" "sender" -}}
{{- $r := get $.Values $role -}}
{{- if and $r.enabled $r.keda.enabled (not ((get $cfg "kafka" | default dict).bootstrap_servers)) -}}
{{- fail (printf "hookline: %s.keda.enabled needs config.kafka.bootstrap_servers (KEDA's scaler reads the lag from Kafka itself), also with existingSecret" $role) -}}
{{- end -}}
{{- if and $r.enabled $r.keda.enabled $r.autoscaling.enabled -}}
{{- fail (printf "hookline: %s.keda.enabled and %s.autoscaling.enabled are mutually exclusive (KEDA makes its own HPA): enable one" $role $role) -}}
{{- end -}}
{{- end -}}
{{- if and .Values.api.enabled .Values.api.preStopDelaySeconds -}}
{{- if ge (int .Values.api.preStopDelaySeconds) (int .Values.api.terminationGracePeriodSeconds) -}}
{{- fail (printf "hookline: api.preStopDelaySeconds (%d) must be below api.terminationGracePeriodSeconds (%d)" (int .Values.api.preStopDelaySeconds) (int .Values.api.terminationGracePeriodSeconds)) -}}
{{- end -}}
{{- end -}}
{{- if and .Values.strimzi.enabled .Values.strimzi.topics.enabled .Values.topicsJob.enabled -}}
{{- fail "hookline: strimzi.topics.enabled renders KafkaTopics for the Topic Operator: set topicsJob.enabled=false (two owners of one topic fight)" -}}
{{- end -}}
{{- if and .Values.strimzi.enabled .Values.strimzi.user.enabled (not .Values.kafkaSasl.enabled) -}}
{{- fail "hookline: strimzi.user.enabled makes a SCRAM KafkaUser: set kafkaSasl.enabled=true (its username and Secret default to the KafkaUser's)" -}}
{{- end -}}
{{- $sender := get $cfg "sender" | default dict -}}
{{- if get $sender "allow_loopback" -}}
{{- fail "hookline: config.sender.allow_loopback is for `hookline dev` only; use config.sender.allowed_cidrs for internal targets" -}}
{{- end -}}
{{- if hasKey (get $cfg "api" | default dict) "tokens" -}}
{{- fail "hookline: put API tokens in apiTokens, not config.api.tokens" -}}
{{- end -}}
{{- range $i, $t := .Values.apiTokens -}}
{{- if not $t.name -}}{{ fail (printf "hookline: apiTokens[%d] has no name" $i) }}{{- end -}}
{{- if not (regexMatch "^[0-9a-fA-F]{64}$" (toString $t.sha256)) -}}
{{- fail (printf "hookline: apiTokens[%d] (%s): sha256 must be 64 hex digits (the SHA-256 of the token, from `hookline api token`)" $i $t.name) -}}
{{- end -}}
{{- if not $t.scopes -}}{{ fail (printf "hookline: apiTokens[%d] (%s) has no scopes" $i $t.name) }}{{- end -}}
{{- range $t.scopes -}}
{{- if not (has . (list "admin" "read" "publish")) -}}
{{- fail (printf "hookline: apiTokens[%d] (%s): scope %q is not one of admin, read, publish" $i $t.name .) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $partitions := (get (get $cfg "kafka" | default dict) "partitions") | default dict -}}
{{- range $role, $key := dict "router" "events" "sender" "deliveries" -}}
{{- $r := get $.Values $role -}}
{{- $n := int (get $partitions $key | default 0) -}}
{{- if and $r.enabled (gt $n 0) -}}
{{- if gt (int $r.replicaCount) $n -}}
{{- fail (printf "hookline: %s.replicaCount %d exceeds config.kafka.partitions.%s (%d): extra consumers get no partition and never become ready" $role (int $r.replicaCount) $key $n) -}}
{{- end -}}
{{- if and $r.autoscaling.enabled (gt (int $r.autoscaling.maxReplicas) $n) -}}
{{- fail (printf "hookline: %s.autoscaling.maxReplicas %d exceeds config.kafka.partitions.%s (%d)" $role (int $r.autoscaling.maxReplicas) $key $n) -}}
{{- end -}}
{{- if and $r.keda.enabled (gt (int $r.keda.maxReplicas) $n) -}}
{{- fail (printf "hookline: %s.keda.maxReplicas %d exceeds config.kafka.partitions.%s (%d): consumers beyond the partitions get nothing to read" $role (int $r.keda.maxReplicas) $key $n) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if .Values.replay.enabled -}}
{{- if gt (int .Values.replay.replicaCount) 1 -}}
{{- fail (printf "hookline: replay.replicaCount %d: the replay worker is a singleton (two replicas would both run every replay job and send its deliveries twice); use 1, or 0 to pause replays" (int .Values.replay.replicaCount)) -}}
{{- end -}}
{{- $strategy := .Values.replay.updateStrategy | default dict -}}
{{- if or (ne (toString $strategy.type) "Recreate") (hasKey $strategy "rollingUpdate") -}}
{{- fail (printf "hookline: replay.updateStrategy must be {type: Recreate}, not %s: a rolling update runs the old and the new worker side by side, both running the same replay jobs" (toJson $strategy)) -}}
{{- end -}}
{{- end -}}
{{- if .Values.sender.enabled -}}
{{- $timeout := int (get $sender "request_timeout_ms" | default 15000) -}}
{{- $need := add (div $timeout 1000) 5 -}}
{{- if le (int .Values.sender.terminationGracePeriodSeconds) (int $need) -}}
{{- fail (printf "hookline: sender.terminationGracePeriodSeconds (%d) must exceed sender.request_timeout_ms/1000 + 5 (%d) so in-flight deliveries finish" (int .Values.sender.terminationGracePeriodSeconds) (int $need)) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Checksum annotation that rolls the pods when the configuration changes.
*/}}
{{- define "hookline.configChecksum" -}}
{{- if .Values.existingSecret -}}
{{- printf "existing:%s" .Values.existingSecret | sha256sum -}}
{{- else -}}
{{- include "hookline.configToml" . | sha256sum -}}
{{- end -}}
{{- end -}}

{{/*
Config volume, env and security settings shared by the Deployments and the Job.
*/}}
{{- define "hookline.configVolumeMount" -}}
- name: config
  mountPath: /etc/hookline
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- if .Values.secretKeys.existingSecret }}
- name: secret-keys
  mountPath: /etc/hookline-secret-keys
  readOnly: true
{{- end }}
{{- with .Values.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
The volume of the secret keys file (secretKeys.existingSecret), if any.
*/}}
{{- define "hookline.secretKeysVolume" -}}
{{- with .Values.secretKeys }}
{{- if .existingSecret }}
- name: secret-keys
  secret:
    secretName: {{ .existingSecret }}
    items:
      - key: {{ .secretKey | default "keys" }}
        path: keys
{{- end }}
{{- end }}
{{- end }}

{{- define "hookline.env" -}}
- name: HOOKLINE_CONFIG
  value: /etc/hookline/hookline.toml
{{- if .Values.secretKeys.existingSecret }}
{{- if not .Values.secretKeys.currentKey }}{{ fail "hookline: secretKeys.existingSecret needs secretKeys.currentKey (the id of the key that seals)" }}{{ end }}
- name: HOOKLINE_SECRETS__KEYS_FILE
  value: /etc/hookline-secret-keys/keys
- name: HOOKLINE_SECRETS__CURRENT_KEY
  value: {{ .Values.secretKeys.currentKey | quote }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* ------------------------------------------------------- Kafka SASL from a Secret */}}

{{/*
The Secret holding the SASL password alone: kafkaSasl.existingSecret, or the Secret the
Strimzi User Operator makes for the chart's KafkaUser. Empty when the password is inline.
*/}}
{{- define "hookline.saslSecretName" -}}
{{- if .Values.kafkaSasl.enabled -}}
{{- if .Values.kafkaSasl.existingSecret -}}
{{- .Values.kafkaSasl.existingSecret -}}
{{- else if and .Values.strimzi.enabled .Values.strimzi.user.enabled -}}
{{- include "hookline.strimziUserName" . -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "hookline.saslUsername" -}}
{{- if .Values.kafkaSasl.username -}}
{{- toString .Values.kafkaSasl.username -}}
{{- else if and .Values.strimzi.enabled .Values.strimzi.user.enabled -}}
{{- include "hookline.strimziUserName" . -}}
{{- end -}}
{{- end -}}

{{- define "hookline.strimziUserName" -}}
{{- .Values.strimzi.user.name | default (include "hookline.fullname" .) -}}
{{- end -}}

{{- define "hookline.saslPlaceholder" -}}@@hookline-kafka-sasl-password@@{{- end -}}

{{/*
hookline reads librdkafka properties only from the file (kafka.client."sasl.password" has a
dot, so no HOOKLINE_* variable can set it) and has no *_file indirection for them. So the
chart renders a placeholder and this init container, the same image, writes the file with
the password from the Secret's key into an in-memory volume mounted at /etc/hookline. The
password is written as a TOML literal string: one with a quote or a newline is refused.
Call with (dict "root" $ "template" "<volume of the rendered config>").
*/}}
{{- define "hookline.saslInitContainer" -}}
{{- $root := .root -}}
- name: kafka-password
  image: {{ include "hookline.image" $root }}
  imagePullPolicy: {{ $root.Values.image.pullPolicy }}
  command:
    - /bin/sh
    - -ec
    - |
      pw=$(cat /etc/hookline-kafka-sasl/password)
      case "$pw" in
        *"'"*|*"
      "*) echo "hookline: the Kafka SASL password in Secret {{ include "hookline.saslSecretName" $root }} has a quote or a newline" >&2; exit 1 ;;
      esac
      want='"sasl.password" = "{{ include "hookline.saslPlaceholder" $root }}"'
      found=0
      while IFS= read -r line || [ -n "$line" ]; do
        if [ "$line" = "$want" ]; then printf '%s\n' "\"sasl.password\" = '$pw'"; found=1; else printf '%s\n' "$line"; fi
      done </etc/hookline-template/hookline.toml >/etc/hookline/hookline.toml
      [ "$found" = 1 ] || { echo "hookline: no sasl.password placeholder in the configuration" >&2; exit 1; }
  {{- with $root.Values.securityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  resources:
    requests:
      cpu: 10m
      memory: 16Mi
    limits:
      memory: 32Mi
  volumeMounts:
    - name: config-template
      mountPath: /etc/hookline-template
      readOnly: true
    - name: config
      mountPath: /etc/hookline
    - name: kafka-sasl
      mountPath: /etc/hookline-kafka-sasl
      readOnly: true
{{- end -}}

{{/*
The config volumes of a pod. Call with (dict "root" $ "secretName" "<Secret with hookline.toml>").
Without a SASL Secret: the config Secret at /etc/hookline. With one: the Secret as a
template, an in-memory volume at /etc/hookline written by the init container, and the
password key.
*/}}
{{- define "hookline.configVolumes" -}}
{{- $root := .root -}}
{{- $sasl := include "hookline.saslSecretName" $root -}}
- name: {{ if $sasl }}config-template{{ else }}config{{ end }}
  secret:
    secretName: {{ .secretName }}
    items:
      - key: hookline.toml
        path: hookline.toml
{{- if $sasl }}
- name: config
  emptyDir:
    medium: Memory
    sizeLimit: 1Mi
- name: kafka-sasl
  secret:
    secretName: {{ $sasl }}
    items:
      - key: {{ $root.Values.kafkaSasl.existingSecretPasswordKey }}
        path: password
{{- end }}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- if $root.Values.secretKeys.existingSecret }}
{{ include "hookline.secretKeysVolume" $root }}
{{- end }}
{{- with $root.Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
A probe: the chart's path and port, the shared timings, then the role's own override.
Call with (dict "root" $ "role" "sender" "probe" "livenessProbe" "path" "/healthz").
*/}}
{{- define "hookline.probe" -}}
{{- $r := get .root.Values .role | default dict -}}
{{- $p := merge (deepCopy ((get ($r.probes | default dict) .probe) | default dict)) (deepCopy (get .root.Values .probe)) -}}
httpGet:
  path: {{ .path }}
  port: admin
{{ toYaml $p }}
{{- end -}}
