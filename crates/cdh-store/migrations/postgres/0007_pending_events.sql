-- Events of upserts wait here, unnumbered, until a reader or the next numbering writer moves
-- them into `events` (src/postgres.rs, `move_pending_events`). Numbering them at write time
-- took the hub row's lock until commit in every upsert, so concurrent upserts committed one at
-- a time. The id comes from `cdh_ids` and only orders one hub's pending events.
CREATE TABLE pending_events (
    hub_id BIGINT NOT NULL REFERENCES hubs (hub_id),
    id BIGINT NOT NULL,
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    profile_id BIGINT NOT NULL,
    payload TEXT NOT NULL,
    PRIMARY KEY (hub_id, id)
);
