{{/* Names and labels, as in the prometheus-community charts. */}}
{{- define "aliyun-backup-exporter.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "aliyun-backup-exporter.fullname" -}}
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

{{- define "aliyun-backup-exporter.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "aliyun-backup-exporter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "aliyun-backup-exporter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "aliyun-backup-exporter.labels" -}}
helm.sh/chart: {{ include "aliyun-backup-exporter.chart" . }}
{{ include "aliyun-backup-exporter.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: exporter
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "aliyun-backup-exporter.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "aliyun-backup-exporter.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Service: headless (and so named <fullname>-headless, since a
Service's clusterIP cannot change in place) when sharded. Its name is the
ServiceMonitor's job. */}}
{{- define "aliyun-backup-exporter.serviceName" -}}
{{- if gt (int .Values.shards) 1 }}
{{- printf "%s-headless" (include "aliyun-backup-exporter.fullname" . | trunc 54 | trimSuffix "-") }}
{{- else }}
{{- include "aliyun-backup-exporter.fullname" . }}
{{- end }}
{{- end }}

{{- define "aliyun-backup-exporter.image" -}}
{{- $repo := .Values.image.repository }}
{{- if .Values.image.registry }}
{{- $repo = printf "%s/%s" .Values.image.registry .Values.image.repository }}
{{- end }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $repo .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repo (default .Chart.AppVersion .Values.image.tag | toString) }}
{{- end }}
{{- end }}

{{/* Where the config file and the RRSA token are mounted. */}}
{{- define "aliyun-backup-exporter.configDir" -}}/etc/aliyun-backup-exporter{{- end }}
{{- define "aliyun-backup-exporter.webConfigDir" -}}/etc/aliyun-backup-exporter-web{{- end }}

{{/* "true" when webConfig turns TLS on (the toolkit's rule: any of these set). */}}
{{- define "aliyun-backup-exporter.webTls" -}}
{{- $t := (.Values.webConfig | default dict).tls_server_config | default dict }}
{{- if or $t.cert $t.cert_file $t.key $t.key_file $t.client_ca $t.client_ca_file $t.client_auth_type }}true{{- end }}
{{- end }}

{{/* "true" when every connection must bring a client certificate, which the
kubelet's probes cannot. */}}
{{- define "aliyun-backup-exporter.webClientCertRequired" -}}
{{- $t := (.Values.webConfig | default dict).tls_server_config | default dict }}
{{- if has ($t.client_auth_type | default "") (list "RequireAnyClientCert" "RequireClientCert" "RequireAndVerifyClientCert") }}true{{- end }}
{{- end }}

{{/* A probe of the values, fitted to webConfig: HTTPS with TLS, a TCP
check when client certificates are required. */}}
{{- define "aliyun-backup-exporter.probe" -}}
{{- $probe := deepCopy .probe }}
{{- if and $probe.httpGet (include "aliyun-backup-exporter.webClientCertRequired" .root) }}
{{- $_ := set $probe "tcpSocket" (dict "port" $probe.httpGet.port) }}
{{- $_ := unset $probe "httpGet" }}
{{- else if and $probe.httpGet (include "aliyun-backup-exporter.webTls" .root) (not $probe.httpGet.scheme) }}
{{- $_ := set $probe.httpGet "scheme" "HTTPS" }}
{{- end }}
{{- toYaml $probe }}
{{- end }}
{{- define "aliyun-backup-exporter.rrsaTokenDir" -}}/var/run/secrets/ack.alibabacloud.com/rrsa-tokens{{- end }}

{{/* RRSA without the ack-pod-identity-webhook: the chart mounts the token. */}}
{{- define "aliyun-backup-exporter.rrsaManual" -}}
{{- if and (eq .Values.credentials.source "rrsa") .Values.credentials.rrsa.roleArn }}true{{- end }}
{{- end }}

{{/* Flags the chart sets itself, with the value to use instead: refused in
extraArgs (most of them may be given only once). */}}
{{- define "aliyun-backup-exporter.managedFlags" -}}
--web.listen-address: the container listens on 9817 (service.port is the Service's port)
--web.telemetry-path: telemetryPath
--discovery.regions: discovery.regions
--discovery.tag-labels: discovery.tagLabels
--aliyun.region: aliyun.region
--config.file: config
--web.config.file: webConfig
--config.check: nothing (it exits after checking)
--aliyun.credentials-provider: credentials.source
--shard.count: shards
--shard.index: shards
--shard.from-hostname: shards
--log.level: logLevel
--log.format: logFormat
{{- end }}

{{/* Refuse values that cannot work, with a message naming the value. */}}
{{- define "aliyun-backup-exporter.validate" -}}
{{- $managed := include "aliyun-backup-exporter.managedFlags" . | fromYaml }}
{{- range .Values.extraArgs }}
{{- $flag := regexReplaceAll "=.*$" (toString .) "" }}
{{- if hasKey $managed $flag }}
{{- fail (printf "extraArgs: %s is set by the chart: use %s" $flag (get $managed $flag)) }}
{{- end }}
{{- end }}
{{- $c := .Values.credentials }}
{{- if eq $c.source "existingSecret" }}
{{- if not (and $c.existingSecret.name $c.existingSecret.accessKeyIdKey $c.existingSecret.accessKeySecretKey) }}
{{- fail "credentials.existingSecret: name, accessKeyIdKey and accessKeySecretKey are required with credentials.source=existingSecret" }}
{{- end }}
{{- else if eq $c.source "rrsa" }}
{{- if and $c.rrsa.roleName $c.rrsa.roleArn }}
{{- fail "credentials.rrsa: set roleName (with the ack-pod-identity-webhook) or roleArn and oidcProviderArn (without it), not both" }}
{{- end }}
{{- if and $c.rrsa.roleArn (not $c.rrsa.oidcProviderArn) }}
{{- fail "credentials.rrsa: roleArn needs oidcProviderArn (acs:ram::<uid>:oidc-provider/ack-rrsa-<cluster id>)" }}
{{- end }}
{{- if not (or $c.rrsa.roleName $c.rrsa.roleArn (hasKey .Values.serviceAccount.annotations "pod-identity.alibabacloud.com/role-name") (not .Values.serviceAccount.create)) }}
{{- fail "credentials.source=rrsa: set credentials.rrsa.roleName (the RAM role, for the ack-pod-identity-webhook), or credentials.rrsa.roleArn and oidcProviderArn (without the webhook)" }}
{{- end }}
{{- end }}
{{- if and .Values.serviceMonitor.enabled .Values.podMonitor.enabled }}
{{- fail "serviceMonitor.enabled and podMonitor.enabled: choose one (both would scrape every pod twice)" }}
{{- end }}
{{- if and .Values.prometheusRule.enabled (or (and .Values.serviceMonitor.enabled (not .Values.serviceMonitor.jobLabel)) .Values.podMonitor.enabled) }}
{{- if not (contains "aliyun-backup" (include "aliyun-backup-exporter.fullname" .)) }}
{{- fail (printf "fullnameOverride/nameOverride: the scrape job is named after %q, which AliyunBackupExporterDown (up{job=~\".*aliyun-backup.*\"}) would not match: keep \"aliyun-backup\" in the name" (include "aliyun-backup-exporter.fullname" .)) }}
{{- end }}
{{- end }}
{{- end }}

{{/* The exporter's arguments. */}}
{{- define "aliyun-backup-exporter.args" -}}
{{- $regions := .Values.discovery.regions }}
{{- if not (or $regions .Values.redis.instanceIds .Values.config) }}
{{- $regions = list "all" }}
{{- end }}
- {{ printf "--web.telemetry-path=%s" .Values.telemetryPath | quote }}
{{- with $regions }}
- {{ printf "--discovery.regions=%s" (join "," .) | quote }}
{{- end }}
{{- range $key, $value := .Values.discovery.tags }}
- {{ printf "--discovery.tag=%s=%s" $key (toString $value) | quote }}
{{- end }}
{{- with .Values.discovery.tagLabels }}
- {{ printf "--discovery.tag-labels=%s" (join "," .) | quote }}
{{- end }}
{{- with .Values.redis.instanceIds }}
- {{ printf "--redis.instance-id=%s" (join "," .) | quote }}
{{- end }}
{{- with .Values.aliyun.region }}
- {{ printf "--aliyun.region=%s" . | quote }}
{{- end }}
{{- if .Values.config }}
- {{ printf "--config.file=%s/config.yml" (include "aliyun-backup-exporter.configDir" .) | quote }}
{{- end }}
{{- if .Values.webConfig }}
- {{ printf "--web.config.file=%s/web-config.yml" (include "aliyun-backup-exporter.webConfigDir" .) | quote }}
{{- end }}
{{- $provider := get (dict "existingSecret" "env" "rrsa" "oidc" "ecsRole" "ecs-ram-role") .Values.credentials.source }}
{{- with $provider }}
- {{ printf "--aliyun.credentials-provider=%s" . | quote }}
{{- end }}
{{- if gt (int .Values.shards) 1 }}
- {{ printf "--shard.count=%d" (int .Values.shards) | quote }}
- "--shard.from-hostname"
{{- end }}
- {{ printf "--log.level=%s" .Values.logLevel | quote }}
- {{ printf "--log.format=%s" .Values.logFormat | quote }}
{{- range .Values.extraArgs }}
- {{ toString . | quote }}
{{- end }}
{{- end }}

{{/* The exporter's environment: the credentials, then extraEnv. */}}
{{- define "aliyun-backup-exporter.env" -}}
{{- $c := .Values.credentials }}
{{- if eq $c.source "existingSecret" }}
- name: ALIBABA_CLOUD_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ $c.existingSecret.name | quote }}
      key: {{ $c.existingSecret.accessKeyIdKey | quote }}
- name: ALIBABA_CLOUD_ACCESS_KEY_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ $c.existingSecret.name | quote }}
      key: {{ $c.existingSecret.accessKeySecretKey | quote }}
{{- with $c.existingSecret.securityTokenKey }}
- name: ALIBABA_CLOUD_SECURITY_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ $c.existingSecret.name | quote }}
      key: {{ . | quote }}
{{- end }}
{{- else if include "aliyun-backup-exporter.rrsaManual" . }}
- name: ALIBABA_CLOUD_ROLE_ARN
  value: {{ $c.rrsa.roleArn | quote }}
- name: ALIBABA_CLOUD_OIDC_PROVIDER_ARN
  value: {{ $c.rrsa.oidcProviderArn | quote }}
- name: ALIBABA_CLOUD_OIDC_TOKEN_FILE
  value: {{ printf "%s/token" (include "aliyun-backup-exporter.rrsaTokenDir" .) | quote }}
{{- else if eq $c.source "ecsRole" }}
{{- with $c.ecsRole.roleName }}
- name: ALIBABA_CLOUD_ECS_METADATA
  value: {{ . | quote }}
{{- end }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "aliyun-backup-exporter.volumeMounts" -}}
{{- if .Values.config }}
- name: config
  mountPath: {{ include "aliyun-backup-exporter.configDir" . }}
  readOnly: true
{{- end }}
{{- if .Values.webConfig }}
- name: web-config
  mountPath: {{ include "aliyun-backup-exporter.webConfigDir" . }}
  readOnly: true
{{- end }}
{{- if include "aliyun-backup-exporter.rrsaManual" . }}
- name: rrsa-oidc-token
  mountPath: {{ include "aliyun-backup-exporter.rrsaTokenDir" . }}
  readOnly: true
{{- end }}
{{- with .Values.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "aliyun-backup-exporter.volumes" -}}
{{- if .Values.config }}
- name: config
  configMap:
    name: {{ include "aliyun-backup-exporter.fullname" . }}
{{- end }}
{{- if .Values.webConfig }}
- name: web-config
  secret:
    secretName: {{ printf "%s-web-config" (include "aliyun-backup-exporter.fullname" .) }}
{{- end }}
{{- if include "aliyun-backup-exporter.rrsaManual" . }}
- name: rrsa-oidc-token
  projected:
    sources:
      - serviceAccountToken:
          audience: sts.aliyuncs.com
          expirationSeconds: {{ int .Values.credentials.rrsa.tokenExpirationSeconds }}
          path: token
{{- end }}
{{- with .Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The pod template of the Deployment (shards: 1) and of the StatefulSet. */}}
{{- define "aliyun-backup-exporter.podTemplate" -}}
metadata:
  {{- $annotations := dict }}
  {{- if .Values.config }}
  {{- $_ := set $annotations "checksum/config" (include (print $.Template.BasePath "/configmap.yaml") . | sha256sum) }}
  {{- end }}
  {{- if .Values.webConfig }}
  {{- /* TLS on or off and rate_limit are read at start-up only. */}}
  {{- $_ := set $annotations "checksum/web-config" (include (print $.Template.BasePath "/web-config-secret.yaml") . | sha256sum) }}
  {{- end }}
  {{- $annotations = merge $annotations (.Values.podAnnotations | default dict) }}
  {{- with $annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  labels:
    {{- /* Not helm.sh/chart: a new chart version alone (e.g. new alert
    rules) does not restart the exporter. */}}
    {{- include "aliyun-backup-exporter.selectorLabels" . | nindent 4 }}
    app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
    app.kubernetes.io/component: exporter
    {{- with .Values.commonLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "aliyun-backup-exporter.serviceAccountName" . }}
  automountServiceAccountToken: {{ .Values.serviceAccount.automountServiceAccountToken }}
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . | quote }}
  {{- end }}
  {{- with .Values.podSecurityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: exporter
      image: {{ include "aliyun-backup-exporter.image" . | quote }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        {{- include "aliyun-backup-exporter.args" . | trim | nindent 8 }}
      {{- with include "aliyun-backup-exporter.env" . | trim }}
      env:
        {{- . | nindent 8 }}
      {{- end }}
      ports:
        - name: metrics
          containerPort: 9817
          protocol: TCP
      {{- with .Values.livenessProbe }}
      livenessProbe:
        {{- include "aliyun-backup-exporter.probe" (dict "probe" . "root" $) | nindent 8 }}
      {{- end }}
      {{- with .Values.readinessProbe }}
      readinessProbe:
        {{- include "aliyun-backup-exporter.probe" (dict "probe" . "root" $) | nindent 8 }}
      {{- end }}
      {{- with .Values.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.securityContext }}
      securityContext:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with include "aliyun-backup-exporter.volumeMounts" . | trim }}
      volumeMounts:
        {{- . | nindent 8 }}
      {{- end }}
  {{- with include "aliyun-backup-exporter.volumes" . | trim }}
  volumes:
    {{- . | nindent 4 }}
  {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
