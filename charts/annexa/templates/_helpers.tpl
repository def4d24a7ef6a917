{{/* Chart name, truncated to the 63 characters a label value may hold. */}}
{{- define "annexa.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Prefix of every object name. Kept at most 48 characters so that "<fullname>-webhook-tls" and
the other suffixed names stay valid DNS labels.
*/}}
{{- define "annexa.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 48 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 48 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 48 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "annexa.selectorLabels" -}}
app.kubernetes.io/name: {{ include "annexa.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "annexa.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "annexa.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: annexa
{{- end -}}

{{- define "annexa.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "annexa.certManager" -}}
{{- if eq .Values.certificates.mode "cert-manager" -}}true{{- end -}}
{{- end -}}

{{- define "annexa.webhookService" -}}{{ include "annexa.fullname" . }}-webhook{{- end -}}
{{- define "annexa.certSecret" -}}{{ include "annexa.fullname" . }}-webhook-tls{{- end -}}
{{- define "annexa.leaseName" -}}{{ include "annexa.fullname" . }}-leader{{- end -}}

{{/*
Namespaces no webhook may ever see: kube-system, Annexa's own namespace (so Annexa can always
be repaired or removed) and any the user adds.
*/}}
{{- define "annexa.excludedNamespaces" -}}
{{- $namespaces := list "kube-system" .Release.Namespace -}}
{{- range .Values.webhook.excludedNamespaces -}}
{{- $namespaces = append $namespaces . -}}
{{- end -}}
{{- toJson ($namespaces | uniq) -}}
{{- end -}}

{{/* Refuse value combinations that would render a broken or unsafe installation. */}}
{{- define "annexa.validate" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElection.enabled) -}}
{{- fail "replicaCount > 1 needs leaderElection.enabled=true: two replicas running the controllers would fight over the same objects" -}}
{{- end -}}
{{- if and (eq .Values.rbac.grantMode "escalate") .Values.rbac.grantableRules -}}
{{- fail "rbac.grantableRules is only used with rbac.grantMode=grantableRules; with escalate Annexa can grant any rule already" -}}
{{- end -}}
{{- range .Values.rbac.grantableRules -}}
{{- if or (has "*" (default list .verbs)) (has "*" (default list .resources)) (has "*" (default list .apiGroups)) -}}
{{- fail "rbac.grantableRules must not contain \"*\": list the verbs, resources and API groups" -}}
{{- end -}}
{{- end -}}
{{- end -}}
