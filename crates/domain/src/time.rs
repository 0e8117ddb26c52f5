//! The clock, in the unit every timestamp of tunerpool uses.

/// Now, in Unix seconds: the unit of every timestamp in the catalog.
pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// Whole days until `exp_date` (negative once past), or `None` when there is
/// no expiry: panels send 0 (or nothing) for accounts that never expire. The
/// one rule behind Test reports, pool status and expiry warnings.
pub fn days_left(exp_date: Option<i64>, now: i64) -> Option<i64> {
    exp_date.filter(|e| *e > 0).map(|e| (e - now).div_euclid(86_400))
}

#[cfg(test)]
mod tests {
    use super::days_left;

    #[test]
    fn days_left_counts_whole_days_and_ignores_no_expiry() {
        assert_eq!(days_left(None, 1_000), None);
        assert_eq!(days_left(Some(0), 1_000), None);
        assert_eq!(days_left(Some(86_400 * 3 + 5), 0), Some(3));
        assert_eq!(days_left(Some(10), 20), Some(-1));
    }
}
