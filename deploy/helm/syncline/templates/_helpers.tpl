{{/* Names and labels. */}}
{{- define "syncline.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "syncline.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "syncline.selectorLabels" -}}
app.kubernetes.io/name: {{ include "syncline.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "syncline.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "syncline.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: syncline
{{- end -}}

{{- define "syncline.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "syncline.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
The Deployments to make, as YAML `workers: [{role, name}]`: one running every role (layout
combined), or one per role (perRole). `role` is what `syncline run --role` gets and the key
of its settings under .Values.workers.
*/}}
{{- define "syncline.workers" -}}
{{- $full := include "syncline.fullname" . -}}
workers:
{{- if eq .Values.layout "combined" }}
  - {role: all, name: {{ $full | quote }}}
{{- else }}
{{- range $role := list "lanes" "route" "merge" }}
  - {role: {{ $role }}, name: {{ printf "%s-%s" $full $role | trunc 63 | trimSuffix "-" | quote }}}
{{- end }}
{{- end }}
{{- end -}}

{{/* The configuration file's text, as given (a map would lose the order of `systems`). */}}
{{- define "syncline.configText" -}}
{{- .Values.config -}}
{{- end -}}

{{/*
Every environment variable the configuration names for a secret: the value of every key
ending in `_env` (token_env, password_env, secret_env ...), one per line. A test checks that
the config loader names secrets by such keys only.
*/}}
{{- define "syncline.envNames" -}}
{{- if kindIs "map" . -}}
{{- range $key, $value := . -}}
{{- if and (hasSuffix "_env" $key) (kindIs "string" $value) }}
{{ $value }}
{{- else -}}
{{- include "syncline.envNames" $value -}}
{{- end -}}
{{- end -}}
{{- else if kindIs "slice" . -}}
{{- range . -}}
{{- include "syncline.envNames" . -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The Secret's name, and its keys (each mounted as a file). */}}
{{- define "syncline.secretName" -}}
{{- default (printf "%s-secrets" (include "syncline.fullname" .)) .Values.secrets.existingSecret -}}
{{- end -}}

{{- define "syncline.secretKeys" -}}
{{- if .Values.secrets.existingSecret -}}
{{- join "\n" .Values.secrets.keys -}}
{{- else -}}
{{- join "\n" (keys .Values.secrets.values | sortAlpha) -}}
{{- end -}}
{{- end -}}

{{/*
Fail rendering when the config names a secret variable that neither the Secret's keys nor
`env` provide: the pods would only say so in a crash loop.
*/}}
{{- define "syncline.checkSecrets" -}}
{{- $config := include "syncline.configText" . | fromYaml -}}
{{- if hasKey $config "Error" -}}
{{- fail (printf "config is not valid YAML: %s" (get $config "Error")) -}}
{{- end -}}
{{- if not (kindIs "map" (get $config "kafka")) -}}
{{- fail "config: the syncline configuration needs a kafka: section (see examples/syncline.yaml)" -}}
{{- end -}}
{{- $provided := splitList "\n" (include "syncline.secretKeys" .) | compact -}}
{{- range .Values.env -}}
{{- $provided = append $provided (trimSuffix "_FILE" .name) -}}
{{- end -}}
{{- if and .Values.secrets.existingSecret .Values.secrets.values -}}
{{- fail "secrets: set existingSecret or values, not both (values would be ignored)" -}}
{{- end -}}
{{- range $name := splitList "\n" (include "syncline.envNames" $config) | compact | uniq | sortAlpha -}}
{{- if not (has $name $provided) -}}
{{- fail (printf "the config names the secret variable %s (a *_env key) but no key of the Secret provides it: add %s to secrets.keys (existingSecret %q) or secrets.values, or an env entry %s or %s_FILE" $name $name $.Values.secrets.existingSecret $name $name) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The partition count route and merge replicas are measured against. */}}
{{- define "syncline.partitions" -}}
{{- $config := include "syncline.configText" . | fromYaml -}}
{{- dig "kafka" "topics" "partitions" 4 $config -}}
{{- end -}}
