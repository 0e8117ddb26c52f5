//! The admin API for curating the lineup (the user's channels): edit a
//! channel (name, number, group, logo, guide id, hidden, automatic source
//! order), merge channels, split a source off, order sources, add an
//! unassigned stream, renumber a group, change many channels at once, and
//! create, rename, order, hide and delete groups. Every change is checked
//! first: a bad field is a `400` naming it and nothing changes; an unknown
//! id in the path is a `404`. Listing is in `api.rs` (`/api/v1/channels`,
//! `/api/v1/groups`). Outputs read the lineup on every request, so a change
//! shows in `get.php` at once.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use tunerpool_catalog::lineup::{BulkChange, ChannelPatch, GroupPatch, UnassignedStream};

use tunerpool_catalog::quality::{score, QualityWeights, SourceQuality};
use tunerpool_catalog::{Channel, ChannelSource, GroupCount, LostSource};
use tunerpool_relay::SourceMeasurement;

use crate::error::{ApiError, ErrorBody};
use crate::write::{json_body, path_id};
use crate::AppState;

/// The channel id in the path, known to exist: an unknown id is a `404`
/// whatever the body says.
async fn known_channel(st: &AppState, id: &str) -> Result<i64, ApiError> {
    let id = path_id("channel", id)?;
    st.store.channel(id).await?;
    Ok(id)
}

/// The group id in the path, known to exist.
async fn known_group(st: &AppState, id: &str) -> Result<i64, ApiError> {
    let id = path_id("group", id)?;
    st.store.group(id).await?;
    Ok(id)
}

/// A channel as `GET /api/v1/channels/{id}` shows it: [`Channel`], each source with what the relay last measured
/// of it; exists so that the admin sees what a source really is (codec, size, frame rate, bitrate, dead or not)
/// next to where it comes from.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChannelDetail {
    pub id: i64,
    pub name: String,
    pub group: Option<String>,
    /// The lineup group's id (what users' `allowed_groups` list).
    pub group_id: Option<i64>,
    pub tvg_id: Option<String>,
    pub logo: Option<String>,
    /// The channel number, as text (what players show).
    pub number: Option<String>,
    /// False when the operator hid it (or its group).
    pub enabled: bool,
    /// False when no source can be played.
    pub available: bool,
    /// True: sources are ranked by provider and quality; false: tried in their order.
    pub auto_order: bool,
    /// True: its session is kept running (holding a slot) with no viewers.
    pub always_on: bool,
    /// Where it can be played from, in the channel's order, each with its latest measurement and score.
    pub sources: Vec<MeasuredSource>,
    /// The source ids in the order a viewer starting now would have them tried: the user's order when
    /// `auto_order` is false, else the provider ranking and the scores under `order_policy`. Sources with no
    /// usable account come last, in the channel's order.
    pub try_order: Vec<i64>,
    /// How `try_order` was made: `by_hand`, `availability_first` or `quality_first`.
    pub order_policy: String,
    /// Sources whose stream is gone, kept for re-attaching.
    pub lost_sources: Vec<LostSource>,
}

/// A channel's source with the relay's latest measurement of it; exists as the sources of [`ChannelDetail`].
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MeasuredSource {
    #[serde(flatten)]
    pub source: ChannelSource,
    /// What the relay last measured of this source while playing it (passively, from the relayed bytes);
    /// `null` when it has not been played (since measuring began).
    pub quality: Option<SourceMeasurement>,
    /// Its quality score, 0 (dead) to 100 with the configured weights; 50 when never measured.
    pub score: f64,
    /// A short label: `1080p50 H.264 6.1 Mbit/s`, `dead: no_video`, or `not measured`.
    pub badge: String,
}

