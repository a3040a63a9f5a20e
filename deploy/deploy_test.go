// Package deploy_test checks the container and platform manifests against
// the configuration they feed: every MAILHOOK_* name must exist, ports must
// match the defaults, grace periods must outlast MAILHOOK_SHUTDOWN_GRACE,
// and each platform keeps its hardening.
package deploy_test

import (
	"encoding/json"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailhook/mailhook/config"
	"github.com/mailhook/mailhook/signing"
)

// root is the repository root, seen from this package's directory.
const root = ".."

// planned are variables documented as coming later. They may be named in
// comments and prose, never set.
var planned = map[string]bool{
	"MAILHOOK_PROXY_PROTOCOL": true,
}

var varName = regexp.MustCompile(`MAILHOOK_[A-Z0-9_]*[A-Z0-9]`)

func known() map[string]config.Field {
	m := map[string]config.Field{}
	for _, f := range config.Fields() {
		m[f.Var] = f
	}
	return m
}

func defaultPort(t *testing.T, name string) int {
	t.Helper()
	f, ok := known()[name]
	if !ok {
		t.Fatalf("%s is not in config.Fields()", name)
	}
	_, p, ok := strings.Cut(f.Default, ":")
	n, err := strconv.Atoi(p)
	if !ok || err != nil {
		t.Fatalf("%s default %q has no port", name, f.Default)
	}
	return n
}

// shutdownGrace is how long mailhook may take to stop after SIGTERM with
// MAILHOOK_SHUTDOWN_GRACE=v: the grace, and up to 2 s after it to release
// the claims it did not use (dispatch's releaseBudget).
func shutdownGrace(t *testing.T, v string) time.Duration {
	t.Helper()
	if v == "" {
		v = known()["MAILHOOK_SHUTDOWN_GRACE"].Default
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("MAILHOOK_SHUTDOWN_GRACE=%q: %v", v, err)
	}
	return d + 2*time.Second
}

