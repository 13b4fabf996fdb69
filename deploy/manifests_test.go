package deploy

// Loading a directory of manifests, and the small part of the Kubernetes API
// the checks read. The types are partial on purpose: a field the checks need
// and that is misspelt in a manifest reads as missing, which the check
// reports.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/exogate/exogate/internal/config"
)

// A bundle is one directory of manifests, parsed, with the pieces most checks
// need found once.
type bundle struct {
	target
	files    map[string][]byte // file name -> contents
	objects  []object
	loadErrs []string

	imageEnv map[string]string // ENV of the image's final stage (../Dockerfile)

	wl     *workload  // the target.kind named target.workload
	exo    *container // target.container in it
	cfg    *exoConfig // the file exo's -config names, with exo's environment applied
	cfgErr error      // why cfg is nil
}

// An object is one YAML document of one file.
type object struct {
	file string
	doc  int // 1-based index within the file
	header
	node *yaml.Node
}

func (o object) String() string {
	return fmt.Sprintf("%s (document %d, %s %q)", o.file, o.doc, o.Kind, o.Metadata.Name)
}

func decode[T any](o object) (T, error) {
	var v T
	err := o.node.Decode(&v)
	if err != nil {
		err = fmt.Errorf("%s: %w", o, err)
	}
	return v, err
}

// readDir reads every file of dir.
func readDir(dir string) (map[string][]byte, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		files[e.Name()] = data
	}
	return files, nil
}

func isManifest(name string) bool {
	return (strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml")) && name != "kustomization.yaml"
}

// newBundle parses files. Problems are kept in loadErrs (reported by the
// first check) and in cfgErr, so that every check still runs.
func newBundle(tg target, files map[string][]byte, imageEnv map[string]string) *bundle {
	b := &bundle{target: tg, files: files, imageEnv: imageEnv}
	for _, name := range sortedKeys(files) {
		if !isManifest(name) {
			continue
		}
		dec := yaml.NewDecoder(bytes.NewReader(files[name]))
		for doc := 1; ; doc++ {
			var n yaml.Node
			err := dec.Decode(&n)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				b.loadErrs = append(b.loadErrs, fmt.Sprintf("%s: document %d is not YAML: %v", name, doc, err))
				break
			}
			if len(n.Content) == 0 || n.Content[0].Tag == "!!null" {
				continue // an empty document, e.g. after a trailing ---
			}
			o := object{file: name, doc: doc, node: &n}
			if err := n.Decode(&o.header); err != nil {
				b.loadErrs = append(b.loadErrs, fmt.Sprintf("%s: document %d: %v", name, doc, err))
				continue
			}
			b.objects = append(b.objects, o)
		}
	}

	for _, o := range b.of(tg.kind) {
		if o.Metadata.Name != tg.workload {
			continue
		}
		w, err := decode[workload](o)
		if err != nil {
			b.loadErrs = append(b.loadErrs, err.Error())
			break
		}
		b.wl = &w
		b.exo = w.Spec.Template.Spec.container(tg.container)
	}
	switch {
	case b.wl == nil:
		b.cfgErr = fmt.Errorf("no %s %q", tg.kind, tg.workload)
	case b.exo == nil:
		b.cfgErr = fmt.Errorf("%s %q has no container %q", tg.kind, tg.workload, tg.container)
	default:
		b.cfg, b.cfgErr = b.resolveConfig()
	}
	return b
}

// of returns the objects of one kind.
func (b *bundle) of(kind string) []object {
	var out []object
	for _, o := range b.objects {
		if o.Kind == kind {
			out = append(out, o)
		}
	}
	return out
}

func (b *bundle) named(kind, name string) (object, bool) {
	for _, o := range b.of(kind) {
		if o.Metadata.Name == name {
			return o, true
		}
	}
	return object{}, false
}

func (b *bundle) pod() *podSpec            { return &b.wl.Spec.Template.Spec }
func (b *bundle) podLabels() labels        { return b.wl.Spec.Template.Metadata.Labels }
func (b *bundle) replicas() int            { return b.wl.Spec.replicas() }
func (b *bundle) listenPort() (int, error) { return portOf(b.cfg.cfg.Listen) }
func (b *bundle) adminPort() (int, error)  { return portOf(b.cfg.adminListen) }

