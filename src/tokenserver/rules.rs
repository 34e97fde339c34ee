//! Mozilla's user-record rules as pure functions (docs/protocol.md §1.4 steps 3–6 and §1.5):
//! which row is current, whether a request is consistent with it, and what to write.
//! The database layer loads rows and applies the resulting [`Plan`]; nothing here does I/O.

use super::error::TokenserverError;

/// The generation that marks a retired (deleted) account.
pub const RETIRED_GENERATION: i64 = i64::MAX;

/// What the client presented. Zero generation / keys_changed_at are already `None`
/// ("zero means absent", §1.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presented {
    pub generation: Option<i64>,
    pub keys_changed_at: Option<i64>,
    /// Lowercase hex; may be empty.
    pub client_state: String,
}

impl Presented {
    pub fn new(generation: Option<i64>, keys_changed_at: Option<i64>, client_state: &str) -> Self {
        Presented {
            generation: generation.filter(|g| *g != 0),
            keys_changed_at: keys_changed_at.filter(|k| *k != 0),
            client_state: client_state.to_ascii_lowercase(),
        }
    }
}

/// One `users` row joined with its node's URL (`None` when the node row is gone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub uid: i64,
    pub generation: i64,
    pub client_state: String,
    pub keys_changed_at: Option<i64>,
    pub created_at: i64,
    pub replaced_at: Option<i64>,
    pub nodeid: i64,
    pub node: Option<String>,
}

/// The rows of one account, sorted out (§1.4 step 3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sorted {
    pub current: UserRow,
    /// Client states of the other rows that differ from the current one.
    pub old_client_states: Vec<String>,
    /// Older rows still marked live: they get `replaced_at = current.created_at`.
    pub to_mark_replaced: Vec<i64>,
}

/// Picks the current row: greatest `(generation, created_at)`, then the greatest uid.
/// `None` for an account with no rows.
pub fn sort_rows(mut rows: Vec<UserRow>) -> Option<Sorted> {
    rows.sort_by(|a, b| {
        (b.generation, b.created_at, b.uid).cmp(&(a.generation, a.created_at, a.uid))
    });
    let mut rows = rows.into_iter();
    let current = rows.next()?;
    let mut old_client_states = Vec::new();
    let mut to_mark_replaced = Vec::new();
    for row in rows {
        if row.client_state != current.client_state
            && !old_client_states.contains(&row.client_state)
        {
            old_client_states.push(row.client_state.clone());
        }
        if row.replaced_at.is_none() {
            to_mark_replaced.push(row.uid);
        }
    }
    Some(Sorted {
        current,
        old_client_states,
        to_mark_replaced,
    })
}

/// What to do with the current row before validating (§1.4 steps 4–6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reuse {
    /// Use the current row as it is.
    AsIs,
    /// Allocate a new row copying the current row's values (it was replaced or lost its node).
    Reallocate,
}

pub fn reuse_of(current: &UserRow) -> Result<Reuse, TokenserverError> {
    let retired = current.generation == RETIRED_GENERATION;
    if !retired && (current.replaced_at.is_some() || current.node.is_none()) {
        Ok(Reuse::Reallocate)
    } else if current.node.is_some() {
        Ok(Reuse::AsIs)
    } else {
        Err(TokenserverError::Internal(format!(
            "retired user row {} has no node",
            current.uid
        )))
    }
}

