-- Each comment names the previous comment of its project (NULL for the
-- first), so a receiver can tell whether it missed one. Set by the insert
-- under the project's write order; existing rows are linked here.
ALTER TABLE comments ADD COLUMN prev_id BIGINT;
UPDATE comments SET prev_id = (
    SELECT MAX(earlier.id) FROM comments AS earlier
    WHERE earlier.project_id = comments.project_id AND earlier.id < comments.id
);
