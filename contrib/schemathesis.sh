#!/usr/bin/env bash
# Runs Schemathesis (property-based API testing from the OpenAPI document)
# against a real `listd serve`: a temp dir with two lists, members, held
# posts and an archived post, an admin API token from `listd api-token
# create`, then `schemathesis run --checks all` over every operation in
# /api/openapi.json with that token. Exits non-zero on any failure it
# finds (a server error, a response that does not match the schema, ...).
#
# Usage: contrib/schemathesis.sh            (builds target/release/listd)
#        LISTD=/path/to/listd EXAMPLES=500 contrib/schemathesis.sh
# Needs: python3, schemathesis (pip install schemathesis).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v schemathesis >/dev/null || { echo "needs schemathesis (pip install schemathesis)"; exit 1; }
if [ -z "${LISTD:-}" ]; then
    cargo build --release --quiet
    LISTD="${CARGO_TARGET_DIR:-target}/release/listd"
fi
dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$dir"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
smtp=$(port); web=$(port)
mkdir -p "$dir/lists"
cat > "$dir/listd.yaml" <<YAML
domain: lists.example.org
templates_dir: $PWD/templates
smtp:
  listen: ["127.0.0.1:$smtp"]
  hostname: lists.example.org
relay: {host: 127.0.0.1, port: 9}
web:
  listen: 127.0.0.1:$web
  public_url: http://127.0.0.1:$web
YAML
cat > "$dir/lists/dev.yaml" <<YAML
# the developers' list
description: Developers
owners: [owner@example.org]
archive_access: anyone
subscription: confirm_then_approve
YAML
printf 'description: Members only\narchive_access: members\n' > "$dir/lists/private.yaml"
printf 'ann@example.org\nbob@example.org\n' | "$LISTD" --config "$dir/listd.yaml" members add dev - >/dev/null
token=$("$LISTD" --config "$dir/listd.yaml" api-token create schemathesis --role admin 2>/dev/null)
"$LISTD" --config "$dir/listd.yaml" serve --log-level warn 2>"$dir/log" &
pid=$!
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$web) 2>/dev/null && break; sleep 0.1; done
send() { # FROM SUBJECT
    python3 - "$smtp" "$1" "$2" <<'PY'
import smtplib, sys
port, frm, subject = int(sys.argv[1]), sys.argv[2], sys.argv[3]
msg = f"From: {frm}\r\nTo: dev@lists.example.org\r\nSubject: {subject}\r\n\r\nHello, a post for the archive.\r\n"
with smtplib.SMTP("127.0.0.1", port) as s:
    s.sendmail(frm, ["dev@lists.example.org"], msg)
PY
}
send ann@example.org "an archived post"
send guest@example.net "a held post"
send guest@example.net "another held post"
sleep 2
schemathesis --config-file contrib/schemathesis.toml run "http://127.0.0.1:$web/api/openapi.json" \
    --url "http://127.0.0.1:$web" \
    -H "Authorization: Bearer $token" \
    --checks all --max-examples "${EXAMPLES:-200}" --workers 1 \
    --report junit --report-dir "$dir/report" "$@"
if grep -q "panicked" "$dir/log"; then
    echo "the daemon logged a panic:"; grep -A3 panicked "$dir/log"; exit 1
fi
