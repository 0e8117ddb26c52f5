//! History and alerts in the admin API, and the pool sampler.
//!
//! `GET /api/v1/history/accounts`, `/history/pool`, `/history/channels`, `/history/sources`:
//! the series the store keeps (`catalog::history`) over a time range;
//! `GET /api/v1/alerts`: open alerts first, then recently resolved ones
//! (`catalog::alerts`). [`sample_pool`] is the minute's sample: the pool
//! status (ledger and store), the relay's sessions and viewers, and what the
//! relay counted since the last sample (stream starts per channel,
//! refusals per provider); the gateway's history job calls it.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::Json;
use serde::Deserialize;
use tunerpool_catalog::alerts::{Alert, AlertState};
use tunerpool_catalog::history::{AccountSample, ChannelViews, NewPoolSample, PoolSample, Range, MAX_ROWS};
use tunerpool_catalog::FieldError;

use crate::error::{ApiError, ErrorBody};
use crate::AppState;

/// The latest time a range may name: the end of year 9999.
const MAX_TIME: i64 = 253_402_300_799;
/// The range when none is given: the last day.
const DEFAULT_SPAN: i64 = 24 * 3600;

/// Takes one pool sample per provider now, and writes the stream starts
/// counted since the last call. Returns how many providers were sampled.
pub async fn sample_pool(st: &AppState) -> Result<usize, ApiError> {
    let now = tunerpool_catalog::now();
    let pool = crate::pool_status::snapshot(st).await?;
    let tally = st.relay.metrics().take_tally();
    let provider_of: HashMap<i64, i64> =
        pool.providers.iter().flat_map(|p| p.accounts.iter().map(move |a| (a.id, p.provider_id))).collect();
    let mut sessions: HashMap<i64, (i64, i64)> = HashMap::new();
    for s in st.relay.sessions() {
        if let Some(p) = s.upstream.as_ref().and_then(|u| provider_of.get(&u.account_id)) {
            let e = sessions.entry(*p).or_default();
            e.0 += 1;
            e.1 += s.viewers.len() as i64;
        }
    }
    let samples: Vec<NewPoolSample> = pool
        .providers
        .iter()
        .map(|p| {
            let (sessions, viewers) = sessions.get(&p.provider_id).copied().unwrap_or_default();
            NewPoolSample {
                provider_id: p.provider_id,
                slots_used: p.totals.active.into(),
                slots_max: p.totals.capacity.into(),
                sessions,
                viewers,
                refusals: tally.refusals.get(&p.provider_id).map_or(0, |n| i64::try_from(*n).unwrap_or(i64::MAX)),
            }
        })
        .collect();
    st.store.record_pool_samples(now, &samples).await?;
    st.store.count_views(now, &tally.views).await?;
    Ok(samples.len())
}

/// A whole number as JSON Schema counts one: `12`, and `12.0` too.
fn whole(v: &str) -> Option<i64> {
    let v = v.trim();
    v.parse::<i64>().ok().or_else(|| {
        let f = v.parse::<f64>().ok().filter(|f| f.is_finite() && f.fract() == 0.0)?;
        (f.abs() < 9.0e15).then_some(f as i64)
    })
}

/// A range from `from`/`to` (unix seconds; default: the last day), and the
/// errors of the other parameters checked by `more`.
fn range(params: &HashMap<String, String>, errs: &mut Vec<FieldError>) -> Range {
    let now = tunerpool_catalog::now();
    let mut time = |key: &str, default: i64| match params.get(key) {
        None => default,
        Some(v) => match whole(v) {
            Some(n) if (0..=MAX_TIME).contains(&n) => n,
            _ => {
                errs.push(FieldError::new(key, format!("{v:?} is not a time (unix seconds, 0 to {MAX_TIME})")));
                default
            }
        },
    };
    let to = time("to", now);
    let from = time("from", to.saturating_sub(DEFAULT_SPAN).max(0));
    Range { from, to }
}

