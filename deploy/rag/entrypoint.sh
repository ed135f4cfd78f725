#!/bin/sh
# Entrypoint of the RAG Assistant image: `rag-entrypoint <rag-assistant command> [args...]`.
#  1. The upload directories (UPLOAD_DIR, TMP_DIR; DATA_DIR too with the embedded database) must be
#     writable by the container user; otherwise print one `FATAL:` line and exit 1 before anything starts
#     (a volume owned by root would otherwise fail every upload with 507).
#  2. Before `serve` and `worker`, apply pending migrations (`rag-assistant migrate`) unless
#     RUN_MIGRATIONS is false, so that N cluster workers do not race to migrate. Other commands either
#     migrate on their own (the DB commands) or must not touch the database (`cleanup-tmp`, `secrets`, ...).
#  3. `exec` the command, so that the service is PID 1's direct successor and receives SIGTERM.
set -eu

data_dir="${DATA_DIR:-./data}"
upload_dir="${UPLOAD_DIR:-$data_dir/uploads}"
tmp_dir="${TMP_DIR:-${UPLOAD_FOLDER:-${TMPDIR:-/tmp}/rag_uploads}}"

# Exits 1 with a FATAL line unless $2 exists (or can be created) and a file can be created in it.
require_writable() {
  name="$1"
  dir="$2"
  if ! mkdir -p "$dir" 2>/dev/null; then
    echo "FATAL: $name directory $dir cannot be created by uid $(id -u)" >&2
    exit 1
  fi
  probe="$dir/.rag-write-check.$$"
  if ! (: >"$probe") 2>/dev/null; then
    echo "FATAL: $name directory $dir is not writable by uid $(id -u)" >&2
    exit 1
  fi
  rm -f "$probe"
}

require_writable UPLOAD_DIR "$upload_dir"
require_writable TMP_DIR "$tmp_dir"
if [ -z "${DATABASE_URL:-}" ] && [ -z "${DATABASE_URL_FILE:-}" ]; then
  require_writable DATA_DIR "$data_dir"
fi

if [ "$#" -eq 0 ]; then
  set -- serve --host 0.0.0.0 --port 8000
fi

case "$(printf '%s' "${RUN_MIGRATIONS:-true}" | tr '[:upper:]' '[:lower:]')" in
  0 | false | no | off) run_migrations=false ;;
  *) run_migrations=true ;;
esac

case "$1" in
  serve | worker)
    if [ "$run_migrations" = true ]; then
      rag-assistant migrate
    fi
    ;;
esac

exec rag-assistant "$@"
