//! The evaluator against AWS's published examples (ECR user guide, "Examples of lifecycle
//! policies"), berth's archive semantics, and properties over random repositories.

use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use super::*;
use crate::api::LifecyclePolicySpec;
use crate::images::ImageStorage;
use crate::lifecycle::test_support::{self, DAY, NOW};
use crate::lifecycle::{Action, TagSelection, wildcard_matches};

/// Rules from the `rules:` list of a LifecyclePolicy spec, through berth's validation.
fn rules(rules_yaml: &str) -> Vec<Rule> {
    let spec: LifecyclePolicySpec = serde_saphyr::from_str(&format!("repositories: [app]\nrules:\n{rules_yaml}"))
        .unwrap_or_else(|e| panic!("rules do not parse: {e}\n{rules_yaml}"));
    crate::lifecycle::rules(&spec).unwrap()
}

/// A standard image named `name` (its digest), pushed `days_ago` days before NOW.
fn image(name: &str, tags: &[&str], days_ago: i64) -> Image {
    Image {
        digest: format!("sha256:{name}"),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        pushed_at: NOW - days_ago * DAY,
        ..Image::default()
    }
}

/// The names of the images the rules act on, in image order.
fn acted_on(rules: &[Rule], images: &[Image]) -> Vec<String> {
    let verdicts = evaluate(rules, images, NOW);
    images
        .iter()
        .zip(&verdicts)
        .filter(|(_, verdict)| **verdict != Verdict::Keep)
        .map(|(image, _)| image.digest.trim_start_matches("sha256:").to_owned())
        .collect()
}

struct Example {
    name: &'static str,
    rules: &'static str,
    images: Vec<Image>,
    expired: &'static [&'static str],
}