fn id_param(params: &HashMap<String, String>, key: &str, errs: &mut Vec<FieldError>) -> Option<i64> {
    let v = params.get(key)?;
    match whole(v) {
        Some(n) if n >= 0 => Some(n),
        _ => {
            errs.push(FieldError::new(key, format!("{v:?} is not an id (a whole number, 0 or more)")));
            None
        }
    }
}

fn limit_param(params: &HashMap<String, String>, max: u32, default: u32, errs: &mut Vec<FieldError>) -> u32 {
    match params.get("limit") {
        None => default,
        Some(v) => match whole(v) {
            Some(n) if (1..=i64::from(max)).contains(&n) => n as u32,
            _ => {
                errs.push(FieldError::new("limit", format!("{v:?} is not a number from 1 to {max}")));
                default
            }
        },
    }
}

fn checked<T>(errs: Vec<FieldError>, value: T) -> Result<T, ApiError> {
    if errs.is_empty() {
        Ok(value)
    } else {
        Err(ApiError::invalid(errs))
    }
}

/// Account samples over time: one per details refresh for the last 48 hours, one per hour before that.
#[utoipa::path(get, path = "/api/v1/history/accounts", tag = "history",
    params(
        ("from" = Option<i64>, Query, minimum = 0, maximum = 253_402_300_799_i64,
            description = "start, unix seconds (default: a day before `to`)"),
        ("to" = Option<i64>, Query, minimum = 0, maximum = 253_402_300_799_i64,
            description = "end, unix seconds (default: now); a range that ends before it starts is empty"),
        ("account_id" = Option<i64>, Query, minimum = 0, description = "one account only"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 10000, description = "1 to 10000 rows (default 10000)"),
    ),
    responses((status = 200, description = "oldest first", body = Vec<AccountSample>),
        (status = 400, description = "a bad parameter, named", body = ErrorBody)))]
pub(crate) async fn accounts(
    State(st): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Vec<AccountSample>>, ApiError> {
    let mut errs = Vec::new();
    let r = range(&params, &mut errs);
    let account = id_param(&params, "account_id", &mut errs);
    let limit = limit_param(&params, MAX_ROWS, MAX_ROWS, &mut errs);
    checked(errs, ())?;
    Ok(Json(st.store.account_history(r, account, limit).await?))
}

/// Pool samples over time per provider (slots used and allowed, sessions, viewers, refusals): one per minute
/// for the last 48 hours, one per hour (maxima, summed refusals) before that.
#[utoipa::path(get, path = "/api/v1/history/pool", tag = "history",
    params(
        ("from" = Option<i64>, Query, minimum = 0, maximum = 253_402_300_799_i64,
            description = "start, unix seconds (default: a day before `to`)"),
        ("to" = Option<i64>, Query, minimum = 0, maximum = 253_402_300_799_i64,
            description = "end, unix seconds (default: now); a range that ends before it starts is empty"),
        ("provider_id" = Option<i64>, Query, minimum = 0, description = "one provider only"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 10000, description = "1 to 10000 rows (default 10000)"),
    ),
    responses((status = 200, description = "oldest first", body = Vec<PoolSample>),
        (status = 400, description = "a bad parameter, named", body = ErrorBody)))]
pub(crate) async fn pool(
    State(st): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Vec<PoolSample>>, ApiError> {
    let mut errs = Vec::new();
    let r = range(&params, &mut errs);
    let provider = id_param(&params, "provider_id", &mut errs);
    let limit = limit_param(&params, MAX_ROWS, MAX_ROWS, &mut errs);
    checked(errs, ())?;
    Ok(Json(st.store.pool_history(r, provider, limit).await?))
}

/// Stream starts per lineup channel over a range, most watched first, with the count per hour.
#[utoipa::path(get, path = "/api/v1/history/channels", tag = "history",
    params(
        ("from" = Option<i64>, Query, minimum = 0, maximum = 253_402_300_799_i64,
            description = "start, unix seconds (default: a day before `to`); counted by hour"),
        ("to" = Option<i64>, Query, minimum = 0, maximum = 253_402_300_799_i64,
            description = "end, unix seconds (default: now); a range that ends before it starts is empty"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 10000, description = "1 to 10000 channels (default 100)"),
    ),
    responses((status = 200, description = "most watched first", body = Vec<ChannelViews>),
        (status = 400, description = "a bad parameter, named", body = ErrorBody)))]
