package deploy

// TestManifests checks each directory of Kubernetes manifests against itself
// and against exogate's own config package, offline: every check is a named
// subtest. TestChecksCatchBreakage breaks the manifests one way at a time and
// asserts the check responsible notices, so that no check passes vacuously.

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/exogate/exogate/internal/config"
)

// A target says what one directory of manifests must be.
type target struct {
	dir       string // under deploy/
	kind      string // the kind of workload that runs exogate: Deployment or StatefulSet
	workload  string // its name
	container string // exogate's container in it
	app       string // the container that calls exogate over loopback; "" = exogate runs alone

	listenHost       string        // the Exotel listener's host, after EXOGATE_LISTEN
	backend          string        // limits.backend
	minReplicas      int           // spec.replicas at least
	maxMemoryRequest string        // exogate's memory request at most ("sized small")
	minShutdownDelay time.Duration // shutdown_delay at least

	service, networkPolicy, pdb, spread bool // whether it has (or must not have) one

	clientLabels        labels // the callers NetworkPolicy lets reach the listener; nil: the listener is loopback, no rule may open it
	monitoringNamespace string // the namespace of the Prometheus pods NetworkPolicy lets reach the admin port
	prometheusLabels    labels // the labels of those pods

	tokenOnlyInExogate bool // the service-account token reaches exogate's container only

	webhooks bool // exogate receives Exotel's callbacks (webhooks.listen is set)
}

var targets = []target{
	{
		dir: "kubernetes/sidecar", kind: "Deployment", workload: "example-app", container: "exogate", app: "app",
		listenHost: "127.0.0.1", backend: "memory", minReplicas: 1, maxMemoryRequest: "64Mi",
		minShutdownDelay: time.Second, tokenOnlyInExogate: true,
		networkPolicy:       true,
		monitoringNamespace: "monitoring",
		prometheusLabels:    labels{"app.kubernetes.io/name": "prometheus"},
	},
	{
		dir: "kubernetes/central", kind: "Deployment", workload: "exogate", container: "exogate",
		listenHost: "0.0.0.0", backend: "redis", minReplicas: 3, maxMemoryRequest: "256Mi",
		minShutdownDelay: 5 * time.Second,
		service:          true, networkPolicy: true, pdb: true, spread: true,
		clientLabels:        labels{"exogate.io/client": "true"},
		monitoringNamespace: "monitoring",
		prometheusLabels:    labels{"app.kubernetes.io/name": "prometheus"},
	},
	{
		dir: "kubernetes/webhooks", kind: "StatefulSet", workload: "exogate", container: "exogate",
		listenHost: "0.0.0.0", backend: "redis", minReplicas: 3, maxMemoryRequest: "256Mi",
		minShutdownDelay: 5 * time.Second,
		service:          true, networkPolicy: true, pdb: true, spread: true,
		clientLabels:        labels{"exogate.io/client": "true"},
		monitoringNamespace: "monitoring",
		prometheusLabels:    labels{"app.kubernetes.io/name": "prometheus"},
		webhooks:            true,
	},
}

// apiVersions are the kinds a directory may hold, with their API version.
var apiVersions = map[string]string{
	"ServiceAccount":      "v1",
	"ConfigMap":           "v1",
	"Service":             "v1",
	"Deployment":          "apps/v1",
	"StatefulSet":         "apps/v1",
	"NetworkPolicy":       "networking.k8s.io/v1",
	"PodDisruptionBudget": "policy/v1",
}

// defaultTokenDir is where Kubernetes mounts the service-account token when
// automountServiceAccountToken is not false.
const defaultTokenDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// A report collects one check's problems.
type report struct {
	problems []string
	notes    []string
	skipped  string
}

func (r *report) errorf(format string, args ...any) {
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
}

// need reports why a check cannot run when the workload, exogate's
// container or its configuration is missing, and says whether it can.
func (r *report) need(b *bundle, cfg bool) bool {
	switch {
	case b.wl == nil || b.exo == nil:
		r.errorf("%v", b.cfgErr)
		return false
	case cfg && b.cfg == nil:
		r.errorf("exogate's configuration: %v", b.cfgErr)
		return false
	}
	return true
}

type check struct {
	name string
	run  func(b *bundle, r *report)
}

var checks = []check{
	{"documents have apiVersion, kind and metadata.name", checkDocuments},
	{"kinds and API versions are the expected ones", checkKinds},
	{"kustomization lists exactly the manifests", checkKustomization},
	{"probes use declared container ports", checkProbePorts},
	{"exogate probes use the admin endpoints", checkAdminProbes},
	{"embedded exogate.yaml parses and validates", checkConfigValid},
	{"shipped clients authorise no one", checkClientPlaceholders},
	{"-config names the mounted ConfigMap", checkConfigMount},
	{"listen address matches the container port", checkListen},
	{"workload selects its own pods", checkWorkload},
	{"service routes to the listener", checkService},
	{"network policy admits only clients and monitoring", checkNetworkPolicy},
	{"admin token comes from a Secret", checkAdminToken},
	{"pod disruption budget leaves room", checkPDB},
	{"grace period covers the shutdown", checkShutdown},
	{"exogate container is hardened", checkHardening},
	{"resources are set and small", checkResources},
	{"vault kubernetes auth has its token", checkVault},
	{"limiter backend fits the replicas", checkLimiter},
	{"prometheus annotations point at the admin port", checkPrometheus},
	{"app calls exogate over loopback without credentials", checkApp},
	{"replicas are spread over nodes", checkSpread},
	{"webhook store is on the replica's own volume", checkWebhookStore},
	{"webhook secrets come from Secrets", checkWebhookSecrets},
	{"webhook listener is published to Exotel", checkWebhookListener},
}

func loadTarget(t *testing.T, tg target) *bundle {
	t.Helper()
	files, err := readDir(tg.dir)
	if err != nil {
		t.Fatal(err)
	}
	env, err := dockerfileEnv("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	return newBundle(tg, files, env)
}

func TestManifests(t *testing.T) {
	for _, tg := range targets {
		t.Run(tg.dir, func(t *testing.T) {
			b := loadTarget(t, tg)
			for _, c := range checks {
				t.Run(c.name, func(t *testing.T) {
					var r report
					c.run(b, &r)
					for _, n := range r.notes {
						t.Log(n)
					}
					for _, p := range r.problems {
						t.Error(p)
					}
					if r.skipped != "" && len(r.problems) == 0 {
						t.Log("not applicable here: " + r.skipped)
					}
				})
			}
		})
	}
}

func checkDocuments(b *bundle, r *report) {
	for _, e := range b.loadErrs {
		r.errorf("%s", e)
	}
	if len(b.objects) == 0 {
		r.errorf("no manifests in %s", b.dir)
	}
	for _, o := range b.objects {
		if o.APIVersion == "" {
			r.errorf("%s: no apiVersion", o)
		}
		if o.Kind == "" {
			r.errorf("%s: no kind", o)
		}
		if o.Metadata.Name == "" {
			r.errorf("%s: no metadata.name", o)
		}
	}
}

func checkKinds(b *bundle, r *report) {
	seen := map[string]bool{}
	for _, o := range b.objects {
		want, ok := apiVersions[o.Kind]
		switch {
		case !ok:
			r.errorf("%s: kind %s is not one of %s", o, o.Kind, strings.Join(sortedKeys(apiVersions), ", "))
		case o.APIVersion != want:
			r.errorf("%s: apiVersion %s, want %s", o, o.APIVersion, want)
		}
		id := o.Kind + "/" + o.Metadata.Name
		if seen[id] {
			r.errorf("%s: %s is defined twice", o, id)
		}
		seen[id] = true
	}
	if _, ok := b.named(b.kind, b.workload); !ok {
		r.errorf("no %s %q", b.kind, b.workload)
	}
}

func checkKustomization(b *bundle, r *report) {
	data, ok := b.files["kustomization.yaml"]
	if !ok {
		r.errorf("no kustomization.yaml")
		return
	}
	var k kustomization
	if err := yaml.Unmarshal(data, &k); err != nil {
		r.errorf("kustomization.yaml: %v", err)
		return
	}
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		r.errorf("kustomization.yaml: apiVersion %q kind %q, want kustomize.config.k8s.io/v1beta1 Kustomization", k.APIVersion, k.Kind)
	}
	listed := map[string]bool{}
	for _, res := range k.Resources {
		if listed[res] {
			r.errorf("kustomization.yaml lists %s twice", res)
		}
		listed[res] = true
		if _, ok := b.files[res]; !ok {
			r.errorf("kustomization.yaml lists %s, which is not in %s", res, b.dir)
		}
	}
	for name := range b.files {
		if isManifest(name) && !listed[name] {
			r.errorf("%s is not listed in kustomization.yaml resources", name)
		}
	}
	if b.exo == nil {
		return
	}
	image, _, _ := strings.Cut(b.exo.Image, ":")
	for _, im := range k.Images {
		if im.Name == image {
			if im.NewName == "" && im.NewTag == "" && im.Digest == "" {
				r.errorf("kustomization.yaml images entry %q sets neither newName, newTag nor digest", im.Name)
			}
			return
		}
	}
	r.errorf("kustomization.yaml images has no entry for exogate's image %q", image)
}

func checkProbePorts(b *bundle, r *report) {
	for _, o := range append(b.of("Deployment"), b.of("StatefulSet")...) {
		d, err := decode[workload](o)
		if err != nil {
			r.errorf("%v", err)
			continue
		}
		for _, c := range d.Spec.Template.Spec.allContainers() {
			for kind, p := range map[string]*probe{"readinessProbe": c.ReadinessProbe, "livenessProbe": c.LivenessProbe, "startupProbe": c.StartupProbe} {
				if p == nil {
					continue
				}
				var ref intOrString
				switch {
				case p.HTTPGet != nil:
					ref = p.HTTPGet.Port
				case p.TCPSocket != nil:
					ref = p.TCPSocket.Port
				case p.GRPC != nil:
					ref = intOrString(fmt.Sprint(p.GRPC.Port))
				default:
					continue // exec
				}
				if _, ok := c.port(ref); !ok {
					r.errorf("%s: container %q %s uses port %q, which the container does not declare", o, c.Name, kind, ref)
				}
			}
		}
	}
}

