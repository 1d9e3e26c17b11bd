#!/usr/bin/env bash
# Packs the build dependencies a bare GPU machine lacks into .gpu-deps/ (ignored by git): a
# relocatable CMake prefix with the headers, libraries and CMake package files of GoogleTest,
# Google Benchmark, toml++, nlohmann_json, CLI11 and zlib, copied from this machine's Debian 12
# packages in their Debian layout (include/, lib/x86_64-linux-gnu/{,cmake/}, share/cmake/).
# tools/gpu-check.sh builds against it there (docs/performance-gpu.md, "Running the GPU check").
#
#   tools/gpu-deps.sh            (re)create .gpu-deps/
#   tools/gpu-deps.sh --verify   also move a copy elsewhere, configure the project against that
#                                copy alone (/usr ignored), check every package came from it, and
#                                build and run test_core and a benchmark binary (CPU build, in
#                                ${SN_KIT_VERIFY_DIR:-/tmp/build-kit}; the moved copy stays in
#                                /tmp/gpu-deps-moved.*)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
kit=$root/.gpu-deps
verify=0
for flag in "$@"; do
  case "$flag" in
    --verify) verify=1 ;;
    *) echo "gpu-deps.sh: unknown flag '$flag' (--verify)" >&2; exit 2 ;;
  esac
done

