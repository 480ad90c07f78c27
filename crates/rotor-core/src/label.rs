//! Staging labels and the rules that move them.
//!
//! A [`LabelBoard`] is the label state of one secret: which labels each version holds.
//! Every way labels change (a new version, `UpdateSecretVersionStage`) goes through it,
//! so the invariants hold for every API and backend alike:
//!
//! - a label is on at most one version of a secret;
//! - a secret with any version has exactly one `AWSCURRENT` (the first version gets it
//!   whatever was asked, and it can only be moved, never removed);
//! - moving `AWSCURRENT` moves `AWSPREVIOUS` to the version it left.

use crate::error::{Error, ErrorKind, Result};
use chrono::{DateTime, Duration, Utc};
use std::collections::{BTreeMap, BTreeSet};

/// The version clients read by default.
pub const AWSCURRENT: &str = "AWSCURRENT";
/// The version `AWSCURRENT` was on before its last move.
pub const AWSPREVIOUS: &str = "AWSPREVIOUS";
/// The version a rotation is preparing.
pub const AWSPENDING: &str = "AWSPENDING";
/// Most labels one version may hold.
pub const MAX_LABELS_PER_VERSION: usize = 20;
/// Longest label.
pub const MAX_LABEL_LEN: usize = 256;
/// Versions kept before unlabeled (deprecated) ones are pruned.
pub const MAX_VERSIONS: usize = 100;
/// Youngest a deprecated version may be and still be pruned.
pub const MIN_PRUNE_AGE_HOURS: i64 = 24;
/// Most versions a secret holds, however young: past it the oldest unlabeled
/// versions go regardless of age (AWS instead refuses puts at its version quota;
/// Rotor keeps writing and stays bounded). With [`MAX_LABELS_PER_SECRET`] and the
/// 64 KiB value limit this bounds what one secret can store.
pub const MAX_STORED_VERSIONS: usize = 1_000;
/// Versions pruned at once past [`MAX_STORED_VERSIONS`], so that a secret written in
/// a tight loop prunes once per batch rather than at every put.
pub const PRUNE_BATCH: usize = 100;
/// Most distinct staging labels one secret may hold: labeled versions are never
/// pruned, so this bounds them.
pub const MAX_LABELS_PER_SECRET: usize = 200;

/// Maps the aliases the CLI and native API accept to the label they stand for:
/// `current`/`previous`/`pending` and Alibaba's `ACSCurrent`/`ACSPrevious`.
/// Anything else is a label of its own.
pub fn resolve_alias(label: &str) -> &str {
    match label {
        "current" | "ACSCurrent" => AWSCURRENT,
        "previous" | "ACSPrevious" => AWSPREVIOUS,
        "pending" | "ACSPending" => AWSPENDING,
        other => other,
    }
}

/// Checks one label's form.
pub fn validate_label(label: &str) -> Result<()> {
    if label.is_empty() || label.chars().count() > MAX_LABEL_LEN {
        return Err(Error::validation(format!(
            "Invalid staging label: it must be 1 to {MAX_LABEL_LEN} characters long"
        )));
    }
    if label.chars().any(|c| c.is_control()) {
        return Err(Error::validation(
            "Invalid staging label: control characters are not allowed",
        ));
    }
    Ok(())
}

/// The labels on each version of one secret, versions in creation order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelBoard {
    versions: Vec<(String, BTreeSet<String>)>,
}

impl LabelBoard {
    /// A board from stored state: `(version id, labels)` in creation order.
    pub fn from_versions<I, L>(versions: I) -> Self
    where
        I: IntoIterator<Item = (String, L)>,
        L: IntoIterator<Item = String>,
    {
        LabelBoard {
            versions: versions
                .into_iter()
                .map(|(id, labels)| (id, labels.into_iter().collect()))
                .collect(),
        }
    }

    /// The version holding `label`, if any.
    pub fn holder(&self, label: &str) -> Option<&str> {
        self.versions
            .iter()
            .find(|(_, labels)| labels.contains(label))
            .map(|(id, _)| id.as_str())
    }