func checkAdminProbes(b *bundle, r *report) {
	if !r.need(b, true) {
		return
	}
	if b.cfg.adminListen == "" {
		r.errorf("the admin listener is off (admin.listen empty): nothing serves the probes and /metrics")
		return
	}
	if v, from := b.envFrom(b.exo, "EXOGATE_ADMIN_LISTEN"); from != "" && v != b.cfg.fileAdmin {
		r.errorf("EXOGATE_ADMIN_LISTEN=%q from %s overrides the file's admin.listen %q: one of them is dead", v, from, b.cfg.fileAdmin)
	}
	host, _, _ := splitHostPort(b.cfg.adminListen)
	if isLoopback(host) {
		r.errorf("admin.listen %q is loopback: the kubelet's probes and Prometheus connect to the pod IP", b.cfg.adminListen)
	}
	admin, err := b.adminPort()
	if err != nil {
		r.errorf("admin.listen: %v", err)
		return
	}
	if p, ok := b.exo.port("admin"); !ok || p.ContainerPort != admin {
		r.errorf("exogate's container has no port named admin with containerPort %d (admin.listen %s)", admin, b.cfg.adminListen)
	}
	for _, pr := range []struct {
		kind  string
		p     *probe
		paths []string
		need  bool
	}{
		{"readinessProbe", b.exo.ReadinessProbe, []string{"/readyz"}, true},
		{"livenessProbe", b.exo.LivenessProbe, []string{"/healthz"}, true},
		{"startupProbe", b.exo.StartupProbe, []string{"/healthz", "/readyz"}, false},
	} {
		switch {
		case pr.p == nil && pr.need:
			r.errorf("exogate has no %s", pr.kind)
			continue
		case pr.p == nil:
			continue
		case pr.p.HTTPGet == nil:
			r.errorf("exogate's %s is not httpGet", pr.kind)
			continue
		}
		g := pr.p.HTTPGet
		if !slices.Contains(pr.paths, g.Path) {
			r.errorf("exogate's %s path %q, want %s", pr.kind, g.Path, strings.Join(pr.paths, " or "))
		}
		if g.Scheme != "" && g.Scheme != "HTTP" {
			r.errorf("exogate's %s scheme %s: the admin listener speaks plain HTTP", pr.kind, g.Scheme)
		}
		if p, ok := b.exo.port(g.Port); !ok || p.ContainerPort != admin {
			r.errorf("exogate's %s port %q is not the admin port %d", pr.kind, g.Port, admin)
		}
	}
}

func checkConfigValid(b *bundle, r *report) {
	n := 0
	for _, o := range b.of("ConfigMap") {
		cm, err := decode[configMap](o)
		if err != nil {
			r.errorf("%v", err)
			continue
		}
		for _, key := range sortedKeys(cm.Data) {
			if !strings.HasSuffix(key, ".yaml") && !strings.HasSuffix(key, ".yml") {
				continue
			}
			n++
			ec, err := parseConfig([]byte(cm.Data[key]))
			if err != nil {
				r.errorf("%s key %s: %v", o, key, err)
				continue
			}
			if err := validateButPlaceholders(ec.cfg); err != nil {
				r.errorf("%s key %s: %v", o, key, err)
			}
		}
	}
	if n == 0 {
		r.errorf("no ConfigMap holds an exogate .yaml file")
	}
	// The configuration exogate actually runs with: the file plus the
	// container's environment (EXOGATE_LISTEN), as run.go applies it.
	if r.need(b, true) {
		if err := validateButPlaceholders(b.cfg.cfg); err != nil {
			r.errorf("%s with the container's environment: %v", b.cfg.source, err)
		}
		// The webhooks section's secrets are read from the environment
		// at start, not by Validate: a variable the container does not set
		// stops exogate as surely as a bad key.
		if w := b.cfg.cfg.Webhooks; w.Enabled() {
			if _, err := w.Settings(b.secretGetenv(b.exo), b.cfg.cfg.Breaker); err != nil {
				r.errorf("%s with the container's environment and Secrets: %v", b.cfg.source, err)
			}
		}
	}
}

// validateButPlaceholders validates a configuration and returns its
// problems other than the client secret placeholders a shipped manifest must
// have (checkClientPlaceholders): every other problem is a bug of the manifest.
func validateButPlaceholders(cfg config.Config) error {
	err := cfg.Validate()
	all, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return err
	}
	var rest []error
	for _, e := range all.Unwrap() {
		if !errors.Is(e, config.ErrPlaceholder) {
			rest = append(rest, e)
		}
	}
	return errors.Join(rest...)
}

// checkClientPlaceholders: a manifest applied verbatim must authorise no
// one, so every client it ships has a placeholder for its secret hash (which
// exogate refuses to load) and no certificate identity.
func checkClientPlaceholders(b *bundle, r *report) {
	if !r.need(b, true) {
		return
	}
	cfg := b.cfg.cfg
	if len(cfg.Clients) == 0 {
		r.skipped = "no clients"
		return
	}
	for i, cl := range cfg.Clients {
		switch {
		case cl.CertIdentity != "":
			r.errorf("clients[%d] (%s) has a cert_identity: as shipped it would authorise whoever holds that certificate", i, cl.ID)
		case !config.IsPlaceholder(cl.SecretSHA256):
			r.errorf("clients[%d] (%s) secret_sha256 is not a placeholder: as shipped it would authorise whoever knows the secret", i, cl.ID)
		}
	}
	if err := cfg.Validate(); !errors.Is(err, config.ErrPlaceholder) {
		r.errorf("applied verbatim, the configuration loads (Validate: %v): it must refuse to start until the placeholders are replaced", err)
	}
}

func checkConfigMount(b *bundle, r *report) {
	if !r.need(b, true) {
		return
	}
	file, _ := flagValue(append(append([]string{}, b.exo.Command...), b.exo.Args...), "config")
	m, _ := b.exo.mountFor(file)
	if m.SubPath != "" {
		r.errorf("-config %s is mounted with subPath: a subPath never sees ConfigMap updates, so a reload would read the old file", file)
	}
	if !m.ReadOnly {
		r.errorf("the config volume %q is not mounted readOnly", m.Name)
	}
}

func checkListen(b *bundle, r *report) {
	if !r.need(b, true) {
		return
	}
	listen := b.cfg.cfg.Listen
	host, _, err := splitHostPort(listen)
	port, perr := b.listenPort()
	if err != nil || perr != nil {
		r.errorf("listen %q is not host:port", listen)
		return
	}
	if host != b.listenHost {
		r.errorf("exogate listens on %s (after EXOGATE_LISTEN), want host %s", listen, b.listenHost)
	}
	if v, from := b.envFrom(b.exo, "EXOGATE_LISTEN"); from != "" && v != b.cfg.fileListen {
		r.errorf("EXOGATE_LISTEN=%q from %s overrides the file's listen %q: one of them is dead", v, from, b.cfg.fileListen)
	}
	if p, ok := b.exo.port("http"); !ok || p.ContainerPort != port {
		r.errorf("exogate's container has no port named http with containerPort %d (listen %s)", port, listen)
	}
	for _, o := range b.of("Service") {
		s, err := decode[service](o)
		if err != nil {
			r.errorf("%v", err)
			continue
		}
		hooks, _ := b.hooksPort()
		for _, sp := range s.Spec.Ports {
			if p, ok := b.exo.port(sp.TargetPort); !ok || (p.ContainerPort != port && (hooks == 0 || p.ContainerPort != hooks)) {
				r.errorf("%s: port %d targetPort %q is not exogate's listener port %d", o, sp.Port, sp.TargetPort, port)
			}
		}
	}
}

// checkWorkload: the workload selects its own pods and runs enough of
// them; a StatefulSet's serviceName is a headless Service of this
// directory selecting them (it names the replicas, and must exist).
func checkWorkload(b *bundle, r *report) {
	if !r.need(b, false) {
		return
	}
	if err := b.wl.Spec.Selector.selects(b.podLabels()); err != nil {
		r.errorf("%s %q selector %v (pod template labels %v)", b.kind, b.workload, err, b.podLabels())
	}
	if n := b.replicas(); n < b.minReplicas {
		r.errorf("%s %q has replicas %d, want at least %d", b.kind, b.workload, n, b.minReplicas)
	}
	if b.kind != "StatefulSet" {
		return
	}
	name := b.wl.Spec.ServiceName
	o, ok := b.named("Service", name)
	if !ok {
		r.errorf("StatefulSet %q serviceName %q is not a Service in this directory", b.workload, name)
		return
	}
	s, err := decode[service](o)
	switch {
	case err != nil:
		r.errorf("%v", err)
	case s.Spec.ClusterIP != "None":
		r.errorf("StatefulSet %q serviceName %q is not headless (clusterIP: None)", b.workload, name)
	default:
		if err := subset(s.Spec.Selector, b.podLabels()); err != nil {
			r.errorf("%s: selector %v", o, err)
		}
	}
}

// checkService: every Service selects exogate's pods and targets its
// listener or, with webhooks, its callback listener (checkWebhookListener
// says which Services may publish that); none publishes the admin port; one
// at least publishes the listener.
func checkService(b *bundle, r *report) {
	svcs := b.of("Service")
	if !b.service {
		for _, o := range svcs {
			r.errorf("%s: this directory must have no Service (exogate listens on loopback)", o)
		}
		return
	}
	if len(svcs) == 0 {
		r.errorf("want a Service, have none")
		return
	}
	if !r.need(b, true) {
		return
	}
	listen, _ := b.listenPort()
	admin, _ := b.adminPort()
	hooks, _ := b.hooksPort()
	found := false
	for _, o := range svcs {
		s, err := decode[service](o)
		if err != nil {
			r.errorf("%v", err)
			continue
		}
		if err := subset(s.Spec.Selector, b.podLabels()); err != nil {
			r.errorf("%s: selector %v", o, err)
		}
		for _, sp := range s.Spec.Ports {
			p, ok := b.exo.port(sp.TargetPort)
			switch {
			case !ok:
				r.errorf("%s: targetPort %q is not a port of exogate's container", o, sp.TargetPort)
			case p.ContainerPort == admin:
				r.errorf("%s: publishes the admin port %d; Prometheus scrapes the pods", o, admin)
			case p.ContainerPort == listen:
				found = true
			case hooks != 0 && p.ContainerPort == hooks:
			default:
				r.errorf("%s: targetPort %q is port %d, neither the listener nor the callback listener", o, sp.TargetPort, p.ContainerPort)
			}
		}
	}
	if !found {
		r.errorf("no Service has a port that targets exogate's listener port %d", listen)
	}
}

