#!/usr/bin/env bash
# Runs the end-to-end suite against a real cluster made with kind, for machines with Docker.
#
#   bash e2e/kind.sh            # create the cluster "annexa-e2e", build and load the image,
#                               # install the chart, run the suite against the cluster
#   KEEP=1 bash e2e/kind.sh     # keep the cluster afterwards
#
# Needs: docker, kind, helm, kubectl on PATH. Nothing here runs on machines without Docker;
# there, `bash scripts/test.sh` runs the same suite against the stand-in API server.
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER=${CLUSTER:-annexa-e2e}
IMAGE=${IMAGE:-ghcr.io/annexa-dev/annexa:e2e}
NAMESPACE=${NAMESPACE:-annexa-system}
KUBECONFIG_FILE=${KUBECONFIG_FILE:-$(mktemp -t annexa-kind-kubeconfig.XXXXXX)}

for tool in docker kind helm kubectl; do
  command -v "$tool" >/dev/null || { echo "e2e/kind.sh: $tool is not on PATH" >&2; exit 2; }
done

cleanup() {
  if [ -z "${KEEP:-}" ]; then
    kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
    rm -f "$KUBECONFIG_FILE"
  else
    echo "cluster $CLUSTER kept; KUBECONFIG=$KUBECONFIG_FILE"
  fi
}
trap cleanup EXIT

kind get clusters | grep -qx "$CLUSTER" || kind create cluster --name "$CLUSTER" --wait 120s
kind get kubeconfig --name "$CLUSTER" > "$KUBECONFIG_FILE"
export KUBECONFIG="$KUBECONFIG_FILE"

docker build -t "$IMAGE" .
kind load docker-image "$IMAGE" --name "$CLUSTER"

helm upgrade --install annexa charts/annexa \
  --namespace "$NAMESPACE" --create-namespace \
  --set image.repository="${IMAGE%:*}" --set image.tag="${IMAGE##*:}" --set image.pullPolicy=IfNotPresent \
  --wait --timeout 180s
kubectl -n "$NAMESPACE" rollout status deployment -l app.kubernetes.io/name=annexa --timeout=180s

ANNEXA_E2E_KUBECONFIG="$KUBECONFIG_FILE" cargo test -p annexa-e2e -- --test-threads=2
