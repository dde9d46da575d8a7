{{- /*
One mlplane process served by `mlplane serve <component>` (QueryService, ModelRegistry, the
validation worker): its Deployment and headless Service.
Call with (dict "root" $ "component" "query" "values" .Values.query "grpcService" "mlplane.v1.QueryService"
                "serviceAccountName" ... "env" (list of EnvVars as YAML) "extraVolumes" ... "extraMounts" ...
                "routed" true "jwks" true)
  grpcService  the name its readiness probe asks the health service for ("" = the server as a whole)
  routed       the gateway sends it calls: its Service lists the gRPC port, and the pod sleeps
               values.preStopSleepSeconds before SIGTERM (terminationGracePeriodSeconds is then
               checked against that sleep, the drain and the grace; a process that is not routed
               checks its own before calling this)
  jwks         it verifies tokens: the static JWKS (when auth.jwksUrl is empty) is mounted
*/ -}}
{{- define "mlplane.grpcService" -}}
{{- $root := .root -}}
{{- $values := .values -}}
{{- $component := .component -}}
{{- $state := include "mlplane.stateDir" $root -}}
{{- if .routed -}}
{{- include "mlplane.checkGrace" (dict "root" $root "values" $values "name" $component) -}}
{{- end -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "mlplane.fullname" $root }}-{{ $component }}
  labels:
    {{- include "mlplane.labels" (dict "root" $root "component" $component) | nindent 4 }}
spec:
  {{- if not $values.autoscaling.enabled }}
  replicas: {{ $values.replicaCount }}
  {{- end }}
  revisionHistoryLimit: 5
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 0
      maxSurge: 1
  selector:
    matchLabels:
      {{- include "mlplane.selectorLabels" (dict "root" $root "component" $component) | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "mlplane.labels" (dict "root" $root "component" $component) | nindent 8 }}
        {{- with $values.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        {{- include "mlplane.configChecksum" $root | nindent 8 }}
        {{- with $values.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ .serviceAccountName }}
      automountServiceAccountToken: false
      enableServiceLinks: false
      terminationGracePeriodSeconds: {{ $values.terminationGracePeriodSeconds }}
      {{- include "mlplane.podScheduling" (dict "root" $root "values" $values) | nindent 6 }}
      containers:
        - name: {{ $component }}
          image: {{ include "mlplane.image" $root }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          command: ["mlplane", "serve", {{ $component | quote }}]
          envFrom:
            - configMapRef:
                name: {{ include "mlplane.fullname" $root }}-config
          env:
            - name: HOME
              value: /tmp
            - name: TMPDIR
              value: /tmp
            # As `mlplane up` runs the services (services/stack/up.py): flat memory for uploads.
            - name: MALLOC_ARENA_MAX
              value: "2"
            - name: MALLOC_MMAP_THRESHOLD_
              value: "4194304"
            {{- .env | nindent 12 }}
            {{- with $root.Values.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
            {{- with $values.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          ports:
            - name: grpc
              containerPort: {{ $values.port }}
              protocol: TCP
            - name: metrics
              containerPort: {{ $values.metricsPort }}
              protocol: TCP
          {{- include "mlplane.grpcProbes" (dict "port" $values.port "service" .grpcService) | nindent 10 }}
          {{- if .routed }}
          lifecycle:
            preStop:
              # Keep serving while the pod leaves DNS and the gateway's rotation; SIGTERM then
              # turns the health service to NOT_SERVING and drains in-flight calls.
              exec:
                command: ["sleep", "{{ $values.preStopSleepSeconds }}"]
          {{- end }}
          securityContext:
            {{- toYaml $root.Values.containerSecurityContext | nindent 12 }}
          resources:
            {{- toYaml $values.resources | nindent 12 }}
          volumeMounts:
            - name: state
              mountPath: {{ $state }}
            - name: tmp
              mountPath: /tmp
            {{- if and .jwks (include "mlplane.staticJwks" $root) }}
            # MLPLANE_STATE_DIR/keys/jwks.json: the static JWKS (re-read when it changes).
            - name: jwks
              mountPath: {{ $state }}/keys
              readOnly: true
            {{- end }}
            {{- with .extraMounts }}
            {{- . | nindent 12 }}
            {{- end }}
            {{- with include "mlplane.extraVolumeMounts" $root }}
            {{- . | nindent 12 }}
            {{- end }}
      volumes:
        - name: state
          emptyDir:
            sizeLimit: 64Mi
        - name: tmp
          emptyDir:
            sizeLimit: {{ $values.tmpSizeLimit }}
        {{- if .jwks }}
        {{- with include "mlplane.jwksVolume" $root }}
        {{- . | nindent 8 }}
        {{- end }}
        {{- end }}
        {{- with .extraVolumes }}
        {{- . | nindent 8 }}
        {{- end }}
        {{- with include "mlplane.extraVolumes" $root }}
        {{- . | nindent 8 }}
        {{- end }}
---
# Headless: the gateway's Envoy resolves it to every ready pod and balances requests over them
# (with its own gRPC health checks); Prometheus finds the pods through it too. A process the
# gateway does not call gets only its metrics port here.
apiVersion: v1
kind: Service
metadata:
  name: {{ include "mlplane.fullname" $root }}-{{ $component }}
  labels:
    {{- include "mlplane.labels" (dict "root" $root "component" $component) | nindent 4 }}
spec:
  clusterIP: None
  selector:
    {{- include "mlplane.selectorLabels" (dict "root" $root "component" $component) | nindent 4 }}
  ports:
    {{- if .routed }}
    - name: grpc
      port: {{ $values.port }}
      targetPort: grpc
      protocol: TCP
      appProtocol: kubernetes.io/h2c
    {{- end }}
    - name: metrics
      port: {{ $values.metricsPort }}
      targetPort: metrics
      protocol: TCP
      appProtocol: http
{{- end -}}