// checkNetworkPolicy: one NetworkPolicy selects exogate's pods and admits
// the listener only from the labelled clients, the admin port only from
// Prometheus and, with webhooks, the callback listener from anywhere (no
// from) or from whatever the rule names; every rule names its ports.
func checkNetworkPolicy(b *bundle, r *report) {
	nps := b.of("NetworkPolicy")
	if !b.networkPolicy {
		for _, o := range nps {
			r.errorf("%s: this directory must have no NetworkPolicy", o)
		}
		return
	}
	if len(nps) != 1 {
		r.errorf("want exactly one NetworkPolicy, have %d", len(nps))
		return
	}
	if !r.need(b, true) {
		return
	}
	o := nps[0]
	np, err := decode[networkPolicy](o)
	if err != nil {
		r.errorf("%v", err)
		return
	}
	if err := np.Spec.PodSelector.selects(b.podLabels()); err != nil {
		r.errorf("%s: podSelector %v", o, err)
	}
	if !slices.Contains(np.Spec.PolicyTypes, "Ingress") {
		r.errorf("%s: policyTypes %v lacks Ingress", o, np.Spec.PolicyTypes)
	}
	listen, _ := b.listenPort()
	admin, _ := b.adminPort()
	hooks, _ := b.hooksPort()
	covered := map[int]bool{}
	for i, rule := range np.Spec.Ingress {
		if len(rule.Ports) == 0 {
			r.errorf("%s: ingress[%d] has no ports, so it opens every port", o, i)
		}
		onlyHooks := len(rule.Ports) > 0 && hooks != 0
		for _, p := range rule.Ports {
			if p.Port == nil {
				r.errorf("%s: ingress[%d] has a port entry without port, which opens every port", o, i)
				onlyHooks = false
				continue
			}
			cp, ok := b.exo.port(*p.Port)
			if !ok {
				r.errorf("%s: ingress[%d] port %q is not a port of exogate's container", o, i, *p.Port)
				onlyHooks = false
				continue
			}
			covered[cp.ContainerPort] = true
			onlyHooks = onlyHooks && cp.ContainerPort == hooks
			for j, f := range rule.From {
				b.checkPeer(r, fmt.Sprintf("%s: ingress[%d].from[%d]", o, i, j), f, cp.ContainerPort)
			}
		}
		// Exotel and the balancer in front of the callback listener
		// may be anywhere.
		if len(rule.From) == 0 && !onlyHooks {
			r.errorf("%s: ingress[%d] has no from, so it admits any source", o, i)
		}
	}
	need := []int{admin}
	if b.clientLabels != nil {
		need = append(need, listen)
	}
	for _, p := range need {
		if !covered[p] {
			r.errorf("%s: no ingress rule admits anyone to port %d", o, p)
		}
	}
}

// checkPeer checks one source a NetworkPolicy rule admits to port; at
// names the rule's entry.
func (b *bundle) checkPeer(r *report, at string, f peer, port int) {
	listen, _ := b.listenPort()
	admin, _ := b.adminPort()
	hooks, _ := b.hooksPort()
	switch port {
	case listen:
		if b.clientLabels == nil {
			r.errorf("%s opens the listener port %d, which is on loopback here: nothing outside the pod may reach it", at, listen)
		} else if f.PodSelector == nil || f.NamespaceSelector != nil || f.IPBlock != nil {
			r.errorf("%s to the listener must be a podSelector alone", at)
		} else if fmt.Sprint(f.PodSelector.MatchLabels) != fmt.Sprint(b.clientLabels) || len(f.PodSelector.MatchExpressions) > 0 {
			r.errorf("%s admits %v to the listener, want exactly %v", at, f.PodSelector.MatchLabels, b.clientLabels)
		}
	case admin:
		// Prometheus only: its pods in its namespace, both selectors in
		// one entry (the kubelet's probes come from the node, which
		// NetworkPolicy lets through).
		ns := labels{"kubernetes.io/metadata.name": b.monitoringNamespace}
		if f.NamespaceSelector == nil || f.PodSelector == nil || f.IPBlock != nil ||
			fmt.Sprint(f.NamespaceSelector.MatchLabels) != fmt.Sprint(ns) || len(f.NamespaceSelector.MatchExpressions) > 0 ||
			fmt.Sprint(f.PodSelector.MatchLabels) != fmt.Sprint(b.prometheusLabels) || len(f.PodSelector.MatchExpressions) > 0 {
			r.errorf("%s to the admin port must be the namespace %s with pods labelled %v, in one entry (Prometheus only)", at, b.monitoringNamespace, b.prometheusLabels)
		}
	case hooks:
		// Any source: narrowing the callback listener's (to the Ingress
		// controller, or to Exotel's ranges) is the operator's choice.
	default:
		r.errorf("%s opens port %d, which is neither the listener nor the admin port", at, port)
	}
}

// checkAdminToken: an admin listener off loopback has admin.token_file (the
// configuration's validation says so too), and the file comes from a
// Secret that is required, mounted read-only as a directory (a subPath
// never sees a rotated Secret) into exogate's container and no other.
func checkAdminToken(b *bundle, r *report) {
	if !r.need(b, true) {
		return
	}
	host, _, _ := splitHostPort(b.cfg.adminListen)
	file := b.cfg.cfg.Admin.TokenFile
	if file == "" {
		if b.cfg.adminListen != "" && !isLoopback(host) {
			r.errorf("admin.listen %s is not loopback and admin.token_file is empty: anyone who reaches the admin port could reload the configuration", b.cfg.adminListen)
		} else {
			r.skipped = "the admin listener is on loopback without a token"
		}
		return
	}
	m, _ := b.exo.mountFor(file)
	if m == nil {
		r.errorf("admin.token_file %s: no volume is mounted there in exogate's container", file)
		return
	}
	if m.SubPath != "" {
		r.errorf("admin.token_file %s is mounted with subPath: a subPath never sees a rotated Secret", file)
	}
	if !m.ReadOnly {
		r.errorf("the admin token volume %q is not mounted readOnly", m.Name)
	}
	v := b.pod().volume(m.Name)
	switch {
	case v == nil || v.Secret == nil || v.Secret.SecretName == "":
		r.errorf("admin.token_file %s: volume %q is not a Secret; the token must not live in the manifests", file, m.Name)
	case v.Secret.Optional != nil && *v.Secret.Optional:
		r.errorf("admin.token_file %s: the Secret %q is optional; without it exogate would not start", file, v.Secret.SecretName)
	}
	for _, oc := range b.pod().allContainers() {
		for _, om := range oc.VolumeMounts {
			if oc.Name != b.container && om.Name == m.Name {
				r.errorf("container %q mounts the admin token volume %q: it could reload exogate", oc.Name, m.Name)
			}
		}
	}
}

func checkPDB(b *bundle, r *report) {
	pdbs := b.of("PodDisruptionBudget")
	if !b.pdb {
		for _, o := range pdbs {
			r.errorf("%s: this directory must have no PodDisruptionBudget", o)
		}
		return
	}
	if len(pdbs) != 1 {
		r.errorf("want exactly one PodDisruptionBudget, have %d", len(pdbs))
		return
	}
	if !r.need(b, false) {
		return
	}
	o := pdbs[0]
	p, err := decode[podDisruptionBudget](o)
	if err != nil {
		r.errorf("%v", err)
		return
	}
	if err := p.Spec.Selector.selects(b.podLabels()); err != nil {
		r.errorf("%s: selector %v", o, err)
	}
	if p.Spec.MinAvailable == nil {
		r.errorf("%s: no minAvailable", o)
		return
	}
	n, ok := p.Spec.MinAvailable.int()
	switch {
	case !ok:
		r.errorf("%s: minAvailable %q, want a whole number", o, *p.Spec.MinAvailable)
	case n < 1 || n >= b.replicas():
		r.errorf("%s: minAvailable %d, want 1 <= minAvailable < replicas (%d), or no disruption is ever allowed", o, n, b.replicas())
	}
}

func checkShutdown(b *bundle, r *report) {
	if !r.need(b, true) {
		return
	}
	grace := 30 // Kubernetes' default
	if g := b.pod().TerminationGracePeriodSeconds; g != nil {
		grace = *g
	}
	c := b.cfg.cfg
	if need := c.ShutdownDelay + c.ShutdownTimeout; time.Duration(grace)*time.Second <= need {
		r.errorf("terminationGracePeriodSeconds %d is not more than shutdown_delay (%s) + shutdown_timeout (%s) = %s: the kubelet would kill exogate mid-drain",
			grace, c.ShutdownDelay, c.ShutdownTimeout, need)
	}
	if c.ShutdownDelay < b.minShutdownDelay {
		r.errorf("shutdown_delay %s, want at least %s so that callers stop sending before the listener closes", c.ShutdownDelay, b.minShutdownDelay)
	}
}

func checkHardening(b *bundle, r *report) {
	if !r.need(b, false) {
		return
	}
	sc := effective(b.pod().SecurityContext, b.exo.SecurityContext)
	if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		r.errorf("exogate: runAsNonRoot is not true")
	}
	if sc.RunAsUser == nil || *sc.RunAsUser == 0 {
		r.errorf("exogate: runAsUser is not a non-zero number (the image's USER is a name, which the kubelet cannot check against runAsNonRoot)")
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		r.errorf("exogate: readOnlyRootFilesystem is not true")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		r.errorf("exogate: allowPrivilegeEscalation is not false")
	}
	if sc.Privileged != nil && *sc.Privileged {
		r.errorf("exogate: privileged")
	}
	if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		r.errorf("exogate: capabilities.drop does not contain ALL")
	} else if len(sc.Capabilities.Add) > 0 {
		r.errorf("exogate: capabilities.add %v; exogate needs none", sc.Capabilities.Add)
	}
}

