-- no-transaction
-- (SQLite cannot change a CHECK constraint: the feedback table is rebuilt,
-- which needs foreign keys off, which needs to be outside a transaction.)
PRAGMA foreign_keys = OFF;
BEGIN;

-- Every durable change to a project is one event of its log, numbered per
-- project with no hole. The number is taken from projects.last_seq by the
-- transaction that makes the change (an UPDATE, so concurrent writers of one
-- project queue on its row and commit in number order), and the event row is
-- written in that same transaction.
ALTER TABLE projects ADD COLUMN last_seq BIGINT NOT NULL DEFAULT 0;

-- The log stores what happened and to what, not a copy of it: a replay shows
-- comments and feedback items as they are now, so a deleted comment's text
-- is gone from every read. `detail` holds what the entity row cannot: the
-- emoji of a reaction event, "status priority" of a status change.
CREATE TABLE project_events (
    project_id      BIGINT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    seq             BIGINT NOT NULL,
    kind            TEXT   NOT NULL,
    actor_id        BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    comment_id      BIGINT,
    feedback_id     BIGINT,
    detail          TEXT,
    -- The client's client_msg_id ('c-' prefixed) for commands other than
    -- comment_add: a retry finds the event its first attempt made.
    idempotency_key TEXT,
    PRIMARY KEY (project_id, seq)
);
CREATE UNIQUE INDEX project_events_idempotency ON project_events (actor_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- Threads (one level deep), ranges, edits, tombstones, resolution.
ALTER TABLE comments ADD COLUMN parent_id BIGINT REFERENCES comments (id);
ALTER TABLE comments ADD COLUMN timestamp_end DOUBLE PRECISION;
ALTER TABLE comments ADD COLUMN edited_at BIGINT;
ALTER TABLE comments ADD COLUMN deleted_at BIGINT;
ALTER TABLE comments ADD COLUMN resolved_at BIGINT;
ALTER TABLE comments ADD COLUMN resolved_by BIGINT;
CREATE INDEX comments_parent ON comments (parent_id, id);
-- Counts kept on the comment row, in the transaction that changes them, so
-- that the reads every connecting socket makes (the newest comments) need
-- no grouped read: replies to this comment, and its reactions by emoji as
-- JSON [{"emoji": …, "count": …}] in emoji order (NULL: none).
ALTER TABLE comments ADD COLUMN reply_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE comments ADD COLUMN reaction_counts TEXT;
UPDATE comments SET reaction_counts = (
    SELECT json_group_array(json_object('emoji', emoji, 'count', n)) FROM (
        SELECT emoji, COUNT(*) AS n FROM reactions WHERE comment_id = comments.id
        GROUP BY emoji ORDER BY emoji
    )
) WHERE id IN (SELECT comment_id FROM reactions);

-- Earlier versions of edited comments; version 1 is the text as first posted.
-- A deletion removes them with the text.
CREATE TABLE comment_versions (
    comment_id BIGINT NOT NULL REFERENCES comments (id) ON DELETE CASCADE,
    version    BIGINT NOT NULL,
    text       TEXT   NOT NULL,
    title      TEXT,
    section    TEXT,
    -- When this version was written (the comment's creation or an edit).
    written_at BIGINT NOT NULL,
    PRIMARY KEY (comment_id, version)
);

-- Feedback items may be closed: the table is rebuilt with the wider CHECK
-- (the documented way to change a constraint in SQLite).
CREATE TABLE feedback_new (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id  BIGINT  NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    title       TEXT    NOT NULL,
    status      TEXT    NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'in_progress', 'resolved', 'closed')),
    priority    TEXT    NOT NULL DEFAULT 'medium' CHECK (priority IN ('low', 'medium', 'high', 'critical')),
    -- Position in the video, in seconds.
    video_timestamp DOUBLE PRECISION,
    video_url   TEXT,
    created_by  BIGINT  NOT NULL REFERENCES users (id),
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL
);
INSERT INTO feedback_new (id, project_id, title, status, priority, video_timestamp, video_url, created_by, created_at, updated_at)
    SELECT id, project_id, title, status, priority, video_timestamp, video_url, created_by, created_at, updated_at FROM feedback;
-- Ids are never reused: the new table continues the old one's sequence.
UPDATE sqlite_sequence SET seq = MAX(seq, (SELECT seq FROM sqlite_sequence WHERE name = 'feedback'))
    WHERE name = 'feedback_new';
DROP TABLE feedback;
ALTER TABLE feedback_new RENAME TO feedback;
CREATE INDEX feedback_project_status_created ON feedback (project_id, status, created_at DESC);
CREATE INDEX feedback_open ON feedback (project_id, created_at DESC) WHERE status = 'open';

COMMIT;
PRAGMA foreign_keys = ON;
