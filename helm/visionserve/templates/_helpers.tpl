{{/*
Helpers of the visionserve chart. Every helper is prefixed `visionserve.`; helpers that
need a component take a dict: (dict "context" $ "component" "triton").
*/}}

{{/* The chart name, or nameOverride; cut to 63 characters (DNS label). */}}
{{- define "visionserve.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The release-derived prefix of every resource name: fullnameOverride, or <release>-<name>
(just <release> when it already contains the name); cut to 63 characters.
*/}}
{{- define "visionserve.fullname" -}}
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

{{/*
Name of a component's resources: <fullname>-<component>, at most .max characters (63, a DNS
label). The fullname is cut, never the component, so two components never share a name.
StatefulSets pass max 52: their pods carry a controller-revision-hash label <name>-<10 chars>
that must fit in 63.
*/}}
{{- define "visionserve.componentName" -}}
{{- $max := int (default 63 .max) -}}
{{- $prefix := include "visionserve.fullname" .context | trunc (int (sub $max (add1 (len .component)))) | trimSuffix "-" -}}
{{- printf "%s-%s" $prefix .component -}}
{{- end -}}

{{/* helm.sh/chart label value. */}}
{{- define "visionserve.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every resource (recommended app.kubernetes.io labels + commonLabels). */}}
{{- define "visionserve.labels" -}}
helm.sh/chart: {{ include "visionserve.chart" . }}
app.kubernetes.io/name: {{ include "visionserve.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: visionserve
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Labels of a component's resources. */}}
{{- define "visionserve.componentLabels" -}}
{{ include "visionserve.labels" .context }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Selector labels of a component (immutable in Deployments: never add to them). */}}
{{- define "visionserve.selectorLabels" -}}
app.kubernetes.io/name: {{ include "visionserve.name" .context }}
app.kubernetes.io/instance: {{ .context.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* metadata.annotations of every resource: commonAnnotations plus the optional extra dict. */}}
{{- define "visionserve.annotations" -}}
{{- $all := merge (deepCopy (default dict .extra)) (deepCopy .context.Values.commonAnnotations) -}}
{{- with $all -}}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end -}}
{{- end -}}

{{/*
Checkov findings the chart accepts on purpose, as `checkov.io/skipN` annotations (the way
checkov reads skips from Kubernetes manifests). Each entry is "CKV_ID=reason"; the reasons
are part of the chart's documentation (docs/kubernetes.md, "Security").
*/}}
{{- define "visionserve.checkovSkips" -}}
{{- range $i, $skip := . }}
checkov.io/skip{{ add1 $i }}: {{ $skip | quote }}
{{- end }}
{{- end -}}

{{/* Full image reference from {registry, repository, tag, digest}; .defaultTag when tag is empty. */}}
{{- define "visionserve.image" -}}
{{- $img := .image -}}
{{- $repo := $img.repository -}}
{{- if $img.registry -}}
{{- $repo = printf "%s/%s" $img.registry $img.repository -}}
{{- end -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $repo $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (toString (default .defaultTag $img.tag)) -}}
{{- end -}}
{{- end -}}

{{/* imagePullSecrets of a pod spec. */}}
{{- define "visionserve.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets -}}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end -}}
{{- end -}}

{{/* The ServiceAccount every pod runs as. */}}
{{- define "visionserve.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "visionserve.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
A secret value that survives upgrades: the value already stored in the cluster (lookup),
else a new random alphanumeric string (URL-safe, so it can sit in a connection URL).
Offline renders (helm template, the lint) see no cluster and get a fresh value.
Args: context, secret (name), key, length.
*/}}
{{- define "visionserve.secretValue" -}}
{{- $existing := lookup "v1" "Secret" .context.Release.Namespace .secret -}}
{{- $stored := dig "data" .key "" $existing -}}
{{- if $stored -}}
{{- $stored -}}
{{- else -}}
{{- randAlphaNum (int .length) | b64enc -}}
{{- end -}}
{{- end -}}

{{/* Triton's Service name and the gateway's TRITON_URL (host:port of Triton's gRPC port). */}}
{{- define "visionserve.triton.serviceName" -}}
{{- include "visionserve.componentName" (dict "context" . "component" "triton") -}}
{{- end -}}

{{- define "visionserve.triton.grpcUrl" -}}
{{- printf "%s:%d" (include "visionserve.triton.serviceName" .) (int .Values.triton.ports.grpc) -}}
{{- end -}}

{{/* The --model-repository argument: the mounted path, or the object-store URL. */}}
{{- define "visionserve.triton.repository" -}}
{{- if eq .Values.modelRepository.type "cloud" -}}
{{- .Values.modelRepository.cloud.url -}}
{{- else -}}
{{- .Values.modelRepository.mountPath -}}
{{- end -}}
{{- end -}}

{{/* Secret holding the API-key pepper, and the one holding the built-in databases' passwords. */}}
{{- define "visionserve.gateway.secretName" -}}
{{- default (include "visionserve.componentName" (dict "context" . "component" "gateway")) .Values.gateway.auth.existingSecret -}}
{{- end -}}

{{- define "visionserve.redis.secretName" -}}
{{- default (include "visionserve.componentName" (dict "context" . "component" "redis")) .Values.redis.auth.existingSecret -}}
{{- end -}}

{{- define "visionserve.postgresql.secretName" -}}
{{- default (include "visionserve.componentName" (dict "context" . "component" "postgresql")) .Values.postgresql.auth.existingSecret -}}
{{- end -}}

{{/* Secret the chart creates for external URLs given inline (externalRedis.url, externalDatabase.url). */}}
{{- define "visionserve.externalSecretName" -}}
{{- include "visionserve.componentName" (dict "context" . "component" "external") -}}
{{- end -}}

{{/*
Environment of the gateway that connects it to its backends: DATABASE_URL, REDIS_URL
(absent: the gateway's in-process cache), TRITON_URL, and the API-key pepper. The names are
those gateway.settings.GatewaySettings reads (checked by `make helm-lint`).
*/}}
{{- define "visionserve.gateway.backendEnv" -}}
- name: GATEWAY_API_KEY_PEPPER
  valueFrom:
    secretKeyRef:
      name: {{ include "visionserve.gateway.secretName" . }}
      key: {{ .Values.gateway.auth.pepperKey }}
- name: TRITON_URL
  value: {{ include "visionserve.triton.grpcUrl" . | quote }}
{{- if .Values.postgresql.enabled }}
- name: POSTGRES_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "visionserve.postgresql.secretName" . }}
      key: {{ .Values.postgresql.auth.passwordKey }}
- name: DATABASE_URL
  value: {{ printf "postgresql://%s:$(POSTGRES_PASSWORD)@%s:5432/%s" .Values.postgresql.auth.username (include "visionserve.componentName" (dict "context" . "component" "postgresql")) .Values.postgresql.auth.database | quote }}
{{- else }}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ default (include "visionserve.externalSecretName" .) .Values.externalDatabase.existingSecret }}
      key: {{ ternary .Values.externalDatabase.existingSecretUrlKey "database-url" (ne .Values.externalDatabase.existingSecret "") }}
{{- end }}
{{- if .Values.redis.enabled }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "visionserve.redis.secretName" . }}
      key: {{ .Values.redis.auth.passwordKey }}
