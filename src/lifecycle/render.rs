//! Rendering rules to ECR's lifecycle policy JSON: the documented grammar exactly (lower-case
//! values, no nulls, no optional key without a value), rules sorted by priority, compact and
//! deterministic, so the same spec always yields the same text.

use serde::Serialize;

use super::rule::{Action, Count, Rule, TagFilter, TagSelection};
use super::validate::InvalidRule;
use crate::api::StorageClass;

/// ECR's limit on `lifecyclePolicyText`, in characters.
pub const MAX_POLICY_TEXT_CHARS: usize = 30_720;

#[derive(Serialize)]
struct PolicyDocument<'a> {
    rules: Vec<RuleDocument<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RuleDocument<'a> {
    rule_priority: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    selection: SelectionDocument<'a>,
    action: ActionDocument,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SelectionDocument<'a> {
    tag_status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    tag_pattern_list: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tag_prefix_list: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    storage_class: Option<&'static str>,
    count_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    count_unit: Option<&'static str>,
    count_number: u32,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ActionDocument {
    #[serde(rename = "type")]
    type_: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    target_storage_class: Option<&'static str>,
}

/// The lifecycle policy text for `rules`, or InvalidRule (naming `spec.rules`) when it exceeds
/// ECR's 30,720 characters: checked here so that no AWS call is made for it.
pub fn render(rules: &[Rule]) -> Result<String, InvalidRule> {
    let mut ordered: Vec<&Rule> = rules.iter().collect();
    ordered.sort_by_key(|rule| rule.priority);
    let document = PolicyDocument {
        rules: ordered.into_iter().map(rule_document).collect(),
    };
    let text = serde_json::to_string(&document).expect("a lifecycle policy document serializes to JSON");
    let length = text.chars().count();
    if length > MAX_POLICY_TEXT_CHARS {
        return Err(InvalidRule(format!(
            "spec.rules: the rendered lifecycle policy has {length} characters, ECR allows at most {MAX_POLICY_TEXT_CHARS}; use fewer or shorter rules, tag filters or descriptions"
        )));
    }
    Ok(text)
}

fn rule_document(rule: &Rule) -> RuleDocument<'_> {
    let (tag_status, tag_pattern_list, tag_prefix_list) = match &rule.tags {
        TagSelection::Tagged(TagFilter::Patterns(patterns)) => ("tagged", Some(patterns.as_slice()), None),
        TagSelection::Tagged(TagFilter::Prefixes(prefixes)) => ("tagged", None, Some(prefixes.as_slice())),
        TagSelection::Untagged => ("untagged", None, None),
        TagSelection::Any => ("any", None, None),
    };
    let (count_type, count_unit, count_number) = match rule.count {
        Count::MoreThan(images) => ("imageCountMoreThan", None, images),
        Count::SincePushed { days } => ("sinceImagePushed", Some("days"), days),
        Count::SincePulled { days } => ("sinceImagePulled", Some("days"), days),
        Count::SinceTransitioned { days } => ("sinceImageTransitioned", Some("days"), days),
    };
    let action = match rule.action {
        Action::Expire => ActionDocument {
            type_: "expire",
            target_storage_class: None,
        },
        Action::TransitionToArchive => ActionDocument {
            type_: "transition",
            target_storage_class: Some("archive"),
        },
    };
    RuleDocument {
        rule_priority: rule.priority,
        description: rule.description.as_deref(),
        selection: SelectionDocument {
            tag_status,
            tag_pattern_list,
            tag_prefix_list,
            // standard is ECR's default and stays implicit: the classic grammar, which every
            // ECR endpoint and emulator accepts, for every policy that does not use the archive
            storage_class: match rule.storage_class {
                StorageClass::Standard => None,
                StorageClass::Archive => Some("archive"),
            },
            count_type,
            count_unit,
            count_number,
        },
        action,
    }
}

#[cfg(test)]
#[path = "render_tests.rs"]
mod tests;
