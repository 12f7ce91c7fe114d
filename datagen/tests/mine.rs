//! End-to-end: real repositories built with the git CLI → exact instances, filters, dedup.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{git_in, mine, TestRepo};
use datagen::{Instance, MineOptions, UnitKind};

const APP: &str = "from src.util import helper\n\ndef run(x):\n    return helper(x)\n\ndef main():\n    print(run(1))\n";
const UTIL: &str = "def helper(x):\n    return x + 1\n";
const TEST: &str = "from src.app import run\n\ndef test_run():\n    assert run(1) == 2\n";

struct Fixture {
    repo: TestRepo,
    ids: BTreeMap<&'static str, String>,
}

/// The history every test mines. Comments name the scenario each step exercises.
fn build(dir: &Path) -> Fixture {
    let r = TestRepo::init(dir, Some("https://github.com/acme/widgets.git"));
    let mut ids = BTreeMap::new();
    r.write("src/app.py", APP);
    r.write("src/util.py", UTIL);
    r.write("tests/test_app.py", TEST);
    r.write("README.md", "# widgets\n");
    r.write("package-lock.json", "{\n  \"lockfileVersion\": 2\n}\n");
    r.write("logo.png", [0x89u8, b'P', b'N', b'G', 0, 0, 1, 2]);
    ids.insert("init", r.commit("Initial commit"));
    // Co-change history: app and util change together (feeds relevant-file scoring).
    r.write("src/app.py", APP.replace("print(run(1))", "print(run(2))"));
    r.write("src/util.py", UTIL.replace("x + 1", "x + 1  # inc"));
    r.commit("Refactor app and util");

    // 1. --no-ff PR merge with a code change, a test change and `Fixes #12`.
    ids.insert("base1", r.head());
    r.git(&["checkout", "-q", "-b", "feature-1"]);
    r.write(
        "src/app.py",
        r.read("src/app.py").replace(
            "def run(x):\n",
            "def run(x):\n    if x is None:\n        return 0\n",
        ),
    );
    r.write(
        "tests/test_app.py",
        format!("{TEST}\ndef test_none():\n    assert run(None) == 0\n"),
    );
    ids.insert("pr1_head", r.commit("Handle None input\n\nFixes #12"));
    r.git(&["checkout", "-q", "main"]);
    ids.insert(
        "merge1",
        r.merge_pr("feature-1", 1, "alice/feature-1", "Fix crash on None"),
    );

    // 2. Squash merge `Title (#N)`.
    r.write(
        "src/util.py",
        r.read("src/util.py")
            .replace("return x + 1  # inc", "return int(x) + 1"),
    );
    ids.insert(
        "squash2",
        r.commit("Coerce helper input (#2)\n\nresolves #20"),
    );

    // 3. PR whose target branch moved on: merge base != first parent.
    ids.insert("base3", r.head());
    r.git(&["checkout", "-q", "-b", "feature-3"]);
    r.write(
        "src/app.py",
        r.read("src/app.py").replace(
            "def main():",
            "def negate(x):\n    return -run(x)\n\n\ndef main():",
        ),
    );
    ids.insert("pr3_head", r.commit("Add negate"));
    r.git(&["checkout", "-q", "main"]);
    r.write(
        "src/util.py",
        r.read("src/util.py").replace(
            "def helper(x):",
            "def helper(x):\n    \"\"\"Increment.\"\"\"",
        ),
    );
    ids.insert("moved_on", r.commit("Document helper"));
    ids.insert(
        "merge3",
        r.merge_pr("feature-3", 3, "bob/feature-3", "Add negate"),
    );

    // 4. Rename with an edit (squash).
    r.git(&["mv", "src/util.py", "src/helpers.py"]);
    r.write(
        "src/helpers.py",
        r.read("src/helpers.py") + "\n\ndef twice(x):\n    return 2 * x\n",
    );
    r.write(
        "src/app.py",
        r.read("src/app.py")
            .replace("from src.util import", "from src.helpers import"),
    );
    ids.insert("rename5", r.commit("Rename util to helpers (#5)"));

    // 5. Binary file and symlink next to a code change.
    r.write("logo2.png", [0u8, 159, 146, 150, 0, 1]);
    std::os::unix::fs::symlink("app.py", dir.join("src/link.py")).unwrap();
    r.write(
        "src/app.py",
        r.read("src/app.py")
            .replace("print(run(2))", "print(run(3))"),
    );
    ids.insert("binary6", r.commit("Use new logo (#6)"));

    // 6. Bot PR (merge commit, bot author) touching the lock file.
    r.git(&["checkout", "-q", "-b", "dependabot/npm/lodash"]);
    r.set_author("dependabot[bot]", "bot@github.com");
    r.write("package-lock.json", "{\n  \"lockfileVersion\": 3\n}\n");
    r.commit("Bump lodash from 4.1.0 to 4.2.0");
    r.set_author("Alice", "alice@example.com");
    r.git(&["checkout", "-q", "main"]);
    r.merge_pr(
        "dependabot/npm/lodash",
        7,
        "acme/dependabot/npm/lodash",
        "Bump lodash from 4.1.0 to 4.2.0",
    );

    // 7. Lock-file-only PR by a human.
    r.write("package-lock.json", "{\n  \"lockfileVersion\": 4\n}\n");
    r.commit("Regenerate lockfile (#8)");

    // 8. Test-only PR.
    r.write(
        "tests/test_app.py",
        r.read("tests/test_app.py") + "\ndef test_two():\n    assert run(2) == 3\n",
    );
    r.commit("More tests (#9)");

    // 9. Non-UTF-8 content.
    r.write("src/latin.py", b"name = '\xe9t\xe9'\n");
    r.commit("Add latin-1 module (#10)");

    // 10. Submodule pointer (gitlink) plus a code change.
    let sub = r.git(&["rev-parse", "HEAD"]);
    r.git(&[
        "update-index",
        "--add",
        "--cacheinfo",
        &format!("160000,{sub},vendorlib"),
    ]);
    r.write(
        "src/app.py",
        r.read("src/app.py")
            .replace("print(run(3))", "print(run(4))"),
    );
    r.git(&["add", "src/app.py"]);
    ids.insert("sub11", r.commit_staged("Pin vendorlib (#11)"));
    std::fs::create_dir_all(dir.join("vendorlib")).unwrap();

    // 11. Plain commit without a PR number (only mined with --all-commits).
    r.write(
        "src/helpers.py",
        r.read("src/helpers.py").replace("2 * x", "x * 2"),
    );
    ids.insert("plain", r.commit("Tidy twice"));
    Fixture { repo: r, ids }
}