impl ChannelDetail {
    fn new(
        channel: Channel,
        mut quality: HashMap<i64, tunerpool_catalog::StoredQuality>,
        basis: &HashMap<i64, SourceQuality>,
        weights: &QualityWeights,
        (try_order, order_policy): (Vec<i64>, String),
    ) -> Self {
        // Every field named: a field added to `Channel` must be added here too.
        let Channel {
            id,
            name,
            group,
            group_id,
            tvg_id,
            logo,
            number,
            enabled,
            available,
            auto_order,
            always_on,
            sources,
            lost_sources,
        } = channel;
        let sources = sources
            .into_iter()
            .map(|source| {
                let quality = quality.remove(&source.stream_id).and_then(|q| {
                    serde_json::from_str(&q.report)
                        .map_err(
                            |e| tracing::warn!(stream = source.stream_id, error = %e, "unreadable stored measurement"),
                        )
                        .ok()
                });
                let basis = basis.get(&source.stream_id);
                let score = score(basis, weights);
                let badge = basis.map_or_else(|| "not measured".to_owned(), SourceQuality::badge);
                MeasuredSource { source, quality, score, badge }
            })
            .collect();
        ChannelDetail {
            id,
            name,
            group,
            group_id,
            tvg_id,
            logo,
            number,
            enabled,
            available,
            auto_order,
            always_on,
            sources,
            try_order,
            order_policy,
            lost_sources,
        }
    }
}

/// The source ids of `channel` in the order a session starting now would try them, and how that order was
/// made (see [`ChannelDetail::try_order`]).
async fn try_order(st: &AppState, channel: &Channel, scores: &[f64]) -> Result<(Vec<i64>, String), ApiError> {
    use tunerpool_ledger::Ledger;
    use tunerpool_pool::select::{plan, ProviderPool, SelectInput};
    let settings = st.relay.settings();
    let providers = crate::stream::channel_providers(st, channel).await?;
    let pools: HashMap<i64, ProviderPool> =
        providers.iter().map(|(p, a)| (p.id, ProviderPool { provider: p, accounts: a.as_slice() })).collect();
    let usage = st.ledger.usage().await.map_err(|e| ApiError::internal("ledger usage", &e))?;
    let input = SelectInput {
        sources: &channel.sources,
        providers: &pools,
        active: &usage.accounts,
        policy: settings.policy,
        now_unix: tunerpool_catalog::now(),
        scores,
        quality_policy: settings.quality_policy,
    };
    let mut indices: Vec<usize> = Vec::new();
    for c in plan(&input).candidates {
        if !indices.contains(&c.source_index) {
            indices.push(c.source_index);
        }
    }
    let how = if channel.auto_order {
        settings.quality_policy.as_str().to_owned()
    } else {
        // As the relay does: the user's order wins.
        indices.sort_unstable();
        "by_hand".to_owned()
    };
    for i in 0..channel.sources.len() {
        if !indices.contains(&i) {
            indices.push(i);
        }
    }
    Ok((indices.into_iter().map(|i| channel.sources[i].id).collect(), how))
}

/// A channel, each source with the relay's latest measurement of it (`quality`, or `null`).
#[utoipa::path(get, path = "/api/v1/channels/{id}", tag = "lineup", params(("id" = i64, Path, description = "channel id")),
    responses((status = 200, description = "the channel, its sources with their latest measurement", body = ChannelDetail),
        (status = 404, description = "no such channel", body = ErrorBody)))]
pub(crate) async fn one(State(st): State<AppState>, Path(id): Path<String>) -> Result<Json<ChannelDetail>, ApiError> {
    let channel = st.store.channel(path_id("channel", &id)?).await?;
    let streams: Vec<i64> = channel.sources.iter().map(|s| s.stream_id).collect();
    let quality = st.store.latest_quality(&streams).await?;
    let basis = st.store.source_quality(&streams).await?;
    let weights = st.relay.settings().quality_weights;
    // The relay scores only channels that order themselves; shown for every channel.
    let scores: Vec<f64> = channel.sources.iter().map(|s| score(basis.get(&s.stream_id), &weights)).collect();
    let order = try_order(&st, &channel, if channel.auto_order { &scores } else { &[] }).await?;
    Ok(Json(ChannelDetail::new(channel, quality, &basis, &weights, order)))
}

