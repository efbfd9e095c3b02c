-- A merge moves no membership any more. A membership names the profile the contact was first
-- placed in (its bucket), and the contact's live profile is that one or the profile it was
-- merged into (`to_live_profile` in `shared/unify.rs`): an absorbed profile keeps its members
-- and names its survivor in `merged_into`. An apply merging 750k profiles rewrote 750k
-- membership rows, ~5.8 s of a 1M apply.
--
-- Until now a profile owned a bucket of its own id, and a merge moved the smaller buckets'
-- members into the largest, which the survivor took over. Members of a survivor that took
-- over another profile's bucket move to the bucket named by the survivor's id (which its own
-- members had left for the one it took over), so that every bucket is a profile's id; then
-- profiles need no bucket column, nor its index.
UPDATE memberships m SET bucket_id = p.id FROM profiles p
WHERE p.hub_id = m.hub_id AND p.bucket_id = m.bucket_id AND p.merged_into IS NULL
  AND p.bucket_id <> p.id;
DROP INDEX profiles_by_bucket;
ALTER TABLE profiles DROP COLUMN bucket_id;

-- An apply stages no memberships.
ALTER TABLE apply_staging DROP COLUMN bucket_id;
ALTER TABLE apply_profile_staging DROP COLUMN bucket_id;
