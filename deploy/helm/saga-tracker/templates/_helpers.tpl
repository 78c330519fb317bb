{{- define "saga-tracker.fullname" -}}
{{- printf "%s" .Values.name | trunc 52 | trimSuffix "-" -}}
{{- end -}}

{{- define "saga-tracker.labels" -}}
app.kubernetes.io/name: saga-tracker
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "saga-tracker.selector" -}}
app.kubernetes.io/name: saga-tracker
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "saga-tracker.kafkaEnv" -}}
- name: CHOREOGRAPH_BOOTSTRAP
  value: {{ required "kafka.bootstrapServers is required" .Values.kafka.bootstrapServers | quote }}
- name: CHOREOGRAPH_REGISTRY_URL
  value: {{ required "kafka.registryUrl is required" .Values.kafka.registryUrl | quote }}
- name: CHOREOGRAPH_GUARANTEE
  value: {{ .Values.kafka.guarantee | quote }}
- name: CHOREOGRAPH_GROUP_PROTOCOL
  value: {{ .Values.kafka.groupProtocol | quote }}
- name: CHOREOGRAPH_SECURITY_PROTOCOL
  value: {{ .Values.kafka.securityProtocol | quote }}
{{- if hasPrefix "SASL" .Values.kafka.securityProtocol }}
{{- if not .Values.kafka.sasl.existingSecret }}
{{- fail "kafka.sasl.existingSecret is required with a SASL security protocol" }}
{{- end }}
- name: CHOREOGRAPH_SASL_MECHANISM
  value: {{ .Values.kafka.sasl.mechanism | quote }}
- name: CHOREOGRAPH_SASL_USERNAME
  valueFrom:
    secretKeyRef: {name: {{ .Values.kafka.sasl.existingSecret }}, key: {{ .Values.kafka.sasl.usernameKey }}}
- name: CHOREOGRAPH_SASL_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ .Values.kafka.sasl.existingSecret }}, key: {{ .Values.kafka.sasl.passwordKey }}}
{{- end }}
{{- if .Values.kafka.tls.existingSecret }}
- name: CHOREOGRAPH_SSL_CA_LOCATION
  value: /etc/choreograph/tls/{{ .Values.kafka.tls.caKey }}
{{- if .Values.kafka.tls.certificateKey }}
- name: CHOREOGRAPH_SSL_CERTIFICATE_LOCATION
  value: /etc/choreograph/tls/{{ .Values.kafka.tls.certificateKey }}
- name: CHOREOGRAPH_SSL_KEY_LOCATION
  value: /etc/choreograph/tls/{{ .Values.kafka.tls.keyKey }}
{{- end }}
{{- end }}
{{- if .Values.kafka.registryAuth.existingSecret }}
- name: CHOREOGRAPH_REGISTRY_USER_INFO
  valueFrom:
    secretKeyRef: {name: {{ .Values.kafka.registryAuth.existingSecret }}, key: {{ .Values.kafka.registryAuth.userInfoKey }}}
{{- end }}
{{- end -}}

{{/* The visibility store: a shared PostgreSQL (password from its Secret) or, without one, SQLite
     in the state folder. */}}
{{- define "saga-tracker.visibilityEnv" -}}
{{- with .Values.visibility.postgres }}
{{- if .host }}
{{- if not .existingSecret }}
{{- fail "visibility.postgres.existingSecret is required with visibility.postgres.host (a Secret with the database password)" }}
{{- end }}
- name: SAGA_TRACKER_VISIBILITY_URL
  value: {{ printf "postgresql://%s@%s:%v/%s" .user .host .port .database | quote }}
- name: PGPASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret }}
      key: {{ .passwordKey }}
{{- end }}
{{- end }}
{{- end }}

{{- define "saga-tracker.uiSelector" -}}
app.kubernetes.io/name: saga-tracker-ui
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
