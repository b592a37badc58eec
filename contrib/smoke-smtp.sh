#!/usr/bin/env bash
# Smoke test of listd's SMTP/LMTP intake as a user would drive it, with swaks.
# Starts `listd serve` on a temp dir (SMTP and LMTP on free ports), posts,
# pipelines, tries to relay, expands a list, speaks LMTP, then stops the
# daemon with SIGTERM and checks it exits 0.
#
# Usage: contrib/smoke-smtp.sh            (builds target/release/listd)
#        LISTD=/path/to/listd contrib/smoke-smtp.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v swaks >/dev/null || { echo "needs swaks (apt-get install swaks)"; exit 1; }
if [ -z "${LISTD:-}" ]; then
    cargo build --release --quiet
    LISTD="${CARGO_TARGET_DIR:-target}/release/listd"
fi
dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
smtp=$(port); lmtp=$(port)
mkdir -p "$dir/lists"
cat > "$dir/listd.yaml" <<YAML
domain: lists.example.org
templates_dir: $PWD/templates
smtp:
  listen: ["127.0.0.1:$smtp"]
  hostname: lists.example.org
lmtp:
  listen: ["127.0.0.1:$lmtp"]
relay: {host: 127.0.0.1, port: 9}
YAML
printf 'posting: anyone\nexpn: trusted\n' > "$dir/lists/dev.yaml"
"$LISTD" --config "$dir/listd.yaml" members add dev ann@example.org bob@example.org >/dev/null
"$LISTD" --config "$dir/listd.yaml" serve --log-level warn 2>"$dir/log" &
pid=$!
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$smtp) 2>/dev/null && break; sleep 0.1; done

check() { # check NAME EXPECTED-REGEX OUTPUT
    if grep -Eq "$2" <<<"$3"; then echo "ok   $1"; else echo "FAIL $1: expected /$2/"; echo "$3"; exit 1; fi
}
out=$(swaks --server 127.0.0.1:$smtp --from you@example.org --to dev@lists.example.org \
      --header "Subject: hello" --body "First post" 2>&1)
check "post" '<-  250 2.0.0 Ok: queued as [0-9A-F]{16}' "$out"
out=$(swaks --server 127.0.0.1:$smtp --pipeline --from you@example.org \
      --to dev-request@lists.example.org --body "help" 2>&1)
check "pipelined command mail" '<-  250 2.0.0 Ok: queued as' "$out"
out=$(swaks --server 127.0.0.1:$smtp --from you@example.org --to someone@example.com --quit-after RCPT 2>&1 || true)
check "no relaying" '<\*\* 550 5.7.1 Relaying denied' "$out"
out=$(swaks --server 127.0.0.1:$smtp --from you@example.org --to nobody@lists.example.org --quit-after RCPT 2>&1 || true)
check "unknown address" '<\*\* 550 5.1.1' "$out"
out=$(swaks --server 127.0.0.1:$lmtp --protocol LMTP --from you@example.org \
      --to dev@lists.example.org,dev-owner@lists.example.org --body "via LMTP" 2>&1)
check "LMTP, one reply per recipient" '<-  250 2.0.0 <dev-owner@lists.example.org> Ok' "$out"
exec 3<>/dev/tcp/127.0.0.1/$smtp
printf 'EHLO smoke\r\nEXPN dev\r\nQUIT\r\n' >&3
out=$(cat <&3)
check "EXPN" '250-2.1.5 <ann@example.org>.*' "$out"
check "EXPN last line" '250 2.1.5 <bob@example.org>' "$out"
kill -TERM "$pid"
if wait "$pid"; then echo "ok   SIGTERM: exit 0"; else echo "FAIL SIGTERM: exit $?"; cat "$dir/log"; exit 1; fi
n=$(python3 - "$dir/data/listd.db" <<'PY'
import sqlite3, sys
print(sqlite3.connect(sys.argv[1]).execute("select count(*) from messages where direction='in'").fetchone()[0])
PY
)
check "3 messages spooled" '^3$' "$n"
echo "smoke test passed"
