# Shared helpers for the project's scripts (sourced, not run).

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$repo_root/tools/node_modules/.bin:$HOME/.cargo/bin:$PATH"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# The Apache Kafka version the tests run: the kafka.version property of deploy/kafka/pom.xml, the
# one place it is pinned (scripts/install-tools resolves that pom into .tools/kafka/<version>/libs).
kafka_version() {
    sed -n 's:.*<kafka\.version>[[:space:]]*\([^<[:space:]]*\)[[:space:]]*</kafka\.version>.*:\1:p' \
        "$repo_root/deploy/kafka/pom.xml" | head -n1
}

# Installs the Debian package of each missing command: `ensure_cmds psql:postgresql-client ...`.
# Commands are checked rather than packages, since e.g. Node.js from another source ships npm.
ensure_cmds() {
    local missing=()
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "error: missing Debian packages: ${missing[*]} (apt-get install -y ${missing[*]})" >&2
        return 1
    fi
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# Postgres for the tests and the demo, answering on 127.0.0.1:5432 and trusting loopback TCP for
# the `postgres` role (postgres://postgres@127.0.0.1:5432/postgres, no password).
# Whatever already answers there is used as it is. Otherwise Debian's postgresql-15 is installed
# (root), its cluster 15/main created if missing, set to listen on 127.0.0.1 port 5432 with trust
# lines for 127.0.0.1/32 and ::1/128 first in pg_hba.conf, and started. Idempotent: each step only
# changes what is not in place, and a second run finds Postgres answering and touches nothing.
pg_version=15
pg_cluster=main
pg_port=5432
pg_trust_comment="# Tripwire (scripts/lib.sh): the tests connect over loopback TCP as postgres without a password."
pg_trust_v4="host    all             all             127.0.0.1/32            trust"
pg_trust_v6="host    all             all             ::1/128                 trust"

# `pg_root_step what cmd...`: runs a set-up step that needs root, or fails naming the step and command.
pg_root_step() {
    local what="$1"; shift
    if [ "$(id -u)" -ne 0 ]; then
        echo "error: Postgres set-up: $what; needs root: $*" >&2
        return 1
    fi
    "$@"
}

# Puts the loopback trust lines first in pg_hba.conf (once: earlier copies are moved, not doubled).
pg_trust_loopback() {
    local hba="$1" head
    if [ ! -r "$hba" ] || [ ! -w "$hba" ]; then
        echo "error: Postgres set-up: $hba must start with '$pg_trust_v4' and '$pg_trust_v6'; needs root (or its owner) to check and edit it" >&2
        return 1
    fi
    # The first two rules, blanks squeezed.
    head="$(grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$hba" | head -n2 | tr -s ' \t' ' ')"
    if [ "$head" = "$(printf '%s\n%s' "$pg_trust_v4" "$pg_trust_v6" | tr -s ' ' ' ')" ]; then
        return 0
    fi
    log "trusting loopback TCP connections in $hba"
    local tmp
    tmp="$(mktemp)"
    {
        printf '%s\n%s\n%s\n\n' "$pg_trust_comment" "$pg_trust_v4" "$pg_trust_v6"
        grep -v -x -F -e "$pg_trust_comment" -e "$pg_trust_v4" -e "$pg_trust_v6" "$hba" || true
    } >"$tmp"
    # Rewritten in place, so the file keeps its owner and mode.
    cat "$tmp" >"$hba" && rm -f "$tmp"
}

