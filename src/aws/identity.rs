//! Who berth runs as: the AWS partition (`aws`, `aws-cn`, `aws-us-gov`, ...) it learns once at
//! start from STS `GetCallerIdentity`, so that the ARNs it renders name the right partition.

use super::{AwsClients, AwsError, AwsErrorKind};

/// The partition of the caller's credentials, from the ARN STS `GetCallerIdentity` returns.
pub async fn caller_partition(aws: &AwsClients) -> Result<String, AwsError> {
    let identity = aws
        .sts()
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("GetCallerIdentity", e))?;
    let arn = identity.arn().unwrap_or_default();
    partition_of(arn).map(str::to_owned).ok_or_else(|| AwsError {
        operation: "GetCallerIdentity",
        kind: AwsErrorKind::ClientError,
        code: "InvalidCallerArn".into(),
        message: format!("the caller ARN '{arn}' names no partition"),
    })
}

/// An ARN's partition, its second field: `arn:aws-us-gov:sts::1:assumed-role/r/s` → `aws-us-gov`.
/// None when the text is not an ARN or the partition is empty or not `[a-z0-9-]`.
pub fn partition_of(arn: &str) -> Option<&str> {
    let mut fields = arn.splitn(3, ':');
    if fields.next() != Some("arn") {
        return None;
    }
    let partition = fields.next()?;
    fields.next()?;
    let valid = !partition.is_empty()
        && partition
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    valid.then_some(partition)
}

#[cfg(test)]
mod tests {
    use super::partition_of;

    #[test]
    fn the_partition_is_the_second_field() {
        assert_eq!(partition_of("arn:aws:sts::123456789012:user/moto"), Some("aws"));
        assert_eq!(
            partition_of("arn:aws-us-gov:sts::123456789012:assumed-role/berth/i-1"),
            Some("aws-us-gov")
        );
        assert_eq!(partition_of("arn:aws-cn:iam::123456789012:role/berth"), Some("aws-cn"));
        assert_eq!(
            partition_of("arn:aws-iso-b:sts::123456789012:user/x"),
            Some("aws-iso-b")
        );
    }

    #[test]
    fn anything_else_has_no_partition() {
        for text in [
            "",
            "arn",
            "arn:aws",
            "arn::sts::1:user/x",
            "urn:aws:sts::1:user/x",
            "arn:AWS:sts::1:x",
            "123456789012",
        ] {
            assert_eq!(partition_of(text), None, "{text}");
        }
    }
}
