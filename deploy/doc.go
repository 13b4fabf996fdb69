// Package deploy holds exogate's deployment files: Kubernetes manifests under
// kubernetes/ and Prometheus alerting rules under prometheus/. It has no code;
// its test checks, offline, that the manifests agree with each other and with
// the configuration they embed, using exogate's own config package.
package deploy
