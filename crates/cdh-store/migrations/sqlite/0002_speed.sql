-- Profile changes an apply computed (survivors' new bucket and counts, absorbed profiles'
-- survivor), written before the swap so the swap is a few set-based statements.
CREATE TABLE apply_profile_staging (
    hub_id INTEGER NOT NULL,
    task_id INTEGER NOT NULL,
    profile_id INTEGER NOT NULL,
    bucket_id INTEGER,
    member_count INTEGER,
    oldest_contact INTEGER,
    merged_into INTEGER,
    PRIMARY KEY (hub_id, task_id, profile_id)
);

-- Only merged profiles are looked up by `merged_into`. Indexing just those keeps the index
-- small and keeps the planner from taking a lookup of one merged id for a scan of the
-- hub's (mostly NULL) rows, which statistics gathered on an unmerged hub would suggest.
DROP INDEX profiles_by_merged_into;
CREATE INDEX profiles_by_merged_into ON profiles (hub_id, merged_into) WHERE merged_into IS NOT NULL;
