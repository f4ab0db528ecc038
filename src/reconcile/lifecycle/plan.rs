//! What to do with one repository's lifecycle policy, and the LifecyclePolicy's status; pure.

use crate::api::{LifecyclePreview, PreviewTotals, SelectedRepository, SelectionState};
use crate::reconcile::harness::Change;

/// One write to a repository's lifecycle policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LifecycleChange {
    /// PutLifecyclePolicy: one call replaces the text (never delete + put).
    Put,
    /// DeleteLifecyclePolicy: only where berth put the policy.
    Delete,
}

impl Change for LifecycleChange {
    fn operation(&self) -> &'static str {
        match self {
            LifecycleChange::Put => "PutLifecyclePolicy",
            LifecycleChange::Delete => "DeleteLifecyclePolicy",
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            LifecycleChange::Put => "LifecyclePolicyApplied",
            LifecycleChange::Delete => "LifecyclePolicyRemoved",
        }
    }

    fn field(&self) -> &'static str {
        "lifecyclePolicy"
    }

    /// Removal follows a selection change; it is never drift.
    fn corrects_drift(&self) -> bool {
        *self == LifecycleChange::Put
    }
}

/// Compares semantically: an equivalent text in any spelling or order is left alone.
pub fn plan_policy(desired: Option<&str>, observed: Option<&str>) -> Option<LifecycleChange> {
    match (desired, observed) {
        (Some(desired), Some(observed)) if crate::lifecycle::equivalent(desired, observed) => None,
        (Some(_), _) => Some(LifecycleChange::Put),
        (None, Some(_)) => Some(LifecycleChange::Delete),
        (None, None) => None,
    }
}

/// How many repositories the preview lists; the totals cover them all.
pub const MAX_PREVIEWED: usize = crate::api::MAX_PREVIEW_REPOSITORIES;

/// The preview as status holds it: the repositories losing most first, at most
/// [`MAX_PREVIEWED`], and totals over all of them.
pub fn bounded_preview(mut previews: Vec<LifecyclePreview>) -> (Vec<LifecyclePreview>, PreviewTotals) {
    let totals = PreviewTotals {
        repositories: previews.len() as i64,
        expire: previews.iter().map(|p| p.expire).sum(),
        transition: previews.iter().map(|p| p.transition).sum(),
        keep: previews.iter().map(|p| p.keep).sum(),
    };
    previews.sort_by(|a, b| {
        (b.expire + b.transition)
            .cmp(&(a.expire + a.transition))
            .then_with(|| a.repository.cmp(&b.repository))
    });
    previews.truncate(MAX_PREVIEWED);
    (previews, totals)
}

/// How many repositories `status.repositories` lists (the schema's bound).
pub const MAX_LISTED: usize = crate::api::MAX_STATUS_REPOSITORIES;

/// The per-repository list, sorted so that the status is deterministic: errors and conflicts
/// first (what needs attention), then by name; at most [`MAX_LISTED`], messages cut to the
/// schema's bound.
pub fn sorted_states(mut states: Vec<SelectedRepository>) -> Vec<SelectedRepository> {
    for state in &mut states {
        if let Some(message) = &mut state.message
            && message.len() > crate::api::MAX_STATUS_MESSAGE_LENGTH
        {
            let max = crate::api::MAX_STATUS_MESSAGE_LENGTH - '…'.len_utf8();
            *message = format!("{}…", crate::naming::cut(message, max));
        }
    }
    let rank = |state: SelectionState| match state {
        SelectionState::Error => 0,
        SelectionState::Conflict => 1,
        SelectionState::Applied | SelectionState::Previewed => 2,
    };
    states.sort_by(|a, b| rank(a.state).cmp(&rank(b.state)).then_with(|| a.name.cmp(&b.name)));
    states.truncate(MAX_LISTED);
    states
}

/// Whether any repository is in the Error state.
pub fn has_errors(states: &[SelectedRepository]) -> bool {
    states.iter().any(|s| s.state == SelectionState::Error)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEEP_30: &str = r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"tagged","tagPatternList":["v*"],"countType":"imageCountMoreThan","countNumber":30},"action":{"type":"expire"}}]}"#;

    #[test]
    fn an_equivalent_policy_is_left_alone_and_a_different_one_is_put_once() {
        let respelled = r#"{ "rules" : [ { "action":{"type":"expire"}, "rulePriority":1, "selection":{"countNumber":30,"countType":"imageCountMoreThan","tagPatternList":["v*"],"tagStatus":"tagged"} } ] }"#;
        assert_eq!(plan_policy(Some(KEEP_30), Some(respelled)), None);
        let other = KEEP_30.replace("30", "10");
        assert_eq!(plan_policy(Some(KEEP_30), Some(&other)), Some(LifecycleChange::Put));
        assert_eq!(plan_policy(Some(KEEP_30), None), Some(LifecycleChange::Put));
        assert_eq!(plan_policy(None, Some(KEEP_30)), Some(LifecycleChange::Delete));
        assert_eq!(plan_policy(None, None), None);
    }

    fn preview(repository: &str, expire: i64) -> LifecyclePreview {
        LifecyclePreview {
            repository: repository.into(),
            expire,
            transition: 0,
            keep: 1,
            examples: vec![],
        }
    }

    #[test]
    fn repositories_that_need_attention_are_listed_first() {
        let state = |name: &str, state| SelectedRepository {
            name: name.into(),
            state,
            message: None,
        };
        let sorted = sorted_states(vec![
            state("a", SelectionState::Applied),
            state("b", SelectionState::Conflict),
            state("c", SelectionState::Error),
            state("d", SelectionState::Applied),
        ]);
        let names: Vec<&str> = sorted.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["c", "b", "a", "d"]);
        assert!(has_errors(&sorted));
        let many: Vec<_> = (0..1200)
            .map(|i| state(&format!("r{i}"), SelectionState::Applied))
            .collect();
        assert_eq!(sorted_states(many).len(), MAX_LISTED);
        let long = SelectedRepository {
            message: Some("é".repeat(600)),
            ..state("x", SelectionState::Error)
        };
        let cut = sorted_states(vec![long]).remove(0).message.unwrap();
        assert!(cut.len() <= crate::api::MAX_STATUS_MESSAGE_LENGTH && cut.ends_with('…'));
    }

    #[test]
    fn the_preview_lists_the_biggest_losers_first_and_totals_everything() {
        let previews: Vec<_> = (0..150).map(|i| preview(&format!("r{i:03}"), i)).collect();
        let (listed, totals) = bounded_preview(previews);
        assert_eq!(listed.len(), MAX_PREVIEWED);
        assert_eq!(listed[0].repository, "r149");
        assert_eq!(listed[99].repository, "r050");
        assert_eq!(totals.repositories, 150);
        assert_eq!(totals.expire, (0..150).sum::<i64>());
        assert_eq!(totals.keep, 150);
        // ties are broken by name
        let (listed, _) = bounded_preview(vec![preview("b", 1), preview("a", 1)]);
        assert_eq!(listed[0].repository, "a");
    }
}
