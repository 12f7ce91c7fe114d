//! Builds real repositories with the `git` CLI, deterministically (fixed identities and
//! dates, no dependence on the machine's git config).
#![allow(dead_code)]

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::Command;

use datagen::{Instance, MineOptions, Miner, Report};

pub struct TestRepo {
    pub dir: PathBuf,
    clock: Cell<i64>,
    pub author: std::cell::RefCell<(String, String)>,
}

impl TestRepo {
    pub fn init(dir: &Path, origin: Option<&str>) -> TestRepo {
        std::fs::create_dir_all(dir).unwrap();
        let r = TestRepo {
            dir: dir.to_owned(),
            clock: Cell::new(1_700_000_000),
            author: std::cell::RefCell::new(("Alice".into(), "alice@example.com".into())),
        };
        r.git(&["init", "-q", "-b", "main"]);
        if let Some(url) = origin {
            r.git(&["remote", "add", "origin", url]);
        }
        r
    }

    pub fn git(&self, args: &[&str]) -> String {
        let t = self.clock.get();
        let (name, email) = self.author.borrow().clone();
        let out = Command::new("git")
            .args(args)
            .current_dir(&self.dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_AUTHOR_NAME", &name)
            .env("GIT_AUTHOR_EMAIL", &email)
            .env("GIT_COMMITTER_NAME", "Committer")
            .env("GIT_COMMITTER_EMAIL", "committer@example.com")
            .env("GIT_AUTHOR_DATE", format!("@{t} +0000"))
            .env("GIT_COMMITTER_DATE", format!("@{t} +0000"))
            .output()
            .expect("git runs");
        assert!(
            out.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn write(&self, path: &str, content: impl AsRef<[u8]>) {
        let p = self.dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    pub fn read(&self, path: &str) -> String {
        std::fs::read_to_string(self.dir.join(path)).unwrap()
    }

    /// Stages everything and commits; returns the new commit id. Time advances 60 s.
    pub fn commit(&self, msg: &str) -> String {
        self.clock.set(self.clock.get() + 60);
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", msg]);
        self.head()
    }

    /// Commits the index as it is (for entries `git add -A` would undo, like bare gitlinks).
    pub fn commit_staged(&self, msg: &str) -> String {
        self.clock.set(self.clock.get() + 60);
        self.git(&["commit", "-q", "-m", msg]);
        self.head()
    }

    pub fn tick(&self) -> i64 {
        self.clock.set(self.clock.get() + 60);
        self.clock.get()
    }

    pub fn now(&self) -> i64 {
        self.clock.get()
    }

    pub fn head(&self) -> String {
        self.git(&["rev-parse", "HEAD"])
    }

    pub fn set_author(&self, name: &str, email: &str) {
        *self.author.borrow_mut() = (name.into(), email.into());
    }

    /// `git merge --no-ff` with GitHub's message layout.
    pub fn merge_pr(&self, branch: &str, n: u64, from: &str, title: &str) -> String {
        self.tick();
        self.git(&[
            "merge",
            "-q",
            "--no-ff",
            branch,
            "-m",
            &format!("Merge pull request #{n} from {from}"),
            "-m",
            title,
        ]);
        self.head()
    }
}

/// Mines `repos` with one miner (dedup spans them) and returns instances and the report.
pub fn mine(
    repos: &[&Path],
    opts: MineOptions,
    events: Option<datagen::Events>,
) -> (Vec<Instance>, Report) {
    let mut miner = Miner::new(opts, events).unwrap();
    let mut out = Vec::new();
    for r in repos {
        miner
            .mine_repo(
                r,
                None,
                &mut |i| {
                    out.push(i);
                    Ok(())
                },
                &mut |_| {},
            )
            .unwrap();
    }
    (out, miner.report.clone())
}

pub fn git_in(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .unwrap()
}
