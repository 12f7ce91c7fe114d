//! GH Archive enrichment from a sample written here as hourly `.json.gz` files.

mod common;

use std::io::Write;
use std::path::Path;

use common::{mine, TestRepo};
use datagen::{Events, MineOptions};

fn write_gz(path: &Path, lines: &[serde_json::Value]) {
    let f = std::fs::File::create(path).unwrap();
    let mut gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
    for l in lines {
        writeln!(gz, "{l}").unwrap();
    }
    gz.finish().unwrap();
}

#[test]
fn events_fill_pr_text_issues_and_hints() {
    let tmp = tempfile::tempdir().unwrap();
    let r = TestRepo::init(
        &tmp.path().join("w"),
        Some("https://github.com/acme/widgets"),
    );
    r.write("src/a.py", "def f(x):\n    return x\n");
    r.commit("init");
    let base = r.head();
    r.git(&["checkout", "-q", "-b", "fix"]);
    r.write(
        "src/a.py",
        "def f(x):\n    if x is None:\n        return 0\n    return x\n",
    );
    r.commit("Handle it");
    r.git(&["checkout", "-q", "main"]);
    r.merge_pr("fix", 1, "alice/fix", "Handle None");
    r.write(
        "src/a.py",
        "def f(x):\n    if x is None:\n        return -1\n    return x\n",
    );
    r.commit("Other (#2)");

    let ev = tmp.path().join("events");
    std::fs::create_dir(&ev).unwrap();
    let repo = serde_json::json!({"name": "acme/widgets"});
    write_gz(
        &ev.join("2023-11-14-0.json.gz"),
        &[
            serde_json::json!({"type": "IssuesEvent", "repo": repo, "created_at": "2023-11-13T10:00:00Z",
                "payload": {"action": "opened", "issue": {"number": 12, "title": "Crash on None", "body": "f(None) raises."}}}),
            serde_json::json!({"type": "IssueCommentEvent", "repo": repo, "created_at": "2023-11-13T11:00:00Z",
                "payload": {"action": "created", "issue": {"number": 12, "title": "Crash on None", "body": "f(None) raises."},
                            "comment": {"body": "Check for None first.", "created_at": "2023-11-13T11:00:00Z"}}}),
            serde_json::json!({"type": "IssuesEvent", "repo": repo, "created_at": "2023-11-13T12:00:00Z",
                "payload": {"action": "opened", "issue": {"number": 13, "title": "Docs", "body": "Say what None does."}}}),
            serde_json::json!({"type": "WatchEvent", "repo": repo, "created_at": "2023-11-13T12:00:00Z", "payload": {"action": "started"}}),
            serde_json::json!({"type": "IssuesEvent", "repo": {"name": "other/repo"}, "created_at": "2023-11-13T12:00:00Z",
                "payload": {"action": "opened", "issue": {"number": 12, "title": "Elsewhere", "body": "x"}}}),
        ],
    );
    write_gz(
        &ev.join("2023-11-15-0.json.gz"),
        &[
            serde_json::json!({"type": "IssueCommentEvent", "repo": repo, "created_at": "2023-11-15T09:00:00Z",
                "payload": {"action": "created", "issue": {"number": 12}, "comment": {"body": "Fixed by #1, thanks!", "created_at": "2023-11-15T09:00:00Z"}}}),
            serde_json::json!({"type": "PullRequestEvent", "repo": repo, "created_at": "2023-11-15T10:00:00Z",
                "payload": {"action": "closed", "number": 1, "pull_request": {"number": 1, "merged": true,
                    "title": "Handle None in f", "body": "This fixes #12.\n\nAlso closes https://github.com/acme/widgets/issues/13"}}}),
            serde_json::json!({"type": "PullRequestReviewCommentEvent", "repo": repo, "created_at": "2023-11-15T09:30:00Z",
                "payload": {"action": "created", "pull_request": {"number": 1}, "comment": {"body": "nit"}}}),
            // After 2025-10-07 GitHub trims payloads: no title/body left.
            serde_json::json!({"type": "PullRequestEvent", "repo": repo, "created_at": "2025-11-01T10:00:00Z",
                "payload": {"action": "closed", "number": 2, "pull_request": {"url": "https://api.github.com/repos/acme/widgets/pulls/2"}}}),
        ],
    );
    let events = Events::load(&ev, None).unwrap();
    assert_eq!(events.read, 8);
    assert_eq!(events.trimmed, 1);
    assert_eq!(events.repos["acme/widgets"].prs[&1].review_comments, 1);

    let (insts, report) = mine(&[&r.dir], MineOptions::default(), Some(events));
    assert_eq!(
        (
            report.events_read,
            report.events_trimmed,
            report.prs_enriched
        ),
        (8, 1, 2),
        "{}",
        report.table()
    );
    let p1 = insts.iter().find(|i| i.pr_number == Some(1)).unwrap();
    assert_eq!(p1.base_commit, base);
    assert_eq!(p1.title, "Handle None in f");
    assert_eq!(p1.linked_issues, vec![12, 13]);
    assert_eq!(
        p1.problem_statement,
        "Crash on None\nf(None) raises.\n\nDocs\nSay what None does."
    );
    // Only the comment written before the PR's first commit is a hint.
    assert_eq!(p1.hints, "Check for None first.");
    // The trimmed PR keeps the text recovered from git.
    let p2 = insts.iter().find(|i| i.pr_number == Some(2)).unwrap();
    assert_eq!(p2.title, "Other");
    assert_eq!(p2.problem_statement, "Other");
}

#[test]
fn malformed_event_lines_name_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("bad.json"),
        "{\"type\": \"IssuesEvent\"}\n{not json\n",
    )
    .unwrap();
    let err = Events::load(tmp.path(), None).err().unwrap().to_string();
    assert!(err.contains("bad.json line 2"), "{err}");
}
