//! What the dashboard shows, read through the same code as the API: the attribution and service
//! reports (`reports::report::summarise`), the calls list, and pool health.

use chrono_tz::Tz;

use crate::attribution::view::CallView;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::pools::{PoolHealth, health_of};
use crate::reports::report::{self, Summed};
use crate::reports::{DayRange, Dimension, day_string, property_tz};
use crate::storage::{Account, CallFilter, Property};

/// Calls listed under "Recent and live calls".
const RECENT_CALLS: i64 = 25;
/// Rows of the top campaigns and landing pages.
pub const TOP_ROWS: usize = 10;

pub struct Shown<'a> {
    pub property: &'a Property,
    pub tz: Tz,
    pub range: DayRange,
    pub channels: Summed,
    pub campaigns: Summed,
    pub landing_pages: Summed,
    /// (local day, channel, calls).
    pub channel_days: Vec<(String, String, i64)>,
    /// (local day, local hour `00`-`23`, calls).
    pub hour_days: Vec<(String, String, i64)>,
    pub recent: Vec<CallView>,
    pub pools: Vec<(String, PoolHealth)>,
}

pub async fn gather<'a>(
    state: &AppState,
    account: &Account,
    property: &'a Property,
    range: DayRange,
) -> Result<Shown<'a>, ApiError> {
    let now = state.clock.now_ms();
    let summary = |dimension| {
        report::summarise(
            &state.storage,
            &state.rollups,
            property,
            dimension,
            range.from,
            range.to,
            now,
        )
    };
    // Rollups are rebuilt by the first of these; the rest read them as they are.
    let channels = summary(Dimension::Channel).await?;
    let campaigns = summary(Dimension::Campaign).await?;
    let landing_pages = summary(Dimension::LandingPage).await?;
    let (from, to) = (day_string(range.from), day_string(range.to));
    let channel_days = state
        .storage
        .calls_by_day(&property.id, Dimension::Channel.as_str(), &from, &to)
        .await?;
    let hour_days = state
        .storage
        .calls_by_day(&property.id, Dimension::Hour.as_str(), &from, &to)
        .await?;

    let tz = property_tz(&property.timezone);
    let (start, end) = range.millis(tz);
    let recent = state
        .storage
        .list_calls(
            &property.id,
            &CallFilter {
                from: Some(start),
                to: Some(end),
                limit: RECENT_CALLS,
                ..CallFilter::default()
            },
        )
        .await?
        .iter()
        .map(CallView::from)
        .collect();

    let mut pools = Vec::new();
    for pool in state.storage.list_pools(&account.id, &property.id).await? {
        let name = pool.name.clone();
        pools.push((name, health_of(state, pool, 0.01, 24).await?));
    }
    Ok(Shown {
        property,
        tz,
        range,
        channels,
        campaigns,
        landing_pages,
        channel_days,
        hour_days,
        recent,
        pools,
    })
}
