//! Property tests: random documents, re-spelled at random, compare equal; a real change does not.

use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};

use super::*;

const ACTIONS: &[&str] = &[
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
    "ecr:BatchCheckLayerAvailability",
    "ecr:PutImage",
    "ecr:InitiateLayerUpload",
    "ecr:UploadLayerPart",
    "ecr:CompleteLayerUpload",
];

fn account(rng: &mut StdRng) -> String {
    (0..12).map(|_| char::from(b'0' + rng.random_range(0..10u8))).collect()
}

/// A random document in berth's own spelling: lists everywhere, account ids as root ARNs.
fn random_document(rng: &mut StdRng) -> Value {
    let statements: Vec<Value> = (0..rng.random_range(1..4))
        .map(|i| {
            let mut aws: Vec<String> = (0..rng.random_range(1..4))
                .map(|_| format!("arn:aws:iam::{}:root", account(rng)))
                .collect();
            aws.push(format!("arn:aws:iam::{}:role/ci-{i}", account(rng)));
            let count = rng.random_range(1..ACTIONS.len());
            let actions: Vec<&str> = ACTIONS.sample(rng, count).copied().collect();
            let mut statement = json!({
                "Sid": format!("S{i}"),
                "Effect": if rng.random_bool(0.8) { "Allow" } else { "Deny" },
                "Principal": {"AWS": aws},
                "Action": actions,
            });
            if rng.random_bool(0.5) {
                statement["Condition"] =
                    json!({"StringEquals": {"aws:PrincipalOrgID": [format!("o-{}", account(rng))]}});
            }
            statement
        })
        .collect();
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// The same grants, spelled differently at random.
fn respell(document: &Value, rng: &mut StdRng) -> Value {
    let mut document = document.clone();
    let statements = document["Statement"].as_array_mut().unwrap();
    statements.shuffle(rng);
    for statement in statements.iter_mut() {
        let object = statement.as_object_mut().unwrap();
        if rng.random_bool(0.5) {
            object.remove("Sid");
        } else {
            object.insert("Sid".into(), json!(format!("Other{}", rng.random_range(0..100))));
        }
        let actions = object["Action"].as_array_mut().unwrap();
        actions.shuffle(rng);
        for action in actions.iter_mut() {
            if rng.random_bool(0.3) {
                *action = json!(action.as_str().unwrap().to_ascii_uppercase());
            }
        }
        if actions.len() == 1 && rng.random_bool(0.5) {
            let single = actions[0].clone();
            object.insert("Action".into(), single);
        } else if rng.random_bool(0.3) {
            // a duplicate does not change the set
            let first = actions[0].clone();
            actions.push(first);
        }
        let aws = object["Principal"]["AWS"].as_array_mut().unwrap();
        aws.shuffle(rng);
        for principal in aws.iter_mut() {
            let text = principal.as_str().unwrap().to_owned();
            if let Some(id) = text.strip_prefix("arn:aws:iam::").and_then(|t| t.strip_suffix(":root"))
                && rng.random_bool(0.5)
            {
                *principal = json!(id);
            }
        }
        if let Some(orgs) = object
            .get_mut("Condition")
            .and_then(|c| c["StringEquals"]["aws:PrincipalOrgID"].as_array().cloned())
            && orgs.len() == 1
        {
            let key = if rng.random_bool(0.5) {
                "aws:PrincipalOrgID"
            } else {
                "aws:principalorgid"
            };
            object.insert("Condition".into(), json!({"StringEquals": {key: orgs[0].clone()}}));
        }
    }
    document
}

/// One real change, picked at random.
fn alter(document: &Value, rng: &mut StdRng) -> Value {
    let mut document = document.clone();
    let statements = document["Statement"].as_array_mut().unwrap();
    let index = rng.random_range(0..statements.len());
    let statement = statements[index].as_object_mut().unwrap();
    match rng.random_range(0..5) {
        0 => {
            let effect = if statement["Effect"] == "Allow" {
                "Deny"
            } else {
                "Allow"
            };
            statement.insert("Effect".into(), json!(effect));
        }
        1 => {
            let actions = statement["Action"].as_array_mut().unwrap();
            let missing = ACTIONS.iter().find(|a| !actions.contains(&json!(a)));
            match missing {
                Some(action) => actions.push(json!(action)),
                None => {
                    actions.pop();
                }
            }
        }
        2 => {
            statement["Principal"]["AWS"]
                .as_array_mut()
                .unwrap()
                .push(json!("arn:aws:iam::999999999999:role/intruder"));
        }
        3 => {
            let arn = statement["Principal"]["AWS"][0]
                .as_str()
                .unwrap()
                .replacen("arn:aws:iam::", "arn:aws:iam::9", 1);
            statement["Principal"]["AWS"][0] = json!(arn.replacen(":root", "0:root", 1));
        }
        _ => match statement.remove("Condition") {
            Some(_) => {}
            None => {
                statement.insert("Condition".into(), json!({"Bool": {"aws:SecureTransport": "true"}}));
            }
        },
    }
    document
}

#[test]
fn random_respellings_compare_equal() {
    let mut rng = StdRng::seed_from_u64(0xbe27);
    for _ in 0..500 {
        let document = random_document(&mut rng);
        let respelled = respell(&document, &mut rng);
        assert!(equivalent(&document, &respelled), "{document}\n{respelled}");
        // whitespace, key order and IAM's URL encoding do not matter either
        let pretty = serde_json::to_string_pretty(&respelled).unwrap();
        let encoded = percent_encoding::utf8_percent_encode(&pretty, percent_encoding::NON_ALPHANUMERIC).to_string();
        assert!(equivalent(&document, &parse_policy(&pretty).unwrap()));
        assert!(equivalent(&document, &parse_policy(&encoded).unwrap()));
    }
}

#[test]
fn random_real_changes_compare_unequal() {
    let mut rng = StdRng::seed_from_u64(0x7e57);
    for _ in 0..500 {
        let document = random_document(&mut rng);
        let altered = alter(&document, &mut rng);
        let respelled = respell(&altered, &mut rng);
        assert!(!equivalent(&document, &respelled), "{document}\n{respelled}");
    }
}

#[test]
fn equivalent_spellings_of_everyone_and_scalars() {
    let star = json!({"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Principal": "*", "Action": "ecr:BatchGetImage", "Condition": {"Bool": {"aws:SecureTransport": true}}}});
    let spelled = json!({"Statement": [{"Principal": {"AWS": ["*"]}, "Effect": "Allow", "Action": ["ECR:batchgetimage"], "Condition": {"Bool": {"aws:securetransport": ["true"]}}}], "Version": "2012-10-17"});
    assert!(equivalent(&star, &spelled));
    let other_version = json!({"Version": "2008-10-17", "Statement": spelled["Statement"].clone()});
    assert!(!equivalent(&star, &other_version));
}