// hooksPort is the callback listener's port; ok is false when
// webhooks.listen is off or not host:port.
func (b *bundle) hooksPort() (port int, ok bool) {
	if !b.cfg.cfg.Webhooks.Enabled() {
		return 0, false
	}
	p, err := portOf(b.cfg.cfg.Webhooks.Listen)
	return p, err == nil
}

// getenv is the environment exogate's container starts with: its own env
// list over the image's ENV. Variables set from a Secret or the downward API
// read as empty (their values are not in the manifests).
func (b *bundle) getenv(c *container) func(string) string {
	return func(name string) string {
		v, _ := b.envFrom(c, name)
		return v
	}
}

// secretGetenv is getenv, except that a variable set from a required
// Secret key reads as a stand-in as long as a real secret: what exogate
// finds at run time once the Secret exists. An optional key reads as
// empty, as when it is absent.
func (b *bundle) secretGetenv(c *container) func(string) string {
	return func(name string) string {
		if e := c.env(name); e != nil && e.secretRef() != nil {
			ref := e.secretRef()
			if ref.Optional != nil && *ref.Optional {
				return ""
			}
			return ref.Name + "/" + ref.Key + "/" + strings.Repeat("x", 48)
		}
		v, _ := b.envFrom(c, name)
		return v
	}
}

// envFrom returns a variable's value in the container and where it is set:
// "the container", "the image" or "".
func (b *bundle) envFrom(c *container, name string) (value, from string) {
	if e := c.env(name); e != nil {
		return c.expand(e.Value), "the container"
	}
	if v, ok := b.imageEnv[name]; ok {
		return v, "the image"
	}
	return "", ""
}

// resolveConfig follows exo's -config flag to a ConfigMap key through the
// container's volume mounts, and parses that file.
func (b *bundle) resolveConfig() (*exoConfig, error) {
	file, ok := flagValue(append(append([]string{}, b.exo.Command...), b.exo.Args...), "config")
	if !ok {
		return nil, errors.New("exogate's container has no -config argument")
	}
	m, rel := b.exo.mountFor(file)
	if m == nil {
		return nil, fmt.Errorf("-config %s: no volume is mounted there", file)
	}
	vol := b.pod().volume(m.Name)
	if vol == nil || vol.ConfigMap == nil {
		return nil, fmt.Errorf("-config %s: volume %q is not a ConfigMap", file, m.Name)
	}
	key := rel
	if len(vol.ConfigMap.Items) > 0 {
		key = ""
		for _, it := range vol.ConfigMap.Items {
			if it.Path == rel {
				key = it.Key
			}
		}
	}
	o, ok := b.named("ConfigMap", vol.ConfigMap.Name)
	if !ok {
		return nil, fmt.Errorf("-config %s: ConfigMap %q is not in this directory", file, vol.ConfigMap.Name)
	}
	cm, err := decode[configMap](o)
	if err != nil {
		return nil, err
	}
	data, ok := cm.Data[key]
	if !ok || key == "" {
		return nil, fmt.Errorf("-config %s: ConfigMap %q has no key %q (has %s)", file, cm.Metadata.Name, key, strings.Join(sortedKeys(cm.Data), ", "))
	}
	ec, err := parseConfig([]byte(data))
	if err != nil {
		return nil, fmt.Errorf("ConfigMap %q key %q: %w", cm.Metadata.Name, key, err)
	}
	ec.source = fmt.Sprintf("ConfigMap %q key %q", cm.Metadata.Name, key)
	ec.cfg.ApplyEnv(b.getenv(b.exo))
	// As config.Load does: the store's default is beside the file.
	ec.cfg.Webhooks.Store.Path = ec.cfg.Webhooks.StorePath(path.Dir(file))
	ec.adminListen = ec.cfg.Admin.Listen
	return ec, nil
}

// flagValue returns the value of a Go-style flag (-name v, --name v, -name=v).
func flagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		for _, p := range []string{"-" + name, "--" + name} {
			if a == p && i+1 < len(args) {
				return args[i+1], true
			}
			if v, ok := strings.CutPrefix(a, p+"="); ok {
				return v, true
			}
		}
	}
	return "", false
}

