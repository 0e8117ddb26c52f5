//! `GET|POST /xmltv.php?username=U&password=P`: the programme guide for a
//! user's player, as Xtream panels serve it — the merged guide of
//! [`crate::epg`], limited to the groups the user may see.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use axum::Extension;

use super::{login, ClientAuth, Params};
use crate::AppState;

pub(crate) async fn xmltv_php(
    State(st): State<AppState>,
    Extension(auth): Extension<Arc<ClientAuth>>,
    addr: ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = Params::new(&uri, &body);
    let (username, password) = (params.get("username").unwrap_or(""), params.get("password").unwrap_or(""));
    let client = match login(&st, &auth, addr, username, password).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    crate::epg::guide_response(&st, &headers, client.user.allowed_groups.clone()).await
}