func checkResources(b *bundle, r *report) {
	if !r.need(b, false) {
		return
	}
	for _, c := range b.pod().allContainers() {
		for _, res := range []struct{ kind, name string }{{"requests", "cpu"}, {"requests", "memory"}, {"limits", "memory"}} {
			m := c.Resources.Requests
			if res.kind == "limits" {
				m = c.Resources.Limits
			}
			if _, ok := m[res.name]; !ok {
				r.errorf("container %q: no resources.%s.%s", c.Name, res.kind, res.name)
			}
		}
		for name, req := range c.Resources.Requests {
			lim, ok := c.Resources.Limits[name]
			if !ok {
				continue
			}
			rq, err1 := quantity(req)
			lm, err2 := quantity(lim)
			if err1 != nil || err2 != nil {
				r.errorf("container %q: resources.%s: %v %v", c.Name, name, err1, err2)
			} else if rq > lm {
				r.errorf("container %q: resources.requests.%s %s is above its limit %s", c.Name, name, req, lim)
			}
		}
		if e := c.env("GOMEMLIMIT"); e != nil {
			gl, err1 := goMemLimit(e.Value)
			lm, err2 := quantity(c.Resources.Limits["memory"])
			if err1 != nil || err2 != nil {
				r.errorf("container %q: GOMEMLIMIT %q / limits.memory: %v %v", c.Name, e.Value, err1, err2)
			} else if gl >= lm {
				r.errorf("container %q: GOMEMLIMIT %s is not below limits.memory %s", c.Name, e.Value, c.Resources.Limits["memory"])
			}
		}
	}
	req, err1 := quantity(b.exo.Resources.Requests["memory"])
	most, err2 := quantity(b.maxMemoryRequest)
	if err1 == nil && err2 == nil && req > most {
		r.errorf("exogate requests %s of memory, want at most %s", b.exo.Resources.Requests["memory"], b.maxMemoryRequest)
	}
}

func checkVault(b *bundle, r *report) {
	if !r.need(b, true) {
		return
	}
	c := b.cfg.cfg
	vault := false
	for _, a := range c.Accounts {
		vault = vault || a.Credentials.Source == "vault"
	}
	if !vault {
		r.errorf("no account takes its credentials from Vault")
		return
	}
	if c.Vault.Auth.Method != "kubernetes" || c.Vault.Auth.Role == "" {
		r.errorf("vault.auth: method %q role %q, want kubernetes with a role", c.Vault.Auth.Method, c.Vault.Auth.Role)
		return
	}
	pod := b.pod()
	saName := pod.ServiceAccountName
	var sa serviceAccount
	if o, ok := b.named("ServiceAccount", saName); !ok || saName == "" || saName == "default" {
		r.errorf("serviceAccountName %q: want this directory's own ServiceAccount (Vault's role is bound to it)", saName)
	} else if sa, _ = decode[serviceAccount](o); sa.Metadata.Name == "" {
		r.errorf("%s: cannot decode", o)
	}
	automount := pod.AutomountServiceAccountToken == nil && (sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken) ||
		pod.AutomountServiceAccountToken != nil && *pod.AutomountServiceAccountToken

	file := c.Vault.Auth.ServiceAccountTokenFile
	if m, rel := b.exo.mountFor(file); m != nil {
		v := pod.volume(m.Name)
		ok := false
		if v != nil && v.Projected != nil {
			for _, s := range v.Projected.Sources {
				ok = ok || s.ServiceAccountToken != nil && s.ServiceAccountToken.Path == rel
			}
		}
		if !ok {
			r.errorf("service_account_token_file %s: volume %q has no serviceAccountToken at path %q", file, m.Name, rel)
		}
		for _, oc := range pod.allContainers() {
			for _, om := range oc.VolumeMounts {
				if oc.Name != b.container && om.Name == m.Name && b.tokenOnlyInExogate {
					r.errorf("container %q mounts the Vault token volume %q: it could log in to Vault and read the Exotel credentials", oc.Name, m.Name)
				}
			}
		}
	} else if !underDir(file, defaultTokenDir) || !automount {
		r.errorf("service_account_token_file %s: no projected token is mounted there and the automounted token (%s, automount %v) is not it", file, defaultTokenDir, automount)
	}
	if b.tokenOnlyInExogate && automount {
		r.errorf("the service-account token is automounted into every container (set automountServiceAccountToken: false): the app could log in to Vault")
	}
}

func checkLimiter(b *bundle, r *report) {
	if !r.need(b, true) {
		return
	}
	l := b.cfg.cfg.Limits
	if l.Backend != b.backend {
		r.errorf("limits.backend %q, want %q", l.Backend, b.backend)
	}
	if n := b.replicas(); n > 1 && l.Backend != "redis" {
		r.errorf("%d replicas with limits.backend %q: each replica would spend the account's whole budget; use redis", n, l.Backend)
	}
	if l.Backend != "redis" {
		return
	}
	if l.Replicas != 0 && l.Replicas != b.replicas() {
		r.errorf("limits.replicas %d disagrees with the %s's %d replicas (the local fallback's share would be wrong)", l.Replicas, b.kind, b.replicas())
	}
	checkAdminURL(b, r)
	if l.Redis.PasswordEnv == "" {
		r.errorf("limits.redis.password_env is empty")
		return
	}
	e := b.exo.env(l.Redis.PasswordEnv)
	switch {
	case e == nil:
		r.errorf("limits.redis.password_env %s is not set in exogate's container", l.Redis.PasswordEnv)
	case e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil || e.ValueFrom.SecretKeyRef.Name == "" || e.ValueFrom.SecretKeyRef.Key == "":
		r.errorf("%s must come from a Secret (valueFrom.secretKeyRef), not the manifest", l.Redis.PasswordEnv)
	case e.ValueFrom.SecretKeyRef.Optional != nil && *e.ValueFrom.SecretKeyRef.Optional:
		r.errorf("%s's secretKeyRef is optional: a missing Secret would start exogate without a Redis password", l.Redis.PasswordEnv)
	}
}

// checkAdminURL checks that a replica sharing Redis publishes an admin URL
// other pods reach: the pod's IP and the admin port.
func checkAdminURL(b *bundle, r *report) {
	port, err := b.adminPort()
	if err != nil {
		return
	}
	u := b.cfg.cfg.Admin.AdvertiseURL
	if want := fmt.Sprintf("http://%s:%d", podIPStandIn, port); u != want {
		r.errorf("admin.advertise_url (%s) is %q, want http://$(POD_IP):%d with POD_IP from status.podIP: tools find replicas through Redis", config.EnvAdminURL, u, port)
	}
}

func checkPrometheus(b *bundle, r *report) {
	if !r.need(b, true) {
		return
	}
	a := b.wl.Spec.Template.Metadata.Annotations
	admin, _ := b.adminPort()
	if a["prometheus.io/scrape"] != "true" {
		r.errorf("pod annotation prometheus.io/scrape %q, want \"true\"", a["prometheus.io/scrape"])
	}
	if a["prometheus.io/port"] != fmt.Sprint(admin) {
		r.errorf("pod annotation prometheus.io/port %q, want the admin port %d", a["prometheus.io/port"], admin)
	}
	if a["prometheus.io/path"] != "/metrics" {
		r.errorf("pod annotation prometheus.io/path %q, want /metrics", a["prometheus.io/path"])
	}
}

func checkApp(b *bundle, r *report) {
	if !r.need(b, true) {
		return
	}
	pod := b.pod()
	if b.app == "" {
		if len(pod.Containers) != 1 {
			r.errorf("the central gateway's pod must run exogate alone, has %d containers", len(pod.Containers))
		}
		return
	}
	app := pod.container(b.app)
	if app == nil {
		r.errorf("no container %q", b.app)
		return
	}
	port, _ := b.listenPort()
	want := fmt.Sprintf("http://127.0.0.1:%d", port)
	if e := app.env("EXOTEL_BASE_URL"); e == nil || e.Value != want {
		r.errorf("container %q: EXOTEL_BASE_URL must be %s (exogate's loopback listener)", b.app, want)
	}
	secret := []string{"EXOTEL_API_KEY", "EXOTEL_API_TOKEN", "VAULT_TOKEN"}
	for _, a := range b.cfg.cfg.Accounts {
		secret = append(secret, a.Credentials.APIKeyEnv, a.Credentials.APITokenEnv)
	}
	for _, e := range app.Env {
		if e.Name != "" && slices.Contains(secret, e.Name) {
			r.errorf("container %q: has %s; the app must hold no Exotel or Vault credentials", b.app, e.Name)
		}
	}
}

func checkSpread(b *bundle, r *report) {
	if !b.spread {
		r.skipped = "a single pod: nothing to spread"
		return
	}
	if !r.need(b, false) {
		return
	}
	pod := b.pod()
	hostname := false
	for i, c := range pod.TopologySpreadConstraints {
		if err := c.LabelSelector.selects(b.podLabels()); err != nil {
			r.errorf("topologySpreadConstraints[%d].labelSelector %v", i, err)
		}
		hostname = hostname || c.TopologyKey == "kubernetes.io/hostname"
	}
	if pod.Affinity != nil && pod.Affinity.PodAntiAffinity != nil {
		terms := pod.Affinity.PodAntiAffinity.Required
		for _, p := range pod.Affinity.PodAntiAffinity.Preferred {
			terms = append(terms, p.Term)
		}
		for i, t := range terms {
			if err := t.LabelSelector.selects(b.podLabels()); err != nil {
				r.errorf("podAntiAffinity term %d labelSelector %v", i, err)
			}
			hostname = hostname || t.TopologyKey == "kubernetes.io/hostname"
		}
	}
	if !hostname {
		r.errorf("neither a topology spread constraint nor pod anti-affinity on kubernetes.io/hostname: all replicas may land on one node")
	}
}

// needWebhooks is need for the webhook checks: it also reports a directory
// whose gateway must receive Exotel's callbacks and does not, and skips
// one whose gateway need not.
func (r *report) needWebhooks(b *bundle) bool {
	if !r.need(b, true) {
		return false
	}
	switch {
	case b.cfg.cfg.Webhooks.Enabled():
		return true
	case b.webhooks:
		r.errorf("webhooks.listen is empty: this directory's gateway receives Exotel's callbacks")
	default:
		r.skipped = "webhooks are off"
	}
	return false
}

