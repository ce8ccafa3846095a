#!/usr/bin/env bash
# Install the library into a staging prefix, build the examples against it with
# find_package(hepbundle) (as a framework's CMake build would), and run them on a repository
# holding the golden signed bundle under its trust policy; then once more on a tampered copy,
# which must be refused. Usage: examples_test.sh BUILD_DIR SOURCE_DIR GOLDEN_DIR
set -euo pipefail
build=$1 src=$2 golden=$3
work=$(mktemp -d "${TMPDIR:-/tmp}/hepbundle-examples.XXXXXX")
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" > /dev/null
cmake -S "$src/examples" -B "$work/examples" -DCMAKE_PREFIX_PATH="$work/prefix" -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build "$work/examples" > /dev/null

# a repository laid out as bundle-spec/repository.md says: one version, alias prod
repo=$work/repo
mkdir -p "$repo/bundles/demo/jet-tagger-onnx" "$repo/catalog/demo"
cp -r "$golden/bundle" "$repo/bundles/demo/jet-tagger-onnx/1.0.0"
digest=$(sha256sum "$golden/bundle/hepbundle.json" | cut -d' ' -f1)
cat > "$repo/catalog/repository.json" <<JSON
{"mediaType": "application/vnd.hepbundle.repository.v1+json", "format": 1, "name": "examples", "serial": 1,
 "created": "2026-01-01T00:00:00Z", "updated": "2026-01-01T00:00:00Z"}
JSON
cat > "$repo/catalog/demo/jet-tagger-onnx.json" <<JSON
{"mediaType": "application/vnd.hepbundle.catalog.v1+json", "name": "demo/jet-tagger-onnx",
 "versions": {"1.0.0": {"manifestSha256": "$digest", "path": "bundles/demo/jet-tagger-onnx/1.0.0",
   "created": "2025-11-25T00:00:00Z", "published": "2026-01-01T00:00:00Z", "yanked": null}},
 "aliases": {"prod": "1.0.0"},
 "aliasHistory": [{"alias": "prod", "version": "1.0.0", "previous": null, "time": "2026-01-01T00:00:00Z"}]}
JSON
cat > "$work/policy.yaml" <<YAML
version: 1
rules:
  - namespace: demo
    signers:
      all_of:
        - {key: $golden/release.pub.pem, role: primary}
        - x509: {ca: $golden/ca.pem, subject: "/DC=ch/DC=cern/OU=Users/CN=golden/*"}
          role: author
YAML
export HEPBUNDLE_PATH=$repo HEPBUNDLE_POLICY=$work/policy.yaml HEPBUNDLE_CACHE_DIR=$work/cache
want=$repo/bundles/demo/jet-tagger-onnx/1.0.0/model/model.onnx
for ex in athena_style cmssw_style c_api; do
  got=$("$work/examples/$ex" demo/jet-tagger-onnx@prod model/model.onnx | tail -1)
  [ "$got" = "$want" ] || { echo "$ex printed '$got', expected '$want'" >&2; exit 1; }
  echo "$ex: ok ($got)"
done
# tampered payload: refused at initialize(), exit code 1, the message names the file
printf 'x' >> "$repo/bundles/demo/jet-tagger-onnx/1.0.0/model/model.onnx"
if out=$("$work/examples/athena_style" demo/jet-tagger-onnx@prod model/model.onnx 2>&1); then
  echo "a tampered bundle was accepted: $out" >&2
  exit 1
fi
grep -q "IntegrityError: demo/jet-tagger-onnx@1.0.0: modified model/model.onnx" <<< "$out" || { echo "unexpected: $out" >&2; exit 1; }
echo "tampered: refused ($out)"