fn by_pr(instances: &[Instance]) -> BTreeMap<u64, &Instance> {
    instances
        .iter()
        .filter_map(|i| i.pr_number.map(|n| (n, i)))
        .collect()
}

#[test]
fn merged_prs_become_exact_instances() {
    let tmp = tempfile::tempdir().unwrap();
    let fx = build(&tmp.path().join("widgets"));
    let (insts, report) = mine(&[&fx.repo.dir], MineOptions::default(), None);
    let prs = by_pr(&insts);
    assert_eq!(
        prs.keys().copied().collect::<Vec<_>>(),
        vec![1, 2, 3, 5, 6, 11],
        "{}",
        report.table()
    );

    let p1 = prs[&1];
    assert_eq!(p1.id, "acme__widgets-1");
    assert_eq!(p1.repo, "acme/widgets");
    assert_eq!(p1.kind, UnitKind::Merge);
    assert_eq!(p1.base_commit, fx.ids["base1"]);
    assert_eq!(p1.merge_commit, fx.ids["merge1"]);
    assert_eq!(p1.head_commit, fx.ids["pr1_head"]);
    assert_eq!(p1.commits, vec![fx.ids["pr1_head"].clone()]);
    assert_eq!(p1.title, "Fix crash on None");
    assert_eq!(p1.linked_issues, vec![12]);
    assert_eq!(
        p1.created_at,
        datagen::instance::rfc3339(1_700_000_000 + 4 * 60)
    );
    assert_eq!(
        p1.oracle_patch,
        format!(
            "diff --git a/src/app.py b/src/app.py\nindex {}..{} 100644\n--- a/src/app.py\n+++ b/src/app.py\n@@ -1,6 +1,8 @@\n from src.util import helper\n \n def run(x):\n+    if x is None:\n+        return 0\n     return helper(x)\n \n def main():\n",
            &blob(&fx.repo, &fx.ids["base1"], "src/app.py")[..7],
            &blob(&fx.repo, &fx.ids["pr1_head"], "src/app.py")[..7]
        )
    );
    assert!(
        p1.test_patch
            .starts_with("diff --git a/tests/test_app.py b/tests/test_app.py\n"),
        "{}",
        p1.test_patch
    );
    assert!(p1.test_patch.contains("+def test_none():\n"));
    // Context: the modified code file at base plus util.py, chosen by co-change history.
    assert_eq!(
        p1.code_context.keys().collect::<Vec<_>>(),
        vec!["src/app.py", "src/util.py"]
    );
    assert_eq!(
        p1.code_context["src/util.py"],
        UTIL.replace("x + 1", "x + 1  # inc")
    );
    assert_eq!(p1.relevant_files.len(), 1);
    assert_eq!(
        (
            p1.relevant_files[0].path.as_str(),
            p1.relevant_files[0].method.as_str()
        ),
        ("src/util.py", "co-change")
    );
    assert_eq!(
        p1.oracle_new_content.keys().collect::<Vec<_>>(),
        vec!["src/app.py"]
    );
    assert_eq!(p1.stats.code_files, 1);
    assert_eq!(p1.stats.test_files, 1);
    assert_eq!((p1.stats.lines_added, p1.stats.lines_removed), (2 + 3, 0));

    let p2 = prs[&2];
    assert_eq!(p2.kind, UnitKind::Squash);
    assert_eq!(p2.title, "Coerce helper input");
    assert_eq!(p2.base_commit, fx.ids["merge1"]);
    assert_eq!(p2.linked_issues, vec![20]);
    assert!(p2.test_patch.is_empty());

    // Target branch moved on: base is the merge base, and util.py's later edit on main is
    // not part of the PR's patch.
    let p3 = prs[&3];
    assert_eq!(p3.base_commit, fx.ids["base3"]);
    assert_ne!(p3.base_commit, fx.ids["moved_on"]);
    assert!(
        p3.oracle_patch.contains("+def negate(x):") && !p3.oracle_patch.contains("util.py"),
        "{}",
        p3.oracle_patch
    );

    let p5 = prs[&5];
    assert!(
        p5.oracle_patch
            .contains("rename from src/util.py\nrename to src/helpers.py\n"),
        "{}",
        p5.oracle_patch
    );
    assert_eq!(p5.stats.renames, 1);

    let p6 = prs[&6];
    assert_eq!((p6.stats.skipped_binary, p6.stats.skipped_symlink), (1, 1));
    assert!(!p6.oracle_patch.contains("logo2.png") && !p6.oracle_patch.contains("link.py"));
    assert_eq!(prs[&11].stats.skipped_submodule, 1);

    // Filters, each counted.
    assert_eq!(report.units, 10, "{}", report.table());
    assert_eq!(report.kept, 6);
    let rejected: Vec<(&str, u64)> = report
        .rejected
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    assert_eq!(
        rejected,
        vec![("bot", 1), ("noise_only", 2), ("non_utf8", 1)],
        "{}",
        report.table()
    );
}