pub(crate) async fn channels(
    State(st): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Vec<ChannelViews>>, ApiError> {
    let mut errs = Vec::new();
    let r = range(&params, &mut errs);
    let limit = limit_param(&params, MAX_ROWS, 100, &mut errs);
    checked(errs, ())?;
    Ok(Json(st.store.channel_views(r, limit).await?))
}

/// Sources' measurements over time (one source's, or all): every report of every connection that played it (a viewer's session
/// every few minutes and when it ended, or a probe), kept 30 days.
#[utoipa::path(get, path = "/api/v1/history/sources", tag = "history",
    params(
        ("stream_id" = Option<i64>, Query, minimum = 0,
            description = "one source's stream (a channel's `sources[].stream_id`); absent: every source"),
        ("from" = Option<i64>, Query, minimum = 0, maximum = 253_402_300_799_i64,
            description = "start, unix seconds (default: a day before `to`)"),
        ("to" = Option<i64>, Query, minimum = 0, maximum = 253_402_300_799_i64,
            description = "end, unix seconds (default: now); a range that ends before it starts is empty"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 10000,
            description = "1 to 10000 measurements, the latest (default 1000)"),
    ),
    responses((status = 200, description = "oldest first", body = Vec<tunerpool_relay::SourceMeasurement>),
        (status = 400, description = "a bad parameter, named", body = ErrorBody)))]
pub(crate) async fn sources(
    State(st): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Vec<tunerpool_relay::SourceMeasurement>>, ApiError> {
    let mut errs = Vec::new();
    let r = range(&params, &mut errs);
    let stream = id_param(&params, "stream_id", &mut errs);
    let limit = limit_param(&params, MAX_ROWS, 1000, &mut errs);
    let stream = checked(errs, stream)?;
    let kept = st.store.quality_history_in(stream, r, limit).await?;
    // Reports the relay wrote; one that cannot be read (a format from the future) is left out, and logged.
    let read = kept
        .iter()
        .filter_map(|q| {
            serde_json::from_str(&q.report)
                .map_err(|e| tracing::warn!(stream, error = %e, "unreadable stored measurement"))
                .ok()
        })
        .collect();
    Ok(Json(read))
}

/// Which alerts `GET /api/v1/alerts` lists.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum AlertFilter {
    Open,
    Resolved,
    All,
}

/// Alerts: open ones first, then resolved ones, newest first. Resolved alerts are kept for `history.retention`.
#[utoipa::path(get, path = "/api/v1/alerts", tag = "history",
    params(
        ("state" = inline(Option<AlertFilter>), Query, description = "open, resolved or all (default all)"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "1 to 1000 (default 100)"),
    ),
    responses((status = 200, description = "open first, then newest first", body = Vec<Alert>),
        (status = 400, description = "a bad parameter, named", body = ErrorBody)))]
pub(crate) async fn alerts(
    State(st): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Vec<Alert>>, ApiError> {
    let mut errs = Vec::new();
    let state = match params.get("state").map(String::as_str) {
        None | Some("all") => AlertState::All,
        Some("open") => AlertState::Open,
        Some("resolved") => AlertState::Resolved,
        Some(v) => {
            errs.push(FieldError::new("state", format!("{v:?} is not open, resolved or all")));
            AlertState::All
        }
    };
    let limit = limit_param(&params, 1000, 100, &mut errs);
    checked(errs, ())?;
    Ok(Json(st.store.alerts(state, limit).await?))
}

#[cfg(test)]
mod tests {
    use super::whole;

    #[test]
    fn whole_numbers_as_json_schema_counts_them() {
        assert_eq!(whole("12"), Some(12));
        assert_eq!(whole(" 0.0 "), Some(0));
        assert_eq!(whole("-3.0"), Some(-3));
        for bad in ["1.5", "1e300", "NaN", "inf", "", "x"] {
            assert_eq!(whole(bad), None, "{bad}");
        }
    }
}