- name: REDIS_URL
  value: {{ printf "redis://:$(REDIS_PASSWORD)@%s:6379/0" (include "visionserve.componentName" (dict "context" . "component" "redis")) | quote }}
{{- else if or .Values.externalRedis.url .Values.externalRedis.existingSecret }}
- name: REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ default (include "visionserve.externalSecretName" .) .Values.externalRedis.existingSecret }}
      key: {{ ternary .Values.externalRedis.existingSecretUrlKey "redis-url" (ne .Values.externalRedis.existingSecret "") }}
{{- end }}
{{- end -}}

{{/*
A Kubernetes quantity (e.g. 32Gi, 8G, 1.5Gi, 1073741824) in bytes, as a decimal string; empty
when it has a form this does not read (exponents, milli-units), so callers skip their check.
*/}}
{{- define "visionserve.quantityBytes" -}}
{{- if or (kindIs "float64" .) (kindIs "int" .) (kindIs "int64" .) -}}
{{- int64 . -}}
{{- else -}}
{{- $q := toString . -}}
{{- $units := dict "" 1 "k" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 -}}
{{- $number := regexFind "^[0-9]+(\\.[0-9]+)?" $q -}}
{{- $suffix := trimPrefix $number $q -}}
{{- if and $number (hasKey $units $suffix) -}}
{{- int64 (mulf (float64 $number) (index $units $suffix)) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Check the values as a whole (what the JSON schema cannot express); collect every problem
and fail once, listing them all.
*/}}
{{- define "visionserve.validateValues" -}}
{{- $messages := list -}}
{{- $repo := .Values.modelRepository -}}
{{- if eq $repo.type "cloud" -}}
  {{- if not (regexMatch "^(s3|gs|as)://.+" $repo.cloud.url) -}}
    {{- $messages = append $messages (printf "modelRepository.cloud.url must be an s3://, gs:// or as:// URL with modelRepository.type=cloud (got %q)" $repo.cloud.url) -}}
  {{- end -}}
  {{- if and $repo.cloud.gcsCredentialsKey (not $repo.cloud.existingSecret) -}}
    {{- $messages = append $messages "modelRepository.cloud.gcsCredentialsKey needs modelRepository.cloud.existingSecret (the Secret that holds the key)" -}}
  {{- end -}}
{{- end -}}
{{- if eq $repo.type "initContainer" -}}
  {{- if not $repo.initContainer.image.repository -}}
    {{- $messages = append $messages "modelRepository.initContainer.image.repository is required with modelRepository.type=initContainer" -}}
  {{- end -}}
  {{- if not (or $repo.initContainer.command $repo.initContainer.args) -}}
    {{- $messages = append $messages "modelRepository.initContainer.command (or args) must write the repository into modelRepository.mountPath" -}}
  {{- end -}}
{{- end -}}
{{- if not (hasPrefix "/" $repo.mountPath) -}}
  {{- $messages = append $messages (printf "modelRepository.mountPath must be an absolute path (got %q)" $repo.mountPath) -}}
{{- end -}}
{{- range $name := .Values.triton.models -}}
  {{- if not (regexMatch "^[a-z][a-z0-9_]*$" $name) -}}
    {{- $messages = append $messages (printf "triton.models: %q is not a catalog model name (lower-case letters, digits, _)" $name) -}}
  {{- end -}}
{{- end -}}
{{- if ne (len (uniq .Values.triton.models)) (len .Values.triton.models) -}}
  {{- $messages = append $messages "triton.models lists a model twice" -}}
{{- end -}}
{{- $gpu := .Values.triton.gpu -}}
{{- if not $gpu.enabled -}}
{{- $pythonShm := mul (len .Values.triton.models) .Values.triton.pythonBackend.shmDefaultByteSize -}}
{{- if lt (int64 .Values.triton.shm.sizeLimitBytes) (int64 $pythonShm) -}}
  {{- $messages = append $messages (printf "triton.shm.sizeLimitBytes (%d) is below one python-backend region per model (%d models x shmDefaultByteSize %d)" (int64 .Values.triton.shm.sizeLimitBytes) (len .Values.triton.models) (int64 .Values.triton.pythonBackend.shmDefaultByteSize)) -}}
{{- end -}}
{{- else -}}
{{- if not (or $gpu.image.registry $gpu.image.digest) -}}
  {{- $messages = append $messages "triton.gpu.image.registry is required with triton.gpu.enabled: build docker/triton-gpu.Dockerfile and push it to your registry (docs/kubernetes.md, GPU nodes)" -}}
{{- end -}}
{{- $regions := mul (len .Values.triton.models) (int64 $gpu.instancesPerGpu) (int64 $gpu.count) -}}
{{- $perRegion := add (int64 $gpu.pythonBackend.shmDefaultByteSize) (int64 $gpu.pythonBackend.shmGrowthByteSize) -}}
{{- if lt (int64 $gpu.shm.sizeLimitBytes) (mul $regions $perRegion) -}}
  {{- $messages = append $messages (printf "triton.gpu.shm.sizeLimitBytes (%d) is below %d bytes: %d python-backend regions (%d models x instancesPerGpu %d x count %d), each shmDefaultByteSize %d plus one shmGrowthByteSize %d" (int64 $gpu.shm.sizeLimitBytes) (mul $regions $perRegion) $regions (len .Values.triton.models) (int64 $gpu.instancesPerGpu) (int64 $gpu.count) (int64 $gpu.pythonBackend.shmDefaultByteSize) (int64 $gpu.pythonBackend.shmGrowthByteSize)) -}}
{{- end -}}
{{- if hasKey (default dict $gpu.resources.limits) $gpu.resourceName -}}
  {{- $messages = append $messages (printf "triton.gpu.resources.limits must not set %s: the chart adds it from triton.gpu.count" $gpu.resourceName) -}}
{{- end -}}
{{- end -}}
{{- $prefix := ternary "triton.gpu" "triton" $gpu.enabled -}}
{{- $memory := dig "limits" "memory" "" (ternary $gpu.resources .Values.triton.resources $gpu.enabled) -}}
{{- $shmBytes := int64 (ternary $gpu.shm.sizeLimitBytes .Values.triton.shm.sizeLimitBytes $gpu.enabled) -}}
{{- $memoryBytes := include "visionserve.quantityBytes" $memory -}}
{{- if and $memoryBytes (le (int64 $memoryBytes) $shmBytes) -}}
  {{- $memoryText := ternary (toString (int64 $memory)) (toString $memory) (kindIs "float64" $memory) -}}
  {{- $messages = append $messages (printf "%s.resources.limits.memory (%s) must be above %s.shm.sizeLimitBytes (%d): the memory-backed /dev/shm counts against the container's memory limit" $prefix $memoryText $prefix $shmBytes) -}}
{{- end -}}
{{- if and .Values.triton.pythonPackages.install (not .Values.triton.pythonPackages.packages) -}}
  {{- $messages = append $messages "triton.pythonPackages.install is true but triton.pythonPackages.packages is empty" -}}
{{- end -}}
{{- if ge (int .Values.triton.exitTimeoutSeconds) (int .Values.triton.terminationGracePeriodSeconds) -}}
  {{- $messages = append $messages "triton.exitTimeoutSeconds must be below triton.terminationGracePeriodSeconds, or Kubernetes kills Triton while it drains" -}}
{{- end -}}
{{- range $component := list "triton" "gateway" -}}
  {{- $hpa := (index $.Values $component).autoscaling -}}
  {{- if and $hpa.enabled (gt (int $hpa.minReplicas) (int $hpa.maxReplicas)) -}}
    {{- $messages = append $messages (printf "%s.autoscaling.minReplicas (%d) is above maxReplicas (%d)" $component (int $hpa.minReplicas) (int $hpa.maxReplicas)) -}}
  {{- end -}}
{{- end -}}
{{- if and .Values.postgresql.enabled (or .Values.externalDatabase.url .Values.externalDatabase.existingSecret) -}}
  {{- $messages = append $messages "set either postgresql.enabled or externalDatabase, not both" -}}
{{- end -}}
{{- if not (or .Values.postgresql.enabled .Values.externalDatabase.url .Values.externalDatabase.existingSecret) -}}
  {{- $messages = append $messages "postgresql.enabled=false needs externalDatabase.url or externalDatabase.existingSecret" -}}
{{- end -}}
{{- if and .Values.externalDatabase.url (not (regexMatch "^postgres(ql)?(\\+psycopg)?://" .Values.externalDatabase.url)) -}}
  {{- $messages = append $messages "externalDatabase.url must be a postgresql:// (or postgresql+psycopg://) URL" -}}
{{- end -}}
{{- if and .Values.redis.enabled (or .Values.externalRedis.url .Values.externalRedis.existingSecret) -}}
  {{- $messages = append $messages "set either redis.enabled or externalRedis, not both" -}}
{{- end -}}
{{- if and .Values.externalRedis.url (not (regexMatch "^rediss?://" .Values.externalRedis.url)) -}}
  {{- $messages = append $messages "externalRedis.url must be a redis:// or rediss:// URL" -}}
{{- end -}}
{{- if and .Values.ingress.enabled (not .Values.ingress.hostname) -}}
  {{- $messages = append $messages "ingress.hostname is required when ingress.enabled is true" -}}
{{- end -}}
{{- if $messages -}}
{{- fail (printf "\n\nVALUES VALIDATION:\n  - %s\n" (join "\n  - " $messages)) -}}
{{- end -}}
{{- end -}}