    /// The labels of version `id` (empty when it has none or does not exist).
    pub fn labels_of(&self, id: &str) -> Vec<String> {
        self.slot(id)
            .map(|i| self.versions[i].1.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Whether version `id` exists.
    pub fn contains(&self, id: &str) -> bool {
        self.slot(id).is_some()
    }

    /// Every version and its labels, in creation order.
    pub fn versions(&self) -> impl Iterator<Item = (&str, &BTreeSet<String>)> {
        self.versions.iter().map(|(id, l)| (id.as_str(), l))
    }

    fn slot(&self, id: &str) -> Option<usize> {
        self.versions.iter().position(|(v, _)| v == id)
    }

    fn detach(&mut self, label: &str) -> Option<String> {
        let (id, labels) = self
            .versions
            .iter_mut()
            .find(|(_, labels)| labels.contains(label))?;
        labels.remove(label);
        Some(id.clone())
    }

    fn attach(&mut self, label: &str, id: &str) -> Result<()> {
        let i = self
            .slot(id)
            .ok_or_else(|| Error::not_found(format!("Version {id} does not exist")))?;
        if self.holder(label).is_none() {
            let held: usize = self.versions.iter().map(|(_, l)| l.len()).sum();
            if held >= MAX_LABELS_PER_SECRET {
                return Err(Error::new(
                    ErrorKind::LimitExceeded,
                    format!("A secret can hold at most {MAX_LABELS_PER_SECRET} staging labels"),
                ));
            }
        }
        self.versions[i].1.insert(label.to_string());
        if self.versions[i].1.len() > MAX_LABELS_PER_VERSION {
            return Err(Error::new(
                ErrorKind::LimitExceeded,
                format!(
                    "Version {id} would hold more than {MAX_LABELS_PER_VERSION} staging labels"
                ),
            ));
        }
        Ok(())
    }

    /// Moves `label` to version `to`; when it is `AWSCURRENT`, the version it leaves
    /// gets `AWSPREVIOUS` unless `keep_previous` says another rule placed it.
    fn place(&mut self, label: &str, to: &str, keep_previous: bool) -> Result<()> {
        let from = self.detach(label);
        self.attach(label, to)?;
        if label == AWSCURRENT
            && !keep_previous
            && let Some(from) = from.filter(|f| f != to)
        {
            self.detach(AWSPREVIOUS);
            self.attach(AWSPREVIOUS, &from)?;
        }
        Ok(())
    }

    /// Adds a new version `id` holding `stages`, moving each from wherever it was.
    ///
    /// The first version of a secret always gets `AWSCURRENT`. `id` must be new: the
    /// caller decides idempotency (same token, same value) before calling.
    pub fn put_version(&mut self, id: &str, stages: &[String]) -> Result<()> {
        if self.contains(id) {
            return Err(Error::exists(format!("Version {id} already exists")));
        }
        let mut wanted: BTreeSet<&str> = BTreeSet::new();
        for stage in stages {
            validate_label(stage)?;
            wanted.insert(stage.as_str());
        }
        if self.versions.is_empty() {
            wanted.insert(AWSCURRENT);
        }
        if wanted.len() > MAX_LABELS_PER_VERSION {
            return Err(Error::new(
                ErrorKind::LimitExceeded,
                format!("A version can hold at most {MAX_LABELS_PER_VERSION} staging labels"),
            ));
        }
        self.versions.push((id.to_string(), BTreeSet::new()));
        let explicit_previous = wanted.contains(AWSPREVIOUS);
        // AWSCURRENT first, so that an explicit AWSPREVIOUS in `stages` wins over the
        // automatic one.
        if wanted.contains(AWSCURRENT) {
            self.place(AWSCURRENT, id, explicit_previous)?;
        }
        for stage in wanted.iter().filter(|s| **s != AWSCURRENT) {
            self.place(stage, id, false)?;
        }
        Ok(())
    }

    /// `UpdateSecretVersionStage`: moves `label` to `move_to`, or removes it from
    /// `remove_from`, with AWS's rules.
    ///
    /// - If the label is on another version than `move_to`, `remove_from` must name
    ///   that version.
    /// - If `remove_from` is given, the label must be on it.
    /// - `AWSCURRENT` can be moved but not removed.
    pub fn move_label(
        &mut self,
        label: &str,
        move_to: Option<&str>,
        remove_from: Option<&str>,
    ) -> Result<()> {
        validate_label(label)?;
        for id in [move_to, remove_from].into_iter().flatten() {
            if !self.contains(id) {
                return Err(Error::not_found(format!(
                    "Secrets Manager can't find the specified secret version: {id}"
                )));
            }
        }
        let holder = self.holder(label).map(str::to_string);
        if let Some(from) = remove_from
            && holder.as_deref() != Some(from)
        {
            return Err(Error::invalid_parameter(format!(
                "The staging label {label} is not attached to version {from}, so you can't remove it from that version"
            )));
        }
        match move_to {
            Some(to) => {
                if let Some(h) = holder.as_deref().filter(|h| *h != to)
                    && remove_from != Some(h)
                {
                    return Err(Error::invalid_parameter(format!(
                        "The parameter RemoveFromVersionId can't be empty. Staging label {label} is currently attached to version {h}, so you must explicitly reference that version in RemoveFromVersionId."
                    )));
                }
                if holder.as_deref() == Some(to) {
                    return Ok(());
                }
                self.place(label, to, false)
            }
            None => match remove_from {
                None => Err(Error::invalid_parameter(
                    "Specify MoveToVersionId, RemoveFromVersionId, or both",
                )),
                Some(_) if label == AWSCURRENT => Err(Error::invalid_parameter(
                    "AWSCURRENT can't be removed from a version, only moved to another one with MoveToVersionId",
                )),
                Some(_) => {
                    self.detach(label);
                    Ok(())
                }
            },
        }
    }

    /// Checks the label invariants, saying which one broke.
    pub fn check_invariants(&self) -> std::result::Result<(), String> {
        let mut seen = BTreeSet::new();
        for (id, labels) in &self.versions {
            if labels.len() > MAX_LABELS_PER_VERSION {
                return Err(format!("version {id} holds {} labels", labels.len()));
            }
            for l in labels {
                if !seen.insert(l.clone()) {
                    return Err(format!("label {l} is on more than one version"));
                }
            }
        }
        if !self.versions.is_empty() && !seen.contains(AWSCURRENT) {
            return Err("the secret has versions but no AWSCURRENT".into());
        }
        Ok(())
    }

    /// Which version holds each label.
    pub fn holders(&self) -> BTreeMap<String, String> {
        self.versions
            .iter()
            .flat_map(|(id, labels)| labels.iter().map(move |l| (l.clone(), id.clone())))
            .collect()
    }

    /// What changed from `before` to `self`: labels no longer held by any version, and
    /// labels now held by a different (or a first) version, with that version.
    pub fn label_changes(&self, before: &LabelBoard) -> (Vec<String>, Vec<(String, String)>) {
        let (old, new) = (before.holders(), self.holders());
        let gone = old
            .keys()
            .filter(|l| !new.contains_key(*l))
            .cloned()
            .collect();
        let moved = new
            .into_iter()
            .filter(|(l, v)| old.get(l) != Some(v))
            .collect();
        (gone, moved)
    }
}

/// Which deprecated (unlabeled) versions to delete: once a secret has more than
/// [`MAX_VERSIONS`] (`total`), the oldest unlabeled versions older than 24 hours go
/// first, until it is back at the limit; and once it has more than
/// [`MAX_STORED_VERSIONS`], the oldest unlabeled versions of any age go until it is
/// [`PRUNE_BATCH`] below that. `unlabeled` holds `(id, created)` of unlabeled versions,
/// at least the oldest [`prune_candidates`]`(total)` of them, in any order.
pub fn prunable(
    total: usize,
    unlabeled: &[(String, DateTime<Utc>)],
    now: DateTime<Utc>,
) -> Vec<String> {
    if total <= MAX_VERSIONS {
        return Vec::new();
    }
    let cutoff = now - Duration::hours(MIN_PRUNE_AGE_HOURS);
    let mut oldest_first: Vec<_> = unlabeled.iter().collect();
    oldest_first.sort_by_key(|(id, created)| (*created, id.clone()));
    let old = oldest_first
        .iter()
        .take_while(|(_, created)| *created <= cutoff)
        .count()
        .min(total - MAX_VERSIONS);
    let over = prune_regardless_of_age(total);
    oldest_first
        .into_iter()
        .take(old.max(over))
        .map(|(id, _)| id.clone())
        .collect()
}

/// How many of a secret's oldest unlabeled versions [`prunable`] needs to see.
pub fn prune_candidates(total: usize) -> usize {
    total.saturating_sub(MAX_VERSIONS)
}

/// How many of a secret's oldest unlabeled versions go whatever their age (past
/// [`MAX_STORED_VERSIONS`]). Of the oldest [`prune_candidates`], [`prunable`] needs to
/// see only these and those older than 24 hours: a store can leave the other young
/// ones out of what it reads.
pub fn prune_regardless_of_age(total: usize) -> usize {
    if total > MAX_STORED_VERSIONS {
        total - (MAX_STORED_VERSIONS - PRUNE_BATCH)
    } else {
        0
    }
}

/// Whether a secret with `total` versions, the oldest created at `oldest`, may have
/// versions to prune: the cheap test before looking.
pub fn may_prune(total: usize, oldest: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    total > MAX_STORED_VERSIONS
        || (total > MAX_VERSIONS
            && oldest.is_some_and(|o| o <= now - Duration::hours(MIN_PRUNE_AGE_HOURS)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn first_version_gets_awscurrent_even_when_not_asked() {
        let mut b = LabelBoard::default();
        b.put_version("v1", &s(&["AWSPENDING"])).unwrap();
        assert_eq!(b.labels_of("v1"), s(&["AWSCURRENT", "AWSPENDING"]));
    }

    #[test]
    fn moving_current_moves_previous_with_it() {
        let mut b = LabelBoard::default();
        b.put_version("v1", &s(&["AWSCURRENT"])).unwrap();
        b.put_version("v2", &s(&["AWSCURRENT"])).unwrap();
        b.put_version("v3", &s(&["AWSCURRENT"])).unwrap();
        assert_eq!(b.holder(AWSCURRENT), Some("v3"));
        assert_eq!(b.holder(AWSPREVIOUS), Some("v2"));
        assert!(b.labels_of("v1").is_empty());
        b.move_label(AWSCURRENT, Some("v1"), Some("v3")).unwrap();
        assert_eq!(b.holder(AWSCURRENT), Some("v1"));
        assert_eq!(b.holder(AWSPREVIOUS), Some("v3"));
        b.check_invariants().unwrap();
    }

    #[test]
    fn pending_version_does_not_touch_current() {
        let mut b = LabelBoard::default();
        b.put_version("v1", &s(&["AWSCURRENT"])).unwrap();
        b.put_version("v2", &s(&["AWSPENDING"])).unwrap();
        assert_eq!(b.holder(AWSCURRENT), Some("v1"));
        assert_eq!(b.holder(AWSPREVIOUS), None);
    }

    #[test]
    fn remove_from_version_id_rules() {
        let mut b = LabelBoard::default();
        b.put_version("v1", &s(&["AWSCURRENT"])).unwrap();
        b.put_version("v2", &s(&["AWSPENDING"])).unwrap();
        // Moving an attached label without naming where it is: refused.
        let e = b.move_label(AWSCURRENT, Some("v2"), None).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidParameter);
        // Naming the wrong version: refused.
        let e = b
            .move_label(AWSCURRENT, Some("v2"), Some("v2"))
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidParameter);
        // AWSCURRENT cannot be removed, only moved.
        let e = b.move_label(AWSCURRENT, None, Some("v1")).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidParameter);
        // Unknown version: not found.
        let e = b.move_label("X", Some("nope"), None).unwrap_err();
        assert_eq!(e.kind, ErrorKind::ResourceNotFound);
        // A custom label can be removed, and a free label attached without RemoveFrom.
        b.move_label("AWSPENDING", None, Some("v2")).unwrap();
        assert_eq!(b.holder(AWSPENDING), None);
        b.move_label("blue", Some("v2"), None).unwrap();
        assert_eq!(b.holder("blue"), Some("v2"));
        // Moving a label onto the version that has it is a no-op.
        b.move_label("blue", Some("v2"), None).unwrap();
        b.check_invariants().unwrap();
    }

    #[test]
    fn aliases_resolve() {
        assert_eq!(resolve_alias("current"), AWSCURRENT);
        assert_eq!(resolve_alias("ACSPrevious"), AWSPREVIOUS);
        assert_eq!(resolve_alias("pending"), AWSPENDING);
        assert_eq!(resolve_alias("MyPendingLabel"), "MyPendingLabel");
    }

    #[test]
    fn pruning_keeps_young_versions_and_stops_at_the_limit() {
        let now = Utc::now();
        let old = now - Duration::hours(25);
        let young = now - Duration::hours(1);
        let mut v: Vec<_> = (0..100)
            .rev()
            .map(|i| (format!("old{i:03}"), old + Duration::seconds(i)))
            .collect();
        v.push(("young".into(), young));
        // 100 old unlabeled + 1 young unlabeled + 1 labeled = 102 versions: two go.
        assert_eq!(prunable(102, &v, now), s(&["old000", "old001"]));
        assert!(prunable(100, &v, now).is_empty());
        // Nothing old enough: nothing pruned even past the limit.
        let all_young: Vec<_> = (0..105).map(|i| (format!("y{i}"), young)).collect();
        assert!(prunable(105, &all_young, now).is_empty());
    }

    /// Issue 11, hole 10: versions grew without bound within a day. Past
    /// MAX_STORED_VERSIONS even young unlabeled versions go, a batch at a time.
    #[test]
    fn pruning_bounds_young_versions_too() {
        let now = Utc::now();
        let young = now - Duration::hours(1);
        let total = MAX_STORED_VERSIONS + 1;
        let v: Vec<_> = (0..total - 2)
            .map(|i| (format!("y{i:04}"), young + Duration::milliseconds(i as i64)))
            .collect();
        let doomed = prunable(total, &v, now);
        assert_eq!(doomed.len(), PRUNE_BATCH + 1);
        assert_eq!(doomed[0], "y0000", "oldest first");
        assert!(may_prune(total, Some(young), now));
        assert!(!may_prune(MAX_STORED_VERSIONS, Some(young), now));
    }

    /// A store reads only the oldest versions that go regardless of age and those
    /// older than 24 hours; `prunable` decides the same from those as from all.
    #[test]
    fn the_old_and_the_oldest_are_enough_to_decide() {
        let now = Utc::now();
        for (total, old) in [(1_150, 0), (1_150, 30), (1_150, 400), (300, 50), (1_001, 1)] {
            let all: Vec<_> = (0..total - 1)
                .map(|i| {
                    let age = if i < old { 48 } else { 1 };
                    let created = now - Duration::hours(age) + Duration::milliseconds(i as i64);
                    (format!("v{i:05}"), created)
                })
                .collect();
            let cutoff = now - Duration::hours(MIN_PRUNE_AGE_HOURS);
            let read: Vec<_> = all
                .iter()
                .take(prune_candidates(total))
                .enumerate()
                .filter(|(n, (_, created))| {
                    *created <= cutoff || *n < prune_regardless_of_age(total)
                })
                .map(|(_, v)| v.clone())
                .collect();
            assert!(read.len() <= prune_regardless_of_age(total).max(old));
            assert_eq!(
                prunable(total, &read, now),
                prunable(total, &all, now),
                "{total} {old}"
            );
        }
    }

    #[test]
    fn a_secret_holds_a_bounded_number_of_labels() {
        let mut board = LabelBoard::default();
        board.put_version("v0", &[]).unwrap();
        let mut refused = None;
        for i in 1..=MAX_LABELS_PER_SECRET {
            if let Err(e) = board.put_version(&format!("v{i}"), &[format!("label{i}")]) {
                refused = Some((i, e));
                break;
            }
        }
        let (at, e) = refused.expect("a limit");
        assert_eq!(e.kind, ErrorKind::LimitExceeded);
        // AWSCURRENT (on v0) counts too.
        assert_eq!(at, MAX_LABELS_PER_SECRET);
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Op {
            Put(Vec<String>),
            Move(String, Option<usize>, Option<usize>),
        }

        fn label() -> impl Strategy<Value = String> {
            prop_oneof![
                Just(AWSCURRENT.to_string()),
                Just(AWSPREVIOUS.to_string()),
                Just(AWSPENDING.to_string()),
                Just("blue".to_string()),
                Just("green".to_string()),
            ]
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                proptest::collection::vec(label(), 0..3).prop_map(Op::Put),
                (
                    label(),
                    proptest::option::of(0usize..8),
                    proptest::option::of(0usize..8)
                )
                    .prop_map(|(l, a, b)| Op::Move(l, a, b)),
            ]
        }

        proptest! {
            #[test]
            fn invariants_hold_after_any_sequence(ops in proptest::collection::vec(op(), 1..40)) {
                let mut b = LabelBoard::default();
                let mut n = 0;
                for op in ops {
                    let before = b.clone();
                    let result = match op {
                        Op::Put(stages) => { n += 1; b.put_version(&format!("v{n}"), &stages) }
                        Op::Move(l, to, from) => {
                            let to = to.map(|i| format!("v{i}"));
                            let from = from.map(|i| format!("v{i}"));
                            b.move_label(&l, to.as_deref(), from.as_deref())
                        }
                    };
                    if result.is_err() {
                        // A refused change must leave no trace. Callers work on a copy,
                        // so restore it as they do.
                        b = before;
                    }
                    prop_assert_eq!(b.check_invariants(), Ok(()));
                }
            }
        }
    }
}
