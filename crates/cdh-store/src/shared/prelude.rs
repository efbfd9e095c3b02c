// Names the shared files use; included first by each adapter.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use cdh_core::{
    FieldKind, IdentifierField, KeyGraph, MemberRecord, Normalizer, Outcome, Partition, Slot,
    UnifyKeys, UnionFind, golden_record, resolve,
};

use crate::error::{StoreError, StoreResult};
use crate::merged_range::{MERGED_RANGE_KIND, MergedRange};
use crate::model::{
    AppliedSetting, Cause, ChannelId, Contact, ContactId, ContactInput, Event, FieldValue, HubId,
    InvalidField, IssuedToken, LedgerEntry, Millis, NewChannel, OrganizationId, Page, Profile,
    ProfileId, ProfileMember, Task, TaskId, TimelineEntry, TokenGrant, TokenId, Unification,
    UnifySetting, Upserted,
};
use crate::port::{ApplyOptions, Store};
use crate::rules::{
    constant_time_eq, contact_lock_key, format_token, hash_secret, is_excluded, new_secret,
    normalizer, now_ms, parse_keys, parse_token, scope_name, value_lock_key,
};
