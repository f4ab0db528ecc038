{{/* The chart name, or nameOverride. */}}
{{- define "berth.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Resource names: fullnameOverride, else the release name (plus the chart name unless it already contains it). */}}
{{- define "berth.fullname" -}}
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

{{- define "berth.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "berth.selectorLabels" -}}
app.kubernetes.io/name: {{ include "berth.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "berth.labels" -}}
helm.sh/chart: {{ include "berth.chart" . }}
{{ include "berth.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: berth
{{- end }}

{{- define "berth.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "berth.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "berth.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/* Whether berth manages ScanPolicies: the flag's own default (all namespaces) unless forced. */}}
{{- define "berth.managesScanPolicies" -}}
{{- if kindIs "bool" .Values.manageScanPolicies }}
{{- .Values.manageScanPolicies }}
{{- else }}
{{- empty .Values.watchNamespaces }}
{{- end }}
{{- end }}

{{/* The rules berth needs on its namespaced kinds, wherever it watches them. */}}
{{- define "berth.namespacedRules" -}}
- apiGroups: ["ecr.berth.dev"]
  resources: ["ecrrepositories", "lifecyclepolicies"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["ecr.berth.dev"]
  resources: ["ecrrepositories/status", "lifecyclepolicies/status"]
  verbs: ["get", "patch"]
# the audit trail: berth writes events.k8s.io/v1 Events and patches repeats into a series
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}

{{/* ScanPolicy is cluster-scoped: one registry-wide configuration. */}}
{{- define "berth.scanPolicyRules" -}}
- apiGroups: ["ecr.berth.dev"]
  resources: ["scanpolicies"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["ecr.berth.dev"]
  resources: ["scanpolicies/status"]
  verbs: ["get", "patch"]
{{- end }}