/// §1.5.1: the first failing rule wins, in syncstorage-rs's order.
pub fn validate(
    req: &Presented,
    user: &UserRow,
    old_client_states: &[String],
) -> Result<(), TokenserverError> {
    use TokenserverError::{InvalidClientState, InvalidGeneration, InvalidKeysChangedAt};
    let (r_gen, r_kca, u_kca) = (req.generation, req.keys_changed_at, user.keys_changed_at);
    // 1: keys changed, but the generation claims to predate that change.
    if let (Some(rk), Some(uk), Some(rg)) = (r_kca, u_kca, r_gen)
        && rk > uk
        && rg < rk
    {
        return Err(InvalidKeysChangedAt);
    }
    // 2–5: a client-state change must come with a newer generation / keys_changed_at.
    if !user.client_state.is_empty() && req.client_state.is_empty() {
        return Err(InvalidClientState("empty string"));
    }
    if old_client_states.contains(&req.client_state) {
        return Err(InvalidClientState("stale value"));
    }
    if req.client_state != user.client_state {
        if r_gen.is_some_and(|rg| rg <= user.generation) {
            return Err(InvalidClientState("new value with no generation change"));
        }
        if let (Some(rk), Some(uk)) = (r_kca, u_kca)
            && rk <= uk
        {
            return Err(InvalidClientState(
                "new value with no keys_changed_at change",
            ));
        }
    }
    // 6: generation never goes backwards.
    if r_gen.is_some_and(|rg| user.generation > rg) {
        return Err(InvalidGeneration);
    }
    // 7–8: keys_changed_at never goes backwards, and once known it must be sent.
    if let (Some(rk), Some(uk)) = (r_kca, u_kca)
        && uk > rk
    {
        return Err(InvalidKeysChangedAt);
    }
    if r_kca.is_none() && u_kca.is_some_and(|uk| uk != 0) {
        return Err(InvalidKeysChangedAt);
    }
    Ok(())
}

/// The write a valid request causes (§1.5.2–1.5.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// New client state: a new row (new uid) with these values; the old rows get replaced.
    Replace {
        generation: i64,
        keys_changed_at: Option<i64>,
    },
    /// Same client state, newer generation and/or keys_changed_at.
    Update {
        generation: i64,
        keys_changed_at: Option<i64>,
    },
    Nothing,
}

/// Values after the request, for a request that passed [`validate`].
pub fn plan(req: &Presented, user: &UserRow) -> Plan {
    // `Option` orders `None` below any `Some`, which is exactly "absent is older".
    let kca = req.keys_changed_at.max(user.keys_changed_at);
    let generation = match req.generation {
        Some(rg) => rg.max(user.generation),
        None if req.keys_changed_at > user.keys_changed_at => {
            req.keys_changed_at.unwrap_or(0).max(user.generation)
        }
        None => user.generation,
    };
    if req.client_state != user.client_state {
        Plan::Replace {
            generation,
            keys_changed_at: kca,
        }
    } else if generation != user.generation || kca != user.keys_changed_at {
        Plan::Update {
            generation,
            keys_changed_at: kca,
        }
    } else {
        Plan::Nothing
    }
}

