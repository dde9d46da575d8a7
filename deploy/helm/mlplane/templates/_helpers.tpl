{{/* Names ------------------------------------------------------------------------------- */}}

{{- define "mlplane.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's prefix; component names add at most 11 characters (-validation, -gw-metrics),
so it stops at 52. */}}
{{- define "mlplane.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "mlplane.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels: call with (dict "root" $ "component" "query") --------------------------------- */}}

{{- define "mlplane.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mlplane.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "mlplane.labels" -}}
helm.sh/chart: {{ include "mlplane.chart" .root }}
{{ include "mlplane.selectorLabels" . }}
app.kubernetes.io/part-of: mlplane
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end -}}

{{/* Labels of the release as a whole (no component). */}}
{{- define "mlplane.commonLabels" -}}
helm.sh/chart: {{ include "mlplane.chart" . }}
app.kubernetes.io/name: {{ include "mlplane.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: mlplane
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Images ------------------------------------------------------------------------------ */}}

{{- define "mlplane.imageRef" -}}
{{- if .digest -}}
{{- printf "%s@%s" .repository .digest -}}
{{- else -}}
{{- printf "%s:%s" .repository (required "an image tag or digest is required" .tag) -}}
{{- end -}}
{{- end -}}

{{- define "mlplane.image" -}}
{{- $image := .Values.image -}}
{{- include "mlplane.imageRef" (dict "repository" $image.repository "digest" $image.digest "tag" (default .Chart.AppVersion $image.tag)) -}}
{{- end -}}

{{- define "mlplane.gatewayImage" -}}
{{- include "mlplane.imageRef" .Values.gateway.image -}}
{{- end -}}

{{/* ServiceAccounts ---------------------------------------------------------------------- */}}

{{- define "mlplane.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- include "mlplane.fullname" . -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "mlplane.modelsServiceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- printf "%s-models" (include "mlplane.fullname" .) -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.modelsName -}}
{{- end -}}
{{- end -}}