/// Edits a channel: absent fields are kept, `null` clears `group_id`,
/// `logo` and `tvg_id`. `always_on` starts (or lets go of) the channel's
/// session at once. A number another channel holds, an empty name or an
/// unknown group: `400` naming the field, nothing changed.
#[utoipa::path(patch, path = "/api/v1/channels/{id}", operation_id = "update_channel", tag = "lineup", params(("id" = i64, Path, description = "channel id")),
    request_body = ChannelPatch,
    responses((status = 200, description = "changed", body = Channel),
        (status = 400, description = "bad input, every problem named", body = ErrorBody),
        (status = 409, description = "a number taken or an unknown group (fields number, group_id): nothing changed", body = ErrorBody),
        (status = 404, description = "no such channel", body = ErrorBody)))]
pub(crate) async fn update(
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Channel>, ApiError> {
    let id = known_channel(&st, &id).await?;
    let patch: ChannelPatch = json_body(&body)?;
    let channel = st.store.update_channel(id, &patch).await?;
    if patch.always_on.is_some() {
        tracing::info!(channel = id, always_on = channel.always_on, "channel always-on changed");
        st.relay.set_always_on(id, channel.always_on);
    }
    Ok(Json(channel))
}

/// Deletes a channel; its streams become unassigned (see `/api/v1/lineup/unassigned`).
#[utoipa::path(delete, path = "/api/v1/channels/{id}", operation_id = "remove_channel", tag = "lineup", params(("id" = i64, Path, description = "channel id")),
    responses((status = 204, description = "deleted"),
        (status = 404, description = "no such channel", body = ErrorBody)))]
pub(crate) async fn remove(State(st): State<AppState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    st.store.delete_channel(path_id("channel", &id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Channels to merge into another.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeRequest {
    /// Their sources are appended to the target's, in this order; then they are deleted.
    #[schema(min_items = 1)]
    pub channels: Vec<i64>,
}

/// Merges channels into this one.
#[utoipa::path(post, path = "/api/v1/channels/{id}/merge", tag = "lineup",
    params(("id" = i64, Path, description = "the channel that stays")), request_body = MergeRequest,
    responses((status = 200, description = "the merged channel", body = Channel),
        (status = 400, description = "no channel listed (field channels)", body = ErrorBody),
        (status = 409, description = "an unknown channel, or this one (field channels): nothing changed", body = ErrorBody),
        (status = 404, description = "no such channel", body = ErrorBody)))]
pub(crate) async fn merge(
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Channel>, ApiError> {
    let id = known_channel(&st, &id).await?;
    let req: MergeRequest = json_body(&body)?;
    Ok(Json(st.store.merge_channels(id, &req.channels).await?))
}

/// A source to split off.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SplitRequest {
    /// The source's id (`sources[].id` or `lost_sources[].id`).
    pub source_id: i64,
}

/// Splits a source off into a new channel of its own (next free number, same group).
#[utoipa::path(post, path = "/api/v1/channels/{id}/split", tag = "lineup",
    params(("id" = i64, Path, description = "channel id")), request_body = SplitRequest,
    responses((status = 201, description = "the new channel", body = Channel),
        (status = 409, description = "not a source of this channel, or its only one (field source_id)", body = ErrorBody),
        (status = 404, description = "no such channel", body = ErrorBody)))]
pub(crate) async fn split(
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Channel>), ApiError> {
    let id = known_channel(&st, &id).await?;
    let req: SplitRequest = json_body(&body)?;
    Ok((StatusCode::CREATED, Json(st.store.split_source(id, req.source_id).await?)))
}

/// The order of a channel's sources.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceOrder {
    /// Every source id of the channel once, in the order to try them (and
    /// automatic ranking off); `null`: back to automatic order (ranked by
    /// provider: kind, availability, priority).
    pub sources: Option<Vec<i64>>,
}

