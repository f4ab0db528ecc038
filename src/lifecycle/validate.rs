//! The LifecyclePolicy rules again, in Rust: apiservers older than 1.25 drop the CRD's CEL rules,
//! so the controller must refuse what CEL would have refused, before any AWS call, with a message
//! that names the field. Also checks the schema's bounds and patterns, which a CRD installed by
//! hand (or an older version of it) may lack.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;

use super::rule::{Action, Count, Rule, TagFilter, TagSelection};
use crate::api::{
    CountType, LABEL_VALUE_PATTERN, LifecycleActionType, LifecyclePolicySpec, LifecycleRule, LifecycleSelection,
    MAX_COUNT_NUMBER, MAX_LIFECYCLE_RULES, MAX_MATCH_LABELS, MAX_REPOSITORY_NAMES, MAX_RULE_DESCRIPTION_LENGTH,
    MAX_RULE_PRIORITY, MAX_TAG_FILTER_LENGTH, MAX_TAG_FILTERS, MAX_WILDCARDS_PER_PATTERN, OBJECT_NAME_PATTERN,
    StorageClass, TAG_PREFIX_PATTERN, TAG_WILDCARD_PATTERN, TagStatus,
};

/// A LifecyclePolicy spec that ECR (or berth) cannot accept; the message starts with the field,
/// e.g. `spec.rules[2].selection.tagPatterns[0]: ...`. The reconciler reports it as InvalidSpec.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidRule(pub String);

fn invalid(message: String) -> InvalidRule {
    InvalidRule(message)
}

fn regex(pattern: &str) -> Regex {
    Regex::new(pattern).expect("berth's own patterns compile")
}

