{{/* Names and labels. */}}
{{- define "leasegate.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "leasegate.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "leasegate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "leasegate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "leasegate.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "leasegate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "leasegate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "leasegate.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "leasegate.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "leasegate.sidecar" -}}
{{- eq .Values.mode "sidecar" -}}
{{- end -}}

{{/* Where the container finds its files. */}}
{{- define "leasegate.configDir" -}}/etc/leasegate/config{{- end -}}

{{/*
grpc.socket, checked: the Unix socket leasegate serves gRPC on, or "" for
TCP. Every template that uses the socket asks here, so the checks run
wherever it appears (the ConfigMap always renders).
*/}}
{{- define "leasegate.socket" -}}
{{- with .Values.grpc.socket -}}
{{- if ne (include "leasegate.sidecar" $) "true" -}}
{{- fail "grpc.socket needs mode: sidecar (a Unix socket reaches only the containers of leasegate's own pod; standalone Envoy, Istio and Envoy Gateway call the Service over TCP)" -}}
{{- end -}}
{{- if or (not (isAbs .)) (ne (clean .) .) (eq (dir .) "/") (gt (len .) 107) (gt (len (dir .)) 83) -}}
{{- fail (printf "grpc.socket %q: want a clean absolute path of at most 107 bytes, in a directory of its own of at most 83, e.g. /run/leasegate/authz.sock (the chart mounts an emptyDir at that directory)" .) -}}
{{- end -}}
{{- $d := dir . -}}
{{- $mounts := list (include "leasegate.configDir" $) -}}
{{- if $.Values.fleet.enabled -}}
{{- $mounts = append $mounts $.Values.fleet.key.mountPath -}}
{{- if $.Values.fleet.redis.tls.enabled -}}
{{- $mounts = append $mounts $.Values.fleet.redis.tls.mountPath -}}
{{- end -}}
{{- end -}}
{{- range $m := $mounts -}}
{{- if or (eq $d $m) (hasPrefix (printf "%s/" $m) $d) (hasPrefix (printf "%s/" $d) $m) -}}
{{- fail (printf "grpc.socket %q: its directory %s overlaps the container's mount %s; put the socket in a directory of its own" $.Values.grpc.socket $d $m) -}}
{{- end -}}
{{- end -}}
{{- range $name := list "livenessProbe" "readinessProbe" -}}
{{- $probe := index $.Values $name -}}
{{- range $kind := list "httpGet" "tcpSocket" "grpc" -}}
{{- with and (kindIs "map" $probe) (get $probe $kind) -}}
{{- if has (toString .port) (list "grpc" (toString $.Values.grpc.port)) -}}
{{- fail (printf "%s.%s uses the gRPC port, which grpc.socket closes: probe the metrics port" $name $kind) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- . -}}
{{- end -}}
{{- end -}}

{{/*
The socket's group: grpc.socketGroup, else podSecurityContext.fsGroup,
which every container of a pod with that fsGroup has.
*/}}
{{- define "leasegate.socketGroup" -}}
{{- $g := .Values.grpc.socketGroup -}}
{{- if kindIs "string" $g -}}
{{- $g = .Values.podSecurityContext.fsGroup -}}
{{- end -}}
{{- if kindIs "invalid" $g -}}
{{- fail "grpc.socket needs a group Envoy shares (the socket is mode 0660): set grpc.socketGroup or podSecurityContext.fsGroup" -}}
{{- end -}}
{{- printf "%d" (int64 $g) -}}
{{- end -}}

{{/*
The leasegate configuration: listen, admin and fleet from the chart's
values, the rest from .Values.config as given.
*/}}
{{- define "leasegate.config" -}}
{{- range $k := list "listen" "admin" "fleet" -}}
{{- if hasKey $.Values.config $k -}}
{{- fail (printf "config.%s is written by the chart: set it through the chart's values (grpc, http, metrics, admin, push, adminSecret, fleet)" $k) -}}
{{- end -}}
{{- end -}}
{{- $bind := ternary "127.0.0.1" "" (eq (include "leasegate.sidecar" .) "true") -}}
{{- $admin := ternary "127.0.0.1" .Values.admin.address (eq (include "leasegate.sidecar" .) "true") -}}
{{- if and (not (has $admin (list "127.0.0.1" "localhost" "::1"))) (not .Values.adminSecret.existingSecret) -}}
{{- fail "admin.address is not loopback: set adminSecret.existingSecret (POST /revoke must not be open), or admin.address: 127.0.0.1" -}}
{{- end -}}
{{- $socket := include "leasegate.socket" . -}}
listen:
  {{- if $socket }}
  grpc: {{ printf "unix://%s" $socket | quote }}
  grpc_socket:
    mode: {{ .Values.grpc.socketMode | quote }}
    group: {{ include "leasegate.socketGroup" . | quote }}
  {{- else }}
  grpc: {{ printf "%s:%v" $bind .Values.grpc.port | quote }}
  {{- end }}
  {{- if .Values.http.enabled }}
  http: {{ printf "%s:%v" $bind .Values.http.port | quote }}
  http_mode: {{ .Values.http.mode | quote }}
  {{- end }}
  metrics: {{ printf ":%v" .Values.metrics.port | quote }}
  {{- if and .Values.push.service (eq (include "leasegate.sidecar" .) "true") }}
  {{- fail "push.service needs mode: standalone (a sidecar has no Service; the issuer reaches the pod's push port)" }}
  {{- end }}
  {{- if .Values.push.port }}
  push: {{ printf ":%v" .Values.push.port | quote }}
  {{- else if .Values.push.service }}
  {{- fail "push.service needs push.port (the receivers' own port; without one they are on the admin port)" }}
  {{- end }}
  admin: {{ printf "%s:%v" (ternary (printf "[%s]" $admin) $admin (contains ":" $admin)) .Values.admin.port | quote }}
{{- if .Values.adminSecret.existingSecret }}
admin:
  secret: "${LEASEGATE_ADMIN_SECRET}"
{{- end }}
{{- with .Values.config }}
{{ toYaml . }}
{{- end }}
{{- if .Values.fleet.enabled }}
{{- $f := .Values.fleet }}
{{- if not $f.redis.addresses }}
{{- fail "fleet.enabled needs fleet.redis.addresses" }}
{{- end }}
{{- if not $f.key.existingSecret }}
{{- fail "fleet.enabled needs fleet.key.existingSecret (the fleet secret, the same in every replica)" }}
{{- end }}
fleet:
  redis:
    addresses: {{ toJson $f.redis.addresses }}
    {{- with $f.redis.masterName }}
    master_name: {{ . | quote }}
    {{- end }}
    {{- with $f.redis.username }}
    username: {{ . | quote }}
    {{- end }}
    {{- if $f.redis.password.existingSecret }}
    password: "${LEASEGATE_REDIS_PASSWORD}"
    {{- end }}
    {{- if $f.redis.tls.enabled }}
    tls:
      {{- with $f.redis.tls.caKey }}
      ca_file: {{ printf "%s/%s" $f.redis.tls.mountPath . | quote }}
      {{- end }}
      {{- if and $f.redis.tls.certKey $f.redis.tls.keyKey }}
      cert_file: {{ printf "%s/%s" $f.redis.tls.mountPath $f.redis.tls.certKey | quote }}
      key_file: {{ printf "%s/%s" $f.redis.tls.mountPath $f.redis.tls.keyKey | quote }}
      {{- end }}
      {{- with $f.redis.tls.serverName }}
      server_name: {{ . | quote }}
      {{- end }}
    {{- end }}
  key_prefix: {{ $f.keyPrefix | quote }}
  secret_file: {{ printf "%s/%s" $f.key.mountPath $f.key.key | quote }}
  on_store_loss: {{ $f.onStoreLoss | quote }}
  timeout: {{ $f.timeout | quote }}
  allow_eviction: {{ $f.allowEviction }}
{{- end }}
{{- end -}}

{{/* The leasegate container, the same in the Deployment and the sidecar notes. */}}
{{- define "leasegate.container" -}}
- name: leasegate
  image: {{ include "leasegate.image" . | quote }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  args: ["-config", "{{ include "leasegate.configDir" . }}/leasegate.yaml"]
  {{- if or .Values.clientSecret.existingSecret .Values.adminSecret.existingSecret (and .Values.fleet.enabled .Values.fleet.redis.password.existingSecret) .Values.extraEnv }}
  env:
    {{- with .Values.clientSecret }}
    {{- if .existingSecret }}
    - name: LEASEGATE_CLIENT_SECRET
      valueFrom:
        secretKeyRef: { name: {{ .existingSecret | quote }}, key: {{ .key | quote }} }
    {{- end }}
    {{- end }}
    {{- with .Values.adminSecret }}
    {{- if .existingSecret }}
    - name: LEASEGATE_ADMIN_SECRET
      valueFrom:
        secretKeyRef: { name: {{ .existingSecret | quote }}, key: {{ .key | quote }} }
    {{- end }}
    {{- end }}
    {{- if .Values.fleet.enabled }}
    {{- with .Values.fleet.redis.password }}
    {{- if .existingSecret }}
    - name: LEASEGATE_REDIS_PASSWORD
      valueFrom:
        secretKeyRef: { name: {{ .existingSecret | quote }}, key: {{ .key | quote }} }
    {{- end }}
    {{- end }}
    {{- end }}
    {{- with .Values.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- end }}
  ports:
    {{- if not (include "leasegate.socket" .) }}
    - { name: grpc, containerPort: {{ .Values.grpc.port }}, protocol: TCP }
    {{- end }}
    {{- if .Values.http.enabled }}
    - { name: http, containerPort: {{ .Values.http.port }}, protocol: TCP }
    {{- end }}
    - { name: metrics, containerPort: {{ .Values.metrics.port }}, protocol: TCP }
    {{- if ne (include "leasegate.sidecar" .) "true" }}
    - { name: admin, containerPort: {{ .Values.admin.port }}, protocol: TCP }
    {{- end }}
    {{- if .Values.push.port }}
    - { name: push, containerPort: {{ .Values.push.port }}, protocol: TCP }
    {{- end }}
  livenessProbe:
    {{- toYaml .Values.livenessProbe | nindent 4 }}
  readinessProbe:
    {{- toYaml .Values.readinessProbe | nindent 4 }}
  {{- if gt (int .Values.preStopSleepSeconds) 0 }}
  lifecycle:
    preStop:
      sleep: { seconds: {{ int .Values.preStopSleepSeconds }} }
  {{- end }}
  securityContext:
    {{- toYaml .Values.securityContext | nindent 4 }}
  resources:
    {{- toYaml .Values.resources | nindent 4 }}
  volumeMounts:
    - { name: leasegate-config, mountPath: {{ include "leasegate.configDir" . | quote }}, readOnly: true }
    {{- with include "leasegate.socket" . }}
    - { name: leasegate-socket, mountPath: {{ dir . | quote }} }
    {{- end }}
    {{- if .Values.fleet.enabled }}
    - { name: leasegate-fleet-key, mountPath: {{ .Values.fleet.key.mountPath | quote }}, readOnly: true }
    {{- if .Values.fleet.redis.tls.enabled }}
    - { name: leasegate-redis-tls, mountPath: {{ .Values.fleet.redis.tls.mountPath | quote }}, readOnly: true }
    {{- end }}
    {{- end }}
{{- end -}}

{{/* The volumes the container mounts. */}}
{{- define "leasegate.volumes" -}}
- name: leasegate-config
  configMap:
    name: {{ include "leasegate.fullname" . }}
{{- if include "leasegate.socket" . }}
# Shared with the Envoy container, which connects to the socket on it.
- name: leasegate-socket
  emptyDir: {}
{{- end }}
{{- if .Values.fleet.enabled }}
- name: leasegate-fleet-key
  secret:
    secretName: {{ .Values.fleet.key.existingSecret | quote }}
    defaultMode: 0440
    items:
      - { key: {{ .Values.fleet.key.key | quote }}, path: {{ .Values.fleet.key.key | quote }} }
{{- if .Values.fleet.redis.tls.enabled }}
{{- if not .Values.fleet.redis.tls.existingSecret }}
{{- fail "fleet.redis.tls.enabled needs fleet.redis.tls.existingSecret" }}
{{- end }}
- name: leasegate-redis-tls
  secret:
    secretName: {{ .Values.fleet.redis.tls.existingSecret | quote }}
    defaultMode: 0440
{{- end }}
{{- end }}
{{- end -}}