/// The number in `fxa_kid`: keys_changed_at, or the generation when that is unknown or 0.
pub fn kid_number(generation: i64, keys_changed_at: Option<i64>) -> i64 {
    keys_changed_at.filter(|k| *k != 0).unwrap_or(generation)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(uid: i64, generation: i64, kca: Option<i64>, cs: &str) -> UserRow {
        UserRow {
            uid,
            generation,
            client_state: cs.into(),
            keys_changed_at: kca,
            created_at: uid * 10,
            replaced_at: None,
            nodeid: 1,
            node: Some("https://n".into()),
        }
    }

    fn req(generation: Option<i64>, kca: Option<i64>, cs: &str) -> Presented {
        Presented::new(generation, kca, cs)
    }

    fn status(r: Result<(), TokenserverError>) -> String {
        match r {
            Ok(()) => "ok".into(),
            Err(TokenserverError::InvalidClientState(reason)) => format!("cs: {reason}"),
            Err(TokenserverError::InvalidGeneration) => "generation".into(),
            Err(TokenserverError::InvalidKeysChangedAt) => "kca".into(),
            Err(e) => format!("other: {e}"),
        }
    }

    #[test]
    fn zero_means_absent() {
        assert_eq!(req(Some(0), Some(0), "AA"), req(None, None, "aa"));
    }

    #[test]
    fn each_rule_in_order() {
        let u = row(1, 1232, Some(1234), "aaaa");
        let none: &[String] = &[];
        // Rule 1 wins over rule 4 (both would apply).
        assert_eq!(
            status(validate(&req(Some(1235), Some(1236), "bbbb"), &u, none)),
            "kca"
        );
        // Rule 2.
        assert_eq!(
            status(validate(&req(Some(2000), Some(2000), ""), &u, none)),
            "cs: empty string"
        );
        // Rule 3 before rule 4.
        let old = vec!["cccc".to_string()];
        assert_eq!(
            status(validate(&req(Some(1), Some(1234), "cccc"), &u, &old)),
            "cs: stale value"
        );
        // Rule 4.
        assert_eq!(
            status(validate(&req(Some(1232), Some(1234), "bbbb"), &u, none)),
            "cs: new value with no generation change"
        );
        // Rule 5.
        assert_eq!(
            status(validate(&req(Some(1240), Some(1234), "bbbb"), &u, none)),
            "cs: new value with no keys_changed_at change"
        );
        // Rule 6.
        assert_eq!(
            status(validate(&req(Some(1231), Some(1234), "aaaa"), &u, none)),
            "generation"
        );
        // Rule 7.
        assert_eq!(
            status(validate(&req(Some(1240), Some(1233), "aaaa"), &u, none)),
            "kca"
        );
        // Rule 8.
        assert_eq!(
            status(validate(&req(Some(1240), None, "aaaa"), &u, none)),
            "kca"
        );
        // Rule 1 is skipped when the stored kca is NULL (RS).
        let u0 = row(1, 1232, None, "aaaa");
        assert_eq!(
            status(validate(&req(Some(1233), Some(1236), "aaaa"), &u0, none)),
            "ok"
        );
    }

    #[test]
    fn new_values() {
        // Generation raised to the new keys_changed_at when none is reported.
        let u = row(1, 0, Some(1234), "aaaa");
        assert_eq!(plan(&req(None, Some(1234), "aaaa"), &u), Plan::Nothing);
        assert_eq!(
            plan(&req(None, Some(1235), "aaaa"), &u),
            Plan::Update {
                generation: 1235,
                keys_changed_at: Some(1235)
            }
        );
        let u = row(1, 0, None, "aaaa");
        assert_eq!(
            plan(&req(None, Some(1234), "aaaa"), &u),
            Plan::Update {
                generation: 1234,
                keys_changed_at: Some(1234)
            }
        );
        // A NULL kca stays NULL without a reported one.
        let u = row(1, 1234, None, "aaaa");
        assert_eq!(plan(&req(Some(1234), None, "aaaa"), &u), Plan::Nothing);
        assert_eq!(
            plan(&req(Some(1235), None, "bbbb"), &u),
            Plan::Replace {
                generation: 1235,
                keys_changed_at: None
            }
        );
    }

    #[test]
    fn sorting_picks_greatest_generation_then_newest() {
        let mut a = row(1, 10, None, "aaaa");
        a.created_at = 500;
        let mut b = row(2, 20, None, "bbbb");
        b.created_at = 100;
        let mut c = row(3, 20, None, "bbbb");
        c.created_at = 100;
        c.replaced_at = Some(100);
        let sorted = sort_rows(vec![a, b, c]).unwrap();
        assert_eq!(sorted.current.uid, 3);
        assert_eq!(sorted.old_client_states, vec!["aaaa".to_string()]);
        assert_eq!(sorted.to_mark_replaced, vec![2, 1]);
        assert!(sort_rows(Vec::new()).is_none());
    }

    #[test]
    fn reuse_cases() {
        let live = row(1, 5, None, "");
        assert_eq!(reuse_of(&live).unwrap(), Reuse::AsIs);
        let mut replaced = live.clone();
        replaced.replaced_at = Some(1);
        assert_eq!(reuse_of(&replaced).unwrap(), Reuse::Reallocate);
        let mut lost = live.clone();
        lost.node = None;
        assert_eq!(reuse_of(&lost).unwrap(), Reuse::Reallocate);
        let mut retired = replaced.clone();
        retired.generation = RETIRED_GENERATION;
        assert_eq!(reuse_of(&retired).unwrap(), Reuse::AsIs);
        retired.node = None;
        assert!(matches!(
            reuse_of(&retired),
            Err(TokenserverError::Internal(_))
        ));
    }

    #[test]
    fn kid_number_falls_back_on_null_and_zero() {
        assert_eq!(kid_number(7, Some(5)), 5);
        assert_eq!(kid_number(7, None), 7);
        assert_eq!(kid_number(7, Some(0)), 7);
    }
}
