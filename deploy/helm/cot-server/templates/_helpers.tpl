{{- define "cot-server.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "cot-server.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "cot-server.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "cot-server.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "cot-server.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cot-server.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "cot-server.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "cot-server.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* A value as an env var string; whole numbers stay integers (Helm reads them as floats). */}}
{{- define "cot-server.envValue" -}}
{{- if and (kindIs "float64" .) (eq . (floor .)) }}{{ int64 . | toString | quote }}
{{- else }}{{ toString . | quote }}
{{- end }}
{{- end }}

{{/* The `engine` values as vLLM flags, container args after the entrypoint `cot-server serve`:
true -> --name, false -> --no-name, a map -> JSON, a list -> its items, null -> left out. */}}
{{- define "cot-server.engineArgs" -}}
{{- range $flag, $value := .Values.engine }}
{{- if kindIs "bool" $value }}
- {{ printf "--%s%s" (ternary "" "no-" $value) $flag | quote }}
{{- else if not (kindIs "invalid" $value) }}
- {{ printf "--%s" $flag | quote }}
{{- if kindIs "map" $value }}
- {{ toJson $value | quote }}
{{- else if kindIs "slice" $value }}
{{- range $value }}
- {{ include "cot-server.envValue" . }}
{{- end }}
{{- else }}
- {{ include "cot-server.envValue" $value }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* GPUs one server uses: tensor x pipeline x data parallel size (each 1 when not given). */}}
{{- define "cot-server.gpus" -}}
{{- $engine := .Values.engine | default dict }}
{{- $sizes := list }}
{{- range $name := list "tensor-parallel-size" "pipeline-parallel-size" "data-parallel-size" }}
{{- $sizes = append $sizes (index $engine $name | default 1 | int64) }}
{{- end }}
{{- mul (index $sizes 0) (index $sizes 1) (index $sizes 2) }}
{{- end }}

{{/* preStop sleep + the server's drain timeout + time for the engine to stop. */}}
{{- define "cot-server.gracePeriod" -}}
{{- $drain := 30 }}
{{- if not (kindIs "invalid" .Values.server.drain_timeout) }}
{{- $drain = .Values.server.drain_timeout | ceil | int64 }}
{{- end }}
{{- add .Values.lifecycle.preStopSleepSeconds $drain .Values.lifecycle.shutdownMarginSeconds }}
{{- end }}

{{/* The entry of an autoscaler's metrics that its scaleOn names, as YAML; called with
(list "<values path of the entries>" entries key field...), it fails where a field is unset. */}}
{{- define "cot-server.scaleOn" -}}
{{- $where := index . 0 }}
{{- $key := index . 2 }}
{{- $entry := index (index . 1) $key | default dict }}
{{- range $field := slice . 3 }}
{{- $value := index $entry $field }}
{{- if or (kindIs "invalid" $value) (eq (toString $value) "") }}
{{- fail (printf "scaleOn names %q, so %s.%s.%s must be set" $key $where $key $field) }}
{{- end }}
{{- end }}
{{- toYaml $entry }}
{{- end }}

{{- define "cot-server.checks" -}}
{{- if and .Values.autoscaling.enabled .Values.keda.enabled }}
{{- fail "enable one of autoscaling (HPA) and keda, not both" }}
{{- end }}
{{- $on := list }}
{{- if .Values.autoscaling.enabled }}{{ $on = .Values.autoscaling.scaleOn | default list }}{{ end }}
{{- if .Values.keda.enabled }}{{ $on = .Values.keda.scaleOn | default list }}{{ end }}
{{- if and (or .Values.autoscaling.enabled .Values.keda.enabled) (not $on) }}
{{- fail "scaleOn must name at least one metric" }}
{{- end }}
{{- /* The engine queues only what the server lets through beyond what it runs. */}}
{{- $running := .Values.server.max_concurrent_sequences }}
{{- $seqs := index (.Values.engine | default dict) "max-num-seqs" }}
{{- if and (has "engineWaiting" $on) (not (kindIs "invalid" $running)) (not (kindIs "invalid" $seqs)) }}
{{- if le (int64 $running) (int64 $seqs) }}
{{- fail (printf "scaling on engineWaiting needs server.max_concurrent_sequences (%v) above engine.max-num-seqs (%v): the engine never queues otherwise (docs/deployment.md)" $running $seqs) }}
{{- end }}
{{- end }}
{{- end }}
