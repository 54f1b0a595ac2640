#!/usr/bin/env bash
# Backs up a Redis's append-only file while it runs:
#   deploy/redis-backup.sh <redis dir> <backup folder> [redis-cli options]
# <redis dir> is the Redis's `dir`: $HAVEN_DATA_DIR/redis for a node's embedded Redis (its port
# and password are then read from the redis.conf the node wrote there), /var/lib/redis for
# Debian's redis-server (give `-p 6379` and the password in REDISCLI_AUTH).
# It rewrites the AOF (BGREWRITEAOF) so that the copy is one compact base file and a short
# increment, waits for the rewrite to end, then copies appendonlydir/ as its manifest lists it.
set -euo pipefail
redis_dir=$1 backup=$2
shift 2
if [[ $# -eq 0 && -f $redis_dir/redis.conf ]]; then
  set -- -p "$(sed -n 's/^port //p' "$redis_dir/redis.conf")"
  REDISCLI_AUTH=$(sed -n 's/^requirepass //p' "$redis_dir/redis.conf")
  export REDISCLI_AUTH
fi
cli() { redis-cli "$@" </dev/null; }
persistence() { cli "${@}" INFO persistence | tr -d '\r'; }

# "already in progress" is fine: the wait below covers that rewrite.
answer=$(cli "$@" BGREWRITEAOF 2>&1) || true
case $answer in
  *started* | *scheduled* | *"already in progress"*) ;;
  *) echo "BGREWRITEAOF: $answer" >&2; exit 1 ;;
esac
until persistence "$@" | grep -q '^aof_rewrite_in_progress:0' &&
  persistence "$@" | grep -q '^aof_rewrite_scheduled:0'; do
  sleep 0.2
done
persistence "$@" | grep -q '^aof_last_bgrewrite_status:ok' || { echo "AOF rewrite failed" >&2; exit 1; }

aof=$redis_dir/appendonlydir
# A rewrite starting meanwhile replaces the files: copy again from its manifest.
for attempt in 1 2 3; do
  rm -rf "$backup/appendonlydir.partial"
  mkdir -p "$backup/appendonlydir.partial"
  manifest=$(ls "$aof"/*.manifest)
  cp "$manifest" "$backup/appendonlydir.partial/"
  if sed -n 's/^file \([^ ]*\) .*/\1/p' "$manifest" |
    xargs -I{} cp "$aof/{}" "$backup/appendonlydir.partial/" 2>/dev/null; then
    rm -rf "$backup/appendonlydir"
    mv "$backup/appendonlydir.partial" "$backup/appendonlydir"
    echo "backed up to $backup/appendonlydir"
    exit 0
  fi
done
echo "the AOF kept changing while it was copied" >&2
exit 1
