-- Initial schema. Times are Unix milliseconds (BIGINT) on both engines.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    email         TEXT    NOT NULL,
    username      TEXT    NOT NULL,
    -- NULL for users provisioned without a password (load tests); they can
    -- only authenticate with a token minted by an operator.
    password_hash TEXT,
    created_at    BIGINT  NOT NULL
);
CREATE UNIQUE INDEX users_email ON users (email);

CREATE TABLE projects (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT    NOT NULL,
    description TEXT    NOT NULL DEFAULT '',
    status      TEXT    NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'archived')),
    owner_id    BIGINT  NOT NULL REFERENCES users (id),
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL
);
CREATE INDEX projects_owner ON projects (owner_id);

-- The owner has a row here too (role 'owner'), so one lookup answers
-- "may this user open this project".
CREATE TABLE project_members (
    project_id BIGINT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       TEXT   NOT NULL CHECK (role IN ('owner', 'admin', 'editor', 'viewer')),
    created_at BIGINT NOT NULL,
    PRIMARY KEY (project_id, user_id)
);
CREATE INDEX project_members_user ON project_members (user_id);

CREATE TABLE feedback (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id  BIGINT  NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    title       TEXT    NOT NULL,
    status      TEXT    NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'in_progress', 'resolved')),
    priority    TEXT    NOT NULL DEFAULT 'medium' CHECK (priority IN ('low', 'medium', 'high', 'critical')),
    -- Position in the video, in seconds.
    video_timestamp DOUBLE PRECISION,
    video_url   TEXT,
    created_by  BIGINT  NOT NULL REFERENCES users (id),
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL
);
CREATE INDEX feedback_project_status_created ON feedback (project_id, status, created_at DESC);
CREATE INDEX feedback_open ON feedback (project_id, created_at DESC) WHERE status = 'open';

-- AUTOINCREMENT: ids are never reused and increase with every insert, which
-- is what "everything after comment N" relies on.
CREATE TABLE comments (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id      BIGINT  NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    feedback_id     BIGINT  NOT NULL REFERENCES feedback (id) ON DELETE CASCADE,
    user_id         BIGINT  NOT NULL REFERENCES users (id),
    text            TEXT    NOT NULL,
    title           TEXT,
    section         TEXT,
    security        TEXT,
    video_timestamp DOUBLE PRECISION,
    -- The client's client_msg_id / Idempotency-Key (prefixed 'c-') or a
    -- server-generated one ('srv-'); a retry finds the original by it.
    idempotency_key TEXT    NOT NULL,
    created_at      BIGINT  NOT NULL
);
CREATE UNIQUE INDEX comments_idempotency ON comments (user_id, idempotency_key);
CREATE INDEX comments_project_id ON comments (project_id, id);
CREATE INDEX comments_feedback_created ON comments (feedback_id, created_at DESC);

CREATE TABLE reactions (
    comment_id BIGINT NOT NULL REFERENCES comments (id) ON DELETE CASCADE,
    user_id    BIGINT NOT NULL REFERENCES users (id),
    emoji      TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (comment_id, user_id, emoji)
);
