#!/usr/bin/env bash
# Builds mediasoup's C++ media worker offline, from the npm package's own sources, against
# Debian 12's system libraries, and installs it where mediasoup looks for it
# (node_modules/mediasoup/worker/out/Release/mediasoup-worker).
#
# Why: mediasoup's own postinstall downloads a prebuilt binary or pip-installs meson, and neither
# works on a machine that reaches only the npm registry and Debian (see DESIGN.md). Debian's
# libsrtp2 does its crypto through NSS, which halves what a worker forwards, so libsrtp 2.5.0 is
# built from Debian's source package with its OpenSSL backend and linked in statically.
#
# The worker and libsrtp are cached outside the repository (HAVEN_CACHE_DIR, default
# ~/.cache/haven), keyed by the mediasoup version, the system libraries' versions and this
# script's contents, so a second set-up costs seconds. Needs: meson ninja-build pkg-config g++
# libuv1-dev libssl-dev libusrsctp-dev libabsl-dev nlohmann-json3-dev dpkg-dev, and a deb-src
# entry for the libsrtp2 source (scripts/setup-system.sh provides all of it).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
mediasoup_dir="$root/node_modules/mediasoup"
target="$mediasoup_dir/worker/out/Release/mediasoup-worker"
cache_root="${HAVEN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/haven}"
libsrtp_version=2.5.0

log() { echo "[build-worker] $*"; }
die() { echo "[build-worker] error: $*" >&2; exit 1; }

[ -f "$mediasoup_dir/package.json" ] || die "mediasoup is not installed in node_modules; run 'npm ci' first"
mediasoup_version=$(node -p "require('$mediasoup_dir/package.json').version")
[ "$mediasoup_version" = "3.12.16" ] || die "expected mediasoup 3.12.16, found $mediasoup_version (see DESIGN.md)"

system_libs="libuv1-dev libssl-dev libusrsctp-dev libabsl-dev nlohmann-json3-dev"
lib_versions=$(dpkg-query -W -f='${Package}=${Version} ' $system_libs 2>/dev/null) ||
  die "missing system packages; as root run: apt-get install -y meson ninja-build pkg-config g++ $system_libs dpkg-dev"
key=$(printf '%s|%s|libsrtp-%s-openssl|%s' "$mediasoup_version" "$lib_versions" "$libsrtp_version" \
  "$(sha256sum "$0" | cut -c1-64)" | sha256sum | cut -c1-16)
cached="$cache_root/mediasoup-worker/$mediasoup_version-$key/mediasoup-worker"

install_worker() {
  mkdir -p "$(dirname "$target")"
  cp "$cached" "$target.tmp" && mv "$target.tmp" "$target"
  log "worker installed: $target (cache key $mediasoup_version-$key)"
}

if [ -x "$cached" ]; then
  cmp -s "$cached" "$target" 2>/dev/null && { log "worker up to date"; exit 0; }
  install_worker
  exit 0
fi

for tool in meson ninja pkg-config g++ dpkg-source; do
  command -v "$tool" >/dev/null || die "'$tool' not found; as root run: apt-get install -y meson ninja-build pkg-config g++ dpkg-dev"
done

work=$(mktemp -d /tmp/haven-worker-build.XXXXXX)
trap 'rm -rf "$work"' EXIT
started=$(date +%s)