ensure_postgres() {
    local v="$pg_version" c="$pg_cluster" p="$pg_port" rc=0
    pg_isready -q -h 127.0.0.1 -p "$p" 2>/dev/null || rc=$?
    [ "$rc" -eq 0 ] && return 0

    if [ "$rc" -ne 1 ]; then # 1: a server that is starting up; wait for it below
        local pkgs=()
        for pkg in "postgresql-$v" "postgresql-client-$v"; do
            [ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" = "install ok installed" ] || pkgs+=("$pkg")
        done
        if [ ${#pkgs[@]} -gt 0 ]; then
            if [ "$(id -u)" -ne 0 ]; then
                echo "error: no Postgres on 127.0.0.1:$p and the Debian packages ${pkgs[*]} are missing (as root: apt-get install -y ${pkgs[*]})" >&2
                return 1
            fi
            log "installing ${pkgs[*]}"
            apt-get update -qq
            if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null; then
                echo "error: apt-get could not install ${pkgs[*]}" >&2
                return 1
            fi
        fi

        if ! pg_lsclusters -h 2>/dev/null | awk -v v="$v" -v c="$c" '$1 == v && $2 == c { f = 1 } END { exit !f }'; then
            log "creating the Postgres cluster $v/$c on port $p"
            pg_root_step "cluster $v/$c is missing" pg_createcluster --port "$p" "$v" "$c" >/dev/null || {
                echo "error: could not create the Postgres cluster $v/$c on port $p" >&2
                return 1
            }
        fi

        local changed=0 port listen hba
        port="$(pg_conftool -s "$v" "$c" show port 2>/dev/null || echo 5432)"
        if [ "$port" != "$p" ]; then
            log "setting the port of cluster $v/$c to $p (was $port)"
            pg_root_step "cluster $v/$c listens on port $port, not $p" pg_conftool "$v" "$c" set port "$p" || return 1
            changed=1
        fi
        # Unset means the default, localhost.
        listen="$(pg_conftool -s "$v" "$c" show listen_addresses 2>/dev/null || echo localhost)"
        if ! grep -q -x -e '\*' -e '0\.0\.0\.0' -e '127\.0\.0\.1' -e localhost <<<"${listen//[, ]/$'\n'}"; then
            # (pg_conftool writes a lone 127.0.0.1 unquoted, which postgres cannot parse.)
            listen="${listen:-::1},127.0.0.1"
            log "setting listen_addresses of cluster $v/$c to '$listen'"
            pg_root_step "cluster $v/$c does not listen on 127.0.0.1" pg_conftool "$v" "$c" set listen_addresses "$listen" || return 1
            changed=1
        fi
        hba="$(pg_conftool -s "$v" "$c" show hba_file 2>/dev/null || echo "/etc/postgresql/$v/$c/pg_hba.conf")"
        if [ ! -f "$hba" ]; then
            echo "error: cluster $v/$c has no pg_hba.conf at $hba" >&2
            return 1
        fi
        local before
        before="$(cksum "$hba" 2>/dev/null || true)"
        pg_trust_loopback "$hba" || return 1
        [ "$(cksum "$hba")" = "$before" ] || changed=1

        local status
        status="$(pg_lsclusters -h | awk -v v="$v" -v c="$c" '$1 == v && $2 == c { print $4 }')"
        local action=start
        if [ "$status" = online ]; then
            [ "$changed" -eq 1 ] && action=restart || action=
        elif (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "error: port $p on 127.0.0.1 is taken by something that is not an answering Postgres; cluster $v/$c cannot listen there" >&2
            return 1
        fi
        if [ -n "$action" ]; then
            log "${action}ing the Postgres cluster $v/$c"
            pg_root_step "cluster $v/$c is not running" pg_ctlcluster --skip-systemctl-redirect "$v" "$c" "$action" || {
                echo "error: the Postgres cluster $v/$c did not $action; see /var/log/postgresql/postgresql-$v-$c.log:" >&2
                tail -n 20 "/var/log/postgresql/postgresql-$v-$c.log" >&2 2>/dev/null || true
                return 1
            }
        fi
    fi

    for _ in $(seq 1 30); do
        pg_isready -q -h 127.0.0.1 -p "$p" 2>/dev/null && return 0
        sleep 1
    done
    echo "error: no Postgres answers on 127.0.0.1:$p after 30 s (cluster $v/$c; see /var/log/postgresql/postgresql-$v-$c.log)" >&2
    return 1
}