fn blob(r: &TestRepo, commit: &str, path: &str) -> String {
    r.git(&["rev-parse", &format!("{commit}:{path}")])
}

#[test]
fn oracle_and_test_patches_apply_with_git() {
    let tmp = tempfile::tempdir().unwrap();
    let fx = build(&tmp.path().join("widgets"));
    let (insts, _) = mine(
        &[&fx.repo.dir],
        MineOptions {
            all_commits: true,
            ..MineOptions::default()
        },
        None,
    );
    assert!(insts.len() >= 6);
    let wt = tmp.path().join("wt");
    for inst in insts.iter().filter(|i| !i.base_commit.is_empty()) {
        let _ = std::fs::remove_dir_all(&wt);
        let out = git_in(
            &fx.repo.dir,
            &[
                "worktree",
                "add",
                "-q",
                "--detach",
                "-f",
                wt.to_str().unwrap(),
                &inst.base_commit,
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for (name, patch) in [("oracle", &inst.oracle_patch), ("test", &inst.test_patch)] {
            if patch.is_empty() {
                continue;
            }
            let pf = tmp.path().join(format!("{name}.diff"));
            std::fs::write(&pf, patch).unwrap();
            let out = git_in(&wt, &["apply", pf.to_str().unwrap()]);
            assert!(
                out.status.success(),
                "{} {name} patch: {}\n{patch}",
                inst.id,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        for (path, content) in &inst.oracle_new_content {
            assert_eq!(
                &std::fs::read_to_string(wt.join(path)).unwrap(),
                content,
                "{} {path}",
                inst.id
            );
        }
        for (path, content) in &inst.code_context {
            let at_base = git_in(
                &fx.repo.dir,
                &["show", &format!("{}:{path}", inst.base_commit)],
            );
            assert_eq!(
                &String::from_utf8_lossy(&at_base.stdout),
                content,
                "{} {path}",
                inst.id
            );
        }
        git_in(
            &fx.repo.dir,
            &["worktree", "remove", "--force", wt.to_str().unwrap()],
        );
    }
}

#[test]
fn all_commits_mode_and_dedup_across_repositories() {
    let tmp = tempfile::tempdir().unwrap();
    let fx = build(&tmp.path().join("widgets"));
    let (insts, report) = mine(
        &[&fx.repo.dir],
        MineOptions {
            all_commits: true,
            ..MineOptions::default()
        },
        None,
    );
    let plain = insts
        .iter()
        .find(|i| i.merge_commit == fx.ids["plain"])
        .expect("plain commit mined");
    assert_eq!((plain.kind, plain.pr_number), (UnitKind::Commit, None));
    assert_eq!(
        plain.id,
        format!("acme__widgets-{}", &fx.ids["plain"][..12])
    );
    // The one-commit PR #1 and its merge carry the same patch: one is a duplicate.
    assert!(
        report.rejected.get("duplicate").copied().unwrap_or(0) >= 1,
        "{}",
        report.table()
    );

    // A fork with the same history: every instance is a duplicate of the first repo's.
    let fork = tmp.path().join("fork");
    let out = git_in(
        tmp.path(),
        &[
            "clone",
            "-q",
            fx.repo.dir.to_str().unwrap(),
            fork.to_str().unwrap(),
        ],
    );
    assert!(out.status.success());
    git_in(
        &fork,
        &[
            "remote",
            "set-url",
            "origin",
            "https://github.com/bob/widgets",
        ],
    );
    let (insts2, report2) = mine(&[&fx.repo.dir, &fork], MineOptions::default(), None);
    assert_eq!(report2.repos, 2);
    assert!(insts2.iter().all(|i| i.repo == "acme/widgets"));
    assert_eq!(report2.rejected["duplicate"], 6, "{}", report2.table());
}

#[test]
fn decontamination_empty_and_shallow_repositories() {
    let tmp = tempfile::tempdir().unwrap();
    let dj = TestRepo::init(
        &tmp.path().join("dj"),
        Some("git@github.com:django/django.git"),
    );
    dj.write("a.py", "x = 1\n");
    dj.commit("init");
    dj.write("a.py", "x = 2\n");
    dj.commit("Change (#1)");
    let empty = TestRepo::init(&tmp.path().join("empty"), None);
    let (insts, report) = mine(&[&dj.dir, &empty.dir], MineOptions::default(), None);
    assert!(insts.is_empty());
    assert_eq!(
        report.repos_decontaminated,
        vec!["django/django".to_string()]
    );
    assert_eq!(report.repos_empty, vec!["local/empty".to_string()]);

    // Bare clones work; shallow ones are refused with a message that says what to do.
    let bare = tmp.path().join("bare.git");
    git_in(
        tmp.path(),
        &[
            "clone",
            "-q",
            "--bare",
            dj.dir.to_str().unwrap(),
            bare.to_str().unwrap(),
        ],
    );
    let opts = MineOptions {
        filter: datagen::FilterConfig {
            decontaminate: vec![],
            ..Default::default()
        },
        ..Default::default()
    };
    let (insts, _) = mine(&[&bare], opts.clone(), None);
    assert_eq!(insts.len(), 1);
    let shallow = tmp.path().join("shallow");
    let url = format!("file://{}", dj.dir.display());
    git_in(
        tmp.path(),
        &[
            "clone",
            "-q",
            "--depth",
            "1",
            &url,
            shallow.to_str().unwrap(),
        ],
    );
    let mut miner = datagen::Miner::new(opts, None).unwrap();
    let err = miner
        .mine_repo(&shallow, None, &mut |_| Ok(()), &mut |_| {})
        .unwrap_err();
    assert!(
        err.to_string().contains("shallow clone") && err.to_string().contains("--unshallow"),
        "{err}"
    );
}

#[test]
fn corrupt_objects_are_skipped_and_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let r = TestRepo::init(&tmp.path().join("c"), None);
    r.write("a.py", "x = 1\n");
    r.commit("init");
    r.write("a.py", "x = 2\n");
    r.commit("Break (#1)");
    r.write("b.py", "y = 1\n");
    r.commit("Fine (#2)");
    let blob = r.git(&["rev-parse", "HEAD~1:a.py"]);
    std::fs::remove_file(r.dir.join(".git/objects").join(&blob[..2]).join(&blob[2..])).unwrap();
    let (insts, report) = mine(&[&r.dir], MineOptions::default(), None);
    assert_eq!(
        insts.iter().map(|i| i.pr_number).collect::<Vec<_>>(),
        vec![Some(2)]
    );
    assert_eq!(report.rejected["corrupt_object"], 1, "{}", report.table());
}

#[test]
fn swebench_export_then_import_round_trips() {
    let tmp = tempfile::tempdir().unwrap();
    let fx = build(&tmp.path().join("widgets"));
    let (insts, _) = mine(&[&fx.repo.dir], MineOptions::default(), None);
    let repo = datagen::git::Repo::open(&fx.repo.dir).unwrap();
    for inst in &insts {
        let v = datagen::swebench::to_swebench(inst);
        assert_eq!(v["instance_id"], inst.id.as_str());
        assert_eq!(v["patch"], inst.oracle_patch.as_str());
        assert_eq!(v["hints_text"], inst.hints.as_str());
        let back = datagen::swebench::import_record(&v, &repo, Path::new("x.jsonl"), 1).unwrap();
        assert_eq!(
            back.oracle_new_content, inst.oracle_new_content,
            "{}",
            inst.id
        );
        let modified: Vec<&String> = inst
            .code_context
            .keys()
            .filter(|k| !inst.relevant_files.iter().any(|r| &r.path == *k))
            .collect();
        assert_eq!(
            back.code_context.keys().collect::<Vec<_>>(),
            modified,
            "{}",
            inst.id
        );
        assert_eq!(
            (back.pr_number, back.kind),
            (inst.pr_number, UnitKind::Swebench)
        );
    }
    assert_eq!(
        datagen::swebench::find_clone(tmp.path(), "acme/widgets").unwrap(),
        tmp.path().join("widgets")
    );
    let mut bad = datagen::swebench::to_swebench(&insts[0]);
    bad["patch"] = serde_json::Value::from(
        insts[0]
            .oracle_patch
            .replace("     return helper(x)", "     return nothing"),
    );
    let err = datagen::swebench::import_record(&bad, &repo, Path::new("x.jsonl"), 3)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("x.jsonl line 3") && err.contains("does not apply"),
        "{err}"
    );
}

#[test]
fn non_utf8_paths_version_bumps_and_too_big_changes_are_counted() {
    use std::os::unix::ffi::OsStrExt;
    let tmp = tempfile::tempdir().unwrap();
    let r = TestRepo::init(&tmp.path().join("u"), Some("https://github.com/acme/u"));
    r.write(
        "src/a.py",
        "__version__ = \"1.0.0\"\n\ndef f():\n    return 1\n",
    );
    r.commit("init");
    std::fs::write(
        r.dir.join(std::ffi::OsStr::from_bytes(b"src/caf\xe9.py")),
        "x = 1\n",
    )
    .unwrap();
    r.commit("Add module with latin-1 name (#1)");
    r.write(
        "src/a.py",
        "__version__ = \"1.0.1\"\n\ndef f():\n    return 1\n",
    );
    r.commit("Release 1.0.1 (#2)");
    let big: String = (0..30)
        .map(|i| format!("def g{i}():\n    return {i}\n"))
        .collect();
    r.write("src/big.py", &big);
    r.commit("Add many functions (#3)");
    r.write(
        "src/a.py",
        "__version__ = \"1.0.1\"\n\ndef f():\n    return 2\n",
    );
    r.commit("Return two (#4)");
    let opts = MineOptions {
        filter: datagen::FilterConfig {
            max_changed_lines: 40,
            ..Default::default()
        },
        ..Default::default()
    };
    let (insts, report) = mine(&[&r.dir], opts, None);
    assert_eq!(
        insts.iter().map(|i| i.pr_number).collect::<Vec<_>>(),
        vec![Some(4)]
    );
    let rejected: Vec<(&str, u64)> = report
        .rejected
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    assert_eq!(
        rejected,
        vec![("noise_only", 1), ("non_utf8", 1), ("too_many_lines", 1)],
        "{}",
        report.table()
    );
}

#[test]
fn import_heuristic_fills_context_when_history_has_no_co_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let r = TestRepo::init(&tmp.path().join("imp"), Some("https://github.com/acme/imp"));
    r.write("src/b.py", "def g():\n    return 1\n");
    r.write("src/c.py", "def h():\n    return 2\n");
    r.commit("init");
    r.write(
        "src/a.py",
        "from src.b import g\n\ndef f():\n    return g()\n",
    );
    r.commit("add a");
    r.write(
        "src/a.py",
        "from src.b import g\n\ndef f():\n    return g() + 1\n",
    );
    r.commit("Raise result by one (#1)");
    let (insts, _) = mine(&[&r.dir], MineOptions::default(), None);
    assert_eq!(insts.len(), 1);
    let rel: Vec<(&str, &str, u32)> = insts[0]
        .relevant_files
        .iter()
        .map(|f| (f.path.as_str(), f.method.as_str(), f.score))
        .collect();
    assert_eq!(rel, vec![("src/b.py", "import", 1)]);
    assert_eq!(
        insts[0].code_context.keys().collect::<Vec<_>>(),
        vec!["src/a.py", "src/b.py"]
    );
}

#[test]
fn walk_orders_commits_like_the_gix_rev_walk() {
    let tmp = tempfile::tempdir().unwrap();
    let f = build(&tmp.path().join("r"));
    let repo = datagen::git::Repo::open(&f.repo.dir).unwrap();
    let head = repo.head().unwrap().unwrap();
    let mut walked = repo.all_commits(head).unwrap();
    walked.reverse();
    let links = repo.walk_links(head).unwrap();
    assert!(walked.len() > 8, "fixture has merges and branches");
    assert_eq!(links.iter().map(|c| c.id).collect::<Vec<_>>(), walked);
    let mut merges = 0;
    for c in &links {
        let full = repo.commit(c.id).unwrap();
        assert_eq!(c.tree, full.tree);
        let first = c.first_parent().map(|p| links[p].id);
        assert_eq!(first, full.parents.first().copied(), "{}", c.id);
        merges += usize::from(full.parents.len() >= 2);
    }
    assert!(merges >= 2, "fixture has merges");
}

/// What `--all-commits` holds per commit for the whole history: two ids and a parent's
/// position, nothing that grows with the commit's text.
#[test]
fn walked_commit_stays_small() {
    assert!(std::mem::size_of::<datagen::git::WalkedCommit>() <= 44);
}

/// A history long enough for readers to diff its newest commits while the walk still runs
/// (walk chunks of 128): every instance must still carry its own commit's change, in walk
/// order, for any number of threads.
#[test]
fn long_history_instances_match_their_commits() {
    use std::io::Write as _;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("r");
    std::fs::create_dir_all(&dir).unwrap();
    assert!(git_in(&dir, &["init", "-q", "-b", "main"]).status.success());
    let mut s = Vec::new();
    let n = 2000;
    for i in 0..n {
        let (msg, body) = (format!("Change {i}"), format!("x = {i}\n"));
        writeln!(s, "commit refs/heads/main\nmark :{}", i + 1).unwrap();
        let who = format!("Dev <dev@example.com> {} +0000", 1_600_000_000 + i * 60);
        writeln!(s, "author {who}\ncommitter {who}").unwrap();
        writeln!(s, "data {}\n{msg}", msg.len()).unwrap();
        if i > 0 {
            writeln!(s, "from :{i}").unwrap();
        }
        let path = format!("pkg/f{}.py", i % 5);
        writeln!(s, "M 100644 inline {path}\ndata {}\n{body}", body.len()).unwrap();
    }
    let mut child = std::process::Command::new("git")
        .args(["fast-import", "--quiet"])
        .current_dir(&dir)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&s).unwrap();
    assert!(child.wait().unwrap().success());
    let mut runs = Vec::new();
    for jobs in [1, 3] {
        let opts = MineOptions {
            all_commits: true,
            jobs,
            ..MineOptions::default()
        };
        let (insts, report) = mine(&[&dir], opts, None);
        assert_eq!(report.commits_walked, n as u64);
        // The root commit adds its file; every other commit edits one line.
        assert_eq!(insts.len(), n as usize);
        for (i, inst) in insts.iter().enumerate() {
            assert_eq!(inst.title, format!("Change {i}"));
            let path = format!("pkg/f{}.py", i % 5);
            assert_eq!(inst.oracle_new_content[&path], format!("x = {i}\n"), "{i}");
            if i >= 5 {
                assert_eq!(inst.code_context[&path], format!("x = {}\n", i - 5), "{i}");
            }
        }
        runs.push(insts);
    }
    let ids = |v: &[Instance]| v.iter().map(|i| i.head_commit.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&runs[0]), ids(&runs[1]));
}

