//! The per-repository gauges (statistics and findings), kept as plain numbers and written
//! straight into the text exposition. A series of the `prometheus` crate keeps its own copy of
//! the metric's description and of its label pairs, about 700 bytes: the nine series of one
//! repository came to 6.3 KiB, 63 MiB at 10,000 repositories. Here one repository's nine
//! values take one map entry, and a scrape writes them out without building a series object.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::metrics::ObjectKey;
use crate::scan::Counts;

/// What one EcrRepository exports, each part with the ECR repository it describes.
#[derive(Default)]
struct ObjectGauges {
    /// Images, total size, Unix time of the newest push.
    stats: Option<(Box<str>, [i64; 3])>,
    /// By severity (`berth_image_findings`'s `severity` label is `Severity::label`).
    findings: Option<(Box<str>, Counts)>,
}

#[derive(Default)]
pub struct RepositoryGauges {
    objects: BTreeMap<ObjectKey, ObjectGauges>,
}

const STATS: [(&str, &str); 3] = [
    (
        "berth_repository_images",
        "Images in a managed repository, refreshed every --stats-interval.",
    ),
    (
        "berth_repository_size_bytes",
        "Total size of the images in a managed repository.",
    ),
    (
        "berth_repository_last_push_timestamp_seconds",
        "Unix time of the newest image push to a managed repository (0 when empty).",
    ),
];

const FINDINGS: (&str, &str) = (
    "berth_image_findings",
    "Vulnerability findings of the newest image of a managed repository, by severity.",
);

impl RepositoryGauges {
    pub fn set_stats(&mut self, key: &ObjectKey, repository: &str, values: [i64; 3]) {
        self.entry(key).stats = Some((repository.into(), values));
    }

    pub fn set_findings(&mut self, key: &ObjectKey, repository: &str, counts: Counts) {
        self.entry(key).findings = Some((repository.into(), counts));
    }

    pub fn forget_stats(&mut self, key: &ObjectKey) {
        self.update(key, |gauges| gauges.stats = None);
    }

    pub fn forget_findings(&mut self, key: &ObjectKey) {
        self.update(key, |gauges| gauges.findings = None);
    }

    /// The objects with any gauge.
    pub fn keys(&self) -> impl Iterator<Item = &ObjectKey> {
        self.objects.keys()
    }

    fn entry(&mut self, key: &ObjectKey) -> &mut ObjectGauges {
        self.objects.entry(key.clone()).or_default()
    }

    fn update(&mut self, key: &ObjectKey, change: impl FnOnce(&mut ObjectGauges)) {
        if let Some(gauges) = self.objects.get_mut(key) {
            change(gauges);
            if gauges.stats.is_none() && gauges.findings.is_none() {
                self.objects.remove(key);
            }
        }
    }

    /// Appends the families in the Prometheus text format (0.0.4), a family only when it has
    /// a series, as the `prometheus` crate renders its own.
    pub fn render(&self, out: &mut String) {
        for (index, (name, help)) in STATS.iter().enumerate() {
            let mut series = self.objects.iter().filter_map(|(key, gauges)| {
                let (repository, values) = gauges.stats.as_ref()?;
                Some((key, repository, values[index]))
            });
            let Some(first) = series.next() else { continue };
            header(out, name, help);
            for ((namespace, object), repository, value) in std::iter::once(first).chain(series) {
                let _ = writeln!(
                    out,
                    r#"{name}{{name="{}",namespace="{}",repository="{}"}} {value}"#,
                    Escaped(object),
                    Escaped(namespace),
                    Escaped(repository)
                );
            }
        }
        let (name, help) = FINDINGS;
        let mut series = self
            .objects
            .iter()
            .filter_map(|(key, gauges)| gauges.findings.as_ref().map(|findings| (key, findings)))
            .peekable();
        if series.peek().is_some() {
            header(out, name, help);
        }
        for ((namespace, _), (repository, counts)) in series {
            for (severity, count) in counts.iter() {
                let _ = writeln!(
                    out,
                    r#"{name}{{namespace="{}",repository="{}",severity="{severity}"}} {count}"#,
                    Escaped(namespace),
                    Escaped(repository)
                );
            }
        }
    }
}

fn header(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
}

/// A label value as the text format quotes it: backslash, double quote and newline escaped.
struct Escaped<'a>(&'a str);

impl std::fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for c in self.0.chars() {
            match c {
                '\\' => f.write_str(r"\\")?,
                '"' => f.write_str(r#"\""#)?,
                '\n' => f.write_str(r"\n")?,
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::Severity;

    fn key(name: &str) -> ObjectKey {
        ("team".into(), name.into())
    }

    #[test]
    fn series_render_in_the_text_format_and_leave_with_their_part() {
        let mut gauges = RepositoryGauges::default();
        gauges.set_stats(&key("api"), "team/api", [3, 300, 1_700_000_000]);
        let counts = Counts::of([(Severity::Critical, 1), (Severity::High, 4), (Severity::Undefined, 2)]);
        gauges.set_findings(&key("api"), "team/api", counts);
        gauges.set_stats(&key("web"), "team/web", [0, 0, 0]);
        let mut text = String::new();
        gauges.render(&mut text);
        assert!(
            text.contains(
                "# HELP berth_repository_images Images in a managed repository, refreshed every --stats-interval.\n\
             # TYPE berth_repository_images gauge\n\
             berth_repository_images{name=\"api\",namespace=\"team\",repository=\"team/api\"} 3\n\
             berth_repository_images{name=\"web\",namespace=\"team\",repository=\"team/web\"} 0\n"
            ),
            "{text}"
        );
        assert!(text.contains(r#"berth_repository_size_bytes{name="api",namespace="team",repository="team/api"} 300"#));
        assert!(text.contains(
            r#"berth_repository_last_push_timestamp_seconds{name="api",namespace="team",repository="team/api"} 1700000000"#
        ));
        assert!(text.contains(r#"berth_image_findings{namespace="team",repository="team/api",severity="high"} 4"#));
        assert!(
            text.contains(r#"berth_image_findings{namespace="team",repository="team/api",severity="undefined"} 2"#)
        );
        assert_eq!(text.matches("# TYPE berth_image_findings gauge").count(), 1);
        assert_eq!(text.matches("berth_image_findings{").count(), 6);

        gauges.forget_findings(&key("api"));
        let mut text = String::new();
        gauges.render(&mut text);
        assert!(
            !text.contains("berth_image_findings"),
            "no family without a series: {text}"
        );
        assert!(text.contains(r#"repository="team/api"} 3"#));
        gauges.forget_stats(&key("api"));
        assert_eq!(gauges.keys().collect::<Vec<_>>(), [&key("web")]);
        gauges.forget_stats(&key("web"));
        let mut text = String::new();
        gauges.render(&mut text);
        assert_eq!(text, "");
    }

    #[test]
    fn label_values_are_escaped() {
        let mut gauges = RepositoryGauges::default();
        gauges.set_stats(&("a\"b".into(), "c\\d".into()), "e\nf", [1, 2, 3]);
        let mut text = String::new();
        gauges.render(&mut text);
        assert!(
            text.contains(r#"berth_repository_images{name="c\\d",namespace="a\"b",repository="e\nf"} 1"#),
            "{text}"
        );
    }
}
