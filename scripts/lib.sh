# Shell helpers shared by scripts/run, scripts/test and scripts/bench.
# Source it; it defines functions and changes nothing by itself.

# host_packages are the Debian packages a Wrenn host needs to run
# sandboxes, besides those image building needs (bin/wrenn image packages).
host_packages="qemu-system-x86 qemu-utils iproute2 procps"

# build_wrenn builds bin/wrenn from this checkout, the web console first
# (bin/wrenn embeds it).
build_wrenn() {
  build_console
  go build -o bin/wrenn ./cmd/wrenn
}

# build_console builds the web console (web/, a Vite app) into web/dist,
# which package web embeds. It installs Node.js and npm from Debian when
# npm is missing, runs npm ci only when package-lock.json changed, and
# skips the build when nothing it reads changed since the last one.
build_console() {
  command -v npm >/dev/null 2>&1 || ensure_packages nodejs npm || return 1
  local lock stamp
  lock=$(sha256sum web/package-lock.json | cut -d' ' -f1)
  if [ "$(cat web/node_modules/.wrenn-lock 2>/dev/null)" != "$lock" ]; then
    # No install scripts: nothing the build needs has one that matters.
    (cd web && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2) || return 1
    echo "$lock" >web/node_modules/.wrenn-lock
  fi
  stamp=$(cd web && find index.html package.json package-lock.json tsconfig.json vite.config.ts src public \
    -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
  if [ -f web/dist/index.html ] && [ "$(cat web/node_modules/.wrenn-build 2>/dev/null)" = "$stamp" ]; then
    return 0
  fi
  echo "building the web console" >&2
  (cd web && npm run --silent build >&2) || return 1
  echo "$stamp" >web/node_modules/.wrenn-build
}

# ensure_host_packages installs everything a host needs, image building
# included. bin/wrenn must exist.
ensure_host_packages() {
  # shellcheck disable=SC2046 # one package a word
  ensure_packages $host_packages $(bin/wrenn image packages)
}

# ensure_packages installs the Debian packages given that are missing.
ensure_packages() {
  local missing=()
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages: ${missing[*]}; install them as root (apt-get install ${missing[*]})" >&2
    return 1
  fi
  echo "installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# start_test_postgres starts a PostgreSQL server of its own in a temporary
# directory, listening only on a Unix socket there (no TCP port to clash
# with), exports WRENN_TEST_DATABASE_URL for it, and stops and removes it
# on exit.
start_test_postgres() {
  local bin dir as=()
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  dir=$(mktemp -d /tmp/wrenn-pg.XXXXXX)
  chmod 755 "$dir"
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres "$dir"
    # initdb refuses root; run the server as postgres, from a directory it may enter.
    as=(env -C / runuser -u postgres --)
  fi
  "${as[@]}" "$bin/initdb" -D "$dir/data" -A trust -U postgres >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; return 1; }
  "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-k $dir -c listen_addresses= -c fsync=off -c max_connections=200" start >/dev/null ||
    { cat "$dir/server.log" >&2; return 1; }
  # shellcheck disable=SC2064 # expand now: the trap must name this server
  trap "${as[*]} $bin/pg_ctl -D $dir/data -m immediate stop >/dev/null 2>&1; rm -rf $dir" EXIT
  export WRENN_TEST_DATABASE_URL="postgres://postgres@/postgres?host=$dir&sslmode=disable"
}