// exoConfig is an exogate configuration file embedded in a ConfigMap.
type exoConfig struct {
	cfg         config.Config // parsed over the defaults; not validated
	fileListen  string        // listen as the file says, before the environment
	fileAdmin   string        // admin.listen as the file says, before the environment
	adminListen string        // admin.listen after the environment; "" = off
	source      string
}

// parseConfig parses an exogate.yaml with exogate's own config package.
func parseConfig(data []byte) (*exoConfig, error) {
	cfg, err := config.Parse(data)
	if err != nil {
		return nil, err
	}
	return &exoConfig{cfg: cfg, fileListen: cfg.Listen, fileAdmin: cfg.Admin.Listen, adminListen: cfg.Admin.Listen}, nil
}

// dockerfileEnv returns the ENV settings of a Dockerfile's last stage (the
// simple KEY=VALUE and KEY VALUE forms). A missing file gives none.
func dockerfileEnv(file string) (map[string]string, error) {
	data, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, err
	}
	env := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "FROM":
			env = map[string]string{}
		case "ENV":
			if len(f) == 3 && !strings.Contains(f[1], "=") {
				env[f[1]] = strings.Trim(f[2], `"`)
				continue
			}
			for _, kv := range f[1:] {
				if k, v, ok := strings.Cut(kv, "="); ok {
					env[k] = strings.Trim(v, `"`)
				}
			}
		}
	}
	return env, sc.Err()
}

// --- the Kubernetes API, the parts the checks read ---

type header struct {
	APIVersion string     `yaml:"apiVersion"`
	Kind       string     `yaml:"kind"`
	Metadata   objectMeta `yaml:"metadata"`
}

