#!/usr/bin/env bash
# PostgreSQL initialisation of the platform stacks (deploy/docker-compose.yml, deploy/docker-compose.prod.yml):
# one login role and one database of the same name for each service that keeps its data in PostgreSQL, each
# database owned by its role, closed to the other roles, and with pgvector installed.
#
#   database / role    service                        password from
#   owsc               OpenWorld Specialty Chemicals  OWSC_DB_PASSWORD_FILE, else OWSC_DB_PASSWORD
#   file_allocator     File Allocator                 ALLOCATOR_DB_PASSWORD_FILE, else ALLOCATOR_DB_PASSWORD
#   rag                RAG Assistant                  RAG_DB_PASSWORD_FILE, else RAG_DB_PASSWORD
#
# DocOps and Raven Zero use no database. The image's entrypoint runs this file (from
# /docker-entrypoint-initdb.d) once, when the data volume is empty; later changes of the passwords need
# `ALTER ROLE ... PASSWORD ...` by hand (deploy/README.md). It works whether the entrypoint executes or sources it.
set -euo pipefail

# Creates the role and the database `$1`, with the password named by the variables `$2_DB_PASSWORD(_FILE)`.
create_service_database() {
  local name="$1"
  local file_variable="$2_DB_PASSWORD_FILE"
  local plain_variable="$2_DB_PASSWORD"
  local password
  if [ -n "${!file_variable:-}" ]; then
    # The services read the same file: keep its content as it is (they drop one trailing newline, so does $(...)).
    password="$(cat "${!file_variable}")"
  else
    password="${!plain_variable:-}"
  fi
  if [ -z "$password" ]; then
    echo "initdb: neither $file_variable nor $plain_variable gives a password for the role $name" >&2
    return 1
  fi

  # psql variables quote the name and the password (:"name", :'password'); they are interpolated in input
  # read from stdin, never in `-c` commands.
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "${POSTGRES_DB:-$POSTGRES_USER}" \
    -v name="$name" -v password="$password" <<'SQL'
CREATE ROLE :"name" LOGIN PASSWORD :'password';
CREATE DATABASE :"name" OWNER :"name";
REVOKE ALL ON DATABASE :"name" FROM PUBLIC;
SQL
  # pgvector needs a superuser to create it; the services' own `CREATE EXTENSION IF NOT EXISTS vector` then
  # finds it in place.
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$name" <<'SQL'
CREATE EXTENSION IF NOT EXISTS vector;
SQL
  echo "initdb: created the role and the database $name"
}

create_service_database owsc OWSC
create_service_database file_allocator ALLOCATOR
create_service_database rag RAG
