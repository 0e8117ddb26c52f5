//! One-time redirect tokens, as issued by panels that 302 a stream request to a tokenised URL.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Tokens not redeemed within this time are invalid.
const TOKEN_TTL: Duration = Duration::from_secs(60);
/// At most this many outstanding tokens (oldest are forgotten first), to bound memory.
const MAX_TOKENS: usize = 4096;

/// What a token stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TokenTarget {
    pub(crate) username: String,
    pub(crate) password: String,
    pub(crate) stream_id: u64,
}

/// Outstanding redirect tokens.
///
/// Exists so the `redirect_token` fault can check that a token URL is used exactly once
/// (a second use fails, as with real panels).
#[derive(Debug, Default)]
pub(crate) struct Tokens {
    inner: Mutex<TokenState>,
    counter: AtomicU64,
    hasher: RandomState,
}

#[derive(Debug, Default)]
struct TokenState {
    map: HashMap<String, (TokenTarget, Instant)>,
    order: VecDeque<String>,
}

impl Tokens {
    fn random_hex(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let a = self.hasher.hash_one((n, Instant::now()));
        let b = self.hasher.hash_one((a, n));
        format!("{a:016x}{b:016x}")
    }

    /// Issue a new token for `target`.
    pub(crate) fn issue(&self, target: TokenTarget) -> String {
        let token = self.random_hex();
        let mut st = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        while st.order.len() >= MAX_TOKENS {
            if let Some(old) = st.order.pop_front() {
                st.map.remove(&old);
            }
        }
        st.order.push_back(token.clone());
        st.map.insert(token.clone(), (target, Instant::now()));
        token
    }

    /// Use a token: returns its target the first time (within the TTL), `None` afterwards.
    pub(crate) fn redeem(&self, token: &str) -> Option<TokenTarget> {
        let mut st = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (target, issued) = st.map.remove(token)?;
        st.order.retain(|t| t != token);
        (issued.elapsed() <= TOKEN_TTL).then_some(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_only() {
        let t = Tokens::default();
        let target = TokenTarget { username: "u".into(), password: "p".into(), stream_id: 1 };
        let a = t.issue(target.clone());
        let b = t.issue(target.clone());
        assert_ne!(a, b);
        assert_eq!(t.redeem(&a), Some(target));
        assert_eq!(t.redeem(&a), None);
        assert_eq!(t.redeem("nope"), None);
    }
}
