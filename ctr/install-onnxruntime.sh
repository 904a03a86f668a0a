#!/usr/bin/env bash
# install-onnxruntime.sh [DESTDIR]
#
# Installs libonnxruntime.so.1 (ONNX Runtime 1.24.3, linux x64, CPU provider
# built in) from the npm package onnxruntime-node@1.24.3 into DESTDIR
# (default ./lib/onnxruntime/) and prints the library's path on stdout.
#
# Idempotent: when DESTDIR already holds the library with the pinned digest,
# nothing is downloaded. The tarball's sha512 is checked both against the
# registry's published integrity and against the digest pinned below, so a
# changed registry answer cannot slip a different binary in.
#
# The CUDA execution provider is not in the npm tarball: onnxruntime-node's
# postinstall script fetches libonnxruntime_providers_{shared,cuda}.so from
# the NuGet package Microsoft.ML.OnnxRuntime.Gpu.Linux 1.24.3. To use CUDA,
# place those two files (same ORT version) beside libonnxruntime.so.1; the
# scorer then finds them (ORT loads providers from the core library's folder).
set -euo pipefail

ORT_VERSION=1.24.3
PKG="onnxruntime-node@${ORT_VERSION}"
# sha512 of onnxruntime-node-1.24.3.tgz, base64 (npm "integrity" form).
PINNED_SHA512="JH7+czbc8ALA819vlTgcV+Q214/+VjGeBHDjX81+ZCD0PCVCIFGFNtT0V4sXG/1JXypKPgScQcB3ij/hk3YnTg=="
# sha256 of package/bin/napi-v6/linux/x64/libonnxruntime.so.1 in that tarball.
PINNED_LIB_SHA256="92ba8e44d31b80a34f5e805076a044122c3be1fffe0d88ed790de7267b0b2682"
MEMBER="package/bin/napi-v6/linux/x64/libonnxruntime.so.1"

DEST="${1:-./lib/onnxruntime}"
LIB="${DEST%/}/libonnxruntime.so.1"

die() { echo "install-onnxruntime: $*" >&2; exit 1; }

case "$(uname -s)/$(uname -m)" in
Linux/x86_64) ;;
*) die "only linux x86_64 is supported (have $(uname -s)/$(uname -m))" ;;
esac

if [ -f "$LIB" ] && [ "$(sha256sum "$LIB" | cut -d' ' -f1)" = "$PINNED_LIB_SHA256" ]; then
	echo "$LIB"
	exit 0
fi

command -v npm >/dev/null || die "npm not found (apt-get install -y npm)"

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

published="$(cd "$TMP" && npm view "$PKG" dist.integrity 2>/dev/null)" || die "npm view $PKG failed"
[ "$published" = "sha512-${PINNED_SHA512}" ] ||
	die "registry integrity $published differs from pinned sha512-${PINNED_SHA512}"

(cd "$TMP" && npm pack --silent "$PKG" >/dev/null 2>&1) || die "npm pack $PKG failed"
TGZ="$TMP/onnxruntime-node-${ORT_VERSION}.tgz"
[ -f "$TGZ" ] || die "npm pack did not produce $TGZ"

got="$(openssl dgst -sha512 -binary "$TGZ" 2>/dev/null | base64 -w0)" ||
	got="$(python3 -c 'import base64,hashlib,sys; print(base64.b64encode(hashlib.sha512(open(sys.argv[1],"rb").read()).digest()).decode())' "$TGZ")"
[ "$got" = "$PINNED_SHA512" ] || die "tarball sha512 $got differs from pinned $PINNED_SHA512"

tar -xzf "$TGZ" -C "$TMP" "$MEMBER" || die "tarball has no $MEMBER"
libsum="$(sha256sum "$TMP/$MEMBER" | cut -d' ' -f1)"
[ "$libsum" = "$PINNED_LIB_SHA256" ] || die "library sha256 $libsum differs from pinned $PINNED_LIB_SHA256"

mkdir -p "$DEST"
install -m 0644 "$TMP/$MEMBER" "$LIB.tmp.$$"
mv -f "$LIB.tmp.$$" "$LIB"
echo "$LIB"