// checkWebhookStore: the store (webhooks.store.path, by default beside the
// configuration file) lies on a volume of the replica's own that outlives
// the pod, since a callback answered 200 exists nowhere else until it is
// delivered: a StatefulSet's volumeClaimTemplate, mounted writable, made
// writable for exogate's user by the pod's fsGroup.
func checkWebhookStore(b *bundle, r *report) {
	if !r.needWebhooks(b) {
		return
	}
	file := b.cfg.cfg.Webhooks.Store.Path
	m, _ := b.exo.mountFor(file)
	if m == nil {
		r.errorf("webhooks.store.path %s: no volume is mounted there, so the store would be on the container's own filesystem", file)
		return
	}
	if m.ReadOnly {
		r.errorf("webhooks.store.path %s: volume %q is mounted readOnly", file, m.Name)
	}
	if v := b.pod().volume(m.Name); v != nil {
		what := "a volume of the pod"
		switch {
		case v.EmptyDir != nil:
			what = "an emptyDir, lost with the pod"
		case v.ConfigMap != nil:
			what = fmt.Sprintf("the ConfigMap %q", v.ConfigMap.Name)
		case v.Secret != nil:
			what = "a Secret"
		}
		r.errorf("webhooks.store.path %s: volume %q is %s, not a volumeClaimTemplate: the callbacks acknowledged to Exotel would not survive the pod", file, m.Name, what)
		return
	}
	var claim *volumeClaimTemplate
	for i, c := range b.wl.Spec.VolumeClaimTemplates {
		if c.Metadata.Name == m.Name {
			claim = &b.wl.Spec.VolumeClaimTemplates[i]
		}
	}
	if claim == nil {
		r.errorf("webhooks.store.path %s: volume %q is no volumeClaimTemplate of the %s (a StatefulSet's give each replica its own volume)", file, m.Name, b.kind)
		return
	}
	if modes := claim.Spec.AccessModes; !slices.Contains(modes, "ReadWriteOnce") && !slices.Contains(modes, "ReadWriteOncePod") {
		r.errorf("volumeClaimTemplate %q accessModes %v, want ReadWriteOnce or ReadWriteOncePod (one replica's store)", claim.Metadata.Name, modes)
	}
	if _, ok := claim.Spec.Resources.Requests["storage"]; !ok {
		r.errorf("volumeClaimTemplate %q requests no storage", claim.Metadata.Name)
	}
	if sc := b.pod().SecurityContext; sc == nil || sc.FSGroup == nil || *sc.FSGroup == 0 {
		r.errorf("the pod has no fsGroup: a new volume belongs to root, and exogate's user could not create the store in it")
	}
}

// checkWebhookSecrets: every secret the webhooks section names by its
// variable (url_secret_env, url_secret_previous_env, each route's
// signing_secret_env) is set in exogate's container from a Secret, never in
// the manifests or the image; a required one from a key that is not
// optional. The previous URL secret is optional by nature.
func checkWebhookSecrets(b *bundle, r *report) {
	if !r.needWebhooks(b) {
		return
	}
	w := b.cfg.cfg.Webhooks
	type secretVar struct {
		field, name string
		required    bool
	}
	vars := []secretVar{{"webhooks.url_secret_env", w.URLSecretEnv, true}, {"webhooks.url_secret_previous_env", w.URLSecretPreviousEnv, false}}
	for i, rt := range w.Routes {
		vars = append(vars, secretVar{fmt.Sprintf("webhooks.routes[%d].signing_secret_env", i), rt.SigningSecretEnv, true})
	}
	for _, v := range vars {
		if v.name == "" {
			continue // Validate reports a required one
		}
		e := b.exo.env(v.name)
		_, inImage := b.imageEnv[v.name]
		switch {
		case e == nil && inImage:
			r.errorf("%s %s is set by the image, not from a Secret", v.field, v.name)
		case e == nil && v.required:
			r.errorf("%s %s is not set in exogate's container", v.field, v.name)
		case e == nil:
		case e.secretRef() == nil || e.secretRef().Name == "" || e.secretRef().Key == "":
			r.errorf("%s %s must come from a Secret (valueFrom.secretKeyRef), not the manifest", v.field, v.name)
		case v.required && e.secretRef().Optional != nil && *e.secretRef().Optional:
			r.errorf("%s %s comes from an optional key of the Secret %q: without it exogate would not start", v.field, v.name, e.secretRef().Name)
		}
	}
}

// checkWebhookListener: the callback listener listens on the pod IP, is a
// port of exogate's container, is published by a Service (not only the
// headless one) that publishes nothing else of exogate's, since whatever
// exposes it to the Internet must not expose the proxy, and is admitted by
// the NetworkPolicy.
func checkWebhookListener(b *bundle, r *report) {
	if !r.needWebhooks(b) {
		return
	}
	listen := b.cfg.cfg.Webhooks.Listen
	hooks, ok := b.hooksPort()
	if !ok {
		r.errorf("webhooks.listen %q is not host:port", listen)
		return
	}
	if host, _, _ := splitHostPort(listen); isLoopback(host) {
		r.errorf("webhooks.listen %s is loopback: the Ingress or load balancer connects to the pod IP", listen)
	}
	if _, ok := b.exo.port(intOrString(fmt.Sprint(hooks))); !ok {
		r.errorf("exogate's container declares no containerPort %d (webhooks.listen %s)", hooks, listen)
	}
	published := false
	for _, o := range b.of("Service") {
		s, err := decode[service](o)
		if err != nil {
			r.errorf("%v", err)
			continue
		}
		var others []int
		hasHooks := false
		for _, sp := range s.Spec.Ports {
			if p, ok := b.exo.port(sp.TargetPort); ok && p.ContainerPort == hooks {
				hasHooks = true
			} else if ok {
				others = append(others, p.ContainerPort)
			}
		}
		if hasHooks && len(others) > 0 {
			r.errorf("%s publishes the callback port %d with exogate's port(s) %v: whatever exposes it to Exotel would expose those too", o, hooks, others)
		}
		published = published || hasHooks && s.Spec.ClusterIP != "None"
	}
	if !published {
		r.errorf("no Service (other than a headless one) publishes the callback port %d for the Ingress or load balancer", hooks)
	}
	admitted := false
	for _, o := range b.of("NetworkPolicy") {
		np, err := decode[networkPolicy](o)
		if err != nil {
			r.errorf("%v", err)
			continue
		}
		for _, rule := range np.Spec.Ingress {
			for _, p := range rule.Ports {
				if p.Port != nil {
					cp, ok := b.exo.port(*p.Port)
					admitted = admitted || ok && cp.ContainerPort == hooks
				}
			}
		}
	}
	if b.networkPolicy && !admitted {
		r.errorf("no NetworkPolicy ingress rule admits the callback port %d: Exotel's callbacks would be dropped", hooks)
	}
}

// A breakage is one edit to a directory that one check must notice.
type breakage struct {
	dir, check string
	file       string
	old, new   string
	all        bool   // replace every occurrence, not only the first
	want       string // a problem of the check must contain this
	imageEnv   string // skip unless the image (../Dockerfile) sets this variable
}