/// Orders a channel's sources by hand, or back to automatic.
#[utoipa::path(put, path = "/api/v1/channels/{id}/sources", tag = "lineup",
    params(("id" = i64, Path, description = "channel id")), request_body = SourceOrder,
    responses((status = 200, description = "the channel", body = Channel),
        (status = 409, description = "not each of the channel's sources once (field sources)", body = ErrorBody),
        (status = 404, description = "no such channel", body = ErrorBody)))]
pub(crate) async fn order(
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Channel>, ApiError> {
    let id = known_channel(&st, &id).await?;
    let req: SourceOrder = json_body(&body)?;
    Ok(Json(st.store.order_sources(id, req.sources.as_deref()).await?))
}

/// A stream to add to a channel, or to make a channel of.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamRef {
    /// A live stream that no channel holds (`/api/v1/lineup/unassigned`).
    pub stream_id: i64,
}

/// Adds an unassigned stream to a channel as its last source.
#[utoipa::path(post, path = "/api/v1/channels/{id}/sources", tag = "lineup",
    params(("id" = i64, Path, description = "channel id")), request_body = StreamRef,
    responses((status = 200, description = "the channel", body = Channel),
        (status = 409, description = "no such stream, or already a source of a channel (field stream_id)", body = ErrorBody),
        (status = 404, description = "no such channel", body = ErrorBody)))]
pub(crate) async fn add_source(
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Channel>, ApiError> {
    let id = known_channel(&st, &id).await?;
    let req: StreamRef = json_body(&body)?;
    Ok(Json(st.store.add_source(id, req.stream_id).await?))
}

/// Makes an unassigned stream a channel (next free number).
#[utoipa::path(post, path = "/api/v1/channels", operation_id = "create_channel", tag = "lineup", request_body = StreamRef,
    responses((status = 201, description = "the new channel", body = Channel),
        (status = 409, description = "no such stream, or already a source of a channel (field stream_id)", body = ErrorBody)))]
pub(crate) async fn create(State(st): State<AppState>, body: Bytes) -> Result<(StatusCode, Json<Channel>), ApiError> {
    let req: StreamRef = json_body(&body)?;
    Ok((StatusCode::CREATED, Json(st.store.create_channel_from_stream(req.stream_id).await?)))
}

/// Live streams that no channel holds (`lineup.auto_create = false`, or
/// their channel was deleted), at most 1000.
#[utoipa::path(get, path = "/api/v1/lineup/unassigned", tag = "lineup",
    responses((status = 200, description = "streams waiting for a channel", body = Vec<UnassignedStream>)))]
pub(crate) async fn unassigned(State(st): State<AppState>) -> Result<Json<Vec<UnassignedStream>>, ApiError> {
    Ok(Json(st.store.unassigned_streams(1000).await?))
}

/// How many channels a bulk change touched.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BulkResult {
    pub changed: u64,
}

/// Hides, shows or moves many channels at once: those in `ids`, or those
/// the filter (`group`, `filter_group_id`, `q`) selects.
#[utoipa::path(post, path = "/api/v1/channels/bulk", tag = "lineup", request_body = BulkChange,
    responses((status = 200, description = "how many changed", body = BulkResult),
        (status = 400, description = "nothing to change (field hidden): nothing changed", body = ErrorBody),
        (status = 409, description = "an unknown channel (ids) or group (group_id): nothing changed", body = ErrorBody)))]
pub(crate) async fn bulk(State(st): State<AppState>, body: Bytes) -> Result<Json<BulkResult>, ApiError> {
    let change: BulkChange = json_body(&body)?;
    Ok(Json(BulkResult { changed: st.store.bulk_change(&change).await? }))
}

/// Creates a group (`name` required; at the end unless `position` is given).
#[utoipa::path(post, path = "/api/v1/groups", tag = "lineup", request_body = GroupPatch,
    responses((status = 201, description = "created", body = GroupCount),
        (status = 400, description = "an empty name (field name)", body = ErrorBody),
        (status = 409, description = "a taken name (field name)", body = ErrorBody)))]
pub(crate) async fn create_group(
    State(st): State<AppState>,
    body: Bytes,
) -> Result<(StatusCode, Json<GroupCount>), ApiError> {
    let patch: GroupPatch = json_body(&body)?;
    Ok((StatusCode::CREATED, Json(st.store.create_group(&patch).await?)))
}

