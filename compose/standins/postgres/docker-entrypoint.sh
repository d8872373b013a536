#!/usr/bin/env bash
# Entry point of the postgres stand-in, like the official image's where a
# compose file sees it. As root it hands the data folder to the postgres user
# and runs again as that user. On an empty data folder: initdb with superuser
# POSTGRES_USER (default postgres) and password POSTGRES_PASSWORD, connections
# from anywhere by POSTGRES_HOST_AUTH_METHOD (default scram-sha-256, so a
# password is required unless it is trust), POSTGRES_DB created (default: the
# user's name), then each /docker-entrypoint-initdb.d/*.sql and *.sh run once
# while the server listens on its socket only. Then it execs postgres, which
# gets the stop signal.
set -euo pipefail

if [ "${1:0:1}" = - ]; then set -- postgres "$@"; fi
if [ "$1" != postgres ]; then exec "$@"; fi
for arg; do # asking postgres for help or its version touches no data
  case $arg in -'?' | --help | --describe-config | -V | --version | -C) exec "$@" ;; esac
done

if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown -R postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

user=${POSTGRES_USER:-postgres}
database=${POSTGRES_DB:-$user}
auth=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$auth" != trust ]; then
    echo "Error: Database is uninitialized and superuser password is not specified." >&2
    echo "       Set POSTGRES_PASSWORD, or POSTGRES_HOST_AUTH_METHOD=trust to allow all connections without one." >&2
    exit 1
  fi
  password=()
  if [ -n "${POSTGRES_PASSWORD:-}" ]; then
    pwfile=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
    password=(--pwfile="$pwfile")
  fi
  # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of options, as in the official image
  initdb --username="$user" "${password[@]}" --auth-local=trust --auth-host="$auth" \
    --encoding=UTF8 --locale=C.UTF-8 ${POSTGRES_INITDB_ARGS:-}
  rm -f "${pwfile:-}"
  printf '\nhost all all all %s\n' "$auth" >>"$PGDATA/pg_hba.conf"
  printf "\nlisten_addresses = '*'\n" >>"$PGDATA/postgresql.conf"

  pg_ctl --pgdata="$PGDATA" --wait --options="-c listen_addresses=''" start
  psql=(psql -v ON_ERROR_STOP=1 --username="$user" --no-password --no-psqlrc)
  if [ "$database" != postgres ]; then
    "${psql[@]}" --dbname=postgres --set=db="$database" <<<'CREATE DATABASE :"db";'
  fi
  shopt -s nullglob
  for script in /docker-entrypoint-initdb.d/*; do
    case $script in
      *.sql) echo "running $script"; "${psql[@]}" --dbname="$database" --file="$script" ;;
      *.sh) echo "running $script"; . "$script" ;;
      *) echo "ignoring $script" ;;
    esac
  done
  pg_ctl --pgdata="$PGDATA" --wait --mode=fast stop
  echo "PostgreSQL init process complete; ready for start up."
fi

exec "$@"
