-- Only live profiles are listed by `updated_at` (the organization's profile feed reads
-- `merged_into IS NULL`). Indexing just those, a merge drops the absorbed profile's entry
-- instead of moving it: one index write fewer per absorbed profile, in upserts and applies.
DROP INDEX profiles_by_updated_at;
CREATE INDEX profiles_by_updated_at ON profiles (hub_id, updated_at) WHERE merged_into IS NULL;
