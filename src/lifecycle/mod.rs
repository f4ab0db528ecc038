//! Lifecycle rules, pure: validation, rendering to ECR's JSON grammar, semantic comparison and
//! a local evaluator of ECR's documented semantics (the preview). No IO and no Kubernetes client:
//! it depends only on `crate::api` and `crate::images::Image`.
//!
//! The reconciler's path: `rules(&spec)` (refusing an invalid spec with a message naming the
//! field) → `render(&rules)` (refusing a text over ECR's limit) → `equivalent(&desired,
//! &observed)` decides whether to write; `evaluate` + `preview` fill `status.preview`.

mod compare;
mod evaluate;
mod render;
mod rule;
mod validate;

#[cfg(test)]
mod test_support;

pub use compare::{canonical, equivalent};
pub use evaluate::{Preview, Verdict, evaluate, preview};
pub use render::{MAX_POLICY_TEXT_CHARS, render};
pub use rule::{Action, Count, Rule, SECONDS_PER_DAY, TagFilter, TagSelection, wildcard_matches};
pub use validate::{InvalidRule, rules};