var breakages = []breakage{
	// documents
	{dir: "central", check: "documents have apiVersion, kind and metadata.name", file: "service.yaml",
		old: "metadata:\n  name: exogate\n", new: "metadata:\n", want: "no metadata.name"},
	{dir: "central", check: "documents have apiVersion, kind and metadata.name", file: "service.yaml",
		old: "apiVersion: v1\nkind: Service", new: "kind: Service", want: "no apiVersion"},
	{dir: "central", check: "documents have apiVersion, kind and metadata.name", file: "service.yaml",
		old: "kind: Service", new: "kind: Service\nspec: [", want: "not YAML"},
	{dir: "sidecar", check: "documents have apiVersion, kind and metadata.name", file: "serviceaccount.yaml",
		old: "kind: ServiceAccount\n", new: "", want: "no kind"},
	// kinds
	{dir: "central", check: "kinds and API versions are the expected ones", file: "poddisruptionbudget.yaml",
		old: "apiVersion: policy/v1", new: "apiVersion: policy/v1beta1", want: "want policy/v1"},
	{dir: "central", check: "kinds and API versions are the expected ones", file: "configmap.yaml",
		old: "apiVersion: v1\nkind: ConfigMap", new: "apiVersion: v1\nkind: Secret\nmetadata: {name: exogate-redis}\n---\napiVersion: v1\nkind: ConfigMap", want: "kind Secret"},
	{dir: "sidecar", check: "kinds and API versions are the expected ones", file: "serviceaccount.yaml",
		old: "automountServiceAccountToken: false\n", new: "automountServiceAccountToken: false\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {name: example-app}\n", want: "defined twice"},
	{dir: "sidecar", check: "kinds and API versions are the expected ones", file: "deployment.yaml",
		old: "kind: Deployment\nmetadata:\n  name: example-app", new: "kind: Deployment\nmetadata:\n  name: other-app", want: `no Deployment "example-app"`},
	// kustomization
	{dir: "central", check: "kustomization lists exactly the manifests", file: "kustomization.yaml",
		old: "  - poddisruptionbudget.yaml\n", new: "", want: "poddisruptionbudget.yaml is not listed"},
	{dir: "central", check: "kustomization lists exactly the manifests", file: "kustomization.yaml",
		old: "  - service.yaml\n", new: "  - service.yaml\n  - redis.yaml\n", want: "redis.yaml, which is not in"},
	{dir: "sidecar", check: "kustomization lists exactly the manifests", file: "kustomization.yaml",
		old: "  - name: exogate\n", new: "  - name: exogate-gateway\n", want: "no entry for exogate's image"},
	{dir: "sidecar", check: "kustomization lists exactly the manifests", file: "kustomization.yaml",
		old: "kind: Kustomization", new: "kind: Component", want: "want kustomize.config.k8s.io/v1beta1 Kustomization"},
	// probes use declared ports
	{dir: "central", check: "probes use declared container ports", file: "deployment.yaml",
		old: "path: /healthz\n              port: admin", new: "path: /healthz\n              port: metrics", want: `port "metrics"`},
	{dir: "sidecar", check: "probes use declared container ports", file: "deployment.yaml",
		old: "path: /readyz\n              port: admin", new: "path: /readyz\n              port: 9902", want: `port "9902"`},
	// admin probes
	{dir: "sidecar", check: "exogate probes use the admin endpoints", file: "deployment.yaml",
		old: "path: /readyz", new: "path: /ready", want: "want /readyz"},
	{dir: "sidecar", check: "exogate probes use the admin endpoints", file: "deployment.yaml",
		old: "path: /healthz", new: "path: /livez", want: "want /healthz"},
	{dir: "central", check: "exogate probes use the admin endpoints", file: "deployment.yaml",
		old: "path: /readyz\n              port: admin", new: "path: /readyz\n              port: http", want: "is not the admin port"},
	{dir: "central", check: "exogate probes use the admin endpoints", file: "deployment.yaml",
		old: "          livenessProbe:\n", new: "          livenessProbeX:\n", want: "no livenessProbe"},
	{dir: "sidecar", check: "exogate probes use the admin endpoints", file: "deployment.yaml",
		old: "            - name: GOMEMLIMIT\n", new: "            - name: EXOGATE_ADMIN_LISTEN\n              value: 127.0.0.1:9901\n            - name: GOMEMLIMIT\n", want: "is loopback"},
	{dir: "sidecar", check: "exogate probes use the admin endpoints", file: "deployment.yaml",
		old: "            - name: GOMEMLIMIT\n", new: "            - name: EXOGATE_ADMIN_LISTEN\n              value: \"-\"\n            - name: GOMEMLIMIT\n", want: "the admin listener is off"},
	{dir: "central", check: "exogate probes use the admin endpoints", file: "deployment.yaml",
		old: "            - name: GOMEMLIMIT\n", new: "            - name: EXOGATE_ADMIN_LISTEN\n              value: 127.0.0.1:9901\n            - name: GOMEMLIMIT\n", want: "overrides the file's admin.listen"},
	{dir: "central", check: "exogate probes use the admin endpoints", file: "deployment.yaml",
		old: "            - name: GOMEMLIMIT\n", new: "            - name: EXOGATE_ADMIN_LISTEN\n              value: 0.0.0.0:9902\n            - name: GOMEMLIMIT\n", want: "no port named admin with containerPort 9902"},
	// config validates
	{dir: "sidecar", check: "embedded exogate.yaml parses and validates", file: "configmap.yaml",
		old: "region: singapore", new: "region: mars", want: "accounts[0].region"},
	{dir: "central", check: "embedded exogate.yaml parses and validates", file: "configmap.yaml",
		old: "      on_backend_failure: local", new: "      on_backend_failure: local\n      maxwait: 1s", want: `unknown key "maxwait"`},
	{dir: "central", check: "embedded exogate.yaml parses and validates", file: "configmap.yaml",
		old: "        role: exogate\n", new: "", want: "vault.auth.role"},
	// shipped clients
	{dir: "central", check: "shipped clients authorise no one", file: "configmap.yaml",
		old: "secret_sha256: REPLACE-with-exogate-hash-secret-of-billing.secret", new: "secret_sha256: 759fd45dce037093c922fef3f514b3651984b91895901ab41bf4e9613c71c7a3", want: "clients[1] (billing) secret_sha256 is not a placeholder"},
	{dir: "central", check: "shipped clients authorise no one", file: "configmap.yaml",
		old: "        secret_sha256: REPLACE-with-exogate-hash-secret-of-callflows.secret\n", new: "        cert_identity: uri:spiffe://corp/callflows\n", want: "clients[0] (callflows) has a cert_identity"},
	{dir: "central", check: "embedded exogate.yaml parses and validates", file: "configmap.yaml",
		old: "operations: [sms.send]", new: "operations: [sms.sned]", want: "clients[1].operations[0]"},
	{dir: "central", check: "embedded exogate.yaml parses and validates", file: "deployment.yaml",
		old: "- name: EXOGATE_LISTEN\n              value: 0.0.0.0:8080", new: "- name: EXOGATE_LISTEN\n              value: \"8080\"", want: "with the container's environment"},
	// -config
	{dir: "central", check: "-config names the mounted ConfigMap", file: "deployment.yaml",
		old: `"/etc/exogate/exogate.yaml"`, new: `"/etc/exogate/gateway.yaml"`, want: `no key "gateway.yaml"`},
	{dir: "sidecar", check: "-config names the mounted ConfigMap", file: "deployment.yaml",
		old: "mountPath: /etc/exogate\n", new: "mountPath: /etc/exo\n", want: "no volume is mounted there"},
	{dir: "sidecar", check: "-config names the mounted ConfigMap", file: "deployment.yaml",
		old: "mountPath: /etc/exogate\n", new: "mountPath: /etc/exogate/exogate.yaml\n              subPath: exogate.yaml\n", want: "subPath"},
	{dir: "central", check: "-config names the mounted ConfigMap", file: "deployment.yaml",
		old: "mountPath: /etc/exogate\n              readOnly: true", new: "mountPath: /etc/exogate\n              readOnly: false", want: "not mounted readOnly"},
	{dir: "central", check: "-config names the mounted ConfigMap", file: "deployment.yaml",
		old: "          configMap:\n            name: exogate\n", new: "          emptyDir: {}\n", want: "is not a ConfigMap"},
	// listen
	{dir: "sidecar", check: "listen address matches the container port", file: "deployment.yaml",
		old: "- name: EXOGATE_LISTEN\n              value: 127.0.0.1:8080", new: "- name: EXOGATE_LISTEN\n              value: 0.0.0.0:8080", want: "want host 127.0.0.1"},
	{dir: "central", check: "listen address matches the container port", file: "configmap.yaml",
		old: "listen: 0.0.0.0:8080", new: "listen: 0.0.0.0:8081", want: "overrides the file's listen"},
	{dir: "sidecar", check: "listen address matches the container port", file: "deployment.yaml",
		old: "            - name: EXOGATE_LISTEN\n              value: 127.0.0.1:8080\n", new: "", want: "from the image overrides", imageEnv: "EXOGATE_LISTEN"},
	{dir: "central", check: "listen address matches the container port", file: "deployment.yaml",
		old: "- name: http\n              containerPort: 8080", new: "- name: http\n              containerPort: 8081", want: "no port named http with containerPort 8080"},
	{dir: "central", check: "listen address matches the container port", file: "service.yaml",
		old: "targetPort: http", new: "targetPort: 9901", want: `targetPort "9901" is not exogate's listener port`},
	// deployment
	{dir: "central", check: "workload selects its own pods", file: "deployment.yaml",
		old: "replicas: 3", new: "replicas: 2", want: "want at least 3"},
	{dir: "central", check: "workload selects its own pods", file: "deployment.yaml",
		old: "  selector:\n    matchLabels:\n      app.kubernetes.io/name: exogate\n", new: "  selector:\n    matchLabels:\n      app.kubernetes.io/name: gateway\n", want: "selector wants app.kubernetes.io/name"},
	// service
	{dir: "central", check: "service routes to the listener", file: "service.yaml",
		old: "  selector:\n    app.kubernetes.io/name: exogate", new: "  selector:\n    app.kubernetes.io/name: gateway", want: "selector wants"},
	{dir: "central", check: "service routes to the listener", file: "service.yaml",
		old: "targetPort: http", new: "targetPort: admin", want: "publishes the admin port"},
	{dir: "central", check: "service routes to the listener", file: "service.yaml",
		old: "targetPort: http", new: "targetPort: web", want: `targetPort "web" is not a port`},
	{dir: "sidecar", check: "service routes to the listener", file: "serviceaccount.yaml",
		old: "automountServiceAccountToken: false\n", new: "automountServiceAccountToken: false\n---\napiVersion: v1\nkind: Service\nmetadata: {name: example-app}\nspec: {selector: {app.kubernetes.io/name: example-app}, ports: [{port: 8080, targetPort: http}]}\n", want: "must have no Service"},
	// network policy
	{dir: "central", check: "network policy admits only clients and monitoring", file: "networkpolicy.yaml",
		old: "  podSelector:\n    matchLabels:\n      app.kubernetes.io/name: exogate", new: "  podSelector:\n    matchLabels:\n      app.kubernetes.io/name: gateway", want: "podSelector wants"},
	{dir: "central", check: "network policy admits only clients and monitoring", file: "networkpolicy.yaml",
		old: "              exogate.io/client: \"true\"", new: "              exogate.io/client: \"yes\"", want: "want exactly map[exogate.io/client:true]"},
	{dir: "central", check: "network policy admits only clients and monitoring", file: "networkpolicy.yaml",
		old: "      ports:\n        - protocol: TCP\n          port: 8080\n", new: "", want: "opens every port"},
	{dir: "central", check: "network policy admits only clients and monitoring", file: "networkpolicy.yaml",
		old: "    - from:\n        - podSelector:\n            matchLabels:\n              exogate.io/client: \"true\"\n", new: "    - from: []\n", want: "admits any source"},
	{dir: "central", check: "network policy admits only clients and monitoring", file: "networkpolicy.yaml",
		old: "          port: 8080\n", new: "          port: 8080\n        - protocol: TCP\n          port: 9901\n", want: "to the admin port must be the namespace monitoring"},
	{dir: "central", check: "network policy admits only clients and monitoring", file: "networkpolicy.yaml",
		old: "kubernetes.io/metadata.name: monitoring", new: "kubernetes.io/metadata.name: default", want: "must be the namespace monitoring"},
	{dir: "central", check: "network policy admits only clients and monitoring", file: "networkpolicy.yaml",
		old: "          port: 9901", new: "          port: 9902", want: `port "9902" is not a port`},
	{dir: "central", check: "network policy admits only clients and monitoring", file: "networkpolicy.yaml",
		old: "          podSelector:\n            matchLabels:\n              app.kubernetes.io/name: prometheus\n", new: "", want: "to the admin port must be the namespace monitoring with pods labelled"},
	{dir: "central", check: "network policy admits only clients and monitoring", file: "networkpolicy.yaml",
		old: "          podSelector:\n            matchLabels:\n              app.kubernetes.io/name: prometheus\n", new: "        - podSelector:\n            matchLabels:\n              app.kubernetes.io/name: prometheus\n", want: "to the admin port must be"},
	{dir: "sidecar", check: "network policy admits only clients and monitoring", file: "networkpolicy.yaml",
		old: "              app.kubernetes.io/name: prometheus", new: "              app.kubernetes.io/name: grafana", want: "with pods labelled map[app.kubernetes.io/name:prometheus]"},
	{dir: "sidecar", check: "network policy admits only clients and monitoring", file: "networkpolicy.yaml",
		old: "          port: 9901\n", new: "          port: 9901\n        - protocol: TCP\n          port: 8080\n", want: "which is on loopback here"},
	{dir: "sidecar", check: "network policy admits only clients and monitoring", file: "networkpolicy.yaml",
		old: "          port: 9901\n", new: "          port: 9902\n", want: `port "9902" is not a port`},
	{dir: "sidecar", check: "network policy admits only clients and monitoring", file: "networkpolicy.yaml",
		old: "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n", new: "apiVersion: v1\nkind: ConfigMap\n", want: "want exactly one NetworkPolicy, have 0"},
	// admin token
	{dir: "central", check: "admin token comes from a Secret", file: "configmap.yaml",
		old: "      token_file: /etc/exogate-admin/token\n", new: "", want: "admin.token_file is empty"},
	{dir: "sidecar", check: "admin token comes from a Secret", file: "configmap.yaml",
		old: "token_file: /etc/exogate-admin/token", new: "token_file: /etc/exogate/admin-token", want: "volume \"config\" is not a Secret"},
	{dir: "central", check: "admin token comes from a Secret", file: "deployment.yaml",
		old: "              mountPath: /etc/exogate-admin\n", new: "              mountPath: /etc/exogate-adm\n", want: "no volume is mounted there"},
	{dir: "central", check: "admin token comes from a Secret", file: "deployment.yaml",
		old: "          secret:\n            secretName: exogate-admin-token\n            defaultMode: 0440\n", new: "          emptyDir: {}\n", want: "is not a Secret"},
	{dir: "central", check: "admin token comes from a Secret", file: "deployment.yaml",
		old: "            secretName: exogate-admin-token\n", new: "            secretName: exogate-admin-token\n            optional: true\n", want: "is optional"},
	{dir: "central", check: "admin token comes from a Secret", file: "deployment.yaml",
		old: "              mountPath: /etc/exogate-admin\n              readOnly: true", new: "              mountPath: /etc/exogate-admin\n              readOnly: false", want: "not mounted readOnly"},
	{dir: "sidecar", check: "admin token comes from a Secret", file: "deployment.yaml",
		old: "              mountPath: /etc/exogate-admin\n", new: "              mountPath: /etc/exogate-admin/token\n              subPath: token\n", want: "subPath"},
	{dir: "sidecar", check: "admin token comes from a Secret", file: "deployment.yaml",
		old: "          env:\n            - name: EXOTEL_BASE_URL", new: "          volumeMounts:\n            - {name: admin-token, mountPath: /etc/exogate-admin}\n          env:\n            - name: EXOTEL_BASE_URL", want: `container "app" mounts the admin token volume`},
	{dir: "central", check: "network policy admits only clients and monitoring", file: "networkpolicy.yaml",
		old: "    - Ingress", new: "    - Egress", want: "lacks Ingress"},
	// pdb
	{dir: "central", check: "pod disruption budget leaves room", file: "poddisruptionbudget.yaml",
		old: "minAvailable: 2", new: "minAvailable: 3", want: "minAvailable 3"},
	{dir: "central", check: "pod disruption budget leaves room", file: "poddisruptionbudget.yaml",
		old: "minAvailable: 2", new: `minAvailable: "50%"`, want: "want a whole number"},
	{dir: "central", check: "pod disruption budget leaves room", file: "poddisruptionbudget.yaml",
		old: "      app.kubernetes.io/instance: exogate-central", new: "      app.kubernetes.io/instance: exogate", want: "selector wants"},
	// shutdown
	{dir: "central", check: "grace period covers the shutdown", file: "deployment.yaml",
		old: "terminationGracePeriodSeconds: 40", new: "terminationGracePeriodSeconds: 30", want: "terminationGracePeriodSeconds 30"},
	{dir: "sidecar", check: "grace period covers the shutdown", file: "deployment.yaml",
		old: "      terminationGracePeriodSeconds: 40\n", new: "", want: "terminationGracePeriodSeconds 30"},
	{dir: "central", check: "grace period covers the shutdown", file: "configmap.yaml",
		old: "shutdown_delay: 5s", new: "shutdown_delay: 0s", want: "want at least 5s"},
	{dir: "central", check: "grace period covers the shutdown", file: "configmap.yaml",
		old: "shutdown_timeout: 25s", new: "shutdown_timeout: 40s", want: "kill exogate mid-drain"},
	// hardening
	{dir: "central", check: "exogate container is hardened", file: "deployment.yaml",
		old: "readOnlyRootFilesystem: true", new: "readOnlyRootFilesystem: false", want: "readOnlyRootFilesystem"},
	{dir: "central", check: "exogate container is hardened", file: "deployment.yaml",
		old: "allowPrivilegeEscalation: false", new: "allowPrivilegeEscalation: true", want: "allowPrivilegeEscalation"},
	{dir: "central", check: "exogate container is hardened", file: "deployment.yaml",
		old: `drop: ["ALL"]`, new: `drop: ["NET_RAW"]`, want: "does not contain ALL"},
	{dir: "central", check: "exogate container is hardened", file: "deployment.yaml",
		old: `drop: ["ALL"]`, new: `drop: ["ALL"]` + "\n              add: [\"NET_ADMIN\"]", want: "capabilities.add"},
	{dir: "central", check: "exogate container is hardened", file: "deployment.yaml",
		old: "runAsUser: 65532", new: "runAsUser: 0", want: "runAsUser"},
	{dir: "central", check: "exogate container is hardened", file: "deployment.yaml",
		old: "          securityContext:\n            runAsNonRoot: true", new: "          securityContext:\n            runAsNonRoot: false", want: "runAsNonRoot"},
	{dir: "central", check: "exogate container is hardened", file: "deployment.yaml",
		old: "          securityContext:\n            runAsNonRoot: true", new: "          securityContext:\n            privileged: true\n            runAsNonRoot: true", want: "privileged"},
	// resources
	{dir: "sidecar", check: "resources are set and small", file: "deployment.yaml",
		old: "memory: 32Mi", new: "memory: 96Mi", want: "want at most 64Mi"},
	{dir: "central", check: "resources are set and small", file: "deployment.yaml",
		old: "cpu: 50m", new: "cpu: \"2\"", want: "above its limit"},
	{dir: "central", check: "resources are set and small", file: "deployment.yaml",
		old: "value: 100MiB", new: "value: 200MiB", want: "GOMEMLIMIT 200MiB is not below"},
	{dir: "sidecar", check: "resources are set and small", file: "deployment.yaml",
		old: "            limits:\n              memory: 64Mi\n", new: "", want: `container "app": no resources.limits.memory`},
	// vault
	{dir: "central", check: "vault kubernetes auth has its token", file: "configmap.yaml",
		old: "method: kubernetes", new: "method: token", want: "want kubernetes"},
	{dir: "central", check: "vault kubernetes auth has its token", file: "deployment.yaml",
		old: "serviceAccountName: exogate", new: "serviceAccountName: gateway", want: `serviceAccountName "gateway"`},
	{dir: "central", check: "vault kubernetes auth has its token", file: "serviceaccount.yaml",
		old: "    app.kubernetes.io/instance: exogate-central\n", new: "    app.kubernetes.io/instance: exogate-central\nautomountServiceAccountToken: false\n", want: "automount false"},
	{dir: "sidecar", check: "vault kubernetes auth has its token", file: "deployment.yaml",
		old: "          env:\n            - name: EXOTEL_BASE_URL", new: "          volumeMounts:\n            - {name: vault-token, mountPath: /var/run/secrets/vault}\n          env:\n            - name: EXOTEL_BASE_URL", want: `container "app" mounts the Vault token`},
	{dir: "sidecar", check: "vault kubernetes auth has its token", file: "deployment.yaml",
		old: "      automountServiceAccountToken: false", new: "      automountServiceAccountToken: true", want: "automounted into every container"},
	{dir: "sidecar", check: "vault kubernetes auth has its token", file: "configmap.yaml",
		old: "/var/run/secrets/vault/token", new: "/var/run/secrets/vault/jwt", want: `no serviceAccountToken at path "jwt"`},
	{dir: "sidecar", check: "vault kubernetes auth has its token", file: "configmap.yaml",
		old: "source: vault\n", new: "source: file\n", all: true, want: "no account takes its credentials from Vault"},
	// limiter
	{dir: "central", check: "limiter backend fits the replicas", file: "configmap.yaml",
		old: "backend: redis", new: "backend: memory", want: "each replica would spend"},
	{dir: "central", check: "limiter backend fits the replicas", file: "deployment.yaml",
		old: "- name: REDIS_PASSWORD\n              valueFrom:\n                secretKeyRef:\n                  name: exogate-redis\n                  key: password",
		new: "- name: REDIS_PASSWORD\n              value: hunter2", want: "must come from a Secret"},
	{dir: "central", check: "limiter backend fits the replicas", file: "deployment.yaml",
		old: "                  key: password", new: "                  key: password\n                  optional: true", want: "is optional"},
	{dir: "central", check: "limiter backend fits the replicas", file: "configmap.yaml",
		old: "password_env: REDIS_PASSWORD", new: "password_env: REDIS_PASS", want: "REDIS_PASS is not set"},
	{dir: "central", check: "limiter backend fits the replicas", file: "deployment.yaml",
		old: "fieldPath: status.podIP", new: "fieldPath: status.hostIP", want: "admin.advertise_url"},
	{dir: "webhooks", check: "limiter backend fits the replicas", file: "statefulset.yaml",
		old: "value: http://$(POD_IP):9901", new: "value: http://$(POD_IP):9902", want: "admin.advertise_url"},
	{dir: "central", check: "limiter backend fits the replicas", file: "configmap.yaml",
		old: "replicas: 0 ", new: "replicas: 2 ", want: "limits.replicas 2 disagrees"},
	{dir: "sidecar", check: "limiter backend fits the replicas", file: "deployment.yaml",
		old: "replicas: 1", new: "replicas: 2", want: "2 replicas with limits.backend \"memory\""},
	// prometheus
	{dir: "central", check: "prometheus annotations point at the admin port", file: "deployment.yaml",
		old: `prometheus.io/port: "9901"`, new: `prometheus.io/port: "8080"`, want: "want the admin port 9901"},
	{dir: "sidecar", check: "prometheus annotations point at the admin port", file: "deployment.yaml",
		old: `prometheus.io/scrape: "true"`, new: `prometheus.io/scrape: "false"`, want: "prometheus.io/scrape"},
	{dir: "sidecar", check: "prometheus annotations point at the admin port", file: "deployment.yaml",
		old: "prometheus.io/path: /metrics", new: "prometheus.io/path: /status", want: "want /metrics"},
	// app
	{dir: "sidecar", check: "app calls exogate over loopback without credentials", file: "deployment.yaml",
		old: "value: http://127.0.0.1:8080", new: "value: http://127.0.0.1:8081", want: "EXOTEL_BASE_URL must be http://127.0.0.1:8080"},
	{dir: "sidecar", check: "app calls exogate over loopback without credentials", file: "deployment.yaml",
		old: "          env:\n            - name: EXOTEL_BASE_URL", new: "          env:\n            - name: EXOTEL_API_TOKEN\n              value: x\n            - name: EXOTEL_BASE_URL", want: "has EXOTEL_API_TOKEN"},
	{dir: "central", check: "app calls exogate over loopback without credentials", file: "deployment.yaml",
		old: "      volumes:\n", new: "        - name: extra\n          image: busybox\n      volumes:\n", want: "must run exogate alone"},
	// spread
	{dir: "central", check: "replicas are spread over nodes", file: "deployment.yaml",
		old: "topologyKey: kubernetes.io/hostname", new: "topologyKey: example.com/rack", all: true, want: "on kubernetes.io/hostname"},
	{dir: "central", check: "replicas are spread over nodes", file: "deployment.yaml",
		old: "          labelSelector:\n            matchLabels:\n              app.kubernetes.io/name: exogate\n", new: "          labelSelector:\n            matchLabels:\n              app.kubernetes.io/name: other\n", want: "topologySpreadConstraints[0].labelSelector"},
	{dir: "central", check: "replicas are spread over nodes", file: "deployment.yaml",
		old: "                labelSelector:\n                  matchLabels:\n                    app.kubernetes.io/name: exogate\n", new: "                labelSelector:\n                  matchLabels:\n                    app.kubernetes.io/name: other\n", want: "podAntiAffinity term 0"},
	// webhooks: the workload
	{dir: "webhooks", check: "kinds and API versions are the expected ones", file: "statefulset.yaml",
		old: "kind: StatefulSet", new: "kind: Deployment", want: `no StatefulSet "exogate"`},
	{dir: "webhooks", check: "workload selects its own pods", file: "statefulset.yaml",
		old: "serviceName: exogate-pods", new: "serviceName: exogate", want: "is not headless"},
	{dir: "webhooks", check: "workload selects its own pods", file: "statefulset.yaml",
		old: "serviceName: exogate-pods", new: "serviceName: exogate-headless", want: "is not a Service in this directory"},
	{dir: "webhooks", check: "workload selects its own pods", file: "service-pods.yaml",
		old: "    app.kubernetes.io/instance: exogate-webhooks\n  ports:", new: "    app.kubernetes.io/instance: exogate-central\n  ports:", want: "selector wants app.kubernetes.io/instance"},
	// webhooks: the store
	{dir: "webhooks", check: "webhook store is on the replica's own volume", file: "configmap.yaml",
		old: "      listen: 0.0.0.0:8443\n", new: "", want: "webhooks.listen is empty"},
	{dir: "webhooks", check: "webhook store is on the replica's own volume", file: "configmap.yaml",
		old: "path: /var/lib/exogate/webhooks.db", new: "path: /etc/exogate/webhooks.db", want: `is the ConfigMap "exogate"`},
	{dir: "webhooks", check: "webhook store is on the replica's own volume", file: "configmap.yaml",
		old: "      store:\n        path: /var/lib/exogate/webhooks.db\n", new: "", want: `is the ConfigMap "exogate"`},
	{dir: "webhooks", check: "webhook store is on the replica's own volume", file: "configmap.yaml",
		old: "path: /var/lib/exogate/webhooks.db", new: "path: /var/lib/webhooks.db", want: "no volume is mounted there"},
	{dir: "webhooks", check: "webhook store is on the replica's own volume", file: "statefulset.yaml",
		old: "              mountPath: /var/lib/exogate\n", new: "              mountPath: /var/lib/exogate\n              readOnly: true\n", want: "mounted readOnly"},
	{dir: "webhooks", check: "webhook store is on the replica's own volume", file: "statefulset.yaml",
		old: "      volumes:\n", new: "      volumes:\n        - name: hooks\n          emptyDir: {}\n", want: "is an emptyDir"},
	{dir: "webhooks", check: "webhook store is on the replica's own volume", file: "statefulset.yaml",
		old: "    - metadata:\n        name: hooks\n", new: "    - metadata:\n        name: data\n", want: `volume "hooks" is no volumeClaimTemplate of the StatefulSet`},
	{dir: "webhooks", check: "webhook store is on the replica's own volume", file: "statefulset.yaml",
		old: `accessModes: ["ReadWriteOnce"]`, new: `accessModes: ["ReadOnlyMany"]`, want: "want ReadWriteOnce"},
	{dir: "webhooks", check: "webhook store is on the replica's own volume", file: "statefulset.yaml",
		old: "            storage: 10Gi", new: "            cpu: 10m", want: "requests no storage"},
	{dir: "webhooks", check: "webhook store is on the replica's own volume", file: "statefulset.yaml",
		old: "        fsGroup: 65532\n        fsGroupChangePolicy: OnRootMismatch\n", new: "", want: "no fsGroup"},
	// webhooks: the secrets
	{dir: "webhooks", check: "webhook secrets come from Secrets", file: "statefulset.yaml",
		old: "- name: CALLS_WEBHOOK_SECRET\n              valueFrom:\n                secretKeyRef:\n                  name: exogate-webhooks\n                  key: calls-signing-secret",
		new: "- name: CALLS_WEBHOOK_SECRET\n              value: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", want: "CALLS_WEBHOOK_SECRET must come from a Secret"},
	{dir: "webhooks", check: "webhook secrets come from Secrets", file: "statefulset.yaml",
		old: "- name: CALLS_WEBHOOK_SECRET\n", new: "- name: CALLS_SECRET\n", want: "webhooks.routes[0].signing_secret_env CALLS_WEBHOOK_SECRET is not set"},
	{dir: "webhooks", check: "webhook secrets come from Secrets", file: "configmap.yaml",
		old: "url_secret_env: EXOGATE_WEBHOOK_URL_SECRET\n", new: "url_secret_env: HOOKS_URL_SECRET\n", want: "webhooks.url_secret_env HOOKS_URL_SECRET is not set"},
	{dir: "webhooks", check: "webhook secrets come from Secrets", file: "statefulset.yaml",
		old: "                  key: url-secret\n", new: "                  key: url-secret\n                  optional: true\n", want: "comes from an optional key"},
	{dir: "webhooks", check: "webhook secrets come from Secrets", file: "statefulset.yaml",
		old: "- name: EXOGATE_WEBHOOK_URL_SECRET_PREVIOUS\n              valueFrom:\n                secretKeyRef:\n                  name: exogate-webhooks\n                  key: url-secret-previous\n                  optional: true",
		new: "- name: EXOGATE_WEBHOOK_URL_SECRET_PREVIOUS\n              value: an-old-url-secret-kept-in-the-manifest", want: "EXOGATE_WEBHOOK_URL_SECRET_PREVIOUS must come from a Secret"},
	{dir: "webhooks", check: "webhook secrets come from Secrets", file: "configmap.yaml",
		old: "signing_secret_env: CALLS_WEBHOOK_SECRET ", new: "signing_secret_env: EXOGATE_LISTEN ", want: "EXOGATE_LISTEN must come from a Secret"},
	{dir: "webhooks", check: "embedded exogate.yaml parses and validates", file: "statefulset.yaml",
		old: "- name: CALLS_WEBHOOK_SECRET\n", new: "- name: CALLS_SECRET\n", want: "CALLS_WEBHOOK_SECRET is not set"},
	{dir: "webhooks", check: "embedded exogate.yaml parses and validates", file: "statefulset.yaml",
		old: "                  key: url-secret\n", new: "                  key: url-secret\n                  optional: true\n", want: "EXOGATE_WEBHOOK_URL_SECRET must hold a secret of at least 32 bytes"},
	{dir: "webhooks", check: "embedded exogate.yaml parses and validates", file: "configmap.yaml",
		old: "      allow_insecure_http: true\n", new: "", want: "webhooks.tls"},
	// webhooks: the listener
	{dir: "webhooks", check: "webhook listener is published to Exotel", file: "configmap.yaml",
		old: "      listen: 0.0.0.0:8443", new: "      listen: 127.0.0.1:8443", want: "is loopback"},
	{dir: "webhooks", check: "webhook listener is published to Exotel", file: "statefulset.yaml",
		old: "            - name: hooks\n              containerPort: 8443\n              protocol: TCP\n", new: "", want: "declares no containerPort 8443"},
	{dir: "webhooks", check: "webhook listener is published to Exotel", file: "service-hooks.yaml",
		old: "      targetPort: hooks", new: "      targetPort: admin", want: "no Service (other than a headless one) publishes the callback port 8443"},
	{dir: "webhooks", check: "webhook listener is published to Exotel", file: "service-hooks.yaml",
		old: "      protocol: TCP\n", new: "      protocol: TCP\n    - name: http\n      port: 8080\n      targetPort: http\n", want: "whatever exposes it to Exotel would expose those too"},
	{dir: "webhooks", check: "webhook listener is published to Exotel", file: "networkpolicy.yaml",
		old: "    - ports:\n        - protocol: TCP\n          port: 8443\n", new: "", want: "no NetworkPolicy ingress rule admits the callback port 8443"},
	{dir: "webhooks", check: "network policy admits only clients and monitoring", file: "networkpolicy.yaml",
		old: "          port: 8443\n", new: "          port: 8443\n        - protocol: TCP\n          port: 8080\n", want: "ingress[1] has no from, so it admits any source"},
	{dir: "webhooks", check: "service routes to the listener", file: "service.yaml",
		old: "targetPort: http", new: "targetPort: hooks", want: "no Service has a port that targets exogate's listener port 8080"},
}