type objectMeta struct {
	Name        string            `yaml:"name"`
	Labels      labels            `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

type labels map[string]string

// intOrString is a field that takes a number or a name (ports, minAvailable).
type intOrString string

func (v *intOrString) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a number or a string", n.Line)
	}
	*v = intOrString(n.Value)
	return nil
}

func (v intOrString) int() (int, bool) {
	i, err := strconv.Atoi(string(v))
	return i, err == nil
}

type labelSelector struct {
	MatchLabels      labels `yaml:"matchLabels"`
	MatchExpressions []any  `yaml:"matchExpressions"`
}

// selects reports whether the selector is non-empty and selects pods with
// these labels. matchExpressions are not evaluated: a selector with them
// does not count as matching.
func (s labelSelector) selects(l labels) error {
	switch {
	case len(s.MatchExpressions) > 0:
		return errors.New("uses matchExpressions, which this test does not evaluate")
	case len(s.MatchLabels) == 0:
		return errors.New("is empty (it would select every pod)")
	}
	return subset(s.MatchLabels, l)
}

// subset reports whether every label of sel is in l with the same value.
func subset(sel, l labels) error {
	if len(sel) == 0 {
		return errors.New("is empty")
	}
	for _, k := range sortedKeys(sel) {
		if l[k] != sel[k] {
			return fmt.Errorf("wants %s=%q, the pods have %q", k, sel[k], l[k])
		}
	}
	return nil
}

type kustomization struct {
	APIVersion string   `yaml:"apiVersion"`
	Kind       string   `yaml:"kind"`
	Resources  []string `yaml:"resources"`
	Images     []struct {
		Name    string `yaml:"name"`
		NewName string `yaml:"newName"`
		NewTag  string `yaml:"newTag"`
		Digest  string `yaml:"digest"`
	} `yaml:"images"`
}

type serviceAccount struct {
	header                       `yaml:",inline"`
	AutomountServiceAccountToken *bool `yaml:"automountServiceAccountToken"`
}

type configMap struct {
	header `yaml:",inline"`
	Data   map[string]string `yaml:"data"`
}

// A workload is a Deployment or a StatefulSet: the fields both have, and
// the StatefulSet's own (empty in a Deployment).
type workload struct {
	header `yaml:",inline"`
	Spec   workloadSpec `yaml:"spec"`
}

type workloadSpec struct {
	Replicas *int          `yaml:"replicas"`
	Selector labelSelector `yaml:"selector"`
	Template struct {
		Metadata objectMeta `yaml:"metadata"`
		Spec     podSpec    `yaml:"spec"`
	} `yaml:"template"`

	ServiceName          string                `yaml:"serviceName"`          // StatefulSet
	VolumeClaimTemplates []volumeClaimTemplate `yaml:"volumeClaimTemplates"` // StatefulSet
}

type volumeClaimTemplate struct {
	Metadata objectMeta `yaml:"metadata"`
	Spec     struct {
		AccessModes []string  `yaml:"accessModes"`
		Resources   resources `yaml:"resources"`
	} `yaml:"spec"`
}

type podSpec struct {
	ServiceAccountName            string             `yaml:"serviceAccountName"`
	AutomountServiceAccountToken  *bool              `yaml:"automountServiceAccountToken"`
	TerminationGracePeriodSeconds *int               `yaml:"terminationGracePeriodSeconds"`
	SecurityContext               *securityContext   `yaml:"securityContext"`
	InitContainers                []container        `yaml:"initContainers"`
	Containers                    []container        `yaml:"containers"`
	Volumes                       []volume           `yaml:"volumes"`
	TopologySpreadConstraints     []spreadConstraint `yaml:"topologySpreadConstraints"`
	Affinity                      *struct {
		PodAntiAffinity *struct {
			Required  []affinityTerm `yaml:"requiredDuringSchedulingIgnoredDuringExecution"`
			Preferred []struct {
				Weight int          `yaml:"weight"`
				Term   affinityTerm `yaml:"podAffinityTerm"`
			} `yaml:"preferredDuringSchedulingIgnoredDuringExecution"`
		} `yaml:"podAntiAffinity"`
	} `yaml:"affinity"`
}

type spreadConstraint struct {
	MaxSkew           int           `yaml:"maxSkew"`
	TopologyKey       string        `yaml:"topologyKey"`
	WhenUnsatisfiable string        `yaml:"whenUnsatisfiable"`
	LabelSelector     labelSelector `yaml:"labelSelector"`
}

type affinityTerm struct {
	TopologyKey   string        `yaml:"topologyKey"`
	LabelSelector labelSelector `yaml:"labelSelector"`
}

type container struct {
	Name            string           `yaml:"name"`
	Image           string           `yaml:"image"`
	Command         []string         `yaml:"command"`
	Args            []string         `yaml:"args"`
	Env             []envVar         `yaml:"env"`
	Ports           []containerPort  `yaml:"ports"`
	ReadinessProbe  *probe           `yaml:"readinessProbe"`
	LivenessProbe   *probe           `yaml:"livenessProbe"`
	StartupProbe    *probe           `yaml:"startupProbe"`
	Resources       resources        `yaml:"resources"`
	SecurityContext *securityContext `yaml:"securityContext"`
	VolumeMounts    []volumeMount    `yaml:"volumeMounts"`
}

type envVar struct {
	Name      string `yaml:"name"`
	Value     string `yaml:"value"`
	ValueFrom *struct {
		SecretKeyRef *secretKeyRef `yaml:"secretKeyRef"`
		FieldRef     *struct {
			FieldPath string `yaml:"fieldPath"`
		} `yaml:"fieldRef"`
	} `yaml:"valueFrom"`
}

type secretKeyRef struct {
	Name     string `yaml:"name"`
	Key      string `yaml:"key"`
	Optional *bool  `yaml:"optional"`
}

type containerPort struct {
	Name          string `yaml:"name"`
	ContainerPort int    `yaml:"containerPort"`
	Protocol      string `yaml:"protocol"`
}

type probe struct {
	HTTPGet *struct {
		Path   string      `yaml:"path"`
		Port   intOrString `yaml:"port"`
		Scheme string      `yaml:"scheme"`
	} `yaml:"httpGet"`
	TCPSocket *struct {
		Port intOrString `yaml:"port"`
	} `yaml:"tcpSocket"`
	GRPC *struct {
		Port int `yaml:"port"`
	} `yaml:"grpc"`
	Exec *struct {
		Command []string `yaml:"command"`
	} `yaml:"exec"`
}

type resources struct {
	Requests map[string]string `yaml:"requests"`
	Limits   map[string]string `yaml:"limits"`
}

type securityContext struct {
	RunAsNonRoot             *bool  `yaml:"runAsNonRoot"`
	RunAsUser                *int64 `yaml:"runAsUser"`
	RunAsGroup               *int64 `yaml:"runAsGroup"`
	ReadOnlyRootFilesystem   *bool  `yaml:"readOnlyRootFilesystem"`
	AllowPrivilegeEscalation *bool  `yaml:"allowPrivilegeEscalation"`
	Privileged               *bool  `yaml:"privileged"`
	FSGroup                  *int64 `yaml:"fsGroup"` // pod only
	Capabilities             *struct {
		Add  []string `yaml:"add"`
		Drop []string `yaml:"drop"`
	} `yaml:"capabilities"`
}

type volumeMount struct {
	Name      string `yaml:"name"`
	MountPath string `yaml:"mountPath"`
	SubPath   string `yaml:"subPath"`
	ReadOnly  bool   `yaml:"readOnly"`
}

type volume struct {
	Name     string    `yaml:"name"`
	EmptyDir *struct{} `yaml:"emptyDir"`
	Secret   *struct {
		SecretName string `yaml:"secretName"`
		Optional   *bool  `yaml:"optional"`
	} `yaml:"secret"`
	ConfigMap *struct {
		Name  string `yaml:"name"`
		Items []struct {
			Key  string `yaml:"key"`
			Path string `yaml:"path"`
		} `yaml:"items"`
	} `yaml:"configMap"`
	Projected *struct {
		Sources []struct {
			ServiceAccountToken *struct {
				Path              string `yaml:"path"`
				Audience          string `yaml:"audience"`
				ExpirationSeconds int    `yaml:"expirationSeconds"`
			} `yaml:"serviceAccountToken"`
		} `yaml:"sources"`
	} `yaml:"projected"`
}

type service struct {
	header `yaml:",inline"`
	Spec   struct {
		Selector  labels `yaml:"selector"`
		ClusterIP string `yaml:"clusterIP"`
		Ports     []struct {
			Name       string      `yaml:"name"`
			Port       int         `yaml:"port"`
			TargetPort intOrString `yaml:"targetPort"`
		} `yaml:"ports"`
	} `yaml:"spec"`
}

type networkPolicy struct {
	header `yaml:",inline"`
	Spec   struct {
		PodSelector labelSelector `yaml:"podSelector"`
		PolicyTypes []string      `yaml:"policyTypes"`
		Ingress     []struct {
			From  []peer `yaml:"from"`
			Ports []struct {
				Protocol string       `yaml:"protocol"`
				Port     *intOrString `yaml:"port"`
			} `yaml:"ports"`
		} `yaml:"ingress"`
	} `yaml:"spec"`
}

type peer struct {
	PodSelector       *labelSelector `yaml:"podSelector"`
	NamespaceSelector *labelSelector `yaml:"namespaceSelector"`
	IPBlock           *struct {
		CIDR string `yaml:"cidr"`
	} `yaml:"ipBlock"`
}

type podDisruptionBudget struct {
	header `yaml:",inline"`
	Spec   struct {
		MinAvailable   *intOrString  `yaml:"minAvailable"`
		MaxUnavailable *intOrString  `yaml:"maxUnavailable"`
		Selector       labelSelector `yaml:"selector"`
	} `yaml:"spec"`
}

// --- helpers on the types ---

func (s podSpec) container(name string) *container {
	for i := range s.Containers {
		if s.Containers[i].Name == name {
			return &s.Containers[i]
		}
	}
	return nil
}

func (s podSpec) volume(name string) *volume {
	for i := range s.Volumes {
		if s.Volumes[i].Name == name {
			return &s.Volumes[i]
		}
	}
	return nil
}

func (s podSpec) allContainers() []container {
	return append(append([]container{}, s.InitContainers...), s.Containers...)
}

func (spec workloadSpec) replicas() int {
	if spec.Replicas == nil {
		return 1 // Kubernetes' default
	}
	return *spec.Replicas
}

// port finds a declared container port by name or number.
func (c *container) port(ref intOrString) (containerPort, bool) {
	n, isNum := ref.int()
	for _, p := range c.Ports {
		if (isNum && p.ContainerPort == n) || (!isNum && p.Name == string(ref)) {
			return p, true
		}
	}
	return containerPort{}, false
}

// secretRef is where the variable's value comes from, when a Secret.
func (e *envVar) secretRef() *secretKeyRef {
	if e.ValueFrom == nil {
		return nil
	}
	return e.ValueFrom.SecretKeyRef
}

func (c *container) env(name string) *envVar {
	for i := range c.Env {
		if c.Env[i].Name == name {
			return &c.Env[i]
		}
	}
	return nil
}

// podIPStandIn is what a variable set from the pod's IP (the downward
// API's status.podIP) reads as in $(VAR) references.
const podIPStandIn = "10.1.2.3"

// expand replaces $(VAR) references to the container's variables as the
// kubelet does: a variable from status.podIP reads as podIPStandIn, one
// from a Secret or another field as empty.
func (c *container) expand(v string) string {
	for _, e := range c.Env {
		val := e.Value
		if e.ValueFrom != nil {
			val = ""
			if e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "status.podIP" {
				val = podIPStandIn
			}
		}
		v = strings.ReplaceAll(v, "$("+e.Name+")", val)
	}
	return v
}

// mountFor returns the mount that holds file and file's path inside it.
func (c *container) mountFor(file string) (*volumeMount, string) {
	for i := range c.VolumeMounts {
		m := &c.VolumeMounts[i]
		if m.SubPath != "" && m.MountPath == file {
			return m, m.SubPath
		}
		if m.SubPath == "" {
			if rel, ok := strings.CutPrefix(file, strings.TrimSuffix(m.MountPath, "/")+"/"); ok {
				return m, rel
			}
		}
	}
	return nil, ""
}

// effective returns the container's security context merged over the pod's
// (the fields both can set; the container's win).
func effective(pod, c *securityContext) securityContext {
	var out securityContext
	if pod != nil {
		out.RunAsNonRoot, out.RunAsUser, out.RunAsGroup = pod.RunAsNonRoot, pod.RunAsUser, pod.RunAsGroup
	}
	if c != nil {
		if c.RunAsNonRoot != nil {
			out.RunAsNonRoot = c.RunAsNonRoot
		}
		if c.RunAsUser != nil {
			out.RunAsUser = c.RunAsUser
		}
		if c.RunAsGroup != nil {
			out.RunAsGroup = c.RunAsGroup
		}
		out.ReadOnlyRootFilesystem, out.AllowPrivilegeEscalation = c.ReadOnlyRootFilesystem, c.AllowPrivilegeEscalation
		out.Privileged, out.Capabilities = c.Privileged, c.Capabilities
	}
	return out
}

// portOf returns the port of a host:port address.
func portOf(addr string) (int, error) {
	_, p, err := splitHostPort(addr)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(p)
}

func splitHostPort(addr string) (host, port string, err error) {
	i := strings.LastIndex(addr, ":")
	if i < 0 {
		return "", "", fmt.Errorf("%q is not host:port", addr)
	}
	return strings.Trim(addr[:i], "[]"), addr[i+1:], nil
}

func isLoopback(host string) bool {
	return host == "localhost" || host == "::1" || strings.HasPrefix(host, "127.")
}

// quantity parses a Kubernetes resource quantity: 10m, 0.5, 2, 32Mi, 1G.
func quantity(s string) (float64, error) {
	units := []struct {
		suffix string
		mult   float64
	}{{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40},
		{"k", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}, {"m", 1e-3}}
	mult := 1.0
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%q is not a quantity", s)
	}
	return v * mult, nil
}

// goMemLimit parses GOMEMLIMIT: bytes, or a number with B, KiB, MiB, GiB, TiB.
func goMemLimit(s string) (float64, error) {
	mult := 1.0
	for _, u := range []struct {
		suffix string
		mult   float64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"B", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%q is not a GOMEMLIMIT value", s)
	}
	return v * mult, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// underDir reports whether file lies in dir.
func underDir(file, dir string) bool {
	return strings.HasPrefix(path.Clean(file), strings.TrimSuffix(path.Clean(dir), "/")+"/")
}