func read(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(rel)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// manifestFiles lists, relative to the repository root, every file this
// package checks: everything under deploy/ but Go sources, plus the root
// Dockerfile and .dockerignore.
func manifestFiles(t *testing.T) []string {
	t.Helper()
	files := []string{"Dockerfile", ".dockerignore"}
	err := filepath.WalkDir(filepath.Join(root, "deploy"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(p, ".go") {
			return err
		}
		rel, err := filepath.Rel(root, p)
		files = append(files, filepath.ToSlash(rel))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// splitComments separates what a file sets (code) from what it only says
// (comments, prose).
func splitComments(name, src string) (code, comments string) {
	base := path.Base(name)
	switch {
	case strings.HasSuffix(base, ".md"):
		return "", src
	case strings.HasSuffix(base, ".json"):
		return src, ""
	}
	var c, m strings.Builder
	for _, l := range strings.Split(src, "\n") {
		var kept string
		if base == "Dockerfile" || base == ".dockerignore" {
			// Docker: only a line starting with # is a comment.
			if !strings.HasPrefix(strings.TrimSpace(l), "#") {
				kept = l
			}
		} else {
			kept = stripComment(l)
		}
		c.WriteString(kept + "\n")
		m.WriteString(strings.TrimPrefix(l, kept) + "\n")
	}
	return c.String(), m.String()
}

func TestOnlyKnownVariables(t *testing.T) {
	vars := known()
	used := 0
	for _, name := range manifestFiles(t) {
		code, comments := splitComments(name, read(t, name))
		for _, v := range varName.FindAllString(code, -1) {
			used++
			if _, ok := vars[v]; !ok {
				if planned[v] {
					t.Errorf("%s sets %s, which mailhook does not read yet (planned); mention it only in a comment", name, v)
				} else {
					t.Errorf("%s uses %s, which is not in config.Fields()", name, v)
				}
			}
		}
		for _, v := range varName.FindAllString(comments, -1) {
			if _, ok := vars[v]; !ok && !planned[v] {
				t.Errorf("%s mentions %s, which is neither in config.Fields() nor planned", name, v)
			}
		}
	}
	if used < 20 {
		t.Errorf("found only %d MAILHOOK_* uses in the manifests; is the scan broken?", used)
	}
}

// checkEnv asserts that names are mailhook's or the AWS SDK's and that the
// values form a valid configuration (secrets that are placeholders left out
// by the caller).
func checkEnv(t *testing.T, where string, env map[string]string) {
	t.Helper()
	vars := known()
	for k := range env {
		if _, ok := vars[k]; !ok && !strings.HasPrefix(k, "AWS_") {
			t.Errorf("%s: variable %s is neither a MAILHOOK_* setting nor the AWS SDK's", where, k)
		}
	}
	_, err := config.Load(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Errorf("%s: configuration does not load: %v", where, err)
	}
}

// get walks a parsed YAML document: get(doc, "spec", "template", 0, ...).
func get(v any, keys ...any) any {
	for _, k := range keys {
		switch k := k.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			s, ok := v.([]any)
			if !ok || k >= len(s) {
				return nil
			}
			v = s[k]
		}
	}
	return v
}

func str(v any, keys ...any) string {
	s, _ := get(v, keys...).(string)
	return s
}

func stringMap(v any) map[string]string {
	out := map[string]string{}
	m, _ := v.(map[string]any)
	for k, x := range m {
		s, _ := x.(string)
		out[k] = s
	}
	return out
}

func atoi(t *testing.T, what, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("%s: %q is not a number", what, s)
	}
	return n
}

// --- Kubernetes -------------------------------------------------------------

func kubernetesObjects(t *testing.T) map[string]any {
	t.Helper()
	kust, err := yamlDocs(read(t, "deploy/kubernetes/kustomization.yaml"))
	if err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	resources, _ := get(kust[0], "resources").([]any)
	listed := map[string]bool{"kustomization.yaml": true}
	objs := map[string]any{} // "Kind/name"
	for _, r := range resources {
		name := r.(string)
		listed[name] = true
		docs, err := yamlDocs(read(t, "deploy/kubernetes/"+name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, d := range docs {
			id := str(d, "kind") + "/" + str(d, "metadata", "name")
			if str(d, "apiVersion") == "" || str(d, "kind") == "" || str(d, "metadata", "name") == "" {
				t.Errorf("%s: object without apiVersion, kind or metadata.name", name)
			}
			objs[id] = d
		}
	}
	entries, err := os.ReadDir(filepath.Join(root, "deploy", "kubernetes"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !listed[e.Name()] {
			t.Errorf("deploy/kubernetes/%s is not listed in kustomization.yaml's resources", e.Name())
		}
	}
	return objs
}

func TestKubernetes(t *testing.T) {
	objs := kubernetesObjects(t)
	must := func(id string) any {
		t.Helper()
		o, ok := objs[id]
		if !ok {
			t.Fatalf("no %s in deploy/kubernetes", id)
		}
		return o
	}
	dep := must("Deployment/mailhook")
	cm := stringMap(get(must("ConfigMap/mailhook-config"), "data"))
	secret := stringMap(get(must("Secret/mailhook-secrets"), "stringData"))
	smtpSvc := must("Service/mailhook-smtp")
	httpSvc := must("Service/mailhook-http")
	pdb := must("PodDisruptionBudget/mailhook")

	checkEnv(t, "ConfigMap mailhook-config", cm)
	for k := range secret {
		if _, ok := known()[k]; !ok && !strings.HasPrefix(k, "AWS_") {
			t.Errorf("Secret mailhook-secrets: %s is neither a MAILHOOK_* setting nor the AWS SDK's", k)
		}
	}

	if got := str(dep, "spec", "replicas"); got != "2" {
		t.Errorf("Deployment replicas = %q, want 2", got)
	}
	pod := get(dep, "spec", "template", "spec")
	podLabels := stringMap(get(dep, "spec", "template", "metadata", "labels"))
	selects := func(what string, sel any) {
		t.Helper()
		m := stringMap(sel)
		if len(m) == 0 {
			t.Errorf("%s: empty selector", what)
		}
		for k, v := range m {
			if podLabels[k] != v {
				t.Errorf("%s: selector %s=%s does not match the pod labels %v", what, k, v, podLabels)
			}
		}
	}
	selects("Deployment", get(dep, "spec", "selector", "matchLabels"))
	selects("Service mailhook-smtp", get(smtpSvc, "spec", "selector"))
	selects("Service mailhook-http", get(httpSvc, "spec", "selector"))
	selects("PodDisruptionBudget", get(pdb, "spec", "selector", "matchLabels"))

	containers, _ := get(pod, "containers").([]any)
	if len(containers) != 1 {
		t.Fatalf("want one container, got %d", len(containers))
	}
	c := containers[0]
	ports := map[string]int{}
	for i := range get(c, "ports").([]any) {
		ports[str(c, "ports", i, "name")] = atoi(t, "containerPort", str(c, "ports", i, "containerPort"))
	}
	smtpPort, httpPort := defaultPort(t, "MAILHOOK_SMTP_ADDR"), defaultPort(t, "MAILHOOK_HTTP_ADDR")
	if ports["smtp"] != smtpPort || ports["http"] != httpPort {
		t.Errorf("container ports %v, want smtp %d and http %d (config defaults)", ports, smtpPort, httpPort)
	}
	for name, addr := range map[string]string{"MAILHOOK_SMTP_ADDR": cm["MAILHOOK_SMTP_ADDR"], "MAILHOOK_HTTP_ADDR": cm["MAILHOOK_HTTP_ADDR"]} {
		if addr != "" && addr != known()[name].Default {
			t.Errorf("ConfigMap %s=%q differs from the default %q the ports assume", name, addr, known()[name].Default)
		}
	}
	portOf := func(v string) int { // a named or numeric container port
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
		return ports[v]
	}
	for _, probe := range []struct{ key, path string }{{"readinessProbe", "/readyz"}, {"livenessProbe", "/healthz"}} {
		if got := str(c, probe.key, "httpGet", "path"); got != probe.path {
			t.Errorf("%s path %q, want %s", probe.key, got, probe.path)
		}
		if got := portOf(str(c, probe.key, "httpGet", "port")); got != httpPort {
			t.Errorf("%s port %d, want %d", probe.key, got, httpPort)
		}
	}

	// Hardening, pod and container level.
	if str(pod, "securityContext", "runAsNonRoot") != "true" || str(c, "securityContext", "runAsNonRoot") != "true" {
		t.Error("runAsNonRoot must be true for the pod and the container")
	}
	if u := str(pod, "securityContext", "runAsUser"); u == "" || u == "0" {
		t.Errorf("pod runAsUser %q, want the image's non-root uid", u)
	}
	for key, want := range map[string]string{"readOnlyRootFilesystem": "true", "allowPrivilegeEscalation": "false"} {
		if got := str(c, "securityContext", key); got != want {
			t.Errorf("container securityContext.%s = %q, want %s", key, got, want)
		}
	}
	if drop, _ := get(c, "securityContext", "capabilities", "drop").([]any); !slices.Contains(drop, any("ALL")) {
		t.Errorf("capabilities.drop = %v, want ALL", drop)
	}
	if str(pod, "securityContext", "seccompProfile", "type") != "RuntimeDefault" {
		t.Error("pod seccompProfile must be RuntimeDefault")
	}
	for _, k := range []string{"requests", "limits"} {
		if str(c, "resources", k, "memory") == "" || str(c, "resources", k, "cpu") == "" {
			t.Errorf("resources.%s must set cpu and memory", k)
		}
	}

	// Configuration comes from the ConfigMap and the Secret.
	var fromCM, fromSecret bool
	envFrom, _ := get(c, "envFrom").([]any)
	for i := range envFrom {
		fromCM = fromCM || str(c, "envFrom", i, "configMapRef", "name") == "mailhook-config"
		fromSecret = fromSecret || str(c, "envFrom", i, "secretRef", "name") == "mailhook-secrets"
	}
	if !fromCM || !fromSecret {
		t.Errorf("envFrom must reference ConfigMap mailhook-config and Secret mailhook-secrets: %v", envFrom)
	}
	if env, _ := get(c, "env").([]any); len(env) > 0 {
		for i := range env {
			if n := str(c, "env", i, "name"); !strings.HasPrefix(n, "MAILHOOK_") && !strings.HasPrefix(n, "AWS_") {
				t.Errorf("container env %s is neither MAILHOOK_* nor AWS_*", n)
			}
		}
	}

	// Shutdown: the kill must come after the grace period and the preStop pause.
	grace := shutdownGrace(t, cm["MAILHOOK_SHUTDOWN_GRACE"])
	tgps := time.Duration(atoi(t, "terminationGracePeriodSeconds", str(pod, "terminationGracePeriodSeconds"))) * time.Second
	var preStop time.Duration
	if s := str(c, "lifecycle", "preStop", "sleep", "seconds"); s != "" {
		preStop = time.Duration(atoi(t, "preStop sleep", s)) * time.Second
	}
	if tgps <= grace+preStop {
		t.Errorf("terminationGracePeriodSeconds %v must exceed MAILHOOK_SHUTDOWN_GRACE %v + preStop %v", tgps, grace, preStop)
	}

	// Services.
	if str(smtpSvc, "spec", "type") != "LoadBalancer" || str(smtpSvc, "spec", "externalTrafficPolicy") != "Local" {
		t.Error("Service mailhook-smtp must be a LoadBalancer with externalTrafficPolicy Local")
	}
	if p, tp := str(smtpSvc, "spec", "ports", 0, "port"), portOf(str(smtpSvc, "spec", "ports", 0, "targetPort")); p != "25" || tp != smtpPort {
		t.Errorf("Service mailhook-smtp maps %s -> %d, want 25 -> %d", p, tp, smtpPort)
	}
	for k := range stringMap(get(smtpSvc, "metadata", "annotations")) {
		if strings.Contains(k, "proxy-protocol") {
			t.Errorf("Service mailhook-smtp enables PROXY protocol (%s), which mailhook does not read yet", k)
		}
	}
	if typ := str(httpSvc, "spec", "type"); typ != "" && typ != "ClusterIP" {
		t.Errorf("Service mailhook-http type %s, want ClusterIP", typ)
	}
	if p, tp := str(httpSvc, "spec", "ports", 0, "port"), portOf(str(httpSvc, "spec", "ports", 0, "targetPort")); p != strconv.Itoa(httpPort) || tp != httpPort {
		t.Errorf("Service mailhook-http maps %s -> %d, want %d -> %d", p, tp, httpPort, httpPort)
	}
	if got := str(pdb, "spec", "minAvailable"); got != "1" {
		t.Errorf("PodDisruptionBudget minAvailable %q, want 1", got)
	}
}

// --- Docker Compose -----------------------------------------------------------

func TestCompose(t *testing.T) {
	docs, err := yamlDocs(read(t, "deploy/compose.yaml"))
	if err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	doc := docs[0]
	mh := get(doc, "services", "mailhook")
	env := stringMap(get(mh, "environment"))
	checkEnv(t, "compose mailhook", env)

	for k, want := range map[string]string{
		"MAILHOOK_STORE":         "s3://mailhook",
		"MAILHOOK_S3_ENDPOINT":   "http://versitygw:7070",
		"MAILHOOK_S3_PATH_STYLE": "true",
		"MAILHOOK_WEBHOOK_URL":   "http://receiver:8000/webhook",
	} {
		if env[k] != want {
			t.Errorf("compose mailhook %s=%q, want %q", k, env[k], want)
		}
	}
	secret := env["MAILHOOK_WEBHOOK_SECRET"]
	if _, err := signing.NewSigner(strings.Split(secret, ",")...); err != nil {
		t.Errorf("compose MAILHOOK_WEBHOOK_SECRET: %v", err)
	}
	if got := str(doc, "services", "receiver", "environment", "MAILHOOK_WEBHOOK_SECRET"); got != secret {
		t.Errorf("the receiver verifies with %q, mailhook signs with %q", got, secret)
	}

	// Published on loopback only, to the configured ports.
	want := []string{
		"127.0.0.1:2525:" + strconv.Itoa(defaultPort(t, "MAILHOOK_SMTP_ADDR")),
		"127.0.0.1:8080:" + strconv.Itoa(defaultPort(t, "MAILHOOK_HTTP_ADDR")),
	}
	var got []string
	for _, p := range get(mh, "ports").([]any) {
		got = append(got, p.(string))
	}
	if !slices.Equal(got, want) {
		t.Errorf("mailhook ports %q, want %q", got, want)
	}
	for name := range get(doc, "services").(map[string]any) {
		ps, _ := get(doc, "services", name, "ports").([]any)
		for _, p := range ps {
			if !strings.HasPrefix(p.(string), "127.0.0.1:") {
				t.Errorf("service %s publishes %q beyond loopback", name, p)
			}
		}
	}

	stop, err := time.ParseDuration(str(mh, "stop_grace_period"))
	if err != nil || stop <= shutdownGrace(t, env["MAILHOOK_SHUTDOWN_GRACE"]) {
		t.Errorf("stop_grace_period %q must exceed MAILHOOK_SHUTDOWN_GRACE", str(mh, "stop_grace_period"))
	}
	if str(mh, "build", "context") != ".." || str(mh, "build", "dockerfile") != "Dockerfile" {
		t.Error("mailhook must be built from the repository root Dockerfile")
	}
	if df := str(doc, "services", "receiver", "build", "dockerfile"); df != "deploy/receiver/Dockerfile" {
		t.Errorf("receiver dockerfile %q", df)
	} else if !strings.Contains(read(t, df), "./deploy/receiver") {
		t.Errorf("%s does not build ./deploy/receiver", df)
	}

	// versitygw: the credentials mailhook uses, and the bucket it expects.
	gw := get(doc, "services", "versitygw")
	if img := str(gw, "image"); img != "versity/versitygw:v1.8.0" {
		t.Errorf("versitygw image %q", img)
	}
	var args []string
	for _, a := range get(gw, "command").([]any) {
		args = append(args, a.(string))
	}
	flag := func(name string) string {
		i := slices.Index(args, name)
		if i < 0 || i+1 >= len(args) {
			return ""
		}
		return args[i+1]
	}
	if flag("--access") != env["AWS_ACCESS_KEY_ID"] || flag("--secret") != env["AWS_SECRET_ACCESS_KEY"] || flag("--access") == "" {
		t.Errorf("versitygw --access/--secret differ from mailhook's AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")
	}
	if !strings.HasSuffix(env["MAILHOOK_S3_ENDPOINT"], flag("--port")) {
		t.Errorf("versitygw listens on %q, mailhook's endpoint is %s", flag("--port"), env["MAILHOOK_S3_ENDPOINT"])
	}
	posix := slices.Index(args, "posix")
	if posix < 0 {
		t.Fatal("versitygw does not run the posix backend")
	}
	gwRoot := args[len(args)-1]
	store, err := config.ParseStore(env["MAILHOOK_STORE"])
	if err != nil {
		t.Fatal(err)
	}
	initCmd := str(doc, "services", "versitygw-init", "command", 0)
	if !strings.Contains(initCmd, path.Join(gwRoot, store.Bucket)) {
		t.Errorf("versitygw-init (%q) does not create the bucket directory %s", initCmd, path.Join(gwRoot, store.Bucket))
	}
	if sidecar := flag("--sidecar"); sidecar != "" && !strings.Contains(initCmd, sidecar) {
		t.Errorf("versitygw-init does not create the sidecar directory %s", sidecar)
	}
	if cond := str(gw, "depends_on", "versitygw-init", "condition"); cond != "service_completed_successfully" {
		t.Errorf("versitygw must wait for versitygw-init, condition %q", cond)
	}
}

// --- Fly.io ---------------------------------------------------------------------

func TestFly(t *testing.T) {
	fly, err := tomlDoc(read(t, "deploy/fly/fly.toml"))
	if err != nil {
		t.Fatalf("fly.toml: %v", err)
	}
	env := map[string]string{}
	for k, v := range fly {
		if name, ok := strings.CutPrefix(k, "env."); ok {
			env[name] = v
		}
	}
	checkEnv(t, "fly.toml [env]", env)
	for k := range env {
		if f, ok := known()[k]; ok && f.Secret {
			t.Errorf("fly.toml [env] sets the secret %s; use fly secrets set", k)
		}
	}
	if got, want := fly["services.0.internal_port"], strconv.Itoa(defaultPort(t, "MAILHOOK_SMTP_ADDR")); got != want {
		t.Errorf("services internal_port %s, want %s", got, want)
	}
	if fly["services.0.protocol"] != "tcp" || fly["services.0.ports.0.port"] != "25" {
		t.Errorf("want a tcp service on port 25, got %s on %s", fly["services.0.protocol"], fly["services.0.ports.0.port"])
	}
	if h, ok := fly["services.0.ports.0.handlers"]; ok {
		t.Errorf("port 25 has handlers %s; SMTP must pass through raw (proxy_proto waits for mailhook support)", h)
	}
	paths := map[string]bool{}
	for k, v := range fly {
		if strings.HasPrefix(k, "checks.") && strings.HasSuffix(k, ".path") {
			check := strings.TrimSuffix(k, ".path")
			paths[v] = true
			if got := fly[check+".port"]; got != strconv.Itoa(defaultPort(t, "MAILHOOK_HTTP_ADDR")) {
				t.Errorf("%s port %s, want the HTTP port", check, got)
			}
		}
	}
	if !paths["/healthz"] {
		t.Error("no HTTP check on /healthz")
	}
	kill, err := time.ParseDuration(fly["kill_timeout"])
	if err != nil || kill <= shutdownGrace(t, env["MAILHOOK_SHUTDOWN_GRACE"]) {
		t.Errorf("kill_timeout %q must exceed MAILHOOK_SHUTDOWN_GRACE", fly["kill_timeout"])
	}
	if _, err := os.Stat(filepath.Join(root, "deploy", "fly", filepath.FromSlash(fly["build.dockerfile"]))); err != nil {
		t.Errorf("build.dockerfile: %v", err)
	}
}

// --- AWS --------------------------------------------------------------------------

func TestECSTaskDefinition(t *testing.T) {
	var td struct {
		RequiresCompatibilities []string
		NetworkMode             string
		ContainerDefinitions    []struct {
			Name                   string
			User                   string
			ReadonlyRootFilesystem bool
			Essential              bool
			StopTimeout            int
			PortMappings           []struct{ ContainerPort int }
			Environment            []struct{ Name, Value string }
			Secrets                []struct{ Name, ValueFrom string }
			HealthCheck            struct{ Command []string }
			LogConfiguration       struct{ LogDriver string }
			LinuxParameters        struct {
				Capabilities struct{ Drop []string }
			}
		}
	}
	if err := json.Unmarshal([]byte(read(t, "deploy/aws/task-definition.json")), &td); err != nil {
		t.Fatalf("task-definition.json: %v", err)
	}
	if !slices.Contains(td.RequiresCompatibilities, "FARGATE") || td.NetworkMode != "awsvpc" {
		t.Error("want a FARGATE task in awsvpc mode")
	}
	if len(td.ContainerDefinitions) != 1 {
		t.Fatalf("want one container, got %d", len(td.ContainerDefinitions))
	}
	c := td.ContainerDefinitions[0]
	env := map[string]string{}
	for _, e := range c.Environment {
		env[e.Name] = e.Value
		if strings.HasPrefix(e.Name, "AWS_SECRET") || strings.HasPrefix(e.Name, "AWS_ACCESS") {
			t.Errorf("environment sets %s; the task role provides credentials", e.Name)
		}
	}
	checkEnv(t, "ECS environment", env)
	for _, s := range c.Secrets {
		if _, ok := known()[s.Name]; !ok {
			t.Errorf("secret %s is not a MAILHOOK_* setting", s.Name)
		}
		if !strings.HasPrefix(s.ValueFrom, "arn:aws:secretsmanager:") && !strings.HasPrefix(s.ValueFrom, "arn:aws:ssm:") {
			t.Errorf("secret %s valueFrom %q is not a Secrets Manager or SSM ARN", s.Name, s.ValueFrom)
		}
	}
	if want := []string{"CMD", "/mailhook", "healthcheck"}; !slices.Equal(c.HealthCheck.Command, want) {
		t.Errorf("healthCheck.command %q, want %q (the image has no shell)", c.HealthCheck.Command, want)
	}
	if uid, err := strconv.Atoi(strings.Split(c.User, ":")[0]); err != nil || uid == 0 {
		t.Errorf("user %q, want a numeric non-root uid", c.User)
	}
	if !c.ReadonlyRootFilesystem || !c.Essential {
		t.Error("container must be essential with a read-only root filesystem")
	}
	if !slices.Contains(c.LinuxParameters.Capabilities.Drop, "ALL") {
		t.Error("capabilities must drop ALL")
	}
	if c.LogConfiguration.LogDriver != "awslogs" {
		t.Errorf("log driver %q, want awslogs", c.LogConfiguration.LogDriver)
	}
	var ports []int
	for _, p := range c.PortMappings {
		ports = append(ports, p.ContainerPort)
	}
	if want := []int{defaultPort(t, "MAILHOOK_SMTP_ADDR"), defaultPort(t, "MAILHOOK_HTTP_ADDR")}; !slices.Equal(ports, want) {
		t.Errorf("port mappings %v, want %v", ports, want)
	}
	if stop := time.Duration(c.StopTimeout) * time.Second; stop <= shutdownGrace(t, env["MAILHOOK_SHUTDOWN_GRACE"]) || c.StopTimeout > 120 {
		t.Errorf("stopTimeout %d s must exceed MAILHOOK_SHUTDOWN_GRACE and be at most 120 (Fargate)", c.StopTimeout)
	}
}

func TestIAMPolicy(t *testing.T) {
	var p struct {
		Version   string
		Statement []struct {
			Effect   string
			Action   []string
			Resource string
		}
	}
	if err := json.Unmarshal([]byte(read(t, "deploy/aws/iam-policy.json")), &p); err != nil {
		t.Fatalf("iam-policy.json: %v", err)
	}
	if p.Version != "2012-10-17" {
		t.Errorf("Version %q", p.Version)
	}
	grants := map[string]string{}
	for _, s := range p.Statement {
		if s.Effect != "Allow" {
			t.Errorf("unexpected effect %s", s.Effect)
		}
		for _, a := range s.Action {
			if strings.Contains(a, "*") {
				t.Errorf("wildcard action %s", a)
			}
			grants[a] = s.Resource
		}
	}
	want := map[string]string{
		"s3:ListBucket":               "arn:aws:s3:::BUCKET",
		"s3:GetObject":                "arn:aws:s3:::BUCKET/*",
		"s3:PutObject":                "arn:aws:s3:::BUCKET/*",
		"s3:DeleteObject":             "arn:aws:s3:::BUCKET/*",
		"s3:AbortMultipartUpload":     "arn:aws:s3:::BUCKET/*",
		"s3:ListMultipartUploadParts": "arn:aws:s3:::BUCKET/*",
	}
	if len(grants) != len(want) {
		t.Errorf("grants %v, want exactly %v", grants, want)
	}
	for a, r := range want {
		if grants[a] != r {
			t.Errorf("%s on %q, want on %q", a, grants[a], r)
		}
	}
}

// --- Dockerfiles -------------------------------------------------------------------

type instruction struct {
	cmd  string // upper case
	args string
}

// dockerfile reads instructions, joining continuation lines.
func dockerfile(t *testing.T, rel string) []instruction {
	t.Helper()
	var out []instruction
	var cur strings.Builder
	for _, l := range strings.Split(read(t, rel), "\n") {
		tl := strings.TrimSpace(l)
		if strings.HasPrefix(tl, "#") || (tl == "" && cur.Len() == 0) {
			continue
		}
		if s, ok := strings.CutSuffix(tl, `\`); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(tl)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, instruction{strings.ToUpper(cmd), strings.TrimSpace(args)})
		cur.Reset()
	}
	if cur.Len() > 0 {
		t.Fatalf("%s: dangling continuation", rel)
	}
	return out
}

var pinnedImage = regexp.MustCompile(`^([a-z0-9./-]+):([A-Za-z0-9._-]+)@sha256:[0-9a-f]{64}$`)

func checkFromPinned(t *testing.T, rel string, ins []instruction) []string {
	t.Helper()
	var images []string
	for _, in := range ins {
		if in.cmd != "FROM" {
			continue
		}
		var image string
		for _, f := range strings.Fields(in.args) {
			if !strings.HasPrefix(f, "--") {
				image = f
				break
			}
		}
		m := pinnedImage.FindStringSubmatch(image)
		if m == nil || m[2] == "latest" {
			t.Errorf("%s: FROM %s is not pinned to a tag (not latest) and a sha256 digest", rel, image)
			continue
		}
		images = append(images, image)
	}
	return images
}

func jsonArray(t *testing.T, what, s string) []string {
	t.Helper()
	var a []string
	if err := json.Unmarshal([]byte(s), &a); err != nil {
		t.Errorf("%s %s: want exec form (a JSON array): %v", what, s, err)
	}
	return a
}

func TestDockerfile(t *testing.T) {
	ins := dockerfile(t, "Dockerfile")
	images := checkFromPinned(t, "Dockerfile", ins)
	if len(images) != 2 {
		t.Fatalf("want a build and a runtime stage, got %v", images)
	}
	// The Go image must be at least go.mod's go version.
	goMod := read(t, "go.mod")
	goVersion := regexp.MustCompile(`(?m)^go (\d+\.\d+(?:\.\d+)?)`).FindStringSubmatch(goMod)[1]
	m := regexp.MustCompile(`^golang:(\d+\.\d+\.\d+)-bookworm@`).FindStringSubmatch(images[0])
	if m == nil {
		t.Errorf("build stage %s, want golang:1.N.P-bookworm", images[0])
	} else if versionLess(m[1], goVersion) {
		t.Errorf("build image Go %s is older than go.mod's go %s", m[1], goVersion)
	}
	if !strings.HasPrefix(images[1], "gcr.io/distroless/static-debian12:nonroot@") {
		t.Errorf("runtime stage %s, want distroless static nonroot", images[1])
	}

	var (
		user, healthcheck, entrypoint, cmd string
		exposed                            []int
		envs, volumes                      []string
		downloadAt, copyAllAt, buildAt     = -1, -1, -1
		chownData                          bool
	)
	for i, in := range ins {
		switch in.cmd {
		case "USER":
			user = in.args
		case "HEALTHCHECK":
			healthcheck = in.args
		case "ENTRYPOINT":
			entrypoint = in.args
		case "CMD":
			cmd = in.args
		case "EXPOSE":
			for _, p := range strings.Fields(in.args) {
				exposed = append(exposed, atoi(t, "EXPOSE", strings.TrimSuffix(p, "/tcp")))
			}
		case "ENV":
			envs = append(envs, in.args)
		case "VOLUME":
			volumes = append(volumes, in.args)
		case "COPY":
			if in.args == ". ." {
				copyAllAt = i
			}
			if strings.Contains(in.args, "--chown=65532:65532") && strings.HasSuffix(in.args, " /data") {
				chownData = true
			}
		case "RUN":
			if strings.Contains(in.args, "go mod download") {
				downloadAt = i
			}
			if strings.Contains(in.args, `CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/mailhook ./cmd/mailhook`) {
				buildAt = i
			}
		}
	}
	if downloadAt < 0 || copyAllAt < 0 || downloadAt > copyAllAt {
		t.Error("`go mod download` must run in its own layer before the sources are copied")
	}
	if buildAt < copyAllAt {
		t.Error("no static build of ./cmd/mailhook after the sources are copied")
	}
	if uid, gid, _ := strings.Cut(user, ":"); atoiOrZero(uid) == 0 || (gid != "" && atoiOrZero(gid) == 0) {
		t.Errorf("USER %q, want a numeric non-root uid[:gid]", user)
	}
	ep := jsonArray(t, "ENTRYPOINT", entrypoint)
	if !slices.Equal(ep, []string{"/mailhook"}) || !slices.Equal(jsonArray(t, "CMD", cmd), []string{"serve"}) {
		t.Errorf("ENTRYPOINT %s CMD %s, want [\"/mailhook\"] [\"serve\"]", entrypoint, cmd)
	}
	_, hcCmd, ok := strings.Cut(healthcheck, "CMD ")
	if hc := jsonArray(t, "HEALTHCHECK CMD", strings.TrimSpace(hcCmd)); !ok || len(hc) < 2 || hc[0] != "/mailhook" || hc[1] != "healthcheck" {
		t.Errorf("HEALTHCHECK %q must run the binary: CMD [\"/mailhook\", \"healthcheck\"]", healthcheck)
	}
	slices.Sort(exposed)
	if want := []int{defaultPort(t, "MAILHOOK_SMTP_ADDR"), defaultPort(t, "MAILHOOK_HTTP_ADDR")}; !slices.Equal(exposed, want) {
		t.Errorf("EXPOSE %v, want the default ports %v", exposed, want)
	}
	if !slices.Contains(envs, "MAILHOOK_STORE=file:///data") || !slices.Contains(volumes, "/data") || !chownData {
		t.Error("want ENV MAILHOOK_STORE=file:///data, VOLUME /data, and /data copied --chown=65532:65532")
	}
	if st, err := config.ParseStore("file:///data"); err != nil || st.Path != "/data" {
		t.Errorf("MAILHOOK_STORE=file:///data parses to %+v, %v", st, err)
	}

	// The receiver's image is pinned too.
	checkFromPinned(t, "deploy/receiver/Dockerfile", dockerfile(t, "deploy/receiver/Dockerfile"))
}

func atoiOrZero(s string) int { n, _ := strconv.Atoi(s); return n }

func versionLess(a, b string) bool {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < 3; i++ {
		var x, y int
		if i < len(pa) {
			x = atoiOrZero(pa[i])
		}
		if i < len(pb) {
			y = atoiOrZero(pb[i])
		}
		if x != y {
			return x < y
		}
	}
	return false
}

// TestDockerignoreKeepsSources checks, with Docker's matching rules (last
// matching pattern wins, "!" re-includes, a pattern excluding a directory
// excludes what is under it), that the build context keeps go.mod, go.sum
// and every Go source the images build.
func TestDockerignoreKeepsSources(t *testing.T) {
	var patterns []string
	for _, l := range strings.Split(read(t, ".dockerignore"), "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "#") {
			patterns = append(patterns, l)
		}
	}
	excluded := func(p string) bool {
		ex := false
		for _, pat := range patterns {
			neg := strings.HasPrefix(pat, "!")
			pat = path.Clean(strings.TrimPrefix(strings.TrimPrefix(pat, "!"), "/"))
			// A pattern matches the path or any of its parent directories.
			for q := p; q != "."; q = path.Dir(q) {
				if ok, _ := path.Match(pat, q); ok {
					ex = !neg
					break
				}
			}
		}
		return ex
	}
	need := []string{"go.mod", "go.sum"}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if base := d.Name(); rel != "." && (strings.HasPrefix(base, ".") || base == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(rel, ".go") && !strings.HasSuffix(rel, "_test.go") &&
			(!strings.HasPrefix(rel, "deploy/") || strings.HasPrefix(rel, "deploy/receiver/")) {
			need = append(need, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(need) < 10 {
		t.Fatalf("found only %v; is the walk broken?", need)
	}
	for _, p := range need {
		if excluded(p) {
			t.Errorf(".dockerignore excludes %s, which the image build needs", p)
		}
	}
	for _, p := range []string{".git/HEAD", "mailhook", "data/x", "deploy/compose.yaml", "deploy/kubernetes/deployment.yaml"} {
		if !excluded(p) {
			t.Errorf(".dockerignore lets %s into the build context", p)
		}
	}
}