/// AWS's examples with their documented outcomes. Where the guide gives only the policy
/// ("Filtering on image age", "Filtering on image count"), the repository is ours and the outcome
/// follows from the documented rule.
fn aws_examples() -> Vec<Example> {
    let multiple_rules_repository = || {
        vec![
            image("A", &["beta-1", "prod-1"], 10),
            image("B", &["beta-2", "prod-2"], 9),
            image("C", &["beta-3"], 8),
        ]
    };
    vec![
        Example {
            name: "Filtering on image age: tagged prod* older than 14 days",
            rules: "  - {priority: 1, description: Expire images older than 14 days, selection: {tagStatus: Tagged, tagPatterns: ['prod*'], countType: SinceImagePushed, countUnit: Days, countNumber: 14}, action: {type: Expire}}",
            images: vec![
                image("old-prod", &["prod-1"], 15),
                image("young-prod", &["prod-2"], 13),
                image("old-dev", &["dev-1"], 20),
                image("old-untagged", &[], 30),
            ],
            expired: &["old-prod"],
        },
        Example {
            name: "Filtering on image age (earlier guide): untagged older than 14 days",
            rules: "  - {priority: 1, selection: {tagStatus: Untagged, countType: SinceImagePushed, countUnit: Days, countNumber: 14}, action: {type: Expire}}",
            images: vec![
                image("old", &[], 15),
                image("young", &[], 13),
                image("tagged", &["v1"], 30),
            ],
            expired: &["old"],
        },
        Example {
            name: "Filtering on image count: keep only one untagged image",
            rules: "  - {priority: 1, description: Keep only one untagged image, expire all others, selection: {tagStatus: Untagged, countType: ImageCountMoreThan, countNumber: 1}, action: {type: Expire}}",
            images: vec![
                image("u1", &[], 3),
                image("u2", &[], 2),
                image("u3", &[], 1),
                image("t", &["v1"], 5),
            ],
            expired: &["u1", "u2"],
        },
        Example {
            name: "Filtering on multiple rules, example A (prefixes)",
            rules: "  - {priority: 1, selection: {tagStatus: Tagged, tagPrefixes: [prod], countType: ImageCountMoreThan, countNumber: 1}, action: {type: Expire}}
  - {priority: 2, selection: {tagStatus: Tagged, tagPrefixes: [beta], countType: ImageCountMoreThan, countNumber: 1}, action: {type: Expire}}",
            images: multiple_rules_repository(),
            expired: &["A"],
        },
        Example {
            name: "Filtering on multiple rules, example A (patterns, current guide)",
            rules: "  - {priority: 1, selection: {tagStatus: Tagged, tagPatterns: ['prod*'], countType: ImageCountMoreThan, countNumber: 1}, action: {type: Expire}}
  - {priority: 2, selection: {tagStatus: Tagged, tagPatterns: ['beta*'], countType: ImageCountMoreThan, countNumber: 1}, action: {type: Expire}}",
            images: multiple_rules_repository(),
            expired: &["A"],
        },
        Example {
            name: "Filtering on multiple rules, example B (earlier guide: priorities swapped)",
            rules: "  - {priority: 1, selection: {tagStatus: Tagged, tagPrefixes: [beta], countType: ImageCountMoreThan, countNumber: 1}, action: {type: Expire}}
  - {priority: 2, selection: {tagStatus: Tagged, tagPrefixes: [prod], countType: ImageCountMoreThan, countNumber: 1}, action: {type: Expire}}",
            images: multiple_rules_repository(),
            expired: &["A", "B"],
        },
        Example {
            name: "Filtering on multiple rules, example B (current guide: four images)",
            rules: "  - {priority: 1, selection: {tagStatus: Tagged, tagPatterns: ['prod*'], countType: ImageCountMoreThan, countNumber: 1}, action: {type: Expire}}
  - {priority: 2, selection: {tagStatus: Tagged, tagPatterns: ['beta*'], countType: ImageCountMoreThan, countNumber: 1}, action: {type: Expire}}",
            images: vec![
                image("A", &["beta-1", "prod-1"], 10),
                image("B", &["beta-2", "prod-2"], 9),
                image("C", &["beta-3", "prod-3"], 8),
                image("D", &["beta-4"], 7),
            ],
            expired: &["A", "B"],
        },
        Example {
            name: "Filtering on multiple tags in a single rule, example A",
            rules: "  - {priority: 1, selection: {tagStatus: Tagged, tagPrefixes: [alpha, beta], countType: SinceImagePushed, countUnit: Days, countNumber: 5}, action: {type: Expire}}",
            images: vec![
                image("A", &["alpha-1"], 12),
                image("B", &["beta-1"], 11),
                image("C", &["alpha-2", "beta-2"], 10),
                image("D", &["alpha-3"], 4),
                image("E", &["beta-3"], 3),
                image("F", &["alpha-4", "beta-4"], 2),
            ],
            expired: &["C"],
        },
        Example {
            name: "Filtering on multiple tags in a single rule, example B",
            rules: "  - {priority: 1, selection: {tagStatus: Tagged, tagPrefixes: [alpha, beta], countType: ImageCountMoreThan, countNumber: 1}, action: {type: Expire}}",
            images: vec![
                image("A", &["alpha-1", "beta-1", "gamma-1"], 10),
                image("B", &["alpha-2", "beta-2"], 9),
                image("C", &["alpha-3", "beta-3", "gamma-2"], 8),
            ],
            expired: &["A", "B"],
        },
        Example {
            name: "Filtering on all images, example A",
            rules: "  - {priority: 1, selection: {tagStatus: Any, countType: ImageCountMoreThan, countNumber: 1}, action: {type: Expire}}",
            images: vec![
                image("A", &["alpha-1"], 4),
                image("B", &["beta-1"], 3),
                image("C", &[], 2),
                image("D", &["alpha-2"], 1),
            ],
            expired: &["A", "B", "C"],
        },
        Example {
            // D and E were both pushed "1 day ago"; the guide's outcome keeps E as the newest,
            // as the digest tie-break does ("sha256:E" > "sha256:D"), and E, exactly one day
            // old, is not older than one day
            name: "Filtering on all images, example B",
            rules: "  - {priority: 1, selection: {tagStatus: Tagged, tagPrefixes: [alpha], countType: ImageCountMoreThan, countNumber: 1}, action: {type: Expire}}
  - {priority: 2, selection: {tagStatus: Untagged, countType: SinceImagePushed, countUnit: Days, countNumber: 1}, action: {type: Expire}}
  - {priority: 3, selection: {tagStatus: Any, countType: ImageCountMoreThan, countNumber: 1}, action: {type: Expire}}",
            images: vec![
                image("A", &["alpha-1", "beta-1"], 4),
                image("B", &[], 3),
                image("C", &["alpha-2"], 2),
                image("D", &["git hash"], 1),
                image("E", &[], 1),
            ],
            expired: &["A", "B", "D"],
        },
    ]
}