/// Only history reachable from HEAD is mined (documented on `Miner::mine_repo`): a PR merged
/// into another branch (a release branch, say) and never into HEAD's branch is skipped,
/// in both modes; once that branch is merged into HEAD's, its commits are reachable and
/// mined with `--all-commits`, while its PR merge stays off HEAD's first-parent line.
#[test]
fn prs_merged_only_into_other_branches_are_not_mined() {
    let tmp = tempfile::tempdir().unwrap();
    let r = TestRepo::init(&tmp.path().join("r"), None);
    r.write("src/a.py", "def a():\n    return 1\n");
    r.commit("Initial commit");
    r.git(&["checkout", "-q", "-b", "release"]);
    r.git(&["checkout", "-q", "-b", "backport"]);
    r.write("src/a.py", "def a():\n    return 2\n");
    r.commit("Backport the fix");
    r.git(&["checkout", "-q", "release"]);
    r.merge_pr("backport", 7, "dev/backport", "Backport to release");
    r.write("src/r.py", "VERSION = '1.0.1'\nX = 1\n");
    r.commit("Release note (#8)");
    r.git(&["checkout", "-q", "main"]);
    r.git(&["checkout", "-q", "-b", "feature"]);
    r.write("src/b.py", "def b():\n    return 3\n");
    r.commit("Add b");
    r.git(&["checkout", "-q", "main"]);
    r.merge_pr("feature", 9, "dev/feature", "Add b");
    let prs = |all_commits| {
        let opts = MineOptions {
            all_commits,
            ..MineOptions::default()
        };
        let (insts, report) = mine(&[&r.dir], opts, None);
        let prs: Vec<Option<u64>> = insts.iter().map(|i| i.pr_number).collect();
        (prs, report.commits_walked)
    };
    assert_eq!(prs(false), (vec![Some(9)], 2));
    // Every commit reachable from HEAD: the initial one, `Add b` and the merge (#9's
    // patch is `Add b`'s, so it is dropped as a duplicate of that commit).
    let (all, walked) = prs(true);
    assert_eq!(walked, 3);
    assert_eq!(all, vec![None, None]);
    // Release merged into main: its commits become reachable (mined with --all-commits,
    // the squash title `(#8)` included), but #7's merge is not on main's first-parent line.
    r.git(&[
        "merge",
        "-q",
        "--no-ff",
        "release",
        "-m",
        "Merge branch 'release'",
    ]);
    let (prs_only, _) = prs(false);
    assert_eq!(prs_only, vec![Some(9)]);
    let (all, walked) = prs(true);
    assert_eq!(walked, 7);
    assert!(all.contains(&Some(8)) && !all.contains(&Some(7)), "{all:?}");
}