// TestChecksCatchBreakage applies each breakage to a fresh copy of its
// directory and requires the named check to report it.
func TestChecksCatchBreakage(t *testing.T) {
	byDir := map[string]target{}
	for _, tg := range targets {
		byDir[strings.TrimPrefix(tg.dir, "kubernetes/")] = tg
	}
	byName := map[string]check{}
	for _, c := range checks {
		byName[c.name] = c
	}
	env, err := dockerfileEnv("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	covered := map[string]bool{}
	for _, br := range breakages {
		t.Run(br.dir+"/"+br.check+"/"+br.want, func(t *testing.T) {
			tg, ok := byDir[br.dir]
			c, ok2 := byName[br.check]
			if !ok || !ok2 {
				t.Fatalf("unknown dir %q or check %q", br.dir, br.check)
			}
			covered[br.check] = true
			if _, ok := env[br.imageEnv]; br.imageEnv != "" && !ok {
				t.Fatalf("the image no longer sets %s: update this breakage case", br.imageEnv)
			}
			files, err := readDir(tg.dir)
			if err != nil {
				t.Fatal(err)
			}
			src := string(files[br.file])
			if !strings.Contains(src, br.old) {
				t.Fatalf("%s/%s no longer contains %q: update this breakage", tg.dir, br.file, br.old)
			}
			n := 1
			if br.all {
				n = -1
			}
			files[br.file] = []byte(strings.Replace(src, br.old, br.new, n))
			var r report
			c.run(newBundle(tg, files, env), &r)
			for _, p := range r.problems {
				if strings.Contains(p, br.want) {
					return
				}
			}
			t.Errorf("check did not report %q; it reported %q", br.want, r.problems)
		})
	}
	for _, c := range checks {
		if !covered[c.name] {
			t.Errorf("check %q has no breakage proving it can fail", c.name)
		}
	}
}
