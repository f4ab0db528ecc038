//! A local evaluator of ECR's documented lifecycle semantics ("Lifecycle policy evaluation rules"
//! and "Examples of lifecycle policies" in the ECR user guide): what the rules would do to a
//! repository's images at a given moment. It serves the preview, which ECR's own preview API
//! cannot (asynchronous, one repository at a time, absent from emulators).
//!
//! The semantics, as implemented:
//! - rules are evaluated in priority order, lowest number first; an image is acted on by at most
//!   one rule;
//! - a rule *selects* the images that meet its tag criteria (tagStatus and every entry of its
//!   tag list) in its storage class; all of them count for the rule, but it acts only on those
//!   that no higher-priority rule selected (whether that rule acted on them or not);
//! - `imageCountMoreThan N` keeps the newest N selected images by push time and acts on the
//!   rest; equal push times are ordered by digest, the greater digest counting as newer, so the
//!   result never depends on the order of the input;
//! - `since*` act on selected images whose reference time lies more than N days before `now`:
//!   the push; the last recorded pull, or the push for an image never pulled (ECR records pulls
//!   at most daily, and not before 2021); the move to the archive (an archived image without that
//!   time is kept).

use std::cmp::Ordering;

use super::rule::{Action, Count, Rule, SECONDS_PER_DAY};
use crate::api::{LifecyclePreview, MAX_PREVIEW_EXAMPLE_LENGTH, MAX_PREVIEW_EXAMPLES, PreviewTotals};
use crate::images::Image;

/// What the policy does to one image, naming the rule that does it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    Keep,
    Expire { priority: u32 },
    Transition { priority: u32 },
}

impl Verdict {
    /// The priority of the rule that acts on the image, if one does.
    pub fn priority(self) -> Option<u32> {
        match self {
            Self::Keep => None,
            Self::Expire { priority } | Self::Transition { priority } => Some(priority),
        }
    }
}

/// One verdict per image, in the order of `images`. Digests are unique within a repository;
/// `rules` may come in any order.
pub fn evaluate(rules: &[Rule], images: &[Image], now_unix_seconds: i64) -> Vec<Verdict> {
    let mut by_priority: Vec<&Rule> = rules.iter().collect();
    by_priority.sort_by_key(|rule| rule.priority);
    let mut newest_first: Vec<usize> = (0..images.len()).collect();
    newest_first.sort_by(|&a, &b| newer_first(&images[a], &images[b]));

    let mut verdicts = vec![Verdict::Keep; images.len()];
    let mut selected_by_higher_rule = vec![false; images.len()];
    for rule in by_priority {
        let selected: Vec<usize> = newest_first
            .iter()
            .copied()
            .filter(|&index| rule.selects(&images[index]))
            .collect();
        let acted_on: Vec<usize> = match rule.count {
            Count::MoreThan(keep) => selected.iter().skip(keep as usize).copied().collect(),
            Count::SincePushed { days } | Count::SincePulled { days } | Count::SinceTransitioned { days } => {
                let cutoff = now_unix_seconds.saturating_sub(i64::from(days) * SECONDS_PER_DAY);
                selected
                    .iter()
                    .copied()
                    .filter(|&index| reference_time(rule.count, &images[index]).is_some_and(|time| time < cutoff))
                    .collect()
            }
        };
        for index in acted_on {
            if !selected_by_higher_rule[index] {
                verdicts[index] = match rule.action {
                    Action::Expire => Verdict::Expire {
                        priority: rule.priority,
                    },
                    Action::TransitionToArchive => Verdict::Transition {
                        priority: rule.priority,
                    },
                };
            }
        }
        for index in selected {
            selected_by_higher_rule[index] = true;
        }
    }
    verdicts
}

/// Newest first by push time, then by digest (greater first): a total order on distinct images.
fn newer_first(a: &Image, b: &Image) -> Ordering {
    b.pushed_at.cmp(&a.pushed_at).then_with(|| b.digest.cmp(&a.digest))
}

/// The time an age-based count measures from; None when the image has none (then it is kept).
fn reference_time(count: Count, image: &Image) -> Option<i64> {
    match count {
        Count::MoreThan(_) => None,
        Count::SincePushed { .. } => Some(image.pushed_at),
        Count::SincePulled { .. } => Some(image.last_pulled_at.unwrap_or(image.pushed_at)),
        Count::SinceTransitioned { .. } => image.transitioned_at,
    }
}

/// What the rules would do to one repository, in numbers and a few examples.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Preview {
    pub expire: usize,
    pub transition: usize,
    pub keep: usize,
    /// Up to 5 images acted on, oldest first: their tags (sorted, comma-separated) or, untagged,
    /// their digest.
    pub examples: Vec<String>,
}

/// Counts the verdicts (as `evaluate` returned them for `images`) and picks the examples.
pub fn preview(images: &[Image], verdicts: &[Verdict]) -> Preview {
    debug_assert_eq!(images.len(), verdicts.len(), "one verdict per image");
    let mut preview = Preview::default();
    let mut acted_on: Vec<&Image> = Vec::new();
    for (image, verdict) in images.iter().zip(verdicts) {
        match verdict {
            Verdict::Keep => preview.keep += 1,
            Verdict::Expire { .. } => preview.expire += 1,
            Verdict::Transition { .. } => preview.transition += 1,
        }
        if *verdict != Verdict::Keep {
            acted_on.push(image);
        }
    }
    acted_on.sort_by(|a, b| newer_first(b, a));
    preview.examples = acted_on.into_iter().take(MAX_PREVIEW_EXAMPLES).map(example).collect();
    preview
}

/// How an image appears among the examples, within the status field's bound.
fn example(image: &Image) -> String {
    let label = if image.tags.is_empty() {
        image.digest.clone()
    } else {
        let mut tags = image.tags.clone();
        tags.sort();
        tags.join(",")
    };
    if label.chars().count() <= MAX_PREVIEW_EXAMPLE_LENGTH {
        return label;
    }
    let mut shortened: String = label.chars().take(MAX_PREVIEW_EXAMPLE_LENGTH - 1).collect();
    shortened.push('…');
    shortened
}

fn count(number: usize) -> i64 {
    i64::try_from(number).unwrap_or(i64::MAX)
}

impl Preview {
    /// The status entry for `repository`.
    pub fn to_status(&self, repository: &str) -> LifecyclePreview {
        LifecyclePreview {
            repository: repository.to_owned(),
            expire: count(self.expire),
            transition: count(self.transition),
            keep: count(self.keep),
            examples: self.examples.clone(),
        }
    }

    /// Adds this repository's numbers to the totals over all selected repositories.
    pub fn add_to(&self, totals: &mut PreviewTotals) {
        totals.repositories = totals.repositories.saturating_add(1);
        totals.expire = totals.expire.saturating_add(count(self.expire));
        totals.transition = totals.transition.saturating_add(count(self.transition));
        totals.keep = totals.keep.saturating_add(count(self.keep));
    }
}

#[cfg(test)]
#[path = "evaluate_tests.rs"]
mod tests;