static OBJECT_NAME: LazyLock<Regex> = LazyLock::new(|| regex(OBJECT_NAME_PATTERN));
static LABEL_VALUE: LazyLock<Regex> = LazyLock::new(|| regex(LABEL_VALUE_PATTERN));
static LABEL_NAME: LazyLock<Regex> = LazyLock::new(|| regex(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"));
static TAG_WILDCARD: LazyLock<Regex> = LazyLock::new(|| regex(TAG_WILDCARD_PATTERN));
static TAG_PREFIX: LazyLock<Regex> = LazyLock::new(|| regex(TAG_PREFIX_PATTERN));

/// Validates the whole spec (repository selection and rules) and returns the rules in berth's
/// model, in spec order.
pub fn rules(spec: &LifecyclePolicySpec) -> Result<Vec<Rule>, InvalidRule> {
    check_repository_selection(spec)?;
    if spec.rules.is_empty() || spec.rules.len() > MAX_LIFECYCLE_RULES {
        return Err(invalid(format!(
            "spec.rules: {} rules given, 1 to {MAX_LIFECYCLE_RULES} are allowed",
            spec.rules.len()
        )));
    }
    let rules = spec
        .rules
        .iter()
        .enumerate()
        .map(|(index, rule)| to_rule(&format!("spec.rules[{index}]"), rule))
        .collect::<Result<Vec<_>, _>>()?;
    check_priorities(&rules)?;
    Ok(rules)
}

fn check_repository_selection(spec: &LifecyclePolicySpec) -> Result<(), InvalidRule> {
    match (&spec.repository_selector, spec.repositories.is_empty()) {
        (Some(_), false) | (None, true) => {
            return Err(invalid(
                "spec.repositorySelector: set exactly one of repositorySelector and repositories".to_owned(),
            ));
        }
        _ => {}
    }
    if spec.repositories.len() > MAX_REPOSITORY_NAMES {
        return Err(invalid(format!(
            "spec.repositories: {} names given, at most {MAX_REPOSITORY_NAMES} are allowed",
            spec.repositories.len()
        )));
    }
    let mut seen = BTreeMap::new();
    for (index, name) in spec.repositories.iter().enumerate() {
        if name.len() > 253 || !OBJECT_NAME.is_match(name) {
            return Err(invalid(format!(
                "spec.repositories[{index}]: '{name}' is not an object name (lowercase DNS subdomain, at most 253 characters)"
            )));
        }
        if let Some(first) = seen.insert(name.as_str(), index) {
            return Err(invalid(format!(
                "spec.repositories[{index}]: '{name}' is listed twice (also spec.repositories[{first}])"
            )));
        }
    }
    if let Some(selector) = &spec.repository_selector {
        if selector.match_labels.len() > MAX_MATCH_LABELS {
            return Err(invalid(format!(
                "spec.repositorySelector.matchLabels: {} labels given, at most {MAX_MATCH_LABELS} are allowed",
                selector.match_labels.len()
            )));
        }
        for (key, value) in &selector.match_labels {
            if !is_label_key(key) {
                return Err(invalid(format!(
                    "spec.repositorySelector.matchLabels: '{key}' is not a label key ([DNS-subdomain prefix/]name of at most 63 characters)"
                )));
            }
            if value.len() > 63 || !LABEL_VALUE.is_match(value) {
                return Err(invalid(format!(
                    "spec.repositorySelector.matchLabels.{key}: '{value}' is not a label value (at most 63 characters, alphanumeric at both ends)"
                )));
            }
        }
    }
    Ok(())
}

/// A label key: an optional DNS-subdomain prefix (≤253) and `/`, then a name (≤63).
fn is_label_key(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    let prefix_valid = prefix.is_none_or(|prefix| prefix.len() <= 253 && OBJECT_NAME.is_match(prefix));
    prefix_valid && name.len() <= 63 && LABEL_NAME.is_match(name)
}

fn to_rule(field: &str, rule: &LifecycleRule) -> Result<Rule, InvalidRule> {
    if !(1..=MAX_RULE_PRIORITY).contains(&rule.priority) {
        return Err(invalid(format!(
            "{field}.priority: {} is outside 1 to {MAX_RULE_PRIORITY}",
            rule.priority
        )));
    }
    let description = rule.description.clone().filter(|d| !d.is_empty());
    if let Some(description) = &description
        && description.chars().count() > MAX_RULE_DESCRIPTION_LENGTH
    {
        return Err(invalid(format!(
            "{field}.description: at most {MAX_RULE_DESCRIPTION_LENGTH} characters are allowed"
        )));
    }
    let selection = &rule.selection;
    let tags = tag_selection(&format!("{field}.selection"), selection)?;
    let count = count(&format!("{field}.selection"), selection)?;
    let storage_class = storage_class(&format!("{field}.selection"), selection)?;
    let action = action(field, rule)?;
    Ok(Rule {
        priority: u32::try_from(rule.priority).expect("checked to be 1 to 1000"),
        description,
        tags,
        storage_class,
        count,
        action,
    })
}

fn tag_selection(field: &str, selection: &LifecycleSelection) -> Result<TagSelection, InvalidRule> {
    let patterns = &selection.tag_patterns;
    let prefixes = &selection.tag_prefixes;
    match selection.tag_status {
        TagStatus::Tagged => match (patterns.is_empty(), prefixes.is_empty()) {
            (true, true) => Err(invalid(format!(
                "{field}.tagPatterns: tagStatus Tagged needs exactly one of tagPatterns and tagPrefixes, neither is set"
            ))),
            (false, false) => Err(invalid(format!(
                "{field}.tagPrefixes: tagStatus Tagged needs exactly one of tagPatterns and tagPrefixes, both are set"
            ))),
            (false, true) => {
                check_tag_filters(
                    &format!("{field}.tagPatterns"),
                    patterns,
                    &TAG_WILDCARD,
                    "letters, digits, . _ - and *",
                )?;
                for (index, pattern) in patterns.iter().enumerate() {
                    let wildcards = pattern.matches('*').count();
                    if wildcards > MAX_WILDCARDS_PER_PATTERN {
                        return Err(invalid(format!(
                            "{field}.tagPatterns[{index}]: '{pattern}' has {wildcards} '*' wildcards, at most {MAX_WILDCARDS_PER_PATTERN} are allowed"
                        )));
                    }
                }
                Ok(TagSelection::Tagged(TagFilter::Patterns(patterns.clone())))
            }
            (true, false) => {
                check_tag_filters(
                    &format!("{field}.tagPrefixes"),
                    prefixes,
                    &TAG_PREFIX,
                    "letters, digits, . _ -",
                )?;
                Ok(TagSelection::Tagged(TagFilter::Prefixes(prefixes.clone())))
            }
        },
        TagStatus::Untagged | TagStatus::Any => {
            let status = if selection.tag_status == TagStatus::Untagged {
                "Untagged"
            } else {
                "Any"
            };
            if !patterns.is_empty() {
                return Err(invalid(format!(
                    "{field}.tagPatterns: only allowed with tagStatus Tagged, not {status}"
                )));
            }
            if !prefixes.is_empty() {
                return Err(invalid(format!(
                    "{field}.tagPrefixes: only allowed with tagStatus Tagged, not {status}"
                )));
            }
            Ok(if selection.tag_status == TagStatus::Untagged {
                TagSelection::Untagged
            } else {
                TagSelection::Any
            })
        }
    }
}

fn check_tag_filters(field: &str, filters: &[String], grammar: &Regex, characters: &str) -> Result<(), InvalidRule> {
    if filters.len() > MAX_TAG_FILTERS {
        return Err(invalid(format!(
            "{field}: {} entries given, at most {MAX_TAG_FILTERS} are allowed",
            filters.len()
        )));
    }
    for (index, filter) in filters.iter().enumerate() {
        if filter.is_empty() || filter.len() > MAX_TAG_FILTER_LENGTH || !grammar.is_match(filter) {
            return Err(invalid(format!(
                "{field}[{index}]: '{filter}' must be 1 to {MAX_TAG_FILTER_LENGTH} characters of {characters}"
            )));
        }
    }
    Ok(())
}

fn count(field: &str, selection: &LifecycleSelection) -> Result<Count, InvalidRule> {
    let number = selection.count_number;
    if !(1..=MAX_COUNT_NUMBER).contains(&number) {
        return Err(invalid(format!(
            "{field}.countNumber: {number} is outside 1 to {MAX_COUNT_NUMBER}"
        )));
    }
    let number = u32::try_from(number).expect("checked to be at most i32::MAX");
    match (selection.count_type.is_age(), selection.count_unit.is_some()) {
        (true, false) => {
            return Err(invalid(format!(
                "{field}.countUnit: required (Days) with countType {:?}",
                selection.count_type
            )));
        }
        (false, true) => {
            return Err(invalid(format!(
                "{field}.countUnit: not allowed with countType ImageCountMoreThan"
            )));
        }
        _ => {}
    }
    Ok(match selection.count_type {
        CountType::ImageCountMoreThan => Count::MoreThan(number),
        CountType::SinceImagePushed => Count::SincePushed { days: number },
        CountType::SinceImagePulled => Count::SincePulled { days: number },
        CountType::SinceImageTransitioned => Count::SinceTransitioned { days: number },
    })
}

/// ECR lets a rule look at archived images only to expire them by time in the archive.
fn storage_class(field: &str, selection: &LifecycleSelection) -> Result<StorageClass, InvalidRule> {
    let storage_class = selection.storage_class.unwrap_or_default();
    match (selection.count_type, storage_class) {
        (CountType::SinceImageTransitioned, StorageClass::Standard) => Err(invalid(format!(
            "{field}.storageClass: countType SinceImageTransitioned needs storageClass Archive"
        ))),
        (CountType::SinceImageTransitioned, StorageClass::Archive) | (_, StorageClass::Standard) => Ok(storage_class),
        (count_type, StorageClass::Archive) => Err(invalid(format!(
            "{field}.storageClass: Archive is only allowed with countType SinceImageTransitioned, not {count_type:?}"
        ))),
    }
}

fn action(field: &str, rule: &LifecycleRule) -> Result<Action, InvalidRule> {
    let count_type = rule.selection.count_type;
    let target = rule.action.target_storage_class;
    match rule.action.type_ {
        LifecycleActionType::Expire => {
            if target.is_some() {
                return Err(invalid(format!(
                    "{field}.action.targetStorageClass: only allowed with type Transition"
                )));
            }
            if count_type == CountType::SinceImagePulled {
                return Err(invalid(format!(
                    "{field}.action.type: countType SinceImagePulled is only allowed with action type Transition"
                )));
            }
            Ok(Action::Expire)
        }
        LifecycleActionType::Transition => {
            if target != Some(StorageClass::Archive) {
                return Err(invalid(format!(
                    "{field}.action.targetStorageClass: type Transition needs targetStorageClass Archive"
                )));
            }
            if count_type == CountType::SinceImageTransitioned {
                return Err(invalid(format!(
                    "{field}.action.type: countType SinceImageTransitioned needs action type Expire"
                )));
            }
            Ok(Action::TransitionToArchive)
        }
    }
}

/// Unique priorities, and `Any` only in the rule that ECR evaluates last.
fn check_priorities(rules: &[Rule]) -> Result<(), InvalidRule> {
    let mut seen = BTreeMap::new();
    for (index, rule) in rules.iter().enumerate() {
        if let Some(first) = seen.insert(rule.priority, index) {
            return Err(invalid(format!(
                "spec.rules[{index}].priority: {} is also the priority of spec.rules[{first}]; priorities must be unique",
                rule.priority
            )));
        }
    }
    let highest = rules.iter().map(|rule| rule.priority).max();
    if let Some(index) = rules
        .iter()
        .position(|rule| rule.tags == TagSelection::Any && Some(rule.priority) != highest)
    {
        return Err(invalid(format!(
            "spec.rules[{index}].selection.tagStatus: Any is only allowed in the rule with the highest priority number (ECR evaluates it last)"
        )));
    }
    Ok(())
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
