#!/usr/bin/env bash
# Gives every provisioned project 50 comments (on its first feedback item), so
# `initial_state` carries the 20 newest and history pages are full, as in
# production. Run after provision.sh; the storm and rest numbers assume it.
set -eu
D=${BENCH_DIR:-/tmp/bench}
PG=${PG:-postgres://postgres@127.0.0.1:5432/vridge_bench}
SEED="INSERT INTO comments (project_id, feedback_id, user_id, text, idempotency_key, created_at)
SELECT f.project_id, f.id, f.created_by,
       'seeded comment number ' || g.n || ' with a few more words of text to look like a real note',
       'seed-' || f.id || '-' || g.n, 0
FROM (SELECT project_id, MIN(id) AS id, MIN(created_by) AS created_by FROM feedback GROUP BY project_id) f
CROSS JOIN (WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 50) SELECT n FROM s) g
ORDER BY f.project_id, g.n;"
psql -q "$PG" -c "$SEED"
sqlite3 "$D/idle/vridge.db" "$SEED"
echo "comments: postgres $(psql -tAq "$PG" -c 'SELECT COUNT(*) FROM comments'), sqlite idle $(sqlite3 "$D/idle/vridge.db" 'SELECT COUNT(*) FROM comments')"
