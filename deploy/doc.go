// Package deploy holds the tests of mailgate's deployment files: the
// container image (Dockerfile, .dockerignore, scripts/build-static.sh), the
// compose file (compose.yaml and compose/) and the Kubernetes manifests
// (k8s/), and cmd/promrule, which writes k8s/base/prometheusrule.yaml from
// prometheus/alerts.yml. It is a module of its own so that the Kubernetes,
// kustomize and Dockerfile parser modules its tests need stay out of
// mailgate's go.mod; scripts/test.sh and scripts/lint.sh run it.
package deploy