# --- libsrtp 2.5.0 with the OpenSSL backend, as a static library -----------------------------
srtp_prefix="$cache_root/libsrtp-$libsrtp_version-openssl"
if [ ! -f "$srtp_prefix/lib/libsrtp2.a" ]; then
  log "fetching Debian's libsrtp2 source package"
  (cd "$work" && apt-get source -q libsrtp2 >"$work/apt-source.log" 2>&1) || {
    cat "$work/apt-source.log" >&2
    die "could not fetch the libsrtp2 source package; as root run scripts/setup-system.sh (it adds a deb-src entry and runs apt-get update)"
  }
  srtp_src=$(find "$work" -maxdepth 1 -type d -name "libsrtp2-$libsrtp_version*" | head -n 1)
  [ -n "$srtp_src" ] || die "the libsrtp2 source package is not version $libsrtp_version"
  log "building libsrtp $libsrtp_version with OpenSSL (static)"
  (
    cd "$srtp_src"
    CFLAGS="-O2 -fPIC" ./configure --enable-openssl --disable-nss --prefix="$srtp_prefix.tmp" >"$work/srtp-configure.log" 2>&1
    make -j"$(nproc)" libsrtp2.a >"$work/srtp-make.log" 2>&1
    make install >>"$work/srtp-make.log" 2>&1
  ) || { tail -n 30 "$work"/srtp-*.log >&2; die "libsrtp build failed"; }
  rm -f "$srtp_prefix.tmp"/lib/*.so*
  rm -rf "$srtp_prefix" && mv "$srtp_prefix.tmp" "$srtp_prefix"
fi

# --- the worker ------------------------------------------------------------------------------
log "building mediasoup-worker $mediasoup_version (about 4 minutes on 2 cores)"
src="$work/worker"
cp -r "$mediasoup_dir/worker" "$src"
rm -rf "$src/out"
# Debian 12 ships meson 1.0.1; the worker builds with it.
sed -i "s/meson_version: '>= 1.1.0'/meson_version: '>= 1.0.0'/" "$src/meson.build"

# Each wrap's folder, when it exists, is used instead of a download: wrap the system library
# and define the variables the worker's meson.build reads. The *_lib variables go to link_whole,
# so they are empty static libraries; the real library comes in through the dependency.
subproject() { # folder, meson.build body, meson_options.txt body
  local dir="$src/subprojects/$1"
  mkdir -p "$dir"
  : >"$dir/empty.c"
  printf '%s\n' "$2" >"$dir/meson.build"
  printf '%s\n' "$3" >"$dir/meson_options.txt"
}
empty_lib="static_library('haven_empty_' + meson.project_name().underscorify(), 'empty.c')"

subproject openssl-3.0.8 "project('openssl', 'c')
openssl_dep = dependency('openssl')
libcrypto_dep = dependency('libcrypto')
libssl_dep = dependency('libssl')
libcrypto_lib = $empty_lib
libssl_lib = libcrypto_lib" ""

subproject nlohmann_json-3.10.5 "project('nlohmann_json', 'cpp')
nlohmann_json_dep = dependency('nlohmann_json')" ""

subproject libuv-v1.44.2 "project('libuv', 'c')
libuv_dep = dependency('libuv')
libuv = $empty_lib" "option('build_tests', type : 'boolean', value : false)
option('build_benchmarks', type : 'boolean', value : false)"

subproject libsrtp-2.5.0 "project('libsrtp2', 'c')
cc = meson.get_compiler('c')
libsrtp2_dep = declare_dependency(
  compile_args : ['-I$srtp_prefix/include/srtp2'],
  dependencies : [cc.find_library('srtp2', dirs : ['$srtp_prefix/lib'], static : true), dependency('libcrypto')],
)
libsrtp2 = $empty_lib" "option('crypto-library', type : 'string', value : 'openssl')
option('crypto-library-kdf', type : 'feature', value : 'disabled')
option('tests', type : 'feature', value : 'disabled')"

subproject usrsctp-4e06feb01cadcd127d119486b98a4bd3d64aa1e7 "project('usrsctp', 'c')
usrsctp_dep = dependency('usrsctp')
usrsctp = $empty_lib" "option('sctp_build_programs', type : 'boolean', value : false)"

subproject abseil-cpp-20220623.0 "project('abseil-cpp', ['c', 'cpp'])
absl_container_dep = declare_dependency(dependencies : [
  dependency('absl_flat_hash_map'), dependency('absl_flat_hash_set'), dependency('absl_btree'),
  dependency('absl_inlined_vector'), dependency('absl_optional'), dependency('absl_strings'),
  dependency('absl_memory'),
])
absl_strings_dep = dependency('absl_strings')
absl_types_dep = dependency('absl_optional')
absl_container_lib = $empty_lib" ""

subproject Catch2-2.13.7 "project('catch2', 'cpp')
catch2_dep = declare_dependency()" ""

meson setup --wrap-mode=nodownload --buildtype release -Db_ndebug=true "$work/build" "$src" >"$work/meson.log" 2>&1 ||
  { tail -n 40 "$work/meson.log" >&2; die "meson setup failed (full log above)"; }
ninja -C "$work/build" mediasoup-worker >"$work/ninja.log" 2>&1 ||
  { grep -m 20 -B2 -A8 'error' "$work/ninja.log" >&2 || tail -n 40 "$work/ninja.log" >&2; die "worker build failed"; }

mkdir -p "$(dirname "$cached")"
strip -o "$cached.tmp" "$work/build/mediasoup-worker"
mv "$cached.tmp" "$cached"
log "worker built in $(($(date +%s) - started)) s"
install_worker
