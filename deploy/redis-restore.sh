#!/usr/bin/env bash
# Restores a backup made by redis-backup.sh into a fresh Redis dir, with Redis stopped:
#   deploy/redis-restore.sh <backup folder> <new redis dir>
# For a node's embedded Redis, <new redis dir> is <new HAVEN_DATA_DIR>/redis: start the node on
# that HAVEN_DATA_DIR and its Redis loads the AOF. For Debian's redis-server, restore into an
# empty folder, point `dir` at it (or swap it for /var/lib/redis), `chown -R redis:redis` it.
set -euo pipefail
backup=$1 redis_dir=$2
if [[ -e $redis_dir/appendonlydir ]]; then
  echo "$redis_dir/appendonlydir exists: restore into a fresh folder" >&2
  exit 1
fi
mkdir -p -m 0700 "$redis_dir"
cp -a "$backup/appendonlydir" "$redis_dir/appendonlydir"
echo "restored into $redis_dir/appendonlydir"