# Development packages and the runtime packages holding their shared libraries. GoogleMock is
# left out: no suite uses it, and GTestConfig.cmake loads its targets only where present.
packages=(libgtest-dev libbenchmark-dev libbenchmark1debian libtomlplusplus-dev libtomlplusplus3
          nlohmann-json3-dev libcli11-dev zlib1g-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "gpu-deps.sh: missing Debian packages: ${missing[*]} (run tools/install-deps.sh)" >&2
  exit 1
fi

rm -rf "$kit"
mkdir -p "$kit"
copied=0
for p in "${packages[@]}"; do
  while IFS= read -r path; do
    [[ -f "$path" || -L "$path" ]] || continue  # directories are made as needed
    case "$path" in
      /usr/share/doc/* | /usr/share/doc-base/* | /usr/share/man/* | /usr/src/* | */pkgconfig/*) continue ;;  # not for building
      /usr/lib/x86_64-linux-gnu/libz.so) continue ;;  # absolute link to the system's libz: libz.a is used
    esac
    rel=${path#/usr/}
    [[ "$rel" != "$path" ]] || { echo "gpu-deps.sh: unexpected path outside /usr: $path" >&2; exit 1; }
    mkdir -p "$kit/$(dirname "$rel")"
    cp -P "$path" "$kit/$rel"  # links stay links (libbenchmark.so -> .so.1debian -> .so.1.7.1)
    copied=$((copied + 1))
  done < <(dpkg -L "$p")
done

# Package files: the Debian ones compute their prefix from their own location, except for a
# "/usr move" block (a config loaded through /lib -> /usr/lib snaps back to /usr). Dropped here:
# the kit must never resolve to /usr.
while IFS= read -r f; do
  sed -i '/^get_filename_component(_realCurr/,/^unset(_realCurr)/d' "$f"
done < <(find "$kit/lib/x86_64-linux-gnu/cmake" "$kit/share/cmake" -name '*.cmake')
# toml++ imports its shared library as UNKNOWN, and CMake puts only SHARED libraries' directories
# into a binary's build RUNPATH: without the system copy the binaries would not start.
toml_config=$kit/lib/x86_64-linux-gnu/cmake/tomlplusplus/tomlplusplusConfig.cmake
grep -q 'set(imported_type UNKNOWN)' "$toml_config" ||
  { echo "gpu-deps.sh: $toml_config changed upstream: check how it imports the library" >&2; exit 1; }
sed -i 's/set(imported_type UNKNOWN)/set(imported_type SHARED)  # .gpu-deps: was UNKNOWN (no RUNPATH)/' "$toml_config"
if grep -rn '/usr' "$kit/lib/x86_64-linux-gnu/cmake" "$kit/share/cmake" | grep -v ':[0-9]*:#'; then
  echo "gpu-deps.sh: the lines above still name /usr" >&2
  exit 1
fi
# Every link must resolve inside the kit.
if outside=$(find "$kit" \( -xtype l -o -lname '/*' \)) && [[ -n "$outside" ]]; then
  echo "gpu-deps.sh: links that leave the kit: $outside" >&2
  exit 1
fi
for pkg in lib/x86_64-linux-gnu/cmake/GTest lib/x86_64-linux-gnu/cmake/benchmark lib/x86_64-linux-gnu/cmake/tomlplusplus \
           share/cmake/nlohmann_json share/cmake/CLI11 include/zlib.h lib/x86_64-linux-gnu/libz.a; do
  [[ -e "$kit/$pkg" ]] || { echo "gpu-deps.sh: $pkg missing from the kit" >&2; exit 1; }
done
cat > "$kit/README" <<EOF
Build dependencies of sortednet for a machine without the Debian -dev packages, made by
tools/gpu-deps.sh on $(date -u +%Y-%m-%d) from: $(for p in "${packages[@]}"; do dpkg-query -W -f='${Package} ${Version}; ' "$p"; done)
Use: cmake -DCMAKE_PREFIX_PATH=\$PWD/.gpu-deps ... (tools/gpu-check.sh does this).
EOF
# Fashion-MNIST (30 MB), when installed, for the GPU check's training run.
if [[ -d /usr/share/datasets/fashion-mnist ]]; then
  mkdir -p "$kit/data"
  cp -r /usr/share/datasets/fashion-mnist "$kit/data/"
fi
# The fortunes corpus (2.6 MB of text, the `fortunes` package), for the GPU check's W4 run.
if [[ -d /usr/share/games/fortunes ]]; then
  mkdir -p "$kit/data/fortunes"
  find /usr/share/games/fortunes -maxdepth 1 -type f ! -name '*.dat' ! -name '*.u8' -exec cp {} "$kit/data/fortunes/" \;
fi
echo "gpu-deps.sh: $copied files in .gpu-deps/, $(du -sh "$kit" | cut -f1) ($(du -sb "$kit" | cut -f1) bytes)"

[[ $verify -eq 1 ]] || exit 0

# ---- verification: a moved copy of the kit, /usr ignored, every package from the copy ----
moved=$(mktemp -d /tmp/gpu-deps-moved.XXXXXX)
cp -a "$kit" "$moved/kit"
build=${SN_KIT_VERIFY_DIR:-/tmp/build-kit}
rm -rf "$build"
echo "gpu-deps.sh: configuring $build against $moved/kit"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSN_BLAS=OFF -DSN_CUDA=OFF -DSN_MPI=OFF \
  -DCMAKE_PREFIX_PATH="$moved/kit" -DCMAKE_IGNORE_PREFIX_PATH=/usr >"$build.configure.log" 2>&1 ||
  { tail -20 "$build.configure.log"; echo "gpu-deps.sh: configure against the kit failed" >&2; exit 1; }
bad=0
for var in GTest_DIR benchmark_DIR tomlplusplus_DIR nlohmann_json_DIR CLI11_DIR ZLIB_INCLUDE_DIR ZLIB_LIBRARY_RELEASE; do
  value=$(grep -E "^$var:" "$build/CMakeCache.txt" | cut -d= -f2- || true)
  if [[ "$value" == "$moved/kit/"* ]]; then
    echo "  ok   $var=$value"
  else
    echo "  FAIL $var=$value (not in the kit)"
    bad=1
  fi
done
[[ $bad -eq 0 ]] || exit 1
jobs=${SN_KIT_VERIFY_JOBS:-$(nproc)}
nice -n 10 cmake --build "$build" -j "$jobs" --target test_core bench_train_step >"$build.build.log" 2>&1 ||
  { tail -30 "$build.build.log"; echo "gpu-deps.sh: build against the kit failed" >&2; exit 1; }
"$build/bin/test_core" --gtest_brief=1 | tail -1
"$build/bin/bench_train_step" --benchmark_list_tests | head -1
for bin in test_core bench_train_step; do
  ldd "$build/bin/$bin" | grep -E 'libbenchmark|libtomlplusplus' | sed "s/^\s*/  $bin: /"
  if ldd "$build/bin/$bin" | grep -E 'libbenchmark|libtomlplusplus' | grep -vq "$moved/kit/"; then
    echo "gpu-deps.sh: a shared library of $bin resolved outside the kit" >&2
    exit 1
  fi
done
echo "gpu-deps.sh: verified (the kit alone configures, builds and runs test_core and bench_train_step)"
