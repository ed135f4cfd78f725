{{/* Chart name, truncated to the 63 characters Kubernetes allows in a name. */}}
{{- define "owsc.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: the release name, plus the chart name unless the release already contains it. */}}
{{- define "owsc.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "owsc.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "owsc.selectorLabels" -}}
app.kubernetes.io/name: {{ include "owsc.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "owsc.labels" -}}
helm.sh/chart: {{ include "owsc.chart" . }}
{{ include "owsc.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "owsc.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Secret keys, one per non-empty value of .Values.secrets that is a token or a URL. */}}
{{- define "owsc.secretEnv" -}}
{{- $secrets := dict "OW_SC_API_TOKEN" .Values.secrets.apiToken "OW_SC_METRICS_TOKEN" .Values.secrets.metricsToken "OW_SC_REDIS_URL" .Values.secrets.redisUrl "DATABASE_URL" .Values.secrets.databaseUrl "OPENAI_API_KEY" .Values.secrets.openaiApiKey }}
{{- range $name, $value := $secrets }}
{{- if $value }}
{{ $name }}: {{ $value | toString | b64enc | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/* A plain env value as a string: integers without the float notation YAML numbers get in Helm. */}}
{{- define "owsc.envValue" -}}
{{- if or (kindIs "float64" .) (kindIs "int64" .) (kindIs "int" .) }}
{{- . | int64 | toString | quote }}
{{- else }}
{{- . | toString | quote }}
{{- end }}
{{- end }}

{{/*
The combinations the service itself refuses at start-up (production mode, spec 7.4 and 3.12), refused here
at install time with the same reason, so that a release never crash-loops on them.
*/}}
{{- define "owsc.validate" -}}
{{- if and .Values.secrets.redisUrl (not .Values.secrets.databaseUrl) }}
{{- fail "secrets.databaseUrl is required when secrets.redisUrl is set: incidents and acknowledgements must be shared (DATABASE_URL: required in production when OW_SC_REDIS_URL is set)" }}
{{- end }}
{{- if and .Values.secrets.metricsProtect (not (or .Values.secrets.metricsToken .Values.secrets.apiToken)) }}
{{- fail "secrets.metricsProtect needs secrets.metricsToken or secrets.apiToken (OW_SC_METRICS_TOKEN)" }}
{{- end }}
{{- if and (or .Values.autoscaling.enabled (gt (int .Values.replicaCount) 1)) (not (and .Values.secrets.redisUrl .Values.secrets.databaseUrl)) }}
{{- fail "more than one replica (replicaCount > 1 or autoscaling.enabled) needs secrets.redisUrl for the fan-out and secrets.databaseUrl for the shared store" }}
{{- end }}
{{- if and (eq (toString .Values.env.OW_SC_ADVICE_PROVIDER) "openai") (not .Values.secrets.openaiApiKey) }}
{{- fail "env.OW_SC_ADVICE_PROVIDER=openai needs secrets.openaiApiKey (OPENAI_API_KEY)" }}
{{- end }}
{{- end }}
