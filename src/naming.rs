//! Deterministic shortening of names that AWS limits in length.

/// A small stable hash (FNV-1a, 64 bit).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `arn:aws:ecr:<region>:<account>:repository/<name>` → (region, name).
pub fn repository_arn_parts(arn: &str) -> Option<(&str, &str)> {
    let mut parts = arn.splitn(6, ':');
    let region = parts.nth(3)?;
    let name = parts.nth(1)?.strip_prefix("repository/")?;
    Some((region, name))
}

/// Whether `pattern`, in which `*` stands for any run of characters (also none), matches the
/// whole of `text`. Greedy with backtracking to the last `*`: linear for ECR's patterns. ECR's lifecycle tag
/// patterns and its scanning filters share this grammar.
pub fn wildcard_matches(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    // after the last `*` seen: the pattern position behind it and the text position it reached
    let mut resume: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == '*' {
            resume = Some((p + 1, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((after_star, reached)) = resume {
            // let the last `*` swallow one more character and retry
            resume = Some((after_star, reached + 1));
            p = after_star;
            t = reached + 1;
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

/// The longest start of `text` of at most `max` bytes that ends on a character boundary.
pub fn cut(text: &str, max: usize) -> &str {
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// `full` when it fits in `max` bytes; else its start, cut on a character boundary, followed by
/// `suffix(hash of full)`, `max` bytes at most. Two long names that differ anywhere differ here.
pub fn shorten(full: &str, max: usize, suffix: impl Fn(u64) -> String) -> String {
    if full.len() <= max {
        return full.to_owned();
    }
    let suffix = suffix(fnv1a(full.as_bytes()));
    format!("{}{suffix}", cut(full, max.saturating_sub(suffix.len())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_stay_and_long_ones_are_cut_with_a_hash() {
        assert_eq!(shorten("short", 10, |h| format!("~{h:x}")), "short");
        let a = shorten(&"a".repeat(100), 20, |h| format!("-{:08x}", h as u32));
        let b = shorten(&format!("{}b", "a".repeat(99)), 20, |h| format!("-{:08x}", h as u32));
        assert_eq!(a.len(), 20);
        assert_ne!(a, b);
        assert!(a.starts_with("aaaaaaaaaaa-"));
        assert_eq!(shorten(&"é".repeat(20), 15, |_| "-x".into()).len(), 14);
    }

    #[test]
    fn repository_arns_split_into_region_and_name() {
        assert_eq!(
            repository_arn_parts("arn:aws:ecr:eu-west-1:123456789012:repository/team/api"),
            Some(("eu-west-1", "team/api"))
        );
        assert_eq!(repository_arn_parts("arn:aws:iam::123456789012:role/x"), None);
    }
}
