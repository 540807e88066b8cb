{{/*
Chart name, truncated to 63 characters (a DNS label).
*/}}
{{- define "hookline.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: <release>-<chart> unless the release name already contains the chart name.
Role resources append "-<role>", so it is kept to 50 characters.
*/}}
{{- define "hookline.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
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
{{- if not .Values.kafkaSasl.username -}}{{ fail "hookline: kafkaSasl.enabled needs kafkaSasl.username" }}{{- end -}}
{{- if not .Values.kafkaSasl.password -}}{{ fail "hookline: kafkaSasl.enabled needs kafkaSasl.password" }}{{- end -}}
{{- $_ := set $client "security.protocol" .Values.kafkaSasl.securityProtocol -}}
{{- $_ := set $client "sasl.mechanism" .Values.kafkaSasl.mechanism -}}
{{- $_ := set $client "sasl.username" (toString .Values.kafkaSasl.username) -}}
{{- $_ := set $client "sasl.password" (toString .Values.kafkaSasl.password) -}}
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