#[test]
fn aws_examples_have_their_documented_outcomes() {
    for example in aws_examples() {
        let rules = rules(example.rules);
        assert_eq!(acted_on(&rules, &example.images), example.expired, "{}", example.name);
        // the listing order of the repository does not matter
        let mut reversed = example.images.clone();
        reversed.reverse();
        let mut expired = acted_on(&rules, &reversed);
        expired.reverse();
        assert_eq!(expired, example.expired, "{} (images reversed)", example.name);
    }
}

#[test]
fn verdicts_name_the_acting_rule() {
    let rules = rules(
        "  - {priority: 1, selection: {tagStatus: Tagged, tagPrefixes: [prod], countType: ImageCountMoreThan, countNumber: 1}, action: {type: Expire}}
  - {priority: 2, selection: {tagStatus: Tagged, tagPrefixes: [beta], countType: ImageCountMoreThan, countNumber: 1}, action: {type: Expire}}",
    );
    let images = vec![
        image("A", &["beta-1", "prod-1"], 10),
        image("B", &["beta-2", "prod-2"], 9),
        image("C", &["beta-3"], 8),
        image("D", &["beta-4"], 7),
    ];
    // beta keeps D; C is its to act on (B was identified by the prod rule)
    assert_eq!(
        evaluate(&rules, &images, NOW),
        [
            Verdict::Expire { priority: 1 },
            Verdict::Keep,
            Verdict::Expire { priority: 2 },
            Verdict::Keep
        ]
    );
}

fn archived(name: &str, days_ago: i64, archived_days_ago: Option<i64>) -> Image {
    Image {
        storage: ImageStorage::Archive,
        transitioned_at: archived_days_ago.map(|days| NOW - days * DAY),
        ..image(name, &[], days_ago)
    }
}

#[test]
fn since_image_pulled_transitions_and_falls_back_to_the_push() {
    let rules = rules(
        "  - {priority: 1, selection: {tagStatus: Any, countType: SinceImagePulled, countUnit: Days, countNumber: 30}, action: {type: Transition, targetStorageClass: Archive}}",
    );
    let images = vec![
        Image {
            last_pulled_at: Some(NOW - 40 * DAY),
            ..image("pulled-long-ago", &["v1"], 100)
        },
        image("never-pulled-old", &[], 45),
        image("never-pulled-young", &[], 20),
        Image {
            last_pulled_at: Some(NOW - 5 * DAY),
            ..image("pulled-lately", &["v2"], 100)
        },
        archived("already-archived", 200, Some(100)),
    ];
    assert_eq!(
        evaluate(&rules, &images, NOW),
        [
            Verdict::Transition { priority: 1 },
            Verdict::Transition { priority: 1 },
            Verdict::Keep,
            Verdict::Keep,
            Verdict::Keep
        ]
    );
}

#[test]
fn since_image_transitioned_expires_only_archived_images() {
    let rules = rules(
        "  - {priority: 1, selection: {tagStatus: Any, countType: SinceImageTransitioned, countUnit: Days, countNumber: 90, storageClass: Archive}, action: {type: Expire}}",
    );
    let images = vec![
        archived("archived-long-ago", 300, Some(100)),
        archived("archived-lately", 300, Some(30)),
        archived("archived-when-unknown", 300, None),
        image("standard-old", &[], 300),
    ];
    assert_eq!(acted_on(&rules, &images), ["archived-long-ago"]);
}

