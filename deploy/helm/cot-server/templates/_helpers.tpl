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

{{/* preStop sleep + the server's drain timeout + time for the engine to stop. */}}
{{- define "cot-server.gracePeriod" -}}
{{- $drain := 30 }}
{{- if not (kindIs "invalid" .Values.server.drain_timeout) }}
{{- $drain = .Values.server.drain_timeout | ceil | int64 }}
{{- end }}
{{- add .Values.lifecycle.preStopSleepSeconds $drain .Values.lifecycle.shutdownMarginSeconds }}
{{- end }}

{{- define "cot-server.checks" -}}
{{- if and .Values.autoscaling.enabled .Values.keda.enabled }}
{{- fail "enable one of autoscaling (HPA) and keda, not both" }}
{{- end }}
{{- end }}