/// Renames, moves (`position`) or hides a group; a hidden group hides its
/// channels from every output.
#[utoipa::path(patch, path = "/api/v1/groups/{id}", tag = "lineup", params(("id" = i64, Path, description = "group id")),
    request_body = GroupPatch,
    responses((status = 200, description = "changed", body = GroupCount),
        (status = 400, description = "an empty name (field name)", body = ErrorBody),
        (status = 409, description = "a taken name (field name)", body = ErrorBody),
        (status = 404, description = "no such group", body = ErrorBody)))]
pub(crate) async fn update_group(
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<GroupCount>, ApiError> {
    let id = known_group(&st, &id).await?;
    let patch: GroupPatch = json_body(&body)?;
    Ok(Json(st.store.update_group(id, &patch).await?))
}

/// Deletes a group; its channels stay, without a group.
#[utoipa::path(delete, path = "/api/v1/groups/{id}", tag = "lineup", params(("id" = i64, Path, description = "group id")),
    responses((status = 204, description = "deleted"),
        (status = 404, description = "no such group", body = ErrorBody)))]
pub(crate) async fn remove_group(State(st): State<AppState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    st.store.delete_group(path_id("group", &id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Where to start numbering.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenumberRequest {
    /// The group's first channel gets this number, the next one more, in
    /// their current order.
    #[schema(minimum = 1, maximum = 9_999_999)]
    pub start: i64,
}

/// Numbers a group's channels from `start` ("number this group from 101").
#[utoipa::path(post, path = "/api/v1/groups/{id}/renumber", tag = "lineup",
    params(("id" = i64, Path, description = "group id")), request_body = RenumberRequest,
    responses((status = 200, description = "the group's channels, renumbered", body = Vec<Channel>),
        (status = 409, description = "a needed number is taken outside the group, or beyond the highest (field start): nothing changed", body = ErrorBody),
        (status = 404, description = "no such group", body = ErrorBody)))]
pub(crate) async fn renumber(
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Vec<Channel>>, ApiError> {
    let id = known_group(&st, &id).await?;
    let req: RenumberRequest = json_body(&body)?;
    Ok(Json(st.store.renumber_group(id, req.start).await?))
}

/// Guide channels of every provider whose name or id contains `q` (any
/// case), at most `limit` (1 to 1000, default 50): where to pick a channel's
/// guide id (`PATCH /api/v1/channels/{id}` with `tvg_id`).
#[utoipa::path(get, path = "/api/v1/guide/channels", tag = "lineup",
    params(
        ("q" = Option<String>, Query, description = "part of the name or id"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "1 to 1000 (default 50)"),
    ),
    responses((status = 200, description = "matching guide channels, by name", body = Vec<tunerpool_catalog::epg::GuideChannel>),
        (status = 400, description = "a bad parameter, named", body = ErrorBody)))]
pub(crate) async fn guide_channels(
    State(st): State<AppState>,
    axum::extract::Query(params): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Result<Json<Vec<tunerpool_catalog::epg::GuideChannel>>, ApiError> {
    let mut errs = Vec::new();
    let limit = match params.get("limit").map(|v| v.trim().parse::<u32>()) {
        None => 50,
        Some(Ok(n)) if (1..=1000).contains(&n) => n,
        Some(_) => {
            errs.push(tunerpool_catalog::FieldError::new("limit", "must be a number from 1 to 1000"));
            0
        }
    };
    for k in params.keys().filter(|k| !matches!(k.as_str(), "q" | "limit")) {
        errs.push(tunerpool_catalog::FieldError::new(k, "unknown parameter: use q or limit"));
    }
    if !errs.is_empty() {
        return Err(ApiError::invalid(errs));
    }
    let q = params.get("q").map(String::as_str).unwrap_or_default();
    Ok(Json(tunerpool_catalog::epg::search_guide_channels(&st.store, q, limit).await?))
}