#[test]
fn unparsable_policies_are_reported() {
    assert!(parse_policy("{not json").unwrap_err().contains("not valid JSON"));
    assert!(parse_policy("%7Bbroken").is_err());
    assert_eq!(
        parse_policy("%7B%22Version%22%3A%222012-10-17%22%7D").unwrap(),
        json!({"Version": "2012-10-17"})
    );
}

#[test]
fn an_account_is_the_same_in_every_partition_and_spelling() {
    let grant = |principal: Value| json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": principal}, "Action": "ecr:BatchGetImage"}]});
    let spellings = [
        json!("111122223333"),
        json!(["arn:aws:iam::111122223333:root"]),
        json!("arn:aws-cn:iam::111122223333:root"),
        json!(["arn:aws-us-gov:iam::111122223333:root"]),
    ];
    for left in &spellings {
        for right in &spellings {
            assert!(
                equivalent(&grant(left.clone()), &grant(right.clone())),
                "{left} {right}"
            );
        }
    }
    // another account, a role of the account, or a malformed root ARN is something else
    for other in [
        "111122223334",
        "arn:aws-cn:iam::111122223334:root",
        "arn:aws-cn:iam::111122223333:role/root",
        "arn::iam::111122223333:root",
        "arn:aws-cn:iam::11112222333:root",
    ] {
        assert!(
            !equivalent(&grant(spellings[2].clone()), &grant(json!(other))),
            "{other}"
        );
    }
}
