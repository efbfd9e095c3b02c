//! Which organization may see what: contacts belong to their channel's organization; a
//! profile is visible to every organization that has a contact in it. Anything else is
//! `404 not_found`, so a caller never learns that another organization's resource exists.

use cdh_store::model::{ChannelId, Contact, ContactId, Profile};

use crate::auth::OrgCaller;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// A channel of the caller's organization.
pub async fn own_channel(state: &AppState, caller: &OrgCaller, id: ChannelId) -> ApiResult<()> {
    match state.channel_org(caller.hub, id).await {
        Ok(org) if org == caller.org => Ok(()),
        Ok(_) => Err(ApiError::not_found("channel")),
        Err(e) => Err(e),
    }
}

/// A contact of the caller's organization.
pub async fn own_contact(
    state: &AppState,
    caller: &OrgCaller,
    id: ContactId,
) -> ApiResult<Contact> {
    let contact = state.store.get_contact(caller.hub, id).await?;
    if state.channel_org(caller.hub, contact.channel_id).await? == caller.org {
        Ok(contact)
    } else {
        Err(ApiError::not_found("contact"))
    }
}

/// Passes when the profile holds a contact of the caller's organization.
pub async fn visible_profile(
    state: &AppState,
    caller: &OrgCaller,
    profile: &Profile,
) -> ApiResult<()> {
    for member in &profile.members {
        if state.channel_org(caller.hub, member.channel_id).await? == caller.org {
            return Ok(());
        }
    }
    Err(ApiError::not_found("profile"))
}
