#!/usr/bin/env bash
# Reads a list's archive with mail programs nobody here wrote: fetchmail
# over IMAP and over POP3, and mutt over IMAP. Starts `listd serve` on a
# temp dir (SMTP, IMAP and POP3 on free ports), posts to a public list,
# waits until the post is archived, fetches the archive with each client
# and checks that the post is there, then stops the daemon with SIGTERM.
#
# Usage: contrib/archive-readers.sh        (builds target/release/listd)
#        LISTD=/path/to/listd contrib/archive-readers.sh
# Needs: python3, fetchmail, mutt (apt-get install fetchmail mutt).
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in python3 fetchmail mutt script; do
    command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install fetchmail mutt)"; exit 1; }
done
if [ -z "${LISTD:-}" ]; then
    cargo build --release --quiet
    LISTD="${CARGO_TARGET_DIR:-target}/release/listd"
fi
dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$dir"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
smtp=$(port); imap=$(port); pop3=$(port)
mkdir -p "$dir/lists"
cat > "$dir/listd.yaml" <<YAML
domain: lists.example.org
templates_dir: $PWD/templates
smtp:
  listen: ["127.0.0.1:$smtp"]
  hostname: lists.example.org
relay: {host: 127.0.0.1, port: 9}
imap:
  listen: 127.0.0.1:$imap
pop3:
  listen: 127.0.0.1:$pop3
YAML
printf 'posting: anyone\narchive_access: anyone\n' > "$dir/lists/pub.yaml"
"$LISTD" --config "$dir/listd.yaml" serve --log-level warn 2>"$dir/log" &
pid=$!
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$imap) 2>/dev/null && break; sleep 0.1; done

check() { # check NAME EXPECTED-REGEX FILE
    if grep -Eq "$2" "$3" 2>/dev/null; then echo "ok   $1"; else echo "FAIL $1: expected /$2/ in $3"; cat "$3" 2>/dev/null; cat "$dir/log"; exit 1; fi
}
python3 - "$smtp" <<'PY'
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]))
s.sendmail("ann@example.org", ["pub@lists.example.org"],
    "From: Ann <ann@example.org>\r\nTo: pub@lists.example.org\r\n"
    "Subject: Archived for the readers\r\nMessage-ID: <readers-1@example.org>\r\n\r\n"
    "The needle is in the haystack.\r\n")
s.quit()
PY
python3 - "$dir/data/listd.db" <<'PY'
import sqlite3, sys, time
for _ in range(100):
    try:
        if sqlite3.connect(sys.argv[1]).execute("SELECT COUNT(*) FROM archive_index").fetchone()[0]:
            sys.exit(0)
    except sqlite3.OperationalError:
        pass
    time.sleep(0.1)
sys.exit("the post was not archived")
PY
echo "ok   post archived"

# fetchmail: IMAP (anonymous, the mailbox `pub`), then POP3 (user `pub`)
cat > "$dir/fetchmailrc" <<RC
set no syslog
poll 127.0.0.1 service $imap protocol IMAP auth password
    user "anonymous" password "guest" folder "pub" keep fetchall sslproto ''
    mda "cat >> $dir/imap.mbox"
poll 127.0.0.1 service $pop3 protocol POP3 auth password
    user "pub" password "guest" keep fetchall sslproto ''
    mda "cat >> $dir/pop3.mbox"
RC
chmod 600 "$dir/fetchmailrc"
HOME="$dir" fetchmail -f "$dir/fetchmailrc" --nodetach --pidfile "$dir/fm.pid" >"$dir/fetchmail.log" 2>&1 || true
check "fetchmail over IMAP finds the post" '^Subject: Archived for the readers' "$dir/imap.mbox"
check "fetchmail over POP3 finds the post" 'The needle is in the haystack' "$dir/pop3.mbox"

# mutt over IMAP (in a pseudo-terminal): open the archive, save every
# message to a local mbox, quit
cat > "$dir/muttrc" <<RC
set imap_user = "anonymous"
set imap_pass = "guest"
set ssl_starttls = no
set ssl_force_tls = no
set mbox_type = mbox
set confirmcreate = no
set confirmappend = no
set header_cache = ""
set message_cachedir = ""
RC
TERM=xterm HOME="$dir" timeout 30 script -qec \
  "mutt -n -F $dir/muttrc -f imap://anonymous@127.0.0.1:$imap/pub \
     -e 'push \"<tag-pattern>~A<enter><tag-prefix><copy-message>$dir/mutt.mbox<enter><quit>\"'" \
  /dev/null >"$dir/mutt.log" 2>&1 || true
check "mutt over IMAP finds the post" '^Subject: Archived for the readers' "$dir/mutt.mbox"

kill -TERM "$pid"
if wait "$pid"; then echo "ok   SIGTERM: exit 0"; else echo "FAIL SIGTERM: exit $?"; cat "$dir/log"; exit 1; fi