{{/* The validation worker's: its own, so that it can hold a read-only IAM role (it runs
untrusted models); with existing ServiceAccounts, the ModelRegistry's unless validationName says. */}}
{{- define "mlplane.validationServiceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- printf "%s-validation" (include "mlplane.fullname" .) -}}
{{- else -}}
{{- default (include "mlplane.modelsServiceAccountName" .) .Values.serviceAccount.validationName -}}
{{- end -}}
{{- end -}}

{{/* Addresses ----------------------------------------------------------------------------- */}}

{{/* The headless Service of a backend, fully qualified: (dict "root" $ "component" "query") */}}
{{- define "mlplane.serviceHost" -}}
{{- printf "%s-%s.%s.svc.%s" (include "mlplane.fullname" .root) .component .root.Release.Namespace .root.Values.clusterDomain -}}
{{- end -}}

{{/* Where the containers keep what they write (all emptyDir). */}}
{{- define "mlplane.stateDir" -}}/var/lib/mlplane{{- end -}}
{{- define "mlplane.bundleDir" -}}/etc/mlplane/gateway{{- end -}}

{{/* A static JWKS is used when no JWKS URL is configured. */}}
{{- define "mlplane.staticJwks" -}}
{{- if not .Values.auth.jwksUrl -}}true{{- end -}}
{{- end -}}

{{/* Pods ---------------------------------------------------------------------------------- */}}

{{/* The common scheduling and security fields of a component's pod spec: (dict "root" $ "values" .Values.query) */}}
{{- define "mlplane.podScheduling" -}}
securityContext:
  {{- toYaml .root.Values.podSecurityContext | nindent 2 }}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* terminationGracePeriodSeconds must cover the preStop sleep and the services' drain and grace. */}}
{{- define "mlplane.checkGrace" -}}
{{- $needed := add (int .values.preStopSleepSeconds) (int (ceil .root.Values.shutdownDrainSeconds)) (int (ceil .root.Values.shutdownGraceSeconds)) -}}
{{- if le (int .values.terminationGracePeriodSeconds) (int $needed) -}}
{{- fail (printf "%s.terminationGracePeriodSeconds (%d) must exceed preStopSleepSeconds + shutdownDrainSeconds + shutdownGraceSeconds (%d)" .name (int .values.terminationGracePeriodSeconds) (int $needed)) -}}
{{- end -}}
{{- end -}}

{{/* The pod annotation that rolls pods when the configuration changes. */}}
{{- define "mlplane.configChecksum" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
{{- end -}}

{{/* Secrets by reference ------------------------------------------------------------------ */}}

{{- define "mlplane.secretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ required (printf "a Secret name for %s" .name) .secret | quote }}
      key: {{ required (printf "a Secret key for %s" .name) .key | quote }}
{{- end -}}

{{- define "mlplane.pageTokenEnv" -}}
{{ include "mlplane.secretEnv" (dict "name" "MLPLANE_PAGE_TOKEN_SECRET" "secret" .Values.pageTokens.existingSecret "key" .Values.pageTokens.key) }}
{{- end -}}

{{/* Volumes ------------------------------------------------------------------------------- */}}

{{- define "mlplane.jwksVolume" -}}
{{- if include "mlplane.staticJwks" . -}}
- name: jwks
  secret:
    secretName: {{ required "auth.jwksSecret.name (or auth.jwksUrl)" .Values.auth.jwksSecret.name | quote }}
    items:
      - key: {{ .Values.auth.jwksSecret.key | quote }}
        path: jwks.json
{{- end -}}
{{- end -}}

{{/* extraVolumes and extraVolumeMounts, each a list as YAML (empty when none). A mount must
name one of extraVolumes: the API server would refuse the pod, long after `helm template`. */}}
{{- define "mlplane.extraVolumes" -}}
{{- with .Values.extraVolumes -}}
{{- toYaml . -}}
{{- end -}}
{{- end -}}

{{- define "mlplane.extraVolumeMounts" -}}
{{- $names := list -}}
{{- range .Values.extraVolumes -}}
{{- $names = append $names .name -}}
{{- end -}}
{{- range .Values.extraVolumeMounts -}}
{{- if not (has .name $names) -}}
{{- fail (printf "extraVolumeMounts: %q is not one of extraVolumes" .name) -}}
{{- end -}}
{{- end -}}
{{- with .Values.extraVolumeMounts -}}
{{- toYaml . -}}
{{- end -}}
{{- end -}}

{{/* The gRPC probes of a service: (dict "port" 50051 "service" "mlplane.v1.QueryService");
readiness asks for the service's name, or for "" (the server as a whole) when it is empty. */}}
{{- define "mlplane.grpcProbes" -}}
startupProbe:
  grpc:
    port: {{ .port }}
  periodSeconds: 2
  timeoutSeconds: 2
  failureThreshold: 30
readinessProbe:
  grpc:
    port: {{ .port }}
    {{- with .service }}
    service: {{ . }}
    {{- end }}
  periodSeconds: 5
  timeoutSeconds: 2
  failureThreshold: 2
livenessProbe:
  grpc:
    port: {{ .port }}
  periodSeconds: 10
  timeoutSeconds: 5
  failureThreshold: 3
{{- end -}}

{{/* A number as the services read it: integers without an exponent (YAML numbers reach the
templates as float64, and 1073741824 would print as 1.073741824e+09). */}}
{{- define "mlplane.num" -}}
{{- if eq (float64 .) (floor .) -}}{{ int64 . }}{{- else -}}{{ . }}{{- end -}}
{{- end -}}

{{/* A NetworkPolicy egress rule from a destination value ({to: [peers], ports: [ports]}). */}}
{{- define "mlplane.egressRule" -}}
- to:
    {{- toYaml .to | nindent 4 }}
  ports:
    {{- toYaml .ports | nindent 4 }}
{{- end -}}

{{/* A Kubernetes quantity (a string such as 4608Mi, 4.5Gi, 5G, or a plain number) as a number
of bytes, printed without an exponent. Only the forms values.schema.json lets through. */}}
{{- define "mlplane.bytes" -}}
{{- if or (kindIs "float64" .) (kindIs "int" .) (kindIs "int64" .) -}}
{{- printf "%.0f" (float64 .) -}}
{{- else -}}
{{- $text := toString . -}}
{{- $number := regexFind "^[0-9]+(\\.[0-9]+)?" $text -}}
{{- if not $number -}}
{{- fail (printf "%q is not a quantity" $text) -}}
{{- end -}}
{{- $suffix := trimPrefix $number $text -}}
{{- $units := dict "" 1.0 "m" 0.001 "k" 1e3 "M" 1e6 "G" 1e9 "T" 1e12 "P" 1e15 "E" 1e18 "Ki" 1024.0 "Mi" 1048576.0 "Gi" 1073741824.0 "Ti" 1099511627776.0 "Pi" 1125899906842624.0 "Ei" 1152921504606846976.0 -}}
{{- if not (hasKey $units $suffix) -}}
{{- fail (printf "%q is not a quantity" $text) -}}
{{- end -}}
{{- printf "%.0f" (mulf (float64 $number) (index $units $suffix)) -}}
{{- end -}}
{{- end -}}
