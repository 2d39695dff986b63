#!/usr/bin/env bash
# Makes sure the database servers the test suite talks to are up on loopback:
# PostgreSQL on 127.0.0.1:5432 and MariaDB on 127.0.0.1:3306; and that OpenSSH's sshd and
# Chromium are installed for the SFTP and browser tests.
# Installs them from Debian's packages when missing, starts them when stopped, and
# creates the test database. Under CI=true a server that cannot be started fails the run.
set -uo pipefail

PG_HOST=127.0.0.1 PG_PORT=5432
fail() {
    echo "services: $*" >&2
    if [ "${CI:-}" = "true" ]; then exit 1; fi
    echo "services: (not CI: tests that need it will be skipped)" >&2
}

pg_up() { pg_isready -q -h "$PG_HOST" -p "$PG_PORT" 2>/dev/null; }

start_postgres() {
    pg_up && return 0
    if ! command -v pg_ctlcluster >/dev/null 2>&1; then
        echo "services: installing PostgreSQL" >&2
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >/dev/null 2>&1 || true
    fi
    if command -v pg_ctlcluster >/dev/null 2>&1; then
        version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
        [ -n "$version" ] && pg_ctlcluster --skip-systemctl-redirect "$version" main start >/dev/null 2>&1 || true
    fi
    for _ in $(seq 1 30); do pg_up && return 0; sleep 1; done
    return 1
}

mariadb_up() { mysqladmin --protocol=tcp -h 127.0.0.1 -P 3306 -u root ping >/dev/null 2>&1; }

start_mariadb() {
    mariadb_up && return 0
    if [ ! -x /usr/sbin/mariadbd ]; then
        echo "services: installing MariaDB" >&2
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server) >/dev/null 2>&1 || true
    fi
    if [ -x /usr/sbin/mariadbd ]; then
        start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd >/dev/null 2>&1 || true
    fi
    for _ in $(seq 1 30); do mariadb_up && return 0; sleep 1; done
    return 1
}

if start_postgres; then
    psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = 'contactsync_test'" | grep -q 1 ||
        psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -qc "CREATE DATABASE contactsync_test" ||
        fail "could not create the contactsync_test database"
else
    fail "PostgreSQL is not reachable on $PG_HOST:$PG_PORT and could not be started"
fi

# OpenSSH's server (the SFTP tests start their own sshd on a loopback port with a generated
# host key) and Chromium (the console's browser tests), from Debian's packages.
need_packages=()
[ -x /usr/sbin/sshd ] || need_packages+=(openssh-server)
command -v chromium >/dev/null 2>&1 || need_packages+=(chromium)
if [ ${#need_packages[@]} -gt 0 ]; then
    echo "services: installing ${need_packages[*]}" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_packages[@]}") >/dev/null 2>&1 ||
        fail "could not install ${need_packages[*]} from Debian's packages"
fi

if ! start_mariadb; then
    fail "MariaDB is not reachable on 127.0.0.1:3306 and could not be started"
fi
exit 0
