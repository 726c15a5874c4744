{{/* Chart name. */}}
{{- define "otel-bare-metal.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release-chart, unless the release name already contains the chart name. */}}
{{- define "otel-bare-metal.fullname" -}}
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

{{/* Name of the HDHomeRun Deployment and its Service. */}}
{{- define "otel-bare-metal.hdhomerunName" -}}
{{- printf "%s-hdhomerun" (include "otel-bare-metal.fullname" . | trunc 53 | trimSuffix "-") }}
{{- end }}

{{- define "otel-bare-metal.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride }}
{{- end }}

{{- define "otel-bare-metal.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels; pass (dict "ctx" $ "component" "node-exporter"). */}}
{{- define "otel-bare-metal.selectorLabels" -}}
app.kubernetes.io/name: {{ include "otel-bare-metal.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Common labels; pass (dict "ctx" $ "component" "…"). */}}
{{- define "otel-bare-metal.labels" -}}
helm.sh/chart: {{ include "otel-bare-metal.chart" .ctx }}
{{ include "otel-bare-metal.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: otel-bare-metal
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels without the component: everything the release installs. */}}
{{- define "otel-bare-metal.baseLabels" -}}
helm.sh/chart: {{ include "otel-bare-metal.chart" . }}
app.kubernetes.io/name: {{ include "otel-bare-metal.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: otel-bare-metal
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "otel-bare-metal.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "otel-bare-metal.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image reference: [registry/]repository@digest, else [registry/]repository:tag (tag
defaults to appVersion); global.imageRegistry wins over image.registry (air-gapped mirrors). */}}
{{- define "otel-bare-metal.image" -}}
{{- $registry := default .Values.image.registry (dig "imageRegistry" "" (default (dict) .Values.global)) }}
{{- $name := .Values.image.repository }}
{{- if $registry }}{{ $name = printf "%s/%s" (trimSuffix "/" $registry) $name }}{{ end }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $name .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $name (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The cluster-autoscaler annotation, unless safeToEvict is null. */}}
{{- define "otel-bare-metal.safeToEvict" -}}
{{- if kindIs "bool" .Values.safeToEvict -}}
cluster-autoscaler.kubernetes.io/safe-to-evict: {{ .Values.safeToEvict | toString | quote }}
{{- end }}
{{- end }}

{{/* Relabelings every monitor starts with: node and instance are the node's name, so instance
stays put across rollouts and matches the Collector path (collector-config/pull-kubernetes.yaml). */}}
{{- define "otel-bare-metal.nodeRelabelings" -}}
- sourceLabels: [__meta_kubernetes_pod_node_name]
  targetLabel: node
- sourceLabels: [__meta_kubernetes_pod_node_name]
  targetLabel: instance
{{- end }}

{{/* Monitor spec fields shared by the ServiceMonitor and the PodMonitor; pass the monitor's values. */}}
{{- define "otel-bare-metal.monitorSpec" -}}
{{- if .sampleLimit }}
sampleLimit: {{ .sampleLimit }}
{{- end }}
{{- if and .attachMetadata .attachMetadata.node }}
attachMetadata:
  node: true
{{- end }}
{{- with .podTargetLabels }}
podTargetLabels:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* The metric exporters as a list. */}}
{{- define "otel-bare-metal.prometheusOn" -}}
{{- if has "prometheus" (splitList "," (.Values.metricsExporter | nospace)) }}true{{ end }}
{{- end }}
{{- define "otel-bare-metal.otlpOn" -}}
{{- if has "otlp" (splitList "," (.Values.metricsExporter | nospace)) }}true{{ end }}
{{- end }}

{{/* Annotation-based scraping is used when no monitor is on and Prometheus exposition is. */}}
{{- define "otel-bare-metal.scrapeAnnotations" -}}
{{- if and .Values.prometheusScrapeAnnotations (include "otel-bare-metal.prometheusOn" .) (not .Values.serviceMonitor.enabled) (not .Values.podMonitor.enabled) -}}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .Values.port | quote }}
prometheus.io/path: {{ .Values.telemetryPath | quote }}
prometheus.io/scheme: {{ .Values.scheme | quote }}
{{- end }}
{{- end }}

{{/* Required node affinity with the excludeNodes requirements added to every term. */}}
{{- define "otel-bare-metal.affinity" -}}
{{- $affinity := deepCopy (default (dict) .affinity) }}
{{- if .exclude }}
{{- $node := default (dict) $affinity.nodeAffinity }}
{{- $required := default (dict) (get $node "requiredDuringSchedulingIgnoredDuringExecution") }}
{{- $terms := default (list (dict)) $required.nodeSelectorTerms }}
{{- $merged := list }}
{{- range $terms }}
{{- $term := deepCopy . }}
{{- $_ := set $term "matchExpressions" (concat (default (list) $term.matchExpressions) $.exclude) }}
{{- $merged = append $merged $term }}
{{- end }}
{{- $_ := set $required "nodeSelectorTerms" $merged }}
{{- $_ := set $node "requiredDuringSchedulingIgnoredDuringExecution" $required }}
{{- $_ := set $affinity "nodeAffinity" $node }}
{{- end }}
{{- if $affinity }}
{{- toYaml $affinity }}
{{- end }}
{{- end }}

{{/* Environment shared by every exporter container. */}}
{{- define "otel-bare-metal.env" -}}
- name: K8S_NODE_NAME
  valueFrom:
    fieldRef:
      fieldPath: spec.nodeName
- name: K8S_POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
{{- if and (include "otel-bare-metal.otlpOn" .) .Values.otlp.headersSecret.name }}
- name: OTEL_EXPORTER_OTLP_HEADERS
  valueFrom:
    secretKeyRef:
      name: {{ .Values.otlp.headersSecret.name }}
      key: {{ .Values.otlp.headersSecret.key }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* OTEL_RESOURCE_ATTRIBUTES of every exporter container: k8s.namespace.name, then resourceAttributes. */}}
{{- define "otel-bare-metal.resourceAttributes" -}}
{{- $attrs := list (printf "k8s.namespace.name=%s" (include "otel-bare-metal.namespace" .)) }}
{{- range $key := keys .Values.resourceAttributes | sortAlpha }}
{{- $attrs = append $attrs (printf "%s=%v" $key (get $.Values.resourceAttributes $key)) }}
{{- end }}
{{- join "," $attrs }}
{{- end }}

{{/* Pod annotations: the config checksum rolls the pods when the ConfigMap changes. */}}
{{- define "otel-bare-metal.checksum" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
{{- end }}

{{/* The probe handler on /healthz at the one port. */}}
{{- define "otel-bare-metal.probeHandler" -}}
httpGet:
  path: /healthz
  port: {{ .Values.portName }}
  scheme: {{ upper .Values.scheme }}
{{- end }}

{{/* The web config volume, when a Secret is named. */}}
{{- define "otel-bare-metal.webConfigArgs" -}}
{{- if .Values.webConfig.existingSecret }}
- --web.config.file=/etc/otel-bare-metal/web/{{ .Values.webConfig.key }}
{{- end }}
{{- end }}