#[test]
fn a_standard_rule_neither_counts_nor_touches_archived_images() {
    let rules = rules(
        "  - {priority: 1, selection: {tagStatus: Untagged, countType: SinceImageTransitioned, countUnit: Days, countNumber: 90, storageClass: Archive}, action: {type: Expire}}
  - {priority: 2, selection: {tagStatus: Any, countType: ImageCountMoreThan, countNumber: 1}, action: {type: Expire}}",
    );
    let images = vec![
        archived("archived-newest", 0, Some(0)),
        image("standard-newer", &[], 2),
        image("standard-older", &["v1"], 3),
    ];
    // the count of 1 keeps the newest standard image, not the newer archived one
    assert_eq!(acted_on(&rules, &images), ["standard-older"]);
}

#[test]
fn patterns_match_whole_tags_and_every_entry_must_match() {
    let rules = rules(
        "  - {priority: 1, selection: {tagStatus: Tagged, tagPatterns: ['v*.*', '*-rc'], countType: ImageCountMoreThan, countNumber: 1}, action: {type: Expire}}",
    );
    let images = vec![
        image("both", &["v1.2", "x-rc"], 5),
        image("one-tag-both", &["v1.2-rc"], 4),
        image("version-only", &["v1.2"], 3),
        image("not-whole", &["av1.2", "x-rc1"], 2),
        image("newest-both", &["v2.0", "y-rc"], 1),
    ];
    assert_eq!(acted_on(&rules, &images), ["both", "one-tag-both"]);
}

#[test]
fn wildcards() {
    let cases = [
        ("*", "", true),
        ("*", "anything", true),
        ("v*", "v", true),
        ("v*", "v1.2", true),
        ("v*", "av1", false),
        ("*-rc", "1.0-rc", true),
        ("*-rc", "1.0-rc1", false),
        ("a*b*c", "abc", true),
        ("a*b*c", "aXbYbZc", true),
        ("a*b*c", "aXbYc1", false),
        ("*a*a*a*a", "aaaa", true),
        ("*a*a*a*a", "aaa", false),
        ("exact", "exact", true),
        ("exact", "exactly", false),
        ("", "", true),
        ("", "x", false),
    ];
    for (pattern, tag, expected) in cases {
        assert_eq!(wildcard_matches(pattern, tag), expected, "{pattern:?} on {tag:?}");
    }
}

#[test]
fn equal_push_times_are_ordered_by_digest() {
    let rules = rules(
        "  - {priority: 1, selection: {tagStatus: Untagged, countType: ImageCountMoreThan, countNumber: 2}, action: {type: Expire}}",
    );
    let images = vec![image("b", &[], 1), image("c", &[], 1), image("a", &[], 1)];
    assert_eq!(acted_on(&rules, &images), ["a"]);
}

#[test]
fn preview_counts_and_shows_the_oldest_acted_on_first() {
    let images = vec![
        image("k1", &["keep"], 1),
        image("e3", &["v3", "latest"], 5),
        image("e1", &[], 9),
        image("t1", &["rc-1"], 7),
        image("e2", &["v2"], 6),
        image("e4", &["v4"], 4),
        image("e5", &["v5"], 3),
        image("k2", &[], 2),
    ];
    let verdicts = [
        Verdict::Keep,
        Verdict::Expire { priority: 1 },
        Verdict::Expire { priority: 2 },
        Verdict::Transition { priority: 3 },
        Verdict::Expire { priority: 1 },
        Verdict::Expire { priority: 1 },
        Verdict::Expire { priority: 1 },
        Verdict::Keep,
    ];
    let preview = preview(&images, &verdicts);
    assert_eq!(
        preview,
        Preview {
            expire: 5,
            transition: 1,
            keep: 2,
            // oldest first, at most five; tags sorted and joined, the digest when untagged
            examples: vec![
                "sha256:e1".into(),
                "rc-1".into(),
                "v2".into(),
                "latest,v3".into(),
                "v4".into()
            ],
        }
    );
    assert_eq!(
        preview.to_status("payments-api"),
        LifecyclePreview {
            repository: "payments-api".into(),
            expire: 5,
            transition: 1,
            keep: 2,
            examples: preview.examples.clone(),
        }
    );
    let mut totals = PreviewTotals::default();
    preview.add_to(&mut totals);
    Preview {
        expire: 1,
        transition: 0,
        keep: 10,
        examples: vec![],
    }
    .add_to(&mut totals);
    assert_eq!(
        totals,
        PreviewTotals {
            repositories: 2,
            expire: 6,
            transition: 1,
            keep: 12
        }
    );
}

#[test]
fn preview_examples_fit_the_status_field() {
    let tags: Vec<String> = (0..40).map(|i| format!("build-{i:04}-with-a-long-suffix")).collect();
    let many_tags = Image {
        tags,
        ..image("many", &[], 3)
    };
    let preview = preview(&[many_tags], &[Verdict::Expire { priority: 1 }]);
    let example = &preview.examples[0];
    assert_eq!(example.chars().count(), MAX_PREVIEW_EXAMPLE_LENGTH);
    assert!(example.ends_with('…') && example.starts_with("build-0000-with-a-long-suffix,build-0001"));
    assert_eq!(super::preview(&[], &[]), Preview::default());
}

// --- properties --------------------------------------------------------------------------

/// Whether the rule's count would act on the image if nothing else stood in the way, as far as
/// that does not depend on how equal push times are ordered: Some(true) certainly, Some(false)
/// certainly not, None when a tie decides.
fn count_criterion(rule: &Rule, image: &Image, images: &[Image]) -> Option<bool> {
    let cutoff = |days: u32| NOW - i64::from(days) * DAY;
    match rule.count {
        Count::MoreThan(keep) => {
            let selected = || images.iter().filter(|other| rule.selects(other));
            let strictly_newer = selected().filter(|other| other.pushed_at > image.pushed_at).count();
            let newer_or_equal = selected()
                .filter(|other| other.pushed_at >= image.pushed_at && other.digest != image.digest)
                .count();
            if strictly_newer >= keep as usize {
                Some(true)
            } else if newer_or_equal < keep as usize {
                Some(false)
            } else {
                None
            }
        }
        Count::SincePushed { days } => Some(image.pushed_at < cutoff(days)),
        Count::SincePulled { days } => Some(image.last_pulled_at.unwrap_or(image.pushed_at) < cutoff(days)),
        Count::SinceTransitioned { days } => Some(image.transitioned_at.is_some_and(|time| time < cutoff(days))),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// An image is acted on only by a rule that selects it, whose count reaches it, and above
    /// which no rule selects it; the action is that rule's.
    #[test]
    fn every_verdict_is_justified(rules in test_support::rules(), images in test_support::images()) {
        let verdicts = evaluate(&rules, &images, NOW);
        // deterministic: the same input, the same verdicts and the same preview
        prop_assert_eq!(&verdicts, &evaluate(&rules, &images, NOW));
        prop_assert_eq!(format!("{:?}", preview(&images, &verdicts)), format!("{:?}", preview(&images, &verdicts)));
        prop_assert_eq!(verdicts.len(), images.len());
        for (image, verdict) in images.iter().zip(&verdicts) {
            let Some(priority) = verdict.priority() else { continue };
            let rule = rules.iter().find(|rule| rule.priority == priority).expect("the verdict names a rule");
            prop_assert!(rule.selects(image), "{:?} does not select {:?}", rule, image);
            prop_assert_ne!(count_criterion(rule, image, &images), Some(false), "{:?} on {:?}", rule, image);
            let higher = rules.iter().find(|other| other.priority < priority && other.selects(image));
            prop_assert!(higher.is_none(), "{:?} selects {:?} before {:?}", higher, image, rule);
            let expected = match rule.action {
                Action::Expire => Verdict::Expire { priority },
                Action::TransitionToArchive => Verdict::Transition { priority },
            };
            prop_assert_eq!(*verdict, expected);
        }
    }

    /// An image is kept only if every rule whose count reaches it comes after a rule that
    /// selects it.
    #[test]
    fn nothing_due_is_kept(rules in test_support::rules(), images in test_support::images()) {
        let verdicts = evaluate(&rules, &images, NOW);
        for (image, verdict) in images.iter().zip(&verdicts) {
            if *verdict != Verdict::Keep {
                continue;
            }
            let first_selecting = rules.iter().filter(|rule| rule.selects(image)).min_by_key(|rule| rule.priority);
            if let Some(rule) = first_selecting {
                prop_assert_ne!(count_criterion(rule, image, &images), Some(true), "{:?} should act on {:?}", rule, image);
            }
        }
    }

    /// `imageCountMoreThan N` never acts on one of the N newest images it selects.
    #[test]
    fn count_rules_keep_the_newest(rules in test_support::rules(), images in test_support::images()) {
        let verdicts = evaluate(&rules, &images, NOW);
        for rule in &rules {
            let Count::MoreThan(keep) = rule.count else { continue };
            let mut selected: Vec<usize> = (0..images.len()).filter(|&i| rule.selects(&images[i])).collect();
            selected.sort_by(|&a, &b| (images[b].pushed_at, &images[b].digest).cmp(&(images[a].pushed_at, &images[a].digest)));
            for &index in selected.iter().take(keep as usize) {
                prop_assert_ne!(verdicts[index].priority(), Some(rule.priority), "{:?} acted on {:?}", rule, images[index]);
            }
        }
    }

    /// The verdicts follow the images, not the order they are listed in; nor does rule order matter.
    #[test]
    fn input_order_does_not_matter(rules in test_support::rules(), images in test_support::images(), seed in any::<u64>()) {
        let verdicts = evaluate(&rules, &images, NOW);
        let mut rng = StdRng::seed_from_u64(seed);
        let mut order: Vec<usize> = (0..images.len()).collect();
        order.shuffle(&mut rng);
        let shuffled_images: Vec<Image> = order.iter().map(|&i| images[i].clone()).collect();
        let mut shuffled_rules = rules.clone();
        shuffled_rules.shuffle(&mut rng);
        let shuffled_verdicts = evaluate(&shuffled_rules, &shuffled_images, NOW);
        for (position, &original) in order.iter().enumerate() {
            prop_assert_eq!(shuffled_verdicts[position], verdicts[original]);
        }
    }

    /// The preview accounts for every image exactly once.
    #[test]
    fn preview_adds_up(rules in test_support::rules(), images in test_support::images()) {
        let preview = preview(&images, &evaluate(&rules, &images, NOW));
        prop_assert_eq!(preview.expire + preview.transition + preview.keep, images.len());
        prop_assert_eq!(preview.examples.len(), (preview.expire + preview.transition).min(MAX_PREVIEW_EXAMPLES));
    }
}

#[test]
fn tag_selection_of_untagged_and_any() {
    assert!(TagSelection::Untagged.matches(&[]));
    assert!(!TagSelection::Untagged.matches(&["v1".into()]));
    assert!(TagSelection::Any.matches(&[]) && TagSelection::Any.matches(&["v1".into()]));
}

/// The random repositories meet the random rules often enough for the properties to mean
/// something: every verdict occurs, and so do images that a higher rule shields.
#[test]
fn the_generators_exercise_the_evaluator() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = (test_support::rules(), test_support::images());
    let (mut keep, mut expire, mut transition, mut shielded) = (0, 0, 0, 0);
    for _ in 0..300 {
        let (rules, images) = strategy.new_tree(&mut runner).unwrap().current();
        for (image, verdict) in images.iter().zip(evaluate(&rules, &images, NOW)) {
            match verdict {
                Verdict::Keep => keep += 1,
                Verdict::Expire { .. } => expire += 1,
                Verdict::Transition { .. } => transition += 1,
            }
            let selecting = rules.iter().filter(|rule| rule.selects(image)).count();
            if selecting > 1 {
                shielded += 1;
            }
        }
    }
    for (what, count) in [
        ("keep", keep),
        ("expire", expire),
        ("transition", transition),
        ("shielded", shielded),
    ] {
        assert!(count >= 100, "only {count} {what} in 300 random repositories");
    }
}
